//! Token usage, read from responses as their bytes pass through the proxy.

use serde::{Deserialize, Serialize};

/// Tokens of one request, as the backend reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (Ollama `prompt_eval_count`, OpenAI `prompt_tokens`,
    /// Anthropic `input_tokens`).
    pub input_tokens: u64,
    /// Generated tokens (Ollama `eval_count`, OpenAI `completion_tokens`,
    /// Anthropic `output_tokens`).
    pub output_tokens: u64,
    /// Prompt tokens served from cache (OpenAI
    /// `prompt_tokens_details.cached_tokens`, Anthropic
    /// `cache_read_input_tokens`).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to cache (Anthropic `cache_creation_input_tokens`).
    pub cache_write_tokens: u64,
}
