//! Errors in the client's own API shape, as a whole body or mid-stream.
//!
//! A client of the proxy is an OpenAI SDK, an Ollama client or an Anthropic
//! SDK; each reads errors only in its own shape, and the agent decides whether
//! to fall back to its next model from the status and the text (see
//! `shared/interop/clawdbot.md`). So every error the proxy makes itself goes
//! through here:
//!
//! | shape | body |
//! |---|---|
//! | OpenAI | `{"error":{"message","type","param":null,"code"}}` |
//! | Ollama | `{"error":"..."}` |
//! | Anthropic | `{"type":"error","error":{"type","message"}}` |
//!
//! Once a stream has begun the status line is gone, so a failure after the
//! first byte is told with [`stream_error_frame`] in the stream's own framing,
//! and the client never mistakes a cut stream for a finished one.
//!
//! Not for: errors the backend sent itself; those pass through untouched.

use std::borrow::Cow;

/// The API a client speaks, which decides how its errors must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiShape {
    /// OpenAI-compatible `/v1/chat/completions`, `/v1/completions`,
    /// `/v1/embeddings`, `/v1/models` (what a legacy Clawdbot speaks).
    OpenAi,
    /// Ollama-native `/api/*`.
    Ollama,
    /// Anthropic `/v1/messages`.
    Anthropic,
}

/// What went wrong, which decides the error's type in each shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is unusable: malformed JSON, no `model`, a wrong field.
    BadRequest,
    /// No machine in the fleet has the model asked for.
    ModelNotFound,
    /// The request body is over the proxy's size limit.
    PayloadTooLarge,
    /// No backend can serve the request now (all down, open circuits, all
    /// failed before the first byte). Always status 503, with the word
    /// "overloaded" and "retry after 120 seconds" in the message (see
    /// [`RETRY_AFTER_SECS`]), sent with `Retry-After` and
    /// `x-should-retry: false`: the answer that makes both OpenClaw and a
    /// legacy Clawdbot move to their next model rather than wait.
    Overloaded,
    /// A backend failed in a way the proxy passes on (bad gateway, timeout).
    Upstream,
    /// The proxy refuses this request (e.g. model management from a peer).
    Forbidden,
    /// No credential to send upstream (no API key anywhere).
    Unauthenticated,
}

impl ErrorKind {
    /// The HTTP status this kind is sent with when the caller has none better.
    pub fn default_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::ModelNotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Overloaded => 503,
            ErrorKind::Upstream => 502,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unauthenticated => 401,
        }
    }

    /// OpenAI's error `type`. OpenAI itself answers an unknown model with
    /// `invalid_request_error` and code `model_not_found`, overload and
    /// internal failures with `server_error`, a refusal (403) with
    /// `request_forbidden`. (Ollama's OpenAI layer says `not_found_error` and
    /// `api_error` instead; the SDKs dispatch on the status, not the type.)
    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::ModelNotFound
            | ErrorKind::PayloadTooLarge
            | ErrorKind::Unauthenticated => "invalid_request_error",
            ErrorKind::Overloaded | ErrorKind::Upstream => "server_error",
            ErrorKind::Forbidden => "request_forbidden",
        }
    }

    /// OpenAI's error `code`, only where OpenAI has a documented one.
    fn openai_code(self) -> Option<&'static str> {
        match self {
            ErrorKind::ModelNotFound => Some("model_not_found"),
            _ => None,
        }
    }

    /// Anthropic's error `type`, from its documented list.
    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "invalid_request_error",
            ErrorKind::ModelNotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Upstream => "api_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::Unauthenticated => "authentication_error",
        }
    }
}

