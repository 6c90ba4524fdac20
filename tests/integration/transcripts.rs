//! Reading Clawdbot's transcripts into the cost store, with real files:
//! known totals, restarts, appends, half-written lines, truncation,
//! rotation, copies, corrupt and oversized lines, unreadable files.

use std::io::Write;
use std::path::{Path, PathBuf};

use clawfleet::cost::store::{CostStore, TurnFlags};
use clawfleet::cost::transcripts::MAX_LINE;
use jiff::Timestamp;
use rusqlite::params;
use serde_json::{Value, json};

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn agents(&self) -> PathBuf {
        self.tmp.path().join("agents")
    }

    fn store_path(&self) -> PathBuf {
        self.tmp.path().join("data/costs.sqlite")
    }

    fn store(&self) -> CostStore {
        CostStore::open(&self.store_path()).expect("store opens")
    }

    fn session(&self, agent: &str, session: &str) -> PathBuf {
        let dir = self.agents().join(agent).join("sessions");
        std::fs::create_dir_all(&dir).expect("sessions dir");
        dir.join(format!("{session}.jsonl"))
    }

    fn append(&self, path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }
}

/// An assistant turn: `n` distinguishes lines; usage is (n, 2n, 3n, 4n).
fn turn(n: u64) -> Value {
    let at = Timestamp::from_second(1_763_000_000 + n as i64).expect("time");
    json!({
        "type": "message",
        "id": format!("m{n}"),
        "timestamp": at.to_string(),
        "message": {
            "role": "assistant",
            "content": [{"type": "text", "text": format!("answer {n}")}],
            "provider": "anthropic",
            "model": "claude-sonnet-5",
            "api": "anthropic-messages",
            "usage": {"input": n, "output": 2 * n, "cacheRead": 3 * n, "cacheWrite": 4 * n,
                      "totalTokens": 10 * n, "cost": {"total": 0.01}},
            "stopReason": "stop",
            "timestamp": at.as_millisecond()
        }
    })
}

fn user(n: u64) -> Value {
    json!({"type": "message", "id": format!("u{n}"), "message": {"role": "user", "content": [{"type": "text", "text": "please use the usage tool"}]}})
}

fn lines(range: std::ops::RangeInclusive<u64>) -> String {
    let mut out = String::new();
    for n in range {
        out.push_str(&user(n).to_string());
        out.push('\n');
        out.push_str(&turn(n).to_string());
        out.push('\n');
    }
    out
}

/// (turns, sum of input tokens) in the store.
fn totals(store: &CostStore) -> (u64, u64) {
    let turns = store
        .turns_between(Timestamp::UNIX_EPOCH, Timestamp::MAX)
        .expect("turns");
    let input = turns.iter().map(|t| t.usage.input_tokens).sum();
    (turns.len() as u64, input)
}

fn sum(range: std::ops::RangeInclusive<u64>) -> u64 {
    range.sum()
}

#[test]
fn known_totals_restart_and_append() {
    let d = Dir::new();
    let a = d.session("main", "s1");
    let b = d.session("helper", "s2");
    d.append(&a, &lines(1..=50));
    d.append(&b, &lines(51..=80));
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.files_seen, 2);
    assert_eq!(r.files_read, 2);
    assert_eq!(r.lines_read, 160);
    assert_eq!(r.turns_added, 80);
    assert_eq!((r.duplicates, r.corrupt_lines, r.flagged_turns), (0, 0, 0));
    assert_eq!(totals(&store), (80, sum(1..=80)));
    let t = store
        .turns_between(Timestamp::UNIX_EPOCH, Timestamp::MAX)
        .expect("turns");
    let first = t
        .iter()
        .find(|t| t.usage.input_tokens == 1)
        .expect("turn 1");
    assert_eq!(first.agent, "main");
    assert_eq!(first.session, "s1");
    assert_eq!(first.usage.cache_write_tokens, 4);
    assert_eq!(first.reported_usd, Some(0.01));
    assert_eq!(first.at, Timestamp::from_second(1_763_000_001).expect("t"));

    // A restart with nothing new reads nothing.
    drop(store);
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(
        (r.files_read, r.lines_read, r.bytes_read, r.turns_added),
        (0, 0, 0, 0)
    );
    assert_eq!(totals(&store), (80, sum(1..=80)));

    // Appending reads only the new part.
    let more = lines(81..=85);
    d.append(&a, &more);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.files_read, 1);
    assert_eq!(r.lines_read, 10);
    assert_eq!(r.bytes_read, more.len() as u64);
    assert_eq!(r.turns_added, 5);
    assert_eq!(totals(&store), (85, sum(1..=85)));
}

#[test]
fn a_half_written_line_is_counted_once_when_it_is_complete() {
    let d = Dir::new();
    let a = d.session("main", "s1");
    d.append(&a, &lines(1..=3));
    let line = turn(4).to_string();
    let (head, tail) = line.split_at(line.len() / 2);
    d.append(&a, head);
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 3);
    assert_eq!(r.corrupt_lines, 0, "a line being written is not corrupt");
    d.append(&a, tail);
    d.append(&a, "\n");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 1);
    assert_eq!(r.corrupt_lines, 0);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 0);
    assert_eq!(totals(&store), (4, sum(1..=4)));
}

#[test]
fn a_rewritten_or_truncated_file_is_read_again_without_double_counting() {
    let d = Dir::new();
    let a = d.session("main", "s1");
    d.append(&a, &lines(1..=10));
    let mut store = d.store();
    store.ingest_transcripts(&d.agents()).expect("ingest");
    // Clawdbot compacts the session: the file is rewritten shorter, keeping
    // turns 6..10 and adding 11..12.
    std::fs::write(&a, lines(6..=12)).expect("rewrite");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 2, "{r:?}");
    assert_eq!(r.duplicates, 5);
    assert_eq!(totals(&store), (12, sum(1..=12)));

    // Rewritten to the same length with other content: the first bytes
    // differ, so it is read from the start.
    std::fs::write(&a, lines(101..=107)).expect("rewrite");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 7, "{r:?}");
    assert_eq!(totals(&store), (19, sum(1..=12) + sum(101..=107)));
}

