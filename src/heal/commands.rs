//! The commands behind the actions, per OS, as data: each action has a list
//! of alternatives, tried in order until one succeeds; each alternative is a
//! sequence of steps; each step an argv run without a shell. `[heal.commands]`
//! replaces an action's alternatives for this machine.
//!
//! Placeholders, replaced in single argv elements (so a value can never
//! become a second argument or shell syntax): `{app}` (a checked pm2 app
//! name), `{pm2}` (`[probes] pm2_program`), `{uid}` (the user id), `{home}`,
//! `{localappdata}`; and the agent's, from the install the probe found:
//! `{agent_cli}` (`openclaw`, or `clawdbot` for a legacy install),
//! `{gateway_label}` (launchd, `ai.openclaw.gateway`), `{gateway_unit}`
//! (systemd, `openclaw-gateway`), `{gateway_task}` (Windows Task
//! Scheduler, `OpenClaw Gateway`), each with its profile and override
//! variables applied.

use std::collections::BTreeMap;

/// An operating system whose table is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// macOS.
    MacOs,
    /// Linux.
    Linux,
    /// Windows.
    Windows,
}

impl Os {
    /// The OS this build runs on.
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// One command: run and wait, or start and leave running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Start it detached and do not wait (an app that stays up).
    pub detach: bool,
    /// A failure of this step does not fail the alternative (stopping
    /// something that is already stopped).
    pub may_fail: bool,
}

/// A sequence of steps.
pub type Alternative = Vec<Step>;

fn run(argv: &[&str]) -> Step {
    Step {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        detach: false,
        may_fail: false,
    }
}

fn try_run(argv: &[&str]) -> Step {
    Step {
        may_fail: true,
        ..run(argv)
    }
}

fn start(argv: &[&str]) -> Step {
    Step {
        detach: true,
        ..run(argv)
    }
}

/// The commands of the actions that run commands, for `os`. Actions done in
/// process (reap zombies, clean, unload a model) have none.
pub fn table(os: Os) -> BTreeMap<&'static str, Vec<Alternative>> {
    let mut t: BTreeMap<&'static str, Vec<Alternative>> = BTreeMap::new();
    match os {
        Os::MacOs => {
            t.insert(
                "restart-ollama",
                vec![
                    // Homebrew's service. A login item's PATH lacks Homebrew's
                    // folder: its two usual places are tried too.
                    vec![run(&["brew", "services", "restart", "ollama"])],
                    vec![run(&[
                        "/opt/homebrew/bin/brew",
                        "services",
                        "restart",
                        "ollama",
                    ])],
                    vec![run(&[
                        "/usr/local/bin/brew",
                        "services",
                        "restart",
                        "ollama",
                    ])],
                    // The Ollama app's launchd agent.
                    vec![run(&[
                        "launchctl",
                        "kickstart",
                        "-k",
                        "gui/{uid}/com.ollama.ollama",
                    ])],
                    // The app itself.
                    vec![
                        try_run(&["pkill", "-x", "Ollama"]),
                        run(&["open", "-a", "Ollama"]),
                    ],
                ],
            );
            t.insert(
                "shutdown-simulators",
                vec![vec![run(&["xcrun", "simctl", "shutdown", "all"])]],
            );
            // The agent's own command first: it restarts a service, or a
            // gateway running in the foreground in place.
            t.insert(
                "restart-gateway",
                vec![
                    vec![run(&["{agent_cli}", "gateway", "restart"])],
                    vec![run(&[
                        "launchctl",
                        "kickstart",
                        "-k",
                        "gui/{uid}/{gateway_label}",
                    ])],
                ],
            );
        }
        Os::Linux => {
            t.insert(
                "restart-ollama",
                vec![
                    vec![run(&["systemctl", "--user", "restart", "ollama"])],
                    vec![run(&["systemctl", "restart", "ollama"])],
                ],
            );
            t.insert(
                "restart-gateway",
                vec![
                    vec![run(&["{agent_cli}", "gateway", "restart"])],
                    vec![run(&["systemctl", "--user", "restart", "{gateway_unit}"])],
                ],
            );
        }
        Os::Windows => {
            t.insert(
                "restart-ollama",
                vec![vec![
                    try_run(&["taskkill", "/F", "/IM", "ollama app.exe"]),
                    try_run(&["taskkill", "/F", "/IM", "ollama.exe"]),
                    start(&["{localappdata}\\Programs\\Ollama\\ollama app.exe"]),
                ]],
            );
            t.insert(
                "restart-gateway",
                vec![
                    vec![run(&["{agent_cli}", "gateway", "restart"])],
                    vec![
                        try_run(&["schtasks", "/End", "/TN", "{gateway_task}"]),
                        run(&["schtasks", "/Run", "/TN", "{gateway_task}"]),
                    ],
                ],
            );
        }
    }
    t.insert(
        "restart-pm2-app",
        vec![vec![run(&["{pm2}", "restart", "{app}"])]],
    );
    t
}

