//! The shared fakes themselves: the rest of the suite trusts that FakeOllama
//! speaks Ollama's documented shapes and that the raw servers misbehave as
//! promised, so that is checked here.

use crate::support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;

async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST")
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn ndjson(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body)
        .expect("UTF-8")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .expect("UTF-8")
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .expect("every event is a data line")
                .to_owned()
        })
        .collect()
}

const STATS: [&str; 6] = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
];

#[tokio::test]
async fn native_listing_endpoints_match_the_documented_examples() {
    let fake = FakeOllama::start().await;
    fake.set_loaded(vec![FakeLoaded::documented()]);

    let root = client().get(fake.url()).send().await.unwrap();
    assert_eq!(root.status().as_u16(), 200);
    assert_eq!(root.text().await.unwrap(), "Ollama is running");

    let doc = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    assert_eq!(
        get_json(&format!("{}/api/version", fake.url())).await,
        (200, doc(DOC_VERSION_JSON))
    );
    assert_eq!(
        get_json(&format!("{}/api/tags", fake.url())).await,
        (200, doc(DOC_TAGS_JSON))
    );
    assert_eq!(
        get_json(&format!("{}/api/ps", fake.url())).await,
        (200, doc(DOC_PS_JSON))
    );

    assert_eq!(fake.count("/"), 1);
    assert_eq!(fake.count("/api/version"), 1);
    assert_eq!(fake.count("/api/tags"), 1);
    assert_eq!(fake.count("/api/ps"), 1);
    assert_eq!(fake.total_requests(), 4);
}

