//! The proxy's figures over the last minutes, kept in memory as the writer
//! stores records, for the snapshot, the fleet API and `/metrics`.
//!
//! Querying SQLite for them every few seconds cost a scan and two sorts of
//! every row in the window: under load, a tenth of the daemon's CPU, and
//! growing with the rate. Here each stored record is added to the slot of
//! the [`SLOT`] it started in; figures are the slots' sums, and a slot that
//! leaves the window is subtracted whole. Memory is bounded by the window's
//! slots, the distinct machines and models in it, and the histograms'
//! buckets, never by the number of requests.
//!
//! Latency percentiles come from log-scale histograms with buckets 1% wide:
//! a percentile is the middle of the bucket that holds the nearest-rank
//! sample, within 0.5% of it. Exact percentiles over any window remain
//! [`LedgerHandle::stats_between`](super::LedgerHandle::stats_between).

use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};

use super::Record;
use super::stats::{Counts, Group, Percentiles, ProxyStats, TokenSums};

/// How finely the window moves: its start is rounded down to a slot.
pub const SLOT: SignedDuration = SignedDuration::from_secs(10);

/// Histogram buckets per factor of `1 + GROWTH` ...
const GROWTH: f64 = 0.01;
/// ... above this many milliseconds; anything smaller is bucket 0.
const SMALLEST_MS: f64 = 0.001;

/// The most machines, and the most models, counted apart in the window;
/// beyond, requests are counted under [`OTHERS_NAME`]. A model name is whatever a
/// client sent (unknown ones are refused but recorded), so a client looping
/// over made-up names must not grow the window without end.
pub const MAX_GROUPS: usize = 256;

/// The group of the machines or models beyond [`MAX_GROUPS`], by this name.
pub const OTHERS_NAME: &str = "(others)";

static OTHERS: std::sync::LazyLock<Option<String>> =
    std::sync::LazyLock::new(|| Some(OTHERS_NAME.to_owned()));

/// The machine and model a record is counted under.
struct Keys<'a> {
    machine: &'a Option<String>,
    model: &'a Option<String>,
}

/// The figures of one set of requests, which can be added and subtracted.
#[derive(Debug, Default, Clone)]
struct Sums {
    requests: u64,
    fallbacks: u64,
    errors: u64,
    duration_ms: Histogram,
    ttfb_ms: Histogram,
    machines: HashMap<Option<String>, (u64, TokenSums)>,
    models: HashMap<Option<String>, (u64, TokenSums)>,
}

/// Counts by log-scale bucket.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: BTreeMap<u16, u64>,
    samples: u64,
}

impl Histogram {
    fn bucket(ms: f64) -> u16 {
        if ms.is_nan() || ms <= SMALLEST_MS {
            return 0;
        }
        let b = ((ms / SMALLEST_MS).ln() / GROWTH.ln_1p()).floor() + 1.0;
        // Saturating: a bucket past u16::MAX would be 10^280 ms.
        b.min(f64::from(u16::MAX)) as u16
    }

    /// The middle (geometric) of bucket `b`'s range.
    fn value(b: u16) -> f64 {
        if b == 0 {
            return SMALLEST_MS;
        }
        SMALLEST_MS * (1.0 + GROWTH).powf(f64::from(b) - 0.5)
    }

    fn add(&mut self, ms: f64) {
        *self.buckets.entry(Self::bucket(ms)).or_default() += 1;
        self.samples += 1;
    }

    #[cfg(test)]
    fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.buckets {
            *self.buckets.entry(b).or_default() += n;
        }
        self.samples += other.samples;
    }

    fn subtract(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            if let Some(have) = self.buckets.get_mut(b) {
                *have = have.saturating_sub(*n);
                if *have == 0 {
                    self.buckets.remove(b);
                }
            }
        }
        self.samples = self.samples.saturating_sub(other.samples);
    }

    /// Nearest-rank percentiles, as [`super::stats`] computes them exactly.
    fn percentiles(&self) -> Option<Percentiles> {
        let n = self.samples;
        if n == 0 {
            return None;
        }
        let at = |p: u64| {
            let rank = (p * n).div_ceil(100).clamp(1, n);
            let mut seen = 0;
            for (&b, &count) in &self.buckets {
                seen += count;
                if seen >= rank {
                    return Self::value(b);
                }
            }
            self.buckets
                .keys()
                .next_back()
                .map_or(0.0, |&b| Self::value(b))
        };
        Some(Percentiles {
            samples: n,
            p50: at(50),
            p95: at(95),
            p99: at(99),
        })
    }
}