/// An error response in the client's shape: the status to send and the JSON
/// body (`application/json`).
///
/// `status` is the caller's choice (e.g. the backend's own 4xx or 5xx); one
/// outside 400–599 is replaced by the kind's [`ErrorKind::default_status`].
/// [`ErrorKind::Overloaded`] is always 503, and its message is prefixed with
/// `overloaded: ` unless it already says "overloaded".
pub fn error_body(shape: ApiShape, status: u16, kind: ErrorKind, message: &str) -> (u16, Vec<u8>) {
    let status = match kind {
        ErrorKind::Overloaded => 503,
        _ if (400..=599).contains(&status) => status,
        _ => kind.default_status(),
    };
    let message = match kind {
        ErrorKind::Overloaded => overloaded_message(message),
        _ => Cow::Borrowed(message),
    };
    let mut body = Vec::with_capacity(message.len() + 96);
    write_error(
        &mut body,
        shape,
        kind.openai_type(),
        kind.openai_code(),
        kind.anthropic_type(),
        &message,
    );
    (status, body)
}

/// How long a client is told to wait before asking the fleet again for a
/// model no machine can serve now.
///
/// OpenClaw 2026.9 retries a 503 on the same model for up to 90 s (about 8
/// requests) before it tries its next model, unless the error text asks for
/// a longer wait (`retry after N seconds`): then it moves on after one
/// request. It reads the hint from the body only (`Retry-After` is sent too,
/// for other clients). A legacy Clawdbot falls back on the word
/// "overloaded" (`shared/interop/openclaw.md`, `clawdbot.md`).
pub const RETRY_AFTER_SECS: u64 = 120;

/// A message with the words both agents' fallback looks for: "overloaded"
/// (legacy Clawdbot) and a retry hint longer than OpenClaw's retry window.
fn overloaded_message(message: &str) -> Cow<'_, str> {
    let lower = message.to_ascii_lowercase();
    let mut out = Cow::Borrowed(message);
    if !lower.contains("overloaded") {
        out = Cow::Owned(if message.is_empty() {
            "overloaded".to_owned()
        } else {
            format!("overloaded: {message}")
        });
    }
    if !lower.contains("retry after") {
        out = Cow::Owned(format!("{out}; retry after {RETRY_AFTER_SECS} seconds"));
    }
    out
}

/// An error to append to a stream that already began, in the stream's own
/// framing, so the client sees a failure rather than a silently cut answer.
/// Send it, then end the body.
///
/// `shape` decides the JSON, `wire_is_sse` the framing (SSE event or NDJSON
/// line); the real streams are OpenAI and Anthropic over SSE and Ollama over
/// NDJSON:
///
/// - Ollama: `{"error":"..."}\n`, as Ollama itself reports a mid-stream error.
/// - OpenAI: `data: {"error":{"message":...,"type":"server_error",...}}\n\n`
///   and **no** `data: [DONE]` after it. Both official SDKs (openai-python
///   `_streaming.py`, openai-node `core/streaming.ts`) raise an `APIError`
///   carrying the message on a data event that has an `error` member, before
///   reading on, so `[DONE]` would never be read by them. A hand-written
///   client that ignores `error` objects, though, takes `[DONE]` as "the
///   answer is whole"; leaving it out keeps the cut visible to it, as it is
///   to the proxy's own [`crate::proxy::usage::UsageTap`] (`complete: false`).
/// - Anthropic: `event: error\ndata: {"type":"error","error":{"type":"api_error","message":...}}\n\n`,
///   the error event Anthropic documents for streams; its SDKs raise on it.
pub fn stream_error_frame(shape: ApiShape, wire_is_sse: bool, message: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(message.len() + 128);
    if wire_is_sse {
        if shape == ApiShape::Anthropic {
            frame.extend_from_slice(b"event: error\n");
        }
        frame.extend_from_slice(b"data: ");
    }
    write_error(
        &mut frame,
        shape,
        ErrorKind::Upstream.openai_type(),
        None,
        ErrorKind::Upstream.anthropic_type(),
        message,
    );
    // The JSON has no raw line breaks (they are escaped), so it is one line.
    frame.extend_from_slice(if wire_is_sse { b"\n\n" } else { b"\n" });
    frame
}

