//! Configuration: one TOML file, an embedded default that mirrors the
//! reference fleet, and validation that points at the exact key.
//!
//! Where the file is: `--config PATH`, else `$CLAWFLEET_CONFIG`, else
//! `config.toml` in the platform config folder (see [`default_path`]). With no
//! file at all the embedded default ([`DEFAULT_TOML`]) is used.
//!
//! Not for: secrets. Tokens and API keys live in owner-only files or the OS
//! keychain, never in this file's values or in logs.

pub(crate) mod locate;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use validate::{Issue, Seg, check_clean_root};

mod error;

pub use error::{ConfigError, LocatedIssue};

/// The embedded default configuration, with comments. `clawfleet config init`
/// writes exactly this text.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "CLAWFLEET_CONFIG";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which `[[machines]]` entry this machine is. When unset, the machine
    /// whose `hostname` matches the OS host name.
    #[serde(default)]
    pub this_machine: Option<String>,
    /// Where ClawFleet keeps its state (ledger, runtime files). Default: the
    /// platform data folder.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The fleet API and dashboard listener.
    #[serde(default)]
    pub api: ApiConfig,
    /// The inference proxy listener.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// Probe intervals and timeouts.
    #[serde(default)]
    pub probes: ProbeConfig,
    /// Self-healing policy.
    #[serde(default)]
    pub heal: HealConfig,
    /// Where OpenClaw keeps its config and state, when not where OpenClaw
    /// itself would look. `[clawdbot]`, the old name, is read too (and
    /// `config check` says so).
    #[serde(default, alias = "clawdbot")]
    pub openclaw: OpenClawConfig,
    /// Cost estimates: prices, transcripts, budgets and the credit-leak alarm.
    #[serde(default)]
    pub costs: CostsConfig,
    /// Polling the peers' fleet APIs.
    #[serde(default)]
    pub fleet: FleetConfig,
    /// The machines of the fleet.
    #[serde(default)]
    pub machines: Vec<MachineConfig>,
    /// Model routes for the proxy: which machines serve a model, in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// One address or a list (`"127.0.0.1:11436"`). Loopback by default; a
    /// tailnet address is opt-in.
    #[serde(default = "default_api_listen")]
    pub listen: Listen,
    /// Extra names accepted in the `Host` header, beyond loopback names, this
    /// machine's host names and its tailnet address.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// One listen address or several, as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Listen {
    /// `listen = "127.0.0.1:11436"`.
    One(String),
    /// `listen = ["127.0.0.1:11436", "100.115.10.14:11436"]`.
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address string such as \"127.0.0.1:11436\", or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Listen, E> {
                Ok(Listen::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Listen, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Listen::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Listen {
    /// The addresses as written.
    pub fn as_strs(&self) -> Vec<&str> {
        match self {
            Listen::One(s) => vec![s.as_str()],
            Listen::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// The addresses, parsed. Validation has already rejected bad ones, so an
    /// unparsable entry here is skipped.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.as_strs()
            .into_iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

/// `[proxy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where the agent's Ollama providers point (`clawfleet openclaw wire`).
    #[serde(default = "default_proxy_listen")]
    pub listen: String,
    /// SOCKS5 proxy for peer connections (Tailscale userspace networking,
    /// `127.0.0.1:1055`).
    #[serde(default)]
    pub socks5: Option<String>,
    /// Time limit to connect to a backend before trying the next.
    #[serde(default = "d_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time limit for a backend's response to start (a model may have to
    /// load first) before trying the next.
    #[serde(default = "d_first_byte_timeout_secs")]
    pub first_byte_timeout_secs: u64,
    /// While a backend's answer has not started, how soon to ask it
    /// whether it answers at all (`/api/version`): a machine that accepted
    /// the connection and answers nothing is left for the next one.
    #[serde(default = "d_hang_check_after_ms")]
    pub hang_check_after_ms: u64,
    /// How long that question may take.
    #[serde(default = "d_hang_check_timeout_ms")]
    pub hang_check_timeout_ms: u64,
    /// How often it is asked again while the answer still has not started.
    #[serde(default = "d_hang_check_every_secs")]
    pub hang_check_every_secs: u64,
    /// Largest request body accepted: a `Content-Length` above it is
    /// refused (413) before the body is read, a longer chunked body when it
    /// passes the limit.
    #[serde(default = "d_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Time a client has to send a request's headers (a client that
    /// connects and says nothing, or trickles its head, is dropped).
    #[serde(default = "d_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Largest request head (request line and headers) accepted; a larger
    /// one gets 431.
    #[serde(default = "d_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Time a request body may go without a byte before the request is
    /// refused with 408.
    #[serde(default = "d_body_idle_timeout_secs")]
    pub body_idle_timeout_secs: u64,
    /// Time a whole request body may take to arrive before the request is
    /// refused with 408 (a body trickled a byte at a time).
    #[serde(default = "d_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
    /// Time an upstream answer may go without a byte once its head came;
    /// then it ends with an error in the client's format.
    #[serde(default = "d_stream_idle_timeout_secs")]
    pub stream_idle_timeout_secs: u64,
    /// Open client connections at most; more wait in the accept queue.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// Web origins allowed to call the proxy (none by default: no web page
    /// may spend your Anthropic key through it).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Where `/v1/messages` goes.
    #[serde(default = "d_anthropic_url")]
    pub anthropic_url: String,
    /// A file (owner-only) holding an Anthropic API key for clients that send
    /// none.
    #[serde(default)]
    pub anthropic_key_file: Option<PathBuf>,
    /// With no key file, read the key for clients that send none from the
    /// OS keychain (`clawfleet secret set anthropic` stores it there).
    #[serde(default = "d_true")]
    pub anthropic_key_keychain: bool,
    /// Days of request history kept in the ledger.
    #[serde(default = "d_retention_days")]
    pub ledger_retention_days: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: default_proxy_listen(),
            socks5: None,
            connect_timeout_ms: d_connect_timeout_ms(),
            first_byte_timeout_secs: d_first_byte_timeout_secs(),
            hang_check_after_ms: d_hang_check_after_ms(),
            hang_check_timeout_ms: d_hang_check_timeout_ms(),
            hang_check_every_secs: d_hang_check_every_secs(),
            max_body_bytes: d_max_body_bytes(),
            header_read_timeout_secs: d_header_read_timeout_secs(),
            max_header_bytes: d_max_header_bytes(),
            body_idle_timeout_secs: d_body_idle_timeout_secs(),
            body_read_timeout_secs: d_body_read_timeout_secs(),
            stream_idle_timeout_secs: d_stream_idle_timeout_secs(),
            max_connections: d_max_connections(),
            allowed_origins: Vec::new(),
            anthropic_url: d_anthropic_url(),
            anthropic_key_file: None,
            anthropic_key_keychain: true,
            ledger_retention_days: d_retention_days(),
        }
    }
}

/// `[fleet]`: how this instance polls its peers' fleet APIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Each peer's snapshot is fetched this often.
    #[serde(default = "d_poll_interval")]
    pub poll_interval_secs: u64,
    /// A poll that has not answered in this time has failed.
    #[serde(default = "d_poll_timeout")]
    pub poll_timeout_ms: u64,
    /// After this many failed polls in a row a peer is stale (its last data
    /// is still shown, with its age).
    #[serde(default = "d_stale_after")]
    pub stale_after_polls: u32,
    /// Not heard from for this long, a peer is offline.
    #[serde(default = "d_offline_after")]
    pub offline_after_secs: u64,
    /// At most this many polls at once, however many peers.
    #[serde(default = "d_max_polls")]
    pub max_concurrent_polls: usize,
    /// The largest snapshot a peer may send.
    #[serde(default = "d_peer_body")]
    pub max_snapshot_bytes: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            poll_interval_secs: d_poll_interval(),
            poll_timeout_ms: d_poll_timeout(),
            stale_after_polls: d_stale_after(),
            offline_after_secs: d_offline_after(),
            max_concurrent_polls: d_max_polls(),
            max_snapshot_bytes: d_peer_body(),
        }
    }
}

