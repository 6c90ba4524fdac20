//! The `Snapshot`: everything ClawFleet knows about the fleet at one moment.
//!
//! One definition, serialized with serde for the fleet API, the CLI, the
//! dashboard and (later) peers. Probes fill it in part by part; each part
//! carries the time it was taken so a reader can tell fresh data from stale.
//!
//! Not for: deciding anything. Checks and heals read it; they live elsewhere.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The whole fleet as this instance sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The ClawFleet version that produced this snapshot.
    pub clawfleet_version: String,
    /// The `id` of the machine this instance runs on.
    pub this_machine: String,
    /// When this snapshot was last changed by any probe.
    pub updated_at: Option<Timestamp>,
    /// When the daemon that serves it started.
    pub started_at: Option<Timestamp>,
    /// When this copy was served (the server's clock): a peer's clock skew
    /// is read from it.
    #[serde(default)]
    pub served_at: Option<Timestamp>,
    /// Every machine: this one first, then the configured peers.
    pub machines: Vec<MachineSnapshot>,
    /// Things the user should know about the view itself (e.g. this machine
    /// is not in the config and is shown alone).
    #[serde(default)]
    pub notices: Vec<String>,
    /// This machine's inference proxy, when it runs.
    #[serde(default)]
    pub proxy: Option<ProxyView>,
}

/// The inference proxy's figures over a recent window, from the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyView {
    /// Where it listens.
    pub listen: String,
    /// Requests, rate, fallbacks, errors, latency percentiles, share per
    /// machine, tokens per machine and model, over the window.
    pub stats: ProxyStats,
    /// Per backend machine: its circuit (`closed`, `open`, `half_open`).
    #[serde(default)]
    pub circuits: Vec<CircuitView>,
}

/// One backend's circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitView {
    /// Machine id.
    pub machine: String,
    /// Its state.
    #[serde(flatten)]
    pub state: CircuitState,
}

/// A circuit's state for the snapshot, the API and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CircuitState {
    /// Requests go through; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures since the last success.
        failures: u32,
    },
    /// Requests skip the backend. An open period that has run out still
    /// shows as open until the next request turns it half-open.
    Open {
        /// Consecutive failures since the last success.
        failures: u32,
        /// Length of the current open period, in milliseconds.
        open_ms: u64,
    },
    /// One probe request is out; the others skip the backend.
    HalfOpen {
        /// Consecutive failures since the last success.
        failures: u32,
    },
}

/// What the proxy did over a time window.
///
/// A request belongs to the window by the time it *started*. Requests that
/// were served by no machine are grouped under `machine: null`; requests that
/// named no model under `model: null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Start of the window (inclusive).
    pub since: Timestamp,
    /// End of the window: now, for the ledger's `stats_since`.
    pub until: Timestamp,
    /// Requests in the window.
    pub requests: u64,
    /// `requests` divided by the window's length in minutes (0 for an empty
    /// or negative window).
    pub requests_per_minute: f64,
    /// Requests served by a fallback (`fallback_depth > 0`).
    pub fallbacks: u64,
    /// Requests whose outcome was not `ok`.
    pub errors: u64,
    /// Percentiles of `duration_ms`; `None` when there were no requests.
    pub duration_ms: Option<Percentiles>,
    /// Percentiles of `ttfb_ms` over the requests that have one; `None` when
    /// none has.
    pub ttfb_ms: Option<Percentiles>,
    /// Per machine, most requests first (ties by name).
    pub machines: Vec<MachineStats>,
    /// Per requested model, most requests first (ties by name).
    pub models: Vec<ModelStats>,
}

/// Latency percentiles, by the nearest-rank method: with the `n` samples
/// sorted ascending, the p-th percentile is the sample at 1-based rank
/// `ceil(p / 100 × n)`. Always one of the samples, never interpolated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many samples.
    pub samples: u64,
    /// Median, in milliseconds.
    pub p50: f64,
    /// 95th percentile, in milliseconds.
    pub p95: f64,
    /// 99th percentile, in milliseconds.
    pub p99: f64,
}

/// Requests and tokens of one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineStats {
    /// The machine that served, or `None` for requests no machine served.
    pub machine: Option<String>,
    /// Requests.
    pub requests: u64,
    /// `requests / total requests`, from 0 to 1.
    pub share: f64,
    /// Tokens.
    pub tokens: TokenSums,
}

