//! Token usage, read from responses as their bytes pass through the proxy.
//!
//! [`UsageTap`] watches one response body go by, chunk by chunk, and reports
//! what the backend said it used: Ollama's final `done: true` object, the
//! OpenAI usage chunk, Anthropic's `message_start` and cumulative
//! `message_delta` usage. It also notes whether the body reached its terminal
//! marker, any error the backend sent mid-stream, the stop reason and the
//! model. [`SseUsageFilter`] removes the OpenAI usage chunk the proxy asked
//! for on the client's behalf ([`ask_for_usage`]) so the client sees exactly
//! the stream it asked for.
//!
//! Both sit in the streaming hot path, so they are pure (no I/O, no clock),
//! copy a line only when it arrives split across chunks, parse JSON into
//! borrowing structs that skip what they do not need, and never hold more
//! than one line or event ([`DEFAULT_LINE_CAP`]): a backend is untrusted
//! input. Whole (non-streamed) JSON bodies are scanned, not buffered, so a
//! 50 MB embeddings answer costs a few kilobytes.
//!
//! Not for: choosing the wire (the caller knows the endpoint and the response
//! content type), pricing (see `cost`), or forwarding bytes (the tap only
//! reads; the filter only drops one event).

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use crate::usage::Usage;

/// Longest line (NDJSON) or event (SSE) the tap reads, and longest incomplete
/// event the filter holds back: 1 MiB. Real lines are a few hundred bytes; a
/// longer one is skipped (tap) or passed through unread (filter), never
/// buffered.
pub const DEFAULT_LINE_CAP: usize = 1024 * 1024;

/// Longest JSON value the whole-body scanner keeps to read (a `usage`
/// object, a model name, an error). Usage objects are a few hundred bytes.
const MEMBER_CAP: usize = 64 * 1024;

/// Longest text kept from the backend for `model`, `done_reason` and `error`:
/// they end up in the ledger and in notifications.
const TEXT_CAP: usize = 1024;

/// A buffer that grew past this for one long line is shrunk back after it, so
/// an idle stream does not keep a megabyte.
const KEEP_CAPACITY: usize = 64 * 1024;

/// How a response body is framed: the streamed and whole-body form of each API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// Ollama `/api/chat` and `/api/generate` streamed: NDJSON, one object a
    /// line, the last with `done: true`.
    OllamaNdjson,
    /// An Ollama answer as one JSON object: `"stream": false`, `/api/embed`,
    /// `/api/embeddings`.
    OllamaJson,
    /// OpenAI-compatible streaming (`/v1/chat/completions`,
    /// `/v1/completions`): SSE `data:` events ending with `data: [DONE]`.
    OpenAiSse,
    /// An OpenAI-compatible answer as one JSON object (not streamed,
    /// `/v1/embeddings`).
    OpenAiJson,
    /// Anthropic `/v1/messages` streamed: named SSE events ending with
    /// `message_stop`.
    AnthropicSse,
    /// An Anthropic message as one JSON object.
    AnthropicJson,
}

impl Wire {
    /// Whether the body is server-sent events (`text/event-stream`).
    pub fn is_sse(self) -> bool {
        matches!(self, Wire::OpenAiSse | Wire::AnthropicSse)
    }

    /// Whether the body is one JSON object rather than a stream.
    pub fn is_whole_body(self) -> bool {
        matches!(
            self,
            Wire::OllamaJson | Wire::OpenAiJson | Wire::AnthropicJson
        )
    }
}

/// What a [`UsageTap`] read from one response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapReport {
    /// Tokens, when the backend reported billable usage. `None` for Ollama's
    /// model load/unload answers and for bodies that never carried usage.
    pub usage: Option<Usage>,
    /// The body reached its normal end: Ollama `done: true`, OpenAI
    /// `data: [DONE]`, Anthropic `message_stop`, or for a whole JSON body a
    /// complete object that is not an error. `false` means truncated (or an
    /// error body).
    pub complete: bool,
    /// The first error the backend sent: an Ollama `{"error": ...}` line, an
    /// OpenAI `{"error": {...}}` event or body, an Anthropic `error` event or
    /// error body. As `type: message` when the error has both.
    pub error: Option<String>,
    /// Why generation stopped, in the backend's words: Ollama `done_reason`,
    /// OpenAI `finish_reason` (first choice to finish), Anthropic
    /// `stop_reason`.
    pub done_reason: Option<String>,
    /// The model the backend says answered (first one seen).
    pub model: Option<String>,
    /// Lines or events longer than the cap, skipped unread.
    pub oversized: u32,
    /// Lines, events or bodies that were not the JSON the wire promises.
    pub unreadable: u32,
}

/// Reads usage from a response body while its bytes pass through.
///
/// Feed it every chunk in order, split anywhere (mid-line, mid-UTF-8), then
/// call [`UsageTap::finish`]. It never holds more than one line or event
/// (the cap) plus a few small values.
#[derive(Debug)]
pub struct UsageTap {
    wire: Wire,
    cap: usize,
    lines: LineSplitter,
    event: SseEvent,
    json: JsonScan,
    acc: Acc,
}

impl UsageTap {
    /// A tap for one body of this wire, with the default cap.
    pub fn new(wire: Wire) -> Self {
        Self::with_cap(wire, DEFAULT_LINE_CAP)
    }

    /// A tap whose longest readable line or event is `cap` bytes (at least 64).
    pub fn with_cap(wire: Wire, cap: usize) -> Self {
        let cap = cap.max(64);
        UsageTap {
            wire,
            cap,
            lines: LineSplitter::new(cap, wire.is_sse()),
            event: SseEvent::default(),
            json: JsonScan::default(),
            acc: Acc::default(),
        }
    }

