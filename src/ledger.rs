//! The usage ledger: every proxied request, in SQLite (WAL) in `data_dir`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::proxy::usage::Usage;

/// One proxied request, as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the request arrived.
    pub started_at: Timestamp,
    /// Who asked: the client's address, and its User-Agent when given
    /// (`127.0.0.1 OpenAI/JS 6.1.0`). Never a key.
    pub client: String,
    /// The API the client spoke: `openai`, `ollama` or `anthropic`.
    pub api: String,
    /// The path asked for (`/v1/chat/completions`).
    pub endpoint: String,
    /// The model as the client named it (`macmini/gpt-oss:20b`).
    pub requested_model: Option<String>,
    /// The machine that served it, if any did.
    pub machine: Option<String>,
    /// How many candidates failed before the one that served (0 = first choice).
    pub fallback_depth: u32,
    /// Whether the response was streamed.
    pub stream: bool,
    /// Tokens, when the backend reported them.
    pub usage: Option<Usage>,
    /// Milliseconds to the first byte of the response body sent to the client.
    pub ttfb_ms: Option<f64>,
    /// Milliseconds from arrival to the end of the response.
    pub duration_ms: f64,
    /// HTTP status sent to the client.
    pub status: u16,
    /// `ok`, `error`, `upstream_failed_midstream` or `client_disconnected`.
    pub outcome: String,
    /// What went wrong, in words (never with a key).
    pub error: Option<String>,
}
