//! The transcript ingestion benchmark: `cargo xtask bench transcripts`, and
//! the cost-scan rows of `cargo xtask bench`.
//!
//! Generates 280,000 transcript lines (about 300 MB) in Clawdbot's format
//! across 200 sessions of 4 agents (a third are assistant turns with usage
//! of about 600 bytes; the rest user messages and tool results of 200 bytes
//! to 4 KB), then measures in the same run:
//!
//! 1. a direct baseline: every file read with the same 1 MiB chunks, split
//!    into lines and pre-filtered the same way, nothing parsed or stored;
//! 2. a full ingest into a new cost store;
//! 3. a restart with nothing new: open the store and ingest again (median of 5);
//! 4. 1,000 new lines appended across 10 files, ingested.
//!
//! Then the same for OpenClaw 2026.9's store: two agent databases of about
//! 300 MB together, made with OpenClaw's own DDL
//! (`tests/fixtures/openclaw/agent-schema.sql`) and written as OpenClaw
//! writes (events of 150 B to 4 KB, those over 1 KiB zstd-compressed with
//! their `navigation_json`, a quarter of the assistant turns among them;
//! identities; the writer's connection left open, in WAL):
//!
//! 5. a direct baseline: every row read with one plain `SELECT`, every
//!    compressed event decoded, the same pre-filter, nothing parsed or stored;
//! 6. a cold ingest into a new cost store;
//! 7. an incremental pass with nothing new (open + ingest, median of 5);
//! 8. 1,000 new events across 10 sessions, ingested.
//!
//! The OpenClaw figures are also given against the JSONL baseline (1.), per
//! MB read. Prints a Markdown table, and the suite's rows as
//! `ROW\tGROUP\tfigure\tmeasured\tbaseline\ttarget\tmet` lines.
//!
//! `--cache DIR`: the generated transcripts are kept in `DIR` (under a name
//! that carries [`GENERATOR`] and the sizes) and copied from there on later
//! runs, which then skip generating; every run works on its own copy.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clawfleet::cost::store::CostStore;
use rusqlite::{Connection, params};

/// About 300 MB of JSONL.
const LINES: u64 = 280_000;
/// The generators' version: change it with anything that changes what they
/// write, so that a cache of the old output is not reused.
const GENERATOR: u32 = 1;
/// The suite table's group of these rows.
const GROUP: u32 = 50;
/// Cold scans, each into a new store: the median is reported.
const COLD_RUNS: usize = 3;
/// Rounds of 1,000 new lines or events, each scanned: the median is
/// reported.
const APPEND_RUNS: u64 = 5;

/// 280000 as "280,000".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
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

