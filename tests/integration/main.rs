//! The integration tests, one binary: the engine links once (on two cores,
//! the biggest part of a test build), and each former test file is a module.
//! Run one part with `cargo test --test integration proxy::`.
//!
//! Every test talks to real sockets on 127.0.0.1 (port 0), real SQLite
//! files and real child processes; `support` holds the fake servers (which
//! speak the documented wire formats) and the harness for the real, pinned
//! OpenClaw.

mod support;

mod api;
mod cli;
mod config;
mod costs;
mod failover;
mod fake_servers;
mod fleet;
mod gateway_probe;
mod heal;
mod heal_pm2;
mod http_hostile;
mod ledger;
mod ollama_probe;
mod openclaw_e2e;
mod openclaw_probe;
mod openclaw_wire;
mod pm2_probe;
mod proxy;
mod proxy_durability;
mod proxy_socks;
mod secret;
mod server;
mod services_probe;
mod system_probe;
mod transcripts;
