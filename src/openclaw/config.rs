//! The agent's config (`openclaw.json`, or a legacy `clawdbot.json`; JSON5)
//! as ClawFleet needs it: model chains, providers without their keys, the
//! gateway's port, bind and authentication, agents and their heartbeat, the
//! version that last wrote it.
//!
//! The file holds API keys and tokens: only the fields of [`AgentConfig`]
//! are read out of it; the gateway's secret, if read at all, stays in
//! [`GatewayAuth`] and never reaches the snapshot or a log. Pure: text in,
//! fields out; wrong fields are named and skipped, the rest still read.

use serde_json::{Map, Value};

use crate::outside::json_kind;
use crate::snapshot::OpenClawProvider;

/// The largest config file read (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// What the config says, minus its secrets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentConfig {
    /// `agents.defaults.model.primary`.
    pub primary_model: Option<String>,
    /// `agents.defaults.model.fallbacks`.
    pub fallbacks: Vec<String>,
    /// `agents.defaults.heartbeat.model`.
    pub heartbeat_model: Option<String>,
    /// `agents.defaults.heartbeat.every`.
    pub heartbeat_every: Option<String>,
    /// `agents.defaults.subagents.model` (its primary).
    pub subagent_model: Option<String>,
    /// `models.providers`, without `apiKey` and `headers`.
    pub providers: Vec<OpenClawProvider>,
    /// Agents named in `agents.entries` (or a legacy `agents.list`), with
    /// their own primary model when they set one.
    pub agents: Vec<(String, Option<String>)>,
    /// `gateway.port`.
    pub gateway_port: Option<u16>,
    /// `gateway.bind`.
    pub gateway_bind: Option<String>,
    /// `gateway.auth`, the secret still unresolved.
    pub gateway_auth: GatewayAuth,
    /// `cron.enabled` (heartbeats run on the scheduler).
    pub cron_enabled: Option<bool>,
    /// `meta.lastTouchedVersion`: the OpenClaw that last wrote the file.
    pub written_by: Option<String>,
    /// Fields of the wrong type, named (never their values).
    pub problems: Vec<String>,
}

/// `gateway.auth`: the mode and where its secret is. The secret itself is
/// resolved by `openclaw::auth`.
#[derive(Clone, Default, PartialEq)]
pub struct GatewayAuth {
    /// `token`, `password`, `none`, `trusted-proxy`; unset when absent.
    pub mode: Option<String>,
    /// `gateway.auth.token`: a string or a secret reference.
    pub token: Option<Value>,
    /// `gateway.auth.password`: a string or a secret reference.
    pub password: Option<Value>,
    /// `secrets` (providers and defaults), for secret references.
    pub secrets: Option<Value>,
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: a token may be a literal.
        f.debug_struct("GatewayAuth")
            .field("mode", &self.mode)
            .field("token", &self.token.as_ref().map(json_kind))
            .field("password", &self.password.as_ref().map(json_kind))
            .finish_non_exhaustive()
    }
}

