//! Cost estimates end to end: a real ledger (SQLite, written through the
//! ledger's writer), real transcript files, the engine's figures checked to
//! the cent against sums worked out by hand, month and time-zone
//! boundaries, counting once, unpriced models, the alarms firing once per
//! crossing, and the CLI and API on top.

use std::path::{Path, PathBuf};

use clawfleet::config;
use clawfleet::cost::alarm::PeerSpend;
use clawfleet::cost::engine::{CostEvent, Engine, Settings};
use clawfleet::cost::report::Month;
use clawfleet::fleet::Fleet;
use clawfleet::ledger::{Ledger, Record};
use clawfleet::proxy::usage::Usage;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::support::{self, TestConfig, clawfleet};

/// A fleet of one machine, `mini`, with everything in `dir`.
struct Setup {
    dir: tempfile::TempDir,
    config: config::Config,
}

impl Setup {
    /// The setup, its day and month in UTC.
    fn utc() -> Setup {
        Setup::with(|c| c.set("costs", "time_zone", "UTC"))
    }

    /// The setup, with `edit` made to its config (`[costs]` keys).
    fn with(edit: impl FnOnce(TestConfig) -> TestConfig) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("clawdbot/agents")).expect("agents dir");
        std::fs::write(
            d.join("clawdbot/clawdbot.json"),
            r#"{ models: { providers: {
                "ollama-macmini": { baseUrl: "http://100.115.10.14:11434/v1", api: "openai-completions", models: [] },
                "loopback-llm": { baseUrl: "http://127.0.0.1:8080/v1", api: "openai-completions", models: [] },
                "anthropic": { baseUrl: "https://api.anthropic.com", api: "anthropic-messages", models: [] },
            } } }"#,
        )
        .expect("clawdbot.json");
        let config = edit(
            TestConfig::new("mini", &d.join("data"))
                .set("openclaw", "config_path", d.join("clawdbot/clawdbot.json"))
                .set("costs", "transcripts_dir", d.join("clawdbot/agents"))
                .set("costs", "prices_path", d.join("prices.toml")),
        )
        .machine(
            "mini",
            "Mac Mini",
            r#"tailnet_ip = "100.115.10.14"
            ollama_url = "http://127.0.0.1:9"
            monthly_budget_usd = 10"#,
        );
        config.write(&d.join("config.toml"));
        Setup {
            dir,
            config: config.config(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn settings(&self) -> Settings {
        let fleet = Fleet::resolve(&self.config, "mini-host");
        Settings::from_config(&self.config, &fleet.this, None)
    }

    fn engine(&self) -> Engine {
        Engine::open(self.settings()).expect("engine opens")
    }

    fn ledger_path(&self) -> PathBuf {
        self.path()
            .join("data")
            .join(clawfleet::daemon::LEDGER_FILE)
    }

    /// Stores `records` in the ledger, committed.
    fn ledger(&self, records: Vec<Record>) {
        let ledger = Ledger::open(&self.ledger_path()).expect("ledger opens");
        let handle = ledger.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            for r in records {
                handle.record(r).await.expect("record stored");
            }
        });
        ledger.close().expect("ledger closes");
    }

    /// Appends `lines` to the transcript of `agent`/`session`.
    fn transcript(&self, agent: &str, session: &str, lines: &[Value]) {
        use std::io::Write;
        let dir = self
            .path()
            .join("clawdbot/agents")
            .join(agent)
            .join("sessions");
        std::fs::create_dir_all(&dir).expect("sessions dir");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{session}.jsonl")))
            .expect("transcript");
        for line in lines {
            writeln!(f, "{line}").expect("write line");
        }
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
    }
}

/// A ledger record of a request that finished well.
fn request(at: &str, api: &str, model: &str, machine: &str, u: Usage) -> Record {
    Record {
        started_at: ts(at),
        client: "127.0.0.1 OpenAI/JS 6.1.0".into(),
        api: api.into(),
        endpoint: if api == "anthropic" {
            "/v1/messages".into()
        } else {
            "/v1/chat/completions".into()
        },
        requested_model: Some(model.into()),
        machine: Some(machine.into()),
        fallback_depth: 0,
        stream: true,
        usage: Some(u),
        ttfb_ms: Some(10.0),
        duration_ms: 100.0,
        status: 200,
        outcome: "ok".into(),
        error: None,
    }
}

