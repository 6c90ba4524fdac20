//! Cost estimates: prices as data, usage from the proxy's ledger and from
//! Clawdbot's transcripts, monthly figures per machine and for the fleet,
//! budgets and the credit-leak alarm.

pub mod prices;
pub mod store;