/// The table for this machine: the built-in one with `[heal.commands]`
/// entries replacing whole actions. Configured steps run and wait.
pub fn effective(
    os: Os,
    overrides: &BTreeMap<String, Vec<Vec<String>>>,
) -> BTreeMap<String, Vec<Alternative>> {
    let mut t: BTreeMap<String, Vec<Alternative>> = table(os)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (action, alternatives) in overrides {
        t.insert(
            action.clone(),
            alternatives
                .iter()
                .map(|argv| {
                    vec![Step {
                        argv: argv.clone(),
                        detach: false,
                        may_fail: false,
                    }]
                })
                .collect(),
        );
    }
    t
}

/// Values for the placeholders.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// `{app}`.
    pub app: Option<String>,
    /// `{pm2}`.
    pub pm2: Option<String>,
    /// `{uid}`.
    pub uid: Option<String>,
    /// `{home}`.
    pub home: Option<String>,
    /// `{localappdata}`.
    pub localappdata: Option<String>,
    /// `{agent_cli}`.
    pub agent_cli: Option<String>,
    /// `{gateway_label}`.
    pub gateway_label: Option<String>,
    /// `{gateway_unit}`.
    pub gateway_unit: Option<String>,
    /// `{gateway_task}`.
    pub gateway_task: Option<String>,
}

impl Values {
    /// The values of this process's environment, `app` and the pm2 program.
    pub fn current(app: Option<&str>, pm2: &str) -> Values {
        Values {
            app: app.map(str::to_owned),
            pm2: Some(pm2.to_owned()),
            uid: current_uid(),
            home: dirs::home_dir().map(|h| h.to_string_lossy().into_owned()),
            localappdata: dirs::data_local_dir().map(|d| d.to_string_lossy().into_owned()),
            ..Values::default()
        }
    }

    /// With the agent's command and its gateway's service names.
    pub fn with_gateway(mut self, services: &crate::snapshot::GatewayServices) -> Values {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        self.agent_cli = some(&services.cli);
        self.gateway_label = some(&services.launchd_label);
        self.gateway_unit = some(&services.systemd_unit);
        self.gateway_task = some(&services.windows_task);
        self
    }
}

#[cfg(unix)]
fn current_uid() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    Some(unsafe { libc::getuid() }.to_string())
}

#[cfg(not(unix))]
fn current_uid() -> Option<String> {
    None
}

