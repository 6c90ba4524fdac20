//! The built-in inference proxy that OpenClaw's Ollama providers point at:
//! routes each request to the best machine that has the model, fails over
//! before the first byte, streams without buffering, meters every token.
//!
//! Wire formats (what the client and the backends speak) are in
//! `../shared/interop/model-apis.md`; what OpenClaw and a legacy Clawdbot send is in
//! `../shared/interop/clawdbot.md`.

pub mod circuit;
pub mod errors;
pub mod route;
pub mod server;
mod upstream;
pub mod usage;