fn write_error(
    out: &mut Vec<u8>,
    shape: ApiShape,
    openai_type: &str,
    openai_code: Option<&str>,
    anthropic_type: &str,
    message: &str,
) {
    match shape {
        ApiShape::OpenAi => {
            out.extend_from_slice(b"{\"error\":{\"message\":");
            push_json_string(out, message);
            out.extend_from_slice(b",\"type\":");
            push_json_string(out, openai_type);
            out.extend_from_slice(b",\"param\":null,\"code\":");
            match openai_code {
                Some(code) => push_json_string(out, code),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b"}}");
        }
        ApiShape::Ollama => {
            out.extend_from_slice(b"{\"error\":");
            push_json_string(out, message);
            out.push(b'}');
        }
        ApiShape::Anthropic => {
            out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
            push_json_string(out, anthropic_type);
            out.extend_from_slice(b",\"message\":");
            push_json_string(out, message);
            out.extend_from_slice(b"}}");
        }
    }
}

/// Appends `text` as a JSON string. Written here rather than through serde so
/// building an error cannot fail: quotes, backslashes and every control
/// character are escaped (so a frame stays on one line), as are U+2028 and
/// U+2029, which some JavaScript parsers take for line ends; everything else
/// is UTF-8 as is.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut plain_from = 0;
    for (at, c) in text.char_indices() {
        let escaped: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            c if c < ' ' || c == '\u{7f}' => None,
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[plain_from..at]);
        match escaped {
            Some(escape) => out.extend_from_slice(escape),
            None => {
                let b = c as u8; // below 0x80 here
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        plain_from = at + c.len_utf8();
    }
    out.extend_from_slice(&text.as_bytes()[plain_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::proxy::usage::{UsageTap, Wire};

    fn parse(body: &[u8]) -> Value {
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
    }

    #[test]
    fn whole_bodies_in_each_shape() {
        use ApiShape::*;
        use ErrorKind::*;
        // shape, status asked, kind, message -> status sent, body
        let table: Vec<(ApiShape, u16, ErrorKind, &str, u16, Value)> = vec![
            (
                OpenAi,
                400,
                BadRequest,
                "body is not JSON",
                400,
                json!({"error": {
                "message": "body is not JSON", "type": "invalid_request_error", "param": null, "code": null}}),
            ),
            (
                OpenAi,
                404,
                ModelNotFound,
                "no model x",
                404,
                json!({"error": {
                "message": "no model x", "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
            ),
            (
                OpenAi,
                413,
                PayloadTooLarge,
                "too big",
                413,
                json!({"error": {
                "message": "too big", "type": "invalid_request_error", "param": null, "code": null}}),
            ),
            (
                OpenAi,
                503,
                Overloaded,
                "all backends are overloaded",
                503,
                json!({"error": {
                "message": "all backends are overloaded; retry after 120 seconds", "type": "server_error", "param": null, "code": null}}),
            ),
            (
                OpenAi,
                502,
                Upstream,
                "macmini reset the connection",
                502,
                json!({"error": {
                "message": "macmini reset the connection", "type": "server_error", "param": null, "code": null}}),
            ),
            (
                OpenAi,
                403,
                Forbidden,
                "not from a peer",
                403,
                json!({"error": {
                "message": "not from a peer", "type": "request_forbidden", "param": null, "code": null}}),
            ),
            (
                Ollama,
                400,
                BadRequest,
                "missing model",
                400,
                json!({"error": "missing model"}),
            ),
            (
                Ollama,
                404,
                ModelNotFound,
                "model \"x\" not found",
                404,
                json!({"error": "model \"x\" not found"}),
            ),
            (
                Ollama,
                413,
                PayloadTooLarge,
                "too big",
                413,
                json!({"error": "too big"}),
            ),
            (
                Ollama,
                503,
                Overloaded,
                "server overloaded",
                503,
                json!({"error": "server overloaded; retry after 120 seconds"}),
            ),
            (
                Ollama,
                502,
                Upstream,
                "bad gateway",
                502,
                json!({"error": "bad gateway"}),
            ),
            (Ollama, 403, Forbidden, "no", 403, json!({"error": "no"})),
            (
                Anthropic,
                400,
                BadRequest,
                "bad",
                400,
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}),
            ),
            (
                Anthropic,
                404,
                ModelNotFound,
                "no such model",
                404,
                json!({"type": "error", "error": {"type": "not_found_error", "message": "no such model"}}),
            ),
            (
                Anthropic,
                413,
                PayloadTooLarge,
                "too big",
                413,
                json!({"type": "error", "error": {"type": "request_too_large", "message": "too big"}}),
            ),
            (
                Anthropic,
                503,
                Overloaded,
                "Overloaded",
                503,
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded; retry after 120 seconds"}}),
            ),
            (
                Anthropic,
                500,
                Upstream,
                "internal",
                500,
                json!({"type": "error", "error": {"type": "api_error", "message": "internal"}}),
            ),
            (
                Anthropic,
                403,
                Forbidden,
                "no",
                403,
                json!({"type": "error", "error": {"type": "permission_error", "message": "no"}}),
            ),
            (
                Anthropic,
                401,
                Unauthenticated,
                "no key",
                401,
                json!({"type": "error", "error": {"type": "authentication_error", "message": "no key"}}),
            ),
            // Statuses: a usable one is kept, a nonsense one replaced, and
            // overloaded is always 503.
            (
                OpenAi,
                504,
                Upstream,
                "timeout",
                504,
                json!({"error": {
                "message": "timeout", "type": "server_error", "param": null, "code": null}}),
            ),
            (Ollama, 200, BadRequest, "bad", 400, json!({"error": "bad"})),
            (Ollama, 0, Upstream, "bad", 502, json!({"error": "bad"})),
            (
                Ollama,
                700,
                ModelNotFound,
                "none",
                404,
                json!({"error": "none"}),
            ),
            (
                Anthropic,
                529,
                Overloaded,
                "busy, overloaded",
                503,
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy, overloaded; retry after 120 seconds"}}),
            ),
            (
                OpenAi,
                500,
                Overloaded,
                "no backend could serve gpt-oss:20b; tried macmini (refused)",
                503,
                json!({"error": {
                "message": "overloaded: no backend could serve gpt-oss:20b; tried macmini (refused); retry after 120 seconds",
                "type": "server_error", "param": null, "code": null}}),
            ),
            (
                Ollama,
                503,
                Overloaded,
                "",
                503,
                json!({"error": "overloaded; retry after 120 seconds"}),
            ),
        ];
        for (shape, status, kind, message, want_status, want_body) in table {
            let (sent, body) = error_body(shape, status, kind, message);
            assert_eq!(sent, want_status, "{shape:?} {kind:?} {status}");
            assert_eq!(parse(&body), want_body, "{shape:?} {kind:?}");
        }
    }

    #[test]
    fn every_kind_has_its_default_status() {
        use ErrorKind::*;
        for (kind, status) in [
            (BadRequest, 400),
            (ModelNotFound, 404),
            (PayloadTooLarge, 413),
            (Overloaded, 503),
            (Upstream, 502),
            (Forbidden, 403),
            (Unauthenticated, 401),
        ] {
            assert_eq!(kind.default_status(), status);
            assert_eq!(error_body(ApiShape::Ollama, 0, kind, "x").0, status);
        }
    }

    #[test]
    fn overloaded_always_says_so() {
        for shape in [ApiShape::OpenAi, ApiShape::Ollama, ApiShape::Anthropic] {
            for message in [
                "",
                "nothing could serve it",
                "OVERLOADED",
                "Overloaded: all down",
                "overloaded; retry after 120 seconds",
            ] {
                let (status, body) = error_body(shape, 500, ErrorKind::Overloaded, message);
                assert_eq!(status, 503);
                let text = String::from_utf8_lossy(&body).to_ascii_lowercase();
                assert!(text.contains("overloaded"), "{shape:?} {message:?}: {text}");
                assert_eq!(
                    text.matches("retry after 120 seconds").count(),
                    1,
                    "{shape:?} {message:?}: {text}"
                );
            }
        }
    }

    #[test]
    fn messages_are_escaped() {
        let messages = [
            "plain",
            "quote \" and backslash \\ and slash /",
            "line one\nline two\r\nthree\tfour",
            "control \u{0}\u{1}\u{8}\u{c}\u{1b}\u{1f}\u{7f}",
            "unicode é ü 日本語 🦀 \u{2028}\u{2029}",
            "{\"error\":\"nested\"}\n\ndata: [DONE]\n\n",
            "",
        ];
        for shape in [ApiShape::OpenAi, ApiShape::Ollama, ApiShape::Anthropic] {
            for message in messages {
                let (_, body) = error_body(shape, 400, ErrorKind::BadRequest, message);
                assert!(!body.contains(&b'\n') && !body.contains(&b'\r'), "{body:?}");
                let value = parse(&body);
                let got = match shape {
                    ApiShape::OpenAi => &value["error"]["message"],
                    ApiShape::Ollama => &value["error"],
                    ApiShape::Anthropic => &value["error"]["message"],
                };
                assert_eq!(got, message, "{shape:?}");
            }
        }
    }

    #[test]
    fn escaping_matches_the_json_spec_exactly() {
        let mut out = Vec::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}e\u{7f}é\u{2028}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#""a\"b\\c\nd\u0001e\u007fé\u2028""#
        );
    }

    #[test]
    fn stream_frames_exact_bytes() {
        let table: [(ApiShape, bool, &str, &str); 6] = [
            (
                ApiShape::Ollama,
                false,
                "backend went away",
                "{\"error\":\"backend went away\"}\n",
            ),
            (
                ApiShape::OpenAi,
                true,
                "backend went away",
                "data: {\"error\":{\"message\":\"backend went away\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
            ),
            (
                ApiShape::Anthropic,
                true,
                "backend went away",
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"backend went away\"}}\n\n",
            ),
            // The other framings, for completeness: shape decides the JSON,
            // the wire the framing.
            (ApiShape::Ollama, true, "x", "data: {\"error\":\"x\"}\n\n"),
            (
                ApiShape::OpenAi,
                false,
                "x",
                "{\"error\":{\"message\":\"x\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n",
            ),
            (
                ApiShape::Anthropic,
                false,
                "x",
                "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n",
            ),
        ];
        for (shape, sse, message, want) in table {
            let frame = stream_error_frame(shape, sse, message);
            assert_eq!(String::from_utf8_lossy(&frame), want, "{shape:?} sse={sse}");
        }
    }

    /// The proxy's own tap reads each frame as the error it is, with the
    /// message intact, and as a cut stream (no terminal marker), which is
    /// how the clients' parsers see it too.
    #[test]
    fn stream_frames_read_back_as_errors() {
        let message = "upstream \"macmini\" closed\nthe connection: 日本 🦀";
        let table = [
            (ApiShape::Ollama, Wire::OllamaNdjson, message.to_owned()),
            (
                ApiShape::OpenAi,
                Wire::OpenAiSse,
                format!("server_error: {message}"),
            ),
            (
                ApiShape::Anthropic,
                Wire::AnthropicSse,
                format!("api_error: {message}"),
            ),
        ];
        for (shape, wire, want) in table {
            let frame = stream_error_frame(shape, wire.is_sse(), message);
            let mut tap = UsageTap::new(wire);
            tap.feed(b"");
            tap.feed(&frame);
            let report = tap.finish();
            assert_eq!(report.error.as_deref(), Some(want.as_str()), "{shape:?}");
            assert!(!report.complete, "{shape:?}");
            assert_eq!(report.unreadable, 0, "{shape:?}");
            assert!(!frame.windows(6).any(|w| w == b"[DONE]"), "{shape:?}");
        }
    }
}