#[test]
fn rotation_and_renames_lose_nothing_and_count_nothing_twice() {
    let d = Dir::new();
    let a = d.session("main", "s1");
    d.append(&a, &lines(1..=10));
    let mut store = d.store();
    store.ingest_transcripts(&d.agents()).expect("ingest");

    // Rotated away (no longer *.jsonl) after two more turns were written,
    // and a new file started at the old name.
    d.append(&a, &lines(11..=12));
    std::fs::rename(&a, a.with_extension("jsonl.1")).expect("rotate");
    d.append(&a, &lines(13..=15));
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(
        r.turns_added, 3,
        "the new file; turns 11-12 went with the rotated file"
    );
    assert_eq!(totals(&store), (13, sum(1..=10) + sum(13..=15)));

    // Renamed to another *.jsonl name: it keeps its position.
    let renamed = d.session("main", "s1-archived");
    std::fs::rename(&a, &renamed).expect("rename");
    d.append(&renamed, &lines(16..=16));
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 1);
    assert_eq!(r.duplicates, 0, "not read again from the start: {r:?}");
    assert_eq!(r.lines_read, 2);

    // A copy of a session into another agent's folder adds nothing.
    let copy = d.session("other", "copied");
    std::fs::copy(&renamed, &copy).expect("copy");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 0);
    assert_eq!(r.duplicates, 4);
    assert_eq!(totals(&store), (14, sum(1..=10) + sum(13..=16)));

    // A file that disappears keeps its turns.
    std::fs::remove_file(&renamed).expect("remove");
    std::fs::remove_file(&copy).expect("remove");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.files_seen, 0);
    assert_eq!(totals(&store), (14, sum(1..=10) + sum(13..=16)));
}

#[test]
fn corrupt_lines_are_counted_named_and_skipped() {
    let d = Dir::new();
    let a = d.session("main", "s1");
    d.append(&a, &lines(1..=2));
    d.append(&a, "this is not json\n");
    d.append(&a, "[\"assistant\", \"usage\"]\n");
    let cut = turn(3).to_string();
    d.append(&a, &cut[..cut.len() - 10]);
    d.append(&a, "\n");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&a)
        .expect("open");
    f.write_all(b"\xff\xfe not utf-8 \"assistant\" \"usage\"\n")
        .expect("bytes");
    drop(f);
    d.append(&a, &lines(4..=4));
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 3);
    assert_eq!(r.corrupt_lines, 4, "{:?}", r.problems);
    assert_eq!(r.problems.len(), 4);
    assert!(r.problems[0].contains("s1.jsonl:5:"), "{:?}", r.problems);
    assert!(
        r.problems[0].contains("not a JSON object"),
        "{:?}",
        r.problems
    );
    assert!(r.problems[2].contains(":7: not JSON"), "{:?}", r.problems);
    assert_eq!(totals(&store), (3, 1 + 2 + 4));
}

#[test]
fn doubtful_usage_is_stored_with_flags() {
    let d = Dir::new();
    let a = d.session("main", "s1");
    let mut missing = turn(1);
    missing["message"]["usage"] = json!({"input": 10, "output": 5});
    let mut negative = turn(2);
    negative["message"]["usage"]["input"] = json!(-7);
    let mut fractional = turn(3);
    fractional["message"]["usage"]["output"] = json!(2.9);
    let mut no_time = turn(4);
    no_time["timestamp"] = json!("not a time");
    no_time["message"]["timestamp"] = Value::Null;
    for v in [&missing, &negative, &fractional, &no_time] {
        d.append(&a, &format!("{v}\n"));
    }
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 4);
    assert_eq!(r.flagged_turns, 4);
    let turns = store
        .turns_between(Timestamp::UNIX_EPOCH, Timestamp::MAX)
        .expect("turns");
    let by_output = |o: u64| {
        turns
            .iter()
            .find(|t| t.usage.output_tokens == o)
            .expect("turn")
    };
    let m = by_output(5);
    assert!(m.flags.has(TurnFlags::MISSING_FIELD));
    assert_eq!(
        (m.usage.cache_read_tokens, m.usage.cache_write_tokens),
        (0, 0)
    );
    let n = by_output(4);
    assert!(n.flags.has(TurnFlags::INVALID_FIELD));
    assert_eq!(n.usage.input_tokens, 0);
    let f = by_output(2);
    assert!(f.flags.has(TurnFlags::INVALID_FIELD));
    assert_eq!(f.usage.input_tokens, 3);
    let t = by_output(8);
    assert!(t.flags.has(TurnFlags::NO_TIMESTAMP));
    let mtime = std::fs::metadata(&a)
        .and_then(|m| m.modified())
        .expect("mtime");
    let mtime = Timestamp::try_from(mtime).expect("time");
    assert!((t.at.as_second() - mtime.as_second()).abs() <= 1);
}

#[test]
fn an_oversized_line_is_skipped_without_holding_it() {
    let d = Dir::new();
    let a = d.session("main", "s1");
    d.append(&a, &lines(1..=1));
    let mut huge = String::with_capacity(MAX_LINE + 2_000_000);
    huge.push_str(
        "{\"type\":\"message\",\"message\":{\"role\":\"assistant\",\"usage\":{},\"content\":\"",
    );
    while huge.len() < MAX_LINE + 1_000_000 {
        huge.push_str("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    huge.push_str("\"}}\n");
    d.append(&a, &huge);
    d.append(&a, &lines(2..=2));
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 2);
    assert_eq!(r.corrupt_lines, 1);
    assert!(
        r.problems[0].contains("longer than 8 MiB"),
        "{:?}",
        r.problems
    );
    assert!(r.problems[0].contains("s1.jsonl:3:"), "{:?}", r.problems);
}

#[test]
fn a_missing_folder_is_an_empty_pass_and_a_bad_entry_does_not_stop_the_rest() {
    let d = Dir::new();
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r, Default::default());

    // A folder named like a transcript, and a real one beside it.
    let bogus = d.session("main", "bogus");
    std::fs::create_dir_all(&bogus).expect("dir");
    let a = d.session("main", "s1");
    d.append(&a, &lines(1..=2));
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 2);
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("bogus.jsonl") && p.contains("not a file")),
        "{:?}",
        r.problems
    );
}

