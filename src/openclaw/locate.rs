//! Finding the agent's install on this machine the way OpenClaw itself
//! finds it, so ClawFleet reads (and `wire` edits) exactly the file
//! OpenClaw reads.
//!
//! OpenClaw 2026.9 (observed in its `dist/`, `paths-*.mjs`):
//! - home: `$OPENCLAW_HOME` (a leading `~` is the OS home), else the OS home;
//! - state folder: `$OPENCLAW_STATE_DIR`, else `~/.openclaw` if it exists,
//!   else `~/.clawdbot` if it exists, else `~/.openclaw`; a named profile
//!   (`openclaw --profile NAME`) is `~/.openclaw-NAME` (the CLI flag sets
//!   the two variables; `OPENCLAW_PROFILE` alone moves nothing but the
//!   port and the service names);
//! - config: `$OPENCLAW_CONFIG_PATH`; else the first that exists of
//!   `$OPENCLAW_STATE_DIR/{openclaw,clawdbot}.json`,
//!   `~/.openclaw/{openclaw,clawdbot}.json`,
//!   `~/.clawdbot/{openclaw,clawdbot}.json`; else `<state>/openclaw.json`.
//!   After `openclaw doctor --fix` both `clawdbot.json` and `openclaw.json`
//!   can exist side by side: `openclaw.json` is the one read;
//! - gateway port: `$OPENCLAW_GATEWAY_PORT`, else `gateway.port`, else a
//!   named profile's own port (`20000 + FNV-1a(name) % 40000`), else 18789.
//!   A running gateway says its real port in its lock file
//!   (`<state>/tmp/openclaw-<uid>/gateway.state.lock`).
//!
//! A legacy Clawdbot 2026.1 reads `$CLAWDBOT_CONFIG_PATH`, else
//! `$CLAWDBOT_STATE_DIR/clawdbot.json`, else `~/.clawdbot/clawdbot.json`;
//! OpenClaw ignores those variables. They are honoured here only when no
//! `OPENCLAW_*` variable says otherwise.
//!
//! ClawFleet's own `[openclaw]` settings come first: `config_path`,
//! `state_dir`, `profile`. The daemon may run with another environment than
//! the user's shell (a login item), so they are how a user points it at an
//! install OpenClaw's variables describe.
//!
//! Pure apart from looking at the file system: the environment and the OS
//! home are arguments.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::OpenClawConfig;
use crate::snapshot::{AgentKind, GatewayServices, Install};

/// The gateway port when nothing names one.
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;

/// A variable lookup.
type Lookup = dyn Fn(&str) -> Option<OsString> + Send + Sync;

/// The environment as OpenClaw would see it: a lookup (empty values and
/// OpenClaw's `"undefined"`/`"null"` count as unset), and the OS home.
/// Cheap to clone.
#[derive(Clone)]
pub struct Environment {
    var: std::sync::Arc<Lookup>,
    os_home: Option<PathBuf>,
}

impl Environment {
    /// This process's environment and home folder.
    pub fn current() -> Environment {
        Environment {
            var: std::sync::Arc::new(|key| std::env::var_os(key)),
            os_home: dirs::home_dir(),
        }
    }

    /// A given lookup and home (tests, other processes' environments).
    pub fn with(
        var: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
        os_home: Option<PathBuf>,
    ) -> Self {
        Environment {
            var: std::sync::Arc::new(var),
            os_home,
        }
    }

    /// `key`, trimmed, unless empty or `undefined`/`null`.
    pub fn get(&self, key: &str) -> Option<String> {
        let value = (self.var)(key)?;
        let text = value.to_string_lossy().trim().to_owned();
        (!text.is_empty() && text != "undefined" && text != "null").then_some(text)
    }

    /// OpenClaw's home: `$OPENCLAW_HOME` (a leading `~` is the OS home),
    /// else the OS home.
    pub fn home(&self) -> Option<PathBuf> {
        match self.get("OPENCLAW_HOME") {
            Some(h) => Some(expand(&h, self.os_home.as_deref())),
            None => self.os_home.clone(),
        }
    }

