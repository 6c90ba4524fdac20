//! The proxy benchmark: direct vs through `clawfleet serve`, in the same run.
//! Run it with `cargo xtask bench proxy` (which raises the file limit and
//! builds in release); it prints a Markdown table.
//!
//! A fast fake Ollama runs in this process; the release daemon runs as a
//! child whose only backend is that fake. Measured, each direct and proxied:
//! latency p50/p99 of small non-streaming requests at concurrency 1;
//! throughput at concurrency 16 and 64 (direct and proxied alternating, five
//! rounds of 3 s, medians); time to the first streamed byte; and
//! the daemon's memory with 1,000 slow streams open.
//!
//! The throughput rounds also run through a bare relay (this program again,
//! as `--bare-relay URL`: hyper's server in front of hyper's pooled client,
//! nothing else), the cost of being a proxy at all on the same cores: the
//! reference the proxy's own work is judged against.
//!
//! The throughput rounds run twice: with the fake in this process, beside
//! the load generator (the stricter baseline: a direct request goes between
//! two tasks of one runtime), and with the fake in a process of its own
//! (this program again, as `--fake`), as Clawdbot and Ollama are; a second
//! daemon and a second bare relay serve that fake. Those rounds come last,
//! after the first-byte and stream measurements.
//!
//! `proxy_bench BIN --c16` measures only the throughput at concurrency 16,
//! direct and proxied (fake in this process), and prints it as one row
//! (`ROW\t…`) for `cargo xtask bench`'s table.

#[path = "common/procfs.rs"]
mod procfs;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

const MODEL: &str = "bench:1b";

/// Throughput rounds per side and concurrency (odd: the median is a round).
/// Five rather than three: on this shared machine single runs of three
/// spread by ±0.05 in the ratio.
const ROUNDS: usize = 5;

fn final_chunk() -> Value {
    json!({"model": MODEL, "created_at": "2026-11-24T00:00:00Z", "response": "", "done": true,
        "done_reason": "stop", "total_duration": 1000, "load_duration": 10, "prompt_eval_count": 5,
        "prompt_eval_duration": 100, "eval_count": 3, "eval_duration": 200})
}

/// `/api/generate`: whole JSON at once, or NDJSON; `"options": {"slow": N}`
/// streams N chunks one second apart (the slow-stream test).
async fn generate(body: Bytes) -> axum::response::Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = req.get("stream").and_then(Value::as_bool) != Some(false);
    if !stream {
        return (
            [("content-type", "application/json")],
            final_chunk().to_string(),
        )
            .into_response();
    }
    let slow = req
        .pointer("/options/slow")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let chunk = |t: &str| {
        Bytes::from(format!(
            "{}\n",
            json!({"model": MODEL, "created_at": "2026-11-24T00:00:00Z", "response": t, "done": false})
        ))
    };
    let body = if slow == 0 {
        let items = vec![
            chunk("a"),
            chunk("b"),
            Bytes::from(format!("{}\n", final_chunk())),
        ];
        Body::from_stream(futures_util::stream::iter(
            items.into_iter().map(Ok::<_, std::io::Error>),
        ))
    } else {
        let s = futures_util::stream::unfold(0u64, move |i| async move {
            if i > slow {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let item = if i == slow {
                Bytes::from(format!("{}\n", final_chunk()))
            } else {
                Bytes::from(format!(
                    "{}\n",
                    json!({"model": MODEL, "response": "x", "done": false})
                ))
            };
            Some((Ok::<_, std::io::Error>(item), i + 1))
        });
        Body::from_stream(s)
    };
    axum::response::Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(body)
        .unwrap_or_default()
}