/// Checks the alarms against the month and leak window at `now`: the
/// crossings since the last check.
fn alarms(
    engine: &mut Engine,
    now: Timestamp,
    local_healthy: bool,
    peers: &PeerSpend,
) -> Vec<CostEvent> {
    let r = engine.current(now).expect("report");
    let share = engine.share(now).expect("share");
    engine
        .check_alarms(&r, &share, local_healthy, peers, now)
        .expect("alarms")
}

/// A transcript line of an assistant turn, in Clawdbot's format.
fn turn(at: &str, provider: &str, model: &str, api: &str, u: Usage) -> Value {
    let ms = ts(at).as_millisecond();
    json!({
        "type": "message",
        "timestamp": at,
        "message": {
            "role": "assistant",
            "content": [{"type": "text", "text": "ok"}],
            "provider": provider,
            "model": model,
            "api": api,
            "usage": {
                "input": u.input_tokens, "output": u.output_tokens,
                "cacheRead": u.cache_read_tokens, "cacheWrite": u.cache_write_tokens,
                "totalTokens": u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens,
                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0}
            },
            "stopReason": "stop",
            "timestamp": ms
        }
    })
}

fn user(at: &str) -> Value {
    json!({"type": "message", "timestamp": at, "message": {"role": "user", "content": [{"type": "text", "text": "hi"}], "timestamp": ts(at).as_millisecond()}})
}

fn cents(usd: f64) -> i64 {
    (usd * 100.0).round() as i64
}

fn month(s: &str) -> Month {
    Month::parse(s).expect("month")
}

#[test]
fn known_totals_to_the_cent_with_each_request_counted_once() {
    let s = Setup::utc();
    s.ledger(vec![
        // Sonnet 4.5 through the proxy: 1M in, 100k out, 2M cache read,
        // 200k cache write. The prompt (3.2M) is above 200k, so every token
        // pays the long-context rates: 6 + 2.25 + 1.2 + 1.5 = $10.95.
        request(
            "2026-11-03T10:00:00Z",
            "anthropic",
            "claude-sonnet-4-5",
            "anthropic",
            usage(1_000_000, 100_000, 2_000_000, 200_000),
        ),
        // Local: free, 5,000 + 500 tokens each, served by mini.
        request(
            "2026-11-03T11:00:00Z",
            "openai",
            "gpt-oss:20b",
            "mini",
            usage(5_000, 500, 0, 0),
        ),
        request(
            "2026-11-04T11:00:00Z",
            "ollama",
            "gpt-oss:20b",
            "mini",
            usage(5_000, 500, 0, 0),
        ),
    ]);
    s.transcript(
        "main",
        "s1",
        &[
            user("2026-11-05T09:00:00Z"),
            // Direct Opus 4.5: 200k in, 20k out = 1.00 + 0.50 = $1.50.
            turn(
                "2026-11-05T09:00:05Z",
                "anthropic",
                "claude-opus-4-5",
                "anthropic-messages",
                usage(200_000, 20_000, 0, 0),
            ),
            // The local request of 2026-11-03 11:00, as Clawdbot saw it
            // (5 s later): in the ledger too, counted once.
            turn(
                "2026-11-03T11:00:05Z",
                "ollama-macmini",
                "gpt-oss:20b",
                "openai-completions",
                usage(5_000, 500, 0, 0),
            ),
            // A local turn that bypassed the proxy (provider points at the
            // Mac Mini's Ollama): free, from the transcript.
            turn(
                "2026-11-06T12:00:00Z",
                "ollama-macmini",
                "qwen3:8b",
                "openai-completions",
                usage(1_000, 100, 0, 0),
            ),
        ],
    );
    let mut engine = s.engine();
    let ingest = engine
        .ingest()
        .expect("ingest")
        .expect("transcripts enabled");
    assert_eq!(ingest.turns_added, 3);
    let r = engine
        .month(month("2026-11"), ts("2026-11-24T12:00:00Z"))
        .expect("report");
    assert_eq!(cents(r.month_to_date_usd), 1245, "10.95 + 1.50");
    assert_eq!(r.sources.ledger_requests, 3);
    assert_eq!(r.sources.transcript_turns, 2);
    assert_eq!(r.sources.counted_once, 1);
    assert_eq!(r.local.requests, 3);
    assert_eq!(r.local.total, 5_500 * 2 + 1_100);
    assert_eq!(r.cloud.requests, 2);
    assert!(r.unpriced.is_empty(), "{:?}", r.unpriced);
    // Savings: the local tokens on Sonnet 5.5 (2 in / 10 out per MTok):
    // 11,000 in + 1,100 out... = (10,000 + 1,000) * 2 + (1,000 + 100) * 10 per MTok.
    let want = ((10_000.0 + 1_000.0) * 2.0 + (1_000.0 + 100.0) * 10.0) / 1e6;
    assert!((r.savings_usd.expect("savings") - want).abs() < 1e-9);
    // Per model, most expensive first.
    assert_eq!(r.by_model[0].model, "claude-sonnet-4-5");
    assert_eq!(cents(r.by_model[0].usd.expect("priced")), 1095);
    assert_eq!(r.by_model[1].model, "claude-opus-4-5");
    let served: Vec<_> = r
        .served_by
        .iter()
        .map(|s| (s.machine.as_str(), s.tokens.requests))
        .collect();
    assert_eq!(
        served,
        vec![("mini", 3)],
        "ledger rows and the provider's baseUrl both name mini"
    );
    // Daily: Nov 3 holds the Sonnet request.
    assert_eq!(cents(r.daily[2].usd), 1095);
    assert_eq!(r.daily[2].date.to_string(), "2026-11-03");
    assert_eq!(r.daily.len(), 24, "1st to today");
    // Budget of $10: 124.5% used.
    let b = r.budget.expect("budget");
    assert!((b.percent - 124.5).abs() < 1e-9);

    // A restart reads nothing again and finds the same figures.
    drop(engine);
    let mut engine = s.engine();
    let again = engine.ingest().expect("ingest").expect("enabled");
    assert_eq!(again.turns_added, 0);
    let r2 = engine
        .month(month("2026-11"), ts("2026-11-24T12:00:00Z"))
        .expect("report");
    assert_eq!(cents(r2.month_to_date_usd), 1245);
    assert_eq!(r2.sources.counted_once, 1);
}