    /// The wire this tap reads.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Reads the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        let wire = self.wire;
        let cap = self.cap;
        let acc = &mut self.acc;
        match wire {
            Wire::OllamaNdjson => self.lines.feed(chunk, |line| ollama_line(acc, line)),
            Wire::OpenAiSse | Wire::AnthropicSse => {
                let event = &mut self.event;
                self.lines
                    .feed(chunk, |line| sse_line(wire, cap, event, acc, line));
            }
            Wire::OllamaJson | Wire::OpenAiJson | Wire::AnthropicJson => {
                self.json.feed(wire, chunk, |member, value| {
                    json_member(wire, acc, member, value)
                });
            }
        }
    }

    /// Ends the body and returns what was read; the tap is then fresh again.
    ///
    /// An unterminated last NDJSON line is still read (Ollama always ends its
    /// lines, but a cut can land anywhere and a partial line is simply
    /// unreadable). An SSE event whose closing blank line is missing at the
    /// very end is read too: its lines arrived whole, and a backend that ends
    /// `data: [DONE]\n` without the blank line did finish. A partial last SSE
    /// line is not read.
    pub fn finish(&mut self) -> TapReport {
        let wire = self.wire;
        let acc = &mut self.acc;
        match wire {
            Wire::OllamaNdjson => self.lines.finish(|line| ollama_line(acc, line)),
            Wire::OpenAiSse | Wire::AnthropicSse => {
                self.lines.finish(|_| {});
                dispatch(wire, &self.event, acc);
            }
            Wire::OllamaJson | Wire::OpenAiJson | Wire::AnthropicJson => {
                finish_whole_body(wire, &self.json, acc)
            }
        }
        let report = std::mem::take(&mut self.acc.report);
        *self = UsageTap::with_cap(self.wire, self.cap);
        report
    }

    /// Whether a stream has reached its terminal frame so far: Ollama's
    /// `done: true` object, OpenAI's `data: [DONE]`, Anthropic's
    /// `message_stop`. Always `false` for a whole JSON body, which ends with
    /// the body ([`finish`](Self::finish) tells).
    pub fn reached_end(&self) -> bool {
        !self.wire.is_whole_body() && self.acc.report.complete
    }

    /// Bytes this tap holds in buffers right now (for the bounds tests).
    #[cfg(test)]
    fn held_capacity(&self) -> usize {
        self.lines.partial.capacity() + self.event.data.capacity() + self.json.value.capacity()
    }
}

// ---------------------------------------------------------------------------
// What has been read so far.

#[derive(Debug, Default)]
struct Acc {
    report: TapReport,
    /// Whole Ollama body: its `done`, counts and `done_reason` arrive in any
    /// order, so the load/unload rule is applied at the end.
    done: Option<bool>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    /// Whole Anthropic body with `"type": "error"`.
    type_is_error: bool,
}

impl Acc {
    fn set_model(&mut self, model: &str) {
        if self.report.model.is_none() && !model.is_empty() {
            self.report.model = Some(clip(model));
        }
    }

    fn set_done_reason(&mut self, reason: &str) {
        if self.report.done_reason.as_deref() != Some(reason) {
            self.report.done_reason = Some(clip(reason));
        }
    }

    /// Keeps the first error: later ones are usually consequences of it.
    fn set_error(&mut self, error: &str) {
        if self.report.error.is_none() {
            self.report.error = Some(clip(error));
        }
    }

    /// Ollama's last object (`done: true`): its counts are the usage unless
    /// it only loaded or unloaded the model.
    fn ollama_final(&mut self, done_reason: Option<&str>, prompt: Option<u64>, eval: Option<u64>) {
        self.report.complete = true;
        if let Some(reason) = done_reason {
            self.set_done_reason(reason);
        }
        let load_or_unload = matches!(done_reason, Some("load" | "unload"));
        self.report.usage = match (prompt, eval) {
            _ if load_or_unload => None,
            (None, None) => None,
            // Ollama omits a zero `prompt_eval_count` (prompt fully cached).
            (prompt, eval) => Some(Usage {
                input_tokens: prompt.unwrap_or(0),
                output_tokens: eval.unwrap_or(0),
                ..Usage::default()
            }),
        };
    }
}

/// At most [`TEXT_CAP`] bytes of `text`, cut at a character boundary.
fn clip(text: &str) -> String {
    if text.len() <= TEXT_CAP {
        return text.to_owned();
    }
    let mut end = TEXT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

// ---------------------------------------------------------------------------
// The JSON shapes read, as borrowing structs: serde skips unknown fields
// (message content, tool calls, logprobs) without allocating.

/// One Ollama object: a stream line or a whole body.
#[derive(Deserialize)]
struct OllamaObject<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    done: Option<bool>,
    #[serde(borrow)]
    done_reason: Option<Cow<'a, str>>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    error: Option<Value>,
}

/// One OpenAI chunk or body.
#[derive(Deserialize)]
struct OpenAiObject<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    choices: Option<Choices>,
    usage: Option<OpenAiUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u64>,
}

impl OpenAiUsage {
    fn to_usage(&self) -> Option<Usage> {
        if self.prompt_tokens.is_none() && self.completion_tokens.is_none() {
            return None;
        }
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Some(Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0).saturating_sub(cached),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        })
    }
}

/// The `choices` array, summarised without keeping it: how many, and the
/// first `finish_reason` that is not null.
#[derive(Default)]
struct Choices {
    len: usize,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceLite {
    // Null in every chunk but one, so this allocates once per stream.
    finish_reason: Option<String>,
}

impl<'de> Deserialize<'de> for Choices {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoicesVisitor;
        impl<'de> Visitor<'de> for ChoicesVisitor {
            type Value = Choices;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices, A::Error> {
                let mut choices = Choices::default();
                while let Some(choice) = seq.next_element::<ChoiceLite>()? {
                    choices.len += 1;
                    if choices.finish_reason.is_none() {
                        choices.finish_reason = choice.finish_reason;
                    }
                }
                Ok(choices)
            }
        }
        deserializer.deserialize_seq(ChoicesVisitor)
    }
}