/// Reads the config text. `Err` is a parse error (line and column, never
/// the text); wrong fields are in `problems` and the rest is read.
pub fn read(text: &str) -> Result<AgentConfig, String> {
    let root = crate::outside::parse_json5(text)?;
    let mut notes = Notes::default();
    let mut out = AgentConfig::default();
    let Some(root) = notes.object(&root, "the top level") else {
        out.problems = notes.0;
        return Ok(out);
    };

    let agents = notes.child_object(root, "agents", "agents");
    let defaults = agents.and_then(|a| notes.child_object(a, "defaults", "agents.defaults"));
    if let Some(defaults) = defaults {
        if let Some(model) = defaults.get("model") {
            let (primary, fallbacks) = notes.model(model, "agents.defaults.model");
            out.primary_model = primary;
            out.fallbacks = fallbacks;
        }
        if let Some(heartbeat) =
            notes.child_object(defaults, "heartbeat", "agents.defaults.heartbeat")
        {
            out.heartbeat_model =
                notes.child_string(heartbeat, "model", "agents.defaults.heartbeat.model");
            out.heartbeat_every =
                notes.child_string(heartbeat, "every", "agents.defaults.heartbeat.every");
        }
        if let Some(subagents) =
            notes.child_object(defaults, "subagents", "agents.defaults.subagents")
            && let Some(model) = subagents.get("model")
        {
            // Only the primary of a sub-agent model is used.
            out.subagent_model = notes.model(model, "agents.defaults.subagents.model").0;
        }
    }
    if let Some(agents) = agents {
        if let Some(entries) = notes.child_object(agents, "entries", "agents.entries") {
            for (id, entry) in entries {
                let key = format!("agents.entries.{id}");
                let model = notes
                    .object(entry, &key)
                    .and_then(|e| e.get("model"))
                    .and_then(|m| notes.model(m, &format!("{key}.model")).0);
                out.agents.push((id.clone(), model));
            }
        } else if let Some(list) = agents.get("list").and_then(Value::as_array) {
            // The roster before `agents.entries` (Clawdbot, early OpenClaw).
            for (i, entry) in list.iter().enumerate() {
                let key = format!("agents.list[{i}]");
                if let Some(e) = notes.object(entry, &key)
                    && let Some(id) = notes.child_string(e, "id", &format!("{key}.id"))
                {
                    let model = e
                        .get("model")
                        .and_then(|m| notes.model(m, &format!("{key}.model")).0);
                    out.agents.push((id, model));
                }
            }
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
            // Never `apiKey` or `headers`: they hold secrets.
            out.providers.push(OpenClawProvider {
                name: name.clone(),
                base_url: notes.child_string(provider, "baseUrl", &format!("{key}.baseUrl")),
                api: notes.child_string(provider, "api", &format!("{key}.api")),
                models: notes.model_ids(provider, &format!("{key}.models")),
                timeout_secs: notes.child_u64(
                    provider,
                    "timeoutSeconds",
                    &format!("{key}.timeoutSeconds"),
                ),
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
                Some(port) => out.gateway_port = Some(port),
                None => notes.wrong("gateway.port", "a port number (1-65535)", port),
            }
        }
        out.gateway_bind = notes.child_string(gateway, "bind", "gateway.bind");
        if let Some(auth) = notes.child_object(gateway, "auth", "gateway.auth") {
            out.gateway_auth.mode = notes.child_string(auth, "mode", "gateway.auth.mode");
            out.gateway_auth.token = auth.get("token").cloned();
            out.gateway_auth.password = auth.get("password").cloned();
        }
    }
    out.gateway_auth.secrets = root.get("secrets").cloned();
    if let Some(cron) = notes.child_object(root, "cron", "cron") {
        out.cron_enabled = cron.get("enabled").and_then(Value::as_bool);
    }
    if let Some(meta) = notes.child_object(root, "meta", "meta") {
        out.written_by = notes
            .child_string(meta, "lastTouchedVersion", "meta.lastTouchedVersion")
            .map(|v| crate::net::preview(v.as_bytes(), 40));
    }
    out.problems = notes.0;
    Ok(out)
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

    /// `parent[name]` as a whole number; absent is fine, another type is
    /// noted.
    fn child_u64(&mut self, parent: &Map<String, Value>, name: &str, key: &str) -> Option<u64> {
        let value = parent.get(name)?;
        let n = value.as_u64();
        if n.is_none() {
            self.wrong(key, "a whole number", value);
        }
        n
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
    use super::*;

    #[test]
    fn model_as_plain_string() {
        let c = read(
            r#"{agents: {defaults: {model: "ollama/qwen3:8b", subagents: {model: "ollama/gpt-oss:20b"}}}}"#,
        )
        .unwrap();
        assert_eq!(c.primary_model.as_deref(), Some("ollama/qwen3:8b"));
        assert!(c.fallbacks.is_empty());
        assert_eq!(c.subagent_model.as_deref(), Some("ollama/gpt-oss:20b"));
        assert!(c.problems.is_empty());
    }

    #[test]
    fn openclaw_fields_agents_auth_and_version() {
        let c = read(
            r#"{
              meta: {lastTouchedVersion: "2026.9.6"},
              agents: {
                defaults: {model: {primary: "ollama/qwen3:8b", fallbacks: ["anthropic/claude-sonnet-4-5"]}},
                entries: {main: {}, trading: {model: "ollama/gpt-oss:20b"}},
              },
              models: {providers: {ollama: {baseUrl: "http://127.0.0.1:11434", apiKey: "k-123", api: "ollama", timeoutSeconds: 600}}},
              gateway: {mode: "local", port: 18790, auth: {mode: "token", token: {source: "env", provider: "default", id: "GW"}}},
              cron: {enabled: false},
            }"#,
        )
        .unwrap();
        assert_eq!(c.written_by.as_deref(), Some("2026.9.6"));
        assert_eq!(
            c.agents,
            vec![
                ("main".to_owned(), None),
                ("trading".to_owned(), Some("ollama/gpt-oss:20b".to_owned()))
            ]
        );
        assert_eq!(c.providers[0].timeout_secs, Some(600));
        assert_eq!(c.providers[0].api.as_deref(), Some("ollama"));
        assert_eq!(c.gateway_port, Some(18790));
        assert_eq!(c.gateway_auth.mode.as_deref(), Some("token"));
        assert_eq!(c.gateway_auth.token.as_ref().unwrap()["id"], "GW");
        assert_eq!(c.cron_enabled, Some(false));
        // The token is never in a Debug print.
        let c = read(r#"{gateway: {auth: {token: "tok-secret-77"}}}"#).unwrap();
        assert!(!format!("{c:?}").contains("tok-secret-77"));
        // The legacy roster.
        let c = read(r#"{agents: {list: [{id: "main"}, {id: "ops", model: "a/b"}, {name: "x"}]}}"#)
            .unwrap();
        assert_eq!(
            c.agents,
            vec![
                ("main".to_owned(), None),
                ("ops".to_owned(), Some("a/b".to_owned()))
            ]
        );
    }

    #[test]
    fn wrong_types_are_skipped_and_named() {
        let c = read(
            r#"{
              agents: {defaults: {
                model: {primary: "a/b", fallbacks: "c/d"},
                heartbeat: {model: 5, every: "30m"},
                subagents: {model: {primary: "x/y", fallbacks: [1, "z/w"]}},
              }},
              models: {providers: {good: {baseUrl: "http://h/v1", models: [{id: "m"}, "bad", {name: "no id"}], timeoutSeconds: "x"}, bad: 3}},
              gateway: {port: 70000, bind: "loopback"},
            }"#,
        )
        .unwrap();
        assert_eq!(c.primary_model.as_deref(), Some("a/b"));
        assert!(c.fallbacks.is_empty());
        assert_eq!(c.heartbeat_model, None);
        assert_eq!(c.heartbeat_every.as_deref(), Some("30m"));
        assert_eq!(c.subagent_model.as_deref(), Some("x/y"));
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].models, vec!["m".to_owned()]);
        assert_eq!(c.gateway_port, None);
        assert_eq!(c.gateway_bind.as_deref(), Some("loopback"));
        let error = c.problems.join("; ");
        for expected in [
            "agents.defaults.model.fallbacks: expected a list of strings, found a string",
            "agents.defaults.heartbeat.model: expected a string, found a number",
            "agents.defaults.subagents.model.fallbacks[0]: expected a string, found a number",
            "models.providers.good.models[1]: expected an object, found a string",
            "models.providers.good.timeoutSeconds: expected a whole number, found a string",
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
        let c = read("[1, 2]").unwrap();
        assert_eq!(
            c.problems,
            vec!["the top level: expected an object, found a list"]
        );
    }

    #[test]
    fn parse_error_has_line_and_column() {
        let error =
            read("{\n  agents: {\n    defaults: {model: \"a\" \"b\"}\n  }\n}\n").unwrap_err();
        assert!(error.starts_with("line 3 column "), "{error}");
    }
}
