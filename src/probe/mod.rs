//! Probes: what is true right now about this machine, its Ollama, its
//! services, pm2 and Clawdbot. Each probe has its own time limit so a hung
//! one never stalls the rest.

mod collector;
mod fail;
pub mod ollama;
pub mod pm2;
pub mod services;
pub mod system;

pub use collector::Collector;

pub(crate) use crate::outside::json_kind;
