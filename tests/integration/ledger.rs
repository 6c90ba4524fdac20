//! The usage ledger against real SQLite files: round trip, order, load,
//! group commit, a database locked by another connection, statistics,
//! retention, refusing files that are not ours, backpressure, closing, an
//! older version's journal folder, and durability of every acknowledged
//! record across a `SIGKILL`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clawfleet::ledger::{
    CLOSE_WAIT, COMMIT_WAIT, Ledger, LedgerError, MachineStats, ModelStats, Percentiles,
    ProxyStats, QUEUE_CAPACITY, Record, Retention, SCHEMA_VERSION, TokenSums,
};
use clawfleet::proxy::usage::Usage;
use clawfleet::sqlite::OpenError;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;

fn t0() -> Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn plus(t: Timestamp, seconds: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(seconds)).unwrap()
}

fn plus_us(t: Timestamp, micros: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_micros(micros)).unwrap()
}

/// A plain successful request; tests override what they look at.
fn rec(started_at: Timestamp, client: &str) -> Record {
    Record {
        started_at,
        client: client.into(),
        api: "openai".into(),
        endpoint: "/v1/chat/completions".into(),
        requested_model: Some("gpt-oss:20b".into()),
        machine: Some("macmini".into()),
        fallback_depth: 0,
        stream: false,
        usage: None,
        ttfb_ms: None,
        duration_ms: 1.0,
        status: 200,
        outcome: "ok".into(),
        error: None,
    }
}

fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Option<Usage> {
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
    })
}

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    // A folder that does not exist yet: open must create it.
    dir.path().join("data").join("ledger.sqlite")
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// Another connection holding SQLite's write lock on `path`: the ledger's
/// commits fail (after their busy timeout, 1 s) and are tried again until it
/// is let go (`ROLLBACK`) or dropped.
fn write_locked(path: &Path) -> Connection {
    let lock = raw(path);
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    lock
}

