//! Carrying out one [`Action`]: the command table's alternatives, or the
//! in-process work (signals for zombies, the Cleaner, Ollama's unload).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::clean::{self, CleanSpec};
use super::commands::{self, Alternative, Os, Values};
use crate::action::Action;
use crate::command::{self as run, Ran};
use crate::config::HealConfig;
use crate::snapshot::MachineSnapshot;

/// How an action went (before verification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// It did what it should.
    pub success: bool,
    /// In words.
    pub summary: String,
    /// The commands run (or, in a dry run, that would run).
    pub commands: Vec<Ran>,
    /// Whatever else it reports (the Cleaner's report, the zombies signalled).
    pub detail: Value,
}

impl Done {
    fn failed(summary: impl Into<String>) -> Done {
        Done {
            success: false,
            summary: summary.into(),
            commands: Vec::new(),
            detail: Value::Null,
        }
    }
}

/// Runs actions for one machine.
#[derive(Debug, Clone)]
pub struct Executor {
    table: BTreeMap<String, Vec<Alternative>>,
    timeout: Duration,
    ollama_url: Option<String>,
    kill_parents: Vec<String>,
    pm2_program: String,
    clean: CleanSpec,
    client: reqwest::Client,
}

impl Executor {
    /// An executor for this OS with `cfg`'s overrides, talking to the
    /// Ollama at `ollama_url`, running pm2 as `pm2_program`.
    pub fn new(
        cfg: &HealConfig,
        pm2_program: &str,
        ollama_url: Option<String>,
        client: reqwest::Client,
    ) -> Executor {
        let home = dirs::home_dir();
        let roots = cfg
            .clean
            .roots
            .iter()
            .filter_map(|r| clean::check_root(r, home.as_deref()).ok())
            .collect();
        Executor {
            table: commands::effective(Os::current(), &cfg.commands),
            timeout: Duration::from_secs(cfg.command_timeout_secs.max(1)),
            ollama_url,
            kill_parents: cfg.kill_zombie_parents.clone(),
            pm2_program: pm2_program.to_owned(),
            clean: CleanSpec {
                roots,
                older_than_days: cfg.clean.older_than_days,
            },
            client,
        }
    }

    /// Carries out `action` (or, with `dry_run`, says what it would do).
    pub async fn execute(&self, action: &Action, dry_run: bool, m: &MachineSnapshot) -> Done {
        match action {
            Action::RestartOllama
            | Action::RestartPm2App { .. }
            | Action::ShutdownSimulators
            | Action::RestartGateway => self.commands(action, dry_run, m).await,
            Action::ReapZombies => self.reap(m, dry_run).await,
            Action::Clean => self.clean(dry_run).await,
            Action::UnloadModel { model } => self.unload(model, dry_run).await,
        }
    }

    async fn commands(&self, action: &Action, dry_run: bool, m: &MachineSnapshot) -> Done {
        let Some(alternatives) = self.table.get(action.name()) else {
            return Done::failed(format!(
                "{} has no command on this OS; set one in [heal.commands] {:?}",
                action.describe(),
                action.name()
            ));
        };
        let mut values = Values::current(action.target(), &self.pm2_program);
        // The agent's install as the probe found it: its command and
        // service names, and the variables that make its command act on
        // that install (a profile, another state folder).
        let mut envs: Vec<(&str, std::ffi::OsString)> = Vec::new();
        if let Some(install) = m.openclaw.as_ref().and_then(|o| o.install.as_ref()) {
            values = values.with_gateway(&install.services);
            if *action == Action::RestartGateway {
                envs = crate::openclaw::locate::cli_env(install);
            }
        }
        let envs: Vec<(&str, &std::ffi::OsStr)> =
            envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let mut ran = Vec::new();
        let mut last = String::new();
        for alternative in alternatives {
            let mut ok = true;
            for step in alternative {
                let argv = match commands::fill(&step.argv, &values) {
                    Ok(a) => a,
                    Err(e) => {
                        last = e;
                        ok = false;
                        break;
                    }
                };
                if dry_run {
                    // A dry run "succeeds" at naming what it would run.
                    ran.push(Ran {
                        success: true,
                        ..Ran::not_run(&argv)
                    });
                    continue;
                }
                let r = if step.detach {
                    run::spawn_detached(&argv)
                } else {
                    run::run_with(&argv, &envs, self.timeout, run::MAX_OUTPUT).await
                };
                let good = r.success;
                last = r.summary();
                ran.push(r);
                if !good && !step.may_fail {
                    ok = false;
                    break;
                }
            }
            if ok {
                let summary = if dry_run {
                    format!(
                        "would run: {}",
                        ran.iter()
                            .map(|r| r.argv.join(" "))
                            .collect::<Vec<_>>()
                            .join(" then ")
                    )
                } else {
                    last
                };
                return Done {
                    success: true,
                    summary,
                    commands: ran,
                    detail: Value::Null,
                };
            }
        }
        Done {
            success: false,
            summary: if alternatives.len() > 1 {
                format!("every way failed; the last: {last}")
            } else {
                last
            },
            commands: ran,
            detail: Value::Null,
        }
    }