/// Writes the transcripts (the files of [`jsonl_files`]).
fn generate(root: &Path) {
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
    for n in 0..LINES {
        let l = line(&mut rng, n);
        let w = &mut writers[(n / 3 % SESSIONS) as usize];
        w.write_all(l.as_bytes()).expect("write");
        w.write_all(b"\n").expect("write");
    }
    for mut w in writers {
        w.flush().expect("flush");
    }
    debug_assert_eq!(files, jsonl_files(root));
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

/// One row of the suite's table (`cargo xtask bench`).
fn row(figure: &str, measured: &str, baseline: &str, target: &str, met: bool) {
    let met = if met { "yes" } else { "**no**" };
    println!("ROW\t{GROUP}\t{figure}\t{measured}\t{baseline}\t{target}\t{met}");
}

/// The JSONL files, in the order `generate` made them.
fn jsonl_files(root: &Path) -> Vec<PathBuf> {
    (0..SESSIONS)
        .map(|s| {
            root.join(format!("agent{}", s % AGENTS))
                .join("sessions")
                .join(format!("session-{s:04}.jsonl"))
        })
        .collect()
}

/// Copies the folder `from` to `to`, recursively (regular files only).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// What the OpenClaw generator made, kept beside a cached copy.
struct OcMade {
    events: u64,
    compressed: u64,
    turns: u64,
}

/// Makes both corpora in `work` (`agents/` JSONL, `openclaw-agents/`
/// SQLite): copied from the cache when it has them, else generated (and
/// then cached, when there is a cache).
fn corpora(work: &Path, cache: Option<&Path>) -> OcMade {
    let name = format!("transcripts-v{GENERATOR}-{LINES}-{OC_TURNS}");
    if let Some(cached) = cache.map(|c| c.join(&name))
        && let Ok(meta) = std::fs::read_to_string(cached.join("complete"))
    {
        let n: Vec<u64> = meta
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [events, compressed, turns] = n[..] {
            eprintln!("copying the transcripts from {}…", cached.display());
            copy_dir(&cached, work).expect("copy the cached transcripts");
            return OcMade {
                events,
                compressed,
                turns,
            };
        }
    }
    eprintln!("generating {LINES} lines…");
    generate(&work.join("agents"));
    let made = oc_generate(&work.join("openclaw-agents"));
    if let Some(cache) = cache {
        let cached = cache.join(&name);
        let _ = std::fs::remove_dir_all(&cached);
        let stored = copy_dir(&work.join("agents"), &cached.join("agents"))
            .and_then(|()| {
                copy_dir(
                    &work.join("openclaw-agents"),
                    &cached.join("openclaw-agents"),
                )
            })
            .and_then(|()| {
                std::fs::write(
                    cached.join("complete"),
                    format!("{} {} {}\n", made.events, made.compressed, made.turns),
                )
            });
        if let Err(e) = stored {
            eprintln!(
                "could not cache the transcripts in {}: {e}",
                cached.display()
            );
        }
    }
    made
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cache = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == "--cache" => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("usage: transcripts_bench [--cache DIR]");
            std::process::exit(2);
        }
    };
    let tmp = std::env::temp_dir().join(format!(
        "clawfleet-transcripts-bench-{}",
        std::process::id()
    ));
    let agents = tmp.join("agents");
    let store_path = tmp.join("data").join("costs.sqlite");
    let made = corpora(&tmp, cache.as_deref());
    let files = jsonl_files(&agents);
    let bytes: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();

    // Warm the page cache equally for both: one untimed read.
    let _ = baseline(&files);
    let t = Instant::now();
    let (lines, candidates) = baseline(&files);
    let base_s = t.elapsed().as_secs_f64();
    assert_eq!(lines, LINES);

    eprintln!("ingesting ({COLD_RUNS} times, each into a new store)…");
    let mut ingests = Vec::new();
    for _ in 0..COLD_RUNS {
        let _ = std::fs::remove_dir_all(tmp.join("data"));
        let t = Instant::now();
        let mut store = CostStore::open(&store_path).expect("store");
        let report = store.ingest_transcripts(&agents).expect("ingest");
        ingests.push(t.elapsed().as_secs_f64());
        assert_eq!(report.lines_read, LINES);
        assert_eq!(report.turns_added, candidates, "{:?}", report.problems);
    }
    let ingest_s = median(&ingests);

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

    eprintln!("appending 1,000 lines to 10 files, {APPEND_RUNS} times…");
    let mut rng = Lcg(7);
    let mut appends = Vec::new();
    for round in 0..APPEND_RUNS {
        for (i, path) in files.iter().take(10).enumerate() {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .expect("open");
            for k in 0..100u64 {
                let n = LINES + round * 1_000 + i as u64 * 100 + k;
                writeln!(f, "{}", line(&mut rng, n)).expect("write");
            }
        }
        let t = Instant::now();
        let mut store = CostStore::open(&store_path).expect("store");
        let r = store.ingest_transcripts(&agents).expect("ingest");
        appends.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.lines_read, 1_000);
    }
    let append_ms = median(&appends);

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
    assert!(
        report.cloud.requests >= candidates,
        "{}",
        report.cloud.requests
    );
    let db_bytes = std::fs::metadata(&store_path).map(|m| m.len()).unwrap_or(0);
    let oc = openclaw_figures(&tmp, made);
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
        "| full ingest into a new store, median of 3 | {:.3} s, **{:.0} lines/s**, {:.0} MB/s ({:.2}× the baseline's time) | ≥ 200,000 lines/s |",
        ingest_s,
        LINES as f64 / ingest_s,
        mb / ingest_s,
        ingest_s / base_s
    );
    println!(
        "| restart with nothing new (open + ingest), median of 5 | **{:.1} ms** (min {:.1}, max {:.1}) | < 50 ms |",
        restarts[2], restarts[0], restarts[4]
    );
    println!("| 1,000 new lines in 10 files, open + ingest, median of 5 | {append_ms:.1} ms | |");
    println!(
        "| the month's report over {} turns (${:.2}), no ledger | {report_ms:.0} ms | |",
        report.cloud.requests, report.month_to_date_usd
    );
    println!("| cost store size | {:.1} MB | |", db_bytes as f64 / 1e6);
    let base_s_per_mb = base_s / mb;
    println!(
        "| OpenClaw store | {} agent databases, {:.0} MB, {} events ({} compressed), {} turns with usage | |",
        OC_AGENTS, oc.db_mb, oc.events, oc.compressed, oc.turns
    );
    println!(
        "| OpenClaw direct read (baseline: one SELECT, decode all, pre-filter) | {:.3} s, {:.0} MB/s ({:.2}× the JSONL baseline's time per MB) | |",
        oc.base_s,
        oc.db_mb / oc.base_s,
        oc.base_s / oc.db_mb / base_s_per_mb
    );
    println!(
        "| OpenClaw cold ingest into a new store, median of 3 | {:.3} s, **{:.0} events/s**, {:.0} MB/s ({:.2}× its direct read; {:.2}× the JSONL baseline's time per MB) | |",
        oc.ingest_s,
        oc.events as f64 / oc.ingest_s,
        oc.db_mb / oc.ingest_s,
        oc.ingest_s / oc.base_s,
        oc.ingest_s / oc.db_mb / base_s_per_mb
    );
    println!(
        "| OpenClaw pass with nothing new (open + ingest), median of 5 | **{:.1} ms** (min {:.1}, max {:.1}; {:.4}× its direct read, {:.2}× the JSONL restart) | < 50 ms |",
        oc.idle_ms[2],
        oc.idle_ms[0],
        oc.idle_ms[4],
        oc.idle_ms[2] / 1000.0 / oc.base_s,
        oc.idle_ms[2] / restarts[2]
    );
    println!(
        "| OpenClaw: 1,000 new events in 10 sessions, open + ingest, median of 5 | {:.1} ms | |",
        oc.append_ms
    );

    let oc_what = format!(
        "OpenClaw agent store ({OC_AGENTS} SQLite databases, {:.0} MB, {} events)",
        oc.db_mb,
        thousands(oc.events)
    );
    row(
        &format!("cost scan, {oc_what}: first scan into a new cost store, median of {COLD_RUNS}"),
        &format!("**{:.2} s**", oc.ingest_s),
        &format!(
            "{:.2} s to read it all plainly (one SELECT, decode, pre-filter)",
            oc.base_s
        ),
        "≤ 1 s",
        oc.ingest_s <= 1.0,
    );
    row(
        &format!("cost scan, {oc_what}: incremental, nothing new (open + scan), median of 5"),
        &format!("**{:.1} ms**", oc.idle_ms[2]),
        "count: 0 new events",
        "≤ 20 ms",
        oc.idle_ms[2] <= 20.0,
    );
    row(
        &format!(
            "cost scan, {oc_what}: incremental, 1,000 new events in 10 sessions (open + scan), median of {APPEND_RUNS}"
        ),
        &format!("**{:.1} ms**", oc.append_ms),
        "count: 1,002 new events (334 turns)",
        "≤ 20 ms",
        oc.append_ms <= 20.0,
    );
    let jsonl_what = format!(
        "legacy Clawdbot JSONL ({SESSIONS} files, {mb:.0} MB, {} lines)",
        thousands(LINES)
    );
    row(
        &format!(
            "cost scan, {jsonl_what}: first scan into a new cost store, median of {COLD_RUNS}"
        ),
        &format!("**{ingest_s:.2} s**"),
        &format!("{base_s:.2} s to read it all plainly (read, split, pre-filter)"),
        "≤ 1 s",
        ingest_s <= 1.0,
    );
    row(
        &format!("cost scan, {jsonl_what}: incremental, nothing new (open + scan), median of 5"),
        &format!("**{:.1} ms**", restarts[2]),
        "count: 0 new lines",
        "≤ 20 ms",
        restarts[2] <= 20.0,
    );
    row(
        &format!(
            "cost scan, {jsonl_what}: incremental, 1,000 new lines in 10 files (open + scan), median of {APPEND_RUNS}"
        ),
        &format!("**{append_ms:.1} ms**"),
        "count: 1,000 new lines",
        "≤ 20 ms",
        append_ms <= 20.0,
    );
}

