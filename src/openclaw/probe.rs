//! The agent's part of the snapshot: find the install, read its config,
//! check its gateway, read its agents. Never fails: what cannot be read is
//! said in words, and what could be read is still reported.
//!
//! The file and database reads run on the blocking pool (they never block:
//! see `outside` and `store`), the gateway's exchange on the runtime. When
//! the websocket cannot be used (a secret only OpenClaw can read, a
//! credential it refuses), `openclaw health --json` answers instead, at most
//! every [`CLI_EVERY`] (it starts Node: seconds of CPU).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::auth::{self, Auth, GatewayEnv};
use super::config::{self, AgentConfig};
use super::gateway::{self, GatewayAgent};
use super::locate::{self, Environment};
use super::{sessions, store};
use crate::config::OpenClawConfig;
use crate::snapshot::{AgentKind, AgentStatus, GatewayHealth, Install, OpenClawStatus};

/// How often `openclaw health --json` may run.
pub const CLI_EVERY: Duration = Duration::from_secs(300);

/// How long `openclaw health --json` may take (Node's start is slow on a
/// loaded machine).
const CLI_LIMIT: Duration = Duration::from_secs(30);

/// The last answer of `openclaw health --json`, kept between probes.
#[derive(Default)]
pub struct CliCache(Mutex<Option<(Instant, GatewayHealth, Vec<GatewayAgent>)>>);

/// What the probe needs besides the environment.
pub struct Settings {
    /// `[openclaw]`.
    pub ours: OpenClawConfig,
    /// The time limit of one network check.
    pub timeout: Duration,
}

/// What the blocking half of the probe read.
struct Read {
    install: Install,
    config: Option<AgentConfig>,
    error: Option<String>,
    auth: Auth,
    lock_port: Option<u16>,
    state: Option<store::StateRead>,
    agents: Vec<(String, Result<store::AgentRead, String>)>,
    legacy: Option<(Vec<AgentStatus>, Option<crate::snapshot::Heartbeat>)>,
}

/// Probes the install `settings` and `env` point at, at `now`.
pub async fn probe(settings: &Settings, env: &Environment, cli: &CliCache) -> OpenClawStatus {
    let ours = settings.ours.clone();
    let blocking_env = env.clone();
    let read = tokio::task::spawn_blocking(move || read_files(&ours, &blocking_env));
    let read = match read.await {
        Ok(r) => r,
        Err(e) => {
            return OpenClawStatus {
                error: Some(format!("reading OpenClaw's files failed: {e}")),
                checked_at: Some(Timestamp::now()),
                ..OpenClawStatus::default()
            };
        }
    };
    let mut status = assemble(&read, env, settings);
    status.gateway_listening = Some(port_accepts(status.gateway_port, settings.timeout).await);
    if status.config_found && status.gateway_listening == Some(true) {
        let (health, agents) = gateway_health(
            &read,
            &settings.ours,
            status.gateway_port,
            settings.timeout,
            cli,
        )
        .await;
        merge_gateway_agents(&mut status.agents, &agents);
        if let (Some(v), Some(install)) = (&health.server_version, status.install.as_mut()) {
            install.version = Some(v.clone());
            install.version_from = Some("its running gateway".to_owned());
        }
        status.gateway_health = Some(health);
    }
    status.checked_at = Some(Timestamp::now());
    status
}

/// Everything that reads files: locate, the config, the gateway's secret,
/// the lock, the databases (or a legacy Clawdbot's transcripts).
fn read_files(ours: &OpenClawConfig, env: &Environment) -> Read {
    let install = locate::locate(ours, env);
    let state_dir = PathBuf::from(&install.state_dir);
    let mut read = Read {
        config: None,
        error: None,
        auth: Auth::Missing("the config was not read".to_owned()),
        lock_port: None,
        state: None,
        agents: Vec::new(),
        legacy: None,
        install,
    };
    let config_path = Path::new(&read.install.config_path);
    if read.install.config_found {
        match crate::outside::read_text(config_path, config::MAX_CONFIG_BYTES) {
            Ok(text) => match config::read(&text) {
                Ok(c) => {
                    if !c.problems.is_empty() {
                        read.error = Some(c.problems.join("; "));
                    }
                    let genv = GatewayEnv::new(env, &state_dir);
                    let shown = locate::tilde(config_path, env.home().as_deref());
                    read.auth = auth::resolve(&c.gateway_auth, &genv, &shown);
                    read.config = Some(c);
                }
                Err(why) => read.error = Some(format!("{}: {why}", config_path.display())),
            },
            Err(e) => read.error = Some(e.to_string()),
        }
    }
    read.lock_port = locate::running_gateway(&state_dir).and_then(|l| l.port);
    match read.install.kind {
        AgentKind::OpenClaw => {
            let state_db = state_dir.join("state").join("openclaw.sqlite");
            if state_db.is_file() {
                match store::read_state(&state_db, Timestamp::now()) {
                    Ok(s) => read.state = Some(s),
                    Err(e) => read.error = Some(join(read.error.take(), e)),
                }
            }
            for (id, db) in store::agent_databases(&state_dir) {
                let r = store::read_agent(&db, &id);
                read.agents.push((id, r));
            }
            if read.agents.is_empty() {
                // Not moved to SQLite yet (before 2026.9, or not run since):
                // the JSONL transcripts.
                read.legacy = Some(legacy(&read, &state_dir));
            }
        }
        AgentKind::Clawdbot => read.legacy = Some(legacy(&read, &state_dir)),
    }
    read
}