#[test]
fn months_and_days_follow_the_configured_time_zone() {
    let s = Setup::with(|c| c.set("costs", "time_zone", "America/New_York"));
    // Sonnet 5: $2 per MTok in; 500k in = $1.
    let dollar = usage(500_000, 0, 0, 0);
    s.ledger(vec![
        // 2026-10-31 23:30 in New York (EDT, -4): October.
        request(
            "2026-11-01T03:30:00Z",
            "anthropic",
            "claude-sonnet-5",
            "anthropic",
            dollar,
        ),
        // 2026-11-01 00:30 in New York: November.
        request(
            "2026-11-01T04:30:00Z",
            "anthropic",
            "claude-sonnet-5",
            "anthropic",
            dollar,
        ),
        // 2026-11-23 23:59 in New York (EST, -5): the 23rd, not the 24th.
        request(
            "2026-11-24T04:59:00Z",
            "anthropic",
            "claude-sonnet-5",
            "anthropic",
            dollar,
        ),
        // 2026-12-01 00:10 in New York: December.
        request(
            "2026-12-01T05:10:00Z",
            "anthropic",
            "claude-sonnet-5",
            "anthropic",
            dollar,
        ),
    ]);
    let mut engine = s.engine();
    let nov = engine
        .month(month("2026-11"), ts("2026-12-10T00:00:00Z"))
        .expect("november");
    assert!(!nov.in_progress);
    assert_eq!(cents(nov.month_to_date_usd), 200);
    assert_eq!(cents(nov.previous_month_usd), 100, "October had one");
    assert_eq!(nov.change_percent, Some(100.0));
    assert!(nov.projection.is_none(), "a past month is not projected");
    let day = |d: &str| {
        nov.daily
            .iter()
            .find(|x| x.date.to_string() == d)
            .map(|x| cents(x.usd))
    };
    assert_eq!(day("2026-11-01"), Some(100));
    assert_eq!(day("2026-11-23"), Some(100));
    assert_eq!(day("2026-11-24"), Some(0));
    assert_eq!(nov.daily.len(), 30);
    assert_eq!(nov.time_zone, "America/New_York");

    let oct = engine
        .month(month("2026-10"), ts("2026-12-10T00:00:00Z"))
        .expect("october");
    assert_eq!(cents(oct.month_to_date_usd), 100);
    let dec = engine
        .month(month("2026-12"), ts("2026-12-10T00:00:00Z"))
        .expect("december");
    assert_eq!(cents(dec.month_to_date_usd), 100);
    assert_eq!(cents(dec.previous_month_usd), 200);
    assert!(dec.in_progress);
}

