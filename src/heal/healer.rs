//! The Healer: every hour, reads the last day of events and explains
//! patterns in plain words — an Ollama that keeps being restarted while
//! memory is full, a pm2 app that keeps failing, a finding that flaps — and
//! proposes (or, in `auto` mode, takes) the action that addresses the cause.

use crate::every::Every;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::watcher::Watcher;
use crate::action::{self, Action};
use crate::config::HealMode;
use crate::events::{Event, Kind, Severity};

/// A pattern found in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Stable key (`oom`, `crash-loop:aphos-server`), to say it once a day.
    pub key: String,
    /// In plain words, with what to do.
    pub message: String,
    /// The action that addresses the cause, if one does.
    pub action: Option<Action>,
}

fn outcomes<'a>(events: &'a [Event], name: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
    events
        .iter()
        .filter(move |e| e.kind == Kind::Outcome && e.action.as_deref() == Some(name))
}

/// The patterns in `events` (oldest first) as of `now`.
pub fn diagnose(events: &[Event], now: Timestamp) -> Vec<Diagnosis> {
    let hour_ago = now
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let mut out = Vec::new();

    // Ollama restarted again and again with memory nearly full.
    let restarts: Vec<&Event> = outcomes(events, "restart-ollama")
        .filter(|e| e.at >= hour_ago)
        .collect();
    let memory: Vec<f64> = restarts
        .iter()
        .filter_map(|e| e.detail.as_ref()?.get("memory_percent")?.as_f64())
        .collect();
    if restarts.len() >= 3 && memory.len() == restarts.len() && memory.iter().all(|m| *m >= 90.0) {
        let model = restarts
            .iter()
            .rev()
            .filter_map(|e| {
                e.detail
                    .as_ref()?
                    .get("loaded")?
                    .as_array()?
                    .first()?
                    .as_str()
                    .map(str::to_owned)
            })
            .next();
        let low = memory.iter().copied().fold(f64::INFINITY, f64::min);
        let high = memory.iter().copied().fold(0.0, f64::max);
        out.push(Diagnosis {
            key: "oom".into(),
            message: format!(
                "Ollama was restarted {} times in the last hour with memory at {low:.0}–{high:.0}% each time: it is running out of memory. {}",
                restarts.len(),
                match &model {
                    Some(m) => format!("Unload {m} or use a smaller model."),
                    None => "Use a smaller model or load fewer at once.".to_owned(),
                }
            ),
            action: model
                .filter(|m| action::check_model(m).is_ok())
                .map(|model| Action::UnloadModel { model }),
        });
    }

    // A pm2 app that keeps failing.
    let mut per_app: BTreeMap<String, usize> = BTreeMap::new();
    for e in outcomes(events, "restart-pm2-app") {
        if let Some(app) = e
            .subject
            .as_deref()
            .and_then(|s| s.strip_prefix("restart-pm2-app:"))
        {
            *per_app.entry(app.to_owned()).or_default() += 1;
        }
    }
    for (app, n) in per_app.into_iter().filter(|(_, n)| *n >= 3) {
        out.push(Diagnosis {
            key: format!("crash-loop:{app}"),
            message: format!(
                "pm2 app {app} was restarted {n} times in a day: restarting does not fix it. Its logs (`pm2 logs {app}`) will say why it stops."
            ),
            action: None,
        });
    }

    // Findings that come and go.
    let mut flaps: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == Kind::Cleared) {
        if let Some(s) = &e.subject {
            *flaps.entry(s.clone()).or_default() += 1;
        }
    }
    for (subject, n) in flaps.into_iter().filter(|(_, n)| *n >= 5) {
        out.push(Diagnosis {
            key: format!("flapping:{subject}"),
            message: format!(
                "{subject} went wrong and came back {n} times in a day: something intermittent (a flaky network, a process that crashes and is restarted elsewhere)."
            ),
            action: None,
        });
    }

    // Cleaning that does not keep up.
    let cleans = outcomes(events, "clean").count();
    let disk_still_low = events
        .iter()
        .rev()
        .find(|e| e.subject.as_deref().is_some_and(|s| s.starts_with("disk:")))
        .is_some_and(|e| e.kind == Kind::Finding);
    if cleans >= 2 && disk_still_low {
        out.push(Diagnosis {
            key: "disk-fills".into(),
            message: format!(
                "the disk is still low after {cleans} cleans today: what fills it is outside the folders the Cleaner may touch."
            ),
            action: None,
        });
    }

    // Subjects left to a human.
    let waiting: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == Kind::NeedsHuman)
        .filter_map(|e| e.subject.as_deref())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !waiting.is_empty() {
        let mut waiting = waiting;
        waiting.sort();
        out.push(Diagnosis {
            key: "needs-human".into(),
            message: format!(
                "waiting for a human today: {} (automatic attempts stopped)",
                waiting.join(", ")
            ),
            action: None,
        });
    }
    out
}