    async fn reap(&self, m: &MachineSnapshot, dry_run: bool) -> Done {
        let own = std::process::id();
        let mut parents: BTreeMap<u32, Option<String>> = BTreeMap::new();
        for z in &m.zombies {
            if let Some(p) = z.parent_pid.filter(|p| *p > 1 && *p != own) {
                parents.insert(p, z.parent_name.clone());
            }
        }
        if parents.is_empty() {
            return Done {
                success: true,
                summary: "no zombie with a parent that can be asked".to_owned(),
                commands: Vec::new(),
                detail: json!({"parents": []}),
            };
        }
        if dry_run {
            return Done {
                success: true,
                summary: format!(
                    "would signal {} parent(s) to reap their children",
                    parents.len()
                ),
                commands: Vec::new(),
                detail: json!({"parents": parents.keys().collect::<Vec<_>>()}),
            };
        }
        let zombie_pids: Vec<u32> = m.zombies.iter().map(|z| z.pid).collect();
        for pid in parents.keys() {
            signal(*pid, Signal::Child);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut left = still_zombies(&zombie_pids);
        let mut killed = Vec::new();
        if !left.is_empty() {
            // A parent that ignores SIGCHLD: only an allow-listed one is
            // killed (its zombies then go to init, which reaps them).
            for z in m.zombies.iter().filter(|z| left.contains(&z.pid)) {
                if let (Some(p), Some(name)) = (z.parent_pid, &z.parent_name)
                    && p > 1
                    && p != own
                    && self.kill_parents.iter().any(|k| k == name)
                    && !killed.contains(&p)
                {
                    signal(p, Signal::Term);
                    killed.push(p);
                }
            }
            if !killed.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                left = still_zombies(&zombie_pids);
            }
        }
        let reaped = zombie_pids.len() - left.len();
        Done {
            success: left.is_empty(),
            summary: if left.is_empty() {
                format!("{reaped} zombie(s) reaped")
            } else {
                format!(
                    "{reaped} zombie(s) reaped, {} left: their parents do not reap them (allow-list them in [heal] kill_zombie_parents to kill those parents)",
                    left.len()
                )
            },
            commands: Vec::new(),
            detail: json!({"signalled": parents.keys().collect::<Vec<_>>(), "killed_parents": killed, "left": left}),
        }
    }

    async fn clean(&self, dry_run: bool) -> Done {
        if self.clean.roots.is_empty() {
            return Done::failed("no folder to clean: set [heal.clean] roots");
        }
        let spec = self.clean.clone();
        let report = tokio::task::spawn_blocking(move || {
            clean::clean(&spec, dry_run, std::time::SystemTime::now())
        })
        .await;
        match report {
            Ok(r) => Done {
                success: r.errors.is_empty(),
                summary: format!(
                    "{} {} file(s), {}",
                    if dry_run { "would remove" } else { "removed" },
                    if dry_run { r.files } else { r.removed_files },
                    crate::units::bytes(if dry_run { r.bytes } else { r.removed_bytes })
                ),
                commands: Vec::new(),
                detail: serde_json::to_value(&r).unwrap_or(Value::Null),
            },
            Err(e) => Done::failed(format!("the Cleaner did not finish: {e}")),
        }
    }

    async fn unload(&self, model: &str, dry_run: bool) -> Done {
        let Some(base) = &self.ollama_url else {
            return Done::failed("this machine has no ollama_url");
        };
        let url = format!("{}/api/generate", base.trim_end_matches('/'));
        if dry_run {
            return Done {
                success: true,
                summary: format!("would POST {url} {{\"model\": {model:?}, \"keep_alive\": 0}}"),
                commands: Vec::new(),
                detail: Value::Null,
            };
        }
        let sent = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({"model": model, "keep_alive": 0}).to_string())
            .timeout(self.timeout)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Done {
                success: true,
                summary: format!("asked Ollama to unload {model}"),
                commands: Vec::new(),
                detail: Value::Null,
            },
            Ok(r) => {
                let status = r.status();
                let body = crate::net::read_body_limited(r, 4096)
                    .await
                    .unwrap_or_default();
                Done::failed(format!(
                    "Ollama answered {status}: {}",
                    crate::net::preview(&body, 200)
                ))
            }
            Err(e) => Done::failed(format!(
                "Ollama did not answer: {}",
                crate::net::describe(&e)
            )),
        }
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Child,
    Term,
}

#[cfg(unix)]
fn signal(pid: u32, sig: Signal) {
    let Ok(pid) = i32::try_from(pid) else { return };
    let sig = match sig {
        Signal::Child => libc::SIGCHLD,
        Signal::Term => libc::SIGTERM,
    };
    // SAFETY: kill has no memory preconditions; pid is a positive process id.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[cfg(not(unix))]
fn signal(_pid: u32, _sig: Signal) {
    // Windows has no zombies: a process is gone when it exits.
}

/// Which of `pids` are still zombies.
fn still_zombies(pids: &[u32]) -> Vec<u32> {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};
    let list: Vec<Pid> = pids.iter().map(|p| Pid::from_u32(*p)).collect();
    let Ok(mut sys) = System::new() else {
        // Cannot look: say they are still there rather than claim success.
        return pids.to_vec();
    };
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&list),
        true,
        ProcessRefreshKind::nothing(),
    );
    pids.iter()
        .copied()
        .filter(|p| {
            sys.process(Pid::from_u32(*p))
                .is_some_and(|proc_| proc_.status() == ProcessStatus::Zombie)
        })
        .collect()
}