/// The rows in the file, and how many distinct clients they name.
fn rows_and_clients(path: &Path) -> (i64, i64) {
    raw(path)
        .query_row(
            "SELECT count(*), count(DISTINCT client) FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn clients(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.client.clone()).collect()
}

#[tokio::test]
async fn every_field_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();

    let full = Record {
        started_at: Timestamp::from_microsecond(1_793_491_200_123_456).unwrap(),
        client: "100.64.0.7 OpenAI/JS 6.1.0".into(),
        api: "anthropic".into(),
        endpoint: "/v1/messages?beta=true".into(),
        requested_model: Some("claude-sonnet-4-5".into()),
        machine: Some("anthropic".into()),
        fallback_depth: 3,
        stream: true,
        usage: usage(1234, 567, 89_000, 4_000_000_000_000),
        ttfb_ms: Some(321.125),
        duration_ms: 4567.875,
        status: 502,
        outcome: "upstream_failed_midstream".into(),
        error: Some("connection reset by peer after 3 chunks".into()),
    };
    let bare = Record {
        started_at: Timestamp::from_microsecond(-1).unwrap(),
        client: "127.0.0.1".into(),
        api: "ollama".into(),
        endpoint: "/api/chat".into(),
        requested_model: None,
        machine: None,
        fallback_depth: 0,
        stream: false,
        usage: None,
        ttfb_ms: None,
        duration_ms: 0.0,
        status: 503,
        outcome: "error".into(),
        error: None,
    };
    // Usage reported as all zeros is not the same as no usage.
    let zeros = Record {
        usage: usage(0, 0, 0, 0),
        ..rec(t0(), "zeros")
    };
    for r in [&full, &bare, &zeros] {
        h.record(r.clone()).await.unwrap();
    }
    let got = h.recent(10).await.unwrap();
    assert_eq!(got, vec![zeros.clone(), bare.clone(), full.clone()]);
    drop(h);
    ledger.close().unwrap();

    // The columns hold what the schema promises: integer microseconds, NULL
    // usage and ttfb when unknown.
    let conn = raw(&path);
    let mut stmt = conn
        .prepare(
            "SELECT started_at_us, typeof(started_at_us), input_tokens, cache_write_tokens, \
             ttfb_ms, stream FROM requests ORDER BY id",
        )
        .unwrap();
    /// started_at_us, its SQL type, input_tokens, cache_write_tokens, ttfb_ms, stream
    type Columns = (i64, String, Option<i64>, Option<i64>, Option<f64>, i64);
    let rows: Vec<Columns> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                1_793_491_200_123_456,
                "integer".into(),
                Some(1234),
                Some(4_000_000_000_000),
                Some(321.125),
                1
            ),
            (-1, "integer".into(), None, None, None, 0),
            (
                t0().as_microsecond(),
                "integer".into(),
                Some(0),
                Some(0),
                None,
                0
            ),
        ]
    );
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn order_is_kept_across_record_and_record_nowait() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&db_in(&dir)).unwrap();
    let h = ledger.handle();
    let mut sent = Vec::new();
    for i in 0..300 {
        let r = rec(plus(t0(), 1000 - i), &format!("c{i}"));
        sent.push(r.client.clone());
        if i % 3 == 0 {
            h.record(r).await.unwrap();
        } else {
            h.record_nowait(r);
        }
    }
    // Acked after everything queued before it.
    h.record(rec(t0(), "last")).await.unwrap();
    sent.push("last".into());

    let mut got = h.recent(1000).await.unwrap();
    got.reverse();
    // Stored in the order sent, although started_at runs backwards.
    assert_eq!(clients(&got), sent);
    assert_eq!(h.dropped(), 0);
    assert_eq!(
        clients(&h.recent(2).await.unwrap()),
        vec!["last".to_string(), "c299".into()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_records_land_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();

    let started = Instant::now();
    let tasks: Vec<_> = (0..10_000)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.record(rec(plus(t0(), i), &format!("c{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // A figure for the report, not an assertion.
    eprintln!(
        "10,000 concurrent record() calls, all committed: {:?}",
        started.elapsed()
    );
    h.flush().await.unwrap();

    let (rows, distinct) = rows_and_clients(&path);
    assert_eq!((rows, distinct), (10_000, 10_000));
    let got: HashSet<String> = clients(&h.recent(20_000).await.unwrap())
        .into_iter()
        .collect();
    let want: HashSet<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    assert_eq!(got, want);
    assert_eq!(h.dropped(), 0);
}

/// While another connection holds the write lock, records queue up behind
/// the failing commits; once it lets go they land whole, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_queued_while_the_database_is_locked_lands_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    let lock = write_locked(&path);
    h.record_nowait(rec(t0(), "first"));
    for i in 0..6_000 {
        h.record_nowait(rec(plus(t0(), i + 1), &format!("b{i}")));
    }
    lock.execute_batch("ROLLBACK").unwrap();
    h.flush().await.unwrap();
    let (rows, distinct) = rows_and_clients(&path);
    assert_eq!((rows, distinct), (6_001, 6_001));
    let order: Vec<String> = raw(&path)
        .prepare("SELECT client FROM requests ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want: Vec<String> = std::iter::once("first".to_owned())
        .chain((0..6_000).map(|i| format!("b{i}")))
        .collect();
    assert!(order == want, "stored in the order recorded");
    assert_eq!(h.dropped(), 0);
}

/// Group commit: records that arrive while a commit is under way are
/// committed together in the next one, and each `record()` returns only once
/// its own row is in the file. The write lock is held while all 200 queue,
/// so that they certainly arrive together: the writer's first commit takes
/// what was there when it started (at least one record), the second the
/// rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_share_a_few_commits_and_each_returns_after_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    let before = h.commits();
    let lock = write_locked(&path);
    let mut waiting: FuturesUnordered<_> = (0..200)
        .map(|i| {
            let h = h.clone();
            async move {
                let client = format!("g{i}");
                h.record(rec(plus(t0(), i), &client)).await.map(|()| client)
            }
        })
        .collect();
    // One poll of the set polls every record once: each is queued then.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), waiting.next())
            .await
            .is_err(),
        "nothing is committed while the lock is held"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    let check = raw(&path);
    let mut done = 0;
    while let Some(client) = waiting.next().await {
        let client = client.unwrap();
        let rows: i64 = check
            .query_row(
                "SELECT count(*) FROM requests WHERE client = ?1",
                [&client],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 1, "{client} is committed when its record() returns");
        done += 1;
    }
    assert_eq!(done, 200);
    let commits = h.commits() - before;
    assert!(
        (1..=2).contains(&commits),
        "200 records in {commits} transactions"
    );
    assert_eq!(rows_and_clients(&path), (200, 200));
}

/// The known set of `stats_between_matches_hand_computed_figures`.
fn known_set() -> Vec<Record> {
    #[allow(clippy::too_many_arguments)]
    fn r(
        secs: i64,
        machine: Option<&str>,
        model: Option<&str>,
        fallback_depth: u32,
        outcome: &str,
        duration_ms: f64,
        ttfb_ms: Option<f64>,
        usage: Option<Usage>,
    ) -> Record {
        Record {
            machine: machine.map(Into::into),
            requested_model: model.map(Into::into),
            fallback_depth,
            outcome: outcome.into(),
            duration_ms,
            ttfb_ms,
            usage,
            ..rec(plus(t0(), secs), &format!("at {secs}"))
        }
    }
    let (gpt, qwen, claude) = (
        Some("gpt-oss:20b"),
        Some("qwen3:8b"),
        Some("claude-sonnet-4"),
    );
    let (mini, mbp) = (Some("macmini"), Some("mbp"));
    let mut last = r(0, mini, gpt, 0, "ok", 700.0, Some(70.0), usage(0, 1, 0, 0));
    last.started_at = plus_us(plus(t0(), 599), 999_999); // the last microsecond in
    vec![
        // Outside: one microsecond before the window, and its (exclusive) end.
        Record {
            started_at: plus_us(t0(), -1),
            ..r(
                0,
                mini,
                gpt,
                5,
                "error",
                9999.0,
                Some(9999.0),
                usage(9, 9, 9, 9),
            )
        },
        r(
            600,
            mini,
            gpt,
            5,
            "error",
            9999.0,
            Some(9999.0),
            usage(9, 9, 9, 9),
        ),
        // Inside.
        r(
            0,
            mini,
            gpt,
            0,
            "ok",
            100.0,
            Some(10.0),
            usage(10, 20, 0, 0),
        ),
        r(60, mini, gpt, 1, "ok", 200.0, Some(20.0), usage(5, 5, 1, 0)),
        r(120, mbp, qwen, 0, "ok", 300.0, None, None),
        r(
            180,
            mbp,
            qwen,
            2,
            "error",
            400.0,
            Some(40.0),
            usage(1, 2, 3, 4),
        ),
        r(240, None, None, 0, "error", 50.0, None, None),
        r(
            300,
            mini,
            qwen,
            0,
            "client_disconnected",
            600.0,
            Some(60.0),
            usage(100, 0, 0, 0),
        ),
        r(
            360,
            Some("anthropic"),
            claude,
            0,
            "ok",
            800.0,
            Some(80.0),
            usage(1000, 500, 200, 100),
        ),
        last,
    ]
}

#[tokio::test]
async fn stats_between_matches_hand_computed_figures() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&db_in(&dir)).unwrap();
    let h = ledger.handle();
    for r in known_set() {
        h.record(r).await.unwrap();
    }
    let since = t0();
    let until = plus(t0(), 600);
    let stats = h.stats_between(since, until).await.unwrap();

    let sums = |requests_with_usage,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens| TokenSums {
        requests_with_usage,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
    };
    let want = ProxyStats {
        since,
        until,
        requests: 8,
        requests_per_minute: 0.8, // 8 requests over 10 minutes
        fallbacks: 2,             // depths 1 and 2
        errors: 3,                // error, error, client_disconnected
        // durations 50 100 200 300 400 600 700 800: nearest rank
        // ceil(.5×8)=4 → 300, ceil(.95×8)=8 → 800, ceil(.99×8)=8 → 800
        duration_ms: Some(Percentiles {
            samples: 8,
            p50: 300.0,
            p95: 800.0,
            p99: 800.0,
        }),
        // ttfb 10 20 40 60 70 80: ceil(3)=3 → 40, ceil(5.7)=6 → 80, ceil(5.94)=6 → 80
        ttfb_ms: Some(Percentiles {
            samples: 6,
            p50: 40.0,
            p95: 80.0,
            p99: 80.0,
        }),
        machines: vec![
            MachineStats {
                machine: Some("macmini".into()),
                requests: 4,
                share: 0.5,
                tokens: sums(4, 10 + 5 + 100, 20 + 5 + 1, 1, 0),
            },
            MachineStats {
                machine: Some("mbp".into()),
                requests: 2,
                share: 0.25,
                tokens: sums(1, 1, 2, 3, 4),
            },
            // Ties by name, no machine first.
            MachineStats {
                machine: None,
                requests: 1,
                share: 0.125,
                tokens: sums(0, 0, 0, 0, 0),
            },
            MachineStats {
                machine: Some("anthropic".into()),
                requests: 1,
                share: 0.125,
                tokens: sums(1, 1000, 500, 200, 100),
            },
        ],
        models: vec![
            ModelStats {
                model: Some("gpt-oss:20b".into()),
                requests: 3,
                tokens: sums(3, 15, 26, 1, 0),
            },
            ModelStats {
                model: Some("qwen3:8b".into()),
                requests: 3,
                tokens: sums(2, 101, 2, 3, 4),
            },
            ModelStats {
                model: None,
                requests: 1,
                tokens: sums(0, 0, 0, 0, 0),
            },
            ModelStats {
                model: Some("claude-sonnet-4".into()),
                requests: 1,
                tokens: sums(1, 1000, 500, 200, 100),
            },
        ],
    };
    assert_eq!(stats, want);

    // Served as JSON: times as RFC 3339, percentiles as numbers.
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["since"], "2026-11-01T00:00:00Z");
    assert_eq!(json["duration_ms"]["p50"], 300.0);
    assert_eq!(json["machines"][2]["machine"], serde_json::Value::Null);

    // Since t0 with no end: the record at t0 + 600 s counts too.
    let since_t0 = h.stats_since(t0()).await.unwrap();
    assert_eq!(since_t0.requests, 9);
    assert!(since_t0.until > plus(t0(), 600));

    // An empty window.
    let empty = h
        .stats_between(plus(t0(), -7200), plus(t0(), -3600))
        .await
        .unwrap();
    assert_eq!(
        (
            empty.requests,
            empty.requests_per_minute,
            empty.duration_ms,
            empty.ttfb_ms
        ),
        (0, 0.0, None, None)
    );
    assert!(empty.machines.is_empty() && empty.models.is_empty());
}