// ---------------------------------------------------------------------------
// OpenClaw 2026.9's per-agent SQLite store.

const OC_AGENTS: u64 = 2;
const OC_SESSIONS: u64 = 200;
/// Turns (user + assistant + tool result each), about 300 MB of database.
const OC_TURNS: u64 = 90_000;
const OC_SCHEMA: &str = include_str!("../tests/fixtures/openclaw/agent-schema.sql");
const T0_MS: i64 = 1_761_955_200_000; // 2025-11-01

struct OcFigures {
    db_mb: f64,
    events: u64,
    compressed: u64,
    turns: u64,
    base_s: f64,
    ingest_s: f64,
    idle_ms: Vec<f64>,
    append_ms: f64,
}

/// One agent's database, written as OpenClaw writes it.
struct OcWriter {
    conn: Connection,
    seqs: Vec<i64>,
    compressor: zstd::bulk::Compressor<'static>,
    events: u64,
    compressed: u64,
    turns: u64,
}

impl OcWriter {
    fn create(agents: &Path, agent: u64) -> OcWriter {
        let dir = agents.join(format!("agent{agent}")).join("agent");
        std::fs::create_dir_all(&dir).expect("dir");
        let conn = Connection::open(dir.join("openclaw-agent.sqlite")).expect("open");
        conn.execute_batch(
            "PRAGMA auto_vacuum = 2; PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; \
             PRAGMA foreign_keys = ON;",
        )
        .expect("pragmas");
        conn.execute_batch(OC_SCHEMA).expect("OpenClaw's DDL");
        conn.execute_batch("PRAGMA user_version = 23")
            .expect("version");
        conn.execute(
            "INSERT INTO schema_meta VALUES ('primary', 'agent', 23, ?1, '2026.9.6', ?2, ?2)",
            params![format!("agent{agent}"), T0_MS],
        )
        .expect("meta");
        let mut compressor = zstd::bulk::Compressor::new(1).expect("zstd");
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .expect("checksum");
        let w = OcWriter {
            conn,
            seqs: vec![0; (OC_SESSIONS / OC_AGENTS) as usize],
            compressor,
            events: 0,
            compressed: 0,
            turns: 0,
        };
        w.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for s in 0..w.seqs.len() {
            let (sid, key) = (
                format!("sess-{agent}-{s:04}"),
                format!("agent:agent{agent}:s{s}"),
            );
            w.conn
                .execute(
                    "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) \
                     VALUES (?1, ?2, '{}', ?3)",
                    params![key, sid, T0_MS],
                )
                .expect("node");
            w.conn
                .execute(
                    "INSERT INTO session_windows (session_id, session_key, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?3)",
                    params![sid, key, T0_MS],
                )
                .expect("window");
        }
        w.conn.execute_batch("COMMIT").expect("commit");
        w
    }