/// One Anthropic event's data, or a whole Anthropic body's members that
/// matter in a stream.
#[derive(Deserialize)]
struct AnthropicObject<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<AnthropicMessage<'a>>,
    #[serde(borrow)]
    delta: Option<AnthropicDelta<'a>>,
    usage: Option<AnthropicUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct AnthropicMessage<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Overwrites the counts this object carries. `message_delta` usage is
    /// cumulative: a count it carries replaces the earlier one, never adds.
    fn replace_into(&self, usage: &mut Usage) {
        if let Some(n) = self.input_tokens {
            usage.input_tokens = n;
        }
        if let Some(n) = self.output_tokens {
            usage.output_tokens = n;
        }
        if let Some(n) = self.cache_creation_input_tokens {
            usage.cache_write_tokens = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            usage.cache_read_tokens = n;
        }
    }
}

/// An `error` member in any of its shapes, as one line of text: Ollama's
/// string, OpenAI's `{message, type, code}`, Anthropic's `{type, message}`.
/// `None` for an empty string or `false`, which say "no error" (a null one
/// never gets here). Read as a `Value`: errors are rare and their shapes vary.
fn error_text(error: &Value) -> Option<String> {
    Some(match error {
        Value::Null | Value::Bool(false) => return None,
        Value::String(text) if text.is_empty() => return None,
        Value::String(text) => clip(text),
        Value::Object(fields) => {
            let field = |name| {
                fields
                    .get(name)
                    .and_then(Value::as_str)
                    .filter(|text| !text.is_empty())
            };
            match (field("type"), field("message")) {
                (Some(kind), Some(message)) => clip(&format!("{kind}: {message}")),
                (Some(text), None) | (None, Some(text)) => clip(text),
                (None, None) => "error".to_owned(),
            }
        }
        Value::Number(code) => format!("error {code}"),
        Value::Bool(true) | Value::Array(_) => "error".to_owned(),
    })
}

// ---------------------------------------------------------------------------
// Lines, split anywhere across chunks.

/// One line handed on by the [`LineSplitter`].
enum Line<'a> {
    /// A line, without its terminator.
    Text(&'a [u8]),
    /// A line longer than the cap began; its bytes are being dropped.
    Oversized,
}

/// Cuts chunks into lines, copying only a line that arrives in pieces.
#[derive(Debug)]
struct LineSplitter {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    cap: usize,
    /// Inside a line longer than the cap: dropping bytes until its end.
    skipping: bool,
    /// The last chunk ended with a CR that ended a line; an LF first in the
    /// next chunk is the rest of that CRLF, not an empty line.
    after_cr: bool,
    /// SSE ends lines at CR, LF or CRLF. NDJSON only at LF: a CR there is
    /// JSON whitespace.
    cr_ends_line: bool,
}

impl LineSplitter {
    fn new(cap: usize, cr_ends_line: bool) -> Self {
        LineSplitter {
            partial: Vec::new(),
            cap,
            skipping: false,
            after_cr: false,
            cr_ends_line,
        }
    }