/// The daily summary by a local model, asked through the proxy (so it is
/// routed to a fleet machine that has the model, and metered at $0).
#[derive(Debug, Clone)]
pub struct Summarizer {
    /// The client (no redirects, no env proxy).
    pub client: reqwest::Client,
    /// The proxy's base URL (`http://127.0.0.1:11435`).
    pub proxy: String,
    /// The model.
    pub model: String,
}

/// What the model is told.
const SUMMARY_INSTRUCTIONS: &str = "You read the self-healing log of one machine of a personal AI fleet \
(Ollama models, pm2 apps, an OpenClaw gateway). Summarise the last day for its owner in at most five \
short sentences: what went wrong, what was done about it, whether it worked, and anything that still \
needs a human. Plain words, no preamble, no lists.";

/// The longest summary kept (characters).
const SUMMARY_MAX_CHARS: usize = 2_000;
/// The most events given to the model (the newest).
const SUMMARY_MAX_EVENTS: usize = 200;

/// The events as lines for the model, newest last, at most
/// `SUMMARY_MAX_EVENTS`, each line capped.
pub fn summary_input(events: &[Event]) -> String {
    let skip = events.len().saturating_sub(SUMMARY_MAX_EVENTS);
    let mut out = String::new();
    for e in &events[skip..] {
        if e.kind == Kind::Summary {
            continue;
        }
        let message: String = e.message.chars().take(300).collect();
        out.push_str(&format!(
            "{} {} {}: {message}\n",
            e.at.strftime("%H:%M"),
            serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            serde_json::to_value(e.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        ));
    }
    out
}

/// The answer's text without a reasoning block (`<think>…</think>`),
/// trimmed and capped.
pub fn clean_summary(text: &str) -> String {
    let mut rest = text;
    let mut out = String::new();
    while let Some(start) = rest.find("<think>") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</think>") {
            Some(end) => rest = &rest[start + end + "</think>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let out = out.trim();
    let mut capped: String = out.chars().take(SUMMARY_MAX_CHARS).collect();
    if out.chars().count() > SUMMARY_MAX_CHARS {
        capped.push('…');
    }
    capped
}

impl Summarizer {
    /// Asks the model for a summary of `events` (oldest first).
    pub async fn summarise(&self, machine: &str, events: &[Event]) -> Result<String, String> {
        let body = serde_json::json!({
            "model": self.model,
            "stream": false,
            "messages": [
                {"role": "system", "content": SUMMARY_INSTRUCTIONS},
                {"role": "user", "content": format!("Events of {machine}, the last 24 hours:\n{}", summary_input(events))},
            ],
        });
        let url = format!("{}/api/chat", self.proxy.trim_end_matches('/'));
        let response = self
            .client
            .post(&url)
            .header("user-agent", "clawfleet-healer")
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::net::describe(&e)))?;
        let status = response.status();
        let bytes = crate::net::read_body_limited(response, 1024 * 1024)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{url} answered {status} with something that is not JSON ({e}): {}",
                crate::net::preview(&bytes, 120)
            )
        })?;
        if !status.is_success() {
            return Err(format!(
                "{url} answered {status}: {}",
                value["error"]
                    .as_str()
                    .or_else(|| value["error"]["message"].as_str())
                    .unwrap_or("no error message")
            ));
        }
        let text = value["message"]["content"]
            .as_str()
            .ok_or_else(|| format!("{url}: the answer has no message.content"))?;
        let text = clean_summary(text);
        if text.is_empty() {
            return Err(format!("{} answered with nothing", self.model));
        }
        Ok(text)
    }
}