/// Requests and tokens of one requested model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    /// The model as clients named it, or `None` when they named none.
    pub model: Option<String>,
    /// Requests.
    pub requests: u64,
    /// Tokens.
    pub tokens: TokenSums,
}

/// Token totals over a set of requests. Requests without usage count as
/// nothing here: `requests_with_usage` says how many had it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSums {
    /// Requests whose backend reported usage.
    pub requests_with_usage: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from cache.
    pub cache_read_tokens: u64,
    /// Prompt tokens written to cache.
    pub cache_write_tokens: u64,
}

/// Whether two model names mean the same model: Ollama lists `qwen3` as
/// `qwen3:latest`.
pub fn same_model(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_owned();
    a == b || strip(a) == strip(b)
}

impl Snapshot {
    /// The entry for the machine this instance runs on.
    pub fn local(&self) -> Option<&MachineSnapshot> {
        self.machines.iter().find(|m| m.is_self)
    }

    /// A machine by id.
    pub fn machine(&self, id: &str) -> Option<&MachineSnapshot> {
        self.machines.iter().find(|m| m.id == id)
    }
}

/// One machine of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineSnapshot {
    /// Stable id from the config (`macmini`); used in `machine/model` pins.
    pub id: String,
    /// Display name (`Mac Mini`).
    pub name: String,
    /// What the machine is for (`orchestrator`, `server`, …).
    pub role: String,
    /// True for the machine this instance runs on.
    pub is_self: bool,
    /// Host name from the config (or the OS, for this machine).
    pub hostname: Option<String>,
    /// Tailscale address, when configured.
    pub tailnet_ip: Option<IpAddr>,
    /// Whether the machine answered recently: always true for this machine;
    /// for a peer, true when its fleet API or its Ollama answered.
    pub online: bool,
    /// Total CPU use in percent (0–100), when measured.
    pub cpu_percent: Option<f32>,
    /// Per-core CPU use in percent, in core order.
    #[serde(default)]
    pub cpu_cores: Vec<f32>,
    /// Memory and swap, when measured.
    pub memory: Option<Memory>,
    /// Every real (non-virtual) mounted disk.
    #[serde(default)]
    pub disks: Vec<Disk>,
    /// Load average (1, 5, 15 min); absent where the OS has none (Windows).
    pub load: Option<LoadAverage>,
    /// Seconds since boot.
    pub uptime_secs: Option<u64>,
    /// Temperature sensors, where the OS exposes them.
    #[serde(default)]
    pub temperatures: Vec<Temperature>,
    /// Number of processes.
    pub process_count: Option<usize>,
    /// Zombie (defunct) processes with their parents.
    #[serde(default)]
    pub zombies: Vec<Zombie>,
    /// The machine's Ollama; `None` when it has none configured.
    pub ollama: Option<OllamaStatus>,
    /// Configured services (ports and URLs).
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// pm2 apps, as `pm2 jlist` reports them plus expected ones that are missing.
    #[serde(default)]
    pub pm2: Vec<Pm2App>,
    /// Whether pm2 could be asked at all.
    pub pm2_state: Option<Pm2State>,
    /// OpenClaw (or a legacy Clawdbot) on this machine: its install, config,
    /// gateway, agents and heartbeat. A peer running an older ClawFleet
    /// sends it as `clawdbot`.
    #[serde(alias = "clawdbot")]
    pub openclaw: Option<OpenClawStatus>,
    /// For a peer with a `fleet_url`: whether its last poll answered.
    pub fleet_api_reachable: Option<bool>,
    /// For a peer with a `fleet_url`: how polling it goes.
    #[serde(default)]
    pub peer: Option<PeerView>,
    /// Newest time any part of this machine's entry was refreshed.
    pub updated_at: Option<Timestamp>,
    /// When each part was last taken.
    #[serde(default)]
    pub probed_at: PartTimes,
    /// This month's costs, as this machine meters them.
    #[serde(default)]
    pub costs: Option<CostSummary>,
    /// Why this machine needs attention, most serious first, one line each
    /// ([`attention`]); empty when all is well. Kept true by the collector
    /// on every change, so the card, the header, the tray and `clawfleet
    /// status` say the same thing.
    #[serde(default)]
    pub attention: Vec<String>,
}