fn join(a: Option<String>, b: String) -> String {
    match a {
        Some(a) => format!("{a}; {b}"),
        None => b,
    }
}

/// A legacy install's agents and heartbeat, from its JSONL transcripts.
fn legacy(read: &Read, state_dir: &Path) -> (Vec<AgentStatus>, Option<crate::snapshot::Heartbeat>) {
    let heartbeat = read.config.as_ref().and_then(|c| {
        let model = c.heartbeat_model.clone()?;
        let every = c
            .heartbeat_every
            .as_deref()
            .and_then(sessions::parse_every)
            .unwrap_or(30 * 60);
        Some((model, every))
    });
    sessions::read(
        &state_dir.join("agents"),
        heartbeat.as_ref().map(|(m, e)| (m.as_str(), *e)),
        Timestamp::now(),
    )
}

/// The status from what was read, before the gateway is asked.
fn assemble(read: &Read, env: &Environment, settings: &Settings) -> OpenClawStatus {
    let mut install = read.install.clone();
    if install.kind == AgentKind::OpenClaw {
        // The command as configured (a full path, when a login item's PATH
        // lacks npm's folder).
        install.services.cli = settings.ours.cli.clone();
    }
    let c = read.config.clone().unwrap_or_default();
    let (mut port, mut port_from) = locate::gateway_port(
        install.kind,
        c.gateway_port,
        install.profile.as_deref(),
        env,
    );
    if let Some(p) = read.lock_port {
        port = p;
        port_from = "the running gateway's lock file".to_owned();
    }
    if let Some(v) = read.state.as_ref().and_then(|s| s.version.clone()) {
        install.version = Some(v);
        install.version_from = Some("its state database".to_owned());
    } else if let Some(v) = &c.written_by {
        install.version = Some(v.clone());
        install.version_from = Some("its config (meta.lastTouchedVersion)".to_owned());
    }
    let now = Timestamp::now();
    let stuck_after = Duration::from_secs(settings.ours.stuck_after_secs.max(1));
    let mut agents: Vec<AgentStatus> = Vec::new();
    let mut problems = Vec::new();
    for (id, r) in &read.agents {
        let selected = c
            .agents
            .iter()
            .find(|(a, _)| a == id)
            .and_then(|(_, m)| m.clone())
            .or_else(|| c.primary_model.clone());
        let mut a = AgentStatus {
            id: id.clone(),
            selected_model: selected,
            ..AgentStatus::default()
        };
        match r {
            Ok(r) => {
                a.sessions = r.sessions;
                let approvals = read
                    .state
                    .as_ref()
                    .and_then(|s| s.approvals.get(id).copied())
                    .unwrap_or(0);
                let (activity, why) = store::activity(r, approvals, now, stuck_after);
                a.activity = Some(activity);
                a.activity_why = Some(why);
                a.last_activity_at = [r.last_update, r.run.as_ref().and_then(|x| x.last_at)]
                    .into_iter()
                    .flatten()
                    .max();
                if let Some(run) = &r.run {
                    if let Some(m) = &run.last_model {
                        let (provider, model) = m.split_once('/').unwrap_or(("", m));
                        a.last_model = Some(model.to_owned());
                        a.last_provider = (!provider.is_empty()).then(|| provider.to_owned());
                        a.last_turn_at = run.last_at;
                    }
                    // Its run began on one model and is served by another.
                    a.on_fallback = run.first_model.is_some()
                        && run.last_model.is_some()
                        && run.first_model != run.last_model;
                }
            }
            Err(e) => problems.push(format!("agent {id}: {e}")),
        }
        a.heartbeat = read
            .state
            .as_ref()
            .and_then(|s| s.heartbeats.get(id))
            .map(|s| store::heartbeat(s, now));
        agents.push(a);
    }
    let mut heartbeat = None;
    if let Some((legacy_agents, hb)) = &read.legacy {
        agents.extend(legacy_agents.iter().cloned());
        heartbeat = hb.clone();
    }
    if install.kind == AgentKind::OpenClaw && c.cron_enabled == Some(false) {
        for a in &mut agents {
            let h = a.heartbeat.get_or_insert_with(Default::default);
            h.overdue = false;
            h.off_why = Some(
                "OpenClaw's scheduler is off (cron.enabled = false): heartbeats do not run"
                    .to_owned(),
            );
        }
    }
    OpenClawStatus {
        config_path: Some(install.config_path.clone()),
        config_found: install.config_found,
        error: read.error.clone(),
        primary_model: c.primary_model,
        fallbacks: c.fallbacks,
        heartbeat_model: c.heartbeat_model,
        heartbeat_every: c.heartbeat_every,
        subagent_model: c.subagent_model,
        providers: c.providers,
        gateway_port: port,
        gateway_port_from: Some(port_from),
        gateway_bind: c.gateway_bind,
        gateway_auth: read.config.is_some().then(|| read.auth.describe()),
        agents,
        heartbeat,
        state_problems: problems,
        install: Some(install),
        ..OpenClawStatus::default()
    }
}

