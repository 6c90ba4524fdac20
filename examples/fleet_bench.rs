//! Polling 20 peers, one of them hung, every 5 s: what it costs the daemon
//! in CPU and how stale the fleet view gets.
//!
//! `cargo xtask bench fleet` builds `clawfleet` in release and runs this as
//! `fleet_bench target/release/clawfleet`. Two runs of the same daemon and
//! config, 60 s each after a warm-up:
//!
//! - **baseline**: the 20 peers in the config without a `fleet_url` (not
//!   polled);
//! - **polled**: the same 20 with one: 19 stand-ins that answer each poll
//!   with a realistic snapshot of themselves (about 8 KB: 12 models, 3
//!   disks, 8 services, 10 pm2 apps) and one that accepts the connection
//!   and never answers.
//!
//! CPU is the daemon's utime+stime from `/proc/<pid>/stat` over the window;
//! staleness is sampled once a second from its `/fleet/v1/snapshot`: for
//! each answering peer, now minus its `last_seen_at`.

#[path = "common/procfs.rs"]
mod procfs;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clawfleet::snapshot::{
    Disk, LoadedModel, MachineSnapshot, Memory, OllamaModel, OllamaStatus, Pm2App, ServiceStatus,
    Snapshot,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PEERS: usize = 20;
const WINDOW: Duration = Duration::from_secs(60);

fn snapshot_of(id: &str) -> Vec<u8> {
    let now = jiff::Timestamp::now();
    let me = MachineSnapshot {
        id: id.into(),
        name: format!("Peer {id}"),
        role: "server".into(),
        is_self: true,
        hostname: Some(format!("{id}.tailnet.ts.net")),
        online: true,
        cpu_percent: Some(23.5),
        cpu_cores: vec![20.0; 10],
        memory: Some(Memory {
            total_bytes: 32 << 30,
            used_bytes: 19 << 30,
            available_bytes: 13 << 30,
            swap_total_bytes: 2 << 30,
            swap_used_bytes: 0,
        }),
        disks: (0..3)
            .map(|i| Disk {
                mount: format!("/Volumes/disk{i}"),
                device: format!("/dev/disk{i}"),
                file_system: "apfs".into(),
                total_bytes: 1 << 40,
                used_bytes: 1 << 39,
                available_bytes: 1 << 39,
                removable: false,
            })
            .collect(),
        uptime_secs: Some(86_400),
        process_count: Some(612),
        ollama: Some(OllamaStatus {
            url: "http://127.0.0.1:11434".into(),
            reachable: true,
            version: Some("0.12.6".into()),
            latency_ms: Some(1.2),
            models: (0..12)
                .map(|i| OllamaModel {
                    name: format!("model-{i}:20b"),
                    size_bytes: 13 << 30,
                    family: Some("llama".into()),
                    parameter_size: Some("20.9B".into()),
                    quantization: Some("Q4_K_M".into()),
                    modified_at: Some("2026-11-01T10:00:00Z".into()),
                    digest: Some("a".repeat(64)),
                    format: Some("gguf".into()),
                    purpose: Some("Primary model".into()),
                })
                .collect(),
            loaded: vec![LoadedModel {
                name: "model-0:20b".into(),
                size_bytes: 14 << 30,
                vram_bytes: 14 << 30,
                expires_at: Some("2099-01-01T00:00:00Z".into()),
            }],
            checked_at: Some(now),
            ..OllamaStatus::default()
        }),
        services: (0..8)
            .map(|i| ServiceStatus {
                name: format!("service {i}"),
                kind: "tcp".into(),
                target: format!("127.0.0.1:{}", 3000 + i),
                up: true,
                latency_ms: Some(0.3),
                checked_at: Some(now),
                ..ServiceStatus::default()
            })
            .collect(),
        pm2: (0..10)
            .map(|i| Pm2App {
                name: format!("app-{i}"),
                pm_id: Some(i),
                status: "online".into(),
                restarts: 2,
                uptime_secs: Some(3600),
                cpu_percent: Some(1.0),
                memory_bytes: Some(80 << 20),
                pid: Some(4000 + i),
                expected: true,
            })
            .collect(),
        updated_at: Some(now),
        ..MachineSnapshot::default()
    };
    let snap = Snapshot {
        clawfleet_version: "0.1.0".into(),
        this_machine: id.into(),
        updated_at: Some(now),
        started_at: Some(now),
        served_at: Some(now),
        machines: vec![me],
        ..Snapshot::default()
    };
    serde_json::to_vec(&snap).expect("a snapshot serializes")
}

/// A peer that answers every request with its snapshot (keep-alive), or,
/// when `hung`, accepts and never answers.
async fn peer(id: String, hung: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = snapshot_of(&id);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut held = Vec::new();
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    held.extend_from_slice(&buf[..n]);
                    while let Some(end) = held.windows(4).position(|w| w == b"\r\n\r\n") {
                        held.drain(..end + 4);
                        if hung {
                            continue;
                        }
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if s.write_all(head.as_bytes()).await.is_err()
                            || s.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

struct Run {
    cpu_percent: f64,
    rss_mib: f64,
    ages: Vec<f64>,
    hung_state: String,
    fresh_min: usize,
}

async fn run(
    bin: &str,
    dir: &std::path::Path,
    peers: &[(String, SocketAddr)],
    polled: bool,
) -> Run {
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let data = dir.join(if polled { "polled" } else { "baseline" });
    let mut text = format!(
        r#"this_machine = "me"
data_dir = {data:?}
[api]
listen = "127.0.0.1:{api_port}"
[proxy]
listen = "127.0.0.1:0"
[clawdbot]
config_path = {none:?}
[costs]
read_transcripts = false
[heal]
mode = "off"
[fleet]
poll_interval_secs = 5
[[machines]]
id = "me"
name = "Me"
"#,
        none = dir.join("none.json"),
    );
    for (id, addr) in peers {
        text.push_str(&format!(
            "[[machines]]\nid = \"{id}\"\nname = \"Peer {id}\"\n"
        ));
        if polled {
            text.push_str(&format!("fleet_url = \"http://{addr}\"\n"));
        }
    }
    let config = dir.join(if polled {
        "polled.toml"
    } else {
        "baseline.toml"
    });
    std::fs::write(&config, text).expect("write config");
    let mut child: Child = Command::new(bin)
        .args(["--config"])
        .arg(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start clawfleet");
    let pid = child.id();
    let client = clawfleet::net::client().expect("client");
    let url = format!("http://127.0.0.1:{api_port}/fleet/v1/snapshot");
    let warm = Instant::now();
    while client.get(&url).send().await.is_err() {
        assert!(
            warm.elapsed() < Duration::from_secs(30),
            "the daemon never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let c0 = procfs::cpu_ticks(&pid.to_string());
    let t0 = Instant::now();
    let mut ages = Vec::new();
    let mut hung_state = String::from("-");
    let mut fresh_min = usize::MAX;
    while t0.elapsed() < WINDOW {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(r) = client.get(&url).send().await else {
            continue;
        };
        let Ok(snap) = r.json::<Snapshot>().await else {
            continue;
        };
        let now = jiff::Timestamp::now();
        let mut fresh = 0;
        for m in snap.machines.iter().filter(|m| !m.is_self) {
            let Some(p) = &m.peer else { continue };
            if m.id == "hung" {
                hung_state = p.state.as_str().to_owned();
                continue;
            }
            if p.state == clawfleet::snapshot::PeerState::Fresh {
                fresh += 1;
            }
            if let Some(seen) = p.last_seen_at {
                ages.push((now.as_millisecond() - seen.as_millisecond()) as f64 / 1000.0);
            }
        }
        fresh_min = fresh_min.min(fresh);
    }
    let secs = t0.elapsed().as_secs_f64();
    let ticks = procfs::cpu_ticks(&pid.to_string()) - c0;
    let rss = procfs::status_kib(&pid.to_string(), "VmRSS:");
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    ages.sort_by(f64::total_cmp);
    Run {
        cpu_percent: ticks as f64 / procfs::TICKS_PER_SEC / secs * 100.0,
        rss_mib: rss as f64 / 1024.0,
        ages,
        hung_state,
        fresh_min: if fresh_min == usize::MAX {
            0
        } else {
            fresh_min
        },
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/clawfleet".to_owned());
    let dir = std::env::temp_dir().join(format!("clawfleet-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut peers = Vec::new();
    for i in 0..PEERS - 1 {
        let id = format!("peer{i:02}");
        let addr = peer(id.clone(), false).await;
        peers.push((id, addr));
    }
    peers.push(("hung".to_owned(), peer("hung".to_owned(), true).await));
    let size = snapshot_of("peer00").len();
    println!(
        "fleet benchmark: {PEERS} peers ({} answering with a {:.1} KB snapshot, 1 hung), polled every 5 s; {}-s windows",
        PEERS - 1,
        size as f64 / 1000.0,
        WINDOW.as_secs()
    );
    let base = run(&bin, &dir, &peers, false).await;
    let polled = run(&bin, &dir, &peers, true).await;
    println!();
    println!("| figure | baseline (peers not polled) | 20 peers polled, 1 hung |");
    println!("|---|---|---|");
    println!(
        "| daemon CPU, % of one core | {:.3}% | {:.3}% (+{:.3} points, ×{:.1}) |",
        base.cpu_percent,
        polled.cpu_percent,
        polled.cpu_percent - base.cpu_percent,
        polled.cpu_percent / base.cpu_percent.max(0.001)
    );
    println!(
        "| daemon RSS at end | {:.1} MiB | {:.1} MiB |",
        base.rss_mib, polled.rss_mib
    );
    println!(
        "| age of an answering peer's data: median / p95 / max | - | {:.1} s / {:.1} s / {:.1} s ({} samples) |",
        pct(&polled.ages, 0.5),
        pct(&polled.ages, 0.95),
        polled.ages.last().copied().unwrap_or(f64::NAN),
        polled.ages.len()
    );
    println!(
        "| answering peers fresh, fewest in any sample | - | {} of {} |",
        polled.fresh_min,
        PEERS - 1
    );
    println!("| the hung peer | - | {} |", polled.hung_state);
    let _ = std::fs::remove_dir_all(&dir);
}
