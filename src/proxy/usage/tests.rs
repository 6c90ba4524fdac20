//! Tests as data: a body (and a cap) beside the report expected from it. Every
//! body is also fed split at every byte offset, a byte at a time, and in
//! random pieces (some empty), and must give the same report each way.

use serde_json::json;

use super::*;

// ---------------------------------------------------------------------------
// Helpers.

/// A tiny xorshift64 generator: fixed seeds, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Cuts `body` into random pieces of 0 to `max` bytes.
fn random_pieces<'a>(body: &'a [u8], rng: &mut XorShift, max: usize) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len = rng.below(max + 1).min(body.len() - at);
        pieces.push(&body[at..at + len]);
        at += len;
    }
    pieces
}

fn tap(wire: Wire, cap: usize, pieces: &[&[u8]]) -> TapReport {
    let mut tap = UsageTap::with_cap(wire, cap);
    for piece in pieces {
        tap.feed(piece);
    }
    tap.finish()
}

fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Option<Usage> {
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
    })
}

fn text(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// The report of a body that ended normally.
fn done(usage: Option<Usage>, done_reason: Option<&str>, model: &str) -> TapReport {
    TapReport {
        usage,
        complete: true,
        done_reason: done_reason.map(str::to_owned),
        model: text(model),
        ..TapReport::default()
    }
}

struct Case {
    name: &'static str,
    wire: Wire,
    cap: usize,
    body: String,
    want: TapReport,
}

fn case(name: &'static str, wire: Wire, body: impl Into<String>, want: TapReport) -> Case {
    Case {
        name,
        wire,
        cap: DEFAULT_LINE_CAP,
        body: body.into(),
        want,
    }
}

/// Feeds the case whole, split at every offset, byte by byte and in random
/// pieces; every way must give the expected report.
fn check(case: &Case) {
    let body = case.body.as_bytes();
    let name = case.name;
    assert_eq!(
        tap(case.wire, case.cap, &[body]),
        case.want,
        "{name}: whole"
    );
    for at in 0..=body.len() {
        let (a, b) = body.split_at(at);
        assert_eq!(
            tap(case.wire, case.cap, &[a, b]),
            case.want,
            "{name}: split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(
        tap(case.wire, case.cap, &bytes),
        case.want,
        "{name}: bytewise"
    );
    let mut rng = XorShift(0x5eed_cafe_f00d_0001 ^ body.len() as u64);
    for round in 0..64 {
        let pieces = random_pieces(body, &mut rng, 1 + round * 3);
        assert_eq!(
            tap(case.wire, case.cap, &pieces),
            case.want,
            "{name}: random round {round}"
        );
    }
}

fn crlf(body: &str) -> String {
    body.replace('\n', "\r\n")
}

// ---------------------------------------------------------------------------
// Bodies. Ollama's are the examples of docs/api.md, one object a line.

const OLLAMA_GENERATE: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","response":"The","done":false}
{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","response":" sky é 日本 🦀 \"blue\"\n","done":false}
{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"","done":true,"context":[1,2,3],"total_duration":10706818083,"load_duration":6338219291,"prompt_eval_count":26,"prompt_eval_duration":130079000,"eval_count":259,"eval_duration":4232710000}
"#;

const OLLAMA_CHAT: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false}
{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":" sky"},"done":false}
{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}
"#;

const OPENAI_CHUNK_1: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-oss:20b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}],"usage":null}"#;
const OPENAI_CHUNK_2: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-oss:20b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"content":"lo \"usage\": {} é 日本 🦀\n"},"finish_reason":null}],"usage":null}"#;
const OPENAI_CHUNK_STOP: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-oss:20b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#;
const OPENAI_CHUNK_USAGE: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-oss:20b","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":35,"total_tokens":1235,"prompt_tokens_details":{"cached_tokens":1024}}}"#;

/// An OpenAI stream with usage on, as Clawdbot gets it.
fn openai_stream() -> String {
    format!(
        "{OPENAI_CHUNK_1}\n\n{OPENAI_CHUNK_2}\n\n{OPENAI_CHUNK_STOP}\n\n{OPENAI_CHUNK_USAGE}\n\ndata: [DONE]\n\n"
    )
}

/// The same stream as the client sees it when it did not ask for usage.
fn openai_stream_without_usage() -> String {
    format!("{OPENAI_CHUNK_1}\n\n{OPENAI_CHUNK_2}\n\n{OPENAI_CHUNK_STOP}\n\ndata: [DONE]\n\n")
}

/// The same stream with every SSE liberty a server may take: comment lines
/// (keep-alives), `data:` without its space, blank lines between events,
/// `id:` and `retry:` fields, an empty `event:`.
fn openai_stream_liberal() -> String {
    let bare = |chunk: &str| chunk.replacen("data: ", "data:", 1);
    format!(
        ": ping\n\n\n{}\n\n: keep-alive\n\nid: 7\nretry: 3000\n{OPENAI_CHUNK_2}\n\n\n\nevent:\n{}\n\n{}\n\ndata:[DONE]\n\n",
        bare(OPENAI_CHUNK_1),
        bare(OPENAI_CHUNK_STOP),
        OPENAI_CHUNK_USAGE
    )
}

/// Anthropic's documented basic streaming example (spacing as documented).
const ANTHROPIC_STREAM: &str = r#"event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "! \"usage\": {\"output_tokens\": 999} 🦀"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}

"#;

