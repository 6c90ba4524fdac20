//! Reading Clawdbot's transcripts into the cost store, with real files:
//! known totals, restarts, appends, half-written lines, truncation,
//! rotation, copies, corrupt and oversized lines, unreadable files.

use std::io::Write;
use std::path::{Path, PathBuf};

use clawfleet::cost::store::{CostStore, TurnFlags};
use clawfleet::cost::transcripts::MAX_LINE;
use jiff::Timestamp;
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