/// Why `m` needs attention, most serious first, each in one line; empty
/// when all is well. The one rule for "degraded" (the watcher's findings
/// for this machine come on top, where they are known).
pub fn attention(m: &MachineSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    if !m.online {
        out.push(match m.peer.as_ref().map(|p| p.state) {
            Some(PeerState::Faulty) => "not answering properly".to_owned(),
            _ => "offline".to_owned(),
        });
        return out;
    }
    if m.peer.as_ref().is_some_and(|p| p.state == PeerState::Stale) {
        out.push("not answering (last data shown)".to_owned());
    }
    if let Some(o) = &m.ollama
        && o.checked_at.is_some()
        && !o.reachable
    {
        out.push("Ollama is down".to_owned());
    }
    if let Some(c) = &m.openclaw {
        let name = c.install.as_ref().map_or("OpenClaw", |i| i.kind.name());
        if c.config_found && c.gateway_listening == Some(false) {
            out.push(format!(
                "the {name} gateway is not listening on port {}",
                c.gateway_port
            ));
        } else if let Some(h) = c.gateway_health.as_ref().filter(|h| !h.ok) {
            out.push(match h.failure.as_deref() {
                Some("starting") => format!("the {name} gateway is starting"),
                _ => format!(
                    "the {name} gateway: {}",
                    h.error.as_deref().unwrap_or("not healthy")
                ),
            });
        }
        for a in &c.agents {
            match a.activity {
                Some(Activity::Stuck) => out.push(format!("agent {} is stuck", a.id)),
                Some(Activity::Waiting) => {
                    out.push(format!("agent {} waits for an approval", a.id));
                }
                _ => {}
            }
            if a.heartbeat.as_ref().is_some_and(|h| h.overdue) {
                out.push(format!("agent {}'s heartbeat is overdue", a.id));
            }
        }
        if c.heartbeat.as_ref().is_some_and(|h| h.overdue) {
            out.push(format!("the {name} heartbeat is overdue"));
        }
        if c.chain.as_ref().is_some_and(|ch| ch.local_all_down) {
            out.push(format!("every local model of {name}'s chain is down"));
        }
    }
    for s in m
        .services
        .iter()
        .filter(|s| s.checked_at.is_some() && !s.up)
    {
        out.push(format!("{} is down", s.name));
    }
    for a in m
        .pm2
        .iter()
        .filter(|a| a.status != "online" && (a.expected || a.status != "missing"))
    {
        out.push(format!("pm2 app {} is {}", a.name, a.status));
    }
    if !m.zombies.is_empty() {
        let n = m.zombies.len();
        out.push(format!(
            "{n} zombie process{}",
            if n == 1 { "" } else { "es" }
        ));
    }
    // A service check named like a probe ("Ollama" on its port) says the
    // same thing twice: once is enough.
    let mut seen = std::collections::HashSet::new();
    out.retain(|reason| seen.insert(reason.clone()));
    out
}

/// When each part of a [`MachineSnapshot`] was last taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartTimes {
    /// CPU, memory, disks, load, temperatures.
    pub system: Option<Timestamp>,
    /// Process count and zombies.
    pub processes: Option<Timestamp>,
    /// Ollama.
    pub ollama: Option<Timestamp>,
    /// Services.
    pub services: Option<Timestamp>,
    /// pm2.
    pub pm2: Option<Timestamp>,
    /// OpenClaw.
    #[serde(alias = "clawdbot")]
    pub openclaw: Option<Timestamp>,
    /// The last poll of the peer's fleet API (answered or not).
    pub peer: Option<Timestamp>,
}

/// How polling a peer goes, from this instance's side. Times are this
/// machine's clock, so a peer's skewed clock never makes it look fresh or
/// stale.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// `waiting` (not polled yet), `fresh`, `stale` (recent polls failed; the
    /// data shown is its last), `offline` (not heard from for
    /// `[fleet] offline_after_secs`), `faulty` (it answered, but not with a
    /// snapshot of itself).
    pub state: PeerState,
    /// When its last good snapshot arrived.
    pub last_seen_at: Option<Timestamp>,
    /// Polls in a row that failed.
    pub failures_in_row: u32,
    /// Why the last poll failed, in words.
    pub error: Option<String>,
    /// Round-trip time of the last good poll, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Its clock minus ours, in seconds (from its `served_at`).
    pub clock_skew_secs: Option<f64>,
    /// The ClawFleet version it runs.
    pub version: Option<String>,
}

