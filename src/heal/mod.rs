//! Self-healing: checks over the snapshot, a closed set of typed actions
//! with per-OS command tables, restart-storm guards, the watcher that ties
//! them together, the Cleaner, the Healer's diagnoses, and the event log.

pub mod check;
pub mod clean;
pub mod commands;
pub mod execute;
pub mod guard;
pub mod healer;
pub mod watcher;