fn d_poll_interval() -> u64 {
    5
}
fn d_poll_timeout() -> u64 {
    4000
}
fn d_stale_after() -> u32 {
    2
}
fn d_offline_after() -> u64 {
    60
}
fn d_max_polls() -> usize {
    8
}
fn d_peer_body() -> usize {
    8 * 1024 * 1024
}

/// `[probes]`: how often each part is taken and how long a probe may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// CPU, memory, disks, load, temperatures.
    #[serde(default = "d_system")]
    pub system_interval_secs: u64,
    /// Process count and zombies (walks every process: costlier).
    #[serde(default = "d_processes")]
    pub processes_interval_secs: u64,
    /// Ollama of every machine.
    #[serde(default = "d_ollama")]
    pub ollama_interval_secs: u64,
    /// Configured ports and URLs, and peers' fleet APIs.
    #[serde(default = "d_services")]
    pub services_interval_secs: u64,
    /// `pm2 jlist` (starts a Node process: keep it slow).
    #[serde(default = "d_pm2")]
    pub pm2_interval_secs: u64,
    /// OpenClaw: its config, gateway, agents and heartbeat. The old name
    /// `clawdbot_interval_secs` is read too.
    #[serde(default = "d_openclaw", alias = "clawdbot_interval_secs")]
    pub openclaw_interval_secs: u64,
    /// Time limit for one HTTP or TCP probe.
    #[serde(default = "d_timeout_ms")]
    pub timeout_ms: u64,
    /// Time limit for one `pm2 jlist`.
    #[serde(default = "d_pm2_timeout_ms")]
    pub pm2_timeout_ms: u64,
    /// The pm2 program: a name looked up on `PATH`, or a full path (a login
    /// item's `PATH` often lacks npm's global folder). Also `{pm2}` in the
    /// heal commands.
    #[serde(default = "d_pm2_program")]
    pub pm2_program: String,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            system_interval_secs: d_system(),
            processes_interval_secs: d_processes(),
            ollama_interval_secs: d_ollama(),
            services_interval_secs: d_services(),
            pm2_interval_secs: d_pm2(),
            openclaw_interval_secs: d_openclaw(),
            timeout_ms: d_timeout_ms(),
            pm2_timeout_ms: d_pm2_timeout_ms(),
            pm2_program: d_pm2_program(),
        }
    }
}

