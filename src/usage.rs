//! Token counts: what the proxy meters, the ledger stores and the cost
//! engine prices.

use serde::{Deserialize, Serialize};

/// Tokens of one request, as the backend reported them.
///
/// The three prompt counts do not overlap, whatever the API: `input_tokens +
/// cache_read_tokens + cache_write_tokens` is the whole prompt. Anthropic
/// reports them that way; OpenAI's `prompt_tokens` includes its cached
/// tokens, so the tap subtracts them (as Clawdbot's transcripts do), and one
/// price table then fits every API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to a cache (Ollama
    /// `prompt_eval_count`, OpenAI `prompt_tokens` minus
    /// `prompt_tokens_details.cached_tokens`, Anthropic `input_tokens`).
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
