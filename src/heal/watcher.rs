//! The watcher: every `[heal] interval_secs`, check this machine's snapshot,
//! record what changed, and — in `auto` mode, not paused, within the guards
//! — take the action that fixes each finding, then wait for the probe to
//! show it worked. Buttons, the API and the CLI come through
//! [`Watcher::heal`], which runs the same closed set of actions.

use crate::every::Every;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::check::{self, CheckState, Extra, Finding};
use super::execute::{Done, Executor};
use super::guard::{Admit, Guards, Limits, SubjectView};
use crate::action::Action;
use crate::config::{Config, HealMode};
use crate::events::{Event, EventLog, Kind, Severity};
use crate::publish::SnapshotRx;
use crate::snapshot::MachineSnapshot;

/// What a heal did, verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The action.
    pub action: Action,
    /// Only said what it would do.
    pub dry_run: bool,
    /// It worked, and the probe shows it.
    pub success: bool,
    /// The action's own report.
    pub done: Done,
    /// What the probe showed afterwards (`None` when there is nothing to
    /// wait for, or in a dry run).
    pub verified: Option<bool>,
    /// In words.
    pub message: String,
    /// Seconds from start to verified.
    pub seconds: f64,
}

/// Why a heal request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealError {
    /// The target is not something this machine has.
    #[error("{0}")]
    NotHere(String),
    /// Another action is running.
    #[error("another action is running on this machine; try again when it ends")]
    Busy,
}

/// The watcher's state, for the API and the tray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `auto`, `suggest` or `off`.
    pub mode: HealMode,
    /// Paused at runtime.
    pub paused: bool,
    /// What is wrong now.
    pub findings: Vec<Finding>,
    /// The guards' view of each subject.
    pub guards: Vec<SubjectView>,
    /// Every action name.
    pub actions: Vec<String>,
}

/// The watcher of one machine.
pub struct Watcher {
    machine: String,
    machine_name: String,
    config: Arc<Config>,
    events: EventLog,
    executor: Executor,
    snapshot: SnapshotRx,
    guards: Mutex<Guards>,
    checks: Mutex<CheckState>,
    open: Mutex<HashMap<String, Finding>>,
    mode: Mutex<HealMode>,
    paused: AtomicBool,
    /// One action at a time on a machine.
    busy: tokio::sync::Mutex<()>,
    simulators: Mutex<HashMap<String, Timestamp>>,
    /// The models Ollama had loaded when last seen up: when it is down (the
    /// moment an out-of-memory restart is recorded) its list is empty.
    last_loaded: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher for this machine.
    pub fn new(
        config: Arc<Config>,
        this: &crate::config::MachineConfig,
        events: EventLog,
        snapshot: SnapshotRx,
        client: reqwest::Client,
    ) -> Arc<Watcher> {
        let h = &config.heal;
        let limits = Limits {
            cooldown: Duration::from_secs(h.cooldown_secs),
            backoff_max: Duration::from_secs(h.backoff_max_secs.max(h.cooldown_secs)),
            max_attempts: h.max_attempts.max(1),
            window: Duration::from_secs(h.window_secs.max(1)),
        };
        Arc::new(Watcher {
            machine: this.id.clone(),
            machine_name: this.name.clone(),
            executor: Executor::new(
                h,
                &config.probes.pm2_program,
                this.ollama_url.clone(),
                client,
            ),
            mode: Mutex::new(h.mode),
            config,
            events,
            snapshot,
            guards: Mutex::new(Guards::new(limits)),
            checks: Mutex::new(CheckState::default()),
            open: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            busy: tokio::sync::Mutex::new(()),
            simulators: Mutex::new(HashMap::new()),
            last_loaded: Mutex::new(Vec::new()),
        })
    }

    /// This machine's id.
    pub fn machine(&self) -> &str {
        &self.machine
    }