impl ProbeConfig {
    /// Time limit for one HTTP or TCP probe.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// `[heal]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealConfig {
    /// Seconds between watcher cycles.
    #[serde(default = "d_heal_interval")]
    pub interval_secs: u64,
    /// `auto`, `suggest` or `off`.
    #[serde(default)]
    pub mode: HealMode,
    /// Ollama is restarted after this many failed probes in a row.
    #[serde(default = "d_ollama_down_probes")]
    pub ollama_down_probes: u32,
    /// The agent's gateway is restarted once it has not listened for this
    /// many seconds (OpenClaw restarting itself takes a few seconds, a cold
    /// start up to half a minute).
    #[serde(default = "d_gateway_down_secs")]
    pub gateway_down_secs: u64,
    /// A zombie is reaped once seen in this many cycles in a row.
    #[serde(default = "d_zombie_cycles")]
    pub zombie_cycles: u32,
    /// Free disk below this percentage is a finding (and a clean, when
    /// `[heal.clean] roots` are set).
    #[serde(default = "d_disk_free_percent")]
    pub disk_free_percent: f64,
    /// Memory used above this percentage, with a large model loaded, unloads
    /// the largest loaded model.
    #[serde(default = "d_memory_percent")]
    pub memory_percent: f64,
    /// A loaded model at least this large (bytes) counts as large.
    #[serde(default = "d_large_model_bytes")]
    pub large_model_bytes: u64,
    /// A pm2 app restarted this many times within `window_secs` is in a
    /// restart loop.
    #[serde(default = "d_pm2_restart_loop")]
    pub pm2_restart_loop: u64,
    /// Booted iOS simulators are shut down after being seen this long (macOS).
    #[serde(default = "d_simulator_idle_mins")]
    pub simulator_idle_mins: u64,
    /// Seconds before the same action may run again on the same subject.
    #[serde(default = "d_cooldown")]
    pub cooldown_secs: u64,
    /// The longest wait after repeated failures (the wait doubles each time).
    #[serde(default = "d_backoff_max")]
    pub backoff_max_secs: u64,
    /// At most this many attempts per subject within `window_secs`; then the
    /// subject needs a human.
    #[serde(default = "d_max_attempts")]
    pub max_attempts: u32,
    /// The window for `max_attempts` and `pm2_restart_loop`, in seconds.
    #[serde(default = "d_window")]
    pub window_secs: u64,
    /// How long to wait for the probe to show an action worked.
    #[serde(default = "d_verify")]
    pub verify_secs: u64,
    /// Time limit of one command.
    #[serde(default = "d_command_timeout")]
    pub command_timeout_secs: u64,
    /// Parents of zombies that may be killed when signalling them does not
    /// reap their children (process names).
    #[serde(default)]
    pub kill_zombie_parents: Vec<String>,
    /// What the Cleaner may clean.
    #[serde(default)]
    pub clean: CleanConfig,
    /// Commands that replace the built-in table for this OS, by action:
    /// each a list of alternatives, each an argv (no shell).
    #[serde(default)]
    pub commands: std::collections::BTreeMap<String, Vec<Vec<String>>>,
    /// Seconds between the Healer's readings of the event history.
    #[serde(default = "d_healer_interval")]
    pub healer_interval_secs: u64,
    /// A model (served by the fleet's Ollama, through the proxy) that
    /// summarises the last day's events once a day; none: no summary.
    #[serde(default)]
    pub summary_model: Option<String>,
}