#[tokio::test]
async fn prune_removes_exactly_the_older_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&db_in(&dir)).unwrap();
    let h = ledger.handle();
    let day = 86_400;
    let cutoff = plus(t0(), -5 * day);
    for (t, name) in [
        (plus(t0(), -10 * day), "ten days"),
        (plus_us(cutoff, -1), "just before"),
        (cutoff, "at cutoff"),
        (t0(), "now"),
    ] {
        h.record(rec(t, name)).await.unwrap();
    }
    assert_eq!(h.prune(cutoff).await.unwrap(), 2);
    assert_eq!(
        clients(&h.recent(10).await.unwrap()),
        vec!["now".to_string(), "at cutoff".into()]
    );
    assert_eq!(h.prune(cutoff).await.unwrap(), 0);
}

#[tokio::test]
async fn retention_prunes_when_the_ledger_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let now = Timestamp::now();
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    h.record(rec(plus(now, -40 * 86_400), "forty days"))
        .await
        .unwrap();
    h.record(rec(plus(now, -86_400), "yesterday"))
        .await
        .unwrap();
    drop(h);
    ledger.close().unwrap();

    let ledger = Ledger::open_with(&path, Retention { max_age_days: 30 }).unwrap();
    let h = ledger.handle();
    // The writer prunes before it takes its first record: once this is
    // acked, the prune has run.
    h.record(rec(now, "today")).await.unwrap();
    assert_eq!(
        clients(&h.recent(10).await.unwrap()),
        vec!["today".to_string(), "yesterday".into()]
    );
}

