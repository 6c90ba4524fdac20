//! The real OpenClaw, pinned, for end-to-end tests (Unix only).
//!
//! **Where it comes from.** `cargo xtask deps` (and so `cargo xtask test`)
//! installs the npm package `openclaw` at the exact version of
//! `tests/openclaw/package-lock.json`, and Node 24 (the npm package `node`,
//! `tests/openclaw/node/`), which OpenClaw needs: it refuses Node < 24.16.
//! xtask tells the tests where through `CLAWFLEET_OPENCLAW_DIR`; without it
//! the folder is `tests/openclaw` of this checkout, so `cargo test --test
//! openclaw_e2e` works once `cargo xtask deps` has run. A missing install
//! panics with that advice ([`install`]).
//!
//! **How it runs.** Every OpenClaw process is `<node 24> <openclaw.mjs>
//! ARGS` with node 24's folder first on `PATH` (OpenClaw starts child
//! `node`s), in a process group of its own, stdin closed, and this
//! environment ([`OpenClawHome::command`]):
//! - `HOME` = the [`OpenClawHome`]'s temporary folder, so the state dir is
//!   `<home>/.openclaw` and the config `<home>/.openclaw/openclaw.json`;
//! - every inherited `OPENCLAW_*`, `CLAWDBOT_*`, `MOLTBOT_*` and `OLLAMA_*`
//!   variable removed (`OPENCLAW_HOME`, `OPENCLAW_STATE_DIR`, … would move
//!   the state; `OLLAMA_API_KEY` turns on model discovery at
//!   127.0.0.1:11434), and `XDG_CONFIG_HOME`, `XDG_DATA_HOME`,
//!   `XDG_STATE_HOME` too, so they default under the temporary home; the
//!   rest (`PATH`, `LANG`, …) is kept;
//! - the offline switches of [`OFFLINE_ENV`]: no Bonjour, canvas host,
//!   browser control, Gmail watcher, channels, cron, model prewarm or
//!   update check; and `NO_COLOR=1` (OpenClaw colours its log even into a
//!   file, which would also split `[gateway] ready` with escape codes).
//!
//! Those switches do not stop the gateway from fetching its remote model
//! catalog (`catalog.openclaw.ai`): a config given as a JSON value gets
//! `models.catalogRefresh.enabled: false` unless it sets it
//! ([`without_catalog_refresh`]). OpenClaw still writes its rolling file log
//! to `/tmp/openclaw/` (shared by every run on the machine) unless the
//! config sets `logging.file`.
//!
//! **What it offers.**
//! - [`OpenClawHome`]: the temporary home, its config written from a
//!   `serde_json::Value` or raw JSON5 text; paths of the state dir, config,
//!   agents and an agent's SQLite store; [`OpenClawHome::processes`], every
//!   process still running with this `HOME` (a leak check).
//! - [`gateway_config`]: the `gateway` section a gateway needs (`mode:
//!   "local"`, loopback, token auth with [`GATEWAY_TOKEN`], the port).
//! - [`Gateway::start`]: `openclaw gateway run --port P`, its stdout and
//!   stderr in `<home>/gateway-P.log`, returned once ready. Readiness is
//!   `GET /readyz` answering 200: the gateway's documented readiness probe
//!   (`docs/gateway/health.md`: startup complete, not draining, agent
//!   databases admitted, channels ready; its own "ready" log line uses the
//!   same decision), which does not depend on the log's wording, colours or
//!   buffering, nor on a websocket client. It waits up to
//!   [`GATEWAY_READY_LIMIT`] (a start takes 10–30 s on a 2-core machine)
//!   and panics with the log's tail if the gateway exits or is not ready by
//!   then. [`Gateway::stop`] (and `Drop`) sends SIGTERM to the whole process
//!   group, SIGKILL after [`STOP_GRACE`], and waits until no process of the
//!   group is left.
//! - [`openclaw`] / [`openclaw_with_limit`]: one CLI command (`config
//!   validate --json`, `health --json --timeout 5000`, `sessions …`), its
//!   whole process group killed at the time limit (then it panics with what
//!   it printed); returns the `Output`. [`stdout_json`] parses what a
//!   `--json` command printed.
//! - [`agent_turn_local`] (`openclaw agent --local --agent main --message M
//!   --json`, the embedded agent: about 20–40 s a turn here, mostly
//!   start-up) and [`agent_turn_via_gateway`] (the same without `--local`:
//!   the running gateway runs the turn).
//! - [`assistant_events`]: how many assistant messages an agent's store
//!   (`agents/<id>/agent/openclaw-agent.sqlite`, table `transcript_events`)
//!   holds, read read-only.
//!
//! Everything binds 127.0.0.1; nothing leaves the machine.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable xtask sets to the folder of the pinned install.
pub const OPENCLAW_DIR_ENV: &str = "CLAWFLEET_OPENCLAW_DIR";