    fn feed(&mut self, mut rest: &[u8], mut on_line: impl FnMut(Line<'_>)) {
        // An empty chunk must not clear `after_cr`.
        if rest.is_empty() {
            return;
        }
        if std::mem::take(&mut self.after_cr)
            && let [b'\n', tail @ ..] = rest
        {
            rest = tail;
        }
        while !rest.is_empty() {
            let end = if self.cr_ends_line {
                rest.iter().position(|&b| b == b'\n' || b == b'\r')
            } else {
                rest.iter().position(|&b| b == b'\n')
            };
            let Some(end) = end else {
                self.hold(rest, &mut on_line);
                return;
            };
            let (text, terminator) = (&rest[..end], rest[end]);
            rest = &rest[end + 1..];
            if terminator == b'\r' {
                match rest {
                    [b'\n', tail @ ..] => rest = tail,
                    [] => self.after_cr = true,
                    _ => {}
                }
            }
            self.complete(text, &mut on_line);
        }
    }

    /// Keeps the start of a line, unless that would pass the cap.
    fn hold(&mut self, part: &[u8], on_line: &mut impl FnMut(Line<'_>)) {
        if self.skipping {
            return;
        }
        if self.partial.len() + part.len() > self.cap {
            self.skipping = true;
            self.release();
            on_line(Line::Oversized);
        } else {
            extend_capped(&mut self.partial, part, self.cap);
        }
    }

    /// A line's end arrived: hands the line on, straight from the chunk when
    /// it arrived whole.
    fn complete(&mut self, text: &[u8], on_line: &mut impl FnMut(Line<'_>)) {
        if self.skipping {
            self.skipping = false;
        } else if self.partial.is_empty() {
            on_line(if text.len() > self.cap {
                Line::Oversized
            } else {
                Line::Text(text)
            });
        } else if self.partial.len() + text.len() > self.cap {
            self.release();
            on_line(Line::Oversized);
        } else {
            extend_capped(&mut self.partial, text, self.cap);
            on_line(Line::Text(&self.partial));
            self.release();
        }
    }

    /// The body ended: hands on an unterminated last line.
    fn finish(&mut self, mut on_line: impl FnMut(Line<'_>)) {
        if !self.skipping && !self.partial.is_empty() {
            on_line(Line::Text(&self.partial));
        }
        self.release();
        self.skipping = false;
        self.after_cr = false;
    }

    fn release(&mut self) {
        self.partial.clear();
        self.partial.shrink_to(KEEP_CAPACITY);
    }
}

/// Appends to a buffer that must stay within `cap`: grows by doubling as
/// usual, but never reserves past `cap` (a plain `Vec` could reserve twice
/// what it holds).
fn extend_capped(buf: &mut Vec<u8>, bytes: &[u8], cap: usize) {
    let need = buf.len() + bytes.len();
    if need > buf.capacity() {
        let target = need.max(buf.capacity() * 2).min(cap.max(need));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(bytes);
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

// ---------------------------------------------------------------------------
// Ollama NDJSON.

fn ollama_line(acc: &mut Acc, line: Line<'_>) {
    let text = match line {
        Line::Oversized => {
            acc.report.oversized += 1;
            return;
        }
        Line::Text(text) => text,
    };
    // Keep-alive and trailing blank lines carry nothing.
    if is_blank(text) {
        return;
    }
    let Ok(object) = serde_json::from_slice::<OllamaObject>(text) else {
        acc.report.unreadable += 1;
        return;
    };
    if let Some(model) = &object.model {
        acc.set_model(model);
    }
    if let Some(error) = object.error.as_ref().and_then(error_text) {
        acc.set_error(&error);
    }
    if object.done == Some(true) {
        acc.ollama_final(
            object.done_reason.as_deref(),
            object.prompt_eval_count,
            object.eval_count,
        );
    }
}

// ---------------------------------------------------------------------------
// Server-sent events (OpenAI, Anthropic).

/// SSE event names that matter, recognised once per event so data of events
/// that carry nothing for us (Anthropic's text deltas, pings) is not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum EventName {
    /// No `event:` field (OpenAI's chunks), or an empty one.
    #[default]
    Unnamed,
    Message,
    Error,
    MessageStart,
    MessageDelta,
    MessageStop,
    Ping,
    ContentBlock,
    Other,
}

impl EventName {
    fn parse(name: &[u8]) -> Self {
        match name {
            b"" => EventName::Unnamed,
            b"message" => EventName::Message,
            b"error" => EventName::Error,
            b"message_start" => EventName::MessageStart,
            b"message_delta" => EventName::MessageDelta,
            b"message_stop" => EventName::MessageStop,
            b"ping" => EventName::Ping,
            name if name.starts_with(b"content_block_") => EventName::ContentBlock,
            _ => EventName::Other,
        }
    }
}

/// The event being assembled from its lines.
#[derive(Debug, Default)]
struct SseEvent {
    name: EventName,
    /// The `data:` values joined by LF, as the SSE spec says; left empty for
    /// events whose data is not read.
    data: Vec<u8>,
    has_data: bool,
    /// The event passed the cap: it is skipped whole.
    oversized: bool,
}

impl SseEvent {
    fn reset(&mut self) {
        self.name = EventName::Unnamed;
        self.data.clear();
        self.data.shrink_to(KEEP_CAPACITY);
        self.has_data = false;
        self.oversized = false;
    }
}

/// Splits an SSE line into field and value: `data: x` and `data:x` both give
/// `x` (one leading space is dropped, as the spec says). A line without a
/// colon is a field with an empty value.
fn split_field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b':') {
        Some(colon) => {
            let value = &line[colon + 1..];
            (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, b""),
    }
}

/// Whether this wire's tap reads the data of an event so named.
fn reads_data(wire: Wire, name: EventName) -> bool {
    match wire {
        Wire::AnthropicSse => !matches!(
            name,
            EventName::Ping | EventName::ContentBlock | EventName::MessageStop | EventName::Other
        ),
        _ => true,
    }
}

fn sse_line(wire: Wire, cap: usize, event: &mut SseEvent, acc: &mut Acc, line: Line<'_>) {
    let text = match line {
        Line::Oversized => {
            if !event.oversized {
                acc.report.oversized += 1;
            }
            event.oversized = true;
            return;
        }
        Line::Text(text) => text,
    };
    if text.is_empty() {
        dispatch(wire, event, acc);
        event.reset();
        return;
    }
    if text[0] == b':' {
        return; // a comment, e.g. `: ping` keep-alives
    }
    let (field, value) = split_field(text);
    match field {
        b"event" => event.name = EventName::parse(value),
        b"data" => {
            if event.oversized || !reads_data(wire, event.name) {
                event.has_data = true;
                return;
            }
            let extra = usize::from(event.has_data);
            if event.data.len() + extra + value.len() > cap {
                event.oversized = true;
                event.data.clear();
                acc.report.oversized += 1;
                return;
            }
            if event.has_data {
                extend_capped(&mut event.data, b"\n", cap);
            }
            extend_capped(&mut event.data, value, cap);
            event.has_data = true;
        }
        _ => {} // id, retry and unknown fields carry nothing for us
    }
}

/// A complete event: reads it.
fn dispatch(wire: Wire, event: &SseEvent, acc: &mut Acc) {
    // The SSE spec dispatches no event without data; neither do clients.
    if event.oversized || !event.has_data {
        return;
    }
    match wire {
        // Anthropic's `message_stop` data says nothing its name does not.
        Wire::AnthropicSse if event.name == EventName::MessageStop => acc.report.complete = true,
        // Text deltas, pings, unknown events: nothing to read, data not kept.
        Wire::AnthropicSse if !reads_data(wire, event.name) => {}
        Wire::OpenAiSse => openai_event(acc, event.name, &event.data),
        Wire::AnthropicSse => anthropic_event(acc, event.name, &event.data),
        _ => {}
    }
}

fn openai_event(acc: &mut Acc, name: EventName, data: &[u8]) {
    // The SDKs test for this prefix too.
    if data.starts_with(b"[DONE]") {
        acc.report.complete = true;
        return;
    }
    match serde_json::from_slice::<OpenAiObject>(data) {
        Ok(object) => {
            apply_openai_object(acc, object);
            if name == EventName::Error && acc.report.error.is_none() {
                acc.set_error("error event");
            }
        }
        Err(_) if name == EventName::Error => acc.set_error(&String::from_utf8_lossy(data)),
        Err(_) => acc.report.unreadable += 1,
    }
}

fn apply_openai_object(acc: &mut Acc, object: OpenAiObject<'_>) {
    if let Some(model) = &object.model {
        acc.set_model(model);
    }
    if let Some(error) = object.error.as_ref().and_then(error_text) {
        acc.set_error(&error);
    }
    if let Some(reason) = object.choices.and_then(|c| c.finish_reason)
        && acc.report.done_reason.is_none()
    {
        acc.set_done_reason(&reason);
    }
    // Some servers repeat running totals on every chunk; the last one wins.
    if let Some(usage) = object.usage.as_ref().and_then(OpenAiUsage::to_usage) {
        acc.report.usage = Some(usage);
    }
}

fn anthropic_event(acc: &mut Acc, name: EventName, data: &[u8]) {
    let object = match serde_json::from_slice::<AnthropicObject>(data) {
        Ok(object) => object,
        Err(_) if name == EventName::Error => {
            acc.set_error(&String::from_utf8_lossy(data));
            return;
        }
        Err(_) => {
            acc.report.unreadable += 1;
            return;
        }
    };
    // The event name and the data's `type` agree; an unnamed event has only
    // the latter.
    let kind = match name {
        EventName::Unnamed | EventName::Message => object
            .kind
            .as_deref()
            .map_or(EventName::Other, |kind| EventName::parse(kind.as_bytes())),
        named => named,
    };
    match kind {
        EventName::MessageStart => {
            if let Some(message) = &object.message {
                if let Some(model) = &message.model {
                    acc.set_model(model);
                }
                if let Some(counts) = &message.usage {
                    let mut usage = Usage::default();
                    counts.replace_into(&mut usage);
                    acc.report.usage = Some(usage);
                }
            }
        }
        EventName::MessageDelta => {
            if let Some(reason) = object.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                acc.set_done_reason(reason);
            }
            if let Some(counts) = &object.usage {
                let mut usage = acc.report.usage.unwrap_or_default();
                counts.replace_into(&mut usage);
                acc.report.usage = Some(usage);
            }
        }
        EventName::MessageStop => acc.report.complete = true,
        EventName::Error => match object.error.as_ref().and_then(error_text) {
            Some(error) => acc.set_error(&error),
            None => acc.set_error("error event"),
        },
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Whole JSON bodies: scanned, not buffered.

/// The members of a whole body that are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Model,
    Done,
    DoneReason,
    PromptEvalCount,
    EvalCount,
    Error,
    Usage,
    Type,
    StopReason,
    /// `choices[i].finish_reason` of an OpenAI body.
    FinishReason,
}

/// The top-level members each wire's body is read for.
fn top_member(wire: Wire, key: &[u8]) -> Option<Member> {
    Some(match (wire, key) {
        (_, b"model") => Member::Model,
        (_, b"error") => Member::Error,
        (Wire::OllamaJson, b"done") => Member::Done,
        (Wire::OllamaJson, b"done_reason") => Member::DoneReason,
        (Wire::OllamaJson, b"prompt_eval_count") => Member::PromptEvalCount,
        (Wire::OllamaJson, b"eval_count") => Member::EvalCount,
        (Wire::OpenAiJson | Wire::AnthropicJson, b"usage") => Member::Usage,
        (Wire::AnthropicJson, b"type") => Member::Type,
        (Wire::AnthropicJson, b"stop_reason") => Member::StopReason,
        _ => return None,
    })
}

/// Longest key compared; longer keys are none of ours.
const KEY_MAX: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Container {
    #[default]
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Root {
    #[default]
    NotStarted,
    Open,
    Closed,
    /// Not one JSON object: something else came first or after.
    Broken,
}

/// A byte-at-a-time scanner over one JSON object that keeps only the values
/// of the members asked for. It tracks strings, escapes and nesting, enough
/// to find members at depth 1 (and `choices[i].finish_reason` at depth 3);
/// it does not validate numbers or literals, which serde does for the values
/// kept. Memory: a few fixed fields plus one value up to [`MEMBER_CAP`].
#[derive(Debug, Default)]
struct JsonScan {
    root: Root,
    depth: usize,
    /// What the containers at depths 1 to 3 are; deeper ones do not matter.
    containers: [Container; 4],
    in_string: bool,
    escaped: bool,
    /// The next string at this depth is a key.
    expect_key: bool,
    reading_key: bool,
    key: [u8; KEY_MAX],
    key_len: usize,
    key_too_long: bool,
    /// A key was read and its `:` is awaited.
    after_key: bool,
    /// After `key:`, the next value at this depth is the member's.
    value_next: bool,
    /// The member the awaited value belongs to, if it is one of ours.
    member: Option<Member>,
    /// The top-level member being walked through is `choices`.
    in_choices: bool,
    /// The member whose value is being kept, and its depth.
    capture: Option<(Member, usize)>,
    value: Vec<u8>,
    value_too_long: bool,
    /// Member values skipped for passing [`MEMBER_CAP`].
    too_long: u32,
}

impl JsonScan {
    fn feed(&mut self, wire: Wire, chunk: &[u8], mut on_member: impl FnMut(Member, &[u8])) {
        let mut at = 0;
        while let Some(&b) = chunk.get(at) {
            if matches!(self.root, Root::Broken) {
                return;
            }
            if self.in_string && !self.escaped {
                // Inside a string only a quote or a backslash changes the
                // state: jump to the next one (a model's answer is one long
                // string), keeping the bytes passed when capturing or
                // reading a key.
                let run = memchr::memchr2(b'"', b'\\', &chunk[at..]).unwrap_or(chunk.len() - at);
                if run > 0 {
                    let passed = &chunk[at..at + run];
                    if self.capture.is_some() {
                        self.keep_all(passed);
                    }
                    if self.reading_key {
                        self.key_part(passed);
                    }
                    at += run;
                    continue;
                }
            } else if !self.in_string
                && self.root == Root::Open
                && self.capture.is_none()
                && !self.value_next
            {
                // Between strings, outside a kept value: numbers, literals
                // and white space change nothing until the next structural
                // byte (a body is mostly numbers once its text is skipped).
                let run = chunk[at..]
                    .iter()
                    .position(|c| matches!(c, b'"' | b'{' | b'}' | b'[' | b']' | b':' | b','))
                    .unwrap_or(chunk.len() - at);
                if run > 0 {
                    at += run;
                    continue;
                }
            }
            at += 1;
            if self.in_string {
                self.string_byte(wire, b);
                continue;
            }
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                if self.capture.is_some() {
                    self.keep(b);
                }
                continue;
            }
            if self.root == Root::Closed || (self.depth == 0 && b != b'{') {
                self.root = Root::Broken;
                return;
            }
            if std::mem::take(&mut self.value_next)
                && let Some(member) = self.member.take()
            {
                self.capture = Some((member, self.depth));
                self.value.clear();
                self.value_too_long = false;
            }
            if let Some((member, depth)) = self.capture {
                if matches!(b, b',' | b'}' | b']') && self.depth == depth {
                    self.capture = None;
                    if self.value_too_long {
                        self.value_too_long = false;
                        self.too_long += 1;
                    } else {
                        on_member(member, &self.value);
                    }
                    self.value.clear();
                    self.value.shrink_to(KEEP_CAPACITY);
                } else {
                    self.keep(b);
                }
            }
            self.structural(b);
        }
    }

    fn string_byte(&mut self, wire: Wire, b: u8) {
        if self.capture.is_some() {
            self.keep(b);
        }
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
            if std::mem::take(&mut self.reading_key) {
                self.key_read(wire);
            }
            return;
        }
        if self.reading_key {
            self.key_part(&[b]);
        }
    }

    /// Adds `part` to the key being read; past [`KEY_MAX`] it is too long
    /// to be one of ours.
    fn key_part(&mut self, part: &[u8]) {
        let room = KEY_MAX - self.key_len;
        let take = part.len().min(room);
        self.key[self.key_len..self.key_len + take].copy_from_slice(&part[..take]);
        self.key_len += take;
        if part.len() > room {
            self.key_too_long = true;
        }
    }

    fn structural(&mut self, b: u8) {
        match b {
            b'"' => {
                self.in_string = true;
                let key_here = self.depth <= 3 && self.containers[self.depth] == Container::Object;
                if std::mem::take(&mut self.expect_key) && key_here {
                    self.reading_key = true;
                    self.key_len = 0;
                    self.key_too_long = false;
                }
            }
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == 1 {
                    self.root = Root::Open;
                }
                if self.depth <= 3 {
                    self.containers[self.depth] = if b == b'{' {
                        Container::Object
                    } else {
                        Container::Array
                    };
                }
                self.expect_key = b == b'{';
                self.member = None;
            }
            b'}' | b']' => {
                self.depth -= 1; // depth is at least 1 here: depth 0 accepts only `{`
                if self.depth == 0 {
                    self.root = Root::Closed;
                }
                self.expect_key = false;
                self.member = None;
            }
            b':' if self.after_key => {
                self.after_key = false;
                self.value_next = true;
            }
            b',' => {
                self.expect_key =
                    self.depth <= 3 && self.containers[self.depth] == Container::Object;
                self.member = None;
            }
            _ => {}
        }
    }

    fn key_read(&mut self, wire: Wire) {
        self.after_key = true;
        let key: &[u8] = if self.key_too_long {
            b""
        } else {
            &self.key[..self.key_len]
        };
        self.member = match self.depth {
            1 => {
                self.in_choices = key == b"choices";
                top_member(wire, key)
            }
            3 if wire == Wire::OpenAiJson
                && self.in_choices
                && self.containers[2] == Container::Array
                && key == b"finish_reason" =>
            {
                Some(Member::FinishReason)
            }
            _ => None,
        };
    }

    fn keep(&mut self, b: u8) {
        self.keep_all(&[b]);
    }

    /// Keeps `bytes` of the captured value, up to [`MEMBER_CAP`]; past it
    /// the value is marked too long (and skipped).
    fn keep_all(&mut self, bytes: &[u8]) {
        let room = MEMBER_CAP.saturating_sub(self.value.len());
        extend_capped(&mut self.value, &bytes[..bytes.len().min(room)], MEMBER_CAP);
        if bytes.len() > room {
            self.value_too_long = true;
        }
    }
}

fn json_member(wire: Wire, acc: &mut Acc, member: Member, value: &[u8]) {
    let read = match member {
        Member::Model => serde_json::from_slice::<Option<String>>(value).map(|model| {
            if let Some(model) = model {
                acc.set_model(&model);
            }
        }),
        Member::Done => serde_json::from_slice::<Option<bool>>(value).map(|done| acc.done = done),
        Member::DoneReason | Member::StopReason | Member::FinishReason => {
            serde_json::from_slice::<Option<String>>(value).map(|reason| {
                // The first choice to finish names the reason.
                let first_only = member == Member::FinishReason;
                if let Some(reason) = reason
                    && !(first_only && acc.report.done_reason.is_some())
                {
                    acc.set_done_reason(&reason);
                }
            })
        }
        Member::PromptEvalCount => {
            serde_json::from_slice::<Option<u64>>(value).map(|n| acc.prompt_eval_count = n)
        }
        Member::EvalCount => {
            serde_json::from_slice::<Option<u64>>(value).map(|n| acc.eval_count = n)
        }
        Member::Error => serde_json::from_slice::<Value>(value).map(|error| {
            if let Some(error) = error_text(&error) {
                acc.set_error(&error);
            }
        }),
        Member::Type => serde_json::from_slice::<Option<String>>(value)
            .map(|kind| acc.type_is_error = kind.as_deref() == Some("error")),
        Member::Usage if wire == Wire::AnthropicJson => {
            serde_json::from_slice::<Option<AnthropicUsage>>(value).map(|counts| {
                if let Some(counts) = counts {
                    let mut usage = Usage::default();
                    counts.replace_into(&mut usage);
                    acc.report.usage = Some(usage);
                }
            })
        }
        Member::Usage => serde_json::from_slice::<Option<OpenAiUsage>>(value).map(|counts| {
            if let Some(usage) = counts.as_ref().and_then(OpenAiUsage::to_usage) {
                acc.report.usage = Some(usage);
            }
        }),
    };
    if read.is_err() {
        acc.report.unreadable += 1;
    }
}

fn finish_whole_body(wire: Wire, scan: &JsonScan, acc: &mut Acc) {
    acc.report.oversized += scan.too_long;
    let whole = scan.root == Root::Closed;
    if !whole && scan.root != Root::NotStarted {
        acc.report.unreadable += 1;
    }
    let failed = acc.report.error.is_some() || acc.type_is_error;
    match wire {
        Wire::OllamaJson => {
            // No `done` at all is `/api/embed`: its count is still usage.
            if acc.done != Some(false) && !failed {
                let reason = acc.report.done_reason.take();
                acc.ollama_final(reason.as_deref(), acc.prompt_eval_count, acc.eval_count);
            }
            acc.report.complete = whole && !failed && acc.done != Some(false);
        }
        _ => acc.report.complete = whole && !failed,
    }
    if acc.type_is_error && acc.report.error.is_none() {
        acc.set_error("error");
    }
}

// ---------------------------------------------------------------------------
// The OpenAI usage chunk the client did not ask for.

/// Removes the OpenAI usage-only chunk (`choices: []` with a `usage` object)
/// from an SSE stream, for requests where the proxy turned on
/// `stream_options.include_usage` although the client had not.
///
/// Every other event passes byte-identical, and as soon as its closing blank
/// line has arrived: the filter holds back at most the one incomplete event
/// at the end of a chunk. An event longer than the cap cannot be a usage
/// chunk: it is passed on as it comes. Run the [`UsageTap`] on the upstream
/// bytes (before this filter) to meter the usage.
#[derive(Debug)]
pub struct SseUsageFilter {
    cap: usize,
    /// The incomplete event at the end of the last chunk.
    pending: Vec<u8>,
    /// Inside an event longer than the cap: forwarding until its end.
    passing: bool,
    /// The current line has bytes (so a terminator now ends a field line,
    /// not the event).
    line_has_bytes: bool,
    /// The last chunk ended with a CR ending a field line; an LF first in the
    /// next chunk is the rest of that CRLF.
    after_cr: bool,
    /// The last chunk ended with the CR of an event's closing blank line; an
    /// LF first in the next chunk belongs to that event: `Some(true)` if it
    /// was dropped.
    lf_of_ended_event: Option<bool>,
    /// Joins multi-line `data:` values for reading.
    scratch: Vec<u8>,
    dropped: u32,
}

impl Default for SseUsageFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl SseUsageFilter {
    /// A filter with the default cap.
    pub fn new() -> Self {
        Self::with_cap(DEFAULT_LINE_CAP)
    }

    /// A filter that holds back at most `cap` bytes of an incomplete event
    /// (at least 64).
    pub fn with_cap(cap: usize) -> Self {
        SseUsageFilter {
            cap: cap.max(64),
            pending: Vec::new(),
            passing: false,
            line_has_bytes: false,
            after_cr: false,
            lf_of_ended_event: None,
            scratch: Vec::new(),
            dropped: 0,
        }
    }

    /// Takes the next upstream chunk; returns the bytes to forward now
    /// (possibly empty). When nothing is held back or dropped, the result
    /// shares the chunk's memory: no copy.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        let data: &[u8] = &chunk;
        // An empty chunk must not clear the CR states below.
        if data.is_empty() {
            return chunk;
        }
        let mut out = Out::Empty;
        let mut start = 0;
        if let Some(dropped) = self.lf_of_ended_event.take()
            && data.first() == Some(&b'\n')
        {
            if !dropped {
                out.range(data, 0, 1);
            }
            start = 1;
        }
        let mut i = start;
        if std::mem::take(&mut self.after_cr) && data.get(i) == Some(&b'\n') {
            i += 1;
        }
        while i < data.len() {
            let b = data[i];
            if b != b'\n' && b != b'\r' {
                self.line_has_bytes = true;
                i += 1;
                continue;
            }
            let blank = !std::mem::take(&mut self.line_has_bytes);
            let mut end = i + 1;
            if b == b'\r' {
                match data.get(end) {
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                    None if blank => {}
                    None => self.after_cr = true,
                }
            }
            if blank {
                let dropped = self.end_event(data, start, end, &mut out);
                if b == b'\r' && end == data.len() && end == i + 1 {
                    self.lf_of_ended_event = Some(dropped);
                }
                start = end;
            }
            i = end;
        }
        self.hold_tail(data, start, &mut out);
        out.into_bytes(&chunk)
    }

    /// The stream ended: returns the incomplete event held back, unchanged,
    /// so the client sees the same truncated stream the proxy saw.
    pub fn finish(&mut self) -> Bytes {
        let rest = Bytes::from(std::mem::take(&mut self.pending));
        *self = SseUsageFilter {
            dropped: self.dropped,
            ..SseUsageFilter::with_cap(self.cap)
        };
        rest
    }

    /// How many usage chunks were dropped so far.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// An event ended at `end` (its closing blank line included): forwards
    /// or drops it. Returns whether it was dropped.
    fn end_event(&mut self, data: &[u8], start: usize, end: usize, out: &mut Out) -> bool {
        if std::mem::take(&mut self.passing) {
            out.range(data, start, end);
            return false;
        }
        // An event over the cap cannot be the usage chunk: pass it unread,
        // without copying it.
        if self.pending.len() + (end - start) > self.cap {
            out.owned(data, &self.pending);
            out.range(data, start, end);
            self.pending.clear();
            self.pending.shrink_to(KEEP_CAPACITY);
            return false;
        }
        if self.pending.is_empty() {
            if is_usage_only(&data[start..end], &mut self.scratch) {
                self.dropped += 1;
                return true;
            }
            out.range(data, start, end);
            return false;
        }
        self.pending.extend_from_slice(&data[start..end]);
        let drop = is_usage_only(&self.pending, &mut self.scratch);
        if drop {
            self.dropped += 1;
        } else {
            out.owned(data, &self.pending);
        }
        self.pending.clear();
        self.pending.shrink_to(KEEP_CAPACITY);
        drop
    }

    /// The chunk ended inside an event: holds it back, or once it passes the
    /// cap forwards it and what follows until its end.
    fn hold_tail(&mut self, data: &[u8], start: usize, out: &mut Out) {
        if start == data.len() {
            return;
        }
        if self.passing {
            out.range(data, start, data.len());
        } else if self.pending.len() + (data.len() - start) > self.cap {
            out.owned(data, &self.pending);
            out.range(data, start, data.len());
            self.pending.clear();
            self.pending.shrink_to(KEEP_CAPACITY);
            self.passing = true;
        } else {
            extend_capped(&mut self.pending, &data[start..], self.cap);
        }
    }
}

/// The bytes a [`SseUsageFilter::push`] forwards: nothing, one range of the
/// chunk (shared, not copied), or a copy when bytes were held or dropped.
enum Out {
    Empty,
    Range(usize, usize),
    Built(BytesMut),
}

impl Out {
    fn range(&mut self, data: &[u8], start: usize, end: usize) {
        if start == end {
            return;
        }
        match self {
            Out::Empty => *self = Out::Range(start, end),
            Out::Range(_, until) if *until == start => *until = end,
            Out::Range(from, until) => {
                let mut built = BytesMut::with_capacity(*until - *from + end - start);
                built.extend_from_slice(&data[*from..*until]);
                built.extend_from_slice(&data[start..end]);
                *self = Out::Built(built);
            }
            Out::Built(built) => built.extend_from_slice(&data[start..end]),
        }
    }

