//! What the tray shows, as plain data computed from the engine's snapshot
//! and the watcher's status: the fleet's state (the icon), a tooltip, one
//! line per machine and the heal actions that apply now (the menu). Pure, so
//! it is tested without a desktop; the tray only redraws when it changes.

use clawfleet::action::Action;
use clawfleet::heal::watcher::Status;
use clawfleet::snapshot::{MachineSnapshot, Snapshot};

/// The fleet at a glance (the icon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetState {
    /// Everything answers.
    Healthy,
    /// Something is wrong somewhere.
    Degraded,
    /// Every machine is down, or nothing answers.
    Down,
    /// An action is running.
    Healing,
}

impl FleetState {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            FleetState::Healthy => "healthy",
            FleetState::Degraded => "degraded",
            FleetState::Down => "down",
            FleetState::Healing => "healing",
        }
    }
}

/// One machine's state, as the dashboard colours its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// Fine.
    Ok,
    /// Something is wrong.
    Degraded,
    /// Offline, or its Ollama does not answer.
    Down,
}

/// The state of `m`; `findings` counts this machine's open findings.
pub fn machine_state(m: &MachineSnapshot, findings: usize) -> MachineState {
    if !m.online {
        return MachineState::Down;
    }
    if let Some(o) = &m.ollama
        && o.checked_at.is_some()
        && !o.reachable
    {
        return MachineState::Down;
    }
    let degraded = !m.attention.is_empty() || (m.is_self && findings > 0);
    if degraded {
        MachineState::Degraded
    } else {
        MachineState::Ok
    }
}

/// The fleet's state: healing while an action runs, down when every machine
/// is, degraded when any is not fine.
pub fn fleet_state(snap: &Snapshot, status: Option<&Status>, acting: bool) -> FleetState {
    if acting {
        return FleetState::Healing;
    }
    let findings = status.map_or(0, |s| s.findings.len());
    let states: Vec<MachineState> = snap
        .machines
        .iter()
        .map(|m| machine_state(m, findings))
        .collect();
    if states.is_empty() || states.iter().all(|s| *s == MachineState::Down) {
        FleetState::Down
    } else if states.iter().any(|s| *s != MachineState::Ok) {
        FleetState::Degraded
    } else {
        FleetState::Healthy
    }
}

/// "Mac Mini — Ollama ok · 1 model loaded · $4.10 this month".
pub fn machine_line(m: &MachineSnapshot, findings: usize) -> String {
    let mut parts = Vec::new();
    match machine_state(m, findings) {
        MachineState::Down if !m.online => parts.push(
            match m.peer.as_ref().map(|p| p.state) {
                Some(clawfleet::snapshot::PeerState::Faulty) => "not answering properly",
                _ => "offline",
            }
            .to_owned(),
        ),
        _ => {}
    }
    if m.peer
        .as_ref()
        .is_some_and(|p| p.state == clawfleet::snapshot::PeerState::Stale)
    {
        parts.push("not answering (last data shown)".to_owned());
    }
    if m.online {
        match &m.ollama {
            Some(o) if o.checked_at.is_none() => parts.push("Ollama …".to_owned()),
            Some(o) if o.reachable => {
                parts.push("Ollama ok".to_owned());
                let n = o.loaded.len();
                parts.push(match n {
                    0 => "no model loaded".to_owned(),
                    1 => "1 model loaded".to_owned(),
                    n => format!("{n} models loaded"),
                });
            }
            Some(_) => parts.push("Ollama down".to_owned()),
            None => {}
        }
        let down = m
            .services
            .iter()
            .filter(|s| s.checked_at.is_some() && !s.up)
            .count();
        if down > 0 {
            parts.push(format!(
                "{down} service{} down",
                if down == 1 { "" } else { "s" }
            ));
        }
        let stopped = m
            .pm2
            .iter()
            .filter(|a| a.status != "online" && a.expected)
            .count();
        if stopped > 0 {
            parts.push(format!(
                "{stopped} pm2 app{} not online",
                if stopped == 1 { "" } else { "s" }
            ));
        }
        if !m.zombies.is_empty() {
            parts.push(format!(
                "{} zombie{}",
                m.zombies.len(),
                if m.zombies.len() == 1 { "" } else { "s" }
            ));
        }
    }
    if let Some(c) = &m.costs {
        parts.push(format!("${:.2} this month", c.month_to_date_usd));
    }
    if parts.is_empty() {
        m.name.clone()
    } else {
        format!("{} — {}", m.name, parts.join(" · "))
    }
}

/// A heal offered in the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealItem {
    /// The menu text.
    pub label: String,
    /// The action.
    pub action: Action,
}