/// The OpenClaw version `tests/openclaw/package.json` pins.
pub const OPENCLAW_VERSION: &str = "2026.9.6";

/// The gateway token of [`gateway_config`].
pub const GATEWAY_TOKEN: &str = "clawfleet-e2e-gateway-token";

/// How long a gateway may take to be ready (10–30 s seen on 2 cores, more
/// while other builds run).
pub const GATEWAY_READY_LIMIT: Duration = Duration::from_secs(120);

/// How long a stopping gateway gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The time limit of one CLI command by default.
pub const CLI_LIMIT: Duration = Duration::from_secs(120);

/// The time limit of one agent turn (20–40 s seen; a loaded machine, or a
/// provider that makes OpenClaw retry, takes longer).
pub const TURN_LIMIT: Duration = Duration::from_secs(300);

/// The switches that keep OpenClaw off the network and quiet: set for every
/// process the harness starts.
pub const OFFLINE_ENV: &[(&str, &str)] = &[
    ("OPENCLAW_DISABLE_BONJOUR", "1"),
    ("OPENCLAW_SKIP_CANVAS_HOST", "1"),
    ("OPENCLAW_SKIP_BROWSER_CONTROL_SERVER", "1"),
    ("OPENCLAW_SKIP_GMAIL_WATCHER", "1"),
    ("OPENCLAW_SKIP_CHANNELS", "1"),
    ("OPENCLAW_SKIP_CRON", "1"),
    ("OPENCLAW_SKIP_STARTUP_MODEL_PREWARM", "1"),
    ("OPENCLAW_NO_AUTO_UPDATE", "1"),
    ("OPENCLAW_OFFLINE", "1"),
];

/// Inherited variables with these prefixes are removed.
const REMOVED_PREFIXES: &[&str] = &["OPENCLAW_", "CLAWDBOT_", "MOLTBOT_", "OLLAMA_"];

/// Inherited variables that would move OpenClaw's files out of the
/// temporary home.
const REMOVED_VARS: &[&str] = &["XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"];

/// The pinned install: the folder, Node 24, and OpenClaw's entry point.
#[derive(Debug)]
pub struct OpenClawInstall {
    pub dir: PathBuf,
    /// `node/node_modules/.bin/node` (Node 24).
    pub node: PathBuf,
    /// `node_modules/openclaw/openclaw.mjs`.
    pub entry: PathBuf,
}

impl OpenClawInstall {
    /// The folder of the Node 24 binary, put first on `PATH`.
    pub fn node_bin_dir(&self) -> &Path {
        self.node.parent().unwrap_or(Path::new("."))
    }
}

/// The pinned install, found once: `$CLAWFLEET_OPENCLAW_DIR`, else
/// `tests/openclaw` of this checkout. Panics, saying to run `cargo xtask
/// deps`, when Node 24 or OpenClaw is not there.
pub fn install() -> &'static OpenClawInstall {
    static INSTALL: OnceLock<OpenClawInstall> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let dir = std::env::var_os(OPENCLAW_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openclaw"));
        let install = OpenClawInstall {
            node: dir.join("node/node_modules/.bin/node"),
            entry: dir.join("node_modules/openclaw/openclaw.mjs"),
            dir,
        };
        for (what, path) in [("Node 24", &install.node), ("OpenClaw", &install.entry)] {
            assert!(
                path.is_file(),
                "{what} is not installed ({} is missing): run `cargo xtask deps` \
                 (it installs the pinned OpenClaw {OPENCLAW_VERSION} and Node 24 from npm \
                 into {})",
                path.display(),
                install.dir.display()
            );
        }
        install
    })
}

/// A temporary `HOME` for OpenClaw, deleted when dropped (after the
/// processes that use it are stopped: drop a [`Gateway`] first).
pub struct OpenClawHome {
    dir: tempfile::TempDir,
}

