//! Desktop notifications for what the engine did: every heal outcome, a
//! subject that needs a human, budget and credit-leak alarms, the Healer's
//! diagnoses. Coalesced: at most one notification per kind every
//! [`WINDOW`]; what arrives meanwhile is said in one "and N more" at the end
//! of the window, so a storm never becomes a flood. Each kind can be turned
//! off in the settings.

use std::time::{Duration, Instant};

use clawfleet::events::{Event, Kind};
use serde::{Deserialize, Serialize};

/// The shortest time between two notifications of one kind.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The kinds a user can switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A heal action ended (with its outcome).
    Heal,
    /// Automatic attempts stopped: a human must look.
    NeedsHuman,
    /// Budget and credit-leak alarms.
    Cost,
    /// The Healer's diagnoses.
    Diagnosis,
    /// A machine of the fleet went offline or came back.
    Machine,
}

impl NoticeKind {
    /// Every kind, in settings order.
    pub const ALL: [NoticeKind; 5] = [
        NoticeKind::Heal,
        NoticeKind::NeedsHuman,
        NoticeKind::Cost,
        NoticeKind::Diagnosis,
        NoticeKind::Machine,
    ];

    /// The kind of notice an event makes, if any.
    pub fn of(event: &Event) -> Option<NoticeKind> {
        match event.kind {
            Kind::Outcome => Some(NoticeKind::Heal),
            Kind::NeedsHuman => Some(NoticeKind::NeedsHuman),
            Kind::CostAlarm => Some(NoticeKind::Cost),
            Kind::Diagnosis => Some(NoticeKind::Diagnosis),
            Kind::Machine => Some(NoticeKind::Machine),
            _ => None,
        }
    }

    /// As in the settings file.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Heal => "heal",
            NoticeKind::NeedsHuman => "needs_human",
            NoticeKind::Cost => "cost",
            NoticeKind::Diagnosis => "diagnosis",
            NoticeKind::Machine => "machine",
        }
    }
}

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
}

/// The title and body for one event.
pub fn notice_for(event: &Event) -> Notice {
    let title = match event.kind {
        Kind::Outcome => {
            if event
                .detail
                .as_ref()
                .and_then(|d| d.get("success"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
            {
                "ClawFleet healed"
            } else {
                "ClawFleet: a heal did not work"
            }
        }
        Kind::NeedsHuman => "ClawFleet needs you",
        Kind::CostAlarm => "ClawFleet cost alarm",
        Kind::Diagnosis => "ClawFleet diagnosis",
        Kind::Machine => "ClawFleet: a machine",
        _ => "ClawFleet",
    };
    Notice {
        title: title.to_owned(),
        body: event.message.clone(),
    }
}

#[derive(Debug, Default)]
struct Lane {
    last_sent: Option<Instant>,
    held: Vec<Notice>,
}

/// Rate-limits notices per kind.
#[derive(Debug, Default)]
pub struct Coalescer {
    lanes: std::collections::HashMap<NoticeKind, Lane>,
}

impl Coalescer {
    /// Offers a notice at `now`: returns it when it may be shown now, or
    /// holds it for [`Coalescer::due`].
    pub fn offer(&mut self, kind: NoticeKind, notice: Notice, now: Instant) -> Option<Notice> {
        let lane = self.lanes.entry(kind).or_default();
        match lane.last_sent {
            Some(t) if now.duration_since(t) < WINDOW => {
                lane.held.push(notice);
                None
            }
            _ => {
                lane.last_sent = Some(now);
                Some(notice)
            }
        }
    }

    /// The held notices whose window has ended, one per kind: the first
    /// held, with how many more came.
    pub fn due(&mut self, now: Instant) -> Vec<Notice> {
        let mut out = Vec::new();
        for lane in self.lanes.values_mut() {
            let ended = lane
                .last_sent
                .is_none_or(|t| now.duration_since(t) >= WINDOW);
            if ended && !lane.held.is_empty() {
                let held = std::mem::take(&mut lane.held);
                let first = held[0].clone();
                let more = held.len() - 1;
                out.push(if more == 0 {
                    first
                } else {
                    Notice {
                        title: first.title,
                        body: format!(
                            "{} (and {more} more: see the events in the dashboard)",
                            first.body
                        ),
                    }
                });
                lane.last_sent = Some(now);
            }
        }
        out
    }

    /// When the next held notice is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter(|l| !l.held.is_empty())
            .filter_map(|l| l.last_sent.map(|t| t + WINDOW))
            .min()
    }
}

/// Shows a notification through the desktop's notification server
/// (D-Bus on Linux, Notification Center on macOS, toasts on Windows).
pub fn show(notice: &Notice) {
    let shown = notify_rust::Notification::new()
        .appname("ClawFleet")
        .summary(&notice.title)
        .body(&notice.body)
        .show();
    if let Err(e) = shown {
        tracing::warn!("cannot show a notification ({}): {e}", notice.title);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawfleet::events::Severity;

    fn outcome(message: &str, success: bool) -> Event {
        Event::new(Kind::Outcome, "mini", Severity::Info, message)
            .detail(serde_json::json!({"success": success}))
    }

    #[test]
    fn a_storm_becomes_one_notice_per_window() {
        let mut c = Coalescer::default();
        let t0 = Instant::now();
        let n = |i: u32| notice_for(&outcome(&format!("Restarted Ollama ({i})"), true));
        assert_eq!(c.offer(NoticeKind::Heal, n(1), t0), Some(n(1)));
        for i in 2..=6 {
            assert_eq!(
                c.offer(NoticeKind::Heal, n(i), t0 + Duration::from_secs(1)),
                None
            );
        }
        // Another kind is not held back by the first.
        let alarm = Notice {
            title: "ClawFleet cost alarm".into(),
            body: "over budget".into(),
        };
        assert!(
            c.offer(NoticeKind::Cost, alarm, t0 + Duration::from_secs(2))
                .is_some()
        );
        assert!(
            c.due(t0 + Duration::from_secs(5)).is_empty(),
            "the window is not over"
        );
        assert_eq!(c.next_due(), Some(t0 + WINDOW));
        let due = c.due(t0 + WINDOW);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].title, "ClawFleet healed");
        assert_eq!(
            due[0].body,
            "Restarted Ollama (2) (and 4 more: see the events in the dashboard)"
        );
        assert!(c.due(t0 + WINDOW * 3).is_empty(), "said once");
        assert_eq!(c.next_due(), None);
    }

    #[test]
    fn which_events_notify_and_how_they_read() {
        assert_eq!(
            notice_for(&outcome("x", false)).title,
            "ClawFleet: a heal did not work"
        );
        assert_eq!(NoticeKind::of(&outcome("x", true)), Some(NoticeKind::Heal));
        let finding = Event::new(Kind::Finding, "mini", Severity::Warning, "disk low");
        assert_eq!(
            NoticeKind::of(&finding),
            None,
            "findings show in the tray, not as notices"
        );
        let gone = Event::new(
            Kind::Machine,
            "macmini",
            Severity::Warning,
            "Mac Mini is offline: not heard from for 60 s (connection refused)",
        );
        assert_eq!(NoticeKind::of(&gone), Some(NoticeKind::Machine));
        let n = notice_for(&gone);
        assert_eq!(n.title, "ClawFleet: a machine");
        assert!(n.body.starts_with("Mac Mini is offline"));
        assert!(
            NoticeKind::ALL.contains(&NoticeKind::Machine),
            "it can be switched off"
        );
    }
}
