//! Clawdbot's config (`clawdbot.json`, JSON5) and whether its gateway listens.
//!
//! The config holds API keys and tokens: only the fields listed in
//! [`OpenClawStatus`] are read out of it, and nothing else is kept or logged.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

use crate::probe::json_kind;
use crate::snapshot::{OpenClawProvider, OpenClawStatus};

/// The gateway port when the config names none.
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;

/// The largest config file read (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Where Clawdbot's config is: the configured path, else
/// `$CLAWDBOT_CONFIG_PATH`, else `$CLAWDBOT_STATE_DIR/clawdbot.json`, else
/// `~/.clawdbot/clawdbot.json`.
pub fn config_path(configured: Option<&Path>) -> Option<PathBuf> {
    config_path_from(configured, |key| std::env::var_os(key), dirs::home_dir())
}

/// [`config_path`] with the environment and the home folder given, so it can
/// be tested without changing the process environment. Empty variables count
/// as unset; a leading `~/` in a variable is the home folder (launchd and
/// Task Scheduler do not expand it).
pub fn config_path_from(
    configured: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Some(path.to_path_buf());
    }
    let var = |key: &str| {
        env(key)
            .filter(|v| !v.is_empty())
            .map(|v| expand_home(v, home.as_deref()))
    };
    if let Some(path) = var("CLAWDBOT_CONFIG_PATH") {
        return Some(path);
    }
    if let Some(dir) = var("CLAWDBOT_STATE_DIR") {
        return Some(dir.join("clawdbot.json"));
    }
    home.map(|h| h.join(".clawdbot").join("clawdbot.json"))
}

/// `~` or `~/rest` with the home folder, when known; anything else as is.
fn expand_home(value: OsString, home: Option<&Path>) -> PathBuf {
    if let (Some(text), Some(home)) = (value.to_str(), home) {
        if text == "~" {
            return home.to_path_buf();
        }
        if let Some(rest) = text.strip_prefix("~/") {
            return home.join(rest);
        }
    }
    PathBuf::from(value)
}

/// Reads the config at `path` and checks the gateway port on loopback.
///
/// Never fails: a missing file is `config_found: false` with no error; an
/// unreadable or malformed file, or fields of the wrong type, are described
/// in `error`, and whatever could be read is still reported. The gateway is
/// checked on `127.0.0.1` at the configured port (the default one when the
/// config cannot be read), within `timeout`.
pub async fn probe(path: Option<&Path>, timeout: Duration) -> OpenClawStatus {
    let mut status = OpenClawStatus {
        config_path: path.map(|p| p.display().to_string()),
        gateway_port: DEFAULT_GATEWAY_PORT,
        ..OpenClawStatus::default()
    };
    let mut token = None;
    match path {
        None => status.error = Some("no config path: the home folder is unknown".to_owned()),
        Some(path) => match read_config(path).await {
            Ok(None) => {}
            Ok(Some(text)) => {
                status.config_found = true;
                read_status(&text, &mut status);
                token = super::gateway::token_of(&text);
            }
            Err(message) => {
                status.config_found = true;
                status.error = Some(message);
            }
        },
    }
    status.gateway_listening = Some(port_accepts(status.gateway_port, timeout).await);
    // Beyond the open port: the websocket handshake and `health`.
    if status.config_found && status.gateway_listening == Some(true) {
        status.gateway_health =
            Some(super::gateway::health(status.gateway_port, token.as_deref(), timeout).await);
    }
    status.checked_at = Some(Timestamp::now());
    status
}