/// Caching, thinking and a tool call, with message_delta usage repeated
/// cumulatively (the second one must replace the first, not add to it).
const ANTHROPIC_CACHED_TOOLS: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2679,"cache_creation_input_tokens":1200,"cache_read_input_tokens":30000,"cache_creation":{"ephemeral_5m_input_tokens":1200,"ephemeral_1h_input_tokens":0},"output_tokens":3,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me look."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Paris\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":120}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":2679,"cache_creation_input_tokens":1200,"cache_read_input_tokens":30000,"output_tokens":510}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// Everything up to and including the first line that contains `marker`.
fn cut_after_line(body: &str, marker: &str) -> String {
    let at = body.find(marker).unwrap_or(body.len());
    let end = body[at..].find('\n').map_or(body.len(), |n| at + n + 1);
    body[..end].to_owned()
}

/// Everything before the first `marker`.
fn cut_before(body: &str, marker: &str) -> String {
    body[..body.find(marker).unwrap_or(body.len())].to_owned()
}

// ---------------------------------------------------------------------------
// The tables.

fn ollama_cases() -> Vec<Case> {
    use Wire::OllamaNdjson as W;
    let long_line = format!(
        "{{\"model\":\"llama3.2\",\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"done\":false}}\n",
        "x".repeat(1000)
    );
    vec![
        case("ollama generate (docs)", W, OLLAMA_GENERATE, done(usage(26, 259, 0, 0), None, "llama3.2")),
        case("ollama chat (docs)", W, OLLAMA_CHAT, done(usage(26, 282, 0, 0), Some("stop"), "llama3.2")),
        case("ollama chat, CRLF, blank keep-alive lines", W,
            format!("\n{}\n  \n\r\n", crlf(OLLAMA_CHAT).replace("\r\n{", "\r\n\n\r\n{")),
            done(usage(26, 282, 0, 0), Some("stop"), "llama3.2")),
        case("ollama final line without its newline", W, OLLAMA_CHAT.trim_end(),
            done(usage(26, 282, 0, 0), Some("stop"), "llama3.2")),
        case("ollama prompt fully cached: no prompt_eval_count", W,
            r#"{"model":"qwen3:8b","done":true,"done_reason":"stop","eval_count":7}"#.to_owned() + "\n",
            done(usage(0, 7, 0, 0), Some("stop"), "qwen3:8b")),
        case("ollama escaped model name", W,
            r#"{"model":"hf.co\/org\/m:Q4","done":true,"done_reason":"length","prompt_eval_count":1,"eval_count":2}"#.to_owned() + "\n",
            done(usage(1, 2, 0, 0), Some("length"), "hf.co/org/m:Q4")),
        case("ollama load a model (chat docs): not billable", W,
            r#"{"model":"llama3.2","created_at":"2024-09-12T21:17:29.110811Z","message":{"role":"assistant","content":""},"done_reason":"load","done":true}"#.to_owned() + "\n",
            done(None, Some("load"), "llama3.2")),
        case("ollama unload (generate docs): not billable", W,
            r#"{"model":"llama3.2","created_at":"2024-09-12T03:54:03.516566Z","response":"","done":true,"done_reason":"unload"}"#.to_owned() + "\n",
            done(None, Some("unload"), "llama3.2")),
        case("ollama load with counts is still not billable", W,
            r#"{"model":"llama3.2","done":true,"done_reason":"load","prompt_eval_count":1,"eval_count":0}"#.to_owned() + "\n",
            done(None, Some("load"), "llama3.2")),
        case("ollama load (generate docs, no done_reason, no counts)", W,
            r#"{"model":"llama3.2","created_at":"2023-12-18T19:52:07.071755Z","response":"","done":true}"#.to_owned() + "\n",
            done(None, None, "llama3.2")),
        case("ollama mid-stream error line", W,
            cut_after_line(OLLAMA_CHAT, "\" sky\"")
                + "{\"error\":\"an error was encountered while running the model: unexpected EOF\"}\n",
            TapReport {
                error: text("an error was encountered while running the model: unexpected EOF"),
                model: text("llama3.2"),
                ..TapReport::default()
            }),
        case("ollama cut before done: the partial line is unreadable", W,
            cut_after_line(OLLAMA_CHAT, "\" sky\"") + r#"{"model":"llama3.2","created_at":"2023-08"#,
            TapReport { model: text("llama3.2"), unreadable: 1, ..TapReport::default() }),
        case("ollama cut at a line end", W, cut_after_line(OLLAMA_CHAT, "\" sky\""),
            TapReport { model: text("llama3.2"), ..TapReport::default() }),
        case("ollama garbage lines", W,
            "not json at all\n<html><body>502</body></html>\n[1,2]\n{\"done\":\"yes\"}\n\u{0}\u{ff}\n".to_owned() + OLLAMA_CHAT,
            TapReport { unreadable: 5, ..done(usage(26, 282, 0, 0), Some("stop"), "llama3.2") }),
        Case {
            cap: 256,
            ..case("ollama line over the cap is skipped and noted", W,
                long_line.clone() + &long_line
                    + r#"{"model":"llama3.2","done":true,"done_reason":"stop","prompt_eval_count":10,"eval_count":20}"# + "\n",
                TapReport { oversized: 2, ..done(usage(10, 20, 0, 0), Some("stop"), "llama3.2") })
        },
        case("ollama empty body", W, "", TapReport::default()),
    ]
}