#[test]
fn a_file_that_is_not_a_cost_store_is_left_untouched() {
    let d = Dir::new();
    std::fs::create_dir_all(d.store_path().parent().expect("parent")).expect("dir");
    std::fs::write(
        d.store_path(),
        b"hello, not sqlite at all, just some bytes here....",
    )
    .expect("write");
    let before = std::fs::read(d.store_path()).expect("read");
    let err = CostStore::open(&d.store_path()).expect_err("refused");
    assert!(
        err.to_string().contains("not a ClawFleet cost store"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.store_path()).expect("read"), before);
}

// ---------------------------------------------------------------------------
// OpenClaw 2026.9: per-agent SQLite stores, written as OpenClaw writes them
// (the real DDL, `BEGIN IMMEDIATE`, dense `seq`, identities, zstd events with
// their `navigation_json`, deletion = archive row + published file).

mod openclaw {
    use std::path::{Path, PathBuf};

    use rusqlite::{Connection, params};
    use serde_json::{Value, json};

    pub const SCHEMA: &str = include_str!("../fixtures/openclaw/agent-schema.sql");

    /// One agent's store, held open read-write like OpenClaw's gateway.
    pub struct Agent {
        pub conn: Connection,
        pub dir: PathBuf,
        pub db: PathBuf,
        pub id: String,
    }