/// `[heal.clean]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanConfig {
    /// Allow-listed folders (`~/` is the home folder). Empty: the Cleaner
    /// does nothing.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Files at least this many days old.
    #[serde(default = "d_clean_days")]
    pub older_than_days: u32,
}

impl Default for CleanConfig {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            older_than_days: d_clean_days(),
        }
    }
}

impl Default for HealConfig {
    fn default() -> Self {
        Self {
            interval_secs: d_heal_interval(),
            mode: HealMode::default(),
            ollama_down_probes: d_ollama_down_probes(),
            gateway_down_secs: d_gateway_down_secs(),
            zombie_cycles: d_zombie_cycles(),
            disk_free_percent: d_disk_free_percent(),
            memory_percent: d_memory_percent(),
            large_model_bytes: d_large_model_bytes(),
            pm2_restart_loop: d_pm2_restart_loop(),
            simulator_idle_mins: d_simulator_idle_mins(),
            cooldown_secs: d_cooldown(),
            backoff_max_secs: d_backoff_max(),
            max_attempts: d_max_attempts(),
            window_secs: d_window(),
            verify_secs: d_verify(),
            command_timeout_secs: d_command_timeout(),
            kill_zombie_parents: Vec::new(),
            clean: CleanConfig::default(),
            commands: std::collections::BTreeMap::new(),
            healer_interval_secs: d_healer_interval(),
            summary_model: None,
        }
    }
}

fn d_healer_interval() -> u64 {
    3600
}
fn d_ollama_down_probes() -> u32 {
    3
}
fn d_gateway_down_secs() -> u64 {
    120
}
fn d_zombie_cycles() -> u32 {
    2
}
fn d_disk_free_percent() -> f64 {
    10.0
}
fn d_memory_percent() -> f64 {
    90.0
}
fn d_large_model_bytes() -> u64 {
    8 * 1024 * 1024 * 1024
}
fn d_pm2_restart_loop() -> u64 {
    5
}
fn d_simulator_idle_mins() -> u64 {
    30
}
fn d_cooldown() -> u64 {
    300
}
fn d_backoff_max() -> u64 {
    3600
}
fn d_max_attempts() -> u32 {
    3
}
fn d_window() -> u64 {
    3600
}
fn d_verify() -> u64 {
    60
}
fn d_command_timeout() -> u64 {
    60
}
fn d_clean_days() -> u32 {
    7
}

/// How the watcher acts on what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealMode {
    /// Heal automatically, under the restart-storm guards.
    #[default]
    Auto,
    /// Only offer each fix as a button.
    Suggest,
    /// Do nothing.
    Off,
}

impl HealMode {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            HealMode::Auto => "auto",
            HealMode::Suggest => "suggest",
            HealMode::Off => "off",
        }
    }
}

/// `[openclaw]` (the old `[clawdbot]` is read too): where the agent's install
/// is, when ClawFleet runs with another environment than OpenClaw (a login
/// item does not see the shell's `OPENCLAW_*` variables), and how its
/// agents are judged. Unset, the install is found as OpenClaw finds it
/// (`openclaw::locate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenClawConfig {
    /// The config file (`openclaw.json`, or a legacy `clawdbot.json`).
    #[serde(default)]
    pub config_path: Option<PathBuf>,
    /// The state folder (`~/.openclaw`): agents, databases, locks.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// A named profile, as `openclaw --profile NAME` (`~/.openclaw-NAME`).
    #[serde(default)]
    pub profile: Option<String>,
    /// The `openclaw` command (a name on PATH, or a full path), for
    /// `openclaw health --json` when the gateway's websocket cannot be used.
    #[serde(default = "d_openclaw_cli")]
    pub cli: String,
    /// An agent with a turn open and nothing new for this long is stuck.
    #[serde(default = "d_stuck_after")]
    pub stuck_after_secs: u64,
}