fn openai_cases() -> Vec<Case> {
    use Wire::OpenAiSse as W;
    let clawdbot = || done(usage(176, 35, 1024, 0), Some("stop"), "gpt-oss:20b");
    let long_event = OPENAI_CHUNK_2.replacen("lo ", &"x".repeat(1000), 1);
    vec![
        case("openai stream with usage", W, openai_stream(), clawdbot()),
        case("openai stream, CRLF", W, crlf(&openai_stream()), clawdbot()),
        case(
            "openai stream, CR only",
            W,
            openai_stream().replace('\n', "\r"),
            clawdbot(),
        ),
        case(
            "openai stream, comments, no space after data:, blank lines",
            W,
            openai_stream_liberal(),
            clawdbot(),
        ),
        case(
            "openai stream, liberal and CRLF",
            W,
            crlf(&openai_stream_liberal()),
            clawdbot(),
        ),
        case(
            "openai stream without usage",
            W,
            openai_stream_without_usage(),
            done(None, Some("stop"), "gpt-oss:20b"),
        ),
        case(
            "openai [DONE] without the closing blank line",
            W,
            openai_stream().trim_end().to_owned() + "\n",
            clawdbot(),
        ),
        case(
            "openai cut inside the [DONE] line",
            W,
            openai_stream().trim_end().trim_end_matches("]"),
            TapReport {
                complete: false,
                ..clawdbot()
            },
        ),
        case(
            "openai cut before [DONE]",
            W,
            cut_before(&openai_stream(), "data: [DONE]"),
            TapReport {
                complete: false,
                ..clawdbot()
            },
        ),
        case(
            "openai cut inside the usage chunk",
            W,
            cut_before(&openai_stream(), "\"completion_tokens\""),
            TapReport {
                usage: None,
                complete: false,
                ..clawdbot()
            },
        ),
        case(
            "openai error event mid-stream",
            W,
            format!(
                "{OPENAI_CHUNK_1}\n\ndata: {{\"error\":{{\"message\":\"model runner crashed\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n"
            ),
            TapReport {
                error: text("server_error: model runner crashed"),
                model: text("gpt-oss:20b"),
                ..TapReport::default()
            },
        ),
        case(
            "openai error as a plain string",
            W,
            "data: {\"error\":\"out of memory\"}\n\n",
            TapReport {
                error: text("out of memory"),
                ..TapReport::default()
            },
        ),
        case(
            "openai named error event with text data",
            W,
            format!("{OPENAI_CHUNK_1}\n\nevent: error\ndata: upstream exploded\n\n"),
            TapReport {
                error: text("upstream exploded"),
                model: text("gpt-oss:20b"),
                ..TapReport::default()
            },
        ),
        case(
            "openai garbage events",
            W,
            format!("data: {{not json\n\ndata: <html>\n\n{}", openai_stream()),
            TapReport {
                unreadable: 2,
                ..clawdbot()
            },
        ),
        case(
            "openai multi-line data is joined",
            W,
            "data: {\"model\":\"m\",\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}\n\ndata: [DONE]\n\n",
            done(usage(5, 6, 0, 0), None, "m"),
        ),
        case(
            "openai completions stream (text choices)",
            W,
            "data: {\"model\":\"m\",\"choices\":[{\"text\":\"hi\",\"index\":0,\"finish_reason\":null}]}\n\n\
             data: {\"model\":\"m\",\"choices\":[{\"text\":\"\",\"index\":0,\"finish_reason\":\"length\"}]}\n\n\
             data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":16,\"total_tokens\":19}}\n\n\
             data: [DONE]\n\n",
            done(usage(3, 16, 0, 0), Some("length"), "m"),
        ),
        case(
            "openai usage on every chunk: the last wins",
            W,
            "data: {\"model\":\"m\",\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}\n\n\
             data: {\"model\":\"m\",\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n\
             data: [DONE]\n\n",
            done(usage(9, 2, 0, 0), None, "m"),
        ),
        Case {
            cap: 256,
            ..case(
                "openai event over the cap is skipped and noted",
                W,
                format!("{long_event}\n\n{long_event}\n{long_event}\n\ndata: [DONE]\n\n"),
                TapReport {
                    complete: true,
                    oversized: 2,
                    ..TapReport::default()
                },
            )
        },
        case("openai empty body", W, "", TapReport::default()),
    ]
}

fn anthropic_cases() -> Vec<Case> {
    use Wire::AnthropicSse as W;
    let basic = || done(usage(25, 15, 0, 0), Some("end_turn"), "claude-opus-4-5");
    let unnamed: String = ANTHROPIC_STREAM
        .lines()
        .filter(|line| !line.starts_with("event:"))
        .map(|line| format!("{line}\n"))
        .collect();
    vec![
        case("anthropic stream (docs)", W, ANTHROPIC_STREAM, basic()),
        case("anthropic stream, CRLF", W, crlf(ANTHROPIC_STREAM), basic()),
        case("anthropic stream without event names", W, unnamed, basic()),
        case(
            "anthropic cached, thinking, tool use, cumulative deltas",
            W,
            ANTHROPIC_CACHED_TOOLS,
            done(
                usage(2679, 510, 30000, 1200),
                Some("tool_use"),
                "claude-sonnet-4-5",
            ),
        ),
        case(
            "anthropic overloaded error event mid-stream",
            W,
            cut_before(ANTHROPIC_STREAM, "event: content_block_delta")
                + "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
            TapReport {
                usage: usage(25, 1, 0, 0),
                error: text("overloaded_error: Overloaded"),
                model: text("claude-opus-4-5"),
                ..TapReport::default()
            },
        ),
        case(
            "anthropic cut before message_stop",
            W,
            cut_before(ANTHROPIC_STREAM, "event: message_stop"),
            TapReport {
                complete: false,
                ..basic()
            },
        ),
        case(
            "anthropic message_stop without its data line",
            W,
            cut_before(ANTHROPIC_STREAM, "data: {\"type\": \"message_stop\"}"),
            TapReport {
                complete: false,
                ..basic()
            },
        ),
        case(
            "anthropic garbage and pings",
            W,
            format!(
                "event: ping\ndata: {{\"type\": \"ping\"}}\n\nevent: message_delta\ndata: nope\n\n: comment\n\n{ANTHROPIC_STREAM}"
            ),
            TapReport {
                unreadable: 1,
                ..basic()
            },
        ),
        Case {
            cap: 200,
            ..case(
                "anthropic event over the cap is skipped and noted",
                W,
                format!(
                    "{}event: message_stop\ndata: {{\"type\": \"message_stop\"}}\n\n",
                    cut_before(ANTHROPIC_STREAM, "event: message_stop")
                ),
                TapReport {
                    usage: usage(0, 15, 0, 0),
                    oversized: 1,
                    complete: true,
                    done_reason: text("end_turn"),
                    ..TapReport::default()
                },
            )
        },
    ]
}