    pub const T0_MS: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    impl Agent {
        pub fn create(agents: &Path, id: &str) -> Agent {
            let dir = agents.join(id);
            std::fs::create_dir_all(dir.join("agent")).expect("agent dir");
            let db = dir.join("agent").join(clawfleet::cost::openclaw::AGENT_DB);
            let conn = Connection::open(&db).expect("open");
            conn.execute_batch(
                "PRAGMA auto_vacuum = 2; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;",
            )
            .expect("pragmas");
            conn.execute_batch(SCHEMA).expect("the real DDL");
            conn.execute_batch("PRAGMA user_version = 23")
                .expect("version");
            conn.execute(
                "INSERT INTO schema_meta VALUES ('primary', 'agent', 23, ?1, '2026.9.6', ?2, ?2)",
                params![id, T0_MS],
            )
            .expect("schema_meta");
            Agent {
                conn,
                dir,
                db,
                id: id.to_owned(),
            }
        }

        pub fn sessions_dir(&self) -> PathBuf {
            let d = self.dir.join("sessions");
            std::fs::create_dir_all(&d).expect("sessions dir");
            d
        }

        /// A session key and window, with its header event.
        pub fn session(&self, sid: &str) {
            let key = format!("agent:{}:{sid}", self.id);
            let entry = json!({"sessionId": sid, "updatedAt": T0_MS}).to_string();
            self.conn
                .execute(
                    "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![key, sid, entry, T0_MS],
                )
                .expect("node");
            self.conn
                .execute(
                    "INSERT INTO session_windows (session_id, session_key, reason, created_at, updated_at) \
                     VALUES (?1, ?2, 'initial', ?3, ?3)",
                    params![sid, key, T0_MS],
                )
                .expect("window");
            self.append(sid, &header(sid), false);
        }

        /// Appends `event` in its own `BEGIN IMMEDIATE` transaction, as
        /// text or zstd (with `navigation_json`, as OpenClaw does for
        /// large events).
        pub fn append(&self, sid: &str, event: &Value, compress: bool) -> i64 {
            self.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            let seq = self.insert(sid, event, compress);
            self.conn.execute_batch("COMMIT").expect("commit");
            seq
        }

        /// Inserts `event` at the next `seq` (inside the caller's transaction).
        pub fn insert(&self, sid: &str, event: &Value, compress: bool) -> i64 {
            let seq: i64 = self
                .conn
                .query_row(
                    "SELECT coalesce(max(seq) + 1, 0) FROM transcript_events WHERE session_id = ?1",
                    [sid],
                    |r| r.get(0),
                )
                .expect("seq");
            self.insert_at(sid, seq, event, compress);
            seq
        }

        pub fn insert_at(&self, sid: &str, seq: i64, event: &Value, compress: bool) {
            let text = event.to_string();
            let created = T0_MS + seq * 1000;
            if compress {
                let blob = zstd::bulk::compress(text.as_bytes(), 1).expect("zstd");
                self.insert_raw(
                    sid,
                    seq,
                    None,
                    Some(&blob),
                    Some(text.len() as i64),
                    Some(&navigation(event, text.len())),
                    created,
                );
            } else {
                self.insert_raw(
                    sid,
                    seq,
                    Some(&text),
                    None,
                    Some(text.len() as i64),
                    None,
                    created,
                );
            }
            if let Some(id) = event["id"].as_str() {
                self.conn
                    .execute(
                        "INSERT INTO transcript_event_identities (session_id, event_id, seq, event_type, parent_id, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![sid, id, seq, event["type"].as_str(), event["parentId"].as_str(), created],
                    )
                    .expect("identity");
            }
        }

        #[allow(clippy::too_many_arguments)]
        pub fn insert_raw(
            &self,
            sid: &str,
            seq: i64,
            json: Option<&str>,
            zstd: Option<&[u8]>,
            bytes: Option<i64>,
            nav: Option<&str>,
            created: i64,
        ) {
            self.conn
                .execute(
                    "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![sid, seq, json, created, zstd, bytes, nav],
                )
                .expect("event");
        }

        /// The session's events in order, as JSON text.
        pub fn events(&self, sid: &str) -> Vec<String> {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT event_json, event_zstd FROM transcript_events WHERE session_id = ?1 ORDER BY seq",
                )
                .expect("prepare");
            let rows = stmt
                .query_map([sid], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<Vec<u8>>>(1)?,
                    ))
                })
                .expect("query");
            rows.map(|r| match r.expect("row") {
                (Some(t), _) => t,
                (None, Some(b)) => {
                    String::from_utf8(zstd::stream::decode_all(&b[..]).expect("decode"))
                        .expect("utf8")
                }
                _ => panic!("empty event"),
            })
            .collect()
        }

        /// Suffix rewrite: events from `from_seq` on are replaced, and the
        /// rewrite generation changes.
        pub fn rewrite(&self, sid: &str, from_seq: i64, events: &[Value], generation: &str) {
            self.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            self.conn
                .execute(
                    "DELETE FROM transcript_events WHERE session_id = ?1 AND seq >= ?2",
                    params![sid, from_seq],
                )
                .expect("delete");
            for (i, e) in events.iter().enumerate() {
                self.insert_at(sid, from_seq + i as i64, e, false);
            }
            self.conn
                .execute(
                    "INSERT INTO transcript_rewrite_watermarks (session_id, generation, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (session_id) DO UPDATE SET generation = excluded.generation",
                    params![sid, generation, T0_MS],
                )
                .expect("watermark");
            self.conn.execute_batch("COMMIT").expect("commit");
        }

        /// `openclaw sessions delete`: the archive row and the deletion in
        /// one transaction, then the same bytes published as a file.
        /// Returns the file.
        pub fn delete_session(&self, sid: &str, generation: &str) -> PathBuf {
            let jsonl: String = self.events(sid).iter().map(|e| format!("{e}\n")).collect();
            let blob = zstd::bulk::compress(jsonl.as_bytes(), 3).expect("zstd");
            let name = format!("{sid}.jsonl.deleted.2026-12-07T23-44-26.484Z.{generation}.zst");
            self.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            self.conn
                .execute(
                    "INSERT INTO session_transcript_archives (session_id, generation, session_key, reason, encoding, \
                     archive_blob, archive_sha256, archive_name, created_at) \
                     VALUES (?1, ?2, ?3, 'deleted', 'zstd', ?4, ?5, ?6, ?7)",
                    params![sid, generation, format!("agent:{}:{sid}", self.id), blob, "0".repeat(64), name, T0_MS + 99_000],
                )
                .expect("archive");
            self.conn
                .execute(
                    "DELETE FROM session_nodes WHERE session_key = ?1",
                    [format!("agent:{}:{sid}", self.id)],
                )
                .expect("delete");
            self.conn.execute_batch("COMMIT").expect("commit");
            let path = self.sessions_dir().join(&name);
            std::fs::write(&path, &blob).expect("publish");
            self.conn
                .execute(
                    "UPDATE session_transcript_archives SET published_at = ?1 WHERE session_id = ?2",
                    params![T0_MS + 99_100, sid],
                )
                .expect("published");
            path
        }
    }

    /// A `navigation_json` that passes the table's CHECK.
    pub fn navigation(event: &Value, bytes: usize) -> String {
        let entry = json!({"id": event["id"], "parentId": event["parentId"], "timestamp": event["timestamp"], "type": event["type"]});
        let message = json!({"role": event["message"]["role"]});
        let mut nav = entry.clone();
        nav["message"] = message;
        json!({
            "version": 1,
            "report": {"kind": "canonical", "hasParentId": true, "entry": entry},
            "navigation": nav, "reset": nav, "model": nav,
            "modelBytes": bytes, "modelWithoutCheckpointBytes": bytes, "withoutCustomDataBytes": bytes
        })
        .to_string()
    }

    pub fn header(sid: &str) -> Value {
        json!({"type": "session", "version": 4, "id": sid, "timestamp": "2026-12-01T00:00:00.000Z", "cwd": "/home/u/.openclaw/workspace"})
    }

    pub fn at_ms(n: u64) -> i64 {
        T0_MS + n as i64 * 60_000
    }

    /// An assistant turn as OpenClaw 2026.9.6 stores it; usage (n, 2n, 3n,
    /// 4n); `pad` bytes of text (a large turn is stored compressed).
    pub fn assistant(n: u64, pad: usize) -> Value {
        let ms = at_ms(n);
        let ts = jiff::Timestamp::from_millisecond(ms)
            .expect("ms")
            .to_string();
        json!({
            "type": "message", "id": format!("a{n:04}-5bf6-4935-92d7-a8a4c3cc0fde"), "parentId": format!("u{n:04}"),
            "timestamp": ts,
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "x".repeat(pad)}],
                "stopReason": "stop", "api": "anthropic-messages", "provider": "anthropic", "model": "claude-sonnet-5",
                "usage": {"input": n, "output": 2 * n, "cacheRead": 3 * n, "cacheWrite": 4 * n,
                          "cacheTelemetry": {"state": "unavailable"}, "totalTokens": 10 * n,
                          "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0.01},
                          "contextUsage": {"state": "available", "promptTokens": n, "totalTokens": 10 * n}},
                "timestamp": ms, "__openclaw": {"runId": "94b2729d-b567-4ba6-96b5-9a79d60f8fa0"}
            }
        })
    }

    pub fn user(n: u64, pad: usize) -> Value {
        json!({"type": "message", "id": format!("u{n:04}"), "parentId": null, "timestamp": "2026-12-01T00:00:00.000Z",
               "message": {"role": "user", "content": "y".repeat(pad), "timestamp": at_ms(n) - 1000}})
    }

    /// What `openclaw doctor --fix` does to a legacy transcript: its events
    /// into the database (re-serialized; an event without `id` gets one),
    /// the file moved to `session-sqlite-import-archive/`.
    pub fn doctor_import(agent: &Agent, legacy: &Path, sid: &str) -> PathBuf {
        let text = std::fs::read_to_string(legacy).expect("legacy");
        agent.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        let key = format!("agent:{}:{sid}", agent.id);
        agent
            .conn
            .execute(
                "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) VALUES (?1, ?2, '{}', ?3)",
                params![key, sid, T0_MS],
            )
            .expect("node");
        agent
            .conn
            .execute(
                "INSERT INTO session_windows (session_id, session_key, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![sid, key, T0_MS],
            )
            .expect("window");
        let mut first = true;
        for (index, line) in text.lines().enumerate() {
            let mut event: Value = serde_json::from_str(line).expect("legacy line");
            if first && event["type"] != "session" {
                agent.insert(sid, &header(sid), false);
            }
            first = false;
            if event["type"] == "session" {
                event["id"] = json!(sid);
            } else if event.get("id").is_none() {
                event["id"] = json!(format!("3f9a0c1d2e4b5a69-{index:x}"));
            }
            agent.insert(sid, &event, false);
        }
        agent.conn.execute_batch("COMMIT").expect("commit");
        let archive = agent.dir.join("session-sqlite-import-archive");
        std::fs::create_dir_all(&archive).expect("archive dir");
        let name = legacy
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let moved = archive.join(format!(
            "{}.{name}.imported-1796687000000",
            key.replace(':', "_")
        ));
        std::fs::rename(legacy, &moved).expect("move");
        moved
    }
}