    /// This machine's display name.
    pub fn machine_name(&self) -> &str {
        &self.machine_name
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    fn me(&self) -> Option<MachineSnapshot> {
        let snap = self.snapshot.borrow().clone();
        snap.machines.iter().find(|m| m.id == self.machine).cloned()
    }

    /// Pauses or resumes automatic healing (`who` is recorded).
    pub fn set_paused(&self, paused: bool, who: &str) {
        if self.paused.swap(paused, Ordering::SeqCst) != paused {
            let what = if paused { "paused" } else { "resumed" };
            self.events.note(
                Event::new(
                    Kind::Mode,
                    &self.machine,
                    Severity::Info,
                    format!("self-healing {what} on {} by {who}", self.machine_name),
                )
                .requested_by(Some(who.to_owned())),
            );
        }
    }

    /// Changes the mode at runtime (`who` is recorded).
    pub fn set_mode(&self, mode: HealMode, who: &str) {
        let old = std::mem::replace(&mut *lock(&self.mode), mode);
        if old != mode {
            self.events.note(
                Event::new(
                    Kind::Mode,
                    &self.machine,
                    Severity::Info,
                    format!(
                        "self-healing mode on {} set to {} by {who} (was {})",
                        self.machine_name,
                        mode.as_str(),
                        old.as_str()
                    ),
                )
                .requested_by(Some(who.to_owned())),
            );
        }
    }

    /// Whether an action is running now (the tray shows "healing").
    pub fn acting(&self) -> bool {
        self.busy.try_lock().is_err()
    }

    /// Whether paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// The current state.
    pub fn status(&self) -> Status {
        let mut findings: Vec<Finding> = lock(&self.open).values().cloned().collect();
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.key.cmp(&b.key)));
        Status {
            mode: *lock(&self.mode),
            paused: self.paused(),
            findings,
            guards: lock(&self.guards).view(),
            actions: crate::action::NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    /// Booted simulators and how long the watcher has seen them (macOS).
    async fn extra(&self, now: Timestamp) -> Extra {
        if !cfg!(target_os = "macos") {
            return Extra::default();
        }
        let argv: Vec<String> = ["xcrun", "simctl", "list", "devices", "booted", "-j"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let ran = crate::command::run(&argv, Duration::from_secs(10)).await;
        let booted = if ran.success {
            booted_simulators(&ran.stdout)
        } else {
            Vec::new()
        };
        let mut seen = lock(&self.simulators);
        seen.retain(|name, _| booted.contains(name));
        let mut out = Vec::new();
        for name in booted {
            let since = *seen.entry(name.clone()).or_insert(now);
            let mins = u64::try_from(now.duration_since(since).as_secs() / 60).unwrap_or(0);
            out.push((name, mins));
        }
        Extra {
            booted_simulators: out,
        }
    }

    /// One cycle. Returns the findings.
    pub async fn cycle(&self) -> Vec<Finding> {
        let Some(me) = self.me() else {
            return Vec::new();
        };
        let now = Timestamp::now();
        if let Some(o) = me.ollama.as_ref().filter(|o| o.reachable) {
            *lock(&self.last_loaded) = o.loaded.iter().map(|l| l.name.clone()).collect();
        }
        let extra = self.extra(now).await;
        let findings = {
            let mut state = lock(&self.checks);
            check::check(&me, &extra, &self.config.heal, &mut state, now)
        };
        let mode = *lock(&self.mode);
        if mode == HealMode::Off {
            return findings;
        }
        // What changed since the last cycle.
        let mut fresh = Vec::new();
        {
            let mut open = lock(&self.open);
            let keys: std::collections::HashSet<&str> =
                findings.iter().map(|f| f.key.as_str()).collect();
            let gone: Vec<Finding> = open
                .values()
                .filter(|f| !keys.contains(f.key.as_str()))
                .cloned()
                .collect();
            for f in gone {
                open.remove(&f.key);
                if let Some(a) = &f.action {
                    lock(&self.guards).clear(&a.subject());
                }
                self.events.note(
                    Event::new(
                        Kind::Cleared,
                        &self.machine,
                        Severity::Info,
                        format!("{}: fine again ({})", self.machine_name, f.what),
                    )
                    .subject(f.key.clone()),
                );
            }
            for f in &findings {
                let changed = open
                    .get(&f.key)
                    .is_none_or(|old| old.severity != f.severity);
                open.insert(f.key.clone(), f.clone());
                if changed {
                    fresh.push(f.clone());
                }
            }
        }
        let act = mode == HealMode::Auto && !self.paused();
        for f in &fresh {
            self.events.note(
                Event::new(
                    Kind::Finding,
                    &self.machine,
                    f.severity,
                    format!("{}: {}", self.machine_name, f.what),
                )
                .subject(f.key.clone())
                .detail(f.evidence.clone()),
            );
            if let (Some(a), false) = (&f.action, act) {
                self.events.note(
                    Event::new(
                        Kind::Suggestion,
                        &self.machine,
                        Severity::Info,
                        format!("suggested: {} ({})", a.describe(), f.what),
                    )
                    .subject(f.key.clone())
                    .action(a.name()),
                );
            }
        }
        if act {
            for f in &findings {
                if let Some(a) = &f.action {
                    self.auto(a, f).await;
                }
            }
        }
        findings
    }

    /// An automatic attempt, within the guards.
    async fn auto(&self, action: &Action, finding: &Finding) {
        let subject = action.subject();
        let verdict = lock(&self.guards).admit(&subject, Timestamp::now());
        match verdict {
            Admit::Go => {}
            Admit::Wait { until } => {
                tracing::debug!(%subject, %until, "guard: waiting before the next attempt");
                return;
            }
            Admit::NeedsHuman => return,
        }
        let Ok(_busy) = self.busy.try_lock() else {
            return;
        };
        let outcome = self
            .carry_out(action, false, Some(&finding.what), None)
            .await;
        let spent = lock(&self.guards).record(&subject, Timestamp::now(), outcome.success);
        if spent {
            let limits = &self.config.heal;
            self.events.note(
                Event::new(
                    Kind::NeedsHuman,
                    &self.machine,
                    Severity::Critical,
                    format!(
                        "{} needs a human: {} failed {} times in {} min ({}); automatic attempts stopped",
                        self.machine_name,
                        action.describe(),
                        limits.max_attempts,
                        limits.window_secs / 60,
                        outcome.message
                    ),
                )
                .subject(subject)
                .action(action.name())
                .detail(json!({"finding": finding.what})),
            );
        }
    }

    /// Runs `action` for someone (a button, the API, the CLI): the guards'
    /// waits do not apply to a human, but one action at a time does.
    pub async fn heal(
        &self,
        action: Action,
        dry_run: bool,
        who: &str,
    ) -> Result<Outcome, HealError> {
        let me = self.me().unwrap_or_default();
        if let Action::RestartPm2App { app } = &action
            && !me.pm2.iter().any(|p| &p.name == app)
            && !self
                .config
                .machine(&self.machine)
                .is_some_and(|m| m.pm2_apps.contains(app))
        {
            return Err(HealError::NotHere(format!(
                "pm2 has no app {app:?} on {} (known: {})",
                self.machine_name,
                me.pm2
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let Ok(_busy) = tokio::time::timeout(Duration::from_secs(2), self.busy.lock()).await else {
            return Err(HealError::Busy);
        };
        let outcome = self.carry_out(&action, dry_run, None, Some(who)).await;
        if outcome.success && !dry_run {
            lock(&self.guards).clear(&action.subject());
        }
        Ok(outcome)
    }

    /// Starts, runs, verifies and records one action.
    async fn carry_out(
        &self,
        action: &Action,
        dry_run: bool,
        why: Option<&str>,
        who: Option<&str>,
    ) -> Outcome {
        let span = tracing::info_span!("heal", action = action.name(), target = action.target());
        async move {
            let started = Instant::now();
            let reason = why.map(|w| format!(" — {w}")).unwrap_or_default();
            let requested_by = who.map(str::to_owned);
            if !dry_run {
                self.events.note(
                    Event::new(
                        Kind::ActionStarted,
                        &self.machine,
                        Severity::Info,
                        format!(
                            "{}: {}{reason}",
                            self.machine_name,
                            capitalize(&action.describe())
                        ),
                    )
                    .subject(action.subject())
                    .action(action.name())
                    .requested_by(requested_by.clone()),
                );
            }
            let me = self.me().unwrap_or_default();
            let finished_at = Timestamp::now();
            let done = self.executor.execute(action, dry_run, &me).await;
            let verified = if dry_run || !done.success {
                None
            } else {
                self.verify(action, finished_at).await
            };
            let success = done.success && verified != Some(false);
            let seconds = started.elapsed().as_secs_f64();
            let message = if dry_run {
                format!(
                    "{}: dry run of {}: {}",
                    self.machine_name,
                    action.describe(),
                    done.summary
                )
            } else if success {
                format!(
                    "{} on {}{reason}; {} in {seconds:.0} s",
                    past(action),
                    self.machine_name,
                    match (verified, action) {
                        (Some(true), Action::UnloadModel { .. }) => "gone from memory",
                        (Some(true), _) => "back",
                        _ => "done",
                    },
                )
            } else if verified == Some(false) {
                format!(
                    "{} on {} did not help: the probe does not show it back after {} s ({})",
                    capitalize(&action.describe()),
                    self.machine_name,
                    self.config.heal.verify_secs,
                    done.summary
                )
            } else {
                format!(
                    "{} on {} failed: {}",
                    capitalize(&action.describe()),
                    self.machine_name,
                    done.summary
                )
            };
            let outcome = Outcome {
                action: action.clone(),
                dry_run,
                success,
                done,
                verified,
                message: message.clone(),
                seconds,
            };
            if !dry_run {
                self.events.note(
                    Event::new(
                        Kind::Outcome,
                        &self.machine,
                        if success {
                            Severity::Info
                        } else {
                            Severity::Warning
                        },
                        message,
                    )
                    .subject(action.subject())
                    .action(action.name())
                    .requested_by(requested_by)
                    .detail(json!({
                        "success": success,
                        "verified": verified,
                        "seconds": seconds,
                        "summary": outcome.done.summary,
                        "commands": outcome.done.commands,
                        "report": outcome.done.detail,
                        "memory_percent": me.memory.as_ref().filter(|m| m.total_bytes > 0)
                            .map(|m| m.used_bytes as f64 / m.total_bytes as f64 * 100.0),
                        "loaded": match me.ollama.as_ref().filter(|o| o.reachable) {
                            Some(o) => o.loaded.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
                            None => lock(&self.last_loaded).clone(),
                        },
                    })),
                );
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// Waits up to `[heal] verify_secs` for a probe taken after `after` to
    /// show the action worked; `None` when there is nothing to wait for.
    async fn verify(&self, action: &Action, after: Timestamp) -> Option<bool> {
        let ok = |m: &MachineSnapshot| -> Option<bool> {
            match action {
                Action::RestartOllama => {
                    let o = m.ollama.as_ref()?;
                    (o.checked_at? > after).then_some(o.reachable)
                }
                Action::RestartPm2App { app } => (m.probed_at.pm2? > after)
                    .then(|| m.pm2.iter().any(|p| &p.name == app && p.status == "online")),
                Action::UnloadModel { model } => {
                    let o = m.ollama.as_ref()?;
                    (o.checked_at? > after).then(|| !o.loaded.iter().any(|l| &l.name == model))
                }
                Action::RestartGateway => {
                    let c = m.openclaw.as_ref()?;
                    (c.checked_at? > after).then_some(c.gateway_listening == Some(true))
                }
                Action::ReapZombies | Action::Clean | Action::ShutdownSimulators => Some(true),
            }
        };
        if matches!(
            action,
            Action::ReapZombies | Action::Clean | Action::ShutdownSimulators
        ) {
            return None;
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.config.heal.verify_secs.max(1));
        let mut rx = self.snapshot.clone();
        loop {
            if let Some(m) = self.me()
                && let Some(result) = ok(&m)
                && (result || tokio::time::Instant::now() >= deadline)
            {
                return Some(result);
            }
            if tokio::time::Instant::now() >= deadline {
                return Some(false);
            }
            let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
        }
    }

    /// The loop: a cycle every `interval` until `cancel`.
    pub async fn run(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        // Let the probes fill the snapshot first.
        let mut every = Every::after_one(interval, &cancel);
        while every.tick().await {
            if every.step(self.cycle()).await.is_none() {
                return;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// "Restarted Ollama", "Reaped zombie processes", …
fn past(action: &Action) -> String {
    match action {
        Action::RestartOllama => "Restarted Ollama".to_owned(),
        Action::RestartPm2App { app } => format!("Restarted the pm2 app {app}"),
        Action::ReapZombies => "Reaped zombie processes".to_owned(),
        Action::ShutdownSimulators => "Shut down idle iOS simulators".to_owned(),
        Action::Clean => "Cleaned old caches and temporary files".to_owned(),
        Action::UnloadModel { model } => format!("Unloaded {model}"),
        Action::RestartGateway => "Restarted the OpenClaw gateway".to_owned(),
    }
}

/// Names of booted simulators in `xcrun simctl list devices booted -j`
/// output: `{"devices": {"<runtime>": [{"name", "state": "Booted", ...}]}}`.
pub fn booted_simulators(json_text: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json_text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(runtimes) = v.get("devices").and_then(|d| d.as_object()) {
        for devices in runtimes.values() {
            for d in devices.as_array().into_iter().flatten() {
                if d.get("state").and_then(|s| s.as_str()) == Some("Booted")
                    && let Some(name) = d.get("name").and_then(|n| n.as_str())
                {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simctl_json_is_read_as_data() {
        let text = r#"{"devices": {
            "com.apple.CoreSimulator.SimRuntime.iOS-18-2": [
                {"name": "iPhone 16", "state": "Booted", "udid": "A"},
                {"name": "iPad", "state": "Shutdown", "udid": "B"}
            ],
            "com.apple.CoreSimulator.SimRuntime.iOS-17-5": [
                {"name": "iPhone 15", "state": "Booted", "udid": "C"}
            ]}}"#;
        let mut names = booted_simulators(text);
        names.sort();
        assert_eq!(names, vec!["iPhone 15", "iPhone 16"]);
        assert!(booted_simulators("not json").is_empty());
        assert!(booted_simulators("{\"devices\": 3}").is_empty());
    }
}
