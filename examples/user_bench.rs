//! What users feel, from the daemon's side: `cargo xtask bench` runs this as
//! `user_bench BIN [SECTION…]` (BIN the release `clawfleet`), next to the
//! transcript, tray and proxy benchmarks, and gathers the rows it prints.
//!
//! Every section starts the real daemon (`clawfleet serve`, a child
//! process) on the embedded default config (`src/config/default.toml`) as a
//! user would edit it for this machine: it is the Windows box `msi` (no
//! Ollama of its own), the Mac Mini's and the MacBook's Ollamas are fake
//! Ollamas on loopback ports (`common/fake_ollama.rs`, Ollama's documented
//! wire format), their `fleet_url`s small fake fleet APIs, data and `HOME`
//! in a temporary folder, both listeners on OS-chosen ports. Everything else
//! — probe intervals, the proxy's connect and first-byte time limits, the
//! routes (`gpt-oss:20b` → macmini, then macbook), priorities — is the
//! shipped default. Sections:
//!
//! - `black-hole`: the Mac Mini's Ollama stops answering (connections still
//!   accepted, nothing ever sent back) right after the probe saw it up; time
//!   to the first byte of the first request, and the extra time of later
//!   requests once the machine is skipped, against requests pinned to the
//!   MacBook (`macbook/gpt-oss:20b`) through the proxy in the same run.
//!   With the default first-byte limit this section waits as long as that
//!   limit; it prints `PHASE\tbackground` once the rest of its measuring is
//!   done, so a caller may run other sections meanwhile.
//! - `refused`: the same with the Mac Mini's port closed (its Ollama gone).
//! - `streaming`: a 1,000-token `/api/chat` stream, a token every 1 ms,
//!   direct and through the proxy, alternating; time to first token, the
//!   gaps between chunks and each chunk's delay from the fake writing it to
//!   the client reading it (its `created_at` to the nanosecond).
//! - `cold`: both Ollamas list the model, only the MacBook has it loaded
//!   (`/api/ps`), the Mac Mini (priority 100 against 50) takes 2 s to load
//!   it; 50 requests, one after another and in bursts: how many waited for a
//!   load.
//! - `memory`: the daemon's RSS settled and idle, then with 200 streams
//!   open through the proxy.
//!
//! Output: `ROW\tGROUP\tfigure\tmeasured\tbaseline\ttarget\tmet` and
//! `NOTE\ttext` lines on stdout (xtask makes the table), progress on stderr.
//! Without sections it runs them all, `black-hole` last.

#[path = "common/fake_ollama.rs"]
mod fake_ollama;
#[allow(dead_code)] // shared with the other benchmarks, which use all of it
#[path = "common/procfs.rs"]
mod procfs;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use fake_ollama::{Fake, Setup};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

type Res<T = ()> = Result<T, String>;

/// The default config's routed model: `[[routes]]` sends it to macmini,
/// then macbook.
const ROUTED: &str = "gpt-oss:20b";
/// A model of the default config without a route: the router's own order
/// (loaded first, then priority).
const UNROUTED: &str = "qwen3-fast:8b";
const DEFAULT_CONFIG: &str = include_str!("../src/config/default.toml");

// Row groups: the order of the suite's table (a failover's later requests
// come right after its first, group + 1).
const G_BLACK_HOLE: u32 = 11;
const G_REFUSED: u32 = 13;
const G_STREAMING: u32 = 20;
const G_COLD: u32 = 30;
const G_MEMORY: u32 = 40;

/// One row of the suite's table. Cells must not hold tabs or newlines.
fn row(group: u32, figure: &str, measured: &str, baseline: &str, target: &str, met: Option<bool>) {
    let met = match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    };
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    println!(
        "ROW\t{group}\t{}\t{}\t{}\t{}\t{met}",
        clean(figure),
        clean(measured),
        clean(baseline),
        clean(target)
    );
}

fn note(text: &str) {
    println!("NOTE\t{}", text.replace(['\t', '\n'], " "));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// A duration in the unit that reads best.
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.2} ms", s * 1000.0)
    }
}