fn whole_body_cases() -> Vec<Case> {
    let openai_body = r#"{
  "id": "chatcmpl-123",
  "object": "chat.completion",
  "created": 1677652288,
  "model": "gpt-4o-mini",
  "system_fingerprint": "fp_44709d6fcb",
  "choices": [{
    "index": 0,
    "message": {"role": "assistant", "content": "\n\nHello there, \"usage\": {\"prompt_tokens\": 1}, \"model\": \"x\" 🦀"},
    "logprobs": null,
    "finish_reason": "stop"
  }],
  "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21, "prompt_tokens_details": {"cached_tokens": 4}}
}
"#;
    let anthropic_body = r#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi! \"type\":\"error\", \"usage\": {}"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"output_tokens":503,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":0}}}"#;
    let ollama_generate = r#"{
  "model": "llama3.2",
  "created_at": "2023-08-04T19:22:45.499127Z",
  "response": "The sky is blue because it is the color of the sky.",
  "done": true,
  "context": [1, 2, 3],
  "total_duration": 5043500667,
  "load_duration": 5025959,
  "prompt_eval_count": 26,
  "prompt_eval_duration": 325953000,
  "eval_count": 290,
  "eval_duration": 4709213000
}"#;
    vec![
        case(
            "ollama json generate (docs)",
            Wire::OllamaJson,
            ollama_generate,
            done(usage(26, 290, 0, 0), None, "llama3.2"),
        ),
        case(
            "ollama json chat with tools (docs)",
            Wire::OllamaJson,
            r#"{"model":"llama3.2","created_at":"2024-07-22T20:33:28.123648Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Paris, FR","done":false,"eval_count":1}}}]},"done_reason":"stop","done":true,"total_duration":885095291,"load_duration":3753500,"prompt_eval_count":122,"prompt_eval_duration":328493000,"eval_count":33,"eval_duration":552222000}"#,
            done(usage(122, 33, 0, 0), Some("stop"), "llama3.2"),
        ),
        case(
            "ollama json: a long key that starts like ours, and an escaped one, are not ours",
            Wire::OllamaJson,
            r#"{"model":"m","eval_count_of_every_token_in_this_answer":7,"eval\u005fcount":9, "prompt_eval_count" : 1 ,"eval_count":2,"done":true}"#,
            done(usage(1, 2, 0, 0), None, "m"),
        ),
        case(
            "ollama json load (docs): not billable",
            Wire::OllamaJson,
            r#"{"model":"llama3.2","created_at":"2024-09-12T21:17:29.110811Z","message":{"role":"assistant","content":""},"done_reason":"load","done":true}"#,
            done(None, Some("load"), "llama3.2"),
        ),
        case(
            "ollama json done_reason after the counts",
            Wire::OllamaJson,
            r#"{"prompt_eval_count":3,"eval_count":0,"model":"m","done":true,"done_reason":"unload"}"#,
            done(None, Some("unload"), "m"),
        ),
        case(
            "ollama json embed (no done)",
            Wire::OllamaJson,
            r#"{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862,0.05007221],[-0.0098027075,0.06042469,0.025257962]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}"#,
            done(usage(8, 0, 0, 0), None, "all-minilm"),
        ),
        case(
            "ollama json error body",
            Wire::OllamaJson,
            "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}\n",
            TapReport {
                error: text("model \"llama9\" not found, try pulling it first"),
                ..TapReport::default()
            },
        ),
        case(
            "ollama json done false",
            Wire::OllamaJson,
            r#"{"model":"m","done":false,"eval_count":3}"#,
            TapReport {
                model: text("m"),
                ..TapReport::default()
            },
        ),
        case(
            "ollama json cut",
            Wire::OllamaJson,
            cut_before(ollama_generate, "\"eval_count\""),
            TapReport {
                usage: usage(26, 0, 0, 0),
                model: text("llama3.2"),
                unreadable: 1,
                ..TapReport::default()
            },
        ),
        case(
            "openai json chat (pretty)",
            Wire::OpenAiJson,
            openai_body,
            done(usage(5, 12, 4, 0), Some("stop"), "gpt-4o-mini"),
        ),
        case(
            "openai json embeddings",
            Wire::OpenAiJson,
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,3e-5]}],"model":"nomic-embed-text","usage":{"prompt_tokens":8,"total_tokens":8}}"#,
            done(usage(8, 0, 0, 0), None, "nomic-embed-text"),
        ),
        case(
            "openai json two choices: the first to finish",
            Wire::OpenAiJson,
            r#"{"model":"m","choices":[{"index":0,"message":{},"finish_reason":null},{"index":1,"message":{},"finish_reason":"length"},{"index":2,"finish_reason":"stop"}]}"#,
            done(None, Some("length"), "m"),
        ),
        case(
            "openai json error (model not found)",
            Wire::OpenAiJson,
            r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
            TapReport {
                error: text(
                    "invalid_request_error: The model `gpt-9` does not exist or you do not have access to it.",
                ),
                ..TapReport::default()
            },
        ),
        case(
            "openai json cut in the usage",
            Wire::OpenAiJson,
            cut_before(openai_body, "\"total_tokens\""),
            TapReport {
                done_reason: text("stop"),
                model: text("gpt-4o-mini"),
                unreadable: 1,
                ..TapReport::default()
            },
        ),
        case(
            "openai json trailing garbage",
            Wire::OpenAiJson,
            format!("{openai_body} {{}}"),
            TapReport {
                complete: false,
                unreadable: 1,
                ..done(usage(5, 12, 4, 0), Some("stop"), "gpt-4o-mini")
            },
        ),
        case(
            "openai json html error page",
            Wire::OpenAiJson,
            "<html><body>502 Bad Gateway</body></html>",
            TapReport {
                unreadable: 1,
                ..TapReport::default()
            },
        ),
        case(
            "openai json top-level array",
            Wire::OpenAiJson,
            "[{\"usage\":{\"prompt_tokens\":1}}]",
            TapReport {
                unreadable: 1,
                ..TapReport::default()
            },
        ),
        case(
            "openai json empty body",
            Wire::OpenAiJson,
            "",
            TapReport::default(),
        ),
        case(
            "openai json odd keys: escaped, long, deep",
            Wire::OpenAiJson,
            format!(
                r#"{{"us\u0061ge":{{"prompt_tokens":1}},"a_key_much_longer_than_twenty_four_bytes":1,"deep":{}{}, "model":"m","usage":{{"prompt_tokens":2,"completion_tokens":3}}}}"#,
                "[".repeat(300),
                "]".repeat(300)
            ),
            done(usage(2, 3, 0, 0), None, "m"),
        ),
        case(
            "anthropic json message",
            Wire::AnthropicJson,
            anthropic_body,
            done(
                usage(2095, 503, 2000, 100),
                Some("end_turn"),
                "claude-sonnet-4-5",
            ),
        ),
        case(
            "anthropic json error",
            Wire::AnthropicJson,
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"},"request_id":"req_011"}"#,
            TapReport {
                error: text("not_found_error: model: claude-9"),
                ..TapReport::default()
            },
        ),
    ]
}