#[tokio::test]
async fn unknown_path_is_gos_404() {
    let fake = FakeOllama::start().await;
    let response = client()
        .get(format!("{}/api/nope", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.text().await.unwrap(), "404 page not found");
    assert_eq!(fake.count("/api/nope"), 1);
}

#[tokio::test]
async fn chat_streams_ndjson_ending_with_done_and_statistics() {
    let fake = FakeOllama::start().await;
    fake.set_reply("Hello there friend");

    let response = post(
        &format!("{}/api/chat", fake.url()),
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(content_type(&response), "application/x-ndjson");
    let lines = ndjson(&response.bytes().await.unwrap());

    let (last, content) = lines.split_last().unwrap();
    let text: String = content
        .iter()
        .map(|l| {
            assert_eq!(l["done"], json!(false));
            assert_eq!(l["model"], json!("llama3.2"));
            assert_eq!(l["message"]["role"], json!("assistant"));
            l["message"]["content"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello there friend");
    assert_eq!(content.len(), 3);
    assert_eq!(last["done"], json!(true));
    assert_eq!(last["done_reason"], json!("stop"));
    let usage = FakeUsage::default();
    assert_eq!(last["prompt_eval_count"], json!(usage.prompt_eval_count));
    assert_eq!(last["eval_count"], json!(usage.eval_count));
    for key in STATS {
        assert!(last[key].is_u64(), "{key} in {last}");
    }
    // Using a model loads it, as in Ollama.
    assert_eq!(fake.loaded().len(), 1);
    assert_eq!(fake.loaded()[0].model.name, "llama3.2:latest");
    assert_eq!(
        fake.last_request("/api/chat").unwrap().json()["messages"][0]["content"],
        json!("hi")
    );
}

#[tokio::test]
async fn chat_without_streaming_is_one_object() {
    let fake = FakeOllama::start().await;
    fake.set_usage(FakeUsage {
        prompt_eval_count: 7,
        eval_count: 11,
        ..FakeUsage::default()
    });

    let response = post(
        &format!("{}/api/chat", fake.url()),
        json!({"model": "llama3.2:latest", "stream": false, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(content_type(&response), "application/json; charset=utf-8");
    let object: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(object["done"], json!(true));
    assert_eq!(object["done_reason"], json!("stop"));
    assert_eq!(
        object["message"]["content"],
        json!("The sky is blue because of Rayleigh scattering.")
    );
    assert_eq!(object["prompt_eval_count"], json!(7));
    assert_eq!(object["eval_count"], json!(11));
}

#[tokio::test]
async fn generate_streams_responses_and_a_final_context() {
    let fake = FakeOllama::start().await;
    fake.set_reply("Blue sky");

    let response = post(
        &format!("{}/api/generate", fake.url()),
        json!({"model": "deepseek-r1", "prompt": "Why is the sky blue?"}),
    )
    .await;
    assert_eq!(content_type(&response), "application/x-ndjson");
    let lines = ndjson(&response.bytes().await.unwrap());
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["response"], json!("Blue"));
    assert_eq!(lines[1]["response"], json!(" sky"));
    let last = &lines[2];
    assert_eq!(last["done"], json!(true));
    assert_eq!(last["response"], json!(""));
    assert_eq!(last["context"], json!([1, 2, 3]));
    for key in STATS {
        assert!(last[key].is_u64(), "{key} in {last}");
    }
}

#[tokio::test]
async fn empty_prompt_loads_and_keep_alive_zero_unloads() {
    let fake = FakeOllama::start().await;
    let url = format!("{}/api/generate", fake.url());

    let load: Value = post(&url, json!({"model": "llama3.2"}))
        .await
        .json_value()
        .await;
    assert_eq!(load["done"], json!(true));
    assert_eq!(load["done_reason"], json!("load"));
    assert!(load.get("eval_count").is_none(), "no usage on a load");
    assert_eq!(fake.loaded().len(), 1);

    let unload: Value = post(&url, json!({"model": "llama3.2", "keep_alive": 0}))
        .await
        .json_value()
        .await;
    assert_eq!(unload["done_reason"], json!("unload"));
    assert!(fake.loaded().is_empty());

    let chat_unload: Value = post(
        &format!("{}/api/chat", fake.url()),
        json!({"model": "llama3.2", "messages": [], "keep_alive": 0}),
    )
    .await
    .json_value()
    .await;
    assert_eq!(chat_unload["done_reason"], json!("unload"));
    assert_eq!(chat_unload["message"]["content"], json!(""));
}

#[tokio::test]
async fn unknown_model_and_bad_body_get_ollama_errors() {
    let fake = FakeOllama::start().await;

    let response = post(
        &format!("{}/api/chat", fake.url()),
        json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        response.json_value().await,
        json!({"error": "model \"nope\" not found, try pulling it first"})
    );

    let response = client()
        .post(format!("{}/api/generate", fake.url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.json_value().await["error"].is_string());

    let response = post(
        &format!("{}/v1/chat/completions", fake.url()),
        json!({"model": "nope"}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 404);
    let body = response.json_value().await;
    assert_eq!(body["error"]["type"], json!("not_found_error"));
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn openai_stream_has_usage_chunk_only_when_asked() {
    let fake = FakeOllama::start().await;
    fake.set_reply("Hi you");
    let url = format!("{}/v1/chat/completions", fake.url());
    let messages = json!([{"role": "user", "content": "hi"}]);

    // Without include_usage: content chunks, a finish chunk, [DONE].
    let response = post(
        &url,
        json!({"model": "llama3.2", "stream": true, "messages": messages}),
    )
    .await;
    assert_eq!(content_type(&response), "text/event-stream");
    let events = sse_data(&response.bytes().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks.len(), 3);
    for chunk in &chunks {
        assert_eq!(chunk["object"], json!("chat.completion.chunk"));
        assert_eq!(chunk["model"], json!("llama3.2"));
        assert!(chunk.get("usage").is_none());
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], json!("Hi"));
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], json!(" you"));
    assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], json!("stop"));

    // With include_usage: one more chunk, choices empty, usage set.
    let response = post(
        &url,
        json!({"model": "llama3.2", "stream": true, "stream_options": {"include_usage": true}, "messages": messages}),
    )
    .await;
    let events = sse_data(&response.bytes().await.unwrap());
    assert_eq!(events.len(), 5);
    assert_eq!(events[4], "[DONE]");
    let usage_chunk: Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    let u = FakeUsage::default();
    assert_eq!(
        usage_chunk["usage"],
        json!({
            "prompt_tokens": u.prompt_eval_count,
            "completion_tokens": u.eval_count,
            "total_tokens": u.prompt_eval_count + u.eval_count,
        })
    );
    assert_eq!(
        fake.last_request("/v1/chat/completions").unwrap().json()["stream_options"]["include_usage"],
        json!(true)
    );
    assert_eq!(fake.count("/v1/chat/completions"), 2);
}

#[tokio::test]
async fn openai_without_stream_is_one_completion_with_usage() {
    let fake = FakeOllama::start().await;
    let response = post(
        &format!("{}/v1/chat/completions", fake.url()),
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(content_type(&response), "application/json; charset=utf-8");
    let body = response.json_value().await;
    assert_eq!(body["object"], json!("chat.completion"));
    assert_eq!(body["choices"][0]["message"]["role"], json!("assistant"));
    assert_eq!(body["choices"][0]["finish_reason"], json!("stop"));
    assert_eq!(body["usage"]["prompt_tokens"], json!(26));
    assert_eq!(body["usage"]["completion_tokens"], json!(282));
    assert_eq!(body["usage"]["total_tokens"], json!(308));
}

#[tokio::test]
async fn openai_models_lists_installed_models() {
    let fake = FakeOllama::start().await;
    fake.set_model_names(&["gpt-oss:20b", "someone/custom"]);
    let (status, body) = get_json(&format!("{}/v1/models", fake.url())).await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], json!("list"));
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], json!("gpt-oss:20b"));
    assert_eq!(data[0]["object"], json!("model"));
    assert_eq!(data[0]["owned_by"], json!("library"));
    assert!(data[0]["created"].as_i64().unwrap() > 0);
    assert_eq!(data[1]["id"], json!("someone/custom:latest"));
    assert_eq!(data[1]["owned_by"], json!("someone"));
}

#[tokio::test]
async fn failures_can_be_set_per_path_and_cleared() {
    let fake = FakeOllama::start().await;
    let tags = format!("{}/api/tags", fake.url());
    let version = format!("{}/api/version", fake.url());

    fake.fail_path("/api/tags", 500, "boom");
    assert_eq!(get_json(&tags).await, (500, json!({"error": "boom"})));
    assert_eq!(get_json(&version).await.0, 200);

    fake.fail_all(503, "busy");
    assert_eq!(get_json(&version).await, (503, json!({"error": "busy"})));
    let (status, body) = get_json(&format!("{}/v1/models", fake.url())).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["message"], json!("busy"));

    fake.clear_failures();
    assert_eq!(get_json(&tags).await.0, 200);
    // Failed requests are counted too.
    assert_eq!(fake.count("/api/tags"), 2);
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_reuses_the_port() {
    let fake = FakeOllama::start().await;
    let port = fake.port();
    assert!(fake.is_running());

    fake.stop().await;
    assert!(!fake.is_running());
    let refused = tokio::net::TcpStream::connect(fake.addr()).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );

    fake.restart().await;
    assert_eq!(fake.port(), port);
    assert_eq!(
        get_json(&format!("{}/api/version", fake.url())).await.0,
        200
    );
}

#[tokio::test]
async fn stop_cuts_a_stream_in_flight() {
    let fake = FakeOllama::start().await;
    fake.set_reply("one two three four five six");
    // Slow enough that the stream is surely still open when stopped.
    fake.set_chunk_delay(Duration::from_secs(30));

    let response = post(
        &format!("{}/api/chat", fake.url()),
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let mut stream = response.bytes_stream();
    let first = stream
        .next()
        .await
        .expect("a first chunk")
        .expect("readable");
    assert!(std::str::from_utf8(&first).unwrap().contains("\"one\""));

    fake.stop().await;
    let rest = tokio::time::timeout(deadline(Duration::ZERO), async {
        let mut outcome = Ok(());
        while let Some(chunk) = stream.next().await {
            if let Err(e) = chunk {
                outcome = Err(e);
                break;
            }
        }
        outcome
    })
    .await
    .expect("the cut stream must end, not hang");
    assert!(rest.is_err(), "an unfinished chunked body is an error");
}

#[tokio::test]
async fn stream_faults_error_line_or_cut() {
    let fake = FakeOllama::start().await;
    fake.set_reply("a b c d");
    let url = format!("{}/api/chat", fake.url());
    let request = json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]});

    fake.set_stream_fault(StreamFault::ErrorAfter(2));
    let response = post(&url, request.clone()).await;
    assert_eq!(response.status().as_u16(), 200);
    let lines = ndjson(&response.bytes().await.unwrap());
    assert_eq!(lines.len(), 3);
    assert!(lines[2]["error"].is_string());

    fake.set_stream_fault(StreamFault::CutAfter(1));
    let response = post(&url, request).await;
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    let mut ended_in_error = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                ended_in_error = true;
                break;
            }
        }
    }
    assert!(ended_in_error, "a cut chunked body is an error");
    // The first chunk arrived before the cut, and nothing after it.
    let lines = ndjson(&received);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message"]["content"], json!("a"));
}