fn add_tokens(into: &mut TokenSums, from: &TokenSums) {
    into.requests_with_usage += from.requests_with_usage;
    into.input_tokens += from.input_tokens;
    into.output_tokens += from.output_tokens;
    into.cache_read_tokens += from.cache_read_tokens;
    into.cache_write_tokens += from.cache_write_tokens;
}

fn sub_tokens(into: &mut TokenSums, from: &TokenSums) {
    into.requests_with_usage = into
        .requests_with_usage
        .saturating_sub(from.requests_with_usage);
    into.input_tokens = into.input_tokens.saturating_sub(from.input_tokens);
    into.output_tokens = into.output_tokens.saturating_sub(from.output_tokens);
    into.cache_read_tokens = into
        .cache_read_tokens
        .saturating_sub(from.cache_read_tokens);
    into.cache_write_tokens = into
        .cache_write_tokens
        .saturating_sub(from.cache_write_tokens);
}

type Groups = HashMap<Option<String>, (u64, TokenSums)>;

fn add_group(groups: &mut Groups, key: &Option<String>, n: u64, tokens: &TokenSums) {
    // Looked up by reference: a key is cloned only the first time it is seen.
    match groups.get_mut(key) {
        Some((count, sums)) => {
            *count += n;
            add_tokens(sums, tokens);
        }
        None => {
            groups.insert(key.clone(), (n, *tokens));
        }
    }
}

fn sub_groups(groups: &mut Groups, other: &Groups) {
    for (key, (n, tokens)) in other {
        if let Some((count, sums)) = groups.get_mut(key) {
            *count = count.saturating_sub(*n);
            sub_tokens(sums, tokens);
            if *count == 0 {
                groups.remove(key);
            }
        }
    }
}

impl Sums {
    /// Adds `r`, counted under `keys` (machine, model): see [`Keys`].
    fn add(&mut self, r: &Record, keys: &Keys<'_>) {
        self.requests += 1;
        self.fallbacks += u64::from(r.fallback_depth > 0);
        self.errors += u64::from(r.outcome != "ok");
        self.duration_ms.add(r.duration_ms);
        if let Some(t) = r.ttfb_ms {
            self.ttfb_ms.add(t);
        }
        let tokens = r.usage.map_or_else(TokenSums::default, |u| TokenSums {
            requests_with_usage: 1,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
        });
        add_group(&mut self.machines, keys.machine, 1, &tokens);
        add_group(&mut self.models, keys.model, 1, &tokens);
    }

    /// The keys `r` is counted under: its own machine and model, unless
    /// [`MAX_GROUPS`] others are counted already (see [`OTHERS_NAME`]).
    fn keys<'a>(&self, r: &'a Record) -> Keys<'a> {
        let pick = |groups: &Groups, key: &'a Option<String>| -> &'a Option<String> {
            if groups.len() < MAX_GROUPS || groups.contains_key(key) {
                key
            } else {
                &OTHERS
            }
        };
        Keys {
            machine: pick(&self.machines, &r.machine),
            model: pick(&self.models, &r.requested_model),
        }
    }

    #[cfg(test)]
    fn merge(&mut self, other: &Sums) {
        self.requests += other.requests;
        self.fallbacks += other.fallbacks;
        self.errors += other.errors;
        self.duration_ms.merge(&other.duration_ms);
        self.ttfb_ms.merge(&other.ttfb_ms);
        for (key, (n, tokens)) in &other.machines {
            add_group(&mut self.machines, key, *n, tokens);
        }
        for (key, (n, tokens)) in &other.models {
            add_group(&mut self.models, key, *n, tokens);
        }
    }

    fn subtract(&mut self, other: &Sums) {
        self.requests = self.requests.saturating_sub(other.requests);
        self.fallbacks = self.fallbacks.saturating_sub(other.fallbacks);
        self.errors = self.errors.saturating_sub(other.errors);
        self.duration_ms.subtract(&other.duration_ms);
        self.ttfb_ms.subtract(&other.ttfb_ms);
        sub_groups(&mut self.machines, &other.machines);
        sub_groups(&mut self.models, &other.models);
    }
}