async fn fake_ollama() -> String {
    let app = Router::new()
        .route("/api/version", get(|| async { axum::Json(json!({"version": "0.12.6"})) }))
        .route(
            "/api/tags",
            get(|| async {
                axum::Json(json!({"models": [{"name": MODEL, "model": MODEL, "modified_at": "2026-11-01T00:00:00Z",
                    "size": 1000, "digest": "0", "details": {"family": "bench", "parameter_size": "1B", "quantization_level": "Q4_0"}}]}))
            }),
        )
        .route("/api/ps", get(|| async { axum::Json(json!({"models": []})) }))
        .route("/api/generate", post(generate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// The bare relay: each request passed to `upstream` and its answer back,
/// streamed, by hyper alone; prints its address on the first line.
async fn bare_relay(upstream: &str) {
    use hyper::http::uri::{Authority, Scheme};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let authority: Authority = upstream
        .trim_start_matches("http://")
        .parse()
        .expect("upstream authority");
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, hyper::body::Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("http://{}", listener.local_addr().expect("addr"));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (client, authority) = (client.clone(), authority.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                let mut parts = req.uri().clone().into_parts();
                parts.scheme = Some(Scheme::HTTP);
                parts.authority = Some(authority.clone());
                *req.uri_mut() = hyper::Uri::from_parts(parts).expect("uri");
                req.headers_mut().remove(hyper::header::HOST);
                client.request(req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn one(client: &reqwest::Client, base: &str, body: &'static str) -> f64 {
    let t = Instant::now();
    let r = client
        .post(format!("{base}/api/generate"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "status {}", r.status());
    let _ = r.bytes().await.expect("body");
    t.elapsed().as_secs_f64() * 1000.0
}

const SMALL: &str = r#"{"model":"bench:1b","prompt":"hi","stream":false}"#;
const STREAM: &str = r#"{"model":"bench:1b","prompt":"hi","stream":true}"#;

/// Latencies (ms) of `n` sequential small requests, after a warm-up.
async fn latencies(client: &reqwest::Client, base: &str, n: usize) -> Vec<f64> {
    for _ in 0..200 {
        one(client, base, SMALL).await;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(one(client, base, SMALL).await);
    }
    out.sort_by(f64::total_cmp);
    out
}

/// CPU seconds (user + system) `pid` has used (`self` for this process).
fn cpu_secs(pid: &str) -> f64 {
    procfs::cpu_ticks(pid) as f64 / procfs::TICKS_PER_SEC
}

/// One throughput round: requests per second, and the CPU microseconds per
/// request the load generator and the fake (this process, and the fake's
/// own when it has one) and the daemon spent.
struct Round {
    rps: f64,
    bench_us: f64,
    daemon_us: f64,
}

/// Where the throughput rounds send their requests: the fake (and its
/// process, when it has its own), the bare relay and the daemon in front of
/// it.
#[derive(Clone)]
struct Setup {
    fake: String,
    fake_pid: Option<u32>,
    relay: String,
    relay_pid: u32,
    proxy: String,
    daemon_pid: u32,
}

async fn round(
    client: &reqwest::Client,
    base: &str,
    c: usize,
    secs: u64,
    daemon: u32,
    fake: Option<u32>,
) -> Round {
    let daemon = daemon.to_string();
    let bench = || cpu_secs("self") + fake.map_or(0.0, |p| cpu_secs(&p.to_string()));
    let (b0, d0) = (bench(), cpu_secs(&daemon));
    let rps = throughput(client, base, c, secs).await;
    let (b1, d1) = (bench(), cpu_secs(&daemon));
    let n = (rps * secs as f64).max(1.0);
    Round {
        rps,
        bench_us: (b1 - b0) * 1e6 / n,
        daemon_us: (d1 - d0) * 1e6 / n,
    }
}

/// Requests per second with `c` workers for `secs`.
async fn throughput(client: &reqwest::Client, base: &str, c: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (client, base, done) = (client.clone(), base.to_owned(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                one(&client, &base, SMALL).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

/// Times (ms) to the first body byte of a streamed generation.
async fn first_bytes(client: &reqwest::Client, base: &str, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let t = Instant::now();
        let mut r = client
            .post(format!("{base}/api/generate"))
            .header("content-type", "application/json")
            .body(STREAM)
            .send()
            .await
            .expect("request");
        let _ = r.chunk().await.expect("chunk");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        while r.chunk().await.ok().flatten().is_some() {}
        if i >= 50 {
            out.push(ms);
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Starts `clawfleet serve` with `fake` as its one machine's Ollama;
/// returns it, its pid and its proxy's URL.
fn start_daemon(
    bin: &str,
    fake: &str,
    dir: &std::path::Path,
) -> (std::process::Child, u32, String) {
    std::fs::create_dir_all(dir).expect("temp dir");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "this_machine = \"bench\"\ndata_dir = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[proxy]\nlisten = \"127.0.0.1:0\"\n[probes]\nollama_interval_secs = 2\n[clawdbot]\nconfig_path = {:?}\n[[machines]]\nid = \"bench\"\nname = \"Bench\"\nollama_url = \"{fake}\"\n",
            dir.join("data"),
            dir.join("none.json"),
        ),
    )
    .expect("config");
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("CLAWFLEET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start clawfleet");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut proxy = String::new();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(addr) = line.strip_prefix("clawfleet: inference proxy on ") {
            proxy = addr.to_owned();
            break;
        }
    }
    assert!(
        !proxy.is_empty(),
        "the daemon did not print its proxy address"
    );
    (child, pid, proxy)
}

/// This program again, with `args` (`--bare-relay URL`, `--fake`); returns
/// it, its pid and the address it printed first.
fn start_self(args: &[&str]) -> (std::process::Child, u32, String) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start this program again");
    let pid = child.id();
    let url = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .next()
        .and_then(Result::ok)
        .expect("its address");
    (child, pid, url)
}

/// Throughput at concurrency 16, direct and proxied, alternating rounds:
/// one row for the suite's table.
async fn c16_only(bin: &str) {
    let fake = fake_ollama().await;
    let dir = std::env::temp_dir().join(format!("clawfleet-proxy-c16-{}", std::process::id()));
    let (mut child, pid, proxy) = start_daemon(bin, &fake, &dir);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .post(format!("{proxy}/api/generate"))
        .body(SMALL)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "the proxy never served the model"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("proxy_bench: throughput at concurrency 16, {ROUNDS} rounds each way…");
    throughput(&client, &fake, 16, 1).await;
    throughput(&client, &proxy, 16, 1).await;
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        d.push(throughput(&client, &fake, 16, 3).await);
        p.push(throughput(&client, &proxy, 16, 3).await);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    d.sort_by(f64::total_cmp);
    p.sort_by(f64::total_cmp);
    let (d, p) = (d[ROUNDS / 2], p[ROUNDS / 2]);
    println!(
        "ROW\t60\tproxy micro-benchmark: throughput of small /api/generate requests at concurrency 16, proxied against direct (median of {ROUNDS} rounds of 3 s)\t{:.2}× ({p:.0} req/s proxied)\t{d:.0} req/s direct\t— (a reference, not a goal)\t—",
        p / d
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, upstream] = args.as_slice()
        && flag == "--bare-relay"
    {
        return bare_relay(upstream).await;
    }
    if let [_, flag] = args.as_slice()
        && flag == "--fake"
    {
        println!("{}", fake_ollama().await);
        return std::future::pending().await;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release/clawfleet".to_owned());
    if args.get(2).is_some_and(|a| a == "--c16") {
        return c16_only(&bin).await;
    }
    let fake = fake_ollama().await;
    let dir = std::env::temp_dir().join(format!("clawfleet-proxy-bench-{}", std::process::id()));
    let (mut child, pid, proxy) = start_daemon(&bin, &fake, &dir.join("in-process"));
    let (mut relay_child, relay_pid, relay) = start_self(&["--bare-relay", &fake]);
    // The fake in a process of its own, with its own daemon and relay.
    let (mut fake_child, fake_pid, fake_own) = start_self(&["--fake"]);
    let (mut child_own, pid_own, proxy_own) =
        start_daemon(&bin, &fake_own, &dir.join("own-process"));
    let (mut relay_child_own, relay_pid_own, relay_own) = start_self(&["--bare-relay", &fake_own]);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    // Wait until each daemon's health poll has seen the model.
    let deadline = Instant::now() + Duration::from_secs(20);
    for p in [&proxy, &proxy_own] {
        loop {
            let ok = client
                .post(format!("{p}/api/generate"))
                .body(SMALL)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy never served the model"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    eprintln!("latency at concurrency 1…");
    let (d_lat, p_lat) = (
        latencies(&client, &fake, 2000).await,
        latencies(&client, &proxy, 2000).await,
    );
    eprintln!("throughput…");
    // Direct, the bare relay and the proxy alternate, ROUNDS rounds of 3 s
    // each, and the median of each is taken: a burst of other work on this
    // shared machine then spoils one round of one side, not the ratio.
    let rounds = |c: usize, at: Setup, label: &'static str| {
        let client = client.clone();
        async move {
            let (mut d, mut b, mut p) = (Vec::new(), Vec::new(), Vec::new());
            let fp = at.fake_pid;
            for _ in 0..ROUNDS {
                d.push(round(&client, &at.fake, c, 3, at.daemon_pid, fp).await);
                b.push(round(&client, &at.relay, c, 3, at.relay_pid, fp).await);
                p.push(round(&client, &at.proxy, c, 3, at.daemon_pid, fp).await);
            }
            let median = |mut v: Vec<Round>| {
                v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
                v.swap_remove(ROUNDS / 2)
            };
            let (d, b, p) = (median(d), median(b), median(p));
            println!(
                "{label}, concurrency {c}, median rounds, CPU per request: direct {:.1} µs (load generator + fake); \
                 bare relay {:.1} µs (load generator + fake) + {:.1} µs (the relay); \
                 proxied {:.1} µs (load generator + fake) + {:.1} µs (the proxy)",
                d.bench_us, b.bench_us, b.daemon_us, p.bench_us, p.daemon_us
            );
            (d.rps, b.rps, p.rps)
        }
    };
    let beside = Setup {
        fake: fake.clone(),
        fake_pid: None,
        relay: relay.clone(),
        relay_pid,
        proxy: proxy.clone(),
        daemon_pid: pid,
    };
    let own = Setup {
        fake: fake_own.clone(),
        fake_pid: Some(fake_pid),
        relay: relay_own.clone(),
        relay_pid: relay_pid_own,
        proxy: proxy_own.clone(),
        daemon_pid: pid_own,
    };
    let (d16, b16, p16) = rounds(16, beside.clone(), "fake beside the load generator").await;
    let (d64, b64, p64) = rounds(64, beside, "fake beside the load generator").await;
    eprintln!("time to first byte…");
    let (d_ttfb, p_ttfb) = (
        first_bytes(&client, &fake, 500).await,
        first_bytes(&client, &proxy, 500).await,
    );

    eprintln!("1,000 slow streams…");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = procfs::status_kib(&pid.to_string(), "VmRSS:");
    let streams = 1000;
    let open = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (client, proxy, open) = (client.clone(), proxy.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            let body = r#"{"model":"bench:1b","prompt":"hi","stream":true,"options":{"slow":12}}"#;
            let Ok(mut r) = client
                .post(format!("{proxy}/api/generate"))
                .body(body)
                .send()
                .await
            else {
                return false;
            };
            if !matches!(r.chunk().await, Ok(Some(_))) {
                return false;
            }
            open.fetch_add(1, Ordering::Relaxed);
            let mut n = 0;
            while let Ok(Some(_)) = r.chunk().await {
                n += 1;
            }
            n > 0
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    while open.load(Ordering::Relaxed) < streams && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let opened = open.load(Ordering::Relaxed);
    let rss_during = procfs::status_kib(&pid.to_string(), "VmRSS:");
    let mut finished = 0;
    for t in tasks {
        if t.await.unwrap_or(false) {
            finished += 1;
        }
    }
    let rss_after = procfs::status_kib(&pid.to_string(), "VmRSS:");
    // Last, so that its daemon's ledger, storing what these rounds sent,
    // does not share the cores with the measurements above.
    eprintln!("throughput, the fake in its own process…");
    let (od16, ob16, op16) = rounds(16, own.clone(), "fake in its own process").await;
    let (od64, ob64, op64) = rounds(64, own, "fake in its own process").await;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let _ = Command::new("kill")
        .args(["-TERM", &pid_own.to_string()])
        .status();
    let _ = child_own.wait();
    for c in [&mut relay_child, &mut relay_child_own, &mut fake_child] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);

    let row = |name: &str, d: f64, p: f64, unit: &str| {
        println!(
            "| {name} | {d:.3} {unit} | {p:.3} {unit} | {:+.3} {unit} | {:.2}× |",
            p - d,
            p / d
        );
    };
    println!("\n| figure | direct | through the proxy | added | ratio |");
    println!("|---|---|---|---|---|");
    row(
        "latency p50, small request, concurrency 1",
        percentile(&d_lat, 50.0),
        percentile(&p_lat, 50.0),
        "ms",
    );
    row(
        "latency p99, small request, concurrency 1",
        percentile(&d_lat, 99.0),
        percentile(&p_lat, 99.0),
        "ms",
    );
    row(
        "throughput, concurrency 16 (median of 5 rounds)",
        d16,
        p16,
        "req/s",
    );
    row(
        "throughput, concurrency 64 (median of 5 rounds)",
        d64,
        p64,
        "req/s",
    );
    row(
        "throughput, concurrency 16, bare hyper relay (reference)",
        d16,
        b16,
        "req/s",
    );
    row(
        "throughput, concurrency 64, bare hyper relay (reference)",
        d64,
        b64,
        "req/s",
    );
    row(
        "time to first streamed byte p50",
        percentile(&d_ttfb, 50.0),
        percentile(&p_ttfb, 50.0),
        "ms",
    );
    row(
        "time to first streamed byte p99",
        percentile(&d_ttfb, 99.0),
        percentile(&p_ttfb, 99.0),
        "ms",
    );
    println!(
        "\nThe proxy's throughput against the bare relay's, same rounds: concurrency 16 {:.2}×, concurrency 64 {:.2}×.",
        p16 / b16,
        p64 / b64
    );
    println!(
        "\nThe fake in a process of its own (as Ollama is), throughput:\n\n\
         | figure | direct | through the proxy | added | ratio |\n|---|---|---|---|---|"
    );
    row(
        "throughput, concurrency 16 (median of 5 rounds)",
        od16,
        op16,
        "req/s",
    );
    row(
        "throughput, concurrency 64 (median of 5 rounds)",
        od64,
        op64,
        "req/s",
    );
    row(
        "throughput, concurrency 16, bare hyper relay (reference)",
        od16,
        ob16,
        "req/s",
    );
    row(
        "throughput, concurrency 64, bare hyper relay (reference)",
        od64,
        ob64,
        "req/s",
    );
    let per_stream = (rss_during.saturating_sub(rss_before)) as f64 / opened.max(1) as f64;
    println!(
        "\n1,000 slow streams (a chunk a second for 12 s) through the proxy: {opened} open at once, {finished} finished; \
         daemon RSS {:.1} MiB before, {:.1} MiB with them open, {:.1} MiB after: **{per_stream:.1} KiB per open stream**.",
        rss_before as f64 / 1024.0,
        rss_during as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
    println!(
        "\nTargets: added p50 ≤ 0.2 ms, added p99 ≤ 1 ms, throughput ≥ 50% of direct, ≤ 0.5 ms added to first byte, ≤ 64 KB per open stream."
    );
}