impl Default for OpenClawConfig {
    fn default() -> Self {
        Self {
            config_path: None,
            state_dir: None,
            profile: None,
            cli: d_openclaw_cli(),
            stuck_after_secs: d_stuck_after(),
        }
    }
}

fn d_openclaw_cli() -> String {
    if cfg!(windows) {
        "openclaw.cmd".to_owned()
    } else {
        "openclaw".to_owned()
    }
}

fn d_stuck_after() -> u64 {
    600
}

/// `[costs]`: where usage comes from, how it is priced, and when to warn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsConfig {
    /// Seconds between cost updates (read new transcript lines, recompute the
    /// month, check budgets and the leak rule).
    #[serde(default = "d_costs_interval")]
    pub interval_secs: u64,
    /// Read the agent's transcripts (they also hold direct Anthropic
    /// calls that never pass through the proxy).
    #[serde(default = "d_true")]
    pub read_transcripts: bool,
    /// The agents folder (`<agent>/agent/openclaw-agent.sqlite`,
    /// `<agent>/sessions/*.jsonl`). Default: `agents` in OpenClaw's state
    /// folder (`~/.openclaw/agents`).
    #[serde(default)]
    pub transcripts_dir: Option<PathBuf>,
    /// A price file overlaying the embedded table. Default: `prices.toml`
    /// beside the config file, when it exists.
    #[serde(default)]
    pub prices_path: Option<PathBuf>,
    /// The IANA time zone days and months are counted in (`Europe/Paris`).
    /// Default: the machine's.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Savings are local tokens priced at this cloud model.
    #[serde(default = "d_savings_model")]
    pub savings_model: String,
    /// The agent's providers that run locally (free): names, or prefixes ending
    /// in `*`. Providers whose `baseUrl` in its config points at
    /// loopback or a fleet machine are local too.
    #[serde(default = "d_local_providers")]
    pub local_providers: Vec<String>,
    /// Fleet-wide monthly budget in USD.
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
    /// Warn when one day's spend passes this many USD.
    #[serde(default)]
    pub daily_budget_usd: Option<f64>,
    /// The credit-leak rule.
    #[serde(default)]
    pub leak: LeakConfig,
}

impl Default for CostsConfig {
    fn default() -> Self {
        Self {
            interval_secs: d_costs_interval(),
            read_transcripts: true,
            transcripts_dir: None,
            prices_path: None,
            time_zone: None,
            savings_model: d_savings_model(),
            local_providers: d_local_providers(),
            monthly_budget_usd: None,
            daily_budget_usd: None,
            leak: LeakConfig::default(),
        }
    }
}

/// `[costs.leak]`: spend leaking back to the cloud while local models are up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakConfig {
    /// Alarm when more than this share of tokens (percent) went to the cloud
    /// in the window while a local Ollama was healthy.
    #[serde(default = "d_leak_percent")]
    pub cloud_share_percent: f64,
    /// The window, in minutes.
    #[serde(default = "d_leak_window")]
    pub window_mins: u64,
    /// Below this many tokens in the window, the share is not judged.
    #[serde(default = "d_leak_min_tokens")]
    pub min_tokens: u64,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            cloud_share_percent: d_leak_percent(),
            window_mins: d_leak_window(),
            min_tokens: d_leak_min_tokens(),
        }
    }
}

fn d_costs_interval() -> u64 {
    60
}
fn d_true() -> bool {
    true
}
fn d_savings_model() -> String {
    "claude-sonnet-5-5".to_owned()
}
fn d_local_providers() -> Vec<String> {
    vec!["ollama*".to_owned()]
}
fn d_leak_percent() -> f64 {
    20.0
}
fn d_leak_window() -> u64 {
    60
}
fn d_leak_min_tokens() -> u64 {
    2_000
}

/// One `[[machines]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Stable id: lowercase letters, digits, `-` and `_`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub role: String,
    /// Host name, matched against the OS host name to find this machine.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Tailscale address.
    #[serde(default)]
    pub tailnet_ip: Option<String>,
    /// Its Ollama, if it has one.
    #[serde(default)]
    pub ollama_url: Option<String>,
    /// Its ClawFleet API, for peers.
    #[serde(default)]
    pub fleet_url: Option<String>,
    /// Routing priority among peers (higher first).
    #[serde(default)]
    pub priority: i32,
    /// Models expected on its Ollama, with what each is for.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Ports and URLs to watch.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// pm2 apps expected to run.
    #[serde(default)]
    pub pm2_apps: Vec<String>,
    /// This machine's monthly budget in USD.
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
}