// ---------------------------------------------------------------------------
// The fleet around the daemon.

/// A peer's fleet API: answers `/fleet/v1/snapshot` with a snapshot of
/// itself, as a running ClawFleet would.
async fn fake_peer(id: &'static str) -> Res<String> {
    use axum::routing::get;
    let snapshot = move || async move {
        let now = jiff::Timestamp::now();
        let me = clawfleet::snapshot::MachineSnapshot {
            id: id.into(),
            name: id.into(),
            is_self: true,
            online: true,
            updated_at: Some(now),
            ..Default::default()
        };
        axum::Json(clawfleet::snapshot::Snapshot {
            clawfleet_version: "0.1.0".into(),
            this_machine: id.into(),
            updated_at: Some(now),
            started_at: Some(now),
            served_at: Some(now),
            machines: vec![me],
            ..Default::default()
        })
    };
    let app = axum::Router::new()
        .route("/fleet/v1/snapshot", get(snapshot))
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"ok": true})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("fake peer: {e}"))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("fake peer: {e}"))?
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// A loopback address nothing listens on.
fn closed_url() -> Res<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    Ok(format!("http://{addr}"))
}

/// The embedded default config, edited as a user of this machine would:
/// this is `msi`; the Mac Mini's and MacBook's Ollamas and fleet APIs are
/// the given loopback URLs; data in `dir`; OS-chosen ports.
async fn user_config(dir: &Path, macmini: &str, macbook: &str) -> Res<String> {
    let mut doc: toml_edit::DocumentMut = DEFAULT_CONFIG
        .parse()
        .map_err(|e| format!("the embedded default config: {e}"))?;
    doc["this_machine"] = toml_edit::value("msi");
    doc["data_dir"] = toml_edit::value(dir.join("data").display().to_string());
    doc["api"]["listen"] = toml_edit::value("127.0.0.1:0");
    doc["proxy"]["listen"] = toml_edit::value("127.0.0.1:0");
    let peer_macmini = fake_peer("macmini").await?;
    let peer_macbook = fake_peer("macbook").await?;
    let machines = doc
        .get_mut("machines")
        .and_then(|m| m.as_array_of_tables_mut())
        .ok_or("the default config has no [[machines]]")?;
    let mut seen = 0;
    for m in machines.iter_mut() {
        let (ollama, fleet) = match m.get("id").and_then(|v| v.as_str()) {
            Some("macmini") => (Some(macmini.to_owned()), peer_macmini.clone()),
            Some("macbook") => (Some(macbook.to_owned()), peer_macbook.clone()),
            // This machine: its own fleet_url is never polled, but nothing
            // here may point off this machine.
            Some("msi") => (None, closed_url()?),
            other => {
                return Err(format!(
                    "unexpected machine {other:?} in the default config"
                ));
            }
        };
        if let Some(url) = ollama {
            m["ollama_url"] = toml_edit::value(url);
        }
        m["fleet_url"] = toml_edit::value(fleet);
        seen += 1;
    }
    if seen != 3 {
        return Err(format!("the default config has {seen} machines, not 3"));
    }
    Ok(doc.to_string())
}

/// A number of the default config (`table.key`), as shipped.
fn default_number(table: &str, key: &str) -> Res<u64> {
    let doc: toml_edit::DocumentMut = DEFAULT_CONFIG.parse().map_err(|e| format!("{e}"))?;
    doc[table][key]
        .as_integer()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("no {table}.{key} in the default config"))
}

/// `clawfleet serve`, a child process.
struct Daemon {
    child: tokio::process::Child,
    pid: u32,
    api: String,
    proxy: String,
    log: PathBuf,
}

