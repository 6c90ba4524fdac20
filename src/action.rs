//! The closed set of heal actions. Nothing outside this enum can be run by
//! the watcher, a button or a request from the network; each target is
//! checked before anything runs.

use serde::{Deserialize, Serialize};

/// One heal action and its subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Restart this machine's Ollama (launchd/Homebrew, Windows app, systemd).
    RestartOllama,
    /// `pm2 restart <app>`.
    RestartPm2App {
        /// The pm2 app name.
        app: String,
    },
    /// Signal the parents of zombie processes so they reap them; kill an
    /// allow-listed parent that does not.
    ReapZombies,
    /// Shut down booted iOS simulators (macOS).
    ShutdownSimulators,
    /// Delete old files in the allow-listed folders.
    Clean,
    /// Ask Ollama to unload a model now (`keep_alive: 0`).
    UnloadModel {
        /// The model.
        model: String,
    },
    /// Restart the agent's gateway (OpenClaw, or a legacy Clawdbot).
    RestartGateway,
}

/// Every action name, as the CLI and the API take them.
pub const NAMES: &[&str] = &[
    "restart-ollama",
    "restart-pm2-app",
    "reap-zombies",
    "shutdown-simulators",
    "clean",
    "unload-model",
    "restart-gateway",
];

/// Why an action request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Not one of [`NAMES`].
    #[error("unknown action {name:?}: the actions are {}", NAMES.join(", "))]
    Unknown {
        /// What was asked (shortened).
        name: String,
    },
    /// The action needs a target and none was given.
    #[error("{action} needs --target {what}")]
    MissingTarget {
        /// The action.
        action: &'static str,
        /// What the target is.
        what: &'static str,
    },
    /// The action takes no target.
    #[error("{action} takes no target")]
    UnexpectedTarget {
        /// The action.
        action: &'static str,
    },
    /// The target has characters or a length no such name has.
    #[error("{what} {value:?} is not a valid name: {why}")]
    BadTarget {
        /// What the target is.
        what: &'static str,
        /// The value (shortened).
        value: String,
        /// Why.
        why: &'static str,
    },
}

fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// A pm2 app name: 1–64 of letters, digits, `.`, `_`, `-`, not starting
/// with `-` (never an option to pm2).
pub fn check_app(name: &str) -> Result<(), ActionError> {
    let bad = |why| ActionError::BadTarget {
        what: "pm2 app",
        value: shorten(name),
        why,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("1 to 64 characters"));
    }
    if name.starts_with('-') {
        return Err(bad("it would read as an option"));
    }
    if name.bytes().all(|b| b == b'.') {
        return Err(bad("dots alone are not a name"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// A model name as Ollama writes them (`gpt-oss:20b`,
/// `hf.co/org/model:Q4_K_M`): 1–200 of letters, digits, `.`, `_`, `-`,
/// `:`, `/`, not starting with `-` or `/`, without `..`.
pub fn check_model(name: &str) -> Result<(), ActionError> {
    let bad = |why| ActionError::BadTarget {
        what: "model",
        value: shorten(name),
        why,
    };
    if name.is_empty() || name.len() > 200 {
        return Err(bad("1 to 200 characters"));
    }
    if name.starts_with(['-', '/']) || name.contains("..") {
        return Err(bad("it must not start with '-' or '/' or contain '..'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/'))
    {
        return Err(bad("only letters, digits, '.', '_', '-', ':' and '/'"));
    }
    Ok(())
}

impl Action {
    /// Parses an action name and its target, checking the target's shape.
    pub fn parse(name: &str, target: Option<&str>) -> Result<Action, ActionError> {
        let no_target = |action: &'static str, a: Action| match target {
            None => Ok(a),
            Some(_) => Err(ActionError::UnexpectedTarget { action }),
        };
        match name {
            "restart-ollama" => no_target("restart-ollama", Action::RestartOllama),
            "reap-zombies" => no_target("reap-zombies", Action::ReapZombies),
            "shutdown-simulators" => no_target("shutdown-simulators", Action::ShutdownSimulators),
            "clean" => no_target("clean", Action::Clean),
            "restart-gateway" => no_target("restart-gateway", Action::RestartGateway),
            "restart-pm2-app" => {
                let app = target.ok_or(ActionError::MissingTarget {
                    action: "restart-pm2-app",
                    what: "APP",
                })?;
                check_app(app)?;
                Ok(Action::RestartPm2App {
                    app: app.to_owned(),
                })
            }
            "unload-model" => {
                let model = target.ok_or(ActionError::MissingTarget {
                    action: "unload-model",
                    what: "MODEL",
                })?;
                check_model(model)?;
                Ok(Action::UnloadModel {
                    model: model.to_owned(),
                })
            }
            other => Err(ActionError::Unknown {
                name: shorten(other),
            }),
        }
    }

    /// The action's name (one of [`NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            Action::RestartOllama => "restart-ollama",
            Action::RestartPm2App { .. } => "restart-pm2-app",
            Action::ReapZombies => "reap-zombies",
            Action::ShutdownSimulators => "shutdown-simulators",
            Action::Clean => "clean",
            Action::UnloadModel { .. } => "unload-model",
            Action::RestartGateway => "restart-gateway",
        }
    }

    /// Its target, if it has one.
    pub fn target(&self) -> Option<&str> {
        match self {
            Action::RestartPm2App { app } => Some(app),
            Action::UnloadModel { model } => Some(model),
            _ => None,
        }
    }

    /// The subject the restart-storm guards count against
    /// (`restart-pm2-app:aphos-server`).
    pub fn subject(&self) -> String {
        match self.target() {
            Some(t) => format!("{}:{t}", self.name()),
            None => self.name().to_owned(),
        }
    }

    /// In words, for events and notifications.
    pub fn describe(&self) -> String {
        match self {
            Action::RestartOllama => "restart Ollama".to_owned(),
            Action::RestartPm2App { app } => format!("restart the pm2 app {app}"),
            Action::ReapZombies => "reap zombie processes".to_owned(),
            Action::ShutdownSimulators => "shut down idle iOS simulators".to_owned(),
            Action::Clean => "clean old caches and temporary files".to_owned(),
            Action::UnloadModel { model } => format!("unload {model} from memory"),
            Action::RestartGateway => "restart the OpenClaw gateway".to_owned(),
        }
    }

    /// Whether a button for it should ask first (it deletes things).
    pub fn dangerous(&self) -> bool {
        matches!(self, Action::Clean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_with_the_names_requests_use() {
        let a = Action::RestartPm2App { app: "web".into() };
        let v = serde_json::to_value(&a).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"action": "restart-pm2-app", "app": "web"})
        );
        for name in NAMES {
            let target = match *name {
                "restart-pm2-app" => Some("web"),
                "unload-model" => Some("qwen3:8b"),
                _ => None,
            };
            let a = Action::parse(name, target).expect("parses");
            assert_eq!(serde_json::to_value(&a).expect("json")["action"], *name);
            assert_eq!(a.name(), *name);
        }
    }

    #[test]
    fn every_name_parses_back_to_itself() {
        for name in NAMES {
            let target = match *name {
                "restart-pm2-app" => Some("aphos-server-prod"),
                "unload-model" => Some("gpt-oss:20b"),
                _ => None,
            };
            let action = Action::parse(name, target).expect(name);
            assert_eq!(action.name(), *name);
            assert_eq!(action.target(), target);
        }
    }

    #[test]
    fn hostile_targets_are_refused() {
        for app in [
            "",
            "a; rm -rf /",
            "$(reboot)",
            "app name",
            "-h",
            "--force",
            "a/b",
            "..",
            "x\n",
            &"a".repeat(65),
        ] {
            assert!(
                Action::parse("restart-pm2-app", Some(app)).is_err(),
                "{app:?} accepted"
            );
        }
        for model in ["/etc/passwd", "../x", "a..b", "-x", "m;x", "m x", "m`x`"] {
            assert!(
                Action::parse("unload-model", Some(model)).is_err(),
                "{model:?} accepted"
            );
        }
        assert!(Action::parse("unload-model", Some("hf.co/org/m:Q4_K_M")).is_ok());
        assert!(matches!(
            Action::parse("rm", None),
            Err(ActionError::Unknown { .. })
        ));
        assert!(matches!(
            Action::parse("restart-ollama", Some("x")),
            Err(ActionError::UnexpectedTarget { .. })
        ));
        assert!(matches!(
            Action::parse("restart-pm2-app", None),
            Err(ActionError::MissingTarget { .. })
        ));
    }

    #[test]
    fn subjects_separate_targets() {
        let a = Action::parse("restart-pm2-app", Some("a")).expect("a");
        let b = Action::parse("restart-pm2-app", Some("b")).expect("b");
        assert_ne!(a.subject(), b.subject());
        assert_eq!(Action::RestartOllama.subject(), "restart-ollama");
    }
}