/// A peer's state; see [`PeerView::state`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Not polled yet.
    #[default]
    Waiting,
    /// The last poll answered.
    Fresh,
    /// Recent polls failed; its last data is shown with its age.
    Stale,
    /// Not heard from for too long.
    Offline,
    /// It answered with something that is not a snapshot of itself.
    Faulty,
}

impl PeerState {
    /// Its name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Waiting => "waiting",
            PeerState::Fresh => "fresh",
            PeerState::Stale => "stale",
            PeerState::Offline => "offline",
            PeerState::Faulty => "faulty",
        }
    }
}

/// Memory and swap in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Physical memory.
    pub total_bytes: u64,
    /// Memory in use (total minus available).
    pub used_bytes: u64,
    /// Memory the OS could hand out without swapping.
    pub available_bytes: u64,
    /// Swap size.
    pub swap_total_bytes: u64,
    /// Swap in use.
    pub swap_used_bytes: u64,
}

impl Memory {
    /// Used memory as a percentage of total (0 when total is unknown).
    pub fn used_percent(&self) -> f64 {
        percent(self.used_bytes, self.total_bytes)
    }
}

/// One mounted disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// Where it is mounted (`/`, `C:\`).
    pub mount: String,
    /// Device or volume name.
    pub device: String,
    /// File system (`apfs`, `ext4`, `NTFS`).
    pub file_system: String,
    /// Size.
    pub total_bytes: u64,
    /// In use (total minus available).
    pub used_bytes: u64,
    /// Free for unprivileged use.
    pub available_bytes: u64,
    /// Removable media (USB sticks, SD cards).
    pub removable: bool,
}

impl Disk {
    /// Used space as a percentage of total.
    pub fn used_percent(&self) -> f64 {
        percent(self.used_bytes, self.total_bytes)
    }
}

/// Load average.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    /// Over 1 minute.
    pub one: f64,
    /// Over 5 minutes.
    pub five: f64,
    /// Over 15 minutes.
    pub fifteen: f64,
}

/// One temperature sensor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// Sensor label as the OS names it.
    pub label: String,
    /// Current reading in °C.
    pub celsius: f32,
    /// The sensor's critical threshold in °C, if it has one.
    pub critical_celsius: Option<f32>,
}

/// A zombie process and the parent that fails to reap it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Zombie {
    /// Zombie pid.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// Parent pid (the process that must reap it).
    pub parent_pid: Option<u32>,
    /// Parent's name.
    pub parent_name: Option<String>,
}

/// An Ollama server and what it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OllamaStatus {
    /// Base URL probed (`http://127.0.0.1:11434`).
    pub url: String,
    /// True when Ollama answered its API in the documented shape.
    pub reachable: bool,
    /// `/api/version`.
    pub version: Option<String>,
    /// Round-trip time of `/api/version` in milliseconds.
    pub latency_ms: Option<f64>,
    /// What went wrong, in words, when something did.
    pub error: Option<String>,
    /// Installed models (`/api/tags`).
    #[serde(default)]
    pub models: Vec<OllamaModel>,
    /// Models loaded in memory (`/api/ps`).
    #[serde(default)]
    pub loaded: Vec<LoadedModel>,
    /// Probes in a row that found it not answering (0 when it answers).
    #[serde(default)]
    pub failures_in_row: u32,
    /// When this was probed.
    pub checked_at: Option<Timestamp>,
}

/// An installed model (`/api/tags` entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OllamaModel {
    /// `gpt-oss:20b`.
    pub name: String,
    /// Size on disk in bytes.
    pub size_bytes: u64,
    /// Model family (`llama`, `qwen3`).
    pub family: Option<String>,
    /// Parameter size (`20.9B`).
    pub parameter_size: Option<String>,
    /// Quantization (`Q4_K_M`, `MXFP4`).
    pub quantization: Option<String>,
    /// Last modified, as Ollama reports it.
    pub modified_at: Option<String>,
    /// Content digest (`sha256` hex), as Ollama reports it.
    #[serde(default)]
    pub digest: Option<String>,
    /// File format (`gguf`).
    #[serde(default)]
    pub format: Option<String>,
    /// What the config says the model is for.
    pub purpose: Option<String>,
}