/// Every `every` (after one interval), diagnoses the last day, records each
/// new diagnosis once a day, and in `auto` mode takes its action; with a
/// [`Summarizer`], asks for a summary of the day once a day.
pub async fn run(
    watcher: Arc<Watcher>,
    every: Duration,
    summarizer: Option<Summarizer>,
    cancel: CancellationToken,
) {
    let mut said: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut summary_failed_at: Option<Timestamp> = None;
    let mut every = Every::after_one(every, &cancel);
    while every.tick().await {
        let now = Timestamp::now();
        let since = now
            .checked_sub(SignedDuration::from_hours(24))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let log = watcher.events().clone();
        let Ok(Ok(history)) = tokio::task::spawn_blocking(move || log.since(since)).await else {
            continue;
        };
        said.retain(|_, at| *at >= since);
        for d in diagnose(&history, now) {
            if said.contains_key(&d.key) {
                continue;
            }
            said.insert(d.key.clone(), now);
            let status = watcher.status();
            let event = Event::new(
                Kind::Diagnosis,
                watcher.machine(),
                Severity::Warning,
                d.message.clone(),
            )
            .subject(d.key.clone());
            let event = match &d.action {
                Some(a) => event.action(a.name()),
                None => event,
            };
            let log = watcher.events().clone();
            let _ = tokio::task::spawn_blocking(move || log.note(event)).await;
            if let Some(a) = d.action
                && status.mode == HealMode::Auto
                && !status.paused
            {
                let _ = watcher.heal(a, false, "the Healer").await;
            }
        }
        // The daily summary: once a day (the log says when the last was, so
        // a restart does not ask again), and only when there is something to
        // tell; a failure is said once and tried again in an hour.
        let Some(s) = &summarizer else { continue };
        let last = history.iter().rev().find(|e| e.kind == Kind::Summary);
        let has_news = history
            .iter()
            .any(|e| e.kind != Kind::Summary && last.is_none_or(|l| e.at > l.at));
        let retry_at =
            summary_failed_at.and_then(|t| t.checked_add(SignedDuration::from_hours(1)).ok());
        if last.is_some() || !has_news || retry_at.is_some_and(|r| now < r) {
            continue;
        }
        let span = tracing::info_span!("summary", model = %s.model);
        let result = s
            .summarise(watcher.machine_name(), &history)
            .instrument(span)
            .await;
        let event = match result {
            Ok(text) => {
                summary_failed_at = None;
                Event::new(Kind::Summary, watcher.machine(), Severity::Info, text)
                    .subject("summary")
                    .detail(serde_json::json!({"model": s.model, "events": history.len()}))
            }
            Err(e) => {
                if summary_failed_at.is_none() {
                    tracing::warn!("the daily summary failed (tried again hourly): {e}");
                } else {
                    tracing::debug!("the daily summary failed again: {e}");
                }
                summary_failed_at = Some(now);
                continue;
            }
        };
        let log = watcher.events().clone();
        let _ = tokio::task::spawn_blocking(move || log.note(event)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_loses_its_reasoning_and_is_capped() {
        assert_eq!(
            clean_summary("<think>a\nb</think>\n All fine. "),
            "All fine."
        );
        assert_eq!(clean_summary("x <think>y</think> z <think>w"), "x  z");
        let long = "a".repeat(5_000);
        assert_eq!(clean_summary(&long).chars().count(), SUMMARY_MAX_CHARS + 1);
        let mut events: Vec<Event> = (0..300)
            .map(|i| {
                Event::new(
                    Kind::Finding,
                    "m",
                    Severity::Warning,
                    format!("finding {i}"),
                )
            })
            .collect();
        events.push(Event::new(
            Kind::Summary,
            "m",
            Severity::Info,
            "old summary",
        ));
        let text = summary_input(&events);
        assert_eq!(
            text.lines().count(),
            SUMMARY_MAX_EVENTS - 1,
            "newest kept, summaries left out"
        );
        assert!(text.contains("finding 299") && !text.contains("finding 100\n"));
        assert!(!text.contains("old summary"));
        assert!(
            text.lines().all(|l| l.contains(" finding warning: ")),
            "{text}"
        );
    }
    use serde_json::json;

    fn at(mins: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + mins * 60).expect("time")
    }

    fn outcome(mins: i64, action: &str, subject: &str, detail: serde_json::Value) -> Event {
        let mut e = Event::new(Kind::Outcome, "mini", Severity::Info, "x")
            .subject(subject)
            .action(action)
            .detail(detail);
        e.at = at(mins);
        e
    }

    #[test]
    fn restarts_with_full_memory_read_as_out_of_memory() {
        let events: Vec<Event> = [10, 30, 50]
            .iter()
            .map(|m| {
                outcome(
                    *m,
                    "restart-ollama",
                    "restart-ollama",
                    json!({"memory_percent": 93.5, "loaded": ["gpt-oss:20b"]}),
                )
            })
            .collect();
        let d = diagnose(&events, at(60));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].key, "oom");
        assert!(d[0].message.contains("3 times"), "{}", d[0].message);
        assert!(
            d[0].message.contains("Unload gpt-oss:20b"),
            "{}",
            d[0].message
        );
        assert_eq!(
            d[0].action,
            Some(Action::UnloadModel {
                model: "gpt-oss:20b".into()
            })
        );
        // Memory was fine once: not that.
        let mut calm = events.clone();
        calm[1].detail = Some(json!({"memory_percent": 40.0, "loaded": []}));
        assert!(diagnose(&calm, at(60)).is_empty());
        // Spread over more than an hour: not that either.
        assert!(diagnose(&events, at(75)).is_empty());
    }

    #[test]
    fn a_crash_loop_and_a_human_wait_are_named() {
        let mut events: Vec<Event> = (0..4)
            .map(|i| {
                outcome(
                    i * 60,
                    "restart-pm2-app",
                    "restart-pm2-app:aphos",
                    json!({}),
                )
            })
            .collect();
        let mut needs = Event::new(Kind::NeedsHuman, "mini", Severity::Critical, "x")
            .subject("restart-pm2-app:aphos");
        needs.at = at(300);
        events.push(needs);
        let d = diagnose(&events, at(400));
        let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, vec!["crash-loop:aphos", "needs-human"]);
        assert!(d[0].message.contains("pm2 logs aphos"));
    }
}
