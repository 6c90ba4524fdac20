use super::*;
use crate::usage::Usage;

fn t0() -> Timestamp {
    // On a slot boundary, so that the tests can say which slot is which.
    Timestamp::from_second(1_800_000_000).expect("time")
}

fn at(secs: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_secs(secs))
        .expect("time")
}

fn record(started: i64, machine: Option<&str>, model: &str, duration_ms: f64) -> Record {
    Record {
        started_at: at(started),
        client: "127.0.0.1".to_owned(),
        api: "ollama".to_owned(),
        endpoint: "/api/chat".to_owned(),
        requested_model: Some(model.to_owned()),
        machine: machine.map(str::to_owned),
        fallback_depth: 0,
        stream: false,
        usage: Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 1,
            cache_write_tokens: 0,
        }),
        ttfb_ms: Some(duration_ms / 2.0),
        duration_ms,
        status: 200,
        outcome: "ok".to_owned(),
        error: None,
    }
}

/// A deterministic spread of latencies over five decades.
fn latencies(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            0.05 * 10f64.powf((x % 10_000) as f64 / 2_000.0)
        })
        .collect()
}

#[test]
fn percentiles_are_within_half_a_percent_of_the_exact_ones() {
    let samples = latencies(5_000);
    let mut h = Histogram::default();
    for &s in &samples {
        h.add(s);
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let exact = super::super::stats::percentiles(&sorted).expect("samples");
    let approx = h.percentiles().expect("samples");
    assert_eq!(approx.samples, exact.samples);
    for (a, e) in [
        (approx.p50, exact.p50),
        (approx.p95, exact.p95),
        (approx.p99, exact.p99),
    ] {
        assert!((a - e).abs() / e <= 0.005, "{a} against {e}");
    }
    assert_eq!(Histogram::default().percentiles(), None);
    // Zero, negative and NaN durations land in the smallest bucket.
    let mut tiny = Histogram::default();
    for v in [0.0, -1.0, f64::NAN] {
        tiny.add(v);
    }
    assert_eq!(tiny.percentiles().map(|p| p.p99), Some(SMALLEST_MS));
}

#[test]
fn figures_sum_the_window_and_rank_as_the_query_does() {
    let mut live = LiveStats::new(SignedDuration::from_mins(15));
    let now = at(120);
    for i in 0..6 {
        live.add(&record(i * 10, Some("macmini"), "gpt-oss:20b", 100.0), now);
    }
    live.add(&record(30, Some("laptop"), "qwen3:8b", 200.0), now);
    live.add(&record(31, Some("laptop"), "gpt-oss:20b", 200.0), now);
    let mut failed = record(40, None, "qwen3:8b", 5.0);
    failed.outcome = "error".to_owned();
    failed.usage = None;
    failed.ttfb_ms = None;
    failed.fallback_depth = 2;
    live.add(&failed, now);
    live.check_total();

    let s = live.stats(now);
    assert_eq!(s.requests, 9);
    assert_eq!((s.fallbacks, s.errors), (1, 1));
    assert_eq!(s.until, now);
    // The window starts at the slot that holds now - 15 min.
    assert_eq!(s.since, at(120 - 900));
    assert!((s.requests_per_minute - 9.0 / 15.0).abs() < 1e-9);
    let machines: Vec<_> = s
        .machines
        .iter()
        .map(|m| (m.machine.as_deref(), m.requests))
        .collect();
    assert_eq!(
        machines,
        [(Some("macmini"), 6), (Some("laptop"), 2), (None, 1)]
    );
    assert!((s.machines[0].share - 6.0 / 9.0).abs() < 1e-9);
    assert_eq!(s.machines[0].tokens.input_tokens, 60);
    assert_eq!(s.machines[2].tokens, TokenSums::default());
    let models: Vec<_> = s
        .models
        .iter()
        .map(|m| (m.model.as_deref(), m.requests))
        .collect();
    assert_eq!(models, [(Some("gpt-oss:20b"), 7), (Some("qwen3:8b"), 2)]);
    assert_eq!(s.models[1].tokens.requests_with_usage, 1);
    let d = s.duration_ms.expect("durations");
    assert_eq!(d.samples, 9);
    assert!((d.p50 - 100.0).abs() / 100.0 <= 0.005, "{d:?}");
    assert!((d.p99 - 200.0).abs() / 200.0 <= 0.005, "{d:?}");
    assert_eq!(s.ttfb_ms.map(|p| p.samples), Some(8));
}

#[test]
fn slots_leave_the_window_whole_and_late_records_find_their_slot() {
    let mut live = LiveStats::new(SignedDuration::from_mins(15));
    // A long stream's record arrives after later ones: it goes in its slot.
    live.add(&record(300, Some("a"), "m", 10.0), at(301));
    live.add(&record(5, Some("b"), "m", 10.0), at(302));
    live.add(&record(600, Some("a"), "m", 10.0), at(601));
    live.check_total();
    let slots: Vec<i64> = live.slots.iter().map(|(i, _)| *i).collect();
    let mut sorted = slots.clone();
    sorted.sort_unstable();
    assert_eq!(slots, sorted);
    assert_eq!(live.stats(at(601)).requests, 3);

    // 15 min after the first slot ended, it has left; b with it.
    let s = live.stats(at(910));
    assert_eq!(s.requests, 2);
    assert!(s.machines.iter().all(|m| m.machine.as_deref() == Some("a")));
    live.check_total();
    // A record from before the window is left out.
    live.add(&record(0, Some("old"), "m", 10.0), at(910));
    assert_eq!(live.stats(at(910)).requests, 2);
    // Long after, nothing is left, and nothing lingers.
    let s = live.stats(at(5_000));
    assert_eq!(s.requests, 0);
    assert!(s.machines.is_empty() && s.models.is_empty());
    assert_eq!(s.duration_ms, None);
    assert!(live.slots.is_empty());
    assert_eq!(live.total.duration_ms.samples, 0);
}

#[test]
fn reset_starts_over_from_the_records_given() {
    let mut live = LiveStats::new(SignedDuration::from_mins(15));
    live.add(&record(0, Some("a"), "m", 10.0), at(1));
    live.reset(&[record(100, Some("b"), "m", 10.0)], at(101));
    let s = live.stats(at(101));
    assert_eq!(s.requests, 1);
    assert_eq!(s.machines[0].machine.as_deref(), Some("b"));
    assert_eq!(live.window(), SignedDuration::from_mins(15));
}

#[test]
fn made_up_model_names_beyond_the_cap_are_counted_together() {
    let mut live = LiveStats::new(SignedDuration::from_mins(15));
    let now = at(100);
    let n = MAX_GROUPS + 44;
    for i in 0..n {
        // Over several slots, so that slots and the total must agree.
        live.add(
            &record((i % 90) as i64, Some("a"), &format!("made-up-{i}"), 1.0),
            now,
        );
    }
    live.check_total();
    let s = live.stats(now);
    assert_eq!(s.requests, n as u64);
    assert_eq!(s.models.len(), MAX_GROUPS + 1);
    let others = s
        .models
        .iter()
        .find(|m| m.model.as_deref() == Some(OTHERS_NAME))
        .expect("the others' group");
    assert_eq!(others.requests, 44);
    assert_eq!(others.tokens.input_tokens, 44 * 10);
    // A model already counted apart stays apart.
    live.add(&record(95, Some("a"), "made-up-0", 1.0), now);
    let s = live.stats(now);
    let first = s
        .models
        .iter()
        .find(|m| m.model.as_deref() == Some("made-up-0"));
    assert_eq!(first.map(|m| m.requests), Some(2));
    // Every slot leaves whole: nothing lingers, the others' group included.
    let s = live.stats(at(2_000));
    assert_eq!(s.requests, 0);
    assert!(
        s.models.is_empty() && s.machines.is_empty(),
        "{:?}",
        s.models
    );
}