impl Daemon {
    async fn start(bin: &Path, dir: &Path, config: &str) -> Res<Daemon> {
        std::fs::create_dir_all(dir.join("home")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("config.toml");
        std::fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
        let log = dir.join("daemon.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("--config")
            .arg(&path)
            .arg("serve")
            .env("HOME", dir.join("home"))
            .env("CLAWFLEET_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("OPENCLAW_") || k.starts_with("CLAWDBOT_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("the daemon exited at once")?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        let (mut api, mut proxy) = (String::new(), String::new());
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("clawfleet: fleet API on ") {
                    api = a.to_owned();
                } else if let Some(p) = line.strip_prefix("clawfleet: inference proxy on ") {
                    proxy = p.to_owned();
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
        if api.is_empty() || proxy.is_empty() {
            let _ = child.kill().await;
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "the daemon did not say where it listens; its log: {}",
                tail.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
            ));
        }
        Ok(Daemon {
            child,
            pid,
            api,
            proxy,
            log,
        })
    }

    /// The daemon's snapshot, as JSON.
    async fn snapshot(&self, client: &reqwest::Client) -> Res<Value> {
        let r = client
            .get(format!("{}/fleet/v1/snapshot", self.api))
            .send()
            .await
            .map_err(|e| format!("snapshot: {e}"))?;
        r.json().await.map_err(|e| format!("snapshot: {e}"))
    }

    /// Waits until the snapshot satisfies `ready`; returns how long it took.
    async fn wait_for(
        &self,
        client: &reqwest::Client,
        what: &str,
        limit: Duration,
        ready: impl Fn(&Value) -> bool,
    ) -> Res<Duration> {
        let t = Instant::now();
        loop {
            if let Ok(s) = self.snapshot(client).await
                && ready(&s)
            {
                return Ok(t.elapsed());
            }
            if t.elapsed() > limit {
                return Err(format!(
                    "waited {} s for {what}; daemon log {}",
                    limit.as_secs(),
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn rss_kib(&self) -> u64 {
        procfs::status_kib(&self.pid.to_string(), "VmRSS:")
    }

    async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            // SAFETY: kill(2) with our own child's pid and a signal number.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Machine `id`'s Ollama in a snapshot.
fn ollama<'a>(snap: &'a Value, id: &str) -> Option<&'a Value> {
    snap["machines"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == id)
        .map(|m| &m["ollama"])
}

fn reachable(snap: &Value, id: &str) -> bool {
    ollama(snap, id).is_some_and(|o| o["reachable"] == true)
}

fn lists(snap: &Value, id: &str, model: &str, key: &str) -> bool {
    ollama(snap, id)
        .and_then(|o| o[key].as_array())
        .is_some_and(|ms| ms.iter().any(|m| m["name"] == model))
}

/// Both Ollamas probed, reachable, listing `model`.
fn both_up_with(snap: &Value, model: &str) -> bool {
    ["macmini", "macbook"]
        .iter()
        .all(|id| reachable(snap, id) && lists(snap, id, model, "models"))
}

fn client() -> Res<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

fn chat_body(model: &str, tokens: u64) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "Count."}], "stream": true,
        "options": {"num_predict": tokens}})
    .to_string()
}

/// One streamed `/api/chat` request: time to the first body byte, who
/// served it and what was skipped (the proxy's headers).
struct FirstByte {
    first: Duration,
    machine: Option<String>,
    fallbacks: Option<String>,
}

async fn first_byte(client: &reqwest::Client, base: &str, model: &str) -> Res<FirstByte> {
    let t = Instant::now();
    let mut r = client
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .body(chat_body(model, 8))
        .send()
        .await
        .map_err(|e| format!("{base}/api/chat: {e}"))?;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (machine, fallbacks) = (
        header("x-clawfleet-machine"),
        header("x-clawfleet-fallbacks"),
    );
    if !r.status().is_success() {
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        return Err(format!("{model}: HTTP {status}: {text}"));
    }
    let got = r.chunk().await.map_err(|e| format!("{model}: {e}"))?;
    let first = t.elapsed();
    if got.is_none() {
        return Err(format!("{model}: an empty answer"));
    }
    while let Ok(Some(_)) = r.chunk().await {}
    Ok(FirstByte {
        first,
        machine,
        fallbacks,
    })
}

// ---------------------------------------------------------------------------
// 1. Failover.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Death {
    BlackHole,
    Refused,
}