/// A model loaded in memory (`/api/ps` entry).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadedModel {
    /// `gpt-oss:20b`.
    pub name: String,
    /// Memory used in bytes.
    pub size_bytes: u64,
    /// Of which in GPU memory.
    pub vram_bytes: u64,
    /// When Ollama will unload it, as Ollama reports it.
    pub expires_at: Option<String>,
}

/// A configured service (a TCP port or an HTTP URL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name from the config (`OpenClaw gateway`).
    pub name: String,
    /// `tcp` or `http`.
    pub kind: String,
    /// `host:port` or the URL probed.
    pub target: String,
    /// True when the port accepted a connection / the URL answered as expected.
    pub up: bool,
    /// Time to connect (tcp) or to the response head (http), in milliseconds.
    pub latency_ms: Option<f64>,
    /// HTTP status received, for `http` services.
    pub http_status: Option<u16>,
    /// What went wrong, in words.
    pub error: Option<String>,
    /// When this was probed.
    pub checked_at: Option<Timestamp>,
}

/// One pm2 app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pm2App {
    /// App name (`aphos-server-prod`).
    pub name: String,
    /// pm2's id, when it is known to pm2.
    pub pm_id: Option<u32>,
    /// pm2 status (`online`, `stopped`, `errored`, `launching`, …), or
    /// `missing` for an app the config expects but pm2 does not know.
    pub status: String,
    /// Restart count.
    pub restarts: u64,
    /// Seconds since it was (re)started, when online.
    pub uptime_secs: Option<u64>,
    /// CPU in percent of one core.
    pub cpu_percent: Option<f32>,
    /// Resident memory in bytes.
    pub memory_bytes: Option<u64>,
    /// OS pid, when running.
    pub pid: Option<u32>,
    /// True when the config lists this app.
    pub expected: bool,
}

/// Whether pm2 could be asked.
///
/// A state this version does not know (from a newer peer) is read as
/// [`Pm2State::Unknown`] rather than failing the whole snapshot. A peer
/// older than `not_running` cannot read that one: it refuses the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Pm2State {
    /// `pm2 jlist` answered.
    Ok,
    /// No pm2 on this machine: a state, not an error.
    NotInstalled,
    /// pm2 is installed but no daemon runs for its home, so pm2 was not
    /// run (it would have started one): a state, not an error.
    NotRunning {
        /// The `PM2_HOME` looked in.
        #[serde(default)]
        pm2_home: Option<String>,
    },
    /// pm2 is there but failed, hung, or printed something unreadable.
    Error {
        /// What went wrong, in words.
        message: String,
    },
    /// A state of a newer ClawFleet that this one does not know.
    #[serde(other)]
    Unknown,
}