#[tokio::test]
async fn reopening_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let first: Vec<Record> = (0..3)
        .map(|i| rec(plus(t0(), i), &format!("c{i}")))
        .collect();
    {
        let ledger = Ledger::open(&path).unwrap();
        for r in &first {
            ledger.handle().record(r.clone()).await.unwrap();
        }
        // Dropped, not closed: drop closes too.
    }
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    let mut got = h.recent(10).await.unwrap();
    got.reverse();
    assert_eq!(got, first);
    h.record(rec(t0(), "c3")).await.unwrap();
    assert_eq!(h.recent(10).await.unwrap().len(), 4);
}

/// The journal folder ClawFleet before 2026-12 kept beside the ledger.
fn old_journal(path: &Path) -> PathBuf {
    path.with_file_name("ledger.sqlite-pending")
}

/// An upgrade: the folder an older ClawFleet's journal left (killed at two
/// bad moments: a segment committed and not yet deleted, one never stored
/// with its last line cut short and the zeros of its mapped room, and a
/// spare that had been emptied only in part) is stored once when the
/// ledger opens, then deleted; nothing is stored twice.
#[tokio::test]
async fn an_older_versions_journal_folder_is_stored_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    {
        let ledger = Ledger::open(&path).unwrap();
        ledger.handle().record(rec(t0(), "stored")).await.unwrap();
        ledger.close().unwrap();
    }
    // The older version had stored segments up to 7.
    raw(&path)
        .execute("UPDATE journal SET committed_segment = 7", [])
        .unwrap();
    let journal = old_journal(&path);
    std::fs::create_dir(&journal).unwrap();
    let line = |n: u64, r: Record| format!("{n:020}\t{}\n", serde_json::to_string(&r).unwrap());
    std::fs::write(
        journal.join(format!("{:020}.ndjson", 7)),
        line(7, rec(t0(), "committed, not deleted")),
    )
    .unwrap();
    let cut = line(8, rec(t0(), "cut short"));
    let mut left = (line(8, rec(plus(t0(), 1), "left 1"))
        + &line(8, rec(plus(t0(), 2), "left 2"))
        + &cut[..cut.len() / 2])
        .into_bytes();
    left.extend([0; 4096]);
    std::fs::write(journal.join(format!("{:020}.ndjson", 8)), left).unwrap();
    // Bare JSON lines: the oldest versions' format.
    std::fs::write(
        journal.join(format!("{:020}.ndjson", 9)),
        serde_json::to_string(&rec(plus(t0(), 3), "left 3")).unwrap() + "\n",
    )
    .unwrap();
    std::fs::write(journal.join("spare"), line(6, rec(t0(), "spare"))).unwrap();
    std::fs::write(journal.join("lock"), b"").unwrap();

    let ledger = Ledger::open(&path).unwrap();
    assert!(!journal.exists(), "the old journal folder is deleted");
    let h = ledger.handle();
    let mut got = clients(&h.recent(10).await.unwrap());
    got.reverse();
    assert_eq!(got, ["stored", "left 1", "left 2", "left 3"]);
    let committed: i64 = raw(&path)
        .query_row("SELECT committed_segment FROM journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(committed, 9, "marked stored in the same transaction");
    h.record(rec(t0(), "after")).await.unwrap();
    drop(h);
    ledger.close().unwrap();

    // A crash between that commit and the deletion leaves the segments:
    // numbered at most `committed_segment`, they are deleted unstored.
    std::fs::create_dir(&journal).unwrap();
    std::fs::write(
        journal.join(format!("{:020}.ndjson", 9)),
        line(9, rec(t0(), "again")),
    )
    .unwrap();
    let ledger = Ledger::open(&path).unwrap();
    assert!(!journal.exists());
    assert_eq!(
        clients(&ledger.handle().recent(10).await.unwrap()),
        ["after", "left 3", "left 2", "left 1", "stored"]
    );
}