impl HealItem {
    /// The menu item id: `heal|<action>|<target>`.
    pub fn id(&self) -> String {
        format!(
            "heal|{}|{}",
            self.action.name(),
            self.action.target().unwrap_or("")
        )
    }
}

/// Parses a menu id made by [`HealItem::id`] back into an action of the
/// closed set (anything else is refused).
pub fn parse_heal_id(id: &str) -> Option<Action> {
    let rest = id.strip_prefix("heal|")?;
    let (name, target) = rest.split_once('|')?;
    Action::parse(name, (!target.is_empty()).then_some(target)).ok()
}

/// The heal actions that apply now, on this machine: each open finding's
/// fix first, then restarting Ollama, unloading each loaded model, restarting
/// pm2 apps that are not online, reaping zombies. Cleaning is left to the
/// dashboard, where it is previewed and confirmed first.
pub fn heal_items(me: Option<&MachineSnapshot>, status: Option<&Status>) -> Vec<HealItem> {
    let mut out: Vec<HealItem> = Vec::new();
    let mut push = |label: String, action: Action| {
        if action != Action::Clean && !out.iter().any(|i| i.action == action) {
            out.push(HealItem { label, action });
        }
    };
    if let Some(s) = status {
        for f in &s.findings {
            if let Some(a) = &f.action {
                push(
                    format!("{} ({})", capitalize(&a.describe()), f.what),
                    a.clone(),
                );
            }
        }
    }
    if let Some(m) = me {
        if m.ollama.is_some() {
            push("Restart Ollama".to_owned(), Action::RestartOllama);
        }
        for l in m.ollama.iter().flat_map(|o| &o.loaded) {
            push(
                format!("Unload {}", l.name),
                Action::UnloadModel {
                    model: l.name.clone(),
                },
            );
        }
        for a in m
            .pm2
            .iter()
            .filter(|a| a.status != "online" && a.status != "missing")
        {
            push(
                format!("Restart pm2 app {}", a.name),
                Action::RestartPm2App {
                    app: a.name.clone(),
                },
            );
        }
        if !m.zombies.is_empty() {
            push("Reap zombies".to_owned(), Action::ReapZombies);
        }
    }
    out.retain(|i| match &i.action {
        Action::RestartPm2App { app } => clawfleet::action::check_app(app).is_ok(),
        Action::UnloadModel { model } => clawfleet::action::check_model(model).is_ok(),
        _ => true,
    });
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Everything the tray shows; the tray is redrawn only when this changes.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayModel {
    /// The icon.
    pub state: FleetState,
    /// The tooltip (where the OS has one).
    pub tooltip: String,
    /// One line per machine.
    pub machines: Vec<String>,
    /// Heal actions that apply now.
    pub heal: Vec<HealItem>,
    /// Self-healing paused.
    pub paused: bool,
    /// The dashboard window is open (the menu offers to close it: on Linux
    /// the menu is the only way to reach it).
    pub dashboard_open: bool,
}

/// The tray's model for this moment.
pub fn tray_model(
    snap: &Snapshot,
    status: Option<&Status>,
    acting: bool,
    dashboard_open: bool,
) -> TrayModel {
    let findings = status.map_or(0, |s| s.findings.len());
    let state = fleet_state(snap, status, acting);
    let machines: Vec<String> = snap
        .machines
        .iter()
        .map(|m| machine_line(m, findings))
        .collect();
    let me = snap.machines.iter().find(|m| m.is_self);
    let problems: Vec<String> = status
        .map(|s| s.findings.iter().take(3).map(|f| f.what.clone()).collect())
        .unwrap_or_default();
    let mut tooltip = format!(
        "ClawFleet: {} ({} machine{})",
        state.as_str(),
        snap.machines.len(),
        if snap.machines.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        tooltip.push_str("\n• ");
        tooltip.push_str(&p);
    }
    TrayModel {
        state,
        tooltip,
        machines,
        heal: heal_items(me, status),
        paused: status.is_some_and(|s| s.paused),
        dashboard_open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawfleet::snapshot::{LoadedModel, OllamaStatus, Pm2App, ServiceStatus, Zombie};
    use jiff::Timestamp;

    fn mini() -> MachineSnapshot {
        MachineSnapshot {
            id: "macmini".into(),
            name: "Mac Mini".into(),
            online: true,
            is_self: true,
            ollama: Some(OllamaStatus {
                reachable: true,
                checked_at: Some(Timestamp::UNIX_EPOCH),
                loaded: vec![LoadedModel {
                    name: "gpt-oss:20b".into(),
                    ..LoadedModel::default()
                }],
                ..OllamaStatus::default()
            }),
            ..MachineSnapshot::default()
        }
    }

    /// `m` with its derived `attention`, as the collector publishes it.
    fn derived(mut m: MachineSnapshot) -> MachineSnapshot {
        m.attention = clawfleet::snapshot::attention(&m);
        m
    }

    fn snap(machines: Vec<MachineSnapshot>) -> Snapshot {
        Snapshot {
            machines: machines.into_iter().map(derived).collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn states_from_the_snapshot() {
        let ok = snap(vec![mini()]);
        assert_eq!(fleet_state(&ok, None, false), FleetState::Healthy);
        assert_eq!(fleet_state(&ok, None, true), FleetState::Healing);
        let mut down = mini();
        if let Some(o) = down.ollama.as_mut() {
            o.reachable = false;
        }
        assert_eq!(
            fleet_state(&snap(vec![down.clone()]), None, false),
            FleetState::Down
        );
        assert_eq!(
            fleet_state(
                &snap(vec![
                    down,
                    MachineSnapshot {
                        online: true,
                        ..MachineSnapshot::default()
                    }
                ]),
                None,
                false
            ),
            FleetState::Degraded,
            "one of two down: degraded"
        );
        let mut svc = mini();
        svc.services.push(ServiceStatus {
            name: "gateway".into(),
            up: false,
            checked_at: Some(Timestamp::UNIX_EPOCH),
            ..ServiceStatus::default()
        });
        assert_eq!(
            fleet_state(&snap(vec![svc]), None, false),
            FleetState::Degraded
        );
        assert_eq!(fleet_state(&snap(vec![]), None, false), FleetState::Down);
    }

    #[test]
    fn a_machine_in_one_line() {
        let mut m = mini();
        assert_eq!(machine_line(&m, 0), "Mac Mini — Ollama ok · 1 model loaded");
        m.zombies.push(Zombie::default());
        m.pm2.push(Pm2App {
            name: "web".into(),
            status: "stopped".into(),
            expected: true,
            ..Pm2App::default()
        });
        assert_eq!(
            machine_line(&m, 0),
            "Mac Mini — Ollama ok · 1 model loaded · 1 pm2 app not online · 1 zombie"
        );
        m.online = false;
        assert_eq!(machine_line(&m, 0), "Mac Mini — offline");
    }

    #[test]
    fn a_peer_polled_stale_offline_or_faulty() {
        use clawfleet::snapshot::{PeerState, PeerView};
        let mut m = mini();
        m.is_self = false;
        m.zombies.clear();
        let with = |m: &MachineSnapshot, state, online| {
            let mut m = m.clone();
            m.online = online;
            m.peer = Some(PeerView {
                state,
                ..PeerView::default()
            });
            derived(m)
        };
        let stale = with(&m, PeerState::Stale, true);
        assert_eq!(machine_state(&stale, 0), MachineState::Degraded);
        assert_eq!(
            machine_line(&stale, 0),
            "Mac Mini — not answering (last data shown) · Ollama ok · 1 model loaded"
        );
        let fresh = with(&m, PeerState::Fresh, true);
        assert_eq!(machine_state(&fresh, 0), MachineState::Ok);
        let off = with(&m, PeerState::Offline, false);
        assert_eq!(machine_line(&off, 0), "Mac Mini — offline");
        let faulty = with(&m, PeerState::Faulty, false);
        assert_eq!(
            machine_line(&faulty, 0),
            "Mac Mini — not answering properly"
        );
        assert_eq!(
            fleet_state(&snap(vec![mini(), off]), None, false),
            FleetState::Degraded
        );
    }

    #[test]
    fn heal_items_apply_now_and_round_trip_through_their_ids() {
        let mut m = mini();
        m.pm2.push(Pm2App {
            name: "web".into(),
            status: "errored".into(),
            ..Pm2App::default()
        });
        m.pm2.push(Pm2App {
            name: "bad;name".into(),
            status: "errored".into(),
            ..Pm2App::default()
        });
        let items = heal_items(Some(&m), None);
        let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Restart Ollama",
                "Unload gpt-oss:20b",
                "Restart pm2 app web"
            ]
        );
        for i in &items {
            assert_eq!(parse_heal_id(&i.id()), Some(i.action.clone()), "{}", i.id());
        }
        assert_eq!(parse_heal_id("heal|rm -rf|"), None);
        assert_eq!(parse_heal_id("heal|restart-pm2-app|a;b"), None);
        assert_eq!(parse_heal_id("quit"), None);
    }
}