use openclaw::{Agent, assistant, user as oc_user};

/// (turns, sum of input tokens, sum of cache writes) in the store.
fn totals3(store: &CostStore) -> (u64, u64, u64) {
    let turns = store
        .turns_between(Timestamp::UNIX_EPOCH, Timestamp::MAX)
        .expect("turns");
    (
        turns.len() as u64,
        turns.iter().map(|t| t.usage.input_tokens).sum(),
        turns.iter().map(|t| t.usage.cache_write_tokens).sum(),
    )
}

fn jsonl(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

#[test]
fn openclaw_turns_are_counted_once_across_live_rows_archives_and_legacy_copies() {
    let d = Dir::new();
    let a = Agent::create(&d.agents(), "main");
    // Live: turns 1-5, the odd ones large and stored compressed.
    a.session("s-live");
    for n in 1..=5u64 {
        a.append("s-live", &oc_user(n, 50), false);
        let big = n % 2 == 1;
        a.append("s-live", &assistant(n, if big { 3000 } else { 20 }), big);
    }
    // A session deleted later: turns 6-8.
    a.session("s-del");
    for n in 6..=8u64 {
        a.append("s-del", &assistant(n, 20), false);
    }
    // Legacy JSONL with ids (9-10) and without (11-12, Clawdbot 2026.1).
    let sessions = a.sessions_dir();
    let with_ids = sessions.join("s-legacy.jsonl");
    std::fs::write(
        &with_ids,
        jsonl(&[
            openclaw::header("s-legacy"),
            oc_user(9, 10),
            assistant(9, 10),
            assistant(10, 10),
        ]),
    )
    .expect("legacy");
    let mut no_ids = Vec::new();
    for n in 11..=12u64 {
        let mut t = assistant(n, 10);
        t.as_object_mut().expect("object").remove("id");
        no_ids.push(t);
    }
    let without_ids = sessions.join("s-old.jsonl");
    std::fs::write(&without_ids, jsonl(&no_ids)).expect("legacy");
    // A real published archive of OpenClaw 2026.9.6 with no row here: one
    // turn of 123 input tokens.
    let real = "89d2f287-fa5b-499a-a075-d397d5647528.jsonl.deleted.2026-12-07T23-44-26.484Z.7f726cc2c4c543e29efd381ef75f8a4d.zst";
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/openclaw")
            .join(real),
        sessions.join(real),
    )
    .expect("fixture");

    let want = (13, (1..=12).sum::<u64>() + 123, 4 * (1..=12).sum::<u64>());
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.stores_seen, 1);
    assert_eq!(r.stores_refused, 0, "{:?}", r.problems);
    assert_eq!(r.turns_added, 13, "{r:?}");
    assert_eq!(r.duplicates, 0);
    assert_eq!(
        (r.corrupt_lines, r.corrupt_events),
        (0, 0),
        "{:?}",
        r.problems
    );
    assert_eq!(totals3(&store), want);
    let turns = store
        .turns_between(Timestamp::UNIX_EPOCH, Timestamp::MAX)
        .expect("turns");
    let t1 = turns
        .iter()
        .find(|t| t.usage.input_tokens == 1)
        .expect("turn 1");
    assert_eq!((t1.agent.as_str(), t1.session.as_str()), ("main", "s-live"));
    assert_eq!(
        t1.at,
        Timestamp::from_millisecond(openclaw::at_ms(1)).expect("t")
    );
    assert_eq!(t1.reported_usd, Some(0.01));
    assert_eq!(t1.flags, TurnFlags::default());
    let t9 = turns
        .iter()
        .find(|t| t.usage.input_tokens == 9)
        .expect("turn 9");
    assert_eq!(t9.session, "s-legacy", "the header's session id");
    let real_turn = turns
        .iter()
        .find(|t| t.usage.input_tokens == 123)
        .expect("real");
    assert_eq!(real_turn.session, "89d2f287-fa5b-499a-a075-d397d5647528");
    assert_eq!(
        (real_turn.provider.as_str(), real_turn.model.as_str()),
        ("ollama", "qwen3:8b")
    );

    // Now every copy at once: the session deleted (archive row + published
    // file), both legacy files imported by Doctor (into the database, files
    // moved to the import archive).
    let published = a.delete_session("s-del", "7f726cc2c4c543e29efd381ef75f8a4d");
    openclaw::doctor_import(&a, &with_ids, "s-legacy");
    openclaw::doctor_import(&a, &without_ids, "s-old");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 0, "{r:?}");
    assert_eq!(r.duplicates, 7, "2 + 2 imported, 3 in the archive: {r:?}");
    assert_eq!(r.archives_read, 1, "the deleted session's row: {r:?}");
    assert_eq!(totals3(&store), want);

    // The archive row pruned: its published file is read instead, and adds
    // nothing either.
    a.conn
        .execute("DELETE FROM session_transcript_archives", [])
        .expect("prune");
    assert!(published.exists());
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 0, "{r:?}");
    assert_eq!(r.duplicates, 3, "the published file's three turns: {r:?}");
    assert_eq!(totals3(&store), want);

    // Nothing new: nothing is decoded, nothing read.
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(
        (
            r.events_read,
            r.sessions_read,
            r.files_read,
            r.archives_read,
            r.turns_added
        ),
        (0, 0, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(totals3(&store), want);

    // A fresh store reading everything as it is now counts the same.
    drop(store);
    std::fs::remove_file(d.store_path()).expect("remove store");
    let mut store = d.store();
    store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(totals3(&store), want);
}

#[test]
fn openclaw_incremental_passes_follow_appends_rewrites_and_deletions() {
    let d = Dir::new();
    let a = Agent::create(&d.agents(), "main");
    a.session("s1");
    for n in 1..=3u64 {
        a.append("s1", &oc_user(n, 10), false);
        a.append("s1", &assistant(n, 10), false);
    }
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.turns_added, r.events_read, r.sessions_read), (3, 7, 1));

    // Appended: only the new rows are read.
    a.append("s1", &oc_user(4, 10), false);
    a.append("s1", &assistant(4, 2000), true);
    a.append("s1", &assistant(5, 10), false);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(
        (r.turns_added, r.duplicates, r.events_read),
        (2, 0, 3),
        "{r:?}"
    );

    // A restart with nothing new reads no event.
    drop(store);
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.events_read, r.sessions_read, r.turns_added), (0, 0, 0));
    assert_eq!(totals3(&store).0, 5);

    // A suffix rewrite (new generation): rows from seq 6 replaced; turn 3
    // is written again as it was, turn 6 is new. The session is read again
    // from the start; only turn 6 is added.
    a.rewrite(
        "s1",
        6,
        &[assistant(3, 10), oc_user(6, 10), assistant(6, 10)],
        "d4a6fb885fbc439ba99d07ebd697e7b2",
    );
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 1, "{r:?}");
    assert_eq!(r.events_read, 9, "read again from the start: {r:?}");
    assert_eq!(totals3(&store).0, 6);

    // Rows removed without a new generation (max seq below the cursor):
    // read again, nothing added, nothing lost.
    a.conn
        .execute(
            "DELETE FROM transcript_events WHERE session_id = 's1' AND seq >= 7",
            [],
        )
        .expect("truncate");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.turns_added, r.sessions_read), (0, 1), "{r:?}");
    assert_eq!(totals3(&store).0, 6);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.events_read, r.sessions_read), (0, 0), "{r:?}");

    // The session deleted: its turns stay; its archive adds nothing.
    a.delete_session("s1", "26d3dc9518474ed28cb812b6ed3eda4e");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.turns_added, r.archives_read), (0, 1), "{r:?}");
    assert_eq!(totals3(&store).0, 6);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(
        (r.archives_read, r.files_read, r.events_read),
        (0, 0, 0),
        "{r:?}"
    );
}

