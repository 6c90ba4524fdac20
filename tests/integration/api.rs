//! The fleet API on a real socket: snapshot, SSE stream, Prometheus metrics,
//! health, the Host/Origin guard, and a peer's fleet API being checked.

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use support::{FakeLoaded, FakeOllama, TestConfig, Toml, http};

/// A config with this machine (`local`, Ollama at `ollama`) and a peer
/// (`peer`, Ollama at `peer_ollama`, fleet API at `peer_api`), every probe
/// each second.
fn config(data: &Path, ollama: &str, peer_ollama: &str, peer_api: &str) -> TestConfig {
    TestConfig::new("local", data)
        .set(
            "api",
            "allowed_hosts",
            Toml::new(r#"["fleet.example.ts.net"]"#),
        )
        .set("probes", "system_interval_secs", 1)
        .set("probes", "processes_interval_secs", 1)
        .set("probes", "services_interval_secs", 1)
        .set("probes", "timeout_ms", 500)
        .machine(
            "local",
            "Local Box",
            &format!(
                r#"role = "orchestrator"
                hostname = "local-box.local"
                tailnet_ip = "100.64.0.7"
                ollama_url = "{ollama}"
                models = [ {{ name = "qwen3:8b", purpose = "Fast reasoning" }} ]"#
            ),
        )
        .machine(
            "peer",
            "Peer Box",
            &format!(
                r#"role = "server"
                ollama_url = "{peer_ollama}"
                fleet_url = "{peer_api}""#
            ),
        )
}

async fn snapshot_json(addr: SocketAddr) -> serde_json::Value {
    let answer = http::get_local(addr, "/fleet/v1/snapshot").await;
    assert_eq!(answer.status, 200);
    serde_json::from_str(&answer.body).unwrap()
}

/// The API's snapshot, once `check` holds on it (up to 30 s).
async fn wait_for(
    addr: SocketAddr,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    support::poll(30, what, || snapshot_json(addr), check).await
}

#[tokio::test]
async fn snapshot_shows_this_machine_its_ollama_and_the_peer() {
    let data = tempfile::tempdir().unwrap();
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b", "gpt-oss:20b"]);
    let qwen = local
        .models()
        .into_iter()
        .find(|m| m.name == "qwen3:8b")
        .unwrap();
    local.set_loaded(vec![FakeLoaded::of(&qwen)]);
    let peer = FakeOllama::start().await;
    // The peer's fleet API is a fake Ollama too: it answers /healthz with 404,
    // so the peer is online only because its Ollama answers.
    let running = config(
        data.path(),
        &local.url(),
        &peer.url(),
        &format!("{}/", peer.url()),
    )
    .start()
    .await;
    let addr = running.api_addrs[0];

    let snap = wait_for(addr, "both Ollamas probed", |s| {
        s["machines"]
            .as_array()
            .is_some_and(|ms| ms.iter().all(|m| m["ollama"]["reachable"] == true))
            && s["machines"][0]["memory"]["total_bytes"]
                .as_u64()
                .is_some_and(|t| t > 0)
            && s["machines"][0]["cpu_percent"].is_number()
    })
    .await;
    assert_eq!(snap["this_machine"], "local");
    let me = &snap["machines"][0];
    assert_eq!(me["id"], "local");
    assert_eq!(me["is_self"], true);
    assert_eq!(me["online"], true);
    assert!(me["cpu_percent"].is_number());
    assert!(me["disks"].as_array().is_some_and(|d| !d.is_empty()));
    assert!(me["updated_at"].is_string());
    assert!(me["probed_at"]["system"].is_string());
    let o = &me["ollama"];
    assert_eq!(o["url"], local.url());
    assert!(o["version"].is_string());
    assert!(o["latency_ms"].is_number());
    let models = o["models"].as_array().unwrap();
    assert!(!models.is_empty());
    let qwen = models
        .iter()
        .find(|m| m["name"] == "qwen3:8b")
        .expect("fake has qwen3:8b");
    assert_eq!(
        qwen["purpose"], "Fast reasoning",
        "config purposes attached"
    );
    let names: Vec<_> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["qwen3:8b", "gpt-oss:20b"]);
    let loaded = o["loaded"].as_array().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0]["name"], "qwen3:8b");
    assert!(loaded[0]["vram_bytes"].as_u64().is_some());
    assert!(loaded[0]["expires_at"].is_string());

    let peer_entry = &snap["machines"][1];
    assert_eq!(peer_entry["id"], "peer");
    assert_eq!(peer_entry["is_self"], false);
    assert_eq!(peer_entry["online"], true);
    assert_eq!(
        peer_entry["cpu_percent"],
        serde_json::Value::Null,
        "no peer polling yet"
    );

    // A peer whose Ollama dies goes offline (its fleet API never answered).
    peer.stop().await;
    wait_for(addr, "peer offline", |s| {
        s["machines"][1]["online"] == false
    })
    .await;
    let snap = snapshot_json(addr).await;
    assert_eq!(snap["machines"][1]["ollama"]["reachable"], false);
    assert!(snap["machines"][1]["ollama"]["error"].is_string());
    assert_eq!(
        snap["machines"][0]["ollama"]["reachable"], true,
        "the other Ollama is unaffected"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn stream_sends_a_snapshot_at_once_and_at_each_change() {
    let data = tempfile::tempdir().unwrap();
    let local = FakeOllama::start().await;
    let closed = support::closed_url();
    let running = config(data.path(), &local.url(), &closed, &closed)
        .start()
        .await;
    let addr = running.api_addrs[0];

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /fleet/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );

    // Collect three snapshot events; each is valid JSON and time moves on.
    let mut stamps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut event = String::new();
    while stamps.len() < 3 {
        assert!(Instant::now() < deadline, "too few events");
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("an event within 10 s")
            .unwrap();
        assert!(n > 0, "stream ended");
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            assert_eq!(event, "snapshot");
            let snap: serde_json::Value =
                serde_json::from_str(data).expect("event data is a snapshot");
            assert_eq!(snap["this_machine"], "local");
            stamps.push(snap["updated_at"].as_str().unwrap().to_owned());
        }
    }
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text_with_the_fleet_figures() {
    let data = tempfile::tempdir().unwrap();
    let local = FakeOllama::start().await;
    let down = support::closed_url();
    let running = config(data.path(), &local.url(), &down, &down)
        .start()
        .await;
    let addr = running.api_addrs[0];
    wait_for(addr, "probes done", |s| {
        s["machines"][0]["ollama"]["reachable"] == true
            && s["machines"][1]["ollama"]["checked_at"].is_string()
            && s["machines"][0]["process_count"].is_number()
            && s["machines"][0]["memory"].is_object()
            && s["machines"][0]["cpu_percent"].is_number()
    })
    .await;

    let http::Answer { status, head, body } = http::get_local(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{body}"));
        match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name} is {other:?}"),
        }
    };
    assert_eq!(value("clawfleet_ollama_up", &[("machine", "local")]), 1.0);
    assert_eq!(value("clawfleet_ollama_up", &[("machine", "peer")]), 0.0);
    assert!(value("clawfleet_ollama_latency_seconds", &[("machine", "local")]) > 0.0);
    assert!(value("clawfleet_ollama_models_installed", &[("machine", "local")]) >= 1.0);
    value("clawfleet_ollama_models_loaded", &[("machine", "local")]);
    assert!(
        value(
            "clawfleet_memory_bytes",
            &[("machine", "local"), ("kind", "total")]
        ) > 0.0
    );
    let cpu = value("clawfleet_cpu_percent", &[("machine", "local")]);
    assert!((0.0..=100.0).contains(&cpu));
    assert!(
        value(
            "clawfleet_disk_bytes",
            &[("machine", "local"), ("mount", "/"), ("kind", "total")]
        ) > 0.0
    );
    assert!(value("clawfleet_processes", &[("machine", "local")]) > 0.0);
    assert_eq!(
        value("clawfleet_machine_online", &[("machine", "local")]),
        1.0
    );
    assert_eq!(
        value("clawfleet_machine_online", &[("machine", "peer")]),
        0.0
    );
    // Every family is declared once, before its samples.
    let mut declared = std::collections::HashSet::new();
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(declared.insert(line.to_owned()), "declared twice: {line}");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn host_and_origin_are_checked_on_every_endpoint() {
    let data = tempfile::tempdir().unwrap();
    let down = support::closed_url();
    let running = config(data.path(), &down, &down, &down).start().await;
    let addr = running.api_addrs[0];
    let port = addr.port().to_string();
    let with_port = |h: &str| format!("{h}:{port}");

    for path in [
        "/healthz",
        "/fleet/v1/snapshot",
        "/metrics",
        "/fleet/v1/stream",
        "/nope",
    ] {
        for host in [
            "evil.example",
            "localhost.evil.example",
            "100.64.0.8",
            "felipes-mac-mini.local",
        ] {
            let http::Answer { status, body, .. } =
                http::get(addr, path, &[("Host", &with_port(host))]).await;
            assert_eq!(status, 403, "{path} with Host {host}");
            assert!(body.contains("[api] allowed_hosts"), "{body}");
        }
        let http::Answer { status, body, .. } = http::get(
            addr,
            path,
            &[("Host", "localhost"), ("Origin", "https://evil.example")],
        )
        .await;
        assert_eq!(status, 403, "{path} with a foreign Origin");
        assert!(body.contains("evil.example"), "{body}");
    }
    let http::Answer { status, body, .. } = http::get(addr, "/healthz", &[]).await;
    assert_eq!(status, 400, "no Host at all");
    assert!(body.contains("missing Host"), "{body}");

    for host in [
        "localhost".to_owned(),
        with_port("127.0.0.1"),
        with_port("local-box.local"),
        "local-box".to_owned(),
        with_port("100.64.0.7"),
        "fleet.example.ts.net".to_owned(),
        with_port("[::1]"),
    ] {
        let http::Answer { status, body, .. } =
            http::get(addr, "/healthz", &[("Host", &host)]).await;
        assert_eq!(status, 200, "Host {host}: {body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["this_machine"], "local");
    }
    let http::Answer { status, .. } = http::get(
        addr,
        "/healthz",
        &[
            ("Host", "localhost"),
            ("Origin", &format!("http://localhost:{port}")),
        ],
    )
    .await;
    assert_eq!(status, 200, "the dashboard's own origin");

    let http::Answer { status, body, .. } = http::get_local(addr, "/fleet/v2/nothing").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("/fleet/v1/snapshot"),
        "404 lists what exists: {body}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_peer_whose_fleet_api_answers_is_online_without_ollama() {
    let data = tempfile::tempdir().unwrap();
    // Another real daemon plays the peer.
    let peer_data = tempfile::tempdir().unwrap();
    let down = support::closed_url();
    // It is machine "peer" of the same fleet: a peer must answer with a
    // snapshot of the machine it is polled as.
    let peer = config(peer_data.path(), &down, &down, &down)
        .set("", "this_machine", "peer")
        .start()
        .await;
    let peer_api = format!("http://{}", peer.api_addrs[0]);

    let running = config(data.path(), &down, &down, &peer_api).start().await;
    let addr = running.api_addrs[0];
    let snap = wait_for(addr, "peer API seen", |s| {
        s["machines"][1]["fleet_api_reachable"] == true
    })
    .await;
    assert_eq!(snap["machines"][1]["online"], true);
    assert_eq!(snap["machines"][1]["peer"]["state"], "fresh");
    assert_eq!(
        snap["machines"][1]["ollama"]["reachable"], false,
        "its Ollama as probed from here, not as it sees itself"
    );

    peer.shutdown().await;
    wait_for(addr, "peer gone", |s| s["machines"][1]["online"] == false).await;
    running.shutdown().await;
}

/// The live stream sends at most one snapshot per gap however often the
/// snapshot changes, always ending on the newest; a change after a quiet
/// spell goes out at once. (Bounds only: a slower machine sends fewer.)
#[tokio::test]
async fn the_stream_coalesces_a_burst_of_changes_into_the_newest() {
    use futures_util::StreamExt;
    use std::sync::Arc;

    let (tx, rx) = tokio::sync::watch::channel(Arc::new(clawfleet::snapshot::Snapshot::default()));
    let gap = Duration::from_millis(200);
    let stream = clawfleet::api::coalesced(rx, gap);
    tokio::pin!(stream);
    let mark = |n: usize| {
        tx.send_modify(|s| Arc::make_mut(s).this_machine = format!("change {n}"));
    };
    let first = stream.next().await.expect("the current snapshot at once");
    assert_eq!(first.this_machine, "");

    // 100 changes, one every 10 ms, for about a second.
    let writer = async {
        for n in 1..=100 {
            mark(n);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let mut seen = Vec::new();
    let reader = async {
        while let Some(snap) = stream.next().await {
            seen.push(snap.this_machine.clone());
            if snap.this_machine == "change 100" {
                break;
            }
        }
    };
    let started = Instant::now();
    tokio::join!(writer, reader);
    // At most one event per gap over however long the burst took (at least
    // a second; longer on a slow machine), and the newest last.
    let most = (started.elapsed().as_secs_f64() / gap.as_secs_f64()).floor() as usize + 2;
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen.len() <= most,
        "not coalesced: {} events, at most {most}",
        seen.len()
    );
    assert_eq!(seen.last().map(String::as_str), Some("change 100"));

    // Quiet for longer than the gap: the next change is sent by itself.
    tokio::time::sleep(gap * 2).await;
    mark(101);
    let next = stream
        .next()
        .await
        .expect("the change after the quiet spell");
    assert_eq!(next.this_machine, "change 101");
}