    /// A path variable as OpenClaw expands it: a leading `~` is its home.
    fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(|v| expand(&v, self.home().as_deref()))
    }
}

/// `~`, `~/rest` (and `~\rest`) with `home`; anything else as is.
fn expand(value: &str, home: Option<&Path>) -> PathBuf {
    if let Some(home) = home {
        if value == "~" {
            return home.to_path_buf();
        }
        if let Some(rest) = value
            .strip_prefix("~/")
            .or_else(|| value.strip_prefix("~\\"))
        {
            return home.join(rest);
        }
    }
    PathBuf::from(value)
}

/// A profile name OpenClaw accepts (`[a-z0-9][a-z0-9_-]{0,63}`, any case);
/// `default` is no profile.
fn profile_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (first_ok && rest_ok && name.len() <= 64 && !name.eq_ignore_ascii_case("default"))
        .then_some(name)
}

/// A named profile's own gateway port: `20000 + FNV-1a-32(name) % 40000`
/// (`--dev` sets 19001 through `OPENCLAW_GATEWAY_PORT` instead).
pub fn profile_port(name: &str) -> u16 {
    let mut h: u32 = 2_166_136_261;
    for b in name.as_bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(16_777_619);
    }
    // 20000 + (h % 40000) is at most 59999.
    20_000 + u16::try_from(h % 40_000).unwrap_or(0)
}

/// The service names OpenClaw installs its gateway under, for `profile`,
/// with the override variables; or a legacy Clawdbot's.
pub fn services(kind: AgentKind, profile: Option<&str>, env: &Environment) -> GatewayServices {
    match kind {
        AgentKind::Clawdbot => GatewayServices {
            cli: "clawdbot".to_owned(),
            launchd_label: "com.clawdbot.gateway".to_owned(),
            systemd_unit: "clawdbot-gateway".to_owned(),
            windows_task: "Clawdbot Gateway".to_owned(),
        },
        AgentKind::OpenClaw => {
            let unit = env
                .get("OPENCLAW_SYSTEMD_UNIT")
                .map(|u| u.trim_end_matches(".service").to_owned());
            GatewayServices {
                cli: "openclaw".to_owned(),
                launchd_label: env.get("OPENCLAW_LAUNCHD_LABEL").unwrap_or_else(|| {
                    profile.map_or_else(
                        || "ai.openclaw.gateway".to_owned(),
                        |p| format!("ai.openclaw.{p}"),
                    )
                }),
                systemd_unit: unit.unwrap_or_else(|| {
                    profile.map_or_else(
                        || "openclaw-gateway".to_owned(),
                        |p| format!("openclaw-gateway-{p}"),
                    )
                }),
                windows_task: env.get("OPENCLAW_WINDOWS_TASK_NAME").unwrap_or_else(|| {
                    profile.map_or_else(
                        || "OpenClaw Gateway".to_owned(),
                        |p| format!("OpenClaw Gateway ({p})"),
                    )
                }),
            }
        }
    }
}