/// Another connection holds the write lock for longer than `record()` waits:
/// `record()` returns `Late` after its bound, the record stays queued, and
/// the writer commits it (and a `record_nowait` queued meanwhile) once the
/// lock goes away: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_holds_record_back_for_the_bound_then_the_writer_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    let lock = write_locked(&path);
    let started = Instant::now();
    let err = h.record(rec(t0(), "kept")).await.unwrap_err();
    assert!(matches!(err, LedgerError::Late { .. }), "{err:?}");
    assert!(started.elapsed() >= COMMIT_WAIT, "waited out its bound");
    assert!(err.to_string().contains("stays queued"), "{err}");
    h.record_nowait(rec(t0(), "queued meanwhile"));
    // A flush waits for one attempt, which fails, in words.
    let err = h.flush().await.unwrap_err().to_string();
    assert!(
        err.contains("cannot store 2 record(s)") && err.contains("ledger.sqlite"),
        "{err}"
    );
    let stored: i64 = lock
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0);
    lock.execute_batch("ROLLBACK").unwrap();
    // Nothing new is recorded: the writer's own retry stores them.
    let mut stored = 0;
    for _ in 0..100 {
        stored = raw(&path)
            .query_row("SELECT count(*) FROM requests", [], |r| r.get::<_, i64>(0))
            .unwrap();
        if stored == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 2);
    assert_eq!(
        clients(&h.recent(10).await.unwrap()),
        ["queued meanwhile", "kept"]
    );
    // And the next record is committed as usual.
    h.record(rec(t0(), "next")).await.unwrap();
    assert_eq!(rows_and_clients(&path), (3, 3));
}