impl MachineConfig {
    /// The tailnet address, parsed (validation rejects bad ones).
    pub fn tailnet_addr(&self) -> Option<IpAddr> {
        self.tailnet_ip.as_deref().and_then(|s| s.parse().ok())
    }
}

/// A model entry of a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Ollama model name (`gpt-oss:20b`).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// A service to watch: a TCP `port` (on `host`, default this machine's
/// loopback) or an HTTP `url` answering `expect_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Display name.
    pub name: String,
    /// TCP port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Host for `port` (default `127.0.0.1`).
    #[serde(default)]
    pub host: Option<String>,
    /// HTTP(S) URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Expected HTTP status for `url` (default: any 2xx or 3xx).
    #[serde(default)]
    pub expect_status: Option<u16>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Model name as clients ask for it.
    pub model: String,
    /// Machine ids, in order of preference.
    pub machines: Vec<String>,
    /// Always in this order. By default a machine of the list that has the
    /// model loaded goes before one that would have to load it first (a
    /// cold load of a large model takes seconds to minutes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

fn default_api_listen() -> Listen {
    Listen::One("127.0.0.1:11436".to_owned())
}
fn default_proxy_listen() -> String {
    "127.0.0.1:11435".to_owned()
}
fn d_connect_timeout_ms() -> u64 {
    2000
}
fn d_first_byte_timeout_secs() -> u64 {
    300
}
fn d_hang_check_after_ms() -> u64 {
    250
}
fn d_hang_check_timeout_ms() -> u64 {
    600
}
fn d_hang_check_every_secs() -> u64 {
    5
}
fn d_max_body_bytes() -> u64 {
    32 * 1024 * 1024
}
fn d_header_read_timeout_secs() -> u64 {
    10
}
fn d_max_header_bytes() -> usize {
    64 * 1024
}
fn d_body_idle_timeout_secs() -> u64 {
    10
}
fn d_body_read_timeout_secs() -> u64 {
    60
}
// A model writing a long tool call may send nothing until the call is
// whole (Ollama holds tool-call tokens back): as long as a first byte may
// take.
fn d_stream_idle_timeout_secs() -> u64 {
    300
}
// Long generations hold a connection each: room for many at once.
fn d_max_connections() -> usize {
    8192
}
fn d_anthropic_url() -> String {
    "https://api.anthropic.com".to_owned()
}
fn d_retention_days() -> u32 {
    90
}
fn d_system() -> u64 {
    5
}
fn d_processes() -> u64 {
    15
}
fn d_ollama() -> u64 {
    10
}
fn d_services() -> u64 {
    10
}
fn d_pm2() -> u64 {
    30
}
fn d_openclaw() -> u64 {
    30
}
fn d_timeout_ms() -> u64 {
    3000
}
fn d_pm2_timeout_ms() -> u64 {
    10_000
}
/// The pm2 program by default: `pm2` (`pm2.cmd`, npm's shim, on Windows).
#[cfg(windows)]
pub const DEFAULT_PM2_PROGRAM: &str = "pm2.cmd";
/// The pm2 program by default: `pm2` (`pm2.cmd`, npm's shim, on Windows).
#[cfg(not(windows))]
pub const DEFAULT_PM2_PROGRAM: &str = "pm2";

/// The user's price file, beside the config file.
pub const PRICES_FILE: &str = "prices.toml";

fn d_pm2_program() -> String {
    DEFAULT_PM2_PROGRAM.to_owned()
}
fn d_heal_interval() -> u64 {
    60
}

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on disk.
    File(PathBuf),
    /// The embedded default (no file existed).
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("<embedded default>"),
        }
    }
}

/// A loaded, validated configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Its source.
    pub source: Source,
    /// Things worth saying about it that are not errors (an old name used).
    pub notes: Vec<String>,
}

impl Loaded {
    /// With `[costs] prices_path` defaulted to the user's price file beside
    /// the config file (or where the config file would be).
    pub fn with_default_prices(mut self) -> Loaded {
        if self.config.costs.prices_path.is_none() {
            let file = match &self.source {
                Source::File(p) => Some(p.clone()),
                Source::Embedded => default_path(),
            };
            self.config.costs.prices_path =
                file.and_then(|f| f.parent().map(|d| d.join(PRICES_FILE)));
        }
        self
    }
}