/// OpenClaw (or a legacy Clawdbot) on this machine: where it is, its model
/// chain, its gateway, its agents. Fields added since the first version are
/// `serde(default)`, and none changed type, so peers of either version read
/// each other's snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenClawStatus {
    /// The config file OpenClaw reads.
    pub config_path: Option<String>,
    /// Whether that file exists.
    pub config_found: bool,
    /// Which install was found, how, and its version.
    #[serde(default)]
    pub install: Option<Install>,
    /// Why the config could not be read, when it could not.
    pub error: Option<String>,
    /// `agents.defaults.model.primary`.
    pub primary_model: Option<String>,
    /// `agents.defaults.model.fallbacks`.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// `agents.defaults.heartbeat.model`.
    pub heartbeat_model: Option<String>,
    /// `agents.defaults.heartbeat.every` (e.g. `30m`).
    pub heartbeat_every: Option<String>,
    /// `agents.defaults.subagents.model` (its primary).
    pub subagent_model: Option<String>,
    /// Configured model providers (never with their keys).
    #[serde(default)]
    pub providers: Vec<OpenClawProvider>,
    /// The gateway's port (see `gateway_port_from`).
    pub gateway_port: u16,
    /// What named the port: `$OPENCLAW_GATEWAY_PORT`, `gateway.port`, a
    /// profile, the running gateway's lock file, or the default.
    #[serde(default)]
    pub gateway_port_from: Option<String>,
    /// `gateway.bind`.
    pub gateway_bind: Option<String>,
    /// How ClawFleet authenticates to the gateway, in words (`token from
    /// gateway.auth.token`), never the secret; or why it cannot.
    #[serde(default)]
    pub gateway_auth: Option<String>,
    /// Whether the gateway port accepts connections.
    pub gateway_listening: Option<bool>,
    /// Since when it has not, as seen by this daemon.
    #[serde(default)]
    pub gateway_down_since: Option<Timestamp>,
    /// The gateway's health, when its port is open.
    #[serde(default)]
    pub gateway_health: Option<GatewayHealth>,
    /// Its model chains against what the fleet can serve now.
    #[serde(default)]
    pub chain: Option<ChainView>,
    /// Its agents: sessions, activity, model, heartbeat.
    #[serde(default)]
    pub agents: Vec<AgentStatus>,
    /// A legacy Clawdbot's last heartbeat turn (OpenClaw's are per agent,
    /// in `agents`).
    #[serde(default)]
    pub heartbeat: Option<Heartbeat>,
    /// What went wrong reading its state (an agent database refused, …).
    #[serde(default)]
    pub state_problems: Vec<String>,
    /// When this was read.
    pub checked_at: Option<Timestamp>,
}

/// Which agent an install is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentKind {
    /// OpenClaw (2026.2 and later): `openclaw`, `~/.openclaw`.
    #[default]
    #[serde(rename = "openclaw")]
    OpenClaw,
    /// A legacy Clawdbot 2026.1: `clawdbot`, `~/.clawdbot`.
    #[serde(rename = "clawdbot")]
    Clawdbot,
}

impl AgentKind {
    /// Its name as users know it.
    pub fn name(self) -> &'static str {
        match self {
            AgentKind::OpenClaw => "OpenClaw",
            AgentKind::Clawdbot => "Clawdbot (legacy)",
        }
    }
}

/// The install found on this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Install {
    /// OpenClaw or a legacy Clawdbot.
    pub kind: AgentKind,
    /// The config file it reads.
    pub config_path: String,
    /// Whether that file exists.
    pub config_found: bool,
    /// Its state folder (agents, databases, locks).
    pub state_dir: String,
    /// How it was found, in words (`$OPENCLAW_STATE_DIR`, `[openclaw]
    /// config_path in ClawFleet's config`, …).
    pub found_by: String,
    /// The named profile, if any.
    pub profile: Option<String>,
    /// Its version, when something says it.
    pub version: Option<String>,
    /// What said it (the running gateway, its state database, its config).
    pub version_from: Option<String>,
    /// Other config files and installs seen and not read, with why.
    #[serde(default)]
    pub also_found: Vec<String>,
    /// Its gateway's service names and command.
    #[serde(default)]
    pub services: GatewayServices,
}

/// Where the gateway runs as a service, and the command that manages it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayServices {
    /// The agent's command (`openclaw`, or `clawdbot` for a legacy one).
    pub cli: String,
    /// macOS launchd label (`ai.openclaw.gateway`).
    pub launchd_label: String,
    /// systemd user unit (`openclaw-gateway`).
    pub systemd_unit: String,
    /// Windows scheduled task (`OpenClaw Gateway`).
    pub windows_task: String,
}

/// What the gateway says about itself: the handshake, then `health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayHealth {
    /// It answered: the handshake worked and `health` gave a snapshot.
    pub ok: bool,
    /// What went wrong, in words: the gateway's own when it said why.
    pub error: Option<String>,
    /// `refused` (it refused our credentials), `no_credential` (none was
    /// found to send), `starting` (it says it is starting), `silent` (it
    /// accepted the socket and said nothing), `unhealthy` (it answered
    /// that it is not well), `broken` (not the protocol), or none when ok.
    pub failure: Option<String>,
    /// What to do about the failure.
    #[serde(default)]
    pub hint: Option<String>,
    /// The protocol it speaks (`hello-ok`).
    pub protocol: Option<u64>,
    /// Its version, when it says.
    pub server_version: Option<String>,
    /// How long it has been up.
    #[serde(default)]
    pub uptime_secs: Option<u64>,
    /// `heartbeatSeconds` from `health` (the default agent's interval).
    pub heartbeat_seconds: Option<u64>,
    /// The agents `health` lists (ids).
    #[serde(default)]
    pub agents: Vec<String>,
    /// Its channels (Telegram, WhatsApp, Discord, …).
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Plugins that failed to load, `id: error`.
    #[serde(default)]
    pub plugin_errors: Vec<String>,
    /// What it says is degraded (its event loop, its model runtime).
    #[serde(default)]
    pub degraded: Vec<String>,
    /// Its last heartbeat run, when it has run one since it started.
    #[serde(default)]
    pub last_heartbeat: Option<GatewayHeartbeat>,
    /// `websocket`, or `cli` when `openclaw health --json` answered instead.
    #[serde(default)]
    pub via: Option<String>,
    /// Round trip of the whole exchange.
    pub latency_ms: Option<f64>,
}