/// Requests after the first, routed and pinned alternately: their medians
/// (ms), and how the dead machine was passed over.
struct Later {
    routed: f64,
    pinned: f64,
    n: usize,
    by_circuit: usize,
    left_out: usize,
    tried: usize,
}

async fn later_requests(client: &reqwest::Client, proxy: &str, n: usize) -> Res<Later> {
    let pin = format!("macbook/{ROUTED}");
    let (mut routed, mut pinned) = (Vec::new(), Vec::new());
    let (mut by_circuit, mut left_out, mut tried) = (0, 0, 0);
    for i in 0..n {
        for which in [i % 2, 1 - i % 2] {
            if which == 0 {
                let r = first_byte(client, proxy, ROUTED).await?;
                match r.fallbacks.as_deref() {
                    None => left_out += 1,
                    Some(f) if f.contains("circuit open") => by_circuit += 1,
                    Some(_) => tried += 1,
                }
                routed.push(ms(r.first));
            } else {
                pinned.push(ms(first_byte(client, proxy, &pin).await?.first));
            }
        }
    }
    Ok(Later {
        routed: median(&routed),
        pinned: median(&pinned),
        n,
        by_circuit,
        left_out,
        tried,
    })
}

async fn failover(bin: &Path, dir: &Path, death: Death) -> Res {
    let (group, label) = match death {
        Death::BlackHole => (G_BLACK_HOLE, "black-holed"),
        Death::Refused => (G_REFUSED, "refused (port closed)"),
    };
    let macmini = Fake::start(Setup::loaded(&[ROUTED]))
        .await
        .map_err(|e| e.to_string())?;
    let macbook = Fake::start(Setup::loaded(&[ROUTED]))
        .await
        .map_err(|e| e.to_string())?;
    let config = user_config(dir, &macmini.url(), &macbook.url()).await?;
    let daemon = Daemon::start(bin, dir, &config).await?;
    let client = client()?;
    daemon
        .wait_for(
            &client,
            "the first probe of both Ollamas",
            Duration::from_secs(60),
            |s| both_up_with(s, ROUTED),
        )
        .await?;
    let pin = format!("macbook/{ROUTED}");
    // Warm the proxy's connections to the MacBook, never touching the Mac
    // Mini through the proxy: its death is the news.
    let mut base = Vec::new();
    for i in 0..40 {
        let r = first_byte(&client, &daemon.proxy, &pin).await?;
        if i >= 10 {
            base.push(ms(r.first));
        }
    }
    let baseline = median(&base);
    let first_byte_secs = default_number("proxy", "first_byte_timeout_secs")?;
    let limit = Duration::from_secs(first_byte_secs + 60);
    match death {
        Death::BlackHole => macmini.black_hole(),
        Death::Refused => macmini.refuse(),
    }
    let died = Instant::now();
    eprintln!("user_bench: {label}: the Mac Mini died; first request…");
    let first = {
        let (client, proxy) = (client.clone(), daemon.proxy.clone());
        tokio::spawn(async move {
            tokio::time::timeout(limit, first_byte(&client, &proxy, ROUTED)).await
        })
    };
    // A refused connection fails at once: the first request is over before
    // the next begins, and two more make three failures in a row, which
    // open the circuit. A black hole keeps the first request waiting, in
    // the background, while the later ones are measured.
    let mut first = Some(first);
    let mut first_result = None;
    if death == Death::Refused {
        if let Some(task) = first.take() {
            first_result = Some(task.await.map_err(|e| e.to_string())?);
        }
        for _ in 0..2 {
            first_byte(&client, &daemon.proxy, ROUTED).await?;
        }
    }
    let seen_down = if death == Death::BlackHole {
        // The probe's verdict is what takes a hung machine out of the plan.
        let t = daemon
            .wait_for(
                &client,
                "the probe to see the Mac Mini down",
                Duration::from_secs(60),
                |s| !reachable(s, "macmini"),
            )
            .await?;
        Some(died.elapsed().max(t))
    } else {
        None
    };
    let later = later_requests(&client, &daemon.proxy, 30).await?;
    let how = format!(
        "of {} later requests the Mac Mini was skipped by its open circuit in {}, left out by the router (the probe saw it down) in {}, tried and failed over in {}",
        later.n, later.by_circuit, later.left_out, later.tried
    );
    let extra = later.routed - later.pinned;
    row(
        group + 1,
        &format!(
            "failover, {label} first machine: later requests (machine skipped), extra time to first byte"
        ),
        &format!("{extra:+.2} ms (median {:.2} ms)", later.routed),
        &format!(
            "{:.2} ms: requests pinned to the healthy machine through the proxy, same run",
            later.pinned
        ),
        "≤ 5 ms extra",
        Some(extra <= 5.0),
    );
    note(&format!("Failover, {label}: {how}."));
    if let Some(d) = seen_down {
        note(&format!(
            "Failover, {label}: the probe saw the Mac Mini down {:.1} s after it stopped answering (Ollama probed every {} s with a {} ms limit, the defaults); until then every request routed to it waits like the first, up to the proxy's first_byte_timeout_secs ({first_byte_secs} s by default).",
            d.as_secs_f64(),
            default_number("probes", "ollama_interval_secs")?,
            default_number("probes", "timeout_ms")?,
        ));
    }
    let first_result = match (first_result, first) {
        (Some(r), _) => r,
        (None, Some(task)) => {
            println!("PHASE\tbackground");
            eprintln!(
                "user_bench: {label}: waiting for the first request (up to {} s)…",
                limit.as_secs()
            );
            task.await.map_err(|e| e.to_string())?
        }
        (None, None) => return Err("no first request".into()),
    };
    match first_result {
        Ok(Ok(r)) => {
            let why = r.fallbacks.clone().unwrap_or_else(|| "-".into());
            row(
                group,
                &format!(
                    "failover, {label} first machine: first request, time to first byte (from the next machine)"
                ),
                &format!("**{}**", human(r.first)),
                &format!("{baseline:.2} ms pinned to the healthy machine through the proxy"),
                "≤ 1 s",
                Some(r.first <= Duration::from_secs(1)),
            );
            note(&format!(
                "Failover, {label}: the first request was served by {} after: {why}.",
                r.machine.as_deref().unwrap_or("?")
            ));
        }
        Ok(Err(e)) => row(
            group,
            &format!("failover, {label} first machine: first request, time to first byte"),
            &format!("failed: {e}"),
            &format!("{baseline:.2} ms pinned"),
            "≤ 1 s",
            Some(false),
        ),
        Err(_) => row(
            group,
            &format!("failover, {label} first machine: first request, time to first byte"),
            &format!("**> {} s** (no byte yet; gave up)", limit.as_secs()),
            &format!("{baseline:.2} ms pinned"),
            "≤ 1 s",
            Some(false),
        ),
    }
    daemon.stop().await;
    drop((macmini, macbook));
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. Streaming.

const STREAM_TOKENS: u64 = 1_000;
const STREAM_RUNS: usize = 15;

/// A streaming figure: its name, how it is read from a run, its target
/// (ms added) and the target in words.
type Figure = (
    &'static str,
    fn(&StreamRun) -> f64,
    Option<f64>,
    &'static str,
);

/// One stream's figures, in ms.
struct StreamRun {
    ttft: f64,
    gap_mean: f64,
    gap_p99: f64,
    delay_mean: f64,
    delay_p99: f64,
}

async fn stream_once(client: &reqwest::Client, base: &str) -> Res<StreamRun> {
    let t0 = Instant::now();
    let mut r = client
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .body(chat_body(ROUTED, STREAM_TOKENS))
        .send()
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("{base}: HTTP {}", r.status()));
    }
    // Each line with the moment its last byte arrived; parsed afterwards so
    // that reading stays the same light work on both sides.
    let mut lines: Vec<(Instant, jiff::Timestamp, Vec<u8>)> = Vec::with_capacity(1_100);
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| format!("{base}: {e}"))? {
        let (at, wall) = (Instant::now(), jiff::Timestamp::now());
        buf.extend_from_slice(&chunk);
        while let Some(end) = memchr::memchr(b'\n', &buf) {
            let line: Vec<u8> = buf.drain(..=end).collect();
            lines.push((at, wall, line));
        }
    }
    let mut arrivals = Vec::new();
    let mut delays = Vec::new();
    for (at, wall, line) in &lines {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("a chunk: {e}"))?;
        if v["done"] == true {
            continue;
        }
        let written: jiff::Timestamp = v["created_at"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("a chunk without created_at")?;
        arrivals.push(*at);
        delays.push(wall.duration_since(written).as_secs_f64() * 1000.0);
    }
    if arrivals.len() as u64 != STREAM_TOKENS {
        return Err(format!("{} tokens, not {STREAM_TOKENS}", arrivals.len()));
    }
    let gaps: Vec<f64> = arrivals.windows(2).map(|w| ms(w[1] - w[0])).collect();
    Ok(StreamRun {
        ttft: ms(arrivals[0] - t0),
        gap_mean: mean(&gaps),
        gap_p99: percentile(&gaps, 99.0),
        delay_mean: mean(&delays),
        delay_p99: percentile(&delays, 99.0),
    })
}

