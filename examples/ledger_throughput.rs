//! How fast the ledger stores records: prints figures, asserts nothing.
//!
//! `cargo run --release --example ledger_throughput`
//!
//! Three runs of 10,000 records each, in a fresh file in a temporary folder:
//! all at once from concurrent tasks (`record().await` each, then `flush`),
//! one after another from one task (each awaited: a journal line each, then
//! `flush`), and fire-and-forget (`record_nowait`, then `close`). Each
//! figure runs until every record is stored in SQLite.

use std::time::Instant;

use clawfleet::ledger::{Ledger, Record};
use clawfleet::proxy::usage::Usage;
use jiff::Timestamp;

const N: usize = 10_000;

fn record(i: usize) -> Record {
    Record {
        started_at: Timestamp::now(),
        client: format!("127.0.0.1 bench/{i}"),
        api: "openai".into(),
        endpoint: "/v1/chat/completions".into(),
        requested_model: Some("gpt-oss:20b".into()),
        machine: Some("macmini".into()),
        fallback_depth: 0,
        stream: true,
        usage: Some(Usage {
            input_tokens: 812,
            output_tokens: 240,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        }),
        ttfb_ms: Some(180.0),
        duration_ms: 2400.0,
        status: 200,
        outcome: "ok".into(),
        error: None,
    }
}

fn report(what: &str, started: Instant) {
    let elapsed = started.elapsed();
    println!(
        "{what:<52} {:>8.1} ms  {:>9.0} records/s",
        elapsed.as_secs_f64() * 1e3,
        N as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;

    let ledger = Ledger::open(&dir.path().join("concurrent.sqlite"))?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let h = ledger.handle();
            tokio::spawn(async move { h.record(record(i)).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    ledger.handle().flush().await?;
    report("10,000 concurrent record(), then flush()", started);
    tokio::task::spawn_blocking(move || ledger.close()).await??;

    let ledger = Ledger::open(&dir.path().join("sequential.sqlite"))?;
    let h = ledger.handle();
    let started = Instant::now();
    for i in 0..N {
        h.record(record(i)).await?;
    }
    h.flush().await?;
    report("10,000 sequential record().await, then flush()", started);
    tokio::task::spawn_blocking(move || ledger.close()).await??;

    let ledger = Ledger::open(&dir.path().join("nowait.sqlite"))?;
    let h = ledger.handle();
    let started = Instant::now();
    for i in 0..N {
        h.record_nowait(record(i));
    }
    let queued = started.elapsed();
    tokio::task::spawn_blocking(move || ledger.close()).await??;
    let elapsed = started.elapsed();
    let stored = N as u64 - h.dropped();
    println!(
        "10,000 record_nowait() then close(): {stored} stored in {:.1} ms ({:.0} records/s), \
         {} dropped (the queue holds {}); queueing alone {:.1} ms",
        elapsed.as_secs_f64() * 1e3,
        stored as f64 / elapsed.as_secs_f64(),
        h.dropped(),
        clawfleet::ledger::QUEUE_CAPACITY,
        queued.as_secs_f64() * 1e3,
    );
    Ok(())
}