/// The file's text; `Ok(None)` when there is no such file.
async fn read_config(path: &Path) -> Result<Option<String>, String> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "{} is larger than {} MiB; not read",
            path.display(),
            MAX_CONFIG_BYTES / (1024 * 1024)
        ));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        format!(
            "{} is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Fills `status` from the config text. Parse errors and wrong types go to
/// `status.error`; wrong fields are skipped, the rest is still read.
fn read_status(text: &str, status: &mut OpenClawStatus) {
    let root: Value = match json5::from_str(text) {
        Ok(root) => root,
        Err(e) => {
            status.error = Some(describe_json5_error(&e));
            return;
        }
    };
    let mut notes = Notes::default();
    let Some(root) = notes.object(&root, "the top level") else {
        status.error = notes.into_error();
        return;
    };

    let defaults = notes
        .child_object(root, "agents", "agents")
        .and_then(|agents| notes.child_object(agents, "defaults", "agents.defaults"));
    if let Some(defaults) = defaults {
        if let Some(model) = defaults.get("model") {
            let (primary, fallbacks) = notes.model(model, "agents.defaults.model");
            status.primary_model = primary;
            status.fallbacks = fallbacks;
        }
        if let Some(heartbeat) =
            notes.child_object(defaults, "heartbeat", "agents.defaults.heartbeat")
        {
            status.heartbeat_model =
                notes.child_string(heartbeat, "model", "agents.defaults.heartbeat.model");
            status.heartbeat_every =
                notes.child_string(heartbeat, "every", "agents.defaults.heartbeat.every");
        }
        if let Some(subagents) =
            notes.child_object(defaults, "subagents", "agents.defaults.subagents")
            && let Some(model) = subagents.get("model")
        {
            // Clawdbot uses only the primary of a sub-agent model.
            status.subagent_model = notes.model(model, "agents.defaults.subagents.model").0;
        }
    }

    let providers = notes
        .child_object(root, "models", "models")
        .and_then(|models| notes.child_object(models, "providers", "models.providers"));
    if let Some(providers) = providers {
        for (name, provider) in providers {
            let key = format!("models.providers.{name}");
            let Some(provider) = notes.object(provider, &key) else {
                continue;
            };
            // Only these three fields: `apiKey` and `headers` hold secrets.
            status.providers.push(OpenClawProvider {
                name: name.clone(),
                base_url: notes.child_string(provider, "baseUrl", &format!("{key}.baseUrl")),
                api: notes.child_string(provider, "api", &format!("{key}.api")),
                models: notes.model_ids(provider, &format!("{key}.models")),
            });
        }
    }

    if let Some(gateway) = notes.child_object(root, "gateway", "gateway") {
        if let Some(port) = gateway.get("port") {
            match port
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0)
            {
                Some(port) => status.gateway_port = port,
                None => notes.wrong("gateway.port", "a port number (1-65535)", port),
            }
        }
        status.gateway_bind = notes.child_string(gateway, "bind", "gateway.bind");
    }

    status.error = notes.into_error();
}

