//! The inference proxy end to end: a real daemon, fake Ollamas speaking the
//! documented formats on real sockets, reqwest as the client, the ledger
//! read back from its SQLite file.

use crate::support;

use std::time::Duration;

use clawfleet::daemon::{self, Running};
use clawfleet::ledger::Record;
use serde_json::{Value, json};
use support::{FakeOllama, Garbage, GarbageServer, HangingServer, StreamFault, TestConfig};

struct Fleet {
    running: Running,
    data: tempfile::TempDir,
    proxy: String,
    client: reqwest::Client,
}

/// A daemon whose machine `local` has the Ollama at `local` and whose peer
/// `peer` has the one at `peer`, with small proxy limits; `edit` changes
/// the config further (more proxy keys, `[[routes]]`).
async fn start_with(local: &str, peer: &str, edit: impl FnOnce(TestConfig) -> TestConfig) -> Fleet {
    let data = tempfile::tempdir().unwrap();
    let config = TestConfig::new("local", data.path())
        .set("proxy", "connect_timeout_ms", 500)
        .set("proxy", "first_byte_timeout_secs", 2)
        .set("proxy", "max_body_bytes", 65536)
        .set("probes", "timeout_ms", 500)
        .ollama_machine("local", "Local", local)
        .ollama_machine("peer", "Peer", peer);
    let running = edit(config).start().await;
    let proxy = format!("http://{}", running.proxy_addr);
    Fleet {
        running,
        data,
        proxy,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// [`start_with`] the config as it is.
async fn start(local: &str, peer: &str) -> Fleet {
    start_with(local, peer, |c| c).await
}

/// Two machines whose Ollamas have these models, both probed.
async fn two(local_models: &[&str], peer_models: &[&str]) -> (FakeOllama, FakeOllama, Fleet) {
    let local = FakeOllama::start().await;
    let peer = FakeOllama::start().await;
    local.set_model_names(local_models);
    peer.set_model_names(peer_models);
    let fleet = start(&local.url(), &peer.url()).await;
    fleet.probed(2).await;
    (local, peer, fleet)
}

/// A daemon whose only Ollama is `local` (the peer's is a closed port), once
/// the health poll has seen it.
async fn alone(local: &FakeOllama) -> Fleet {
    let fleet = start(&local.url(), &support::closed_url()).await;
    fleet.probed(1).await;
    fleet
}

impl Fleet {
    /// Waits until the health poll has seen `n` Ollamas answer.
    async fn probed(&self, n: usize) {
        support::ollamas_up(&self.running, n).await;
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.proxy))
            .header("authorization", "Bearer ollama-dummy-key")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The ledger's records, newest first, once `n` are there.
    async fn records(&self, n: usize) -> Vec<Record> {
        support::ledger_records(self.data.path(), n).await
    }
}

fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn clawdbot_style_streaming_chat_is_served_and_metered() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["gpt-oss:20b"]);
    local.set_reply("Hello from the fleet");
    let fleet = alone(&local).await;

    // What Clawdbot 2026.1 sends (interop/clawdbot.md).
    let response = fleet
        .post(
            "/v1/chat/completions",
            json!({
                "model": "gpt-oss:20b",
                "messages": [
                    {"role": "developer", "content": "You are Clawd."},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]}
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "store": false,
                "max_completion_tokens": 512,
                "tools": [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-clawfleet-machine"], "local");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let chunks = sse_data(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from the fleet");
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("usage chunk kept: the client asked");
    assert_eq!(usage["choices"], json!([]));

    let sent = local.last_request("/v1/chat/completions").unwrap().json();
    assert_eq!(
        sent["messages"][0]["role"], "developer",
        "body passed through unchanged"
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "noop");

    let records = fleet.records(1).await;
    let r = &records[0];
    assert_eq!(r.api, "openai");
    assert_eq!(r.endpoint, "/v1/chat/completions");
    assert_eq!(r.machine.as_deref(), Some("local"));
    assert_eq!(r.requested_model.as_deref(), Some("gpt-oss:20b"));
    assert_eq!(r.outcome, "ok");
    assert_eq!(r.status, 200);
    assert!(r.stream);
    assert_eq!(r.fallback_depth, 0);
    let u = r.usage.expect("usage metered");
    let fake = local.usage();
    assert_eq!(u.input_tokens + u.cache_read_tokens, fake.prompt_eval_count);
    assert_eq!(u.output_tokens, fake.eval_count);
    assert!(r.ttfb_ms.is_some());
    assert!(r.client.contains("127.0.0.1"), "{}", r.client);
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn usage_is_metered_even_when_the_client_did_not_ask_and_the_extra_chunk_is_dropped() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = alone(&local).await;

    let response = fleet
        .post(
            "/v1/chat/completions",
            json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let chunks = sse_data(&text);
    assert!(!chunks.is_empty());
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "no usage chunk: {text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let sent = local.last_request("/v1/chat/completions").unwrap().json();
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "asked upstream"
    );
    let r = &fleet.records(1).await[0];
    assert_eq!(r.usage.unwrap().output_tokens, local.usage().eval_count);
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn ollama_native_chat_streams_ndjson_and_non_streaming_answers_whole() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = alone(&local).await;

    let response = fleet
        .post(
            "/api/chat",
            json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["eval_count"], local.usage().eval_count);

    let response = fleet
        .post(
            "/api/generate",
            json!({"model": "qwen3:8b", "prompt": "hi", "stream": false}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let whole: Value = response.json().await.unwrap();
    assert_eq!(whole["done"], true);

    let records = fleet.records(2).await;
    assert_eq!(records[0].endpoint, "/api/generate");
    assert!(!records[0].stream);
    assert_eq!(records[1].endpoint, "/api/chat");
    assert!(records[1].stream);
    for r in &records {
        assert_eq!(r.api, "ollama");
        assert_eq!(
            r.usage.unwrap().input_tokens,
            local.usage().prompt_eval_count
        );
    }
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_failing_machine_is_skipped_before_the_first_byte() {
    let local = FakeOllama::start().await;
    let peer = FakeOllama::start().await;
    for f in [&local, &peer] {
        f.set_model_names(&["gpt-oss:20b"]);
    }
    let fleet = start(&local.url(), &peer.url()).await;
    fleet.probed(2).await;

    // This machine answers 500: the peer serves, the headers say so.
    local.fail_all(500, "model runner crashed");
    let response = fleet
        .post(
            "/api/chat",
            json!({"model": "gpt-oss:20b", "messages": [], "stream": false}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-clawfleet-machine"], "peer");
    let fallbacks = response.headers()["x-clawfleet-fallbacks"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        fallbacks.contains("local (HTTP 500: model runner crashed)"),
        "{fallbacks}"
    );
    let r = &fleet.records(1).await[0];
    assert_eq!(r.machine.as_deref(), Some("peer"));
    assert_eq!(r.fallback_depth, 1);

    // A pin goes to the named machine only.
    let response = fleet
        .post(
            "/api/chat",
            json!({"model": "peer/gpt-oss:20b", "messages": [], "stream": false}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-clawfleet-machine"], "peer");
    assert_eq!(
        peer.last_request("/api/chat").unwrap().json()["model"],
        "gpt-oss:20b"
    );
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_black_holed_machine_costs_no_request_once_the_health_poll_saw_it() {
    let hang = HangingServer::start().await;
    let peer = FakeOllama::start().await;
    peer.set_model_names(&["qwen3:8b"]);
    // The route puts the hanging machine first.
    let fleet = start_with(&hang.url(), &peer.url(), |c| {
        c.raw("[[routes]]\nmodel = \"qwen3:8b\"\nmachines = [\"local\", \"peer\"]\n")
    })
    .await;
    fleet.probed(1).await;
    // Wait for the poll's verdict on the hanging one.
    support::until(&fleet.running, 30, "the poll's verdict on local", |s| {
        s.machine("local")
            .and_then(|m| m.ollama.as_ref())
            .is_some_and(|o| o.checked_at.is_some())
    })
    .await;
    for _ in 0..3 {
        let response = fleet
            .post(
                "/api/chat",
                json!({"model": "qwen3:8b", "messages": [], "stream": false}),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-clawfleet-machine"], "peer");
        assert!(
            response.headers().get("x-clawfleet-fallbacks").is_none(),
            "the dead machine was not tried"
        );
    }
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn repeated_failures_open_a_circuit_so_later_requests_skip_the_machine() {
    let local = FakeOllama::start().await;
    let peer = FakeOllama::start().await;
    for f in [&local, &peer] {
        f.set_model_names(&["qwen3:8b"]);
    }
    // Healthy to the poll, failing at inference.
    local.fail_path("/api/chat", 500, "GPU hung");
    let fleet = start(&local.url(), &peer.url()).await;
    fleet.probed(2).await;
    let mut reasons = Vec::new();
    for _ in 0..4 {
        let response = fleet
            .post(
                "/api/chat",
                json!({"model": "qwen3:8b", "messages": [], "stream": false}),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-clawfleet-machine"], "peer");
        reasons.push(
            response.headers()["x-clawfleet-fallbacks"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(
        reasons[..3]
            .iter()
            .all(|r| r.contains("HTTP 500: GPU hung")),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("circuit open"), "{reasons:?}");
    assert_eq!(
        local.count("/api/chat"),
        3,
        "the fourth never reached the failing machine"
    );

    // The same story in /metrics, from the ledger and the circuits.
    let api = fleet.running.api_addrs[0];
    let metrics = support::poll(
        20,
        "the proxy's figures in /metrics",
        || async {
            fleet
                .client
                .get(format!("http://{api}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        },
        |text| {
            text.contains("clawfleet_proxy_requests 4")
                && text.contains("clawfleet_proxy_circuit_open{machine=\"local\"} 1")
        },
    )
    .await;
    assert!(metrics.contains("clawfleet_proxy_fallbacks 4"), "{metrics}");
    assert!(
        metrics.contains("clawfleet_proxy_machine_share{machine=\"peer\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("clawfleet_proxy_latency_ms{kind=\"duration\",quantile=\"0.5\"}"),
        "{metrics}"
    );
    let scrape =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "clawfleet_proxy_tokens")
    );
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn when_nothing_can_serve_clawdbot_gets_an_overloaded_503_that_makes_it_fall_back() {
    let local = FakeOllama::start().await;
    let peer = FakeOllama::start().await;
    for f in [&local, &peer] {
        f.set_model_names(&["gpt-oss:20b"]);
    }
    let fleet = start(&local.url(), &peer.url()).await;
    fleet.probed(2).await;
    local.fail_all(500, "out of memory");
    peer.fail_all(503, "busy");

    let response = fleet
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-oss:20b", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("overloaded"), "{message}");
    assert!(
        message.contains("local (HTTP 500: out of memory)"),
        "{message}"
    );
    assert!(message.contains("peer (HTTP 503: busy)"), "{message}");

    // Ollama's own shape on the native API.
    let response = fleet
        .post("/api/chat", json!({"model": "gpt-oss:20b", "messages": []}))
        .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("overloaded"));

    let records = fleet.records(2).await;
    assert!(
        records
            .iter()
            .all(|r| r.status == 503 && r.outcome == "error")
    );
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_dies_midway_ends_with_an_error_in_the_clients_format() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    local.set_reply("one two three four five six");
    local.set_stream_fault(StreamFault::CutAfter(2));
    let fleet = alone(&local).await;

    let text = fleet
        .post(
            "/api/chat",
            json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("broke off"),
        "{text}"
    );

    let text = fleet
        .post(
            "/v1/chat/completions",
            json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    let events = sse_data(&text);
    assert!(
        events.last().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "never a clean end after a cut");

    let records = fleet.records(2).await;
    assert!(
        records
            .iter()
            .all(|r| r.outcome == "upstream_failed_midstream"),
        "{records:?}"
    );
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_in_the_clients_shape() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = alone(&local).await;
    let raw = |path: &'static str, body: Vec<u8>| {
        fleet
            .client
            .post(format!("{}{path}", fleet.proxy))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let r = raw("/v1/chat/completions", b"{\"model\": ".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );

    let r = raw("/api/chat", b"{\"messages\": []}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("no model"),
        "{body}"
    );

    // A model no answering Ollama has, while the peer is down: it may be
    // there, so nothing can serve it now (the answer agents move on from).
    let r = raw(
        "/v1/chat/completions",
        b"{\"model\": \"llama9\", \"messages\": []}".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "120");
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("llama9") && message.contains("peer not answering"),
        "{message}"
    );

    let big = format!(
        "{{\"model\": \"qwen3:8b\", \"prompt\": \"{}\"}}",
        "x".repeat(70_000)
    );
    let r = raw("/api/generate", big.into_bytes()).await.unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("max_body_bytes"));

    let r = raw("/api/generate", vec![0xff, 0xfe, b'{']).await.unwrap();
    assert_eq!(r.status(), 400, "invalid UTF-8");
    assert_eq!(
        local.count("/api/generate"),
        0,
        "nothing bad reached Ollama"
    );
    // Refused requests are in the ledger too, with why.
    let records = fleet.records(5).await;
    let mut statuses: Vec<u16> = records.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [400, 400, 400, 413, 503]);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == "error" && r.error.is_some() && r.machine.is_none())
    );
    let unknown = records.iter().find(|r| r.status == 503).unwrap();
    assert_eq!(unknown.requested_model.as_deref(), Some("llama9"));
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn web_pages_and_foreign_hosts_cannot_use_the_proxy() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = alone(&local).await;
    let body = json!({"model": "qwen3:8b", "messages": [], "stream": false});
    let own_page = format!("http://localhost:{}", fleet.running.api_addrs[0].port());
    // The inference paths (the proxy's hot path, `/via/` included) and the
    // merged listings (through its router) are all behind the same check.
    let refused = [
        ("/api/chat", "origin", "https://evil.example", "a web page"),
        (
            "/api/chat",
            "origin",
            own_page.as_str(),
            "not even ClawFleet's own dashboard",
        ),
        ("/api/chat", "host", "evil.example", "a foreign Host"),
        (
            "/via/local/api/chat",
            "origin",
            "https://evil.example",
            "a web page, /via/",
        ),
        (
            "/via/local/api/chat",
            "host",
            "evil.example",
            "a foreign Host, /via/",
        ),
        (
            "/api/tags",
            "host",
            "evil.example",
            "a foreign Host, a listing",
        ),
    ];
    for (path, name, value, what) in refused {
        let url = format!("{}{path}", fleet.proxy);
        let request = if path == "/api/tags" {
            fleet.client.get(&url)
        } else {
            fleet.client.post(&url).json(&body)
        };
        let r = request.header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 403, "{what}: {path} with {name}: {value}");
    }
    assert_eq!(local.count("/api/chat"), 0);
    // A request the guard lets through is served, on both paths.
    for path in ["/api/chat", "/via/local/api/chat"] {
        let url = format!("{}{path}", fleet.proxy);
        let r = fleet.client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    assert_eq!(local.count("/api/chat"), 2);
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn tags_ps_models_and_version_are_merged_across_machines() {
    let local = FakeOllama::start().await;
    let peer = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b", "gpt-oss:20b"]);
    peer.set_model_names(&["gpt-oss:20b", "qwen3-fast:8b"]);
    let loaded = peer
        .models()
        .into_iter()
        .find(|m| m.name == "gpt-oss:20b")
        .unwrap();
    peer.set_loaded(vec![support::FakeLoaded::of(&loaded)]);
    local.set_version("0.12.6");
    let fleet = start(&local.url(), &peer.url()).await;
    fleet.probed(2).await;

    let tags: Value = fleet
        .client
        .get(format!("{}/api/tags", fleet.proxy))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = tags["models"].as_array().unwrap();
    let find = |name: &str| {
        models
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {tags}"))
    };
    assert_eq!(find("gpt-oss:20b")["machines"], json!(["local", "peer"]));
    assert_eq!(find("qwen3-fast:8b")["machines"], json!(["peer"]));
    assert_eq!(find("peer/gpt-oss:20b")["machine"], "peer");
    assert!(find("local/qwen3:8b")["size"].is_u64());
    // The fields Ollama's clients read, as the machine reported them.
    let qwen = find("qwen3:8b");
    assert_eq!(
        qwen["digest"],
        "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"
    );
    assert_eq!(qwen["details"]["format"], "gguf");
    assert_eq!(qwen["details"]["quantization_level"], "Q4_K_M");

    let ps: Value = fleet
        .client
        .get(format!("{}/api/ps", fleet.proxy))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ps["models"][0]["name"], "gpt-oss:20b");
    assert_eq!(ps["models"][0]["machine"], "peer");

    let list: Value = fleet
        .client
        .get(format!("{}/v1/models", fleet.proxy))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "qwen3:8b",
        "gpt-oss:20b",
        "qwen3-fast:8b",
        "local/qwen3:8b",
        "peer/gpt-oss:20b",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let version: Value = fleet
        .client
        .get(format!("{}/api/version", fleet.proxy))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["version"], "0.12.6");
    let root = fleet
        .client
        .get(&fleet.proxy)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(root, "Ollama is running");
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_cancels_upstream_and_is_recorded() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    local.set_reply("a b c d e f g h i j k l m n o p");
    local.set_chunk_delay(Duration::from_millis(200));
    let fleet = alone(&local).await;
    let mut response = fleet
        .post(
            "/api/chat",
            json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert_eq!(local.abandoned_streams(), 0);
    drop(response);
    let records = fleet.records(1).await;
    assert_eq!(records[0].outcome, "client_disconnected");
    // The generation upstream is cancelled too: the fake sees its stream
    // abandoned (the proxy closed the connection) long before its end.
    support::eventually(|| local.abandoned_streams() > 0).await;
    assert_eq!(
        local.abandoned_streams(),
        1,
        "the upstream stream was not cancelled"
    );
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn streaming_is_not_buffered() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    local.set_reply("slow words arrive one by one");
    local.set_chunk_delay(Duration::from_millis(300));
    let fleet = alone(&local).await;
    let mut response = fleet
        .post(
            "/api/chat",
            json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    // The first word reaches the client while the rest are still being
    // generated: the chunk arrives before the fake has sent its last one.
    let first = response.chunk().await.unwrap().unwrap();
    let line: Value = serde_json::from_slice(first.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["done"], false);
    assert!(local.last_request("/api/chat").is_some());
    let rest = response.text().await.unwrap();
    assert!(rest.contains("\"done\":true"));
    assert_eq!(local.abandoned_streams(), 0, "a stream read to its end");
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn anthropic_messages_pass_through_and_are_metered_without_the_key() {
    let (anthropic, task) = support::fake_anthropic().await;
    let closed = support::closed_url();
    let fleet = start_with(&closed, &closed, |c| {
        c.set("proxy", "anthropic_url", &anthropic)
            // The user's own keychain stays out of this test.
            .set("proxy", "anthropic_key_keychain", false)
    })
    .await;
    let url = format!("{}/v1/messages", fleet.proxy);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});

    let r = fleet
        .client
        .post(&url)
        .header("x-api-key", "sk-ant-test-123")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-clawfleet-machine"], "anthropic");
    let text = r.text().await.unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    assert!(text.contains("\"text\":\"Hello\""), "{text}");

    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let r = fleet
        .client
        .post(&url)
        .header("x-api-key", "sk-ant-test-123")
        .json(&whole)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "anthropic-version added when the client sent none"
    );

    // A wrong key: Anthropic's own answer comes back unchanged.
    let r = fleet
        .client
        .post(&url)
        .header("x-api-key", "sk-ant-wrong")
        .json(&whole)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["type"], "authentication_error");
    // An OAuth token (a Claude subscription) goes as the client sent it.
    let r = fleet
        .client
        .post(&url)
        .header("authorization", support::ANTHROPIC_TEST_BEARER)
        .json(&whole)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the bearer token was passed on");
    // No key at all and no key file: a clear refusal in Anthropic's shape.
    let r = fleet.client.post(&url).json(&whole).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic_key_file"),
        "{err}"
    );

    let records = fleet.records(5).await;
    let streamed = records
        .iter()
        .find(|r| r.stream && r.status == 200)
        .unwrap();
    let u = streamed.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_write_tokens,
            u.cache_read_tokens,
            u.output_tokens
        ),
        (25, 10, 5, 15)
    );
    let plain = records
        .iter()
        .find(|r| !r.stream && r.status == 200)
        .unwrap();
    assert_eq!(plain.usage.unwrap().output_tokens, 3);
    let all = serde_json::to_string(&records).unwrap();
    assert!(
        !all.contains("sk-ant-test-123")
            && !all.contains("sk-ant-wrong")
            && !all.contains("sk-ant-oat01"),
        "no key in the ledger"
    );
    fleet.running.shutdown().await;
    task.abort();
}

#[cfg(unix)]
#[tokio::test]
async fn an_anthropic_key_file_is_used_only_when_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (anthropic, task) = support::fake_anthropic().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("anthropic.key");
    std::fs::write(&key, "sk-ant-test-123\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = TestConfig::one_machine(&dir.path().join("data"), &support::closed_url())
        .set("proxy", "anthropic_url", &anthropic)
        .set("proxy", "anthropic_key_file", &key)
        .config();
    let err = daemon::start(config.clone())
        .await
        .err()
        .expect("refuses a readable key file");
    let message = err.to_string();
    assert!(
        message.contains("chmod 600") && message.contains("anthropic.key"),
        "{message}"
    );
    assert!(
        !message.contains("sk-ant"),
        "the key itself is never printed"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let running = daemon::start(config).await.unwrap();
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{}/v1/messages", running.proxy_addr))
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the key file's key was sent");
    running.shutdown().await;
    task.abort();
}

#[tokio::test]
async fn a_backend_that_answers_html_is_skipped_like_a_failure() {
    // Something that is not Ollama answers on the first machine's port.
    let html = GarbageServer::start(Garbage::Html).await;
    let peer = FakeOllama::start().await;
    peer.set_model_names(&["qwen3:8b"]);
    let fleet = start_with(&html.url(), &peer.url(), |c| {
        c.raw("[[routes]]\nmodel = \"qwen3:8b\"\nmachines = [\"local\", \"peer\"]\n")
    })
    .await;
    fleet.probed(1).await;
    // The health poll saw HTML too, so `local` is skipped without a try;
    // pin it to see the answer itself judged.
    let r = fleet
        .post(
            "/api/chat",
            json!({"model": "local/qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("text/html"), "{message}");
    let r = fleet
        .post("/api/chat", json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "stream": false}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-clawfleet-machine"], "peer");
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_load_request_is_served_but_not_billed() {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = alone(&local).await;
    // An empty chat loads the model (Ollama's documented idiom).
    let r = fleet
        .post("/api/chat", json!({"model": "qwen3:8b", "messages": []}))
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"done_reason\":\"load\""), "{text}");
    let rec = &fleet.records(1).await[0];
    assert_eq!(rec.outcome, "ok");
    assert_eq!(rec.usage, None, "loading a model is not usage");
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_truncated_chunked_body_is_a_clear_400_and_reaches_no_backend() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = alone(&local).await;
    let mut s = tokio::net::TcpStream::connect(fleet.running.proxy_addr)
        .await
        .unwrap();
    s.write_all(
        b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"model\": \"qwe",
    )
    .await
    .unwrap();
    s.shutdown().await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("could not read the request body"),
        "{answer}"
    );
    assert_eq!(local.count("/api/chat"), 0);
    fleet.running.shutdown().await;
}

/// A fleet whose own Ollama is a raw server: the documented `/api/tags`,
/// `/api/ps` and `/api/version`, and `answer` to everything else; the peer
/// is a closed port. Waits until the health poll has seen it.
async fn raw_ollama(answer: Garbage) -> (GarbageServer, Fleet) {
    let local = GarbageServer::ollama(answer).await;
    let fleet = start(&local.url(), &support::closed_url()).await;
    fleet.probed(1).await;
    (local, fleet)
}

#[tokio::test]
async fn a_whole_answer_in_several_pieces_reaches_the_client_whole_and_metered() {
    // A non-streamed answer of announced length, arriving in three reads:
    // the client gets exactly the bytes sent, and the ledger its tokens.
    let answer = r#"{"model":"llama3.2:latest","created_at":"2026-11-30T00:00:00Z","response":"Hello \"there\", fleet","done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":298}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    let (a, rest) = answer.split_at(40);
    let (b, c) = rest.split_at(50);
    let pieces = vec![
        format!("{head}{a}").into_bytes(),
        b.as_bytes().to_vec(),
        c.as_bytes().to_vec(),
    ];
    let (_local, fleet) = raw_ollama(Garbage::Pieces(pieces)).await;

    let r = fleet
        .post(
            "/api/generate",
            json!({"model": "llama3.2:latest", "prompt": "hi", "stream": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        answer.len().to_string()
    );
    assert_eq!(r.text().await.unwrap(), answer);
    let records = fleet.records(1).await;
    assert_eq!(records[0].outcome, "ok", "{:?}", records[0]);
    let usage = records[0].usage.expect("tokens read");
    assert_eq!((usage.input_tokens, usage.output_tokens), (26, 298));
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_whole_answer_cut_short_is_a_clean_502_in_the_clients_shape() {
    // Announces 4,000 bytes, sends a few, closes: nothing reached the client
    // yet, so it gets a proper error instead of a cut-off body.
    let cut = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\nConnection: close\r\n\r\n{\"model\":\"llama3.2:latest\",\"created_at\":".to_vec();
    let (_local, fleet) = raw_ollama(Garbage::Raw(cut)).await;

    let r = fleet
        .post(
            "/api/generate",
            json!({"model": "llama3.2:latest", "prompt": "hi", "stream": false}),
        )
        .await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-clawfleet-machine"], "local");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("broke off"),
        "{body}"
    );

    let r = fleet
        .post(
            "/v1/chat/completions",
            json!({"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off"),
        "OpenAI's error shape: {body}"
    );

    let records = fleet.records(2).await;
    for r in &records {
        assert_eq!(r.outcome, "upstream_failed_midstream", "{r:?}");
        assert_eq!(r.status, 502, "{r:?}");
    }
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_via_address_prefers_its_machine_and_fails_over_to_the_rest() {
    // Both have the model; this machine would come first without /via/.
    let (_local, peer, fleet) = two(&["gpt-oss:20b"], &["gpt-oss:20b"]).await;
    let body = json!({"model": "gpt-oss:20b", "messages": [{"role": "user", "content": "hi"}]});
    let plain = fleet.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(plain.headers()["x-clawfleet-machine"], "local");
    // What `clawfleet clawdbot wire` writes for a provider that named the peer.
    let via = fleet
        .post("/via/peer/v1/chat/completions", body.clone())
        .await;
    assert_eq!(via.status(), 200);
    assert_eq!(via.headers()["x-clawfleet-machine"], "peer");
    let native = fleet
        .post(
            "/via/peer/api/chat",
            json!({"model": "gpt-oss:20b", "messages": [], "stream": false}),
        )
        .await;
    assert_eq!(native.headers()["x-clawfleet-machine"], "peer");
    // The peer's Ollama goes: the same address is served by the rest.
    peer.stop().await;
    support::poll(
        30,
        "the /via/peer/ address served by local",
        || async {
            let r = fleet
                .post("/via/peer/v1/chat/completions", body.clone())
                .await;
            (
                r.status().as_u16(),
                r.headers().get("x-clawfleet-machine").cloned(),
            )
        },
        |(status, machine)| *status == 200 && machine.as_ref().is_some_and(|m| m == "local"),
    )
    .await;
    // A machine the fleet does not have is a clear 404 in the client's shape.
    let r = fleet.post("/via/nosuch/v1/chat/completions", body).await;
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no machine \"nosuch\" in the fleet"),
        "{e}"
    );
}

/// One answer with a `Content-Length` off a raw connection: status and
/// body. `buf` keeps what was read past it.
async fn raw_answer(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (u16, Value) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let status: u16 = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| panic!("no content-length: {head}"))
                .parse()
                .unwrap();
            if buf.len() >= end + 4 + length {
                let body = serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap();
                buf.drain(..end + 4 + length);
                return (status, body);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_buf(buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(buf));
    }
}

#[tokio::test]
async fn one_connection_carries_inference_listings_and_chunked_uploads_in_any_order() {
    use tokio::io::AsyncWriteExt;
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = alone(&local).await;
    let mut s = tokio::net::TcpStream::connect(fleet.running.proxy_addr)
        .await
        .unwrap();
    let chat = r#"{"model":"qwen3:8b","stream":false,"messages":[{"role":"user","content":"hi"}]}"#;
    let post = format!(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{chat}",
        chat.len()
    );
    let chunked = format!(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chat}\r\n0\r\n\r\n",
        chat.len()
    );
    let tags = "GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut buf = Vec::new();
    // Two inference requests sent at once, then a listing, then a chunked
    // upload, then inference again: the proxy's own server answers the
    // first ones and hands the connection to hyper at the listing, with
    // the bytes it had read.
    s.write_all(format!("{post}{post}").as_bytes())
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, body) = raw_answer(&mut s, &mut buf).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["done"], true, "{body}");
    }
    for request in [tags, &chunked, &post] {
        s.write_all(request.as_bytes()).await.unwrap();
        let (status, body) = raw_answer(&mut s, &mut buf).await;
        assert_eq!(status, 200, "{body}");
        if request == tags {
            assert_eq!(body["models"][0]["name"], "qwen3:8b", "{body}");
        } else {
            assert_eq!(body["done"], true, "{body}");
        }
    }
    assert_eq!(local.count("/api/chat"), 4);
    let records = fleet.records(4).await;
    assert!(records.iter().all(|r| r.status == 200), "{records:?}");
    fleet.running.shutdown().await;
}

#[tokio::test]
async fn a_model_no_machine_has_is_a_404_listing_what_exists() {
    let (_local, _peer, fleet) = two(&["qwen3:8b"], &["gpt-oss:20b"]).await;
    let r = fleet
        .post(
            "/api/chat",
            json!({"model": "llama9", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("llama9")
            && message.contains("qwen3:8b")
            && message.contains("gpt-oss:20b"),
        "{message}"
    );
    fleet.running.shutdown().await;
}

/// What OpenClaw's discovery asks at its `/via/<machine>` base URL: the
/// fleet's models, and each model's details from the machine that would
/// serve it (with `capabilities` and `model_info`, which it reads).
#[tokio::test]
async fn discovery_under_via_sees_the_fleet() {
    let (_local, _peer, fleet) = two(&["qwen3:8b"], &["gpt-oss:20b"]).await;
    let tags: Value = fleet
        .client
        .get(format!("{}/via/local/api/tags", fleet.proxy))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        names.contains(&"qwen3:8b") && names.contains(&"gpt-oss:20b"),
        "{names:?}"
    );
    for path in [
        "/via/local/api/version",
        "/via/local/api/ps",
        "/via/local/",
        "/via/local/v1/models",
    ] {
        let r = fleet
            .client
            .get(format!("{}{path}", fleet.proxy))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = fleet
        .post("/via/local/api/show", json!({"model": "gpt-oss:20b"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-clawfleet-machine"],
        "peer",
        "the machine that has it answers"
    );
    let show: Value = r.json().await.unwrap();
    assert!(show["capabilities"].is_array(), "{show}");
    assert!(show["model_info"].is_object(), "{show}");
    fleet.running.shutdown().await;
}