#[test]
fn projection_uses_the_recent_daily_rate_with_a_range() {
    let s = Setup::utc();
    // $1..$7 on the 13th..19th; $3 today (the 20th).
    let mut records = Vec::new();
    for (i, day) in (13..=19).enumerate() {
        for _ in 0..=i {
            records.push(request(
                &format!("2026-11-{day}T10:00:00Z"),
                "anthropic",
                "claude-sonnet-5",
                "anthropic",
                usage(500_000, 0, 0, 0),
            ));
        }
    }
    for _ in 0..3 {
        records.push(request(
            "2026-11-20T08:00:00Z",
            "anthropic",
            "claude-sonnet-5",
            "anthropic",
            usage(500_000, 0, 0, 0),
        ));
    }
    s.ledger(records);
    let mut engine = s.engine();
    let r = engine
        .month(month("2026-11"), ts("2026-11-20T12:00:00Z"))
        .expect("report");
    assert_eq!(cents(r.month_to_date_usd), 3100, "1+2+...+7 + 3");
    assert_eq!(r.today_usd.map(cents), Some(300));
    let p = r.projection.expect("projection");
    // 10.5 days left; mean $4/day; quartiles of 1..7 are 2.5 and 5.5.
    assert!((p.days_left - 10.5).abs() < 1e-9, "{}", p.days_left);
    assert_eq!(cents(p.expected_usd), 3100 + 4200);
    assert_eq!(cents(p.low_usd), 3100 + 2625);
    assert_eq!(cents(p.high_usd), 3100 + 5775);
    assert!(p.basis.contains("last 7 full day"), "{}", p.basis);
    // $72.00 expected against a $10 budget.
    assert!(r.budget.expect("budget").projected_over);
}

#[test]
fn unpriced_models_are_counted_and_flagged_never_free() {
    let s = Setup::utc();
    s.transcript(
        "main",
        "s1",
        &[
            turn(
                "2026-11-10T10:00:00Z",
                "openrouter",
                "mystery-model-9",
                "openai-completions",
                usage(1_000, 200, 0, 0),
            ),
            turn(
                "2026-11-10T10:01:00Z",
                "anthropic",
                "claude-haiku-4-5",
                "anthropic-messages",
                usage(1_000_000, 0, 0, 0),
            ),
        ],
    );
    let mut engine = s.engine();
    engine.ingest().expect("ingest");
    let r = engine
        .month(month("2026-11"), ts("2026-11-24T00:00:00Z"))
        .expect("report");
    assert_eq!(cents(r.month_to_date_usd), 100, "only Haiku's $1");
    assert_eq!(r.cloud.requests, 2, "the unpriced request is still counted");
    assert_eq!(r.unpriced.len(), 1);
    assert_eq!(r.unpriced[0].model, "mystery-model-9");
    assert_eq!(r.unpriced[0].tokens.total, 1_200);
    assert!(
        r.flags
            .iter()
            .any(|f| f.contains("mystery-model-9") && f.contains("no price")),
        "{:?}",
        r.flags
    );
    let m = r
        .by_model
        .iter()
        .find(|m| m.model == "mystery-model-9")
        .expect("listed");
    assert_eq!(m.usd, None, "unpriced is not $0");

    // Priced by a user file: the figure moves, the flag goes.
    std::fs::write(
        s.path().join("prices.toml"),
        "[[price]]\nmodel = \"mystery-model-9\"\ninput = 1000\noutput = 0\ncache_read = 0\ncache_write = 0\n",
    )
    .expect("prices");
    let mut engine = s.engine();
    let r = engine
        .month(month("2026-11"), ts("2026-11-24T00:00:00Z"))
        .expect("report");
    assert_eq!(
        cents(r.month_to_date_usd),
        200,
        "$1 + 1,000 tokens at $1,000/MTok"
    );
    assert!(r.unpriced.is_empty());
}

