//! The agent ClawFleet serves: OpenClaw (formerly Clawdbot, then Moltbot),
//! and a legacy Clawdbot 2026.1 where one still runs.
//!
//! - [`locate`]: which install, found the way OpenClaw finds it;
//! - [`config`]: its JSON5 config, without its secrets;
//! - [`auth`]: the gateway's secret, from wherever OpenClaw takes it;
//! - [`gateway`]: its gateway's health (websocket protocol 4, or the CLI);
//! - [`store`]: its agents from its SQLite databases (sessions, activity,
//!   heartbeat schedule, approvals), read-only;
//! - [`sessions`]: a legacy install's agents from its JSONL transcripts;
//! - [`probe`]: all of the above into the snapshot's `openclaw` part;
//! - [`chain`]: its model chains against what the fleet can serve now;
//! - [`wire`] (with [`spans`]): `clawfleet openclaw wire` points its Ollama
//!   providers at this machine's proxy, `unwire` puts the file back.

pub mod auth;
pub mod chain;
pub mod config;
pub mod gateway;
pub mod locate;
pub mod probe;
pub mod sessions;
pub mod spans;
pub mod store;
pub mod wire;