/// `argv` with its placeholders filled; `Err` names a placeholder without
/// a value.
pub fn fill(argv: &[String], values: &Values) -> Result<Vec<String>, String> {
    argv.iter()
        .map(|arg| {
            let mut out = arg.clone();
            for (name, value) in [
                ("{app}", &values.app),
                ("{pm2}", &values.pm2),
                ("{uid}", &values.uid),
                ("{home}", &values.home),
                ("{localappdata}", &values.localappdata),
                ("{agent_cli}", &values.agent_cli),
                ("{gateway_label}", &values.gateway_label),
                ("{gateway_unit}", &values.gateway_unit),
                ("{gateway_task}", &values.gateway_task),
            ] {
                if out.contains(name) {
                    let v = value
                        .as_deref()
                        .ok_or_else(|| format!("no value for {name} in {arg:?}"))?;
                    out = out.replace(name, v);
                }
            }
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_os_has_the_command_actions() {
        for os in [Os::MacOs, Os::Linux, Os::Windows] {
            let t = table(os);
            for action in ["restart-ollama", "restart-pm2-app", "restart-gateway"] {
                let alts = t.get(action).unwrap_or_else(|| panic!("{os:?} {action}"));
                assert!(!alts.is_empty());
                for alt in alts {
                    assert!(!alt.is_empty());
                    // The last step is what the action stands on: never optional.
                    assert!(!alt.last().is_some_and(|s| s.may_fail), "{os:?} {action}");
                    for step in alt {
                        assert!(!step.argv.is_empty());
                        // No shell anywhere: the program is never a shell.
                        assert!(
                            !["sh", "bash", "zsh", "cmd", "cmd.exe", "powershell"]
                                .contains(&step.argv[0].as_str()),
                            "{os:?} {action}: {:?}",
                            step.argv
                        );
                    }
                }
            }
        }
        assert!(table(Os::MacOs).contains_key("shutdown-simulators"));
        assert!(!table(Os::Linux).contains_key("shutdown-simulators"));
        assert_eq!(
            table(Os::Linux)["restart-ollama"][0][0].argv,
            ["systemctl", "--user", "restart", "ollama"]
        );
        assert_eq!(
            table(Os::MacOs)["restart-ollama"][0][0].argv,
            ["brew", "services", "restart", "ollama"]
        );
        assert!(table(Os::Windows)["restart-ollama"][0][2].detach);
        assert_eq!(
            table(Os::MacOs)["restart-ollama"][1][0].argv[0],
            "/opt/homebrew/bin/brew"
        );
    }

    #[test]
    fn overrides_replace_a_whole_action() {
        let mut o = BTreeMap::new();
        o.insert(
            "restart-ollama".to_owned(),
            vec![vec![
                "/usr/local/bin/my-ollama".to_owned(),
                "restart".to_owned(),
            ]],
        );
        let t = effective(Os::Linux, &o);
        assert_eq!(t["restart-ollama"].len(), 1);
        assert_eq!(
            t["restart-ollama"][0][0].argv,
            ["/usr/local/bin/my-ollama", "restart"]
        );
        assert_eq!(
            t["restart-pm2-app"][0][0].argv,
            ["{pm2}", "restart", "{app}"]
        );
    }

    #[test]
    fn a_value_stays_one_argument() {
        let v = Values {
            app: Some("a b; c".to_owned()),
            uid: Some("501".to_owned()),
            ..Values::default()
        };
        let argv = fill(
            &[
                "pm2".into(),
                "restart".into(),
                "{app}".into(),
                "gui/{uid}/x".into(),
            ],
            &v,
        )
        .expect("filled");
        assert_eq!(argv, ["pm2", "restart", "a b; c", "gui/501/x"]);
        assert!(fill(&["{home}/x".into()], &Values::default()).is_err());
    }

    #[test]
    fn the_gateway_is_restarted_under_the_names_of_the_install_found() {
        use crate::openclaw::locate::{Environment, services};
        use crate::snapshot::{AgentKind, GatewayServices};
        let env = Environment::with(|_| None, None);
        let openclaw =
            Values::current(None, "pm2").with_gateway(&services(AgentKind::OpenClaw, None, &env));
        let filled = |os: Os, values: &Values| -> Vec<Vec<String>> {
            table(os)["restart-gateway"]
                .iter()
                .flat_map(|alt| alt.iter().map(|s| fill(&s.argv, values).expect("filled")))
                .collect()
        };
        assert_eq!(
            filled(Os::Linux, &openclaw),
            [
                vec!["openclaw", "gateway", "restart"],
                vec!["systemctl", "--user", "restart", "openclaw-gateway"]
            ]
        );
        let mac = filled(Os::MacOs, &openclaw);
        assert_eq!(mac[0], ["openclaw", "gateway", "restart"]);
        assert!(mac[1][3].ends_with("/ai.openclaw.gateway"), "{mac:?}");
        assert_eq!(
            filled(Os::Windows, &openclaw)[1..],
            [
                vec!["schtasks", "/End", "/TN", "OpenClaw Gateway"],
                vec!["schtasks", "/Run", "/TN", "OpenClaw Gateway"]
            ]
        );
        // A profile's own names.
        let work = Values::current(None, "pm2").with_gateway(&services(
            AgentKind::OpenClaw,
            Some("work"),
            &env,
        ));
        assert_eq!(filled(Os::Linux, &work)[1][3], "openclaw-gateway-work");
        assert!(filled(Os::MacOs, &work)[1][3].ends_with("/ai.openclaw.work"));
        assert_eq!(filled(Os::Windows, &work)[1][3], "OpenClaw Gateway (work)");
        // A legacy Clawdbot's.
        let legacy =
            Values::current(None, "pm2").with_gateway(&services(AgentKind::Clawdbot, None, &env));
        assert_eq!(
            filled(Os::Linux, &legacy),
            [
                vec!["clawdbot", "gateway", "restart"],
                vec!["systemctl", "--user", "restart", "clawdbot-gateway"]
            ]
        );
        assert!(filled(Os::MacOs, &legacy)[1][3].ends_with("/com.clawdbot.gateway"));
        // No install known: the gateway action cannot be filled, and says so.
        let none = Values::current(None, "pm2").with_gateway(&GatewayServices::default());
        assert!(fill(&table(Os::Linux)["restart-gateway"][0][0].argv, &none).is_err());
    }
}