    fn owned(&mut self, data: &[u8], bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self {
            Out::Empty => *self = Out::Built(BytesMut::from(bytes)),
            Out::Range(from, until) => {
                let mut built = BytesMut::with_capacity(*until - *from + bytes.len());
                built.extend_from_slice(&data[*from..*until]);
                built.extend_from_slice(bytes);
                *self = Out::Built(built);
            }
            Out::Built(built) => built.extend_from_slice(bytes),
        }
    }

    fn into_bytes(self, chunk: &Bytes) -> Bytes {
        match self {
            Out::Empty => Bytes::new(),
            Out::Range(start, end) => chunk.slice(start..end),
            Out::Built(built) => built.freeze(),
        }
    }
}

/// Calls `f` with each line of an event, without terminators.
fn for_each_line<'a>(mut block: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    while !block.is_empty() {
        let end = block
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(block.len());
        f(&block[..end]);
        let mut next = end + 1;
        if block.get(end) == Some(&b'\r') && block.get(next) == Some(&b'\n') {
            next += 1;
        }
        block = block.get(next..).unwrap_or_default();
    }
}

/// What the filter reads of an event to know it is the usage-only chunk.
#[derive(Deserialize)]
struct UsageProbe {
    choices: Option<Choices>,
    /// `None` for an absent or null `usage` (every chunk but the last has
    /// `usage: null` when usage is on).
    usage: Option<IgnoredAny>,
}