/// One channel of the gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// Its id (`telegram`).
    pub id: String,
    /// Its name as OpenClaw shows it (`Telegram`).
    pub label: String,
    /// `ok`, or the gateway's word for what is wrong (`disconnected`,
    /// `not-running`, `stale-socket`, `stuck`, …).
    pub state: String,
    /// Connected now, when it says.
    pub connected: Option<bool>,
    /// Its last error, when it says.
    pub last_error: Option<String>,
}

/// The gateway's last heartbeat run (kept in its memory: none after a
/// restart until one runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayHeartbeat {
    /// When it ran.
    pub at: Option<Timestamp>,
    /// `sent`, `ok-empty`, `ok-token`, `skipped`, `failed`.
    pub status: Option<String>,
    /// Why, when it says.
    pub reason: Option<String>,
}

/// One agent of the install.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Its id.
    pub id: String,
    /// Sessions it keeps.
    pub sessions: usize,
    /// Its last assistant turn.
    pub last_turn_at: Option<Timestamp>,
    /// That turn's model.
    pub last_model: Option<String>,
    /// And provider.
    pub last_provider: Option<String>,
    /// The default agent.
    #[serde(default)]
    pub is_default: bool,
    /// `working`, `idle`, `stuck` or `waiting` (on an approval), when it
    /// could be told.
    #[serde(default)]
    pub activity: Option<Activity>,
    /// Why it is in that state, in words.
    #[serde(default)]
    pub activity_why: Option<String>,
    /// Its last activity of any kind (a turn begun, an event written).
    #[serde(default)]
    pub last_activity_at: Option<Timestamp>,
    /// The model its chain starts with (`provider/model`).
    #[serde(default)]
    pub selected_model: Option<String>,
    /// Its last turn was served by a fallback, not its selected model.
    #[serde(default)]
    pub on_fallback: bool,
    /// Its heartbeat.
    #[serde(default)]
    pub heartbeat: Option<AgentHeartbeat>,
}

/// What an agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// A turn is running and making progress.
    Working,
    /// No turn is running.
    Idle,
    /// A turn is open and nothing has happened for longer than
    /// `[openclaw] stuck_after_secs`.
    Stuck,
    /// A turn waits on a human's approval.
    Waiting,
}

/// An OpenClaw agent's heartbeat, from its schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentHeartbeat {
    /// Its interval in seconds; none when it is off.
    pub every_secs: Option<u64>,
    /// When it last ran.
    pub last_at: Option<Timestamp>,
    /// How that run ended (`ok`, `error`, `skipped`).
    pub last_status: Option<String>,
    /// When it is due next.
    pub next_at: Option<Timestamp>,
    /// Running now.
    pub running: bool,
    /// Due and not run for longer than a grace period.
    pub overdue: bool,
    /// Why heartbeats do not run, when they cannot (the scheduler is off).
    pub off_why: Option<String>,
}

/// A legacy Clawdbot's last heartbeat turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The heartbeat model (`provider/model`).
    pub model: String,
    /// Its interval in seconds, when the config says (`every`, default 30m).
    pub every_secs: u64,
    /// The last heartbeat turn found.
    pub last_at: Option<Timestamp>,
    /// By which agent.
    pub agent: Option<String>,
    /// The last one is older than twice the interval.
    pub overdue: bool,
}

