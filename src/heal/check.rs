//! The checks: what is wrong with this machine, read from its snapshot each
//! watcher cycle. Pure over the snapshot plus a little memory of earlier
//! cycles (zombies that stay, pm2 restart counts, simulators seen).

use std::collections::{HashMap, HashSet, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::action::{self, Action};
use crate::config::HealConfig;
use crate::events::Severity;
use crate::snapshot::{Activity, MachineSnapshot, OpenClawStatus, Pm2State};

/// The agent's name as the user knows it, for findings.
fn agent_name(c: &OpenClawStatus) -> &'static str {
    c.install.as_ref().map_or("OpenClaw", |i| i.kind.name())
}

/// Something wrong, with what would fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable key (`ollama`, `pm2:aphos-server`, `zombies`, `disk:/`).
    pub key: String,
    /// In words.
    pub what: String,
    /// How bad.
    pub severity: Severity,
    /// The facts it rests on.
    pub evidence: serde_json::Value,
    /// The action that would fix it, if any.
    pub action: Option<Action>,
}

/// What the checks remember between cycles.
#[derive(Debug, Default)]
pub struct CheckState {
    /// Zombie pid → cycles seen in a row.
    zombies: HashMap<u32, u32>,
    /// pm2 app → (when, restart count) samples within the window.
    pm2: HashMap<String, VecDeque<(Timestamp, u64)>>,
}

/// What the platform-specific probes of the watcher add to the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// Booted iOS simulators (macOS): name and how long seen booted, in minutes.
    pub booted_simulators: Vec<(String, u64)>,
}