/// Whether a complete event is the usage-only chunk: its data is an object
/// with an empty `choices` array and a `usage` object.
fn is_usage_only(block: &[u8], scratch: &mut Vec<u8>) -> bool {
    let mut first: Option<&[u8]> = None;
    let mut count = 0;
    scratch.clear();
    for_each_line(block, |line| {
        if line.first() == Some(&b':') {
            return;
        }
        let (field, value) = split_field(line);
        if field != b"data" {
            return;
        }
        count += 1;
        if count == 1 {
            first = Some(value);
            return;
        }
        if count == 2 {
            scratch.extend_from_slice(first.unwrap_or_default());
        }
        scratch.push(b'\n');
        scratch.extend_from_slice(value);
    });
    let data = match (count, first) {
        (1, Some(value)) => value,
        (0, _) | (_, None) => return false,
        _ => &scratch[..],
    };
    // Cheap test first: nearly every chunk has `"usage":null` or no usage.
    let usage_only = has_usage_object(data)
        && serde_json::from_slice::<UsageProbe>(data).is_ok_and(|probe| {
            probe.usage.is_some() && probe.choices.is_some_and(|choices| choices.len == 0)
        });
    scratch.clear();
    scratch.shrink_to(KEEP_CAPACITY);
    usage_only
}

