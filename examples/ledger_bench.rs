//! The ledger's writer against the proxy's load: `cargo xtask bench ledger`.
//!
//! Every figure is measured on a fresh ledger file in the temporary folder
//! (on the same file system as a usual `data_dir`), through the public API
//! the proxy uses: `record().await` returns once the record is committed.
//!
//! 1. Sustained: 64 concurrent recorders, each recording again as soon as its
//!    record is committed (a closed loop, like 64 clients whose answers end
//!    one after another), for [`SUSTAINED`]: finished requests per second,
//!    against the 2,000 a second the writer must keep up with, the records
//!    per transaction, and the added latency of `record().await`.
//! 2. Paced: records arriving at 200 and at 2,000 a second (open loop, one
//!    task each, started on schedule whatever the others do) for
//!    [`PACED`] each: the p50 / p99 / max added latency of `record().await`.
//!    Tokio's timer has 1 ms steps, so at 2,000/s arrivals come in pairs.
//! 3. One recorder alone (10,000 records one after another, each awaited:
//!    one commit each), and 10,000 `record_nowait()` then `close()`.
//!
//! Prints Markdown tables; the CPU time is this process's (user + system),
//! so it includes the recorders themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawfleet::ledger::{Ledger, LedgerHandle, Record};
use clawfleet::proxy::usage::Usage;
use jiff::Timestamp;

/// How long the sustained run measures (after a warm-up of a second).
const SUSTAINED: Duration = Duration::from_secs(5);
/// How long each paced run lasts.
const PACED: Duration = Duration::from_secs(5);
/// The rate the writer must keep up with.
const TARGET_PER_S: f64 = 2_000.0;
const RECORDERS: usize = 64;
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

/// This process's CPU time so far (user + system).
fn cpu() -> Duration {
    #[cfg(unix)]
    {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            let tv = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
            };
            return tv(usage.ru_utime) + tv(usage.ru_stime);
        }
    }
    Duration::ZERO
}

/// Nearest-rank percentile of sorted `samples`, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// What one run measured.
struct Run {
    records: usize,
    elapsed: Duration,
    commits: u64,
    cpu: Duration,
    latencies: Vec<Duration>,
    failed: usize,
}

impl Run {
    /// A table row; `against` the rate the writer must keep up with, for a
    /// run that finds the most it can.
    fn row(&mut self, what: &str, against: bool) -> String {
        self.latencies.sort_unstable();
        let per_s = self.records as f64 / self.elapsed.as_secs_f64();
        let ratio = if against {
            format!("{:.1}×", per_s / TARGET_PER_S)
        } else {
            "—".into()
        };
        let per_commit = if self.commits == 0 {
            "—".into()
        } else {
            format!("{:.1}", self.records as f64 / self.commits as f64)
        };
        format!(
            "| {what} | {per_s:.0} | {ratio} | {per_commit} | {:.3} | {:.3} | {:.3} | {:.1} µs | {} |",
            pct(&self.latencies, 0.50),
            pct(&self.latencies, 0.99),
            self.latencies
                .last()
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
            self.cpu.as_secs_f64() * 1e6 / self.records.max(1) as f64,
            self.failed,
        )
    }
}

/// 64 recorders in a closed loop for [`SUSTAINED`], after a second's warm-up.
async fn sustained(h: &LedgerHandle) -> Run {
    let stop_at = Instant::now() + Duration::from_secs(1) + SUSTAINED;
    let measure_from = Instant::now() + Duration::from_secs(1);
    let counters = Arc::new(std::sync::Mutex::new((Vec::new(), 0usize)));
    // The figures of the measured part: taken when it starts.
    let start = tokio::spawn({
        let h = h.clone();
        async move {
            tokio::time::sleep_until(measure_from.into()).await;
            (Instant::now(), h.commits(), cpu())
        }
    });
    let tasks: Vec<_> = (0..RECORDERS)
        .map(|r| {
            let h = h.clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut failed = 0;
                let mut i = r;
                loop {
                    let at = Instant::now();
                    if at >= stop_at {
                        break;
                    }
                    let ok = h.record(record(i)).await.is_ok();
                    if at >= measure_from {
                        mine.push(at.elapsed());
                        failed += usize::from(!ok);
                    }
                    i += RECORDERS;
                }
                let mut c = counters.lock().unwrap();
                c.0.extend(mine);
                c.1 += failed;
            })
        })
        .collect();
    let (t0, commits0, cpu0) = start.await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = t0.elapsed();
    let (latencies, failed) = std::mem::take(&mut *counters.lock().unwrap());
    Run {
        records: latencies.len(),
        elapsed,
        commits: h.commits() - commits0,
        cpu: cpu() - cpu0,
        latencies,
        failed,
    }
}