impl OpenClawHome {
    /// A home whose `~/.openclaw/openclaw.json` is `config`, with
    /// `models.catalogRefresh.enabled: false` added unless it says otherwise
    /// (see [`without_catalog_refresh`]).
    pub fn new(config: &serde_json::Value) -> Self {
        let home = Self::empty();
        home.write_config(config);
        home
    }

    /// A home whose `~/.openclaw/openclaw.json` is this JSON5 text, as it
    /// is (include `models: {catalogRefresh: {enabled: false}}` for a
    /// gateway that must not look up OpenClaw's remote catalog).
    pub fn with_json5(text: &str) -> Self {
        let home = Self::empty();
        home.write_config_text(text);
        home
    }

    /// A home with no `~/.openclaw` at all.
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("clawfleet-openclaw-")
            .tempdir()
            .expect("create a temporary home for OpenClaw");
        Self { dir }
    }

    /// Replaces the config with `config` (pretty JSON, which is JSON5),
    /// through [`without_catalog_refresh`].
    pub fn write_config(&self, config: &serde_json::Value) {
        let config = without_catalog_refresh(config);
        let text = serde_json::to_string_pretty(&config).expect("a JSON value serializes");
        self.write_config_text(&text);
    }

    /// Replaces the config with this text.
    pub fn write_config_text(&self, text: &str) {
        std::fs::create_dir_all(self.state_dir()).expect("create ~/.openclaw");
        std::fs::write(self.config_path(), text).expect("write ~/.openclaw/openclaw.json");
    }

    /// The config as it is now (OpenClaw may rewrite it).
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config_path()).expect("read ~/.openclaw/openclaw.json")
    }

    /// `HOME` of every process the harness starts in this home.
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// `~/.openclaw`.
    pub fn state_dir(&self) -> PathBuf {
        self.home().join(".openclaw")
    }

    /// `~/.openclaw/openclaw.json`.
    pub fn config_path(&self) -> PathBuf {
        self.state_dir().join("openclaw.json")
    }

    /// `~/.openclaw/agents`.
    pub fn agents_dir(&self) -> PathBuf {
        self.state_dir().join("agents")
    }

    /// `~/.openclaw/agents/<agent>/agent/openclaw-agent.sqlite`, the agent's
    /// sessions and transcripts.
    pub fn agent_store(&self, agent: &str) -> PathBuf {
        self.agents_dir()
            .join(agent)
            .join("agent")
            .join("openclaw-agent.sqlite")
    }

    /// `<node 24> <openclaw.mjs> ARGS` in this home, with the harness's
    /// environment, in a process group of its own, stdin closed. The caller
    /// sets stdout and stderr.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let install = install();
        let mut cmd = Command::new(&install.node);
        cmd.arg(&install.entry).args(args);
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if REMOVED_PREFIXES.iter().any(|p| text.starts_with(p))
                || REMOVED_VARS.contains(&text.as_ref())
            {
                cmd.env_remove(&name);
            }
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(install.node_bin_dir().to_path_buf())
                .chain(std::env::split_paths(&path)),
        )
        .expect("node 24's folder can go on PATH");
        cmd.env("PATH", path)
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .envs(OFFLINE_ENV.iter().copied())
            .current_dir(self.home())
            .stdin(Stdio::null())
            .process_group(0);
        cmd
    }

    /// An `openclaw` command for programs that run it by name or path
    /// (ClawFleet's `[openclaw] cli`): a script in this home that runs the
    /// pinned OpenClaw on Node 24 with the harness's environment.
    pub fn cli_script(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let install = install();
        let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
        let mut text = String::from("#!/bin/sh\n");
        for (k, v) in OFFLINE_ENV {
            text.push_str(&format!("export {k}={v}\n"));
        }
        text.push_str(&format!(
            "export HOME={}\nexport NO_COLOR=1\nexport PATH={}:\"$PATH\"\nexec {} {} \"$@\"\n",
            quote(self.home()),
            quote(install.node_bin_dir()),
            quote(&install.node),
            quote(&install.entry),
        ));
        let path = self.home().join("openclaw-cli.sh");
        std::fs::write(&path, text).expect("write the openclaw script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make the openclaw script executable");
        path
    }

    /// Every process on the machine still running with this home as its
    /// `HOME` (read from `/proc/<pid>/environ`; Linux). Empty once every
    /// OpenClaw process the harness started here is gone.
    pub fn processes(&self) -> Vec<u32> {
        let mut wanted = b"HOME=".to_vec();
        wanted.extend_from_slice(self.home().as_os_str().as_encoded_bytes());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == wanted.as_slice()))
            })
            .collect();
        pids.sort_unstable();
        pids
    }
}