#[test]
fn cold_archives_count_only_while_their_row_exists() {
    let d = Dir::new();
    let a = Agent::create(&d.agents(), "main");
    a.session("s-cold");
    a.session("s-orphan");
    // Cold storage: the row and the deletion of the events in one
    // transaction; records in sessions/cold/<sha256>.jsonl.zst.
    let records = |sid: &str, turns: &[u64]| {
        let mut out = format!(
            "{}\n",
            json!({"kind": "header", "version": 1, "sessionId": sid, "generation": "g1"})
        );
        for (seq, n) in turns.iter().enumerate() {
            let row = json!({"seq": seq + 1, "event_json": assistant(*n, 10).to_string(), "created_at": openclaw::at_ms(*n)});
            out.push_str(&format!("{}\n", json!({"kind": "event", "row": row})));
            out.push_str(&format!(
                "{}\n",
                json!({"kind": "identity", "row": {"event_id": "x"}})
            ));
        }
        zstd::bulk::compress(out.as_bytes(), 3).expect("zstd")
    };
    let cold = a.sessions_dir().join("cold");
    std::fs::create_dir_all(&cold).expect("cold dir");
    let name = format!("{}.jsonl.zst", "ab".repeat(32));
    std::fs::write(cold.join(&name), records("s-cold", &[1, 2])).expect("cold file");
    // A cold file whose row is gone (restored): never read.
    std::fs::write(
        cold.join(format!("{}.jsonl.zst", "cd".repeat(32))),
        records("s-orphan", &[50]),
    )
    .expect("orphan");
    a.conn
        .execute(
            "DELETE FROM transcript_events WHERE session_id = 's-cold'",
            [],
        )
        .expect("cold move");
    a.conn
        .execute(
            "INSERT INTO session_transcript_cold_archives (session_id, generation, archive_name, archive_sha256, \
             event_count, raw_bytes, archive_bytes, last_seq, archived_at, storage) \
             VALUES ('s-cold', 'g1', ?1, ?2, 2, 100, 100, 2, ?3, 'file')",
            params![name, "ab".repeat(32), openclaw::T0_MS],
        )
        .expect("cold row");
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 2, "{r:?}");
    assert_eq!(r.archives_read, 1);
    assert_eq!(totals3(&store).1, 3);

    // Restored: the row goes, the events come back; nothing is added.
    a.conn
        .execute("DELETE FROM session_transcript_cold_archives", [])
        .expect("restore");
    a.append("s-cold", &assistant(1, 10), false);
    a.append("s-cold", &assistant(2, 10), true);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.turns_added, r.duplicates), (0, 2), "{r:?}");
    assert_eq!(totals3(&store).0, 2);
}

#[cfg(unix)]
fn identity_of(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("sidecar exists");
    (m.dev(), m.ino())
}

