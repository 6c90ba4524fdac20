//! An Ollama server: `/api/version`, `/api/tags`, `/api/ps`.
//!
//! The three requests go out together, each with its own time limit, and every
//! body is read with [`PROBE_BODY_LIMIT`]: a model server is untrusted input.
//! Whatever goes wrong ends up in [`OllamaStatus::error`] as a sentence a user
//! can act on ("nothing is listening at …", "answered with HTML …").
//!
//! The JSON shapes follow `docs/api.md` of ollama/ollama. Parsing is in pure
//! functions ([`parse_version`], [`parse_tags`], [`parse_ps`]) that tolerate
//! unknown and missing optional fields.
//!
//! Not for: routing decisions or health checks; those read the status.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::Url;
use serde_json::{Map, Value};

use super::fail::{self, Failure};
use super::json_kind;
use crate::net::{self, BodyError, PROBE_BODY_LIMIT};
use crate::snapshot::{LoadedModel, OllamaModel, OllamaStatus};

/// Longest body excerpt quoted in an error message.
const PREVIEW_CHARS: usize = 200;

/// Probes the Ollama at `base_url` (e.g. `http://127.0.0.1:11434`), each
/// request within `timeout`. Never fails: problems are in the status.
///
/// `reachable` is true when `/api/version` answered 200 with a JSON object
/// holding a string `version`. When it is, a failing `/api/tags` or `/api/ps`
/// leaves `reachable` true and is named in `error`. `latency_ms` is the round
/// trip of `/api/version` (head and body), set whenever it answered HTTP.
pub async fn probe(client: &reqwest::Client, base_url: &str, timeout: Duration) -> OllamaStatus {
    let mut status = OllamaStatus {
        url: base_url.to_owned(),
        ..OllamaStatus::default()
    };
    let base = match Url::parse(base_url.trim_end_matches('/')) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
        Ok(_) => {
            status.error = Some(format!(
                "{base_url:?} is not an http:// or https:// URL with a host"
            ));
            status.checked_at = Some(Timestamp::now());
            return status;
        }
        Err(e) => {
            status.error = Some(format!("{base_url:?} is not a valid URL: {e}"));
            status.checked_at = Some(Timestamp::now());
            return status;
        }
    };

    let (version, tags, ps) = tokio::join!(
        fetch(client, &base, "/api/version", timeout),
        fetch(client, &base, "/api/tags", timeout),
        fetch(client, &base, "/api/ps", timeout),
    );
    status.latency_ms = version.elapsed.map(|d| d.as_secs_f64() * 1000.0);

    // Problems in the order a user should fix them.
    let mut problems: Vec<(&str, Problem)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    match version
        .body
        .and_then(|b| parse_version(&b).map_err(Problem::from))
    {
        Ok(v) => {
            status.reachable = true;
            status.version = Some(v);
        }
        Err(p) => problems.push(("/api/version", p)),
    }
    match tags
        .body
        .and_then(|b| parse_tags(&b).map_err(Problem::from))
    {
        Ok(listing) => {
            status.models = listing.items;
            notes.extend(
                listing
                    .skipped
                    .into_iter()
                    .map(|s| format!("/api/tags: {s}")),
            );
        }
        Err(p) => problems.push(("/api/tags", p)),
    }
    match ps.body.and_then(|b| parse_ps(&b).map_err(Problem::from)) {
        Ok(listing) => {
            status.loaded = listing.items;
            notes.extend(listing.skipped.into_iter().map(|s| format!("/api/ps: {s}")));
        }
        Err(p) => problems.push(("/api/ps", p)),
    }

    // When /api/version failed, the same failure on the other paths (a
    // refused connection, an HTML page) is told once; a different one is
    // news. When it answered, each failing path is its own fact.
    let version_problem = problems
        .iter()
        .find(|(path, _)| *path == "/api/version")
        .map(|(_, problem)| problem.clone());
    let mut parts: Vec<String> = Vec::new();
    for (path, problem) in &problems {
        if *path != "/api/version" && version_problem.as_ref() == Some(problem) {
            continue;
        }
        parts.push(problem.describe(path, &base, timeout));
    }
    parts.extend(notes);
    if !parts.is_empty() {
        status.error = Some(parts.join("; "));
    }
    status.checked_at = Some(Timestamp::now());
    status
}

/// What one GET produced.
struct Fetched {
    /// The body of a 200 that is not HTML, or why there is none.
    body: Result<Vec<u8>, Problem>,
    /// Round trip (request to end of body) when an HTTP answer came back.
    elapsed: Option<Duration>,
}