/// `config` with `models.catalogRefresh.enabled: false` unless it sets that
/// key: a gateway otherwise fetches OpenClaw's remote model catalog
/// (`https://catalog.openclaw.ai/…`) at start and every few hours, even
/// with `OPENCLAW_OFFLINE=1`, and tests make no outside request.
pub fn without_catalog_refresh(config: &serde_json::Value) -> serde_json::Value {
    let mut config = config.clone();
    if let Some(root) = config.as_object_mut() {
        let refresh = root
            .entry("models")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .map(|models| {
                models
                    .entry("catalogRefresh")
                    .or_insert_with(|| serde_json::json!({}))
            });
        if let Some(refresh) = refresh.and_then(serde_json::Value::as_object_mut) {
            refresh
                .entry("enabled")
                .or_insert(serde_json::Value::Bool(false));
        }
    }
    config
}

/// The `gateway` section of a config for a gateway on `port` of loopback
/// with token auth ([`GATEWAY_TOKEN`]); `openclaw gateway run` refuses to
/// start without `mode: "local"`. The CLI finds the gateway through it.
pub fn gateway_config(port: u16) -> serde_json::Value {
    serde_json::json!({
        "mode": "local",
        "port": port,
        "bind": "loopback",
        "auth": {"mode": "token", "token": GATEWAY_TOKEN},
    })
}

/// Sends `signal` to every process of group `pgid`; false when none is left.
fn signal_group(pgid: u32, signal: libc::c_int) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: kill(2) with a negative pid signals a process group; it reads
    // no memory of ours.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Whether any process of group `pgid` is still there (zombies included
/// until reaped).
fn group_alive(pgid: u32) -> bool {
    signal_group(pgid, 0)
}