async fn streaming(bin: &Path, dir: &Path) -> Res {
    let macmini = Fake::start(Setup {
        pace: Duration::from_millis(1),
        ..Setup::loaded(&[ROUTED])
    })
    .await
    .map_err(|e| e.to_string())?;
    let macbook = Fake::start(Setup::loaded(&[ROUTED]))
        .await
        .map_err(|e| e.to_string())?;
    let config = user_config(dir, &macmini.url(), &macbook.url()).await?;
    let daemon = Daemon::start(bin, dir, &config).await?;
    let client = client()?;
    daemon
        .wait_for(
            &client,
            "the first probe of both Ollamas",
            Duration::from_secs(60),
            |s| both_up_with(s, ROUTED),
        )
        .await?;
    let direct = macmini.url();
    eprintln!("user_bench: streaming {STREAM_TOKENS} tokens, {STREAM_RUNS} runs each way…");
    for _ in 0..2 {
        stream_once(&client, &direct).await?;
        stream_once(&client, &daemon.proxy).await?;
    }
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for i in 0..STREAM_RUNS {
        if i % 2 == 0 {
            d.push(stream_once(&client, &direct).await?);
            p.push(stream_once(&client, &daemon.proxy).await?);
        } else {
            p.push(stream_once(&client, &daemon.proxy).await?);
            d.push(stream_once(&client, &direct).await?);
        }
    }
    daemon.stop().await;
    let med =
        |v: &[StreamRun], f: fn(&StreamRun) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let what = format!(
        "streaming 1,000 tokens (/api/chat NDJSON, a token every 1 ms), median of {STREAM_RUNS} runs"
    );
    let figures: [Figure; 5] = [
        (
            "time to first token, added by the proxy",
            |r| r.ttft,
            Some(1.0),
            "≤ 1 ms added",
        ),
        (
            "mean inter-chunk delay, added",
            |r| r.gap_mean,
            Some(0.1),
            "≤ 0.1 ms added",
        ),
        (
            "p99 inter-chunk delay, added",
            |r| r.gap_p99,
            Some(0.1),
            "≤ 0.1 ms added",
        ),
        (
            "each chunk's delay from written to read, mean, added",
            |r| r.delay_mean,
            None,
            "—",
        ),
        (
            "each chunk's delay from written to read, p99, added",
            |r| r.delay_p99,
            None,
            "—",
        ),
    ];
    for (name, f, target, target_text) in figures {
        let (dv, pv) = (med(&d, f), med(&p, f));
        let added = pv - dv;
        row(
            G_STREAMING,
            &format!("{what}: {name}"),
            &format!("{added:+.3} ms ({pv:.3} ms through the proxy)"),
            &format!("{dv:.3} ms direct to the fake"),
            target_text,
            target.map(|t| added <= t),
        );
    }
    note(
        "Streaming: the inter-chunk delay is the gap between two tokens' arrival at the client (the fake writes one every 1 ms on a fixed schedule); a chunk's delay from written to read is the client's clock at arrival minus the chunk's created_at, which the fake sets to the nanosecond as it writes it.",
    );
    drop((macmini, macbook));
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Cold loads.

async fn cold(bin: &Path, dir: &Path) -> Res {
    // The Mac Mini (priority 100) has both models but neither loaded, and
    // takes 2 s to load one; the MacBook (priority 50) has them loaded.
    let macmini = Fake::start(Setup {
        loaded: Vec::new(),
        load_delay: Duration::from_secs(2),
        ..Setup::loaded(&[ROUTED, UNROUTED])
    })
    .await
    .map_err(|e| e.to_string())?;
    let macbook = Fake::start(Setup::loaded(&[ROUTED, UNROUTED]))
        .await
        .map_err(|e| e.to_string())?;
    let config = user_config(dir, &macmini.url(), &macbook.url()).await?;
    let daemon = Daemon::start(bin, dir, &config).await?;
    let client = client()?;
    daemon
        .wait_for(
            &client,
            "the first probe (both Ollamas, the MacBook's loaded models)",
            Duration::from_secs(60),
            |s| both_up_with(s, UNROUTED) && lists(s, "macbook", UNROUTED, "loaded"),
        )
        .await?;
    for (model, what) in [
        (
            UNROUTED,
            format!(
                "{UNROUTED}, no route: loaded on the MacBook (priority 50), not on the Mac Mini (priority 100, 2 s to load)"
            ),
        ),
        (
            ROUTED,
            format!(
                "{ROUTED}, the default config's route (macmini, then macbook): loaded on the MacBook only"
            ),
        ),
    ] {
        eprintln!("user_bench: cold loads, {model}…");
        let before = macmini.cold_waits() + macbook.cold_waits();
        let mut served: std::collections::BTreeMap<String, usize> = Default::default();
        let mut count = |r: FirstByte| {
            *served
                .entry(r.machine.unwrap_or_else(|| "?".into()))
                .or_default() += 1;
        };
        for _ in 0..20 {
            count(first_byte(&client, &daemon.proxy, model).await?);
        }
        for _ in 0..3 {
            let burst: Vec<_> = (0..10)
                .map(|_| {
                    let (client, proxy) = (client.clone(), daemon.proxy.clone());
                    tokio::spawn(async move { first_byte(&client, &proxy, model).await })
                })
                .collect();
            for t in burst {
                count(t.await.map_err(|e| e.to_string())??);
            }
        }
        let total: usize = served.values().sum();
        let hits = macmini.cold_waits() + macbook.cold_waits() - before;
        let by: Vec<String> = served.iter().map(|(m, n)| format!("{m} {n}")).collect();
        row(
            G_COLD,
            &format!("cold loads, {what}: requests that waited for a model load"),
            &format!(
                "**{hits} of {total}** ({:.0}%)",
                hits as f64 * 100.0 / total.max(1) as f64
            ),
            &format!(
                "count: {total} requests, 20 one after another then 3 bursts of 10 at once; served by {}",
                by.join(", ")
            ),
            "0",
            Some(hits == 0),
        );
    }
    daemon.stop().await;
    drop((macmini, macbook));
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Memory.

const STREAMS: usize = 200;

async fn memory(bin: &Path, dir: &Path) -> Res {
    let slow = Setup {
        pace: Duration::from_secs(1),
        ..Setup::loaded(&[ROUTED, UNROUTED])
    };
    let macmini = Fake::start(slow.clone()).await.map_err(|e| e.to_string())?;
    let macbook = Fake::start(slow).await.map_err(|e| e.to_string())?;
    let config = user_config(dir, &macmini.url(), &macbook.url()).await?;
    let daemon = Daemon::start(bin, dir, &config).await?;
    let client = client()?;
    daemon
        .wait_for(
            &client,
            "the first probe of both Ollamas",
            Duration::from_secs(60),
            |s| both_up_with(s, ROUTED),
        )
        .await?;
    eprintln!("user_bench: memory: letting the daemon settle…");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(daemon.rss_kib() as f64);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let idle = median(&samples);
    eprintln!("user_bench: memory: {STREAMS} streams…");
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..STREAMS {
        let (client, proxy, open) = (client.clone(), daemon.proxy.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut r) = client
                .post(format!("{proxy}/api/chat"))
                .header("content-type", "application/json")
                .body(chat_body(ROUTED, 30))
                .send()
                .await
            else {
                return;
            };
            if matches!(r.chunk().await, Ok(Some(_))) {
                open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            while let Ok(Some(_)) = r.chunk().await {}
        }));
    }
    let t = Instant::now();
    while open.load(std::sync::atomic::Ordering::SeqCst) < STREAMS
        && t.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let opened = open.load(std::sync::atomic::Ordering::SeqCst);
    let mut samples = Vec::new();
    for _ in 0..3 {
        samples.push(daemon.rss_kib() as f64);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let busy = median(&samples);
    for t in &tasks {
        t.abort();
    }
    daemon.stop().await;
    let mb = |kib: f64| kib * 1024.0 / 1e6;
    let mib = |kib: f64| kib / 1024.0;
    row(
        G_MEMORY,
        "daemon RSS, idle: default config of 3 machines on fakes, 20 s after the first probe cycle",
        &format!("**{:.1} MB** ({:.1} MiB)", mb(idle), mib(idle)),
        "—",
        "≤ 20 MB",
        Some(mb(idle) <= 20.0),
    );
    row(
        G_MEMORY,
        &format!("daemon RSS with {STREAMS} streams open through the proxy"),
        &format!("{:.1} MB ({:.1} MiB; {opened} open)", mb(busy), mib(busy)),
        &format!(
            "idle {:.1} MB in the same run: +{:.1} KiB per open stream",
            mb(idle),
            (busy - idle) / opened.max(1) as f64
        ),
        "— (none given)",
        None,
    );
    drop((macmini, macbook));
    Ok(())
}

// ---------------------------------------------------------------------------

/// As many open files as the hard limit allows: 200 streams hold sockets
/// on both sides of the proxy (the daemon inherits the limit).
fn raise_file_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit with a valid resource and a struct we own.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

const SECTIONS: &[&str] = &["refused", "streaming", "cold", "memory", "black-hole"];

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bin) = args.first().map(PathBuf::from) else {
        eprintln!("usage: user_bench CLAWFLEET_BIN [{}]…", SECTIONS.join("|"));
        return ExitCode::from(2);
    };
    let mut sections: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    if sections.is_empty() {
        sections = SECTIONS.to_vec();
    }
    if let Some(bad) = sections.iter().find(|s| !SECTIONS.contains(s)) {
        eprintln!(
            "user_bench: no section {bad:?}; the sections: {}",
            SECTIONS.join(", ")
        );
        return ExitCode::from(2);
    }
    raise_file_limit();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = std::env::temp_dir().join(format!("clawfleet-user-bench-{}", std::process::id()));
    let mut failed = false;
    for section in sections {
        let dir = work.join(section);
        let result = match section {
            "black-hole" => failover(&bin, &dir, Death::BlackHole).await,
            "refused" => failover(&bin, &dir, Death::Refused).await,
            "streaming" => streaming(&bin, &dir).await,
            "cold" => cold(&bin, &dir).await,
            _ => memory(&bin, &dir).await,
        };
        if let Err(e) = result {
            eprintln!("user_bench: {section}: {e}");
            note(&format!("The {section} section failed: {e}"));
            failed = true;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