/// Why one request gave nothing usable. Compared for equality so the
/// `/api/version` problem repeated by the other requests is reported once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// The time limit passed before the whole answer arrived.
    Timeout,
    /// The connection could not be made or broke before an answer.
    Connection(Failure),
    /// A status other than 200.
    Status {
        code: u16,
        /// Ollama's `{"error": "…"}` text, else a preview of the body.
        detail: String,
        /// The Content-Type, when the body is HTML.
        html: Option<String>,
    },
    /// A 200 whose body is HTML.
    Html { content_type: String },
    /// The body exceeded the limit.
    TooLarge { limit: usize },
    /// The body broke off while being read.
    Broken(String),
    /// Not JSON, or cut short.
    InvalidJson(String),
    /// JSON, but not the documented shape.
    Shape(String),
}

impl From<ParseError> for Problem {
    fn from(err: ParseError) -> Self {
        match err {
            ParseError::InvalidJson(detail) => Problem::InvalidJson(detail),
            ParseError::Shape(detail) => Problem::Shape(detail),
        }
    }
}

impl Problem {
    /// The problem in words, naming the path and (for connection problems)
    /// the address.
    fn describe(&self, path: &str, base: &Url, timeout: Duration) -> String {
        let host = base.host_str().unwrap_or_default();
        let addr = fail::host_port(host, base.port_or_known_default().unwrap_or(0));
        match self {
            Problem::Timeout => {
                format!("{path} did not answer within {} ms", timeout.as_millis())
            }
            Problem::Connection(Failure::Refused) => {
                format!("nothing is listening at {addr} (connection refused) — is Ollama running?")
            }
            Problem::Connection(Failure::Unresolvable) => format!("cannot resolve host {host}"),
            Problem::Connection(Failure::Closed(_)) => {
                format!("{addr} closed the connection without answering {path}")
            }
            Problem::Connection(Failure::Other(detail)) => {
                format!("cannot get {path} from {addr}: {detail}")
            }
            Problem::Status { code, detail, html } => {
                let head = format!("{path} answered HTTP {}", status_words(*code));
                match html {
                    Some(ct) => format!(
                        "{head} with HTML (Content-Type {ct}), not Ollama's JSON — is something else on this port?"
                    ),
                    None if detail.is_empty() => format!("{head} with an empty body"),
                    None => format!("{head}: {detail}"),
                }
            }
            Problem::Html { content_type } => format!(
                "{path} answered with HTML (Content-Type {content_type}), not Ollama's JSON — is something else on this port?"
            ),
            Problem::TooLarge { limit } => {
                format!("{path} sent a body larger than the {limit}-byte limit; not read")
            }
            Problem::Broken(detail) => {
                format!("{path}: the answer broke off before its end ({detail})")
            }
            Problem::InvalidJson(detail) => format!("invalid JSON from {path}: {detail}"),
            Problem::Shape(detail) => format!("{path} {detail} — is this Ollama?"),
        }
    }
}

/// `500 Internal Server Error`, or just the number for an unknown code.
fn status_words(code: u16) -> String {
    match reqwest::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

/// GETs `base` + `path` within `timeout` (connect, head and whole body).
async fn fetch(client: &reqwest::Client, base: &Url, path: &str, timeout: Duration) -> Fetched {
    let url = format!("{}{path}", base.as_str().trim_end_matches('/'));
    let started = Instant::now();
    let exchange = async {
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| Problem::Connection(fail::classify(&e)))?;
        let code = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = net::read_body_limited(response, PROBE_BODY_LIMIT).await;
        Ok((code, content_type, body, started.elapsed()))
    };
    let (code, content_type, body, elapsed) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => {
            return Fetched {
                body: Err(Problem::Timeout),
                elapsed: None,
            };
        }
        Ok(Err(problem)) => {
            return Fetched {
                body: Err(problem),
                elapsed: None,
            };
        }
        Ok(Ok(parts)) => parts,
    };
    Fetched {
        body: judge(code, content_type.as_deref(), body),
        elapsed: Some(elapsed),
    }
}