#[tokio::test]
async fn dropping_the_fake_frees_its_port() {
    let fake = FakeOllama::start().await;
    let addr = fake.addr();
    drop(fake);
    // Aborted tasks are dropped at the runtime's next turn; poll (bounded)
    // until the port refuses.
    let mut refused = false;
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the port must close after drop");
}

#[tokio::test]
async fn hanging_server_accepts_and_never_answers() {
    let hang = HangingServer::start().await;
    let result = client().get(hang.url()).timeout(SHORT_TIMEOUT).send().await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    assert!(eventually(|| hang.accepted() == 1).await);
}

#[tokio::test]
async fn garbage_server_routes_and_counts() {
    let garbage = GarbageServer::start_routes(
        vec![("/api/version", Garbage::Json(DOC_VERSION_JSON.into()))],
        Garbage::Html,
    )
    .await;
    let (status, body) = get_json(&format!("{}/api/version?x=1", garbage.url())).await;
    assert_eq!((status, body), (200, json!({"version": "0.5.1"})));
    let html = client()
        .get(format!("{}/api/tags", garbage.url()))
        .send()
        .await
        .unwrap();
    assert!(content_type(&html).starts_with("text/html"));
    assert_eq!(garbage.hits(), 2);

    let half = GarbageServer::start(Garbage::HalfJson).await;
    let body = client()
        .get(half.url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, Garbage::half_json());
    assert!(serde_json::from_str::<Value>(&body).is_err());
}