#[test]
fn a_price_file_with_a_typo_is_a_located_error() {
    let s = Setup::with(|c| c);
    std::fs::write(
        s.path().join("prices.toml"),
        "[[price]]\nmodel = \"x\"\ninput = 1\noutptu = 2\ncache_read = 0\ncache_write = 0\n",
    )
    .expect("prices");
    let err = Engine::open(s.settings()).expect_err("typo refused");
    let text = err.to_string();
    assert!(text.contains("prices.toml:4:"), "{text}");
    assert!(text.contains("outptu"), "{text}");

    let out = clawfleet(&s.path().join("config.toml"))
        .args(["config", "check"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prices.toml:4:"), "{stderr}");
}

#[test]
fn requests_dated_after_now_are_flagged_not_counted() {
    let s = Setup::utc();
    s.ledger(vec![
        request(
            "2026-11-10T10:00:00Z",
            "anthropic",
            "claude-sonnet-5",
            "anthropic",
            usage(500_000, 0, 0, 0),
        ),
        // The clock had jumped ahead when this was written.
        request(
            "2026-11-28T10:00:00Z",
            "anthropic",
            "claude-sonnet-5",
            "anthropic",
            usage(500_000, 0, 0, 0),
        ),
    ]);
    let mut engine = s.engine();
    let r = engine
        .month(month("2026-11"), ts("2026-11-20T00:00:00Z"))
        .expect("report");
    assert_eq!(cents(r.month_to_date_usd), 100);
    assert!(
        r.flags.iter().any(|f| f.contains("dated after now")),
        "{:?}",
        r.flags
    );
}

#[test]
fn two_identical_turns_and_one_ledger_row_count_twice_not_once_or_thrice() {
    let s = Setup::utc();
    let u = usage(100_000, 10_000, 0, 0);
    s.ledger(vec![request(
        "2026-11-10T10:00:00Z",
        "anthropic",
        "claude-opus-4-5",
        "anthropic",
        u,
    )]);
    s.transcript(
        "main",
        "s1",
        &[
            turn(
                "2026-11-10T10:00:03Z",
                "clawfleet",
                "claude-opus-4-5",
                "anthropic-messages",
                u,
            ),
            turn(
                "2026-11-10T10:00:09Z",
                "anthropic",
                "claude-opus-4-5",
                "anthropic-messages",
                u,
            ),
        ],
    );
    let mut engine = s.engine();
    engine.ingest().expect("ingest");
    let r = engine
        .month(month("2026-11"), ts("2026-11-24T00:00:00Z"))
        .expect("report");
    assert_eq!(r.sources.counted_once, 1);
    assert_eq!(r.cloud.requests, 2);
    // 2 × (0.5 + 0.25).
    assert_eq!(cents(r.month_to_date_usd), 150);
}

#[test]
fn alarms_fire_once_per_crossing_and_survive_a_restart() {
    let s = Setup::with(|c| {
        c.set("costs", "time_zone", "UTC")
            .set("costs", "daily_budget_usd", 2)
            .set("costs.leak", "cloud_share_percent", 20)
            .set("costs.leak", "window_mins", 60)
            .set("costs.leak", "min_tokens", 1000)
    });
    let now = ts("2026-11-20T12:00:00Z");
    // $4 earlier this month: under the $10 budget.
    s.ledger(vec![request(
        "2026-11-05T10:00:00Z",
        "anthropic",
        "claude-sonnet-5",
        "anthropic",
        usage(2_000_000, 0, 0, 0),
    )]);
    let mut engine = s.engine();
    let events = alarms(&mut engine, now, true, &PeerSpend::default());
    assert!(events.is_empty(), "{events:?}");

    // $8 more today: over the monthly and the daily budget; and in the last
    // hour everything went to the cloud while local models were up.
    s.ledger(vec![request(
        "2026-11-20T11:30:00Z",
        "anthropic",
        "claude-sonnet-5",
        "anthropic",
        usage(4_000_000, 0, 0, 0),
    )]);
    let r = engine.current(now).expect("report");
    let share = engine.share(now).expect("share");
    assert_eq!(share.cloud_percent, Some(100.0));
    let events = engine
        .check_alarms(&r, &share, true, &PeerSpend::default(), now)
        .expect("alarms");
    let mut kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec!["budget", "credit_leak", "daily_budget"],
        "{events:?}"
    );
    let budget = events.iter().find(|e| e.kind == "budget").expect("budget");
    assert!(budget.active);
    assert_eq!(budget.alarm, "budget:mini:2026-11");
    assert!(budget.message.contains("$12.00"), "{}", budget.message);
    assert!(budget.message.contains("$10.00"), "{}", budget.message);

    // The next cycle: still over, no new events.
    let events = alarms(&mut engine, now, true, &PeerSpend::default());
    assert!(events.is_empty(), "{events:?}");
    // After a restart: still none.
    drop(engine);
    let mut engine = s.engine();
    let events = alarms(&mut engine, now, true, &PeerSpend::default());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(engine.active_alarms().expect("active").len(), 3);

    // An hour later with no cloud traffic: the leak ends, once.
    let later = ts("2026-11-20T13:00:01Z");
    s.ledger(vec![request(
        "2026-11-20T12:30:00Z",
        "ollama",
        "gpt-oss:20b",
        "mini",
        usage(50_000, 5_000, 0, 0),
    )]);
    let events = alarms(&mut engine, later, true, &PeerSpend::default());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "credit_leak");
    assert!(!events[0].active);
    // The event log holds all four, newest first.
    let log = engine.events(10).expect("events");
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].kind, "credit_leak");
    assert!(!log[0].active);

    // A new month is a new budget alarm: quiet while under budget.
    let december = ts("2026-12-02T12:00:00Z");
    let events = alarms(&mut engine, december, true, &PeerSpend::default());
    assert!(events.iter().all(|e| e.kind != "budget"), "{events:?}");
}

