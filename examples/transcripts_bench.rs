//! The transcript ingestion benchmark: `cargo xtask bench transcripts`.
//!
//! Generates 1,000,000 transcript lines in Clawdbot's format across 200
//! sessions of 4 agents (a third are assistant turns with usage of about 600
//! bytes; the rest user messages and tool results of 200 bytes to 4 KB),
//! then measures in the same run:
//!
//! 1. a direct baseline: every file read with the same 1 MiB chunks, split
//!    into lines and pre-filtered the same way, nothing parsed or stored;
//! 2. a full ingest into a new cost store;
//! 3. a restart with nothing new: open the store and ingest again (median of 5);
//! 4. 1,000 new lines appended across 10 files, ingested.
//!
//! Prints a Markdown table.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clawfleet::cost::store::CostStore;

const LINES: u64 = 1_000_000;
const AGENTS: u64 = 4;
const SESSIONS: u64 = 200;

/// A small deterministic generator (no dependency, same files every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn filler(rng: &mut Lcg, len: usize) -> String {
    const WORDS: &[&str] = &[
        "the", "model", "file", "build", "cargo", "test", "error", "line", "value", "mac", "mini",
        "ollama", "fleet", "heal", "proxy", "token", "stream", "json",
    ];
    let mut out = String::with_capacity(len + 8);
    while out.len() < len {
        out.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        out.push(' ');
    }
    out
}

fn line(rng: &mut Lcg, n: u64) -> String {
    let at_ms = 1_761_955_200_000 + n as i64 * 2_000; // from 2025-11-01
    match n % 3 {
        0 => {
            let text = filler(rng, 180);
            format!(
                r#"{{"type":"message","id":"a{n}","parentId":"u{n}","timestamp":"{ts}","message":{{"role":"assistant","content":[{{"type":"text","text":"{text}"}}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-5","usage":{{"input":{i},"output":{o},"cacheRead":{cr},"cacheWrite":{cw},"totalTokens":{t},"cost":{{"input":0.001,"output":0.002,"cacheRead":0.0001,"cacheWrite":0.0002,"total":0.0033}}}},"stopReason":"stop","timestamp":{at_ms}}}}}"#,
                ts = jiff::Timestamp::from_millisecond(at_ms).expect("time"),
                i = rng.next() % 5_000,
                o = rng.next() % 2_000,
                cr = rng.next() % 50_000,
                cw = rng.next() % 5_000,
                t = 62_000,
            )
        }
        1 => format!(
            r#"{{"type":"message","id":"u{n}","timestamp":"2025-11-01T00:00:00Z","message":{{"role":"user","content":[{{"type":"text","text":"{}"}}],"timestamp":{at_ms}}}}}"#,
            filler(rng, 100)
        ),
        _ => {
            let len = 150 + (rng.next() % 3_900) as usize;
            format!(
                r#"{{"type":"message","id":"t{n}","timestamp":"2025-11-01T00:00:00Z","message":{{"role":"toolResult","toolCallId":"c{n}","toolName":"bash","content":[{{"type":"text","text":"{}"}}],"timestamp":{at_ms}}}}}"#,
                filler(rng, len)
            )
        }
    }
}

/// Writes the transcripts; returns the files and the bytes written.
fn generate(root: &Path) -> (Vec<PathBuf>, u64) {
    let mut rng = Lcg(42);
    let mut files = Vec::new();
    let mut writers = Vec::new();
    for s in 0..SESSIONS {
        let dir = root.join(format!("agent{}", s % AGENTS)).join("sessions");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(format!("session-{s:04}.jsonl"));
        writers.push(std::io::BufWriter::new(
            std::fs::File::create(&path).expect("file"),
        ));
        files.push(path);
    }
    let mut bytes = 0;
    for n in 0..LINES {
        let l = line(&mut rng, n);
        bytes += l.len() as u64 + 1;
        let w = &mut writers[(n / 3 % SESSIONS) as usize];
        w.write_all(l.as_bytes()).expect("write");
        w.write_all(b"\n").expect("write");
    }
    for mut w in writers {
        w.flush().expect("flush");
    }
    (files, bytes)
}

/// The baseline: read, split into lines and pre-filter, nothing more.
fn baseline(files: &[PathBuf]) -> (u64, u64) {
    let mut lines = 0;
    let mut candidates = 0;
    let mut chunk = vec![0u8; 1024 * 1024];
    let mut buf: Vec<u8> = Vec::new();
    let usage = memchr::memmem::Finder::new(b"\"usage\"");
    let assistant = memchr::memmem::Finder::new(b"\"assistant\"");
    for path in files {
        let mut f = std::fs::File::open(path).expect("open");
        loop {
            let n = f.read(&mut chunk).expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(pos) = memchr::memchr(b'\n', &buf[start..]) {
                let l = &buf[start..start + pos];
                lines += 1;
                if usage.find(l).is_some() && assistant.find(l).is_some() {
                    candidates += 1;
                }
                start += pos + 1;
            }
            buf.drain(..start);
        }
    }
    (lines, candidates)
}