#[test]
fn ollama_ndjson() {
    ollama_cases().iter().for_each(check);
}

#[test]
fn openai_sse() {
    openai_cases().iter().for_each(check);
}

#[test]
fn anthropic_sse() {
    anthropic_cases().iter().for_each(check);
}

#[test]
fn whole_json_bodies() {
    whole_body_cases().iter().for_each(check);
}

#[test]
fn the_tap_is_fresh_after_finish() {
    let mut tap = UsageTap::new(Wire::OpenAiSse);
    tap.feed(openai_stream().as_bytes());
    tap.feed(b"data: {\"partial");
    assert_eq!(tap.finish().usage, usage(176, 35, 1024, 0));
    assert_eq!(tap.finish(), TapReport::default());
    tap.feed(openai_stream_without_usage().as_bytes());
    assert_eq!(tap.finish(), done(None, Some("stop"), "gpt-oss:20b"));
    assert_eq!(tap.wire(), Wire::OpenAiSse);
}

/// The terminal frame is seen as soon as it has arrived whole, byte by byte,
/// before the body ends; never for a whole JSON body.
#[test]
fn the_end_is_seen_at_the_terminal_frame() {
    let streams = [
        (Wire::OllamaNdjson, OLLAMA_CHAT.to_owned(), "\"done\":true"),
        (Wire::OpenAiSse, openai_stream(), "data: [DONE]"),
        (
            Wire::AnthropicSse,
            ANTHROPIC_STREAM.to_owned(),
            "event: message_stop",
        ),
    ];
    for (wire, body, marker) in streams {
        // The frame ends with its line (NDJSON) or its blank line (SSE).
        let frame_start = body.find(marker).unwrap();
        let frame_end = match wire {
            Wire::OllamaNdjson => body[frame_start..].find('\n').unwrap() + frame_start + 1,
            _ => body[frame_start..].find("\n\n").unwrap() + frame_start + 2,
        };
        let mut tap = UsageTap::new(wire);
        for (i, byte) in body.as_bytes().iter().enumerate() {
            assert_eq!(tap.reached_end(), i >= frame_end, "{wire:?} at byte {i}");
            tap.feed(std::slice::from_ref(byte));
        }
        assert!(tap.reached_end(), "{wire:?}");
        assert!(tap.finish().complete);
        assert!(!tap.reached_end(), "fresh after finish");
    }
    // A stream cut before its terminal frame never reaches it.
    let mut tap = UsageTap::new(Wire::OllamaNdjson);
    tap.feed(cut_before(OLLAMA_CHAT, "\"done\":true").as_bytes());
    assert!(!tap.reached_end());
    // A whole body ends with the body, which only finish() knows.
    let mut tap = UsageTap::new(Wire::OllamaJson);
    tap.feed(br#"{"model":"m","done":true,"prompt_eval_count":1,"eval_count":2}"#);
    assert!(!tap.reached_end());
    assert!(tap.finish().complete);
}

#[test]
fn long_texts_from_the_backend_are_clipped() {
    let message = "é".repeat(5000);
    let mut tap = UsageTap::new(Wire::OllamaNdjson);
    tap.feed(format!("{{\"model\":\"{message}\",\"error\":\"{message}\"}}\n").as_bytes());
    let report = tap.finish();
    for kept in [report.model, report.error] {
        let kept = kept.unwrap_or_default();
        assert!(kept.len() <= TEXT_CAP + '…'.len_utf8(), "{}", kept.len());
        assert!(kept.starts_with("éé") && kept.ends_with('…'));
    }
}

/// A 6 MB embeddings answer: read in 64 KiB chunks with a few kilobytes held.
#[test]
fn whole_bodies_are_scanned_not_buffered() {
    let vector = format!("[{}0.5]", "0.0123456789,".repeat(200));
    let vectors = vec![vector; 2500].join(",");
    let cases = [
        (
            Wire::OllamaJson,
            format!(
                "{{\"model\":\"all-minilm\",\"embeddings\":[{vectors}],\"prompt_eval_count\":4096}}"
            ),
            usage(4096, 0, 0, 0),
        ),
        (
            Wire::OpenAiJson,
            format!(
                "{{\"object\":\"list\",\"data\":[{vectors}],\"model\":\"all-minilm\",\"usage\":{{\"prompt_tokens\":4096,\"total_tokens\":4096}}}}"
            ),
            usage(4096, 0, 0, 0),
        ),
    ];
    for (wire, body, want) in cases {
        assert!(body.len() > 6_000_000);
        let mut tap = UsageTap::new(wire);
        for chunk in body.as_bytes().chunks(64 * 1024) {
            tap.feed(chunk);
            assert!(
                tap.held_capacity() < 8 * 1024,
                "{wire:?}: {}",
                tap.held_capacity()
            );
        }
        assert_eq!(tap.finish(), done(want, None, "all-minilm"), "{wire:?}");
    }
}

/// A line or event far over the cap costs the cap at most, never its size.
#[test]
fn oversized_lines_are_not_buffered() {
    let huge = "y".repeat(5 * DEFAULT_LINE_CAP);
    let bodies = [
        (
            Wire::OllamaNdjson,
            format!("{{\"response\":\"{huge}\"}}\n{}", OLLAMA_CHAT),
        ),
        (
            Wire::OpenAiSse,
            format!("data: {{\"x\":\"{huge}\"}}\n\n{}", openai_stream()),
        ),
        (
            Wire::AnthropicSse,
            format!("data: {{\"x\":\"{huge}\"}}\n\n{ANTHROPIC_STREAM}"),
        ),
        (
            Wire::OpenAiJson,
            format!("{{\"model\":\"{huge}\",\"usage\":{{\"prompt_tokens\":1}}}}"),
        ),
    ];
    for (wire, body) in bodies {
        let mut tap = UsageTap::new(wire);
        for chunk in body.as_bytes().chunks(100_000) {
            tap.feed(chunk);
            assert!(
                tap.held_capacity() <= DEFAULT_LINE_CAP + 100_000,
                "{wire:?}"
            );
        }
        let report = tap.finish();
        assert_eq!(report.oversized, 1, "{wire:?}");
        assert!(report.usage.is_some(), "{wire:?}");
    }
}

const JSONISH: [&str; 24] = [
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "\\",
    "\n",
    "\r",
    "\r\n",
    " ",
    "data: ",
    "event: ",
    "[DONE]",
    "\"usage\"",
    "\"choices\":[]",
    "\"done\":true",
    "\"error\"",
    "message_start",
    "\"prompt_tokens\":",
    "12",
    "null",
    "é",
];

/// Random JSON-ish noise into every wire: no panic, bounded buffers, and the
/// filter passes noise through unchanged.
#[test]
fn hostile_noise() {
    let mut rng = XorShift(0x0dd_ba11_5eed_0002);
    let wires = [
        Wire::OllamaNdjson,
        Wire::OllamaJson,
        Wire::OpenAiSse,
        Wire::OpenAiJson,
        Wire::AnthropicSse,
        Wire::AnthropicJson,
    ];
    for round in 0..300 {
        let mut body = Vec::new();
        for _ in 0..rng.below(400) {
            if rng.below(10) == 0 {
                body.push(rng.next_u64() as u8);
            } else {
                body.extend_from_slice(JSONISH[rng.below(JSONISH.len())].as_bytes());
            }
        }
        let pieces = random_pieces(&body, &mut rng, 40);
        for wire in wires {
            let mut tap = UsageTap::with_cap(wire, 128);
            for piece in &pieces {
                tap.feed(piece);
                assert!(
                    tap.held_capacity() <= 2 * KEEP_CAPACITY + MEMBER_CAP,
                    "round {round}"
                );
            }
            let _ = tap.finish();
        }
        let mut filter = SseUsageFilter::with_cap(128);
        let mut out = Vec::new();
        for piece in &pieces {
            out.extend_from_slice(&filter.push(Bytes::copy_from_slice(piece)));
            assert!(filter.pending.len() <= 128, "round {round}");
        }
        out.extend_from_slice(&filter.finish());
        if filter.dropped() == 0 {
            assert_eq!(out, body, "round {round}");
        }
    }
}

// ---------------------------------------------------------------------------
// The usage-chunk filter.

/// Runs the filter over `pieces`; returns everything it forwarded.
fn filter(cap: usize, pieces: &[&[u8]]) -> (Vec<u8>, u32) {
    let mut filter = SseUsageFilter::with_cap(cap);
    let mut out = Vec::new();
    for piece in pieces {
        out.extend_from_slice(&filter.push(Bytes::copy_from_slice(piece)));
    }
    out.extend_from_slice(&filter.finish());
    (out, filter.dropped())
}

/// Every way of splitting `input` forwards exactly `want`.
fn check_filter(name: &str, input: &str, want: &str, dropped: u32) {
    let body = input.as_bytes();
    let ways: Vec<Vec<&[u8]>> = (0..=body.len())
        .map(|at| {
            let (a, b) = body.split_at(at);
            vec![a, b]
        })
        .chain([body.chunks(1).collect()])
        .chain({
            let mut rng = XorShift(0xf11e_5eed_0003);
            (0..64).map(move |round| random_pieces(body, &mut rng, 1 + round * 5))
        })
        .collect();
    for (n, pieces) in ways.iter().enumerate() {
        let (out, count) = filter(DEFAULT_LINE_CAP, pieces);
        assert_eq!(String::from_utf8_lossy(&out), want, "{name}: way {n}");
        assert_eq!(count, dropped, "{name}: way {n}");
    }
}

#[test]
fn filter_drops_exactly_the_usage_chunk() {
    let table: Vec<(&str, String, String, u32)> = vec![
        ("clawdbot stream", openai_stream(), openai_stream_without_usage(), 1),
        ("CRLF", crlf(&openai_stream()), crlf(&openai_stream_without_usage()), 1),
        ("CR only", openai_stream().replace('\n', "\r"), openai_stream_without_usage().replace('\n', "\r"), 1),
        ("liberal SSE", openai_stream_liberal(), openai_stream_liberal().replace(&format!("{OPENAI_CHUNK_USAGE}\n\n"), ""), 1),
        ("no usage chunk: unchanged", openai_stream_without_usage(), openai_stream_without_usage(), 0),
        ("multi-line usage data",
            "data: {\"x\":1}\n\ndata: {\"choices\":[],\ndata:  \"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n".to_owned(),
            "data: {\"x\":1}\n\ndata: [DONE]\n\n".to_owned(), 1),
        ("usage null with empty choices is kept",
            "data: {\"choices\":[],\"usage\":null}\n\n".to_owned(), "data: {\"choices\":[],\"usage\":null}\n\n".to_owned(), 0),
        ("usage on a chunk with choices is kept",
            "data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1}}\n\n".to_owned(),
            "data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1}}\n\n".to_owned(), 0),
        ("usage without choices is kept",
            "data: {\"usage\":{\"prompt_tokens\":1}}\n\n".to_owned(), "data: {\"usage\":{\"prompt_tokens\":1}}\n\n".to_owned(), 0),
        ("comments, errors and garbage are kept",
            ": ping\n\ndata: {\"error\":{\"message\":\"x\"}}\n\ndata: {nope \"usage\": {\n\nevent: x\n\n".to_owned(),
            ": ping\n\ndata: {\"error\":{\"message\":\"x\"}}\n\ndata: {nope \"usage\": {\n\nevent: x\n\n".to_owned(), 0),
        ("a cut tail is passed on at the end",
            format!("{OPENAI_CHUNK_1}\n\n{OPENAI_CHUNK_USAGE}\n\ndata: {{\"cho"),
            format!("{OPENAI_CHUNK_1}\n\ndata: {{\"cho"), 1),
    ];
    for (name, input, want, dropped) in table {
        check_filter(name, &input, &want, dropped);
    }
}

/// The filter on what the proxy sends upstream, the tap on what comes back:
/// the client gets its own stream, the ledger gets the usage.
#[test]
fn filter_and_tap_together() {
    let mut request = json!({"model": "gpt-oss:20b", "messages": [], "stream": true});
    assert!(ask_for_usage(&mut request));
    let upstream = openai_stream();
    let mut tap = UsageTap::new(Wire::OpenAiSse);
    let mut filter = SseUsageFilter::new();
    let mut to_client = Vec::new();
    for chunk in upstream.as_bytes().chunks(37) {
        tap.feed(chunk);
        to_client.extend_from_slice(&filter.push(Bytes::copy_from_slice(chunk)));
    }
    to_client.extend_from_slice(&filter.finish());
    assert_eq!(to_client, openai_stream_without_usage().as_bytes());
    assert_eq!(tap.finish().usage, usage(176, 35, 1024, 0));
}

#[test]
fn filter_forwards_each_event_as_soon_as_it_is_complete() {
    let first = format!("{OPENAI_CHUNK_1}\n\n");
    let mut filter = SseUsageFilter::new();

    // A complete event goes out at once, sharing the chunk's memory.
    let chunk = Bytes::from(first.clone());
    let out = filter.push(chunk.clone());
    assert_eq!(out, chunk);
    assert_eq!(out.as_ptr(), chunk.as_ptr(), "copied instead of shared");

    // A partial event is held until its blank line arrives, then goes out
    // whole; the next event's start is held in turn.
    let second = format!("{OPENAI_CHUNK_2}\n\n");
    let (head, tail) = second.split_at(40);
    assert_eq!(filter.push(Bytes::from(head.to_owned())), Bytes::new());
    let out = filter.push(Bytes::from(format!("{tail}data: {{\"x\"")));
    assert_eq!(out, Bytes::from(second.clone()));
    assert_eq!(filter.push(Bytes::from(":1}\n")), Bytes::new());
    assert_eq!(
        filter.push(Bytes::from("\n")),
        Bytes::from("data: {\"x\":1}\n\n")
    );

    // The usage chunk and what follows in the same chunk: only it goes.
    let out = filter.push(Bytes::from(format!(
        "{OPENAI_CHUNK_USAGE}\n\ndata: [DONE]\n\n"
    )));
    assert_eq!(out, Bytes::from("data: [DONE]\n\n"));
    assert_eq!(filter.finish(), Bytes::new());
    assert_eq!(filter.dropped(), 1);
}

/// An event longer than the cap cannot be the usage chunk: it is passed on
/// as it comes rather than held.
#[test]
fn filter_passes_an_oversized_event_through_unheld() {
    // The cap stays above the usage chunk's own size (about 250 bytes).
    let long = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "z".repeat(1000)
    );
    let mut filter = SseUsageFilter::with_cap(300);
    let (head, tail) = long.split_at(500);
    assert_eq!(
        filter.push(Bytes::from(head.to_owned())),
        Bytes::from(head.to_owned())
    );
    assert_eq!(filter.pending.len(), 0);
    let usage_chunk = format!("{OPENAI_CHUNK_USAGE}\n\n");
    let out = filter.push(Bytes::from(format!("{tail}{usage_chunk}data: [DONE]\n\n")));
    assert_eq!(out, Bytes::from(format!("{tail}data: [DONE]\n\n")));
    assert_eq!(filter.dropped(), 1);

    let input = format!("{long}{long}{usage_chunk}");
    let (out, dropped) = filter_with_every_split(300, &input);
    assert!(out.iter().all(|o| o == &format!("{long}{long}")));
    assert!(dropped.iter().all(|&d| d == 1));
}

