//! ClawFleet's engine: health of a personal AI fleet, the fleet API, and (in
//! later parts) the inference proxy, cost estimates and self-healing.
//!
//! This crate has no GUI dependency: the `clawfleet` binary runs it headless
//! and the tray app (`src-tauri/`) embeds it. See `ARCHITECTURE.md` for the map.

pub mod action;
pub mod api;
pub mod command;
pub mod config;
pub mod cost;
pub mod daemon;
pub mod error;
pub mod events;
pub mod every;
pub mod fleet;
pub mod heal;
pub mod history;
pub mod ledger;
pub mod net;
pub mod openclaw;
pub mod outside;
pub mod peers;
pub mod probe;
pub mod proxy;
pub mod publish;
pub mod report;
pub mod secret;
pub mod server;
pub mod snapshot;
pub mod sqlite;
pub mod token;
pub mod units;
pub mod usage;

pub use config::ConfigError;
pub use error::Error;
pub use snapshot::Snapshot;