#[test]
fn a_reader_never_blocks_openclaw_and_never_touches_its_wal() {
    let d = Dir::new();
    let a = Agent::create(&d.agents(), "main");
    a.session("s1");
    a.append("s1", &assistant(1, 10), false);
    let wal = a.db.with_extension("sqlite-wal");
    let shm = a.db.with_extension("sqlite-shm");
    #[cfg(unix)]
    let sidecars = (identity_of(&wal), identity_of(&shm));
    let mut store = d.store();

    // OpenClaw holds a write transaction with a turn not committed yet: a
    // pass reads what is committed and returns.
    a.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    a.insert("s1", &assistant(2, 10), false);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 1, "{r:?}");
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    a.conn
        .execute_batch("COMMIT")
        .expect("OpenClaw's commit is not blocked");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 1);

    // Passes in a loop on another thread while OpenClaw writes with no busy
    // timeout at all (as its checkpoints run): every write goes through.
    a.conn
        .busy_timeout(std::time::Duration::ZERO)
        .expect("timeout");
    let agents = d.agents();
    let store_path = d.store_path();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut store = CostStore::open(&store_path).expect("store");
            let mut passes = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || passes == 0 {
                let r = store.ingest_transcripts(&agents).expect("ingest");
                assert_eq!(r.stores_refused, 0, "{:?}", r.problems);
                passes += 1;
            }
            passes
        })
    };
    for n in 3..=200u64 {
        a.append("s1", &assistant(n, 10), n % 3 == 0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().expect("reader thread") >= 1);
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.stores_refused, 0);
    assert_eq!(totals3(&store).0, 200);
    // OpenClaw's checkpoint is never blocked by an idle reader.
    let (busy, _, _): (i64, i64, i64) = a
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint");
    assert_eq!(busy, 0, "the checkpoint was blocked");
    // Its WAL and shared memory are the very files it opened.
    #[cfg(unix)]
    assert_eq!((identity_of(&wal), identity_of(&shm)), sidecars);

    // An exclusive lock (Doctor's offline compaction): the pass reports
    // the database locked and returns; the next one reads it.
    a.conn
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .expect("exclusive");
    a.insert("s1", &assistant(201, 10), false);
    let mut other = CostStore::open(&d.store_path()).expect("store");
    let r = other
        .ingest_transcripts(&d.agents())
        .expect("ingest returns");
    assert_eq!(r.stores_refused, 1, "{r:?}");
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("openclaw-agent.sqlite") && p.contains("locked")),
        "{:?}",
        r.problems
    );
    a.conn
        .execute_batch("COMMIT; PRAGMA locking_mode = NORMAL;")
        .expect("commit");
    // The exclusive lock is kept until the next read in NORMAL mode.
    let _: i64 = a
        .conn
        .query_row("SELECT count(*) FROM transcript_events", [], |r| r.get(0))
        .expect("read");
    let r = other.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.stores_refused, r.turns_added), (0, 1), "{r:?}");
}

#[test]
fn bad_openclaw_input_is_reported_never_crashes_never_double_counts() {
    let d = Dir::new();
    let a = Agent::create(&d.agents(), "main");
    a.session("s1");
    a.append("s1", &assistant(1, 10), false);
    let good = assistant(2, 2000).to_string();
    let blob = zstd::bulk::compress(good.as_bytes(), 1).expect("zstd");
    let nav = openclaw::navigation(&assistant(2, 2000), good.len());
    let len = good.len() as i64;
    // seq 2: not JSON; 3: JSON cut short; 4: garbage for a zstd frame;
    // 5: decodes past its declared size; 6: declared larger than it
    // decodes; 7: a good compressed turn; 8: invalid UTF-8 in a turn.
    a.insert_raw("s1", 2, Some("this is not json"), None, Some(16), None, 1);
    a.insert_raw(
        "s1",
        3,
        Some(&good[..good.len() - 5]),
        None,
        Some(len - 5),
        None,
        1,
    );
    a.insert_raw(
        "s1",
        4,
        None,
        Some(b"\x28\xb5\x2f\xfd garbage"),
        Some(len),
        Some(&nav),
        1,
    );
    a.insert_raw("s1", 5, None, Some(&blob), Some(len - 1), Some(&nav), 1);
    a.insert_raw("s1", 6, None, Some(&blob), Some(len + 1), Some(&nav), 1);
    a.insert_raw("s1", 7, None, Some(&blob), Some(len), Some(&nav), 1);
    a.conn
        .execute(
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) \
             VALUES ('s1', 8, CAST(x'7b2274797065223a226d657373616765222c226d657373616765223a7b22726f6c65223a22617373697374616e74222c226d6f64656c223a22ff222c227573616765223a7b7d7d7d' AS TEXT), 1)",
            [],
        )
        .expect("invalid utf-8");
    a.append("s1", &assistant(3, 10), false);
    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 3, "{r:?}");
    assert_eq!(r.corrupt_events, 6, "{:?}", r.problems);
    for seq in 2..=6 {
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains(&format!("session s1 seq {seq}:"))),
            "seq {seq}: {:?}",
            r.problems
        );
    }
    assert!(
        r.problems.iter().all(|p| !p.contains("this is not json")),
        "a problem never carries the content: {:?}",
        r.problems
    );
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(
        (r.corrupt_events, r.turns_added),
        (0, 0),
        "not read again: {r:?}"
    );
    assert_eq!(totals3(&store).0, 3);

    // Other agents' databases that cannot be read: each a problem, the
    // rest still read.
    let newer = Agent::create(&d.agents(), "newer");
    newer.session("n1");
    newer.append("n1", &assistant(40, 10), false);
    newer
        .conn
        .execute_batch("PRAGMA user_version = 24")
        .expect("newer");
    let meta_newer = Agent::create(&d.agents(), "newer-meta");
    meta_newer.session("m1");
    meta_newer.append("m1", &assistant(41, 10), false);
    meta_newer
        .conn
        .execute("UPDATE schema_meta SET schema_version = 30", [])
        .expect("newer meta");
    let write = |agent: &str, bytes: &[u8]| {
        let dir = d.agents().join(agent).join("agent");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("openclaw-agent.sqlite"), bytes).expect("write");
    };
    write("text", b"hello, this is not a database at all");
    let mut corrupt = b"SQLite format 3\0".to_vec();
    corrupt.extend(std::iter::repeat_n(0xa5u8, 8192));
    write("corrupt", &corrupt);
    #[cfg(unix)]
    {
        let dir = d.agents().join("fifo").join("agent");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = std::ffi::CString::new(
            dir.join("openclaw-agent.sqlite")
                .to_string_lossy()
                .into_owned(),
        )
        .expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        // A FIFO and a symlink to it where transcripts should be, too.
        let sessions = a.sessions_dir();
        let fifo = std::ffi::CString::new(sessions.join("f.jsonl").to_string_lossy().into_owned())
            .expect("path");
        // SAFETY: as above.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink(sessions.join("f.jsonl"), sessions.join("g.jsonl"))
            .expect("symlink");
    }
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    let expect = |agent: &str, words: &str| {
        assert!(
            r.problems.iter().any(
                |p| p.contains(&format!("/{agent}/agent/openclaw-agent.sqlite"))
                    && p.contains(words)
            ),
            "{agent}: {words:?} in {:?}",
            r.problems
        );
    };
    expect("newer", "schema version 24 is newer");
    expect("newer-meta", "schema version 30 is newer");
    expect("text", "not a SQLite database");
    expect("corrupt", "");
    #[cfg(unix)]
    {
        expect("fifo", "not a regular file");
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("f.jsonl") && p.contains("not a file"))
        );
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("g.jsonl") && p.contains("not a file"))
        );
    }
    assert_eq!(
        r.stores_refused,
        if cfg!(unix) { 5 } else { 4 },
        "{:?}",
        r.problems
    );
    assert_eq!(r.turns_added, 0);
    assert_eq!(totals3(&store).0, 3);
}