/// Whether `"usage"` followed by `:` and `{` appears in the text.
fn has_usage_object(data: &[u8]) -> bool {
    const KEY: &[u8] = b"\"usage\"";
    let mut rest = data;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        let mut after = rest.iter().copied().skip_while(u8::is_ascii_whitespace);
        if after.next() == Some(b':') && after.find(|b| !b.is_ascii_whitespace()) == Some(b'{') {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------
// Asking upstream for usage.

/// Whether an OpenAI chat/completions request asked for the streamed usage
/// chunk itself (`stream_options.include_usage: true`).
pub fn request_wants_usage(body: &Value) -> bool {
    options_want_usage(body.get("stream_options"))
}

/// Whether a request's `stream_options` asks for usage (`include_usage`).
pub fn options_want_usage(stream_options: Option<&Value>) -> bool {
    stream_options
        .and_then(|options| options.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// Turns on `stream_options.include_usage` in a streamed (`"stream": true`)
/// OpenAI chat/completions request so usage can be metered. Returns whether
/// it changed the body: then the client did not ask for the usage chunk and
/// the response goes through a [`SseUsageFilter`].
///
/// Leaves alone a request that is not streamed (its body carries usage), one
/// that already asks, and one whose `stream_options` is not an object (the
/// backend will reject it as the client sent it).
pub fn ask_for_usage(body: &mut Value) -> bool {
    if body.get("stream").and_then(Value::as_bool) != Some(true) || request_wants_usage(body) {
        return false;
    }
    let Some(request) = body.as_object_mut() else {
        return false;
    };
    match request.get_mut("stream_options") {
        Some(Value::Object(options)) => {
            options.insert("include_usage".to_owned(), Value::Bool(true));
            true
        }
        None | Some(Value::Null) => {
            let mut options = serde_json::Map::new();
            options.insert("include_usage".to_owned(), Value::Bool(true));
            request.insert("stream_options".to_owned(), Value::Object(options));
            true
        }
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests;