/// Stops the group led by `child`: SIGTERM to the group, SIGKILL after
/// `grace`, the leader reaped, and a bounded wait until the group is empty
/// (its other members are reaped by whoever inherited them).
fn stop_group(child: &mut Child, grace: Duration) -> ExitStatus {
    let pgid = child.id();
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut status = None;
    while Instant::now() < deadline {
        if status.is_none() {
            status = child.try_wait().ok().flatten();
        }
        if status.is_some() && !group_alive(pgid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(pgid, libc::SIGKILL);
    let status = match status {
        Some(s) => s,
        None => child.wait().expect("wait for the killed process"),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    status
}

/// The last `lines` lines of the file at `path` (for failure messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running `openclaw gateway run`, stopped (with its whole process group)
/// when dropped.
pub struct Gateway {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    home: PathBuf,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// Starts `openclaw gateway run --port <port>` in `home` (whose config
    /// needs `gateway.mode: "local"` and auth: see [`gateway_config`]) and
    /// returns once `GET /readyz` answers 200. Panics with the log's tail
    /// if the gateway exits first or is not ready within
    /// [`GATEWAY_READY_LIMIT`].
    pub fn start(home: &OpenClawHome, port: u16) -> Gateway {
        let log = home.home().join(format!("gateway-{port}.log"));
        let out = std::fs::File::create(&log).expect("create the gateway's log file");
        let err = out.try_clone().expect("share the gateway's log file");
        let child = home
            .command(["gateway", "run", "--port", &port.to_string()])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start openclaw gateway run");
        let mut gateway = Gateway {
            child: Some(child),
            port,
            log,
            home: home.home().to_path_buf(),
            exit: None,
        };
        let started = Instant::now();
        let deadline = started + GATEWAY_READY_LIMIT;
        loop {
            if let Some(status) = gateway.child_mut().try_wait().expect("poll the gateway") {
                // Also ends what it started in its group.
                gateway.stop();
                panic!(
                    "the gateway on port {port} exited before it was ready ({status}); its log:\n{}",
                    tail(&gateway.log, 60)
                );
            }
            if gateway.readyz() == Some(200) {
                eprintln!(
                    "openclaw gateway on port {port} ready after {:.1} s (log {})",
                    started.elapsed().as_secs_f64(),
                    gateway.log.display()
                );
                return gateway;
            }
            if Instant::now() >= deadline {
                gateway.stop();
                panic!(
                    "the gateway on port {port} was not ready within {GATEWAY_READY_LIMIT:?} \
                     (GET /readyz never answered 200); its log:\n{}",
                    tail(&gateway.log, 60)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the gateway is running")
    }

    /// The status of `GET /readyz`, or `None` when nothing answers.
    pub fn readyz(&self) -> Option<u16> {
        let host = self.addr().to_string();
        super::http::get_blocking(self.addr(), "/readyz", &[("Host", &host)])
            .ok()
            .map(|answer| answer.status)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ws://127.0.0.1:<port>`, the websocket clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr())
    }

    /// The id of the process (and of its group), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Stops the gateway and every process of its group: SIGTERM, SIGKILL
    /// after [`STOP_GRACE`]. Returns how the gateway ended (`None` when it
    /// had exited before). Safe to call again.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(mut child) = self.child.take() {
            self.exit = Some(stop_group(&mut child, STOP_GRACE));
        }
        self.exit
    }

    /// Whether the gateway process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The home it runs in.
    pub fn home(&self) -> &Path {
        &self.home
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one OpenClaw CLI command in `home` with the default limit
/// ([`CLI_LIMIT`]).
pub fn openclaw(home: &OpenClawHome, args: &[&str]) -> Output {
    openclaw_with_limit(home, args, CLI_LIMIT)
}

/// Runs one OpenClaw CLI command in `home`, its stdout and stderr captured.
/// At `limit` its whole process group is killed and this panics with what
/// it printed; when it exits, anything it left in its group is killed too.
pub fn openclaw_with_limit(home: &OpenClawHome, args: &[&str], limit: Duration) -> Output {
    let mut child = home
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start openclaw {args:?}: {e}"));
    let started = Instant::now();
    let pgid = child.id();
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll openclaw") {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            signal_group(pgid, libc::SIGKILL);
            break child.wait().expect("wait for the killed openclaw");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever it left behind in its group (a worker that outlived it)
    // would hold the pipes open.
    signal_group(pgid, libc::SIGKILL);
    let stdout = out.join().expect("read openclaw's stdout");
    let stderr = err.join().expect("read openclaw's stderr");
    eprintln!(
        "openclaw {args:?}: {status} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if timed_out {
        panic!(
            "openclaw {args:?} did not finish within {limit:?}; stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The JSON a `--json` command printed on stdout: the whole output, else
/// its last line that parses (some commands print a notice first). Panics
/// with the output when there is none.
pub fn stdout_json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim())
        .ok()
        .or_else(|| {
            let start = text.find('{')?;
            serde_json::from_str(text[start..].trim()).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no JSON on stdout ({}); stdout:\n{text}\nstderr:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// One turn of the embedded agent: `openclaw agent --local --agent main
/// --message <message> --json` (no gateway needed), within [`TURN_LIMIT`].
pub fn agent_turn_local(home: &OpenClawHome, message: &str) -> Output {
    openclaw_with_limit(
        home,
        &[
            "agent",
            "--local",
            "--agent",
            "main",
            "--message",
            message,
            "--json",
        ],
        TURN_LIMIT,
    )
}

/// One turn run by the gateway of `home`'s config: `openclaw agent --agent
/// main --message <message> --json`, within [`TURN_LIMIT`].
pub fn agent_turn_via_gateway(home: &OpenClawHome, message: &str) -> Output {
    openclaw_with_limit(
        home,
        &["agent", "--agent", "main", "--message", message, "--json"],
        TURN_LIMIT,
    )
}

/// How many assistant messages `agent`'s store in `home` holds in
/// `transcript_events` (an event is JSON text, or zstd with its role in
/// `navigation_json`); 0 when there is no store yet. Read-only: OpenClaw may
/// be writing.
pub fn assistant_events(home: &OpenClawHome, agent: &str) -> u64 {
    let path = home.agent_store(agent);
    if !path.exists() {
        return 0;
    }
    let db = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()));
    db.busy_timeout(Duration::from_secs(5))
        .expect("set a busy timeout");
    db.query_row(
        "SELECT count(*) FROM transcript_events
         WHERE (event_json IS NOT NULL
                AND json_extract(event_json, '$.type') = 'message'
                AND json_extract(event_json, '$.message.role') = 'assistant')
            OR (event_json IS NULL
                AND json_extract(navigation_json, '$.model.message.role') = 'assistant')",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n.unsigned_abs())
    .unwrap_or_else(|e| panic!("count assistant events in {}: {e}", path.display()))
}