#[test]
fn a_second_writer_waits_for_the_first_then_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let first = Ledger::open(&path).unwrap();
    // While the first stays open past the wait: refused, in words.
    let started = Instant::now();
    let err = Ledger::open(&path).unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(4), "{err}");
    let words = err.to_string();
    assert!(
        words.contains("another ClawFleet process") && words.contains("ledger.sqlite"),
        "{words}"
    );
    // When the first closes while the second waits, the second opens.
    let second = std::thread::spawn({
        let path = path.clone();
        move || Ledger::open(&path).map(Ledger::close)
    });
    std::thread::sleep(Duration::from_millis(300));
    first.close().unwrap();
    second.join().unwrap().unwrap().unwrap();
}

#[test]
fn connections_opening_a_new_ledger_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        let opens: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    Ledger::open(&path).map(Ledger::close)
                })
            })
            .collect();
        for open in opens {
            open.join().unwrap().unwrap().unwrap();
        }
    });
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn close_stores_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    for i in 0..3000 {
        h.record_nowait(rec(plus(t0(), i), &format!("c{i}")));
    }
    ledger.close().unwrap();

    // Reads still work on a closed ledger; records do not.
    assert_eq!(h.recent(5000).await.unwrap().len(), 3000);
    assert!(matches!(
        h.record(rec(t0(), "late")).await,
        Err(LedgerError::Closed { .. })
    ));
    h.record_nowait(rec(t0(), "late too"));
    assert_eq!(h.dropped(), 1);
    assert!(matches!(
        h.prune(t0()).await,
        Err(LedgerError::Closed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_while_clients_keep_sending() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&db_in(&dir)).unwrap();
    let h = ledger.handle();
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                // Until the ledger refuses: then every further record fails.
                let mut i = 0;
                while h.record(rec(plus(t0(), i), "busy")).await.is_ok() {
                    h.record_nowait(rec(plus(t0(), i), "busy"));
                    i += 1;
                }
            })
        })
        .collect();
    h.record(rec(t0(), "first")).await.unwrap();
    tokio::task::spawn_blocking(move || ledger.close())
        .await
        .unwrap()
        .unwrap();
    for s in senders {
        s.await.unwrap();
    }
    assert!(matches!(
        h.record(rec(t0(), "late")).await,
        Err(LedgerError::Closed { .. })
    ));
}