/// The findings for `m` (this machine) now.
pub fn check(
    m: &MachineSnapshot,
    extra: &Extra,
    cfg: &HealConfig,
    state: &mut CheckState,
    now: Timestamp,
) -> Vec<Finding> {
    let mut out = Vec::new();

    if let Some(o) = &m.ollama
        && !o.reachable
        && o.failures_in_row >= cfg.ollama_down_probes
    {
        out.push(Finding {
            key: "ollama".into(),
            what: format!(
                "Ollama is not answering ({} probes in a row{})",
                o.failures_in_row,
                o.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            severity: Severity::Critical,
            evidence: json!({"url": o.url, "failures_in_row": o.failures_in_row, "error": o.error}),
            action: Some(Action::RestartOllama),
        });
    }

    // pm2: not online, errored, or restarting in a loop. With no pm2 daemon
    // running the expected apps are `missing`, as they were when probing
    // started a daemon that knew none of them: a finding with no action, for
    // `pm2 restart` would start a daemon that knows no such app and fail.
    let pm2_not_running = matches!(m.pm2_state, Some(Pm2State::NotRunning { .. }));
    let window = SignedDuration::from_secs(i64::try_from(cfg.window_secs).unwrap_or(i64::MAX));
    let mut seen_apps = HashSet::new();
    for app in &m.pm2 {
        seen_apps.insert(app.name.clone());
        let history = state.pm2.entry(app.name.clone()).or_default();
        history.push_back((now, app.restarts));
        while history
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > window)
        {
            history.pop_front();
        }
        let restarted = history
            .front()
            .map_or(0, |(_, first)| app.restarts.saturating_sub(*first));
        let fix = action::check_app(&app.name)
            .ok()
            .map(|()| Action::RestartPm2App {
                app: app.name.clone(),
            });
        let evidence = json!({"app": app.name, "status": app.status, "restarts": app.restarts,
                              "restarts_in_window": restarted, "window_secs": cfg.window_secs});
        match app.status.as_str() {
            "online" | "launching" if restarted >= cfg.pm2_restart_loop => out.push(Finding {
                key: format!("pm2:{}", app.name),
                what: format!(
                    "pm2 app {} restarted {restarted} times in {} min: a restart loop",
                    app.name,
                    cfg.window_secs / 60
                ),
                severity: Severity::Warning,
                evidence,
                // Restarting a crash loop does not help: a human must look.
                action: None,
            }),
            "online" | "launching" => {}
            "missing" if !app.expected => {}
            status => out.push(Finding {
                key: format!("pm2:{}", app.name),
                what: if status == "missing" && pm2_not_running {
                    format!("pm2 app {} is missing: pm2 is not running", app.name)
                } else {
                    format!("pm2 app {} is {status}", app.name)
                },
                severity: if status == "errored" {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                evidence,
                action: if status == "missing" { None } else { fix },
            }),
        }
    }
    state.pm2.retain(|name, _| seen_apps.contains(name));

    // Zombies that stay.
    let now_zombies: HashSet<u32> = m.zombies.iter().map(|z| z.pid).collect();
    state.zombies.retain(|pid, _| now_zombies.contains(pid));
    for z in &m.zombies {
        *state.zombies.entry(z.pid).or_insert(0) += 1;
    }
    let staying: Vec<_> = m
        .zombies
        .iter()
        .filter(|z| {
            state
                .zombies
                .get(&z.pid)
                .is_some_and(|n| *n >= cfg.zombie_cycles)
        })
        .collect();
    if !staying.is_empty() {
        out.push(Finding {
            key: "zombies".into(),
            what: format!(
                "{} zombie process{} not reaped for {} cycles",
                staying.len(),
                if staying.len() == 1 { "" } else { "es" },
                cfg.zombie_cycles
            ),
            severity: Severity::Warning,
            evidence: json!(staying
                .iter()
                .map(|z| json!({"pid": z.pid, "name": z.name, "parent_pid": z.parent_pid, "parent_name": z.parent_name}))
                .collect::<Vec<_>>()),
            action: Some(Action::ReapZombies),
        });
    }

    // Disks low on space.
    for d in &m.disks {
        if d.total_bytes == 0 {
            continue;
        }
        let free = d.available_bytes as f64 / d.total_bytes as f64 * 100.0;
        if free < cfg.disk_free_percent {
            out.push(Finding {
                key: format!("disk:{}", d.mount),
                what: format!("disk {} has {free:.1}% free", d.mount),
                severity: if free < cfg.disk_free_percent / 2.0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                evidence: json!({"mount": d.mount, "available_bytes": d.available_bytes, "total_bytes": d.total_bytes}),
                action: (!cfg.clean.roots.is_empty()).then_some(Action::Clean),
            });
        }
    }

    // Memory pressure while a large model sits loaded.
    if let (Some(mem), Some(o)) = (&m.memory, &m.ollama)
        && mem.total_bytes > 0
    {
        let used = mem.used_bytes as f64 / mem.total_bytes as f64 * 100.0;
        let largest = o
            .loaded
            .iter()
            .filter(|l| l.size_bytes >= cfg.large_model_bytes)
            .max_by_key(|l| l.size_bytes);
        if used > cfg.memory_percent
            && let Some(l) = largest
        {
            out.push(Finding {
                key: "memory".into(),
                what: format!(
                    "memory {used:.0}% used while {} ({:.1} GB) is loaded",
                    l.name,
                    l.size_bytes as f64 / 1e9
                ),
                severity: Severity::Warning,
                evidence: json!({"used_percent": used, "model": l.name, "model_bytes": l.size_bytes}),
                action: action::check_model(&l.name).ok().map(|()| Action::UnloadModel {
                    model: l.name.clone(),
                }),
            });
        }
    }

    // The agent's gateway, down for longer than OpenClaw takes to restart
    // itself: restart it.
    if let Some(c) = &m.openclaw
        && c.config_found
        && c.gateway_listening == Some(false)
    {
        let down_secs = c
            .gateway_down_since
            .map_or(0, |since| now.duration_since(since).as_secs().max(0));
        let down_secs = u64::try_from(down_secs).unwrap_or(0);
        if down_secs >= cfg.gateway_down_secs {
            out.push(Finding {
                key: "gateway".into(),
                what: format!(
                    "the {} gateway has not been listening on port {} for {} min",
                    agent_name(c),
                    c.gateway_port,
                    down_secs / 60
                ),
                severity: Severity::Critical,
                evidence: json!({"port": c.gateway_port, "down_secs": down_secs, "since": c.gateway_down_since}),
                action: Some(Action::RestartGateway),
            });
        }
    }

    // The gateway listens but says nothing: a restart is the fix. A refused
    // handshake (credentials), one still starting, a channel that cannot
    // connect (its token, its network) or a plugin that fails to load is for
    // a human or for time: a restart would not change it.
    if let Some(c) = &m.openclaw
        && c.gateway_listening == Some(true)
        && let Some(h) = &c.gateway_health
        && !h.ok
        && h.failure.as_deref() != Some("starting")
    {
        let restartable = h.failure.as_deref() == Some("silent");
        out.push(Finding {
            key: "gateway-health".into(),
            what: format!(
                "the {} gateway on port {} is not healthy: {}{}",
                agent_name(c),
                c.gateway_port,
                h.error.as_deref().unwrap_or("no reason given"),
                h.hint.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
            ),
            severity: if restartable {
                Severity::Critical
            } else {
                Severity::Warning
            },
            evidence: json!({"port": c.gateway_port, "failure": h.failure, "channels": h.channels, "via": h.via}),
            action: restartable.then_some(Action::RestartGateway),
        });
    }

    // Agents: one stuck on a turn, or waiting for a human's approval.
    for a in m.openclaw.iter().flat_map(|c| &c.agents) {
        let (key, severity) = match a.activity {
            Some(Activity::Stuck) => (format!("agent-stuck:{}", a.id), Severity::Warning),
            Some(Activity::Waiting) => (format!("agent-waiting:{}", a.id), Severity::Info),
            _ => continue,
        };
        out.push(Finding {
            key,
            what: format!(
                "agent {} is {}: {}",
                a.id,
                if a.activity == Some(Activity::Stuck) {
                    "stuck"
                } else {
                    "waiting"
                },
                a.activity_why.as_deref().unwrap_or("no detail")
            ),
            severity,
            evidence: json!({"agent": a.id, "last_activity_at": a.last_activity_at, "model": a.last_model}),
            action: None,
        });
    }

    // The agent's chain has lost every local model: its turns now go to the
    // paid fallbacks. Said before the money is spent; the Ollama findings
    // carry the fixes.
    if let Some(chain) = m.openclaw.as_ref().and_then(|c| c.chain.as_ref())
        && chain.local_all_down
    {
        let local: Vec<&str> = chain
            .models
            .iter()
            .filter(|x| x.local && (x.role == "primary" || x.role == "fallback"))
            .map(|x| x.model.as_str())
            .collect();
        let paid = chain
            .models
            .iter()
            .find(|x| !x.local && (x.role == "primary" || x.role == "fallback"))
            .map(|x| x.model.as_str());
        out.push(Finding {
            key: "chain".into(),
            what: format!(
                "every local model of the agent's chain is down ({}): {}",
                local.join(", "),
                paid.map_or_else(
                    || "its turns will fail".to_owned(),
                    |p| format!("its turns go to {p}, which is paid")
                )
            ),
            severity: Severity::Warning,
            evidence: json!({"local": local, "paid_fallback": paid}),
            action: None,
        });
    }

    // The heartbeat: overdue when it has not run a good while after it was
    // due (OpenClaw, per agent, from its schedule), or when the last
    // heartbeat turn is older than twice its interval (a legacy Clawdbot,
    // once one was ever seen). Left to a human: a heartbeat is skipped on
    // purpose when HEARTBEAT.md holds only headings, so restarting would
    // not help; a gateway that is down has its own finding.
    if let Some(h) = m.openclaw.as_ref().and_then(|c| c.heartbeat.as_ref())
        && h.overdue
        && let Some(last) = h.last_at
    {
        out.push(Finding {
            key: "heartbeat".into(),
            what: format!(
                "the heartbeat is overdue: the last one ({}) was at {last}, and it runs every {} min",
                h.model,
                h.every_secs / 60
            ),
            severity: Severity::Warning,
            evidence: json!({"model": h.model, "last_at": last, "every_secs": h.every_secs, "agent": h.agent}),
            action: None,
        });
    }
    for a in m.openclaw.iter().flat_map(|c| &c.agents) {
        let Some(h) = a.heartbeat.as_ref().filter(|h| h.overdue) else {
            continue;
        };
        out.push(Finding {
            key: format!("heartbeat:{}", a.id),
            what: format!(
                "agent {}'s heartbeat is overdue: due at {}, last run {}",
                a.id,
                h.next_at.map_or_else(|| "?".to_owned(), |t| t.to_string()),
                h.last_at.map_or_else(|| "never seen".to_owned(), |t| t.to_string())
            ),
            severity: Severity::Warning,
            evidence: json!({"agent": a.id, "next_at": h.next_at, "last_at": h.last_at, "every_secs": h.every_secs}),
            action: None,
        });
    }

    // Configured services.
    for s in &m.services {
        if s.up {
            continue;
        }
        // Ollama and the gateway have their own checks (and actions).
        let lower = s.name.to_ascii_lowercase();
        if lower.contains("ollama") || lower.contains("gateway") {
            continue;
        }
        out.push(Finding {
            key: format!("service:{}", s.name),
            what: format!(
                "{} ({}) is down{}",
                s.name,
                s.target,
                s.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            severity: Severity::Warning,
            evidence: json!({"target": s.target, "error": s.error, "http_status": s.http_status}),
            action: None,
        });
    }

    // Idle simulators (macOS).
    let idle: Vec<_> = extra
        .booted_simulators
        .iter()
        .filter(|(_, mins)| *mins >= cfg.simulator_idle_mins)
        .collect();
    if !idle.is_empty() {
        out.push(Finding {
            key: "simulators".into(),
            what: format!(
                "{} iOS simulator{} booted for over {} min",
                idle.len(),
                if idle.len() == 1 { "" } else { "s" },
                cfg.simulator_idle_mins
            ),
            severity: Severity::Info,
            evidence: json!(
                idle.iter()
                    .map(|(n, m)| json!({"name": n, "minutes": m}))
                    .collect::<Vec<_>>()
            ),
            action: Some(Action::ShutdownSimulators),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{GatewayHealth, Heartbeat};

    fn with_heartbeat(h: Option<Heartbeat>) -> MachineSnapshot {
        MachineSnapshot {
            is_self: true,
            online: true,
            openclaw: Some(OpenClawStatus {
                config_found: true,
                gateway_listening: Some(true),
                heartbeat: h,
                ..OpenClawStatus::default()
            }),
            ..MachineSnapshot::default()
        }
    }

    fn findings(m: &MachineSnapshot) -> Vec<Finding> {
        check(
            m,
            &Extra::default(),
            &HealConfig::default(),
            &mut CheckState::default(),
            Timestamp::now(),
        )
    }

    #[test]
    fn an_overdue_heartbeat_is_a_finding_for_a_human() {
        let last: Timestamp = "2026-11-30T10:00:00Z".parse().unwrap();
        let overdue = Heartbeat {
            model: "ollama-macmini/gpt-oss:20b".into(),
            every_secs: 1800,
            last_at: Some(last),
            agent: Some("main".into()),
            overdue: true,
        };
        let f = findings(&with_heartbeat(Some(overdue.clone())));
        let h = f.iter().find(|f| f.key == "heartbeat").expect("a finding");
        assert!(
            h.what.contains("overdue") && h.what.contains("every 30 min"),
            "{}",
            h.what
        );
        assert_eq!(h.action, None, "no automatic fix: left to a human");
        // On time, or never seen (heartbeats may be skipped on purpose): none.
        let on_time = Heartbeat {
            overdue: false,
            ..overdue.clone()
        };
        assert!(
            findings(&with_heartbeat(Some(on_time)))
                .iter()
                .all(|f| f.key != "heartbeat")
        );
        let never = Heartbeat {
            last_at: None,
            ..overdue
        };
        assert!(
            findings(&with_heartbeat(Some(never)))
                .iter()
                .all(|f| f.key != "heartbeat")
        );
        assert!(
            findings(&with_heartbeat(None))
                .iter()
                .all(|f| f.key != "heartbeat")
        );
    }

    #[test]
    fn an_unwell_gateway_is_restarted_a_refused_or_disconnected_one_is_for_a_human() {
        let with = |h: GatewayHealth| {
            let mut m = with_heartbeat(None);
            if let Some(c) = m.openclaw.as_mut() {
                c.gateway_health = Some(h);
            }
            findings(&m).into_iter().find(|f| f.key == "gateway-health")
        };
        let failing = |failure: &str| GatewayHealth {
            failure: Some(failure.into()),
            error: Some(format!("{failure} gateway")),
            ..GatewayHealth::default()
        };
        assert_eq!(
            with(failing("silent")).unwrap().action,
            Some(Action::RestartGateway)
        );
        let plugin = GatewayHealth {
            plugin_errors: vec!["whatsapp: Cannot find module".into()],
            ..failing("unhealthy")
        };
        assert_eq!(with(plugin).unwrap().action, None, "for `openclaw doctor`");
        // A channel that cannot connect: its token or network, not a restart.
        let channel = GatewayHealth {
            channels: vec![crate::snapshot::Channel {
                id: "telegram".into(),
                label: "Telegram".into(),
                state: "disconnected".into(),
                ..Default::default()
            }],
            ..failing("unhealthy")
        };
        let f = with(channel).unwrap();
        assert_eq!(f.action, None);
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            with(failing("refused")).unwrap().action,
            None,
            "a wrong token is not fixed by a restart"
        );
        assert_eq!(with(failing("starting")), None, "starting is not a finding");
        assert_eq!(
            with(GatewayHealth {
                ok: true,
                ..GatewayHealth::default()
            }),
            None
        );
    }

    #[test]
    fn a_gateway_down_longer_than_a_restart_takes_is_restarted() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let down = |secs: i64| {
            let mut m = with_heartbeat(None);
            if let Some(c) = m.openclaw.as_mut() {
                c.gateway_listening = Some(false);
                c.gateway_down_since = Some(now - SignedDuration::from_secs(secs));
            }
            check(
                &m,
                &Extra::default(),
                &HealConfig::default(),
                &mut CheckState::default(),
                now,
            )
            .into_iter()
            .find(|f| f.key == "gateway")
        };
        assert_eq!(down(30), None, "OpenClaw may be restarting itself");
        let f = down(180).expect("down 3 min");
        assert_eq!(f.action, Some(Action::RestartGateway));
        assert!(f.what.contains("for 3 min"), "{}", f.what);
    }

    #[test]
    fn stuck_and_waiting_agents_are_findings_for_a_human() {
        let mut m = with_heartbeat(None);
        if let Some(c) = m.openclaw.as_mut() {
            for (id, activity) in [
                ("main", Activity::Stuck),
                ("ops", Activity::Waiting),
                ("idle", Activity::Idle),
            ] {
                c.agents.push(crate::snapshot::AgentStatus {
                    id: id.into(),
                    activity: Some(activity),
                    activity_why: Some("why".into()),
                    ..Default::default()
                });
            }
        }
        let f = findings(&m);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert!(keys.contains(&"agent-stuck:main"), "{keys:?}");
        assert!(keys.contains(&"agent-waiting:ops"), "{keys:?}");
        assert!(!keys.iter().any(|k| k.ends_with(":idle")), "{keys:?}");
        assert!(f.iter().all(|f| f.action.is_none()));
    }

    #[test]
    fn a_chain_with_every_local_model_down_is_said_before_it_costs() {
        use crate::openclaw::chain::{ChainModel, ChainView};
        let model = |role: &str, model: &str, local: bool, servable: Option<bool>| ChainModel {
            role: role.into(),
            model: model.into(),
            local,
            servable,
            machines: vec![],
        };
        let mut m = with_heartbeat(None);
        if let Some(c) = m.openclaw.as_mut() {
            c.chain = Some(ChainView {
                models: vec![
                    model("primary", "ollama-macmini/gpt-oss:20b", true, Some(false)),
                    model("fallback", "anthropic/claude-sonnet-4-5", false, None),
                ],
                local_all_down: true,
            });
        }
        let f = findings(&m);
        let chain = f.iter().find(|f| f.key == "chain").expect("a finding");
        assert!(
            chain.what.contains("goes to anthropic/claude-sonnet-4-5")
                || chain.what.contains("go to anthropic/claude-sonnet-4-5"),
            "{}",
            chain.what
        );
        assert_eq!(chain.action, None);
    }

    #[test]
    fn an_expected_app_with_pm2_not_running_is_missing_for_a_human() {
        let app = |name: &str, status: &str| crate::snapshot::Pm2App {
            name: name.into(),
            status: status.into(),
            expected: true,
            ..Default::default()
        };
        let m = MachineSnapshot {
            pm2: vec![app("web", "missing")],
            pm2_state: Some(Pm2State::NotRunning { pm2_home: None }),
            ..MachineSnapshot::default()
        };
        let f = findings(&m);
        let web = f.iter().find(|f| f.key == "pm2:web").expect("a finding");
        assert_eq!(web.what, "pm2 app web is missing: pm2 is not running");
        assert_eq!(web.severity, Severity::Warning);
        // As when the probe itself started an empty daemon: `pm2 restart`
        // would start one that does not know the app, and fail.
        assert_eq!(web.action, None);
        // pm2 running but not knowing the app: the same, in its own words.
        let m = MachineSnapshot {
            pm2: vec![app("web", "missing"), app("api", "stopped")],
            pm2_state: Some(Pm2State::Ok),
            ..MachineSnapshot::default()
        };
        let f = findings(&m);
        assert_eq!(f[0].what, "pm2 app web is missing");
        assert_eq!(f[0].action, None);
        assert_eq!(
            f[1].action,
            Some(Action::RestartPm2App { app: "api".into() })
        );
    }
}