fn filter_with_every_split(cap: usize, input: &str) -> (Vec<String>, Vec<u32>) {
    let body = input.as_bytes();
    (0..=body.len())
        .map(|at| {
            let (a, b) = body.split_at(at);
            let (out, dropped) = filter(cap, &[a, b]);
            (String::from_utf8_lossy(&out).into_owned(), dropped)
        })
        .unzip()
}

#[test]
fn an_empty_chunk_between_cr_and_lf_changes_nothing() {
    // "\r" | "" | "\n" must stay one CRLF, not a line end plus an empty
    // line, which would end a multi-line event early.
    let multi_line = "event: message\ndata: {\"model\":\"m\",\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":5}}\n\ndata: [DONE]\n\n";
    for body in [crlf(&openai_stream()), crlf(multi_line)] {
        let whole_report = tap(Wire::OpenAiSse, DEFAULT_LINE_CAP, &[body.as_bytes()]);
        assert!(whole_report.usage.is_some() && whole_report.unreadable == 0);
        let (whole_out, _) = filter(DEFAULT_LINE_CAP, &[body.as_bytes()]);
        for at in body.match_indices('\r').map(|(at, _)| at + 1) {
            let (a, b) = body.as_bytes().split_at(at);
            let report = tap(Wire::OpenAiSse, DEFAULT_LINE_CAP, &[a, b"", b]);
            assert_eq!(report, whole_report, "split at {at}");
            let (out, _) = filter(DEFAULT_LINE_CAP, &[a, b"", b"", b]);
            assert_eq!(out, whole_out, "split at {at}");
        }
    }
}

