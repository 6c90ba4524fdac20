//! Failover before the first byte, as the agent feels it: a machine that
//! accepted the request and answers nothing is left for the next one long
//! before `first_byte_timeout_secs` (300 s by default), while a machine
//! that is merely slow to start answering (a model loading, a long prompt)
//! is waited for.

use std::time::Duration;

use clawfleet::daemon::{self, Running};
use serde_json::json;

use crate::support::{self, FakeOllama, TestConfig};

/// Two machines with `qwen3:8b`, routed `local` first, both probed once at
/// start and then only hourly (so the snapshot keeps saying "up" whatever
/// happens next), the shipped first-byte and hang-check limits.
async fn start(local: &FakeOllama, peer: &FakeOllama) -> (Running, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let config = TestConfig::one_machine(data.path(), &local.url())
        .ollama_machine("peer", "Peer", &peer.url())
        .set("probes", "ollama_interval_secs", 3600)
        .raw("[[routes]]\nmodel = \"qwen3:8b\"\nmachines = [\"local\", \"peer\"]\n")
        .config();
    assert_eq!(
        config.proxy.first_byte_timeout_secs, 300,
        "the shipped limit"
    );
    let running = daemon::start(config).await.expect("daemon starts");
    support::ollamas_up(&running, 2).await;
    (running, data)
}

async fn two() -> (FakeOllama, FakeOllama) {
    let local = FakeOllama::start().await;
    let peer = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    peer.set_model_names(&["qwen3:8b"]);
    (local, peer)
}

async fn chat(running: &Running) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        // Far below the 300 s limit: a request that waits it out fails here.
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
        .post(format!("http://{}/api/chat", running.proxy_addr))
        .json(&json!({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "stream": true}))
        .send()
        .await
        .expect("an answer well before the first-byte limit")
}

#[tokio::test]
async fn a_machine_that_accepts_and_answers_nothing_is_left_for_the_next() {
    let (local, peer) = two().await;
    let (running, _data) = start(&local, &peer).await;
    // Frozen after the probe saw it up: only the proxy can find out.
    local.set_frozen(true);

    let response = chat(&running).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-clawfleet-machine"], "peer");
    let fallbacks = response.headers()["x-clawfleet-fallbacks"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        fallbacks.contains("local") && fallbacks.contains("answers nothing"),
        "{fallbacks}"
    );
    let text = response.text().await.expect("body");
    assert!(text.contains("\"done\":true"), "{text}");
    assert_eq!(local.count("/api/chat"), 1, "tried once, and never again");
    running.shutdown().await;
}

#[tokio::test]
async fn a_machine_slow_to_start_answering_but_alive_is_waited_for() {
    let (local, peer) = two().await;
    // Slower than the hang check's first question and its time limit
    // together (250 + 600 ms), as a model loading is.
    local.set_delay(Duration::from_millis(2500));
    let (running, _data) = start(&local, &peer).await;

    let response = chat(&running).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-clawfleet-machine"], "local");
    assert!(
        response.headers().get("x-clawfleet-fallbacks").is_none(),
        "not given up on"
    );
    let text = response.text().await.expect("body");
    assert!(text.contains("\"done\":true"), "{text}");
    assert!(
        local.count("/api/version") >= 2,
        "asked whether it answers while waiting (probe + check)"
    );
    assert_eq!(peer.count("/api/chat"), 0);
    running.shutdown().await;
}