/// Where the install is, before its config is read: [`Install`] without the
/// port and version, which need the config.
pub fn locate(ours: &OpenClawConfig, env: &Environment) -> Install {
    let home = env.home();
    let at_home = |name: &str| home.as_ref().map(|h| h.join(name));
    // Our own `profile` moves the folder too (below); `OPENCLAW_PROFILE`
    // from the environment names only the port and the services.
    let profile = ours
        .profile
        .as_deref()
        .and_then(profile_name)
        .map(str::to_owned)
        .or_else(|| {
            env.get("OPENCLAW_PROFILE")
                .and_then(|p| profile_name(&p).map(str::to_owned))
        });

    let mut install = Install {
        kind: AgentKind::OpenClaw,
        profile: profile.clone(),
        ..Install::default()
    };
    let found = |install: &mut Install, config: PathBuf, state: PathBuf, by: String| {
        install.config_path = config.display().to_string();
        install.state_dir = state.display().to_string();
        install.found_by = by;
    };

    if let Some(config) = &ours.config_path {
        let state = ours
            .state_dir
            .clone()
            .or_else(|| config.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        found(
            &mut install,
            config.clone(),
            state,
            "[openclaw] config_path in ClawFleet's config".to_owned(),
        );
    } else if let Some(p) = ours.profile.as_deref().and_then(profile_name) {
        let Some(state) = at_home(&format!(".openclaw-{p}")) else {
            return no_home(install);
        };
        found(
            &mut install,
            state.join("openclaw.json"),
            state,
            format!(
                "[openclaw] profile = {p:?} in ClawFleet's config (as `openclaw --profile {p}`)"
            ),
        );
    } else if let Some(state) = ours.state_dir.clone() {
        let config = in_state_dir(&state).unwrap_or_else(|| state.join("openclaw.json"));
        found(
            &mut install,
            config,
            state,
            "[openclaw] state_dir in ClawFleet's config".to_owned(),
        );
    } else if let Some(config) = env.path("OPENCLAW_CONFIG_PATH") {
        let state = env
            .path("OPENCLAW_STATE_DIR")
            .or_else(|| default_state_dir(home.as_deref()))
            .unwrap_or_default();
        found(
            &mut install,
            config,
            state,
            "$OPENCLAW_CONFIG_PATH".to_owned(),
        );
    } else if let Some(state) = env.path("OPENCLAW_STATE_DIR") {
        // The state folder's files first, then the usual places.
        let config = in_state_dir(&state)
            .or_else(|| {
                default_candidates(home.as_deref())
                    .into_iter()
                    .find(|p| p.exists())
            })
            .unwrap_or_else(|| state.join("openclaw.json"));
        found(
            &mut install,
            config,
            state,
            "$OPENCLAW_STATE_DIR".to_owned(),
        );
    } else if let Some(config) = env.path("CLAWDBOT_CONFIG_PATH") {
        install.kind = AgentKind::Clawdbot;
        let state = env
            .path("CLAWDBOT_STATE_DIR")
            .or_else(|| config.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        found(
            &mut install,
            config,
            state,
            "$CLAWDBOT_CONFIG_PATH (legacy Clawdbot)".to_owned(),
        );
    } else if let Some(state) = env.path("CLAWDBOT_STATE_DIR") {
        install.kind = AgentKind::Clawdbot;
        found(
            &mut install,
            state.join("clawdbot.json"),
            state,
            "$CLAWDBOT_STATE_DIR (legacy Clawdbot)".to_owned(),
        );
    } else {
        let Some(state) = default_state_dir(home.as_deref()) else {
            return no_home(install);
        };
        match default_candidates(home.as_deref())
            .into_iter()
            .find(|p| p.exists())
        {
            Some(config) => {
                let by = format!(
                    "the first config OpenClaw looks for that exists ({})",
                    tilde(&config, home.as_deref())
                );
                found(&mut install, config, state, by);
            }
            None => {
                let config = state.join("openclaw.json");
                found(
                    &mut install,
                    config,
                    state,
                    "OpenClaw's default (no config found yet)".to_owned(),
                );
            }
        }
    }

    let config = PathBuf::from(&install.config_path);
    install.config_found = config.exists();
    if install.kind == AgentKind::OpenClaw
        && is_legacy_clawdbot(&config, Path::new(&install.state_dir))
    {
        install.kind = AgentKind::Clawdbot;
    }
    install.also_found = others(&install, home.as_deref());
    install.services = services(install.kind, install.profile.as_deref(), env);
    install
}

fn no_home(mut install: Install) -> Install {
    install.found_by =
        "no home folder: set OPENCLAW_HOME or HOME, or [openclaw] config_path in ClawFleet's config"
            .to_owned();
    install
}

/// `~/.openclaw` if it exists, else `~/.clawdbot` if it exists, else
/// `~/.openclaw`.
fn default_state_dir(home: Option<&Path>) -> Option<PathBuf> {
    let home = home?;
    let openclaw = home.join(".openclaw");
    let clawdbot = home.join(".clawdbot");
    Some(if openclaw.exists() {
        openclaw
    } else if clawdbot.exists() {
        clawdbot
    } else {
        openclaw
    })
}

/// `<state>/openclaw.json`, else `<state>/clawdbot.json`, if either exists.
fn in_state_dir(state: &Path) -> Option<PathBuf> {
    ["openclaw.json", "clawdbot.json"]
        .into_iter()
        .map(|n| state.join(n))
        .find(|p| p.exists())
}

/// OpenClaw's default config candidates, in order.
fn default_candidates(home: Option<&Path>) -> Vec<PathBuf> {
    let Some(home) = home else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dir in [".openclaw", ".clawdbot"] {
        for name in ["openclaw.json", "clawdbot.json"] {
            out.push(home.join(dir).join(name));
        }
    }
    out
}

/// A legacy Clawdbot 2026.1 install: a `clawdbot.json` in a state folder
/// that OpenClaw has never used (no `state/openclaw.sqlite`, no agent
/// database), and not reached through `~/.openclaw` (where OpenClaw
/// moves `~/.clawdbot` when it first runs).
fn is_legacy_clawdbot(config: &Path, state: &Path) -> bool {
    let named_clawdbot = config.file_name().is_some_and(|n| n == "clawdbot.json");
    let state_real = std::fs::canonicalize(state).unwrap_or_else(|_| state.to_path_buf());
    let in_openclaw_dir = state_real
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".openclaw"));
    named_clawdbot && !in_openclaw_dir && !state.join("state").join("openclaw.sqlite").exists()
}