/// The gateway's health: its websocket; where that is refused for want of
/// a secret ClawFleet can read (or a device to pair), `openclaw health
/// --json`, which reads OpenClaw's secrets itself.
async fn gateway_health(
    read: &Read,
    ours: &OpenClawConfig,
    port: u16,
    timeout: Duration,
    cli: &CliCache,
) -> (GatewayHealth, Vec<GatewayAgent>) {
    let (ws, agents) = gateway::health(port, &read.auth, timeout).await;
    let refused = matches!(ws.failure.as_deref(), Some("no_credential" | "refused"));
    let ours_unknown = matches!(read.auth, Auth::Unreadable(_) | Auth::Missing(_));
    let pairing = ws
        .hint
        .as_deref()
        .is_some_and(|t| t.contains("devices approve"));
    if read.install.kind != AgentKind::OpenClaw || !(refused && (ours_unknown || pairing)) {
        return (ws, agents);
    }
    // A recent answer is reused: the CLI starts Node.
    let cached = cli.0.lock().ok().and_then(|guard| {
        guard
            .as_ref()
            .filter(|(at, _, _)| at.elapsed() < CLI_EVERY)
            .map(|(_, h, a)| (h.clone(), a.clone()))
    });
    let (h, by_cli) = match cached {
        Some(c) => c,
        None => {
            let fresh = gateway::health_by_cli(
                &ours.cli,
                Path::new(&read.install.state_dir),
                Path::new(&read.install.config_path),
                CLI_LIMIT,
            )
            .await;
            if let Ok(mut guard) = cli.0.lock() {
                *guard = Some((Instant::now(), fresh.0.clone(), fresh.1.clone()));
            }
            fresh
        }
    };
    if h.failure.is_none() || h.failure.as_deref() == Some("unhealthy") {
        return (h, by_cli);
    }
    // Neither worked: the websocket's refusal, and why the CLI did not help.
    let mut ws = ws;
    ws.hint = Some(format!(
        "{}; `openclaw health` did not answer either: {}",
        ws.hint
            .as_deref()
            .unwrap_or("ClawFleet cannot authenticate"),
        h.error.as_deref().unwrap_or("no reason")
    ));
    (ws, agents)
}

/// What the gateway says of each agent, into the agents read from disk:
/// whether it is the default, its heartbeat interval, and its session count
/// where its database could not be read (the gateway's `health` may be a
/// minute old; the database is not); agents only it knows are added.
fn merge_gateway_agents(agents: &mut Vec<AgentStatus>, from_gateway: &[GatewayAgent]) {
    for g in from_gateway {
        let a = match agents.iter_mut().find(|a| a.id == g.id) {
            Some(a) => a,
            None => {
                agents.push(AgentStatus {
                    id: g.id.clone(),
                    ..AgentStatus::default()
                });
                let last = agents.len() - 1;
                &mut agents[last]
            }
        };
        a.is_default = g.is_default;
        if a.activity.is_none()
            && let Some(n) = g.sessions
        {
            a.sessions = usize::try_from(n).unwrap_or(a.sessions);
        }
        if g.heartbeat_enabled == Some(false) {
            let h = a.heartbeat.get_or_insert_with(Default::default);
            h.every_secs = None;
            h.overdue = false;
            h.off_why
                .get_or_insert_with(|| "off in OpenClaw's config".to_owned());
        } else if let Some(every) = g.heartbeat_every_secs {
            let h = a.heartbeat.get_or_insert_with(Default::default);
            h.every_secs.get_or_insert(every);
        }
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port` within
/// `timeout`. A refusal and a timeout are both "no".
async fn port_accepts(port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port))
        )
        .await,
        Ok(Ok(_))
    )
}
