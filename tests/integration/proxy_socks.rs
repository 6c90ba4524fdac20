//! The proxy's upstream connections to peers through a real SOCKS5 server
//! (microsocks, Debian package `microsocks`), as on a tailnet reached through
//! Tailscale's userspace SOCKS5 proxy.
//!
//! microsocks runs with `-b 127.0.0.2`: every connection it makes leaves from
//! 127.0.0.2, while everything else on this machine connects from 127.0.0.1.
//! The fake Ollama records where each request came from, so the test sees
//! which requests took the SOCKS5 hop and which did not.
//!
//! Without microsocks the tests say so and pass, except under CI (`CI` set),
//! where a missing microsocks is a failure: `cargo xtask deps` installs it.

use crate::support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use clawfleet::daemon::Running;
use clawfleet::ledger::Record;
use serde_json::{Value, json};
use support::socks::{HOP, Socks, microsocks_or_skip};
use support::{FakeOllama, TestConfig};

/// A daemon on machine `local`, which has no Ollama, whose peer `peer` has
/// the fake, with `[proxy] socks5` pointing at microsocks.
async fn start(peer: &FakeOllama, socks: SocketAddr, data: &Path) -> Running {
    let running = TestConfig::new("local", data)
        .set("proxy", "socks5", socks.to_string())
        .set("proxy", "connect_timeout_ms", 1000)
        .set("proxy", "first_byte_timeout_secs", 5)
        .machine("local", "Local", "")
        .ollama_machine("peer", "Peer", &peer.url())
        .start()
        .await;
    // The health poll reaches the peer directly (it does not use SOCKS5):
    // the proxy routes only to machines it has seen.
    support::until(&running, 30, "the peer's Ollama seen up", |s| {
        s.machines.iter().any(|m| {
            m.id == "peer"
                && m.ollama
                    .as_ref()
                    .is_some_and(|o| o.reachable && !o.models.is_empty())
        })
    })
    .await;
    running
}

async fn post(proxy: SocketAddr, path: &str, body: Value) -> reqwest::Response {
    support::client()
        .post(format!("http://{proxy}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The ledger's records, newest first, once `n` are there.
async fn records(data: &Path, n: usize) -> Vec<Record> {
    support::ledger_records(data, n).await
}

#[tokio::test]
async fn a_peers_model_is_served_through_the_socks5_server() {
    let Some(bin) = microsocks_or_skip("a_peers_model_is_served_through_the_socks5_server") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let socks = Socks::start(&bin, data.path());
    let peer = FakeOllama::start().await;
    peer.set_model_names(&["gpt-oss:20b"]);
    peer.set_reply("Hello through the tailnet");
    let running = start(&peer, socks.addr, data.path()).await;

    // Ollama-native, whole body.
    let response = post(
        running.proxy_addr,
        "/api/chat",
        json!({"model": "gpt-oss:20b", "stream": false,
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-clawfleet-machine"], "peer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"]["content"], "Hello through the tailnet");
    assert_eq!(body["done"], true);

    // OpenAI-compatible, streamed, as Clawdbot asks.
    let response = post(
        running.proxy_addr,
        "/v1/chat/completions",
        json!({"model": "gpt-oss:20b", "stream": true,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "Hello through the tailnet");

    // The hop really happened: both inference requests reached the peer from
    // microsocks' outgoing address, while the health poll reached it directly.
    let requests = peer.requests();
    let inference: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(inference.len(), 2, "{requests:?}");
    let polls: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/api/version" || r.path == "/api/tags")
        .collect();
    assert!(!polls.is_empty());
    if cfg!(target_os = "linux") {
        for r in &inference {
            assert_eq!(
                r.peer.map(|a| a.ip()),
                Some(HOP),
                "{} came from {:?}, not through microsocks",
                r.path,
                r.peer
            );
        }
        for r in &polls {
            assert_eq!(
                r.peer.map(|a| a.ip()),
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                "the health poll does not use SOCKS5"
            );
        }
    }
    // And microsocks says so itself.
    let target = format!("connected to 127.0.0.1:{}", peer.port());
    let log = socks.log();
    assert!(log.contains(&target), "microsocks log: {log:?}");

    // Metered as usual.
    let records = records(data.path(), 2).await;
    let fake = peer.usage();
    for r in &records {
        assert_eq!(r.machine.as_deref(), Some("peer"));
        assert_eq!(r.outcome, "ok", "{r:?}");
        let u = r.usage.expect("usage metered through the hop");
        assert_eq!(u.input_tokens, fake.prompt_eval_count);
        assert_eq!(u.output_tokens, fake.eval_count);
    }
    running.shutdown().await;
}

#[tokio::test]
async fn a_dead_socks5_server_is_a_clear_503_and_no_direct_connection() {
    let Some(bin) =
        microsocks_or_skip("a_dead_socks5_server_is_a_clear_503_and_no_direct_connection")
    else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut socks = Socks::start(&bin, data.path());
    let peer = FakeOllama::start().await;
    peer.set_model_names(&["gpt-oss:20b"]);
    let running = start(&peer, socks.addr, data.path()).await;
    let ask = json!({"model": "gpt-oss:20b", "stream": false,
                     "messages": [{"role": "user", "content": "hi"}]});

    // Through the hop: works.
    let response = post(running.proxy_addr, "/api/chat", ask.clone()).await;
    assert_eq!(response.status(), 200);
    let posts = |p: &FakeOllama| p.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts(&peer), 1);

    // The SOCKS5 server goes away; the peer itself stays up and reachable
    // directly (the health poll still sees it), but the proxy must not go
    // around the configured hop.
    socks.stop();
    let polls_before = peer.count("/api/version");
    assert!(
        support::eventually(|| peer.count("/api/version") > polls_before).await,
        "the peer is still polled directly"
    );
    let response = post(running.proxy_addr, "/api/chat", ask.clone()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("overloaded"), "{error}");
    assert!(error.contains("peer ("), "names the machine tried: {error}");
    // reqwest's words: "error connecting to socks proxy".
    assert!(
        error.to_ascii_lowercase().contains("socks proxy"),
        "says the SOCKS5 hop failed: {error}"
    );
    assert_eq!(posts(&peer), 1, "no request went around the SOCKS5 hop");
    assert!(
        running
            .snapshot
            .borrow()
            .machine("peer")
            .and_then(|m| m.ollama.as_ref())
            .is_some_and(|o| o.reachable),
        "the direct path would have worked"
    );
    let records = records(data.path(), 2).await;
    assert_eq!(records[0].status, 503);
    assert_eq!(records[0].machine, None);
    running.shutdown().await;
}