#[tokio::test]
async fn a_raw_ollama_lists_as_documented_hangs_up_and_counts_what_it_sent() {
    let raw = GarbageServer::ollama(Garbage::HangUp).await;
    let (status, tags) = get_json(&format!("{}/api/tags", raw.url())).await;
    assert_eq!(status, 200);
    assert_eq!(tags, serde_json::from_str::<Value>(DOC_TAGS_JSON).unwrap());
    let (_, version) = get_json(&format!("{}/api/version", raw.url())).await;
    assert_eq!(version, json!({"version": "0.5.1"}));
    let sent = raw.bytes_sent();
    assert!(sent > DOC_TAGS_JSON.len(), "{sent}");
    // Anything else: the connection closes without a byte.
    let hung_up = client()
        .post(format!("{}/api/chat", raw.url()))
        .body("{}")
        .send()
        .await;
    assert!(hung_up.is_err(), "{hung_up:?}");
    assert!(eventually(|| raw.hits() == 3).await);
    assert_eq!(raw.bytes_sent(), sent);

    let endless = GarbageServer::start(Garbage::EndlessBody).await;
    let mut body = client()
        .get(endless.url())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut read = 0;
    while read < 1 << 20 {
        read += body.next().await.expect("more").expect("bytes").len();
    }
    drop(body);
    assert!(
        endless.bytes_sent() >= read,
        "{} < {read}",
        endless.bytes_sent()
    );
}

#[tokio::test]
async fn a_raw_get_sends_exactly_the_headers_given() {
    let fake = FakeOllama::start().await;
    let answer = http::get(fake.addr(), "/", &[("Host", "localhost")]).await;
    assert_eq!(answer.status, 200);
    assert!(answer.head.starts_with("HTTP/1.1 200"), "{}", answer.head);
    assert_eq!(answer.body, "Ollama is running");
    let addr = fake.addr();
    let blocking = tokio::task::spawn_blocking(move || {
        http::get_blocking(addr, "/api/version", &[("Host", "localhost")])
    })
    .await
    .unwrap()
    .expect("an answer");
    assert_eq!(blocking.status, 200, "{blocking:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&blocking.body).unwrap(),
        json!({"version": "0.5.1"})
    );
    assert_eq!(
        http::parse("HTTP/1.1 404 Not Found\r\nA: b\r\n\r\nbody"),
        Some(http::Answer {
            status: 404,
            head: "HTTP/1.1 404 Not Found\r\nA: b".into(),
            body: "body".into(),
        })
    );
    assert_eq!(http::parse("not HTTP"), None);
}

#[test]
fn a_test_config_replaces_base_keys_never_repeats_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = TestConfig::one_machine(dir.path(), "http://127.0.0.1:9")
        .set("probes", "timeout_ms", 500)
        .set(
            "api",
            "allowed_hosts",
            Toml::new(r#"["fleet.example.ts.net"]"#),
        )
        .set("heal", "mode", "off")
        .heal_command("restart-ollama", &["say", "it's \"quoted\""])
        .ollama_machine("peer", "Peer", "http://127.0.0.1:10")
        .raw("[[routes]]\nmodel = \"qwen3:8b\"\nmachines = [\"peer\", \"local\"]");
    let text = config.text();
    assert_eq!(text.matches("timeout_ms").count(), 1, "{text}");
    let parsed = config.config();
    assert_eq!(parsed.this_machine.as_deref(), Some("local"));
    assert_eq!(parsed.data_dir.as_deref(), Some(dir.path()));
    assert_eq!(parsed.probes.timeout_ms, 500);
    assert_eq!(parsed.probes.ollama_interval_secs, 1);
    assert_eq!(
        parsed.openclaw.config_path.as_deref(),
        Some(dir.path().join("none.json").as_path())
    );
    assert_eq!(
        parsed.heal.commands["restart-ollama"],
        vec![vec!["say".to_owned(), "it's \"quoted\"".to_owned()]]
    );
    let ids: Vec<&str> = parsed.machines.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["local", "peer"]);
    assert_eq!(parsed.routes[0].machines, ["peer", "local"]);
    let unset = config.unset("probes", "timeout_ms").config();
    assert_eq!(
        unset.probes.timeout_ms,
        clawfleet::config::Config::empty().probes.timeout_ms
    );
}

#[tokio::test]
async fn free_closed_port_refuses() {
    let port = free_closed_port();
    let result = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert_eq!(
        result.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
}

/// Reads a response body as JSON.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.expect("body")).expect("JSON body")
    }
}
