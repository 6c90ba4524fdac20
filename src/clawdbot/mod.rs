//! Joining Clawdbot to the fleet: `clawfleet clawdbot wire` points its
//! Ollama providers at this machine's proxy, `unwire` puts the file back.
//!
//! Reading Clawdbot's state for the snapshot is in `probe::clawdbot`.

pub mod chain;
pub mod spans;
pub mod wire;