    /// A writer on an agent database made before (by [`OcWriter::create`]
    /// and `turn`), its sessions' next `seq` read back.
    fn reopen(agents: &Path, agent: u64) -> OcWriter {
        let path = agents
            .join(format!("agent{agent}"))
            .join("agent")
            .join("openclaw-agent.sqlite");
        let conn = Connection::open(path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")
            .expect("pragmas");
        let mut seqs = vec![0; (OC_SESSIONS / OC_AGENTS) as usize];
        for (s, next) in seqs.iter_mut().enumerate() {
            *next = conn
                .query_row(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM transcript_events WHERE session_id = ?1",
                    params![format!("sess-{agent}-{s:04}")],
                    |r| r.get::<_, i64>(0),
                )
                .expect("seq");
        }
        let events: i64 = conn
            .query_row("SELECT COUNT(*) FROM transcript_events", [], |r| r.get(0))
            .expect("count");
        let mut compressor = zstd::bulk::Compressor::new(1).expect("zstd");
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .expect("checksum");
        OcWriter {
            conn,
            seqs,
            compressor,
            events: u64::try_from(events).unwrap_or(0),
            compressed: 0,
            turns: 0,
        }
    }

    /// Appends one event: text, or zstd with its navigation over 1 KiB.
    fn event(&mut self, agent: u64, session: usize, id: &str, kind: &str, role: &str, json: &str) {
        let sid = format!("sess-{agent}-{session:04}");
        let seq = self.seqs[session];
        self.seqs[session] += 1;
        let created = T0_MS + self.events as i64 * 500;
        if json.len() >= 1024 {
            let blob = self.compressor.compress(json.as_bytes()).expect("compress");
            let nav = format!(
                r#"{{"version":1,"report":{{"kind":"canonical","hasParentId":true,"entry":{{"id":"{id}","type":"{kind}"}}}},"navigation":{{"type":"{kind}","id":"{id}","message":{{"role":"{role}"}}}},"reset":{{"type":"{kind}","id":"{id}"}},"model":{{"type":"{kind}","id":"{id}","message":{{"role":"{role}"}}}},"modelBytes":{n},"modelWithoutCheckpointBytes":{n},"withoutCustomDataBytes":{n}}}"#,
                n = json.len()
            );
            self.conn
                .prepare_cached(
                    "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, \
                     event_utf8_bytes, navigation_json) VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut st| st.execute(params![sid, seq, created, blob, json.len() as i64, nav]))
                .expect("event");
            self.compressed += 1;
        } else {
            self.conn
                .prepare_cached(
                    "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_utf8_bytes) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut st| st.execute(params![sid, seq, json, created, json.len() as i64]))
                .expect("event");
        }
        self.conn
            .prepare_cached(
                "INSERT INTO transcript_event_identities (session_id, event_id, seq, event_type, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![sid, id, seq, kind, created]))
            .expect("identity");
        self.events += 1;
    }

    /// One turn: the user's message, the assistant's answer (a quarter of
    /// them with a large tool call), a tool result.
    fn turn(&mut self, rng: &mut Lcg, agent: u64, n: u64) {
        let session = (n % self.seqs.len() as u64) as usize;
        let at_ms = T0_MS + n as i64 * 2_000;
        let ts = jiff::Timestamp::from_millisecond(at_ms).expect("time");
        let user = format!(
            r#"{{"type":"message","id":"u{agent}-{n}","parentId":null,"timestamp":"{ts}","message":{{"role":"user","content":"{}","timestamp":{at_ms}}}}}"#,
            {
                let len = 60 + (rng.next() % 300) as usize;
                filler(rng, len)
            }
        );
        self.event(
            agent,
            session,
            &format!("u{agent}-{n}"),
            "message",
            "user",
            &user,
        );
        let text = if n.is_multiple_of(4) {
            let len = 1_200 + (rng.next() % 1_500) as usize;
            filler(rng, len)
        } else {
            filler(rng, 150)
        };
        let assistant = format!(
            r#"{{"type":"message","id":"a{agent}-{n}","parentId":"u{agent}-{n}","timestamp":"{ts}","message":{{"role":"assistant","content":[{{"type":"text","text":"{text}"}}],"stopReason":"stop","api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-5","usage":{{"input":{i},"output":{o},"cacheRead":{cr},"cacheWrite":{cw},"cacheTelemetry":{{"state":"unavailable"}},"totalTokens":62000,"cost":{{"input":0.001,"output":0.002,"cacheRead":0.0001,"cacheWrite":0.0002,"total":0.0033}}}},"timestamp":{at_ms},"__openclaw":{{"runId":"94b2729d-b567-4ba6-96b5-9a79d60f8fa0"}}}}}}"#,
            i = rng.next() % 5_000,
            o = rng.next() % 2_000,
            cr = rng.next() % 50_000,
            cw = rng.next() % 5_000,
        );
        self.event(
            agent,
            session,
            &format!("a{agent}-{n}"),
            "message",
            "assistant",
            &assistant,
        );
        self.turns += 1;
        let tool = format!(
            r#"{{"type":"message","id":"t{agent}-{n}","parentId":"a{agent}-{n}","timestamp":"{ts}","message":{{"role":"toolResult","toolCallId":"c{n}","toolName":"bash","content":[{{"type":"text","text":"{}"}}],"isError":false,"timestamp":{at_ms}}}}}"#,
            {
                let len = 150 + (rng.next() % 3_900) as usize;
                filler(rng, len)
            }
        );
        self.event(
            agent,
            session,
            &format!("t{agent}-{n}"),
            "message",
            "toolResult",
            &tool,
        );
    }
}

/// The baseline: every row of every database in one plain `SELECT`, every
/// compressed event decoded, the pre-filter; nothing parsed or stored.
fn oc_baseline(dbs: &[PathBuf]) -> (u64, u64) {
    let usage = memchr::memmem::Finder::new(b"\"usage\"");
    let assistant = memchr::memmem::Finder::new(b"\"assistant\"");
    let mut decoder = zstd::bulk::Decompressor::new().expect("zstd");
    let mut out = vec![0u8; 4 * 1024 * 1024];
    let (mut rows, mut candidates) = (0u64, 0u64);
    for db in dbs {
        let conn = Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open");
        let mut stmt = conn
            .prepare("SELECT event_json, event_zstd, event_utf8_bytes FROM transcript_events")
            .expect("prepare");
        let mut r = stmt.query([]).expect("query");
        while let Some(row) = r.next().expect("row") {
            rows += 1;
            let text: &[u8] = match (row.get_ref(0).expect("col"), row.get_ref(1).expect("col")) {
                (rusqlite::types::ValueRef::Text(t), _) => t,
                (_, rusqlite::types::ValueRef::Blob(b)) => {
                    let n: i64 = row.get(2).expect("size");
                    let n = decoder
                        .decompress_to_buffer(b, &mut out[..n as usize])
                        .expect("decode");
                    &out[..n]
                }
                _ => continue,
            };
            if usage.find(text).is_some() && assistant.find(text).is_some() {
                candidates += 1;
            }
        }
    }
    (rows, candidates)
}

/// Writes the OpenClaw agent databases into `agents`.
fn oc_generate(agents: &Path) -> OcMade {
    eprintln!("OpenClaw: generating {OC_TURNS} turns in {OC_AGENTS} agent databases…");
    let mut rng = Lcg(4242);
    let mut writers: Vec<OcWriter> = (0..OC_AGENTS)
        .map(|a| OcWriter::create(agents, a))
        .collect();
    for w in &writers {
        w.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    }
    for n in 0..OC_TURNS {
        let agent = n % OC_AGENTS;
        writers[agent as usize].turn(&mut rng, agent, n / OC_AGENTS);
    }
    for w in &writers {
        w.conn.execute_batch("COMMIT").expect("commit");
        let _ = w.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    OcMade {
        events: writers.iter().map(|w| w.events).sum(),
        compressed: writers.iter().map(|w| w.compressed).sum(),
        turns: writers.iter().map(|w| w.turns).sum(),
    }
}

fn openclaw_figures(tmp: &Path, made: OcMade) -> OcFigures {
    let agents = tmp.join("openclaw-agents");
    // OpenClaw's writers, open (in WAL) while ClawFleet reads, as after its
    // own periodic checkpoint.
    let mut writers: Vec<OcWriter> = (0..OC_AGENTS)
        .map(|a| OcWriter::reopen(&agents, a))
        .collect();
    let dbs: Vec<PathBuf> = (0..OC_AGENTS)
        .map(|a| agents.join(format!("agent{a}/agent/openclaw-agent.sqlite")))
        .collect();
    let db_bytes: u64 = dbs
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let OcMade {
        events,
        compressed,
        turns,
    } = made;
    let mut rng = Lcg(4243);

    let _ = oc_baseline(&dbs);
    let t = Instant::now();
    let (rows, candidates) = oc_baseline(&dbs);
    let base_s = t.elapsed().as_secs_f64();
    assert_eq!(rows, events);
    assert_eq!(candidates, turns);

    eprintln!("OpenClaw: cold ingest ({COLD_RUNS} times, each into a new store)…");
    let store_path = tmp.join("oc-data").join("costs.sqlite");
    let mut ingests = Vec::new();
    for _ in 0..COLD_RUNS {
        let _ = std::fs::remove_dir_all(tmp.join("oc-data"));
        let t = Instant::now();
        let mut store = CostStore::open(&store_path).expect("store");
        let r = store.ingest_transcripts(&agents).expect("ingest");
        ingests.push(t.elapsed().as_secs_f64());
        assert_eq!(r.turns_added, turns, "{:?}", r.problems);
        assert_eq!(r.events_read, events);
    }
    let ingest_s = median(&ingests);

    eprintln!("OpenClaw: passes with nothing new…");
    let mut idle_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut store = CostStore::open(&store_path).expect("store");
        let r = store.ingest_transcripts(&agents).expect("ingest");
        idle_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!((r.events_read, r.turns_added), (0, 0));
    }
    idle_ms.sort_by(f64::total_cmp);

    eprintln!("OpenClaw: 1,000 new events in 10 sessions, {APPEND_RUNS} times…");
    let mut appends = Vec::new();
    for round in 0..APPEND_RUNS {
        let w = &mut writers[0];
        let before = w.turns;
        for k in 0..334u64 {
            // Sessions 0-9 of agent 0: turn numbers ≡ session (mod sessions).
            let sessions = w.seqs.len() as u64;
            let n = OC_TURNS + round * 40 * sessions + (k % 10) + (k / 10) * sessions;
            w.turn(&mut rng, 0, n);
        }
        let new_turns = w.turns - before;
        let t = Instant::now();
        let mut store = CostStore::open(&store_path).expect("store");
        let r = store.ingest_transcripts(&agents).expect("ingest");
        appends.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.turns_added, new_turns);
        assert_eq!(r.sessions_read, 10);
    }
    let append_ms = median(&appends);
    drop(writers);
    OcFigures {
        db_mb: db_bytes as f64 / 1e6,
        events,
        compressed,
        turns,
        base_s,
        ingest_s,
        idle_ms,
        append_ms,
    }
}
