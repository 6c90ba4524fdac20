//! `clawfleet`: the headless daemon and command-line client.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clawfleet::config::{self, Loaded};
use clawfleet::daemon::{self, RuntimeInfo};
use clawfleet::fleet::Fleet;
use clawfleet::probe::Collector;
use clawfleet::{Snapshot, net, report};

/// Health, inference routing, cost and self-healing for a personal AI fleet.
#[derive(Parser)]
#[command(name = "clawfleet", version, about, long_about = None)]
struct Cli {
    /// Config file (default: the platform config folder; with no file there,
    /// the embedded default).
    #[arg(long, global = true, env = config::CONFIG_ENV, value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGINT/SIGTERM: probes, fleet API and dashboard.
    Serve,
    /// Show this machine, Ollama and services: from the running daemon if
    /// there is one, else by probing once.
    Status {
        /// Print the snapshot as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Monthly costs per machine and for the fleet: month to date,
    /// projection, savings, budgets (reads new transcript lines first).
    Costs {
        /// Print every figure as JSON.
        #[arg(long)]
        json: bool,
        /// The month, as YYYY-MM (default: the current one).
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
    },
    /// Run one heal action through the running daemon (its guards and
    /// event log apply): restart-ollama, restart-pm2-app --target APP,
    /// reap-zombies, shutdown-simulators, clean, unload-model --target
    /// MODEL, restart-gateway; or `pause` / `resume` automatic healing.
    Heal {
        /// The action (or pause / resume).
        action: String,
        /// The pm2 app or the model, for the actions that take one.
        #[arg(long)]
        target: Option<String>,
        /// Only say what would be done.
        #[arg(long)]
        dry_run: bool,
        /// Ask this peer (its id in the config) to run it, through the
        /// daemon here and the peer's own guards.
        #[arg(long)]
        machine: Option<String>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Join OpenClaw to the fleet: point its Ollama providers at this
    /// machine's proxy (each keeps the machine it named first), or undo it.
    /// `clawdbot` is the same command, under OpenClaw's old name.
    #[command(name = "openclaw", alias = "clawdbot")]
    OpenClaw {
        #[command(subcommand)]
        command: OpenClawCommand,
    },
    /// The fleet token: every machine of a fleet has the same one.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Secrets in the OS keychain (macOS Keychain, Windows Credential
    /// Manager, GNOME Keyring / KWallet): set (from standard input, never
    /// the command line), check or delete. NAME: anthropic.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// The event log (findings, actions, outcomes, alarms), newest first.
    Events {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// How many.
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
    /// Write, check or locate the config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum OpenClawCommand {
    /// Point its Ollama providers at this machine's proxy: OpenClaw's at the
    /// native Ollama endpoint (api "ollama", no /v1), a legacy Clawdbot's at
    /// /v1; each keeps the machine it named first. Only those values change
    /// (and an `ollama` provider is added where OpenClaw finds Ollama by
    /// discovery); the original is kept beside the file. Running it twice
    /// changes nothing the second time.
    Wire {
        /// Print the exact diff and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
        /// Every provider goes to this machine first (a machine id of the
        /// config), the rest of the fleet after it.
        #[arg(long)]
        machine: Option<String>,
        /// Route its Anthropic provider through the proxy too, so cloud
        /// spend is metered as it happens (its own key is passed on).
        #[arg(long)]
        anthropic: bool,
        /// Restart its gateway afterwards (`openclaw gateway restart`),
        /// for a gateway that does not reload its config by itself.
        #[arg(long)]
        restart: bool,
    },
    /// Put back the file `wire` changed, byte for byte. Refuses when it
    /// changed since (your edits would be lost) unless --force.
    Unwire {
        /// Restore the original even though the file changed since.
        #[arg(long)]
        force: bool,
        /// Restart its gateway afterwards.
        #[arg(long)]
        restart: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print this machine's fleet token (to give it to the other machines).
    Show,
    /// Replace this machine's fleet token with one read from standard input
    /// (never from the command line, where other users could see it);
    /// restart the daemon or tray app afterwards.
    Set,
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Store a secret read from standard input (prompted for, not echoed,
    /// on a terminal), replacing the one there. The daemon uses it within a
    /// minute.
    Set {
        /// Which secret: anthropic (the Anthropic API key the proxy sends
        /// for clients that send none).
        name: String,
    },
    /// Say whether the secret is stored and readable, showing only its
    /// first and last characters and its length.
    Check {
        /// Which secret.
        name: String,
    },
    /// Remove the secret from the keychain.
    Delete {
        /// Which secret.
        name: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write the commented default config (to --config, or the platform path).
    Init {
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate a config file (default: the one in use) and say exactly what
    /// is wrong and where.
    Check {
        /// The file to check.
        path: Option<PathBuf>,
    },
    /// Print the path of the config file in use.
    Path,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Serve));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // An idle daemon needs little: two workers keep latency low without
        // a thread per core on big machines.
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

fn init_tracing(daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if daemon { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_env("CLAWFLEET_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> ExitCode {
    let explicit = cli.config.as_deref();
    match cli.command {
        Command::Serve => serve(explicit).await,
        Command::Status { json } => status(explicit, json).await,
        Command::Costs { json, month } => costs(explicit, json, month.as_deref()).await,
        Command::Heal {
            action,
            target,
            dry_run,
            machine,
            json,
        } => {
            heal(
                explicit,
                &action,
                target.as_deref(),
                dry_run,
                machine.as_deref(),
                json,
            )
            .await
        }
        Command::Token { command } => token(explicit, command),
        Command::OpenClaw { command } => openclaw_cmd(explicit, command),
        Command::Secret { command } => {
            let explicit = explicit.map(Path::to_path_buf);
            tokio::task::spawn_blocking(move || secret_cmd(explicit.as_deref(), command))
                .await
                .unwrap_or_else(|e| {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                })
        }
        Command::Events { json, limit } => events(explicit, json, limit),
        Command::Config { command } => match command {
            ConfigCommand::Init { force } => config_init(explicit, force),
            ConfigCommand::Check { path } => config_check(path.as_deref().or(explicit)),
            ConfigCommand::Path => config_path(explicit),
        },
    }
}

fn openclaw_cmd(explicit: Option<&Path>, command: OpenClawCommand) -> ExitCode {
    use clawfleet::openclaw::wire;
    let loaded = match load(explicit) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = &loaded.config;
    let install = clawfleet::openclaw::locate::locate(
        &config.openclaw,
        &clawfleet::openclaw::locate::Environment::current(),
    );
    if install.config_path.is_empty() {
        eprintln!("error: {}", install.found_by);
        return ExitCode::from(2);
    }
    let path = PathBuf::from(&install.config_path);
    let data_dir = config.data_dir();
    let name = install.kind.name();
    let restart_step = format!("{} gateway restart", install.services.cli);
    let restart_now = |restart: bool| -> ExitCode {
        if !restart {
            return ExitCode::SUCCESS;
        }
        // The same command the self-healing table runs first, for the
        // install found (its state folder and config in its environment).
        let argv = [
            install.services.cli.clone(),
            "gateway".into(),
            "restart".into(),
        ];
        let envs = clawfleet::openclaw::locate::cli_env(&install);
        let envs: Vec<(&str, &std::ffi::OsStr)> =
            envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ran = rt.block_on(clawfleet::command::run_with(
            &argv,
            &envs,
            std::time::Duration::from_secs(120),
            clawfleet::command::MAX_OUTPUT,
        ));
        if ran.success {
            println!("{}", ran.summary());
            ExitCode::SUCCESS
        } else {
            eprintln!("error: {}", ran.summary());
            ExitCode::FAILURE
        }
    };
    match command {
        OpenClawCommand::Wire {
            dry_run,
            json,
            machine,
            anthropic,
            restart,
        } => {
            let fleet = clawfleet::fleet::Fleet::resolve(config, &clawfleet::daemon::os_hostname());
            if let Some(m) = &machine
                && fleet.machines().all(|x| &x.id != m)
            {
                eprintln!(
                    "error: no machine {m:?} in ClawFleet's config (machines: {})",
                    fleet
                        .machines()
                        .map(|x| x.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return ExitCode::from(2);
            }
            // The running daemon's proxy (its port may be chosen by the
            // OS), else the configured one.
            let running = clawfleet::daemon::RuntimeInfo::read(&data_dir)
                .and_then(|r| r.proxy)
                .map(|a| a.to_string());
            let listen = running.unwrap_or_else(|| config.proxy.listen.clone());
            if listen.ends_with(":0") {
                eprintln!(
                    "error: the proxy listens on a port the OS chooses ([proxy] listen = {listen:?}) and no running daemon says which: start `clawfleet serve` first"
                );
                return ExitCode::from(2);
            }
            let proxy = wire::proxy_base(&listen);
            let opts = wire::Options {
                kind: install.kind,
                machine,
                anthropic,
                first_byte_timeout_secs: Some(config.proxy.first_byte_timeout_secs),
            };
            let report = match wire::wire(&path, &data_dir, &fleet, &proxy, &opts, dry_run) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(t) => println!("{t}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                if report.changes.is_empty() {
                    println!("nothing to change in {}", report.path.display());
                } else {
                    print!("{}", report.diff);
                    for c in &report.changes {
                        let first = c
                            .machine
                            .as_deref()
                            .map(|m| format!(" ({m} first, then the rest of the fleet)"))
                            .unwrap_or_default();
                        match &c.from {
                            Some(from) => {
                                println!("{} {}: {from} -> {}{first}", c.provider, c.key, c.to)
                            }
                            None => println!("{} {}: added, {}{first}", c.provider, c.key, c.to),
                        }
                    }
                }
                for s in &report.skipped {
                    println!("left alone: {}: {}", s.provider, s.why);
                }
                for n in &report.notes {
                    println!("note: {n}");
                }
                if dry_run {
                    println!("(dry run: nothing was written)");
                } else if let Some(b) = &report.backup {
                    println!(
                        "wired {}; the original is {}; `clawfleet openclaw unwire` puts it back.",
                        report.path.display(),
                        b.display()
                    );
                    if !restart {
                        println!(
                            "{name} reloads its config by itself (gateway.reload.mode); if its gateway runs with reloading off, run `{restart_step}` (or wire with --restart)."
                        );
                    }
                }
            }
            if dry_run || report.backup.is_none() {
                return ExitCode::SUCCESS;
            }
            restart_now(restart)
        }
        OpenClawCommand::Unwire { force, restart } => match wire::unwire(&path, &data_dir, force) {
            Ok((backup, between)) => {
                println!(
                    "restored {} from {} (kept)",
                    path.display(),
                    backup.display()
                );
                for b in between {
                    println!("your edits between wirings are in {} (kept)", b.display());
                }
                if !restart {
                    println!(
                        "{name} reloads its config by itself; otherwise run `{restart_step}`."
                    );
                }
                restart_now(restart)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn token(explicit: Option<&Path>, command: TokenCommand) -> ExitCode {
    let loaded = match load(explicit) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let path = loaded.config.data_dir().join(clawfleet::token::TOKEN_FILE);
    match command {
        TokenCommand::Show => match clawfleet::token::load_or_create(&path) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        TokenCommand::Set => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut line) {
                eprintln!("error: reading the token from standard input: {e}");
                return ExitCode::FAILURE;
            }
            match clawfleet::token::store(&path, &line) {
                Ok(()) => {
                    eprintln!(
                        "fleet token written to {}; restart `clawfleet serve` or the tray app to use it",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `clawfleet secret`: blocking keychain calls, off the async workers.
fn secret_cmd(explicit: Option<&Path>, command: SecretCommand) -> ExitCode {
    use clawfleet::secret::{self, Secret};
    let (SecretCommand::Set { name }
    | SecretCommand::Check { name }
    | SecretCommand::Delete { name }) = &command;
    let Some(which) = Secret::parse(name) else {
        let names: Vec<&str> = Secret::ALL.iter().map(|s| s.name()).collect();
        // Not echoed: a key pasted where the name goes must not be printed.
        eprintln!(
            "error: that is not a secret's name: ClawFleet keeps {} (the value itself comes on standard input, never the command line)",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    match command {
        SecretCommand::Set { .. } => {
            let prompt = format!("{} (not shown): ", which.what());
            let value = match secret::read_value(&prompt) {
                Ok(v) => v,
                Err(e) => return fail(&format!("reading the value from standard input: {e}")),
            };
            match secret::set(which, &value) {
                Ok(()) => {
                    eprintln!(
                        "stored in {}; a running daemon uses it within a minute",
                        which.location()
                    );
                    secret_notes(explicit, which);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        SecretCommand::Check { .. } => match secret::get(which) {
            Ok(value) => {
                println!(
                    "{} in {}: {}",
                    which.what(),
                    which.location(),
                    secret::masked(&value)
                );
                secret_notes(explicit, which);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        SecretCommand::Delete { .. } => match secret::delete(which) {
            Ok(true) => {
                eprintln!("deleted from {}", which.location());
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!(
                    "nothing to delete: no {} in {}",
                    which.what(),
                    which.location()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
    }
}

/// What the config in use does with a keychain secret, when it would not
/// use it.
fn secret_notes(explicit: Option<&Path>, which: clawfleet::secret::Secret) {
    let Ok(loaded) = config::load(explicit) else {
        return;
    };
    let proxy = &loaded.config.proxy;
    match which {
        clawfleet::secret::Secret::Anthropic => {
            if let Some(file) = &proxy.anthropic_key_file {
                eprintln!(
                    "note: [proxy] anthropic_key_file ({}) is set in {}: the proxy uses that file, not the keychain",
                    file.display(),
                    loaded.source
                );
            } else if !proxy.anthropic_key_keychain {
                eprintln!(
                    "note: [proxy] anthropic_key_keychain = false in {}: the proxy does not read the keychain",
                    loaded.source
                );
            }
        }
    }
}

fn load(explicit: Option<&Path>) -> Result<Loaded, ExitCode> {
    let loaded = config::load(explicit).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    // The user's price file sits beside the config file unless configured.
    Ok(loaded.with_default_prices())
}

async fn heal(
    explicit: Option<&Path>,
    action: &str,
    target: Option<&str>,
    dry_run: bool,
    machine: Option<&str>,
    json: bool,
) -> ExitCode {
    let loaded = match load(explicit) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Refused here already, with the same words the daemon would use.
    let pause = match action {
        "pause" => Some(true),
        "resume" => Some(false),
        _ => {
            if let Err(e) = clawfleet::action::Action::parse(action, target) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            None
        }
    };
    let client = match net::client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((_, addr)) = from_daemon(&client, &loaded).await else {
        eprintln!(
            "error: no running daemon answered: heal actions run inside `clawfleet serve` (its guards and event log); start it first"
        );
        return ExitCode::FAILURE;
    };
    let token_path = loaded.config.data_dir().join(clawfleet::token::TOKEN_FILE);
    let token = match net::read_secret_file(&token_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (url, body) = match pause {
        Some(true) => (format!("http://{addr}/fleet/v1/heal/pause"), String::new()),
        Some(false) => (format!("http://{addr}/fleet/v1/heal/resume"), String::new()),
        None => (
            format!("http://{addr}/fleet/v1/heal"),
            serde_json::json!({"action": action, "target": target, "dry_run": dry_run, "machine": machine})
                .to_string(),
        ),
    };
    let sent = client
        .post(&url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body)
        // An action waits for its command and its verification.
        .timeout(Duration::from_secs(600))
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: the daemon at {addr} did not answer: {}",
                net::describe(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let text = match net::read_body_limited(response, 4 * 1024 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("error: reading the daemon's answer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        eprintln!("error: {}", value["error"].as_str().unwrap_or(text.trim()));
        return ExitCode::FAILURE;
    }
    if json {
        println!("{text}");
    } else if pause.is_some() {
        println!(
            "self-healing {} (mode {})",
            if value["paused"] == true {
                "paused"
            } else {
                "running"
            },
            value["mode"].as_str().unwrap_or("?")
        );
    } else {
        println!("{}", value["message"].as_str().unwrap_or(text.trim()));
        for c in value["done"]["commands"].as_array().into_iter().flatten() {
            let argv: Vec<&str> = c["argv"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .collect();
            println!("  $ {}", argv.join(" "));
        }
    }
    if value["success"] == false {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn events(explicit: Option<&Path>, json: bool, limit: usize) -> ExitCode {
    use clawfleet::events::{EVENTS_FILE, EventLog};
    let loaded = match load(explicit) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let path = loaded.config.data_dir().join(EVENTS_FILE);
    if !path.exists() {
        if json {
            println!("[]");
        } else {
            println!("no events yet ({} does not exist)", path.display());
        }
        return ExitCode::SUCCESS;
    }
    let list = EventLog::open(&path).and_then(|log| log.list(limit.clamp(1, 10_000), None));
    let list = match list {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&list) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    for e in &list {
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "{}  {:<14} {:<8} {}",
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            kind,
            format!("{:?}", e.severity).to_lowercase(),
            e.message
        );
    }
    ExitCode::SUCCESS
}

async fn costs(explicit: Option<&Path>, json: bool, month: Option<&str>) -> ExitCode {
    use clawfleet::cost::{self, Engine, Month, Settings};
    let loaded = match load(explicit) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let month = match month.map(|m| (m, Month::parse(m))) {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((text, None)) => {
            eprintln!("error: --month {text:?} is not a month: write it as YYYY-MM, e.g. 2026-11");
            return ExitCode::from(2);
        }
    };
    let config = loaded.config;
    let fleet = Fleet::resolve(&config, &daemon::os_hostname());
    let settings = Settings::from_config(&config, &fleet.this, None);
    let result = tokio::task::spawn_blocking(move || {
        let mut engine = Engine::open(settings)?;
        let ingest = engine.ingest()?;
        // Run alone, without a daemon: this machine's figures only.
        let peers = std::collections::HashMap::new();
        let view = cost::view(&mut engine, &fleet, &peers, month, jiff::Timestamp::now())?;
        Ok::<_, cost::CostError>((view, ingest))
    })
    .await;
    let (view, ingest) = match result {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: the cost computation did not finish: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(ingest) = &ingest {
        for problem in &ingest.problems {
            eprintln!("warning: transcript {problem}");
        }
    }
    if json {
        match serde_json::to_string_pretty(&view) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", cost::table::render(&view));
    }
    ExitCode::SUCCESS
}

async fn serve(explicit: Option<&Path>) -> ExitCode {
    let loaded = match load(explicit) {
        Ok(l) => l,
        Err(code) => return code,
    };
    tracing::info!(config = %loaded.source, "clawfleet {} starting", env!("CARGO_PKG_VERSION"));
    let running = match daemon::start_from(loaded.config, &loaded.source).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On stdout, so scripts and tests can find ports chosen by the OS. A
    // reader that closed the pipe after the first line is not an error.
    let mut out = std::io::stdout().lock();
    for addr in &running.api_addrs {
        let _ = writeln!(out, "clawfleet: fleet API on http://{addr}");
    }
    let _ = writeln!(
        out,
        "clawfleet: inference proxy on http://{}",
        running.proxy_addr
    );
    let _ = out.flush();
    drop(out);
    daemon::shutdown_signal().await;
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn status(explicit: Option<&Path>, json: bool) -> ExitCode {
    let loaded = match load(explicit) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let client = match net::client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (snapshot, source) = match from_daemon(&client, &loaded).await {
        Some((snap, addr)) => (Arc::new(snap), format!("from the daemon at {addr}")),
        None => {
            let config = Arc::new(loaded.config);
            let fleet = Arc::new(Fleet::resolve(&config, &daemon::os_hostname()));
            let collector = Arc::new(Collector::new(config, fleet, client));
            (
                collector.probe_once().await,
                "no daemon running: probed just now".to_owned(),
            )
        }
    };
    if json {
        match serde_json::to_string_pretty(&*snapshot) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot serialize the snapshot: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report::status(&snapshot, &source));
    }
    ExitCode::SUCCESS
}

/// Asks a running daemon for its snapshot: the one named in the runtime file
/// first, then the configured addresses.
async fn from_daemon(client: &reqwest::Client, loaded: &Loaded) -> Option<(Snapshot, SocketAddr)> {
    let mut candidates: Vec<SocketAddr> = RuntimeInfo::read(&loaded.config.data_dir())
        .map(|r| r.api)
        .unwrap_or_default();
    candidates.extend(loaded.config.api.listen.addrs());
    for mut addr in candidates {
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let url = format!("http://{addr}/fleet/v1/snapshot");
        let Ok(response) = client
            .get(&url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
        else {
            continue;
        };
        if !response.status().is_success() {
            continue;
        }
        let Ok(body) = net::read_body_limited(response, 32 * 1024 * 1024).await else {
            continue;
        };
        match serde_json::from_slice::<Snapshot>(&body) {
            Ok(snap) => return Some((snap, addr)),
            Err(e) => tracing::warn!("{url} answered something that is not a snapshot: {e}"),
        }
    }
    None
}

fn config_target(explicit: Option<&Path>) -> Result<PathBuf, ExitCode> {
    config::resolve_path(explicit).ok_or_else(|| {
        eprintln!("error: this platform has no config folder; pass --config PATH");
        ExitCode::from(2)
    })
}

fn config_init(explicit: Option<&Path>, force: bool) -> ExitCode {
    let path = match config_target(explicit) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if path.exists() && !force {
        eprintln!(
            "error: {} already exists; pass --force to replace it (your file is unchanged)",
            path.display()
        );
        return ExitCode::from(2);
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, config::DEFAULT_TOML));
    match written {
        Ok(()) => {
            println!("wrote {}", path.display());
            println!("edit the [[machines]] to match your fleet, then run: clawfleet config check");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn config_check(path: Option<&Path>) -> ExitCode {
    let result = match path {
        Some(p) => config::load_file(p),
        None => config::load(None),
    };
    match result {
        Ok(loaded) => {
            let c = &loaded.config;
            let fleet = Fleet::resolve(c, &daemon::os_hostname());
            println!("{}: ok", loaded.source);
            println!(
                "  {} machine{} ({}), {} route{}; this machine: {} ({:?})",
                c.machines.len(),
                if c.machines.len() == 1 { "" } else { "s" },
                c.machines
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                c.routes.len(),
                if c.routes.len() == 1 { "" } else { "s" },
                fleet.this.id,
                fleet.identified,
            );
            for notice in fleet.notices.iter().chain(&loaded.notes) {
                println!("  note: {notice}");
            }
            let prices = c.costs.prices_path.clone().or_else(|| {
                let file = match &loaded.source {
                    config::Source::File(p) => Some(p.clone()),
                    config::Source::Embedded => config::default_path(),
                };
                file.and_then(|f| {
                    f.parent()
                        .map(|d| d.join(clawfleet::cost::prices::USER_FILE))
                })
            });
            match clawfleet::cost::prices::PriceTable::load(prices.as_deref()) {
                Ok(table) => println!(
                    "  prices: {} model ids, from {}",
                    table.len(),
                    table.sources.join(" + ")
                ),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn config_path(explicit: Option<&Path>) -> ExitCode {
    match config_target(explicit) {
        Ok(path) => {
            let state = if path.exists() {
                "exists"
            } else if explicit.is_some() {
                "does not exist: `clawfleet config init` writes it"
            } else {
                "does not exist: the embedded default is in use"
            };
            println!("{}", path.display());
            eprintln!("({state})");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