#[test]
fn no_leak_alarm_while_local_models_are_down() {
    let s = Setup::utc();
    let now = ts("2026-11-20T12:00:00Z");
    s.ledger(vec![request(
        "2026-11-20T11:30:00Z",
        "anthropic",
        "claude-haiku-4-5",
        "anthropic",
        usage(10_000, 1_000, 0, 0),
    )]);
    let mut engine = s.engine();
    let events = alarms(&mut engine, now, false, &PeerSpend::default());
    assert!(events.iter().all(|e| e.kind != "credit_leak"), "{events:?}");
}

#[test]
fn the_costs_command_prints_the_table_and_json() {
    let s = Setup::utc();
    s.ledger(vec![request(
        "2026-10-05T10:00:00Z",
        "anthropic",
        "claude-sonnet-5",
        "anthropic",
        usage(1_000_000, 0, 0, 0),
    )]);
    let run = |args: &[&str]| {
        clawfleet(&s.path().join("config.toml"))
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["costs", "--month", "2026-10"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Costs for 2026-10 (UTC)"), "{text}");
    assert!(text.contains("| Mac Mini"), "{text}");
    assert!(text.contains("$2.00"), "{text}");
    assert!(text.contains("Fleet total (1 of 1)"), "{text}");

    let out = run(&["costs", "--json", "--month", "2026-10"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["month"], "2026-10");
    assert_eq!(v["machines"][0]["machine"], "mini");
    assert_eq!(v["machines"][0]["report"]["month_to_date_usd"], 2.0);
    assert_eq!(v["fleet"]["month_to_date_usd"], 2.0);

    let out = run(&["costs", "--month", "2026-13"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM"));
}

#[test]
fn the_api_serves_costs_and_the_snapshot_and_metrics_carry_them() {
    let s = Setup::with(|c| {
        c.set("costs", "time_zone", "UTC")
            .set("costs", "interval_secs", 5)
            .set("costs", "daily_budget_usd", 0.5)
    });
    let now = Timestamp::now();
    // A few minutes ago, but today (UTC) even just after midnight: the
    // daily budget's alarm is about today.
    let since_midnight = now.duration_since(
        now.to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .start_of_day()
            .expect("midnight")
            .timestamp(),
    );
    let at = now
        .checked_sub(jiff::SignedDuration::from_mins(5).min(since_midnight / 2))
        .expect("time");
    s.ledger(vec![request(
        &at.to_string(),
        "anthropic",
        "claude-sonnet-5",
        "anthropic",
        usage(500_000, 0, 0, 0),
    )]);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(api_serves_costs(s));
}

async fn api_serves_costs(s: Setup) {
    let running = clawfleet::daemon::start(s.config.clone())
        .await
        .expect("daemon");
    let base = format!("http://{}", running.api_addrs[0]);
    let client = reqwest::Client::new();

    let v: Value = client
        .get(format!("{base}/fleet/v1/costs"))
        .send()
        .await
        .expect("costs")
        .json()
        .await
        .expect("json");
    assert_eq!(v["machines"][0]["machine"], "mini");
    assert_eq!(v["machines"][0]["report"]["month_to_date_usd"], 1.0);

    let bad = client
        .get(format!("{base}/fleet/v1/costs?month=2026-1"))
        .send()
        .await
        .expect("bad month");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json error");
    assert!(body["error"].as_str().unwrap_or("").contains("YYYY-MM"));

    // The first cycle runs at start: the snapshot gets this machine's costs.
    let snap = support::until(&running, 20, "costs in the snapshot", |s| {
        s.machines[0].costs.is_some()
    })
    .await;
    let c = snap.machines[0].costs.as_ref().expect("costs");
    assert_eq!(c.error, None);
    assert_eq!(cents(c.month_to_date_usd), 100);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("clawfleet_cost_month_to_date_usd{machine=\"mini\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("clawfleet_cost_budget_usd{machine=\"mini\"} 10"),
        "{metrics}"
    );

    // $1 today against a daily budget of $0.50: one alarm, in the event log
    // beside the heal events, listed by the API.
    let events = support::poll(
        20,
        "a cost alarm in the event log",
        || async {
            client
                .get(format!("{base}/fleet/v1/events"))
                .send()
                .await
                .expect("events")
                .json::<Vec<Value>>()
                .await
                .expect("events json")
        },
        |events| events.iter().any(|e| e["kind"] == "cost_alarm"),
    )
    .await;
    let alarm = events
        .iter()
        .find(|e| e["kind"] == "cost_alarm")
        .expect("the alarm");
    assert_eq!(alarm["severity"], "warning", "{alarm:#}");
    assert_eq!(alarm["detail"]["active"], true, "{alarm:#}");
    assert!(
        alarm["message"]
            .as_str()
            .is_some_and(|m| m.contains("daily")),
        "{alarm:#}"
    );
    running.shutdown().await;
}

/// The fleet's monthly budget is over this machine's spend and what the
/// peers that sent figures spent, said with how many machines reported.
#[test]
fn the_fleet_budget_counts_the_peers_spend() {
    let s = Setup::with(|c| {
        c.set("costs", "time_zone", "UTC")
            .set("costs", "monthly_budget_usd", 5)
    });
    let now = ts("2026-11-20T12:00:00Z");
    // $4 here: under the fleet's $5 alone.
    s.ledger(vec![request(
        "2026-11-05T10:00:00Z",
        "anthropic",
        "claude-sonnet-5",
        "anthropic",
        usage(2_000_000, 0, 0, 0),
    )]);
    let mut engine = s.engine();
    let events = alarms(&mut engine, now, true, &PeerSpend::default());
    assert!(events.is_empty(), "{events:?}");
    // Two peers spent $1.50 between them: $5.50 in all.
    let peers = PeerSpend {
        month_to_date_usd: 1.5,
        machines: 2,
    };
    let events = alarms(&mut engine, now, true, &peers);
    let fleet = events
        .iter()
        .find(|e| e.alarm == "budget:fleet:2026-11")
        .unwrap_or_else(|| panic!("no fleet budget alarm: {events:?}"));
    assert!(fleet.active);
    assert!(
        fleet.message.contains(
            "the fleet has spent $5.50 in 2026-11 (3 machines reporting), over its $5.00"
        ),
        "{}",
        fleet.message
    );
    // The peers' figures fall back (a new month on their side): it ends.
    let events = alarms(&mut engine, now, true, &PeerSpend::default());
    assert!(
        events
            .iter()
            .any(|e| e.alarm == "budget:fleet:2026-11" && !e.active),
        "{events:?}"
    );
}

#[test]
fn costs_per_agent_model_and_session_to_the_cent_in_the_json_and_the_table() {
    let s = Setup::utc();
    let opus = |at| {
        turn(
            at,
            "anthropic",
            "claude-opus-4-5",
            "anthropic-messages",
            usage(100_000, 10_000, 0, 0),
        )
    };
    s.transcript(
        "main",
        "s1",
        &[
            opus("2026-11-10T10:00:00Z"), // $0.75
            opus("2026-11-11T10:00:00Z"), // $0.75
            // Local (Mac Mini's Ollama): free.
            turn(
                "2026-11-11T11:00:00Z",
                "ollama-macmini",
                "qwen3:8b",
                "openai-completions",
                usage(1_000, 100, 0, 0),
            ),
            // Last month: not in November's figures.
            opus("2026-10-30T10:00:00Z"),
        ],
    );
    s.transcript(
        "main",
        "s2",
        &[
            // Above Sonnet 4.5's 200k-token tier: 250k × $6 + 10k × $22.5 = $1.725.
            turn(
                "2026-11-12T10:00:00Z",
                "anthropic",
                "claude-sonnet-4-5",
                "anthropic-messages",
                usage(250_000, 10_000, 0, 0),
            ),
            // Same model and day, below it: 100k × $3 + 10k × $15 = $0.45.
            turn(
                "2026-11-12T11:00:00Z",
                "anthropic",
                "claude-sonnet-4-5",
                "anthropic-messages",
                usage(100_000, 10_000, 0, 0),
            ),
        ],
    );
    s.transcript(
        "helper",
        "h1",
        &[
            turn(
                "2026-11-13T10:00:00Z",
                "anthropic",
                "claude-opus-4-5",
                "anthropic-messages",
                usage(1_000_000, 0, 0, 0),
            ), // $5
            turn(
                "2026-11-13T11:00:00Z",
                "anthropic",
                "mystery-model",
                "anthropic-messages",
                usage(10, 10, 0, 0),
            ),
        ],
    );
    let mut engine = s.engine();
    engine.ingest().expect("ingest");
    let r = engine
        .month(month("2026-11"), ts("2026-11-24T00:00:00Z"))
        .expect("report");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert_eq!(r.by_agent.len(), 2);
    let helper = &r.by_agent[0];
    assert_eq!(helper.agent, "helper", "the most expensive first");
    assert!(close(helper.usd, 5.0), "{}", helper.usd);
    assert_eq!(helper.unpriced_requests, 1);
    assert_eq!(helper.reported_usd, Some(0.0));
    let main = &r.by_agent[1];
    assert!(close(main.usd, 0.75 + 0.75 + 1.725 + 0.45), "{}", main.usd);
    assert_eq!((main.local.requests, main.cloud.requests), (1, 4));
    assert_eq!(main.sessions, 2);
    let sessions: Vec<(&str, f64)> = main
        .top_sessions
        .iter()
        .map(|s| (s.session.as_str(), s.usd))
        .collect();
    assert_eq!(sessions.len(), 2);
    assert_eq!((sessions[0].0, sessions[1].0), ("s2", "s1"));
    assert!(
        close(sessions[0].1, 2.175) && close(sessions[1].1, 1.5),
        "{sessions:?}"
    );
    assert_eq!(
        main.top_sessions[1].tokens.requests, 3,
        "local turns are the session's too"
    );
    let models: Vec<(&str, Option<f64>, bool)> = main
        .by_model
        .iter()
        .map(|m| (m.model.as_str(), m.usd, m.local))
        .collect();
    assert_eq!(models.len(), 3);
    assert_eq!(models[0].0, "claude-sonnet-4-5");
    assert!(close(models[0].1.expect("priced"), 2.175));
    assert_eq!(models[1].0, "claude-opus-4-5");
    assert_eq!(models[2], ("qwen3:8b", Some(0.0), true));
    // The machine's total agrees with the agents' (no proxy here).
    assert_eq!(cents(r.month_to_date_usd), cents(helper.usd + main.usd));

    let run = |args: &[&str]| {
        clawfleet(&s.path().join("config.toml"))
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["costs", "--json", "--month", "2026-11"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let agents = &v["machines"][0]["report"]["by_agent"];
    assert_eq!(agents[0]["agent"], "helper");
    assert_eq!(agents[1]["agent"], "main");
    assert_eq!(agents[1]["top_sessions"][0]["session"], "s2");
    assert_eq!(agents[1]["by_model"][0]["model"], "claude-sonnet-4-5");
    assert!(
        v["machines"][0]["report"]["by_model"].is_array(),
        "the old fields stay"
    );
    let out = run(&["costs", "--month", "2026-11"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("By agent"), "{text}");
    assert!(
        text.contains("helper") && text.contains("$5.00 + unpriced"),
        "{text}"
    );
    assert!(text.contains("top session s2 $2.18"), "{text}");
}