/// Closing drains the queue: while another connection holds the write lock
/// it keeps trying for `CLOSE_WAIT`, and commits everything once the lock
/// goes away within that; a lock held past it makes `close` give up and say
/// how many records were lost, instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_drains_the_queue_and_waits_a_bounded_time_for_a_locked_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    let lock = write_locked(&path);
    for i in 0..500 {
        h.record_nowait(rec(plus(t0(), i), &format!("q{i}")));
    }
    let closing = std::thread::spawn(move || ledger.close());
    // Let go of the lock once the ledger takes no more records: closing.
    while !matches!(h.flush().await, Err(LedgerError::Closed { .. })) {}
    lock.execute_batch("ROLLBACK").unwrap();
    closing.join().unwrap().unwrap();
    assert_eq!(rows_and_clients(&path), (500, 500));
    drop(lock);

    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    let lock = write_locked(&path);
    for i in 0..5 {
        h.record_nowait(rec(plus(t0(), i), &format!("lost {i}")));
    }
    let started = Instant::now();
    let err = tokio::task::spawn_blocking(move || ledger.close())
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() >= CLOSE_WAIT,
        "kept trying for CLOSE_WAIT"
    );
    assert!(
        err.contains("cannot store 5 record(s)") && err.contains("they are lost"),
        "{err}"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(rows_and_clients(&path), (500, 500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_record_wait_and_record_nowait_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();

    // Another connection holds the write lock: the writer waits for it
    // (busy_timeout, 5 s) and the queue fills.
    let lock = write_locked(&path);
    for i in 0..QUEUE_CAPACITY + 10 {
        h.record_nowait(rec(t0(), &format!("c{i}")));
    }
    assert_eq!(h.dropped(), 10);
    let waiting = tokio::spawn({
        let h = h.clone();
        async move { h.record(rec(t0(), "waited")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "record() should wait for room");

    lock.execute_batch("ROLLBACK").unwrap();
    waiting.await.unwrap().unwrap();
    h.flush().await.unwrap();
    let rows: i64 = lock
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, QUEUE_CAPACITY + 1);
    assert_eq!(h.recent(1).await.unwrap()[0].client, "waited");
}

#[tokio::test]
async fn credentials_in_free_text_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    h.record(Record {
        client: "127.0.0.1 curl/8.4 token=SECRETVALUE0001".into(),
        endpoint: "/v1/models?api_key=SECRETVALUE0002&beta=true".into(),
        error: Some(
            "401: invalid x-api-key: sk-ant-api03-SECRETVALUE0003abcdefghij; \
             sent Authorization: Bearer SECRETVALUE0004"
                .into(),
        ),
        ..rec(t0(), "")
    })
    .await
    .unwrap();
    // The write-ahead log holds the committed record: scrubbed there too.
    for file in every_file_under(path.parent().unwrap()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(11).any(|w| w == b"SECRETVALUE"),
            "{}",
            file.display()
        );
    }
    let got = h.recent(1).await.unwrap().remove(0);
    assert_eq!(got.client, "127.0.0.1 curl/8.4 token=[redacted]");
    assert_eq!(got.endpoint, "/v1/models?api_key=[redacted]&beta=true");
    assert_eq!(
        got.error.as_deref(),
        Some("401: invalid x-api-key: [redacted]; sent Authorization: Bearer [redacted]")
    );
    drop(h);
    ledger.close().unwrap();
    for file in every_file_under(path.parent().unwrap()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(11).any(|w| w == b"SECRETVALUE"),
            "{}",
            file.display()
        );
    }
}

/// Every file in `dir` and its subfolders.
fn every_file_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    for garbage in [
        b"This is my diary, not a database.\n".repeat(300),
        b"hi".to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        std::fs::write(&path, &garbage).unwrap();

        let err = Ledger::open(&path).unwrap_err();
        assert!(
            matches!(err, LedgerError::Open(OpenError::NotOurs { .. })),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("not a SQLite database"), "{text}");
        assert!(text.contains("move it aside"), "{text}");

        assert_eq!(std::fs::read(&path).unwrap(), garbage);
        assert_eq!(files_in(dir.path()), vec!["ledger.sqlite".to_string()]);
    }
}