/// A model provider of the agent, without secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenClawProvider {
    /// Provider name (`ollama-macmini`).
    pub name: String,
    /// `baseUrl`.
    pub base_url: Option<String>,
    /// `api` kind (`ollama`, `openai-completions`, …).
    pub api: Option<String>,
    /// Model ids it offers.
    #[serde(default)]
    pub models: Vec<String>,
    /// `timeoutSeconds`, when set.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// This machine's costs, as the snapshot carries them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// `YYYY-MM`.
    pub month: String,
    /// The time zone days are counted in.
    pub time_zone: String,
    /// Cloud spend today.
    pub today_usd: Option<f64>,
    /// Cloud spend of the month so far.
    pub month_to_date_usd: f64,
    /// Projection: low, expected, high.
    pub projection: Option<[f64; 3]>,
    /// What local models saved this month.
    pub savings_usd: Option<f64>,
    /// The model savings are priced at.
    pub savings_model: String,
    /// The machine's monthly budget.
    pub budget_usd: Option<f64>,
    /// The month before, in full.
    pub previous_month_usd: f64,
    /// Tokens served locally this month.
    pub local_tokens: u64,
    /// Tokens sent to the cloud this month.
    pub cloud_tokens: u64,
    /// Cloud share over the leak window.
    pub share: Share,
    /// Models used without a price.
    pub unpriced_models: Vec<String>,
    /// Alarms on now, in words.
    pub alarms: Vec<String>,
    /// Doubts about the figures.
    pub flags: Vec<String>,
    /// The last transcript pass.
    pub transcripts: Option<IngestReport>,
    /// Why the figures could not be computed, when they could not.
    pub error: Option<String>,
    /// When computed.
    pub updated_at: Option<Timestamp>,
}

/// Local and cloud tokens over the leak window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Tokens served by local models.
    pub local_tokens: u64,
    /// Tokens sent to the cloud.
    pub cloud_tokens: u64,
    /// Cloud tokens as a percentage of all; `None` with no tokens.
    pub cloud_percent: Option<f64>,
    /// The window, in minutes.
    pub window_mins: u64,
}

/// What one ingest pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestReport {
    /// Transcript files found (JSONL, archives, Doctor's import archive).
    pub files_seen: usize,
    /// Files that had new bytes.
    pub files_read: usize,
    /// Complete lines read (files and archives).
    pub lines_read: u64,
    /// New turns stored.
    pub turns_added: u64,
    /// Turns already stored (a line or event read again, another copy).
    pub duplicates: u64,
    /// Lines skipped: not JSON, not an object, or too long.
    pub corrupt_lines: u64,
    /// Turns stored with something wrong with them (see `TurnFlags`).
    pub flagged_turns: u64,
    /// Bytes read from files (compressed bytes for a compressed file).
    pub bytes_read: u64,
    /// OpenClaw agent databases found.
    pub stores_seen: usize,
    /// Agent databases that could not be read (locked, corrupt, not SQLite,
    /// a newer schema): see `problems`.
    pub stores_refused: usize,
    /// Sessions of the agent databases with new events.
    pub sessions_read: u64,
    /// `transcript_events` rows read.
    pub events_read: u64,
    /// Events skipped: not JSON, a zstd blob that does not decode to its
    /// declared size.
    pub corrupt_events: u64,
    /// Archives read whole (deleted/reset blobs, cold archives).
    pub archives_read: u64,
    /// What was wrong, at most 20 entries: `path:line: what`.
    pub problems: Vec<String>,
}

/// One model of a chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainModel {
    /// `primary`, `fallback`, `heartbeat` or `subagent`.
    pub role: String,
    /// As the agent names it (`ollama-macmini/gpt-oss:20b`).
    pub model: String,
    /// Served by an Ollama of the fleet (not a cloud API).
    pub local: bool,
    /// For a local model: whether a machine that answered has it now.
    pub servable: Option<bool>,
    /// The machines that have it now.
    #[serde(default)]
    pub machines: Vec<String>,
}

/// The chains, and whether the main chain has lost every local model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainView {
    /// Every model, in chain order (primary, fallbacks, heartbeat,
    /// sub-agents).
    pub models: Vec<ChainModel>,
    /// The primary and fallbacks have local models and none of them can be
    /// served: turns go to the cloud.
    pub local_all_down: bool,
}