// ---------------------------------------------------------------------------
// Asking for usage.

#[test]
fn asking_upstream_for_usage() {
    // request -> (asked already?, changed?, request after)
    let table = [
        (
            json!({"model": "m", "stream": true}),
            false,
            true,
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}}),
        ),
        (
            json!({"stream": true, "stream_options": null}),
            false,
            true,
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ),
        (
            json!({"stream": true, "stream_options": {"include_usage": false}}),
            false,
            true,
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ),
        (
            json!({"stream": true, "stream_options": {"continuous_usage_stats": true}}),
            false,
            true,
            json!({"stream": true, "stream_options": {"continuous_usage_stats": true, "include_usage": true}}),
        ),
        // Clawdbot asks itself: nothing to add, nothing to filter.
        (
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "store": false}),
            true,
            false,
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "store": false}),
        ),
        // Not streamed: the body carries usage anyway.
        (json!({"model": "m"}), false, false, json!({"model": "m"})),
        (
            json!({"stream": false}),
            false,
            false,
            json!({"stream": false}),
        ),
        (
            json!({"stream": "true"}),
            false,
            false,
            json!({"stream": "true"}),
        ),
        // Malformed options are the client's to fix, not ours to overwrite.
        (
            json!({"stream": true, "stream_options": "yes"}),
            false,
            false,
            json!({"stream": true, "stream_options": "yes"}),
        ),
        (
            json!({"stream": true, "stream_options": {"include_usage": "yes"}}),
            false,
            true,
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ),
        (json!([1, 2]), false, false, json!([1, 2])),
        (json!(null), false, false, json!(null)),
    ];
    for (mut request, asked, changed, after) in table {
        let before = request.clone();
        assert_eq!(request_wants_usage(&request), asked, "{before}");
        assert_eq!(ask_for_usage(&mut request), changed, "{before}");
        assert_eq!(request, after, "{before}");
        if changed {
            assert!(request_wants_usage(&request));
            assert!(!ask_for_usage(&mut request), "asking twice changes nothing");
        }
    }
}