/// Other config files and installs seen but not read: a `clawdbot.json`
/// beside the `openclaw.json` in use (left by `openclaw doctor --fix`), a
/// legacy `~/.clawdbot` that is not the same folder, profile folders.
fn others(install: &Install, home: Option<&Path>) -> Vec<String> {
    let used = std::fs::canonicalize(&install.config_path).ok();
    let used_state = std::fs::canonicalize(&install.state_dir).ok();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for candidate in default_candidates(home).into_iter().chain(
        [&install.state_dir]
            .into_iter()
            .flat_map(|s| ["openclaw.json", "clawdbot.json"].map(|n| Path::new(s).join(n))),
    ) {
        let Ok(real) = std::fs::canonicalize(&candidate) else {
            continue;
        };
        if Some(&real) == used.as_ref() || !real.is_file() || !seen.insert(real.clone()) {
            continue;
        }
        out.push(format!(
            "{} (not read: OpenClaw reads {})",
            tilde(&candidate, home),
            tilde(Path::new(&install.config_path), home)
        ));
    }
    // Named profiles' folders, each a separate install.
    if let Some(home) = home
        && let Ok(entries) = std::fs::read_dir(home)
    {
        let mut profiles: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = name.strip_prefix(".openclaw-")?.to_owned();
                let real = std::fs::canonicalize(e.path()).ok();
                (profile_name(&p).is_some() && real != used_state && e.path().is_dir()).then_some(p)
            })
            .collect();
        profiles.sort();
        for p in profiles.into_iter().take(16) {
            out.push(format!(
                "~/.openclaw-{p} (the install of profile {p:?}: set [openclaw] profile = {p:?} to watch it instead)"
            ));
        }
    }
    out
}

/// `path` with the home folder written `~`.
pub fn tilde(path: &Path, home: Option<&Path>) -> String {
    match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

/// The gateway port and what named it: `$OPENCLAW_GATEWAY_PORT` (a port, or
/// `host:port`), else `gateway.port` from the config, else the profile's own
/// port, else 18789.
pub fn gateway_port(
    kind: AgentKind,
    configured: Option<u16>,
    profile: Option<&str>,
    env: &Environment,
) -> (u16, String) {
    if kind == AgentKind::OpenClaw
        && let Some(v) = env.get("OPENCLAW_GATEWAY_PORT")
    {
        let digits = match v.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => port,
            Some(_) => "",
            None => v.as_str(),
        };
        if let Ok(port) = digits.parse::<u16>()
            && port != 0
        {
            return (port, "$OPENCLAW_GATEWAY_PORT".to_owned());
        }
    }
    if let Some(port) = configured {
        return (port, "gateway.port".to_owned());
    }
    if kind == AgentKind::OpenClaw
        && let Some(p) = profile
    {
        return (profile_port(p), format!("profile {p:?}'s own port"));
    }
    (DEFAULT_GATEWAY_PORT, "the default".to_owned())
}