/// The v1 cost store's schema, as ClawFleet before event keys created it.
#[cfg(unix)]
const V1_SCHEMA: &str = "CREATE TABLE transcript_files (
        path TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, offset INTEGER NOT NULL, head BLOB NOT NULL, head_len INTEGER NOT NULL,
        lines INTEGER NOT NULL, corrupt INTEGER NOT NULL, updated_at_us INTEGER NOT NULL);
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, at_us INTEGER NOT NULL, agent TEXT NOT NULL,
        session TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, api TEXT NOT NULL,
        input INTEGER NOT NULL, output INTEGER NOT NULL, cache_read INTEGER NOT NULL,
        cache_write INTEGER NOT NULL, reported_usd REAL, flags INTEGER NOT NULL);
    CREATE INDEX turns_by_time ON turns (at_us);
    CREATE TABLE alarms (key TEXT PRIMARY KEY, active INTEGER NOT NULL, since_us INTEGER NOT NULL,
        value REAL, threshold REAL, message TEXT NOT NULL);
    CREATE TABLE cost_events (id INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, kind TEXT NOT NULL,
        alarm TEXT NOT NULL, machine TEXT, active INTEGER NOT NULL, value REAL, threshold REAL,
        message TEXT NOT NULL);
    PRAGMA application_id = 1128678227;
    PRAGMA user_version = 1;";

#[cfg(unix)]
#[test]
fn a_v1_store_migrates_and_counts_nothing_twice() {
    let d = Dir::new();
    let a = Agent::create(&d.agents(), "main");
    let sessions = a.sessions_dir();
    // Legacy transcripts: with ids (1-3, and a reset archive of 4) and
    // without (5-6).
    let with_ids = sessions.join("s-ids.jsonl");
    std::fs::write(
        &with_ids,
        jsonl(&[
            openclaw::header("s-ids"),
            assistant(1, 10),
            assistant(2, 10),
            assistant(3, 10),
        ]),
    )
    .expect("write");
    std::fs::write(
        sessions.join("s-ids.jsonl.reset.2026-11-30T10-00-00.000Z"),
        jsonl(&[openclaw::header("s-ids"), assistant(4, 10)]),
    )
    .expect("write");
    let mut bare = Vec::new();
    for n in 5..=6u64 {
        let mut t = assistant(n, 10);
        t.as_object_mut().expect("object").remove("id");
        bare.push(t);
    }
    let without_ids = sessions.join("s-bare.jsonl");
    std::fs::write(&without_ids, jsonl(&bare)).expect("write");

    // The v1 store as ClawFleet left it: every line of the *.jsonl files
    // stored under its line hash, positions at their ends. (v1 never read
    // the reset archive.)
    std::fs::create_dir_all(d.store_path().parent().expect("parent")).expect("dir");
    {
        let c = rusqlite::Connection::open(d.store_path()).expect("v1");
        c.execute_batch(V1_SCHEMA).expect("v1 schema");
        for (path, session) in [(&with_ids, "s-ids"), (&without_ids, "s-bare")] {
            let text = std::fs::read_to_string(path).expect("read");
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).expect("json");
                if v["type"] != "message" {
                    continue;
                }
                let u = &v["message"]["usage"];
                let key = xxhash_rust::xxh3::xxh3_128(line.as_bytes()).to_be_bytes();
                c.execute(
                    "INSERT INTO turns (key, at_us, agent, session, provider, model, api, input, output, cache_read, cache_write, reported_usd, flags) \
                     VALUES (?1, ?2, 'main', ?3, 'anthropic', 'claude-sonnet-5', 'anthropic-messages', ?4, ?5, ?6, ?7, 0.01, 0)",
                    rusqlite::params![&key[..], v["message"]["timestamp"].as_i64().expect("ms") * 1000, session,
                        u["input"].as_i64(), u["output"].as_i64(), u["cacheRead"].as_i64(), u["cacheWrite"].as_i64()],
                )
                .expect("v1 turn");
            }
            let meta = std::fs::metadata(path).expect("meta");
            use std::os::unix::fs::MetadataExt;
            c.execute(
                "INSERT INTO transcript_files VALUES (?1, ?2, ?3, ?4, ?5, ?4, x'00', 0, 0, 0, 0)",
                rusqlite::params![
                    path.to_string_lossy(),
                    meta.dev() as i64,
                    meta.ino() as i64,
                    meta.len() as i64,
                    Timestamp::try_from(meta.modified().expect("mtime"))
                        .expect("t")
                        .as_nanosecond() as i64
                ],
            )
            .expect("v1 position");
        }
    }

    let mut store = d.store();
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(
        r.files_read, 3,
        "every file read once more from the start: {r:?}"
    );
    assert_eq!(
        r.turns_added, 1,
        "only the reset archive's turn is new: {r:?}"
    );
    assert_eq!(r.duplicates, 5);
    assert_eq!(totals3(&store), (6, 21, 84));
    let keyless: i64 = rusqlite::Connection::open(d.store_path())
        .expect("open")
        .query_row(
            "SELECT count(*) FROM turns WHERE event_key IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(
        keyless, 2,
        "the lines without an id keep only their line hash"
    );

    // Doctor imports both (ids given to the bare lines, everything
    // re-serialized) and moves them away: still six turns.
    openclaw::doctor_import(&a, &with_ids, "s-ids");
    openclaw::doctor_import(&a, &without_ids, "s-bare");
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!(r.turns_added, 0, "{r:?}");
    assert_eq!(r.duplicates, 5, "{r:?}");
    assert_eq!(totals3(&store), (6, 21, 84));
    let r = store.ingest_transcripts(&d.agents()).expect("ingest");
    assert_eq!((r.turns_added, r.events_read, r.files_read), (0, 0, 0));
}