#[test]
fn another_programs_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let conn = raw(&path);
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Ledger::open(&path).unwrap_err();
    assert!(
        matches!(err, LedgerError::Open(OpenError::NotOurs { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("another program"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test]
async fn a_ledger_from_a_newer_clawfleet_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let ledger = Ledger::open(&path).unwrap();
    ledger.handle().record(rec(t0(), "kept")).await.unwrap();
    ledger.close().unwrap();
    {
        let conn = raw(&path);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();

    let err = Ledger::open(&path).unwrap_err();
    match &err {
        LedgerError::Open(OpenError::TooNew { found, known, .. }) => {
            assert_eq!((*found, *known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("upgrade ClawFleet"), "{text}");
    assert!(text.contains("move the file aside"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let kept: String = raw(&path)
        .query_row("SELECT client FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "kept");
}

const CHILD_DB_ENV: &str = "CLAWFLEET_TEST_LEDGER_CHILD_DB";

/// How many acks the parent waits for before it kills the child.
const ACKS_BEFORE_KILL: usize = 300;

/// The child of `every_acked_record_survives_sigkill`: records one after
/// another, printing `ACK <i>` after each `record().await`, while another
/// task floods the queue with `record_nowait`, until it is killed.
#[test]
#[ignore = "child process of every_acked_record_survives_sigkill; started by it"]
fn sigkill_child() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ledger = Ledger::open(Path::new(&path)).unwrap();
        let h = ledger.handle();
        let flood = h.clone();
        tokio::spawn(async move {
            // Bursts keep the writer busy, so the kill often lands during a
            // commit, without filling the queue (which would slow the acks).
            for i in 0.. {
                for _ in 0..20 {
                    flood.record_nowait(rec(plus(t0(), i), "flood"));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        for i in 0..1_000_000 {
            h.record(rec(plus(t0(), i), &format!("ack {i}")))
                .await
                .unwrap();
            println!("ACK {i}");
        }
    });
}

#[test]
fn every_acked_record_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ledger::sigkill_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut acked: Vec<u64> = Vec::new();
    let mut other = Vec::new();
    while acked.len() < ACKS_BEFORE_KILL {
        match lines.next() {
            Some(line) => {
                let line = line.unwrap();
                match line.strip_prefix("ACK ") {
                    Some(n) => acked.push(n.parse().unwrap()),
                    None => other.push(line),
                }
            }
            None => break,
        }
    }
    // SIGKILL on Unix: no destructor, no flush, no checkpoint runs.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        acked.len(),
        ACKS_BEFORE_KILL,
        "the child stopped early ({status}); its other output: {other:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
    }
    // Acks printed between our last read and the kill count too.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
            acked.push(n);
        }
    }

    // The file is whole as the kill left it: SQLite recovers its
    // write-ahead log on opening.
    let check: String = raw(&path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let ledger = Ledger::open(&path).unwrap();
    ledger.close().unwrap();
    assert!(!old_journal(&path).exists(), "no journal folder");
    let conn = raw(&path);
    let mut stmt = conn
        .prepare("SELECT client FROM requests WHERE client LIKE 'ack %'")
        .unwrap();
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(stored.len() >= acked.len());
    for i in &acked {
        assert!(
            stored.contains(&format!("ack {i}")),
            "acked record {i} is missing"
        );
    }
    drop(stmt);
    drop(conn);
    eprintln!(
        "killed after {} acks; all of them among the {} ack rows stored",
        acked.len(),
        stored.len()
    );
}

/// The snapshot's figures kept in memory agree with the query over the same
/// window: counts, groups and tokens exactly, percentiles within 0.5%; and
/// a reopened ledger starts from what SQLite holds for the window.
#[tokio::test]
async fn live_figures_match_the_query_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let now = Timestamp::now();
    let ago = |secs: i64| {
        now.checked_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    let machines = [Some("macmini"), Some("mbp"), None];
    let models = ["gpt-oss:20b", "qwen3:8b"];
    let mut records: Vec<Record> = (0..300)
        .map(|i: i64| Record {
            machine: machines[(i % 3) as usize].map(Into::into),
            requested_model: Some(models[(i % 2) as usize].into()),
            fallback_depth: u32::from(i % 7 == 0),
            outcome: if i % 11 == 0 { "error" } else { "ok" }.into(),
            duration_ms: 1.0 + (i * 37 % 1000) as f64,
            ttfb_ms: (i % 5 != 0).then_some(0.5 + (i * 13 % 200) as f64),
            usage: (i % 4 != 0)
                .then(|| usage(10 + i as u64, i as u64, 0, 1))
                .flatten(),
            ..rec(ago(i * 2), &format!("c{i}"))
        })
        .collect();
    // Out of the window: in neither.
    records.push(rec(ago(20 * 60), "old"));

    let compare = |live: &clawfleet::ledger::ProxyStats, exact: &clawfleet::ledger::ProxyStats| {
        assert_eq!(live.requests, 300);
        assert_eq!(live.requests, exact.requests);
        assert_eq!(
            (live.fallbacks, live.errors),
            (exact.fallbacks, exact.errors)
        );
        assert_eq!(live.machines, exact.machines);
        assert_eq!(live.models, exact.models);
        for (l, e) in [
            (live.duration_ms, exact.duration_ms),
            (live.ttfb_ms, exact.ttfb_ms),
        ] {
            let (l, e) = (l.unwrap(), e.unwrap());
            assert_eq!(l.samples, e.samples);
            for (a, b) in [(l.p50, e.p50), (l.p95, e.p95), (l.p99, e.p99)] {
                assert!((a - b).abs() / b <= 0.005, "{a} against {b}");
            }
        }
    };
    {
        let ledger = Ledger::open(&path).unwrap();
        let h = ledger.handle();
        assert_eq!(h.live_stats().requests, 0);
        for r in &records {
            h.record(r.clone()).await.unwrap();
        }
        h.flush().await.unwrap();
        let live = h.live_stats();
        assert!(live.since <= ago(15 * 60) && live.since > ago(15 * 60 + 10));
        compare(&live, &h.stats_since(live.since).await.unwrap());
        ledger.close().unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    let h = ledger.handle();
    let live = h.live_stats();
    compare(&live, &h.stats_since(live.since).await.unwrap());
}
