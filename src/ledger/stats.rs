//! Figures over a time window of the ledger, for the snapshot, the API,
//! `/metrics` and the cost engine.

use jiff::Timestamp;
use rusqlite::{Connection, Transaction};

pub use crate::snapshot::{MachineStats, ModelStats, Percentiles, ProxyStats, TokenSums};

/// Computes [`ProxyStats`] over requests with `since <= started_at < end_us`,
/// reporting the window as `[since, until)` for the rate.
pub(super) fn query(
    conn: &mut Connection,
    since: Timestamp,
    until: Timestamp,
    end_us: i64,
) -> rusqlite::Result<ProxyStats> {
    let window = (since.as_microsecond(), end_us);
    // One read transaction: every figure comes from the same snapshot, even
    // while the writer commits.
    let tx = conn.transaction()?;
    let (requests, fallbacks, errors) = tx.query_row(
        "SELECT count(*), total(fallback_depth > 0), total(outcome <> 'ok') FROM requests \
         WHERE started_at_us >= ?1 AND started_at_us < ?2",
        window,
        |row| {
            Ok((
                count(row.get::<_, i64>(0)?),
                row.get::<_, f64>(1)? as u64,
                row.get::<_, f64>(2)? as u64,
            ))
        },
    )?;
    let machines = grouped(&tx, "machine", window)?;
    let models = grouped(&tx, "requested_model", window)?;
    let duration_ms = percentiles(&sorted(&tx, "duration_ms", window)?);
    let ttfb_ms = percentiles(&sorted(&tx, "ttfb_ms", window)?);
    drop(tx); // read-only: rolling back is ending it
    Ok(ProxyStats::assemble(
        (since, until),
        Counts {
            requests,
            fallbacks,
            errors,
        },
        (duration_ms, ttfb_ms),
        machines,
        models,
    ))
}

/// Requests, how many a fallback served, and how many failed.
pub(super) struct Counts {
    pub requests: u64,
    pub fallbacks: u64,
    pub errors: u64,
}

/// Requests and tokens of one machine or model.
pub(super) type Group = (Option<String>, u64, TokenSums);

impl ProxyStats {
    /// The figures of the window `[since, until)` from its counts, latency
    /// percentiles (duration, time to first byte), and groups by machine
    /// and by model, each ranked already (most requests first).
    pub(super) fn assemble(
        (since, until): (Timestamp, Timestamp),
        counts: Counts,
        (duration_ms, ttfb_ms): (Option<Percentiles>, Option<Percentiles>),
        machines: Vec<Group>,
        models: Vec<Group>,
    ) -> ProxyStats {
        let requests = counts.requests;
        let minutes = (until.as_microsecond() - since.as_microsecond()) as f64 / 60e6;
        ProxyStats {
            since,
            until,
            requests,
            requests_per_minute: if minutes > 0.0 {
                requests as f64 / minutes
            } else {
                0.0
            },
            fallbacks: counts.fallbacks,
            errors: counts.errors,
            duration_ms,
            ttfb_ms,
            machines: machines
                .into_iter()
                .map(|(machine, n, tokens)| MachineStats {
                    machine,
                    requests: n,
                    share: if requests == 0 {
                        0.0
                    } else {
                        n as f64 / requests as f64
                    },
                    tokens,
                })
                .collect(),
            models: models
                .into_iter()
                .map(|(model, n, tokens)| ModelStats {
                    model,
                    requests: n,
                    tokens,
                })
                .collect(),
        }
    }
}

/// Requests and token sums grouped by `column` (a fixed column name, never
/// input). `total()` rather than `sum()`: it cannot overflow, and is exact up
/// to 2^53 tokens.
fn grouped(
    tx: &Transaction<'_>,
    column: &'static str,
    window: (i64, i64),
) -> rusqlite::Result<Vec<Group>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {column}, count(*), count(input_tokens), total(input_tokens), \
         total(output_tokens), total(cache_read_tokens), total(cache_write_tokens) \
         FROM requests WHERE started_at_us >= ?1 AND started_at_us < ?2 \
         GROUP BY {column} ORDER BY count(*) DESC, {column}"
    ))?;
    let rows = stmt.query_map(window, |row| {
        Ok((
            row.get::<_, Option<String>>(0)?,
            count(row.get(1)?),
            TokenSums {
                requests_with_usage: count(row.get(2)?),
                input_tokens: row.get::<_, f64>(3)? as u64,
                output_tokens: row.get::<_, f64>(4)? as u64,
                cache_read_tokens: row.get::<_, f64>(5)? as u64,
                cache_write_tokens: row.get::<_, f64>(6)? as u64,
            },
        ))
    })?;
    rows.collect()
}

/// The non-NULL values of `column` in the window, ascending.
fn sorted(
    tx: &Transaction<'_>,
    column: &'static str,
    window: (i64, i64),
) -> rusqlite::Result<Vec<f64>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {column} FROM requests WHERE started_at_us >= ?1 AND started_at_us < ?2 \
         AND {column} IS NOT NULL ORDER BY {column}"
    ))?;
    let rows = stmt.query_map(window, |row| row.get::<_, f64>(0))?;
    rows.collect()
}

/// Nearest-rank percentiles of `sorted` (ascending); `None` when empty.
pub(super) fn percentiles(sorted: &[f64]) -> Option<Percentiles> {
    let n = sorted.len();
    // rank = ceil(p × n / 100), in integers so that 95 % of 20 is exactly 19.
    let at = |p: usize| sorted[(p * n).div_ceil(100).clamp(1, n) - 1];
    (n > 0).then(|| Percentiles {
        samples: n as u64,
        p50: at(50),
        p95: at(95),
        p99: at(99),
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn nearest_rank() {
        assert_eq!(percentiles(&[]), None);
        let one = percentiles(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p95, one.p99), (7.0, 7.0, 7.0));
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        let p = percentiles(&twenty).unwrap();
        // ceil(0.5×20)=10, ceil(0.95×20)=19, ceil(0.99×20)=20
        assert_eq!((p.samples, p.p50, p.p95, p.p99), (20, 10.0, 19.0, 20.0));
        let hundred_one: Vec<f64> = (1..=101).map(f64::from).collect();
        let p = percentiles(&hundred_one).unwrap();
        // ceil(50.5)=51, ceil(95.95)=96, ceil(99.99)=100
        assert_eq!((p.p50, p.p95, p.p99), (51.0, 96.0, 100.0));
    }
}