fn main() {
    let tmp = std::env::temp_dir().join(format!(
        "clawfleet-transcripts-bench-{}",
        std::process::id()
    ));
    let agents = tmp.join("agents");
    let store_path = tmp.join("data").join("costs.sqlite");
    eprintln!("generating {LINES} lines…");
    let (files, bytes) = generate(&agents);

    // Warm the page cache equally for both: one untimed read.
    let _ = baseline(&files);
    let t = Instant::now();
    let (lines, candidates) = baseline(&files);
    let base_s = t.elapsed().as_secs_f64();
    assert_eq!(lines, LINES);

    eprintln!("ingesting…");
    let t = Instant::now();
    let mut store = CostStore::open(&store_path).expect("store");
    let report = store.ingest_transcripts(&agents).expect("ingest");
    let ingest_s = t.elapsed().as_secs_f64();
    assert_eq!(report.lines_read, LINES);
    assert_eq!(report.turns_added, candidates, "{:?}", report.problems);
    drop(store);

    eprintln!("restarting with nothing new…");
    let mut restarts = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut store = CostStore::open(&store_path).expect("store");
        let r = store.ingest_transcripts(&agents).expect("ingest");
        restarts.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.lines_read, 0);
    }
    restarts.sort_by(f64::total_cmp);

    eprintln!("appending 1,000 lines to 10 files…");
    let mut rng = Lcg(7);
    for (i, path) in files.iter().take(10).enumerate() {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        for k in 0..100u64 {
            let n = LINES + i as u64 * 100 + k;
            writeln!(f, "{}", line(&mut rng, n)).expect("write");
        }
    }
    let t = Instant::now();
    let mut store = CostStore::open(&store_path).expect("store");
    let r = store.ingest_transcripts(&agents).expect("ingest");
    let append_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r.lines_read, 1_000);
    drop(store);

    eprintln!("pricing the month of all those turns…");
    let settings = clawfleet::cost::Settings {
        machine: "bench".into(),
        machine_name: "Bench".into(),
        machine_budget_usd: None,
        fleet_budget_usd: None,
        daily_budget_usd: None,
        savings_model: "claude-sonnet-5-5".into(),
        local_providers: vec!["ollama*".into()],
        leak: Default::default(),
        transcripts_dir: None,
        agent_config: None,
        fleet_hosts: Vec::new(),
        prices_path: None,
        time_zone: Some("UTC".into()),
        data_dir: tmp.join("data"),
    };
    let mut engine = clawfleet::cost::Engine::open(settings).expect("engine");
    let month = clawfleet::cost::Month::parse("2025-11").expect("month");
    let now: jiff::Timestamp = "2025-12-15T00:00:00Z".parse().expect("now");
    let t = Instant::now();
    let report = engine.month(month, now).expect("report");
    let report_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(report.cloud.requests > 300_000, "{}", report.cloud.requests);
    let db_bytes = std::fs::metadata(&store_path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&tmp);

    let mb = bytes as f64 / 1e6;
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!(
        "| transcripts | {LINES} lines ({} turns with usage), {} files, {mb:.0} MB | |",
        candidates, SESSIONS
    );
    println!(
        "| direct read (baseline: read, split, pre-filter) | {:.3} s, {:.0} lines/s, {:.0} MB/s | |",
        base_s,
        LINES as f64 / base_s,
        mb / base_s
    );
    println!(
        "| full ingest into a new store | {:.3} s, **{:.0} lines/s**, {:.0} MB/s ({:.2}× the baseline's time) | ≥ 200,000 lines/s |",
        ingest_s,
        LINES as f64 / ingest_s,
        mb / ingest_s,
        ingest_s / base_s
    );
    println!(
        "| restart with nothing new (open + ingest), median of 5 | **{:.1} ms** (min {:.1}, max {:.1}) | < 50 ms |",
        restarts[2], restarts[0], restarts[4]
    );
    println!("| 1,000 new lines in 10 files, open + ingest | {append_ms:.1} ms | |");
    println!(
        "| the month's report over {} turns (${:.2}), no ledger | {report_ms:.0} ms | |",
        report.cloud.requests, report.month_to_date_usd
    );
    println!("| cost store size | {:.1} MB | |", db_bytes as f64 / 1e6);
}
