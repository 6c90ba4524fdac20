//! The ledger's last line of defence against storing a credential.
//!
//! The proxy never puts a key into a [`Record`](super::Record) on purpose, but
//! free text can carry one by accident: a User-Agent, a query string, an
//! upstream error message that echoes a header. Before such text is written,
//! anything shaped like a credential is replaced with `[redacted]`. This is a
//! runtime check in every build, not a debug assertion: a key that reached the
//! ledger would sit in a file for months.

use std::borrow::Cow;
use std::ops::Range;

const REDACTED: &str = "[redacted]";

/// Prefixes of well-known API key and token formats (OpenAI and Anthropic
/// `sk-`, Groq, xAI, Hugging Face, GitHub, Google, Slack, GitLab, JWTs).
const KEY_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "gsk_",
    "xai-",
    "hf_",
    "ghp_",
    "gho_",
    "github_pat_",
    "AIza",
    "xoxb-",
    "xoxp-",
    "glpat-",
    "eyJ",
];

/// A prefixed word shorter than this is an ordinary word (`sk-learn`).
const MIN_KEY_LEN: usize = 20;

/// Names whose value follows after `=` or `:` and is a secret:
/// `x-api-key: …`, `?api_key=…`, `access_token=…`, `Authorization: …`.
const SECRET_NAME_SUFFIXES: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "sig",
    "auth",
    "authorization",
    "credential",
    "credentials",
];

/// What a word asks of the word after it.
#[derive(Clone, Copy)]
enum Next {
    /// After `Bearer`: the next word is a secret, whatever separates them.
    Secret,
    /// After a secret's name: the next word is its value if `=` or `:` is
    /// between them.
    ValueIfAssigned,
}

/// Characters that make up one word: those of keys, tokens (base64 and
/// base64url), hosts, paths and versions.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/')
}

fn looks_like_key(word: &str) -> bool {
    word.len() >= MIN_KEY_LEN && KEY_PREFIXES.iter().any(|p| word.starts_with(p))
}

/// Whether `word` ends with `suffix` (lowercase), in any case, without
/// making a lowercase copy of every word of every record.
fn ends_with_ignoring_case(word: &str, suffix: &str) -> bool {
    word.len() >= suffix.len()
        && word.as_bytes()[word.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// `text` with every credential-shaped word replaced by `[redacted]`;
/// borrowed, unchanged, when there is none.
pub(super) fn scrub(text: &str) -> Cow<'_, str> {
    let mut words: Vec<Range<usize>> = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (is_word_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(s..text.len());
    }

    let mut secrets: Vec<Range<usize>> = Vec::new();
    let mut next: Option<Next> = None;
    let mut prev_end = 0;
    for range in words {
        let word = &text[range.clone()];
        let separator = &text[prev_end..range.start];
        prev_end = range.end;
        let is_value = match next.take() {
            Some(Next::Secret) => true,
            Some(Next::ValueIfAssigned) => separator.contains(['=', ':']),
            None => false,
        };
        if is_value && (word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic")) {
            // `Authorization: Bearer <token>`: the scheme is not the secret.
            next = Some(Next::Secret);
            continue;
        }
        if is_value || looks_like_key(word) {
            secrets.push(range);
            continue;
        }
        if word.eq_ignore_ascii_case("bearer") {
            next = Some(Next::Secret);
        } else if SECRET_NAME_SUFFIXES
            .iter()
            .any(|s| ends_with_ignoring_case(word, s))
        {
            next = Some(Next::ValueIfAssigned);
        }
    }

    if secrets.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for range in secrets {
        out.push_str(&text[copied..range.start]);
        out.push_str(REDACTED);
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn ordinary_text_is_untouched() {
        for text in [
            "127.0.0.1 OpenAI/JS 6.1.0",
            "/v1/chat/completions",
            "/v1/messages?beta=true",
            "upstream macmini timed out after 30000 ms (connect)",
            "model 'gpt-oss:20b' not found, try pulling it first",
            "x-api-key header missing",
            "pip install sk-learn",
            "",
        ] {
            assert_eq!(scrub(text), text);
        }
    }

    #[test]
    fn credentials_are_redacted() {
        let cases = [
            (
                "401 from api.anthropic.com: invalid x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
                "401 from api.anthropic.com: invalid x-api-key: [redacted]",
            ),
            (
                "sent Authorization: Bearer abc123def456",
                "sent Authorization: Bearer [redacted]",
            ),
            ("bearer token9", "bearer [redacted]"),
            ("BEARER token9", "BEARER [redacted]"),
            (
                "env OPENAI_API_KEY=hunter2 Db_Password: swordfish",
                "env OPENAI_API_KEY=[redacted] Db_Password: [redacted]",
            ),
            (
                "/v1/models?api_key=hunter2&beta=true",
                "/v1/models?api_key=[redacted]&beta=true",
            ),
            (
                r#"{"error":"bad key","key":"sk-proj-0123456789abcdefghij"}"#,
                r#"{"error":"bad key","key":"[redacted]"}"#,
            ),
            (
                "curl/8.4 token=AAAA.BBBB.CCCC rest",
                "curl/8.4 token=[redacted] rest",
            ),
            (
                "leaked sk-0123456789abcdefghijklmn in text",
                "leaked [redacted] in text",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(scrub(text), want, "{text}");
        }
    }
}