/// Records arriving at `per_s` a second for [`PACED`], each on its own task;
/// with `record` false the tasks record nothing: the bench's own cost.
async fn paced(h: &LedgerHandle, per_s: u32, record_it: bool) -> Run {
    let period = Duration::from_secs(1) / per_s;
    let count = (PACED.as_secs_f64() * f64::from(per_s)) as usize;
    let (commits0, cpu0) = (h.commits(), cpu());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        tokio::time::sleep_until((started + period * i as u32).into()).await;
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let ok = !record_it || h.record(record(i)).await.is_ok();
            (at.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    for t in tasks {
        let (d, ok) = t.await.unwrap();
        latencies.push(d);
        failed += usize::from(!ok);
    }
    Run {
        records: count,
        elapsed: started.elapsed(),
        commits: h.commits() - commits0,
        cpu: cpu() - cpu0,
        latencies,
        failed,
    }
}

/// One recorder, each record awaited before the next.
async fn alone(h: &LedgerHandle) -> Run {
    let (commits0, cpu0) = (h.commits(), cpu());
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(N);
    let mut failed = 0;
    for i in 0..N {
        let at = Instant::now();
        failed += usize::from(h.record(record(i)).await.is_err());
        latencies.push(at.elapsed());
    }
    Run {
        records: N,
        elapsed: started.elapsed(),
        commits: h.commits() - commits0,
        cpu: cpu() - cpu0,
        latencies,
        failed,
    }
}

async fn close(ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    tokio::task::spawn_blocking(move || ledger.close()).await??;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    println!(
        "ledger files in {} ({} CPUs, load {})\n",
        dir.path().display(),
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into()),
    );
    println!(
        "| run | finished/s | against 2,000/s | records per commit | record().await p50 ms | p99 ms | max ms | CPU per record | not committed in time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");

    let ledger = Ledger::open(&dir.path().join("sustained.sqlite"))?;
    let row = sustained(&ledger.handle())
        .await
        .row(&format!("{RECORDERS} recorders, closed loop"), true);
    println!("{row}");
    close(ledger).await?;

    for per_s in [200, 2_000] {
        let ledger = Ledger::open(&dir.path().join(format!("paced-{per_s}.sqlite")))?;
        let row = paced(&ledger.handle(), per_s, true)
            .await
            .row(&format!("paced, {per_s}/s"), false);
        println!("{row}");
        let row = paced(&ledger.handle(), per_s, false).await.row(
            &format!("paced, {per_s}/s, nothing recorded (the bench's own cost)"),
            false,
        );
        println!("{row}");
        close(ledger).await?;
    }

    let ledger = Ledger::open(&dir.path().join("alone.sqlite"))?;
    let row = alone(&ledger.handle())
        .await
        .row("one recorder, one after another", false);
    println!("{row}");
    close(ledger).await?;

    let ledger = Ledger::open(&dir.path().join("nowait.sqlite"))?;
    let h = ledger.handle();
    let started = Instant::now();
    for i in 0..N {
        h.record_nowait(record(i));
    }
    let queued = started.elapsed();
    close(ledger).await?;
    let elapsed = started.elapsed();
    let stored = N as u64 - h.dropped();
    println!(
        "\n10,000 record_nowait() then close(): {stored} stored in {:.1} ms ({:.0} records/s, \
         {} commits), {} dropped (the queue holds {}); queueing alone {:.1} ms",
        elapsed.as_secs_f64() * 1e3,
        stored as f64 / elapsed.as_secs_f64(),
        h.commits(),
        h.dropped(),
        clawfleet::ledger::QUEUE_CAPACITY,
        queued.as_secs_f64() * 1e3,
    );
    Ok(())
}