/// `line L column C: message`, 1-based, from a JSON5 error.
fn describe_json5_error(error: &json5::Error) -> String {
    let message = match error.code() {
        Some(code) => code.to_string(),
        // A custom message: json5 appends " at line L column C" itself.
        None => {
            let text = error.to_string();
            match text.rfind(" at line ") {
                Some(cut) => text[..cut].to_owned(),
                None => text,
            }
        }
    };
    match error.position() {
        Some(at) => format!("line {} column {}: {message}", at.line + 1, at.column + 1),
        None => message,
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port` within
/// `timeout`. A refusal and a timeout are both "no".
async fn port_accepts(port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// Fields of the wrong type met while reading the config: each is skipped
/// and named here, so the user can fix the file.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn wrong(&mut self, key: &str, expected: &str, found: &Value) {
        self.0.push(format!(
            "{key}: expected {expected}, found {}",
            json_kind(found)
        ));
    }

    fn into_error(self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join("; "))
    }

    fn object<'a>(&mut self, value: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.wrong(key, "an object", value);
        }
        object
    }

    /// `parent[name]` as an object; absent is fine, another type is noted.
    fn child_object<'a>(
        &mut self,
        parent: &'a Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Option<&'a Map<String, Value>> {
        parent.get(name).and_then(|v| self.object(v, key))
    }

    /// `parent[name]` as a string; absent is fine, another type is noted.
    fn child_string(
        &mut self,
        parent: &Map<String, Value>,
        name: &str,
        key: &str,
    ) -> Option<String> {
        let value = parent.get(name)?;
        let text = value.as_str().map(str::to_owned);
        if text.is_none() {
            self.wrong(key, "a string", value);
        }
        text
    }

    /// A model setting: `"provider/model"` or `{primary, fallbacks}`.
    fn model(&mut self, value: &Value, key: &str) -> (Option<String>, Vec<String>) {
        match value {
            Value::String(primary) => (Some(primary.clone()), Vec::new()),
            Value::Object(object) => {
                let primary = self.child_string(object, "primary", &format!("{key}.primary"));
                let fallbacks = match object.get("fallbacks") {
                    None => Vec::new(),
                    Some(Value::Array(items)) => self.strings(items, &format!("{key}.fallbacks")),
                    Some(other) => {
                        self.wrong(&format!("{key}.fallbacks"), "a list of strings", other);
                        Vec::new()
                    }
                };
                (primary, fallbacks)
            }
            other => {
                self.wrong(key, "a string or {primary, fallbacks}", other);
                (None, Vec::new())
            }
        }
    }

    /// The strings of a list; other items are noted and skipped.
    fn strings(&mut self, items: &[Value], key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(text) => out.push(text.to_owned()),
                None => self.wrong(&format!("{key}[{i}]"), "a string", item),
            }
        }
        out
    }

    /// The `id` of each `models` entry of a provider.
    fn model_ids(&mut self, provider: &Map<String, Value>, key: &str) -> Vec<String> {
        let Some(models) = provider.get("models") else {
            return Vec::new();
        };
        let Some(items) = models.as_array() else {
            self.wrong(key, "a list", models);
            return Vec::new();
        };
        let mut ids = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            if let Some(model) = self.object(item, &item_key)
                && let Some(id) = self.child_string(model, "id", &format!("{item_key}.id"))
            {
                ids.push(id);
            }
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        move |key| vars.get(key).cloned()
    }

    #[test]
    fn config_path_order() {
        let home = Some(PathBuf::from("/home/u"));
        let all = lookup(&[
            ("CLAWDBOT_CONFIG_PATH", "/etc/c.json"),
            ("CLAWDBOT_STATE_DIR", "/var/cb"),
        ]);
        assert_eq!(
            config_path_from(Some(Path::new("/cfg/x.json")), &all, home.clone()),
            Some(PathBuf::from("/cfg/x.json"))
        );
        assert_eq!(
            config_path_from(None, &all, home.clone()),
            Some(PathBuf::from("/etc/c.json"))
        );
        assert_eq!(
            config_path_from(
                None,
                lookup(&[("CLAWDBOT_STATE_DIR", "/var/cb")]),
                home.clone()
            ),
            Some(PathBuf::from("/var/cb/clawdbot.json"))
        );
        assert_eq!(
            config_path_from(None, lookup(&[]), home.clone()),
            Some(PathBuf::from("/home/u/.clawdbot/clawdbot.json"))
        );
        assert_eq!(config_path_from(None, lookup(&[]), None), None);
    }

    #[test]
    fn config_path_empty_vars_and_tilde() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            config_path_from(
                None,
                lookup(&[
                    ("CLAWDBOT_CONFIG_PATH", ""),
                    ("CLAWDBOT_STATE_DIR", "~/state")
                ]),
                home.clone()
            ),
            Some(PathBuf::from("/home/u/state/clawdbot.json"))
        );
        assert_eq!(
            config_path_from(None, lookup(&[("CLAWDBOT_CONFIG_PATH", "~")]), home),
            Some(PathBuf::from("/home/u"))
        );
        // Without a home folder a `~` stays as written.
        assert_eq!(
            config_path_from(None, lookup(&[("CLAWDBOT_CONFIG_PATH", "~/c.json")]), None),
            Some(PathBuf::from("~/c.json"))
        );
    }

    fn read(text: &str) -> OpenClawStatus {
        let mut status = OpenClawStatus {
            gateway_port: DEFAULT_GATEWAY_PORT,
            ..OpenClawStatus::default()
        };
        read_status(text, &mut status);
        status
    }

    #[test]
    fn model_as_plain_string() {
        let status = read(
            r#"{agents: {defaults: {model: "ollama/qwen3:8b", subagents: {model: "ollama/gpt-oss:20b"}}}}"#,
        );
        assert_eq!(status.primary_model.as_deref(), Some("ollama/qwen3:8b"));
        assert!(status.fallbacks.is_empty());
        assert_eq!(status.subagent_model.as_deref(), Some("ollama/gpt-oss:20b"));
        assert_eq!(status.error, None);
    }

    #[test]
    fn wrong_types_are_skipped_and_named() {
        let status = read(
            r#"{
              agents: {defaults: {
                model: {primary: "a/b", fallbacks: "c/d"},
                heartbeat: {model: 5, every: "30m"},
                subagents: {model: {primary: "x/y", fallbacks: [1, "z/w"]}},
              }},
              models: {providers: {good: {baseUrl: "http://h/v1", models: [{id: "m"}, "bad", {name: "no id"}]}, bad: 3}},
              gateway: {port: 70000, bind: "loopback"},
            }"#,
        );
        assert_eq!(status.primary_model.as_deref(), Some("a/b"));
        assert!(status.fallbacks.is_empty());
        assert_eq!(status.heartbeat_model, None);
        assert_eq!(status.heartbeat_every.as_deref(), Some("30m"));
        assert_eq!(status.subagent_model.as_deref(), Some("x/y"));
        assert_eq!(status.providers.len(), 1);
        assert_eq!(status.providers[0].models, vec!["m".to_owned()]);
        assert_eq!(status.gateway_port, DEFAULT_GATEWAY_PORT);
        assert_eq!(status.gateway_bind.as_deref(), Some("loopback"));
        let error = status.error.unwrap();
        for expected in [
            "agents.defaults.model.fallbacks: expected a list of strings, found a string",
            "agents.defaults.heartbeat.model: expected a string, found a number",
            "agents.defaults.subagents.model.fallbacks[0]: expected a string, found a number",
            "models.providers.good.models[1]: expected an object, found a string",
            "models.providers.bad: expected an object, found a number",
            "gateway.port: expected a port number (1-65535), found a number",
        ] {
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
        // `{name: "no id"}` has no id: skipped silently, like any absent field.
        assert!(!error.contains("models[2]"), "{error}");
    }

    #[test]
    fn top_level_must_be_an_object() {
        let status = read("[1, 2]");
        assert_eq!(
            status.error.as_deref(),
            Some("the top level: expected an object, found a list")
        );
    }

    #[test]
    fn parse_error_has_line_and_column() {
        let status = read("{\n  agents: {\n    defaults: {model: \"a\" \"b\"}\n  }\n}\n");
        let error = status.error.unwrap();
        assert!(error.starts_with("line 3 column "), "{error}");
        assert_eq!(status.primary_model, None);
    }
}
