//! Restart-storm guards, per subject (`restart-ollama`,
//! `restart-pm2-app:aphos-server`): a cooldown after every attempt that
//! doubles after each failure (up to a maximum), at most `max_attempts`
//! attempts within a window, and then "needs human" — said once — until a
//! human acts or the problem goes away by itself.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The guards' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wait after an attempt before the next one.
    pub cooldown: Duration,
    /// The longest wait after repeated failures.
    pub backoff_max: Duration,
    /// Attempts allowed within `window`.
    pub max_attempts: u32,
    /// The window.
    pub window: Duration,
}

/// Whether an action may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Admit {
    /// Go ahead.
    Go,
    /// Not before `until`.
    Wait {
        /// When the next attempt is allowed.
        until: Timestamp,
    },
    /// The attempts are spent: a human must look.
    NeedsHuman,
}

#[derive(Debug, Clone, Default)]
struct Subject {
    attempts: VecDeque<Timestamp>,
    failures_in_row: u32,
    next_allowed: Option<Timestamp>,
    needs_human: bool,
}

/// What the guards know about one subject, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectView {
    /// The subject.
    pub subject: String,
    /// Attempts within the window.
    pub attempts: u32,
    /// Failures in a row.
    pub failures_in_row: u32,
    /// When the next attempt is allowed.
    pub next_allowed: Option<Timestamp>,
    /// A human must look.
    pub needs_human: bool,
}

/// The guards of every subject.
#[derive(Debug, Clone)]
pub struct Guards {
    limits: Limits,
    subjects: HashMap<String, Subject>,
}

fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl Guards {
    /// Guards with `limits`.
    pub fn new(limits: Limits) -> Guards {
        Guards {
            limits,
            subjects: HashMap::new(),
        }
    }

    fn prune(&mut self, subject: &str, now: Timestamp) {
        let window = span(self.limits.window);
        if let Some(s) = self.subjects.get_mut(subject) {
            while s
                .attempts
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                s.attempts.pop_front();
            }
        }
    }

    /// May an automatic attempt on `subject` run now?
    pub fn admit(&mut self, subject: &str, now: Timestamp) -> Admit {
        self.prune(subject, now);
        let Some(s) = self.subjects.get(subject) else {
            return Admit::Go;
        };
        if s.needs_human {
            return Admit::NeedsHuman;
        }
        match s.next_allowed {
            Some(until) if now < until => Admit::Wait { until },
            _ => Admit::Go,
        }
    }

    /// Records an attempt's outcome. Returns `true` exactly when this
    /// outcome spent the subject's attempts: say "needs human" then.
    pub fn record(&mut self, subject: &str, now: Timestamp, success: bool) -> bool {
        self.prune(subject, now);
        let limits = self.limits;
        let s = self.subjects.entry(subject.to_owned()).or_default();
        s.attempts.push_back(now);
        if success {
            s.failures_in_row = 0;
            s.next_allowed = Some(now.saturating_add(span(limits.cooldown)).unwrap_or(now));
        } else {
            s.failures_in_row = s.failures_in_row.saturating_add(1);
            let factor = 2u32.saturating_pow(s.failures_in_row - 1);
            let wait = limits
                .cooldown
                .checked_mul(factor)
                .unwrap_or(limits.backoff_max)
                .min(limits.backoff_max);
            s.next_allowed = Some(now.saturating_add(span(wait)).unwrap_or(now));
        }
        let spent = s.attempts.len() as u32 >= limits.max_attempts;
        if spent && !success && !s.needs_human {
            s.needs_human = true;
            return true;
        }
        false
    }

    /// The problem went away, or a human acted: the subject starts afresh.
    pub fn clear(&mut self, subject: &str) {
        self.subjects.remove(subject);
    }

    /// Whether `subject` needs a human.
    pub fn needs_human(&self, subject: &str) -> bool {
        self.subjects.get(subject).is_some_and(|s| s.needs_human)
    }

    /// Every subject with a history, for display.
    pub fn view(&self) -> Vec<SubjectView> {
        let mut v: Vec<SubjectView> = self
            .subjects
            .iter()
            .map(|(k, s)| SubjectView {
                subject: k.clone(),
                attempts: s.attempts.len() as u32,
                failures_in_row: s.failures_in_row,
                next_allowed: s.next_allowed,
                needs_human: s.needs_human,
            })
            .collect();
        v.sort_by(|a, b| a.subject.cmp(&b.subject));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            cooldown: Duration::from_secs(60),
            backoff_max: Duration::from_secs(300),
            max_attempts: 3,
            window: Duration::from_secs(3600),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("time")
    }

    #[test]
    fn failures_back_off_then_need_a_human_once() {
        let mut g = Guards::new(limits());
        assert_eq!(g.admit("x", at(0)), Admit::Go);
        assert!(!g.record("x", at(0), false));
        // 60 s after the first failure.
        assert_eq!(g.admit("x", at(30)), Admit::Wait { until: at(60) });
        assert_eq!(g.admit("x", at(60)), Admit::Go);
        assert!(!g.record("x", at(60), false));
        // Doubled: 120 s.
        assert_eq!(g.admit("x", at(100)), Admit::Wait { until: at(180) });
        assert_eq!(g.admit("x", at(180)), Admit::Go);
        // The third failure in the window spends the attempts, once.
        assert!(g.record("x", at(180), false));
        assert_eq!(g.admit("x", at(10_000)), Admit::NeedsHuman);
        assert!(!g.record("x", at(10_001), false), "said once");
        assert!(g.needs_human("x"));
        // Other subjects are not affected.
        assert_eq!(g.admit("y", at(200)), Admit::Go);
        g.clear("x");
        assert_eq!(g.admit("x", at(10_002)), Admit::Go);
    }

    #[test]
    fn backoff_is_capped_and_success_resets_it() {
        let mut g = Guards::new(Limits {
            max_attempts: 100,
            ..limits()
        });
        let mut t = 0;
        for _ in 0..6 {
            g.record("x", at(t), false);
            match g.admit("x", at(t)) {
                Admit::Wait { until } => t = until.as_second() - 1_800_000_000,
                other => panic!("{other:?}"),
            }
        }
        // 60, 120, 240, then capped at 300.
        let v = &g.view()[0];
        assert_eq!(v.failures_in_row, 6);
        g.record("x", at(t), true);
        assert_eq!(g.admit("x", at(t + 59)), Admit::Wait { until: at(t + 60) });
        assert_eq!(g.view()[0].failures_in_row, 0);
    }

    #[test]
    fn attempts_leave_the_window() {
        let mut g = Guards::new(Limits {
            cooldown: Duration::from_secs(1),
            ..limits()
        });
        g.record("x", at(0), true);
        g.record("x", at(10), true);
        // Two successes then a failure an hour later: the old ones are out
        // of the window, so this is not the third attempt.
        assert!(!g.record("x", at(3_700), false));
        assert_eq!(g.view()[0].attempts, 1);
    }
}