/// Most requests first, ties by name (`None` first), as the SQL query sorts.
fn ranked(groups: &Groups) -> Vec<Group> {
    let mut out: Vec<_> = groups
        .iter()
        .map(|(k, (n, t))| (k.clone(), *n, *t))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The proxy's figures over a moving window, slot by slot.
#[derive(Debug)]
pub struct LiveStats {
    window: SignedDuration,
    /// Slots by index (start time / [`SLOT`]), oldest first.
    slots: VecDeque<(i64, Sums)>,
    total: Sums,
}

impl LiveStats {
    /// Empty, over the last `window`.
    pub fn new(window: SignedDuration) -> Self {
        Self {
            window,
            slots: VecDeque::new(),
            total: Sums::default(),
        }
    }

    /// The window this keeps.
    pub fn window(&self) -> SignedDuration {
        self.window
    }

    fn slot_of(t: Timestamp) -> i64 {
        t.as_microsecond().div_euclid(SLOT.as_micros() as i64)
    }

    /// The first slot inside the window ending `now`.
    fn first_slot(&self, now: Timestamp) -> i64 {
        let start = now
            .checked_sub(self.window)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Self::slot_of(start)
    }

    /// Adds a stored record. One that started before the window is left out.
    pub fn add(&mut self, record: &Record, now: Timestamp) {
        let index = Self::slot_of(record.started_at);
        if index < self.first_slot(now) {
            return;
        }
        // Records come nearly in order: search from the newest slot.
        let at = self
            .slots
            .iter()
            .rposition(|(i, _)| *i <= index)
            .map_or(0, |p| p + 1);
        // Keys chosen by the window's total, so that a slot is counted under
        // the same ones and subtracts exactly when it leaves.
        let keys = self.total.keys(record);
        if at > 0 && self.slots[at - 1].0 == index {
            self.slots[at - 1].1.add(record, &keys);
        } else {
            let mut sums = Sums::default();
            sums.add(record, &keys);
            self.slots.insert(at, (index, sums));
        }
        self.total.add(record, &keys);
    }

    /// Drops the slots that left the window ending `now`.
    fn expire(&mut self, now: Timestamp) {
        let first = self.first_slot(now);
        while self.slots.front().is_some_and(|(i, _)| *i < first) {
            if let Some((_, old)) = self.slots.pop_front() {
                self.total.subtract(&old);
            }
        }
        if self.slots.is_empty() {
            // Whatever rounding left behind goes with the last slot.
            self.total = Sums::default();
        }
    }

    /// The figures of the window ending `now`: the requests that started
    /// from the start of its first slot on.
    pub fn stats(&mut self, now: Timestamp) -> ProxyStats {
        self.expire(now);
        let since_us = self.first_slot(now).saturating_mul(SLOT.as_micros() as i64);
        let since = Timestamp::from_microsecond(since_us).unwrap_or(Timestamp::UNIX_EPOCH);
        let t = &self.total;
        ProxyStats::assemble(
            (since, now),
            Counts {
                requests: t.requests,
                fallbacks: t.fallbacks,
                errors: t.errors,
            },
            (t.duration_ms.percentiles(), t.ttfb_ms.percentiles()),
            ranked(&t.machines),
            ranked(&t.models),
        )
    }

    /// Starts over from `records` (those the database holds for the window).
    pub fn reset(&mut self, records: &[Record], now: Timestamp) {
        self.slots.clear();
        self.total = Sums::default();
        for r in records {
            self.add(r, now);
        }
    }

    #[cfg(test)]
    fn check_total(&self) {
        let mut sum = Sums::default();
        for (_, s) in &self.slots {
            sum.merge(s);
        }
        assert_eq!(sum.requests, self.total.requests);
        assert_eq!(sum.duration_ms.buckets, self.total.duration_ms.buckets);
        assert_eq!(sum.machines, self.total.machines);
        assert_eq!(sum.models, self.total.models);
    }
}

#[cfg(test)]
mod tests;
