//! The agent ClawFleet serves: OpenClaw (formerly Clawdbot, then Moltbot),
//! and a legacy Clawdbot 2026.1 where one still runs.
//!
//! - [`config`]: its JSON5 config (model chain, providers without keys,
//!   gateway port) and the probe that fills the snapshot's `openclaw` part;
//! - [`gateway`]: its gateway's websocket health;
//! - [`sessions`]: its agents and heartbeat from the state folder;
//! - [`chain`]: its model chains against what the fleet can serve now;
//! - [`wire`] (with [`spans`]): `clawfleet openclaw wire` points its Ollama
//!   providers at this machine's proxy, `unwire` puts the file back.

pub mod chain;
pub mod config;
pub mod gateway;
pub mod sessions;
pub mod spans;
pub mod wire;
