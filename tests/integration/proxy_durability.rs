//! A completed proxy request is in the ledger even if the daemon is killed
//! the next instant: the real `clawfleet serve` binary as a child process,
//! 50 requests through its proxy one after another (streamed and not, both
//! APIs), then SIGKILL, then the SQLite ledger read back.
//!
//! The proxy waits for each record's commit before the end of its response
//! goes out, so a client that saw its answer end is never unbilled by a
//! crash. The end is what the client takes as the end: the body's end for a
//! whole JSON answer, but for a stream its terminal frame — ollama-js stops
//! reading at the `done: true` line, and an SSE client may stop at
//! `data: [DONE]`.
//!
//! The test also holds the ledger's SQLite write lock from another
//! connection while three more answers go out: the proxy waits a bounded
//! time for each commit (the ledger's `COMMIT_WAIT`), then lets the answer
//! end with its record still queued, and the writer stores those records once
//! the lock goes away — before the kill, every one of them is there. (A kill
//! while another program holds the lock loses what is still queued: the one
//! case where a completed answer can go unbilled.)

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clawfleet::ledger::Ledger;
use serde_json::{Value, json};
use support::{FakeOllama, FakeUsage, TestConfig};
use tokio::process::Child;

const REQUESTS: u64 = 50;

/// The daemon, SIGKILLed when dropped if the test did not do it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Starts `clawfleet serve` on a one-machine config and returns it with its
/// proxy's address.
async fn serve(dir: &Path, ollama: &str) -> (Daemon, String) {
    let config = TestConfig::one_machine(&dir.join("data"), ollama).write(&dir.join("config.toml"));
    let mut cmd = support::clawfleet(&config);
    cmd.env("CLAWFLEET_LOG", "warn");
    let (child, proxy) = support::serve(cmd).await;
    (Daemon(child), proxy)
}

/// The usage the fake reports for request `i`: unique per request, so each
/// record can be matched to its request.
fn usage_of(i: u64) -> FakeUsage {
    FakeUsage {
        prompt_eval_count: 1000 + i,
        eval_count: 5000 + i,
        ..FakeUsage::default()
    }
}

/// Request `i`: five kinds in turn, streamed and not, both APIs.
fn request_of(i: u64) -> (&'static str, Value) {
    let messages = json!([{"role": "user", "content": format!("request {i}")}]);
    match i % 5 {
        0 => (
            "/v1/chat/completions",
            json!({"model": "gpt-oss:20b", "messages": messages, "stream": true,
                   "stream_options": {"include_usage": true}}),
        ),
        1 => (
            "/v1/chat/completions",
            json!({"model": "gpt-oss:20b", "messages": messages}),
        ),
        // The proxy asks upstream for usage and drops the extra chunk.
        2 => (
            "/v1/chat/completions",
            json!({"model": "gpt-oss:20b", "messages": messages, "stream": true}),
        ),
        3 => (
            "/api/chat",
            json!({"model": "gpt-oss:20b", "messages": messages}),
        ),
        _ => (
            "/api/generate",
            json!({"model": "gpt-oss:20b", "prompt": format!("request {i}"), "stream": false}),
        ),
    }
}

/// How far a client got with one answer.
#[derive(Default)]
struct Progress {
    /// Some of the answer's text arrived.
    content: AtomicBool,
    /// The client saw the answer's end (see the module doc).
    end: AtomicBool,
}

/// Reads an answer chunk by chunk as a client would, noting its progress,
/// until the body ends or breaks.
async fn read_answer(mut response: reqwest::Response, whole_json: bool, progress: Arc<Progress>) {
    let mut text = String::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if text.contains("Durable") {
                    progress.content.store(true, Ordering::SeqCst);
                }
                let streamed_end = text.contains("data: [DONE]")
                    || text
                        .lines()
                        .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["done"] == true));
                if !whole_json && streamed_end {
                    progress.end.store(true, Ordering::SeqCst);
                }
            }
            Ok(None) => {
                if whole_json && serde_json::from_str::<Value>(&text).is_ok() {
                    progress.end.store(true, Ordering::SeqCst);
                }
                return;
            }
            Err(_) => return,
        }
    }
}

