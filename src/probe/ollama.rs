//! An Ollama server: `/api/version`, `/api/tags`, `/api/ps`.

use std::time::Duration;

use crate::snapshot::OllamaStatus;

/// Probes the Ollama at `base_url` (e.g. `http://127.0.0.1:11434`), each
/// request within `timeout`. Never fails: problems are in the status.
pub async fn probe(client: &reqwest::Client, base_url: &str, timeout: Duration) -> OllamaStatus {
    let _ = (client, timeout);
    OllamaStatus {
        url: base_url.to_owned(),
        ..OllamaStatus::default()
    }
}