/// Turns an HTTP answer into a usable body or the problem with it.
fn judge(
    code: u16,
    content_type: Option<&str>,
    body: Result<Vec<u8>, BodyError>,
) -> Result<Vec<u8>, Problem> {
    if code != 200 {
        // The status is the news; a body that cannot be read only loses the
        // detail.
        let body = body.unwrap_or_default();
        let html = is_html(content_type, &body).then(|| content_type_words(content_type));
        let detail = ollama_error(&body).unwrap_or_else(|| net::preview(&body, PREVIEW_CHARS));
        return Err(Problem::Status { code, detail, html });
    }
    let body = body.map_err(|e| match e {
        BodyError::TooLarge { limit } => Problem::TooLarge { limit },
        // The last clause is the cause ("end of file before message length
        // reached"); the ones before it only say "error decoding body".
        BodyError::Broken(detail) => Problem::Broken(
            detail
                .rsplit(": ")
                .next()
                .unwrap_or(detail.as_str())
                .to_owned(),
        ),
    })?;
    if is_html(content_type, &body) {
        return Err(Problem::Html {
            content_type: content_type_words(content_type),
        });
    }
    Ok(body)
}

/// HTML by its Content-Type, or (when that is missing or generic) by a body
/// that opens with a tag.
fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    if content_type.is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("text/html")) {
        return true;
    }
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &body[i..])
        .unwrap_or_default();
    start.starts_with(b"<!") || start.to_ascii_lowercase().starts_with(b"<html")
}

/// The Content-Type without parameters, for messages.
fn content_type_words(content_type: Option<&str>) -> String {
    match content_type {
        Some(ct) => ct.split(';').next().unwrap_or(ct).trim().to_owned(),
        None => "missing".to_owned(),
    }
}

/// Ollama's error text from `{"error": "…"}`.
fn ollama_error(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match value.get("error")? {
        Value::String(s) => Some(s.clone()),
        // OpenAI-style `{"error": {"message": …}}`, from proxies in between.
        Value::Object(o) => o.get("message")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Why a body could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all, or cut short (serde_json's words, with line and column).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON, but not the documented shape (what is missing or wrong).
    #[error("{0}")]
    Shape(String),
}

/// Entries parsed from a list, plus those skipped with the reason.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listing<T> {
    /// Entries that had what is needed.
    pub items: Vec<T>,
    /// Why each skipped entry was skipped (`entry 2 has no "name"`).
    pub skipped: Vec<String>,
}

/// Parses `/api/version`: `{"version": "0.5.1"}`.
pub fn parse_version(body: &[u8]) -> Result<String, ParseError> {
    let value: Value = from_json(body)?;
    let Value::Object(object) = value else {
        return Err(ParseError::Shape(format!(
            "answered {} instead of a JSON object",
            json_kind(&value)
        )));
    };
    match object.get("version") {
        Some(Value::String(v)) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        Some(Value::String(_)) => Err(ParseError::Shape("answered an empty \"version\"".into())),
        Some(other) => Err(ParseError::Shape(format!(
            "answered a \"version\" that is {} instead of a string",
            json_kind(other)
        ))),
        None => Err(ParseError::Shape(
            "answered a JSON object without a \"version\"".into(),
        )),
    }
}

/// Parses `/api/tags`: `{"models": [{"name", "modified_at", "size",
/// "details": {"family", "parameter_size", "quantization_level", …}, …}]}`.
/// Entries without a `name` are skipped and listed in [`Listing::skipped`].
pub fn parse_tags(body: &[u8]) -> Result<Listing<OllamaModel>, ParseError> {
    parse_models(body, |entry, name| {
        let details = entry.get("details").and_then(Value::as_object);
        OllamaModel {
            name,
            size_bytes: number(entry.get("size")),
            family: details.and_then(|d| text(d.get("family"))),
            parameter_size: details.and_then(|d| text(d.get("parameter_size"))),
            quantization: details.and_then(|d| text(d.get("quantization_level"))),
            modified_at: text(entry.get("modified_at")),
            digest: text(entry.get("digest")),
            format: details.and_then(|d| text(d.get("format"))),
            purpose: None,
        }
    })
}

/// Parses `/api/ps`: `{"models": [{"name", "size", "size_vram", "expires_at",
/// …}]}`. Entries without a `name` are skipped and listed in
/// [`Listing::skipped`].
pub fn parse_ps(body: &[u8]) -> Result<Listing<LoadedModel>, ParseError> {
    parse_models(body, |entry, name| LoadedModel {
        name,
        size_bytes: number(entry.get("size")),
        vram_bytes: number(entry.get("size_vram")),
        expires_at: text(entry.get("expires_at")),
    })
}

/// The `models` list shared by `/api/tags` and `/api/ps`; `map` builds one
/// entry from its object and its name.
fn parse_models<T>(
    body: &[u8],
    map: impl Fn(&Map<String, Value>, String) -> T,
) -> Result<Listing<T>, ParseError> {
    let value: Value = from_json(body)?;
    let Value::Object(object) = value else {
        return Err(ParseError::Shape(format!(
            "answered {} instead of a JSON object",
            json_kind(&value)
        )));
    };
    let entries = match object.get("models") {
        Some(Value::Array(entries)) => entries.as_slice(),
        // Go encodes an empty (nil) slice as null.
        Some(Value::Null) => &[],
        Some(other) => {
            return Err(ParseError::Shape(format!(
                "answered a \"models\" that is {} instead of a list",
                json_kind(other)
            )));
        }
        None => {
            return Err(ParseError::Shape(
                "answered a JSON object without a \"models\" list".into(),
            ));
        }
    };
    let mut listing = Listing {
        items: Vec::with_capacity(entries.len()),
        skipped: Vec::new(),
    };
    for (i, entry) in entries.iter().enumerate() {
        let position = i + 1;
        let Value::Object(entry) = entry else {
            listing.skipped.push(format!(
                "skipped entry {position}: {} instead of an object",
                json_kind(entry)
            ));
            continue;
        };
        match text(entry.get("name")) {
            Some(name) => listing.items.push(map(entry, name)),
            None => listing
                .skipped
                .push(format!("skipped entry {position}: it has no \"name\"")),
        }
    }
    Ok(listing)
}

fn from_json(body: &[u8]) -> Result<Value, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::InvalidJson("the body is empty".into()));
    }
    serde_json::from_slice(body).map_err(|e| ParseError::InvalidJson(e.to_string()))
}