#[tokio::test]
async fn every_completed_request_survives_sigkill_in_the_ledger() {
    let fake = FakeOllama::start().await;
    fake.set_model_names(&["gpt-oss:20b"]);
    fake.set_reply("Durable words");
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, proxy) = serve(dir.path(), &fake.url()).await;
    let client = support::client();

    // Routed once the health poll has seen the model.
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{proxy}/api/tags")).send().await
            && let Ok(tags) = r.json::<Value>().await
            && tags["models"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["name"] == "gpt-oss:20b"))
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the proxy never listed the fake's model");

    let mut sent = BTreeMap::new();
    for i in 0..REQUESTS {
        fake.set_usage(usage_of(i));
        let (path, body) = request_of(i);
        let response = client
            .post(format!("{proxy}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i} to {path}");
        // Read to the end: the client has the whole answer.
        let text = response.text().await.unwrap();
        assert!(text.contains("Durable"), "request {i}: {text}");
        let complete =
            match i % 5 {
                0 | 2 => text.trim_end().ends_with("data: [DONE]"),
                3 => text.trim_end().lines().last().is_some_and(|l| {
                    serde_json::from_str::<Value>(l).is_ok_and(|v| v["done"] == true)
                }),
                _ => serde_json::from_str::<Value>(&text).is_ok(),
            };
        assert!(complete, "request {i} answered in full: {text}");
        if i % 5 == 2 {
            assert!(!text.contains("\"usage\""), "request {i}: usage not shown");
        }
        sent.insert(1000 + i, (path, 5000 + i, i % 5 != 1 && i % 5 != 4));
    }

    // Another connection holds the ledger's write lock, so nothing can be
    // committed to SQLite. Three more answers (SSE, NDJSON, whole JSON) must
    // still complete, each after the proxy's bounded wait for its commit,
    // their records still queued.
    let file = dir.path().join("data").join(clawfleet::daemon::LEDGER_FILE);
    let count = || -> i64 {
        rusqlite::Connection::open(&file)
            .unwrap()
            .query_row("SELECT count(*) FROM requests", [], |row| row.get(0))
            .unwrap()
    };
    // Each answer ended after its record's commit: all are in the file.
    assert_eq!(
        count(),
        REQUESTS as i64,
        "committed before each answer ended"
    );
    let lock = rusqlite::Connection::open(&file).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held = [
        (
            "/v1/chat/completions",
            json!({"model": "gpt-oss:20b", "messages": [{"role": "user", "content": "held"}],
                   "stream": true, "stream_options": {"include_usage": true}}),
            false,
            true,
        ),
        (
            "/api/chat",
            json!({"model": "gpt-oss:20b", "messages": [{"role": "user", "content": "held"}]}),
            false,
            true,
        ),
        (
            "/api/generate",
            json!({"model": "gpt-oss:20b", "prompt": "held", "stream": false}),
            true,
            false,
        ),
    ];
    for (n, (path, body, whole_json, stream)) in held.into_iter().enumerate() {
        let i = REQUESTS + n as u64;
        fake.set_usage(usage_of(i));
        let progress = Arc::new(Progress::default());
        let response = client
            .post(format!("{proxy}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "held request to {path}");
        tokio::time::timeout(
            Duration::from_secs(10),
            read_answer(response, whole_json, progress.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("{path}: the answer did not end while SQLite was locked"));
        assert!(
            progress.end.load(Ordering::SeqCst) && progress.content.load(Ordering::SeqCst),
            "{path}: the whole answer arrived"
        );
        sent.insert(1000 + i, (path, 5000 + i, stream));
    }
    // Nothing of theirs is in SQLite yet: the lock is still held.
    assert_eq!(count(), REQUESTS as i64);
    // Once the lock goes away the ledger's writer stores them by itself.
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let mut stored = 0;
    for _ in 0..100 {
        stored = count();
        if stored == (REQUESTS + 3) as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored,
        (REQUESTS + 3) as i64,
        "the held records were stored"
    );

    // Killed, not stopped: no shutdown path runs, nothing is flushed by it.
    daemon.0.kill().await.unwrap();
    let status = daemon.0.wait().await.unwrap();
    assert!(!status.success(), "{status:?}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "SIGKILL: {status:?}");
    }

    // The file is sound (SQLite recovers its write-ahead log on opening).
    let conn = rusqlite::Connection::open(&file).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let ledger = Ledger::open(&file).unwrap();
    let records = ledger.handle().recent(1000).await.unwrap();
    assert_eq!(
        records.len() as u64,
        REQUESTS + 3,
        "every completed request is there, and nothing else"
    );
    let mut found = BTreeMap::new();
    for r in &records {
        let u = r
            .usage
            .unwrap_or_else(|| panic!("record without usage: {r:?}"));
        assert_eq!(r.outcome, "ok", "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.machine.as_deref(), Some("local"), "{r:?}");
        assert_eq!(r.requested_model.as_deref(), Some("gpt-oss:20b"));
        assert!(
            found
                .insert(
                    u.input_tokens,
                    (r.endpoint.as_str(), u.output_tokens, r.stream)
                )
                .is_none(),
            "one record per request: {r:?}"
        );
    }
    assert_eq!(found, sent);
    ledger.close().unwrap();
}