/// The platform's config file path: `~/.config/clawfleet/config.toml` on
/// Linux, `~/Library/Application Support/clawfleet/config.toml` on macOS,
/// `%APPDATA%\clawfleet\config.toml` on Windows.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("clawfleet").join("config.toml"))
}

/// Which file to use: the explicit path (from `--config` or
/// `$CLAWFLEET_CONFIG`, which clap merges), else the platform default.
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit.map(Path::to_path_buf).or_else(default_path)
}

/// Loads the configuration. An explicit path must exist; the platform default
/// may be absent, in which case the embedded default is used.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    match explicit {
        Some(path) => load_file(path),
        None => match default_path() {
            Some(path) if path.exists() => load_file(&path),
            _ => Ok(Loaded {
                config: parse(DEFAULT_TOML, &Source::Embedded)?,
                source: Source::Embedded,
                notes: Vec::new(),
            }),
        },
    }
}

/// Reads and validates one file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let source = Source::File(path.to_path_buf());
    Ok(Loaded {
        config: parse(&text, &source)?,
        notes: old_names(&text),
        source,
    })
}

/// Keys under OpenClaw's old name (Clawdbot) that are still read, each with
/// its line and the new name to use.
pub fn old_names(text: &str) -> Vec<String> {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let line = |span: Option<std::ops::Range<usize>>| {
        span.map_or(1, |s| locate::line_col(text, s.start).0)
    };
    let mut out = Vec::new();
    if let Some((key, _)) = doc.as_table().get_key_value("clawdbot") {
        out.push(format!(
            "line {}: [clawdbot] is read as [openclaw], its new name (Clawdbot is now OpenClaw): rename the section",
            line(key.span())
        ));
    }
    if let Some(probes) = doc.get("probes").and_then(toml_edit::Item::as_table)
        && let Some((key, _)) = probes.get_key_value("clawdbot_interval_secs")
    {
        out.push(format!(
            "line {}: [probes] clawdbot_interval_secs is read as openclaw_interval_secs, its new name: rename it",
            line(key.span())
        ));
    }
    out
}

/// The embedded default, parsed.
pub fn embedded() -> Config {
    // The embedded text is covered by tests; should it ever fail to parse the
    // fallback is an empty fleet rather than a crash.
    parse(DEFAULT_TOML, &Source::Embedded).unwrap_or_else(|_| Config::empty())
}

/// Parses and validates TOML text; `source` names it in errors.
pub fn parse(text: &str, source: &Source) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| locate::line_col(text, s.start))
            .unwrap_or((1, 1));
        ConfigError::Syntax {
            source_name: source.to_string(),
            key: e.span().and_then(|s| locate::path_at(text, s.start)),
            line,
            column,
            message: e.message().trim().to_owned(),
            snippet: locate::snippet(text, line),
        }
    })?;
    let issues = validate::validate(&config);
    if issues.is_empty() {
        return Ok(config);
    }
    let mut issues: Vec<LocatedIssue> = issues
        .into_iter()
        .map(|issue| {
            let (line, column) = locate::find(text, &issue.path).unwrap_or((1, 1));
            LocatedIssue {
                line,
                column,
                snippet: locate::snippet(text, line),
                issue,
            }
        })
        .collect();
    // In file order, as an editor shows them.
    issues.sort_by_key(|i| (i.line, i.column));
    Err(ConfigError::Invalid {
        source_name: source.to_string(),
        issues,
    })
}

impl Config {
    /// A configuration with no machines and every default.
    pub fn empty() -> Self {
        Self {
            this_machine: None,
            data_dir: None,
            api: ApiConfig::default(),
            proxy: ProxyConfig::default(),
            probes: ProbeConfig::default(),
            heal: HealConfig::default(),
            openclaw: OpenClawConfig::default(),
            costs: CostsConfig::default(),
            fleet: FleetConfig::default(),
            machines: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// The data folder: `data_dir`, else the platform data folder, else a
    /// `clawfleet` folder in the temp dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_local_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("clawfleet")
        })
    }

    /// A machine by id.
    pub fn machine(&self, id: &str) -> Option<&MachineConfig> {
        self.machines.iter().find(|m| m.id == id)
    }
}