/// A non-empty string field.
fn text(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A byte count; 0 when missing or not a non-negative number.
fn number(value: Option<&Value>) -> u64 {
    match value {
        Some(Value::Number(n)) => n.as_u64().unwrap_or_else(|| {
            // A float (7.3e9) still says how big; a negative says nothing.
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map_or(0, |f| f as u64)
        }),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /api/version` response, verbatim from docs/api.md.
    const DOC_VERSION: &str = include_str!("../../tests/fixtures/ollama/version.json");

    /// `GET /api/tags` response, verbatim from docs/api.md.
    const DOC_TAGS: &str = include_str!("../../tests/fixtures/ollama/tags.json");

    /// The older `GET /api/tags` example of docs/api.md (`families: null`).
    const DOC_TAGS_OLD: &str = r#"{
  "models": [
    {
      "name": "codellama:13b",
      "modified_at": "2023-11-04T14:56:49.277302595-07:00",
      "size": 7365960935,
      "digest": "9f438cb9cd581fc025612d27f7c1a6669ff83a8bb0ed86c94fcf4c5440555697",
      "details": {
        "format": "gguf",
        "family": "llama",
        "families": null,
        "parameter_size": "13B",
        "quantization_level": "Q4_0"
      }
    }
  ]
}"#;

    /// `GET /api/ps` response, verbatim from docs/api.md.
    const DOC_PS: &str = include_str!("../../tests/fixtures/ollama/ps.json");

    #[test]
    fn documented_version() {
        assert_eq!(
            parse_version(DOC_VERSION.as_bytes()),
            Ok("0.5.1".to_owned())
        );
    }

    #[test]
    fn documented_tags() {
        let listing = parse_tags(DOC_TAGS.as_bytes()).unwrap();
        assert!(listing.skipped.is_empty());
        assert_eq!(
            listing.items,
            vec![
                OllamaModel {
                    name: "deepseek-r1:latest".into(),
                    size_bytes: 4_683_075_271,
                    family: Some("qwen2".into()),
                    parameter_size: Some("7.6B".into()),
                    quantization: Some("Q4_K_M".into()),
                    modified_at: Some("2025-05-10T08:06:48.639712648-07:00".into()),
                    digest: Some(
                        "0a8c266910232fd3291e71e5ba1e058cc5af9d411192cf88b6d30e92b6e73163".into()
                    ),
                    format: Some("gguf".into()),
                    purpose: None,
                },
                OllamaModel {
                    name: "llama3.2:latest".into(),
                    size_bytes: 2_019_393_189,
                    family: Some("llama".into()),
                    parameter_size: Some("3.2B".into()),
                    quantization: Some("Q4_K_M".into()),
                    modified_at: Some("2025-05-04T17:37:44.706015396-07:00".into()),
                    digest: Some(
                        "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72".into()
                    ),
                    format: Some("gguf".into()),
                    purpose: None,
                },
            ]
        );
    }

    #[test]
    fn older_documented_tags() {
        let listing = parse_tags(DOC_TAGS_OLD.as_bytes()).unwrap();
        assert_eq!(listing.items.len(), 1);
        assert_eq!(listing.items[0].name, "codellama:13b");
        assert_eq!(listing.items[0].size_bytes, 7_365_960_935);
        assert_eq!(listing.items[0].parameter_size.as_deref(), Some("13B"));
        assert_eq!(listing.items[0].quantization.as_deref(), Some("Q4_0"));
    }

    #[test]
    fn documented_ps() {
        let listing = parse_ps(DOC_PS.as_bytes()).unwrap();
        assert!(listing.skipped.is_empty());
        assert_eq!(
            listing.items,
            vec![LoadedModel {
                name: "mistral:latest".into(),
                size_bytes: 5_137_025_024,
                vram_bytes: 5_137_025_024,
                expires_at: Some("2024-06-04T14:38:31.83753-07:00".into()),
            }]
        );
    }

    #[test]
    fn empty_and_null_model_lists_are_empty() {
        assert!(parse_tags(br#"{"models":[]}"#).unwrap().items.is_empty());
        assert!(parse_ps(br#"{"models":null}"#).unwrap().items.is_empty());
    }

    #[test]
    fn missing_optional_fields_are_tolerated() {
        let listing = parse_tags(br#"{"models":[{"name":"tiny","extra":{"x":1}}]}"#).unwrap();
        assert_eq!(
            listing.items,
            vec![OllamaModel {
                name: "tiny".into(),
                ..OllamaModel::default()
            }]
        );
        let listing = parse_ps(br#"{"models":[{"name":"tiny","size":"big"}]}"#).unwrap();
        assert_eq!(listing.items[0].size_bytes, 0);
        assert_eq!(listing.items[0].vram_bytes, 0);
        assert_eq!(listing.items[0].expires_at, None);
    }

    #[test]
    fn entries_without_name_are_skipped_and_said() {
        let listing =
            parse_tags(br#"{"models":[{"name":"a"},{"model":"b","size":1},7,{"name":"c"}]}"#)
                .unwrap();
        let names: Vec<_> = listing.items.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(
            listing.skipped,
            [
                "skipped entry 2: it has no \"name\"",
                "skipped entry 3: a number instead of an object"
            ]
        );
    }

    #[test]
    fn truncated_json_names_line_and_column() {
        let half = &DOC_TAGS.as_bytes()[..120];
        let Err(ParseError::InvalidJson(detail)) = parse_tags(half) else {
            panic!("half a document must be invalid JSON");
        };
        assert!(detail.starts_with("EOF while parsing"), "{detail}");
        assert!(detail.contains("line "), "{detail}");
        assert!(detail.contains("column "), "{detail}");
    }

    #[test]
    fn wrong_shapes_are_named() {
        assert_eq!(
            parse_version(br#"{"v":"1"}"#),
            Err(ParseError::Shape(
                "answered a JSON object without a \"version\"".into()
            ))
        );
        assert_eq!(
            parse_version(br#"{"version":5}"#),
            Err(ParseError::Shape(
                "answered a \"version\" that is a number instead of a string".into()
            ))
        );
        assert_eq!(
            parse_version(b"[]"),
            Err(ParseError::Shape(
                "answered a list instead of a JSON object".into()
            ))
        );
        assert_eq!(
            parse_tags(br#"{"data":[]}"#),
            Err(ParseError::Shape(
                "answered a JSON object without a \"models\" list".into()
            ))
        );
        assert_eq!(
            parse_ps(b""),
            Err(ParseError::InvalidJson("the body is empty".into()))
        );
    }

    #[test]
    fn html_is_recognised_by_type_or_by_body() {
        assert!(is_html(Some("text/html; charset=utf-8"), b"{}"));
        assert!(is_html(None, b"  <!DOCTYPE html><html>"));
        assert!(is_html(Some("text/plain"), b"<HTML><body>"));
        assert!(!is_html(Some("application/json"), br#"{"version":"1"}"#));
    }

    #[test]
    fn status_problem_quotes_ollama_error() {
        let problem = judge(
            500,
            Some("application/json; charset=utf-8"),
            Ok(br#"{"error":"llama runner process has terminated"}"#.to_vec()),
        )
        .unwrap_err();
        let base = Url::parse("http://127.0.0.1:11434").unwrap();
        assert_eq!(
            problem.describe("/api/ps", &base, Duration::from_millis(3000)),
            "/api/ps answered HTTP 500 Internal Server Error: llama runner process has terminated"
        );
    }
}
