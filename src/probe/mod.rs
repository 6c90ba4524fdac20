//! Probes: what is true right now about this machine, its Ollama, its
//! services, pm2 and Clawdbot. Each probe has its own time limit so a hung
//! one never stalls the rest.

mod collector;
mod fail;
pub mod ollama;
pub mod pm2;
pub mod services;
pub mod system;

pub use collector::{Collector, SnapshotRx, initial_snapshot};

/// A JSON value's type in words, for messages about input of the wrong
/// shape. Never the value itself: it may be a secret.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