/// The variables that make the agent's own command (`openclaw gateway
/// restart`) act on `install`, whatever the environment it is run from.
pub fn cli_env(install: &Install) -> Vec<(&'static str, std::ffi::OsString)> {
    if install.state_dir.is_empty() {
        return Vec::new();
    }
    let (state, config) = match install.kind {
        AgentKind::OpenClaw => ("OPENCLAW_STATE_DIR", "OPENCLAW_CONFIG_PATH"),
        AgentKind::Clawdbot => ("CLAWDBOT_STATE_DIR", "CLAWDBOT_CONFIG_PATH"),
    };
    vec![
        (state, install.state_dir.clone().into()),
        (config, install.config_path.clone().into()),
    ]
}

/// What a running gateway's lock file says: its process and real port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLock {
    /// The gateway's process id.
    pub pid: u32,
    /// The port it listens on.
    pub port: Option<u16>,
}

/// The lock file of a gateway running on `state_dir`, if its process is
/// alive: `<state>/tmp/openclaw-<uid>/gateway.state.lock` (JSON, then a
/// line of padding).
pub fn running_gateway(state_dir: &Path) -> Option<GatewayLock> {
    let real = std::fs::canonicalize(state_dir).ok()?;
    #[cfg(unix)]
    // SAFETY: getuid has no preconditions and cannot fail.
    let folder = format!("openclaw-{}", unsafe { libc::getuid() });
    #[cfg(not(unix))]
    let folder = "openclaw".to_owned();
    let path = real.join("tmp").join(folder).join("gateway.state.lock");
    let text = crate::outside::read_text(&path, 64 * 1024).ok()?;
    let value: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
    let pid = u32::try_from(value["pid"].as_u64()?).ok()?;
    let port = value["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0);
    crate::outside::process_alive(pid).then_some(GatewayLock { pid, port })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)], home: &Path) -> Environment {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        Environment::with(move |k| vars.get(k).cloned(), Some(home.to_path_buf()))
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "{}").unwrap();
    }

    #[test]
    fn openclaw_json_first_then_legacy_names_then_the_default() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let none = OpenClawConfig::default();
        // Nothing at all: OpenClaw's default, not found.
        let i = locate(&none, &env(&[], h));
        assert_eq!(
            i.config_path,
            h.join(".openclaw/openclaw.json").display().to_string()
        );
        assert!(!i.config_found);
        assert_eq!(i.kind, AgentKind::OpenClaw);
        // Only a legacy Clawdbot.
        touch(&h.join(".clawdbot/clawdbot.json"));
        let i = locate(&none, &env(&[], h));
        assert_eq!(
            i.config_path,
            h.join(".clawdbot/clawdbot.json").display().to_string()
        );
        assert_eq!(i.state_dir, h.join(".clawdbot").display().to_string());
        assert_eq!(i.kind, AgentKind::Clawdbot);
        assert_eq!(i.services.cli, "clawdbot");
        // OpenClaw moved the folder and reads clawdbot.json there.
        std::fs::rename(h.join(".clawdbot"), h.join(".openclaw")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(h.join(".openclaw"), h.join(".clawdbot")).unwrap();
        let i = locate(&none, &env(&[], h));
        assert_eq!(
            i.config_path,
            h.join(".openclaw/clawdbot.json").display().to_string()
        );
        assert_eq!(i.kind, AgentKind::OpenClaw);
        assert!(i.also_found.is_empty(), "{:?}", i.also_found);
        // `openclaw doctor --fix` copied it to openclaw.json: that one is read.
        touch(&h.join(".openclaw/openclaw.json"));
        let i = locate(&none, &env(&[], h));
        assert_eq!(
            i.config_path,
            h.join(".openclaw/openclaw.json").display().to_string()
        );
        assert!(i.config_found);
        assert_eq!(i.also_found.len(), 1, "{:?}", i.also_found);
        assert!(
            i.also_found[0].starts_with("~/.openclaw/clawdbot.json (not read"),
            "{:?}",
            i.also_found
        );
        assert_eq!(i.services.systemd_unit, "openclaw-gateway");
        assert_eq!(i.services.launchd_label, "ai.openclaw.gateway");
        assert_eq!(i.services.windows_task, "OpenClaw Gateway");
    }

    #[test]
    fn variables_and_our_settings() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let none = OpenClawConfig::default();
        touch(&h.join(".openclaw/openclaw.json"));
        // OPENCLAW_CONFIG_PATH wins, with ~ expanded against OPENCLAW_HOME.
        let other = h.join("alt");
        let i = locate(
            &none,
            &env(
                &[
                    ("OPENCLAW_HOME", &other.display().to_string()),
                    ("OPENCLAW_CONFIG_PATH", "~/x.json"),
                ],
                h,
            ),
        );
        assert_eq!(i.config_path, other.join("x.json").display().to_string());
        assert_eq!(i.found_by, "$OPENCLAW_CONFIG_PATH");
        // OPENCLAW_STATE_DIR with no config in it: the usual places still.
        let state = h.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let vars = [("OPENCLAW_STATE_DIR", state.to_str().unwrap())];
        let i = locate(&none, &env(&vars, h));
        assert_eq!(
            i.config_path,
            h.join(".openclaw/openclaw.json").display().to_string()
        );
        assert_eq!(i.state_dir, state.display().to_string());
        touch(&state.join("clawdbot.json"));
        let i = locate(&none, &env(&vars, h));
        assert_eq!(
            i.config_path,
            state.join("clawdbot.json").display().to_string()
        );
        // An empty or "undefined" variable is unset.
        let i = locate(
            &none,
            &env(
                &[
                    ("OPENCLAW_STATE_DIR", " "),
                    ("OPENCLAW_CONFIG_PATH", "undefined"),
                ],
                h,
            ),
        );
        assert_eq!(
            i.config_path,
            h.join(".openclaw/openclaw.json").display().to_string()
        );
        // Legacy Clawdbot's variables, only when OpenClaw's say nothing.
        let i = locate(&none, &env(&[("CLAWDBOT_CONFIG_PATH", "/etc/cb.json")], h));
        assert_eq!(i.config_path, "/etc/cb.json");
        assert_eq!(i.kind, AgentKind::Clawdbot);
        let i = locate(
            &none,
            &env(
                &[
                    ("CLAWDBOT_CONFIG_PATH", "/etc/cb.json"),
                    ("OPENCLAW_STATE_DIR", state.to_str().unwrap()),
                ],
                h,
            ),
        );
        assert_eq!(
            i.config_path,
            state.join("clawdbot.json").display().to_string()
        );
        // Our own settings come first.
        let ours = OpenClawConfig {
            config_path: Some(PathBuf::from("/srv/oc/openclaw.json")),
            ..OpenClawConfig::default()
        };
        let i = locate(&ours, &env(&[("OPENCLAW_CONFIG_PATH", "/x.json")], h));
        assert_eq!(i.config_path, "/srv/oc/openclaw.json");
        assert_eq!(i.state_dir, "/srv/oc");
        assert!(i.found_by.starts_with("[openclaw] config_path"));
        let ours = OpenClawConfig {
            profile: Some("work".into()),
            ..OpenClawConfig::default()
        };
        let i = locate(&ours, &env(&[], h));
        assert_eq!(
            i.config_path,
            h.join(".openclaw-work/openclaw.json").display().to_string()
        );
        assert_eq!(i.profile.as_deref(), Some("work"));
        assert_eq!(i.services.systemd_unit, "openclaw-gateway-work");
        assert_eq!(i.services.launchd_label, "ai.openclaw.work");
        assert_eq!(i.services.windows_task, "OpenClaw Gateway (work)");
    }

    #[test]
    fn profile_in_the_environment_names_port_and_services_not_the_folder() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        touch(&h.join(".openclaw/openclaw.json"));
        std::fs::create_dir_all(h.join(".openclaw-work")).unwrap();
        let e = env(&[("OPENCLAW_PROFILE", "work")], h);
        let i = locate(&OpenClawConfig::default(), &e);
        assert_eq!(
            i.config_path,
            h.join(".openclaw/openclaw.json").display().to_string()
        );
        assert_eq!(i.profile.as_deref(), Some("work"));
        assert_eq!(i.services.systemd_unit, "openclaw-gateway-work");
        assert_eq!(
            gateway_port(i.kind, None, i.profile.as_deref(), &e),
            (41984, "profile \"work\"'s own port".to_owned())
        );
        assert!(
            i.also_found
                .iter()
                .any(|a| a.starts_with("~/.openclaw-work (the install of profile \"work\"")),
            "{:?}",
            i.also_found
        );
        // The override variables win.
        let e = env(
            &[
                ("OPENCLAW_SYSTEMD_UNIT", "my-gw.service"),
                ("OPENCLAW_LAUNCHD_LABEL", "x.y"),
            ],
            h,
        );
        let s = services(AgentKind::OpenClaw, None, &e);
        assert_eq!(
            (s.systemd_unit.as_str(), s.launchd_label.as_str()),
            ("my-gw", "x.y")
        );
    }

    #[test]
    fn gateway_ports_as_openclaw_resolves_them() {
        let h = Path::new("/home/u");
        // Observed with the real package.
        for (name, port) in [("work", 41984), ("Work", 28704), ("dev", 38556)] {
            assert_eq!(profile_port(name), port, "{name}");
        }
        let k = AgentKind::OpenClaw;
        assert_eq!(gateway_port(k, Some(1234), None, &env(&[], h)).0, 1234);
        for (v, port) in [
            ("19001", 19001),
            ("127.0.0.1:19002", 19002),
            ("[::1]:19003", 19003),
        ] {
            let e = env(&[("OPENCLAW_GATEWAY_PORT", v)], h);
            assert_eq!(
                gateway_port(k, Some(1234), None, &e),
                (port, "$OPENCLAW_GATEWAY_PORT".to_owned()),
                "{v}"
            );
        }
        for bad in ["0", "70000", "x", "::1:5"] {
            let e = env(&[("OPENCLAW_GATEWAY_PORT", bad)], h);
            assert_eq!(
                gateway_port(k, None, None, &e).0,
                DEFAULT_GATEWAY_PORT,
                "{bad}"
            );
        }
        // A legacy Clawdbot does not read OpenClaw's variable.
        let e = env(&[("OPENCLAW_GATEWAY_PORT", "19001")], h);
        assert_eq!(
            gateway_port(AgentKind::Clawdbot, None, None, &e).0,
            DEFAULT_GATEWAY_PORT
        );
        // Invalid profile names are no profile.
        assert_eq!(profile_name("a b"), None);
        assert_eq!(profile_name("default"), None);
        assert_eq!(profile_name("w-1_x"), Some("w-1_x"));
    }

    #[test]
    fn the_lock_file_of_a_live_gateway() {
        let state = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        // SAFETY: getuid cannot fail.
        let folder = format!("openclaw-{}", unsafe { libc::getuid() });
        #[cfg(not(unix))]
        let folder = "openclaw".to_owned();
        let dir = state.path().join("tmp").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(running_gateway(state.path()), None);
        let me = std::process::id();
        std::fs::write(
            dir.join("gateway.state.lock"),
            format!(
                "{{\n  \"pid\": {me},\n  \"port\": 28150,\n  \"ownerId\": \"x\"\n}}\n\t  \t \n"
            ),
        )
        .unwrap();
        assert_eq!(
            running_gateway(state.path()),
            Some(GatewayLock {
                pid: me,
                port: Some(28150)
            })
        );
        #[cfg(unix)]
        {
            std::fs::write(
                dir.join("gateway.state.lock"),
                "{\"pid\": 2147483600, \"port\": 1}",
            )
            .unwrap();
            assert_eq!(
                running_gateway(state.path()),
                None,
                "a dead pid is no gateway"
            );
        }
    }
}
