//! The agent probe (`openclaw::probe`) against real files in a temp folder
//! and real sockets on loopback: a legacy Clawdbot's config (the Mac Mini of
//! the reference fleet), hand-edited JSON5, broken, huge and unreadable
//! files, and OpenClaw's own databases. The real OpenClaw is in
//! `openclaw_e2e.rs`.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use clawfleet::config::OpenClawConfig;
use clawfleet::openclaw::config;
use clawfleet::openclaw::locate::{DEFAULT_GATEWAY_PORT, Environment};
use clawfleet::openclaw::probe::{CliCache, Settings, probe};
use clawfleet::snapshot::{AgentKind, OpenClawProvider, OpenClawStatus};

const TIMEOUT: Duration = Duration::from_secs(2);

const OLLAMA_KEY: &str = "ollama-local-key-5f0c1e9b";
const MACBOOK_HEADER_SECRET: &str = "hdr-secret-0a7d31";
const GATEWAY_TOKEN: &str = "gw-token-93b2c4d1";

/// The Mac Mini of the reference fleet, as Clawdbot writes its config (JSON).
fn mac_mini_config(gateway_port: u16) -> String {
    format!(
        r#"{{
  "meta": {{ "lastTouchedVersion": "2026.1.24" }},
  "models": {{
    "mode": "merge",
    "providers": {{
      "ollama": {{
        "baseUrl": "http://127.0.0.1:11434/v1",
        "apiKey": "{OLLAMA_KEY}",
        "api": "openai-completions",
        "models": [
          {{ "id": "gpt-oss:20b", "name": "GPT-OSS 20B", "reasoning": true, "input": ["text"],
            "cost": {{ "input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0 }},
            "contextWindow": 131072, "maxTokens": 16384 }},
          {{ "id": "qwen3:8b", "name": "Qwen3 8B", "contextWindow": 40960, "maxTokens": 8192 }},
          {{ "id": "qwen3-fast:8b", "name": "Qwen3 8B fast", "contextWindow": 40960, "maxTokens": 8192 }}
        ]
      }},
      "ollama-macbook": {{
        "baseUrl": "http://felipes-macbook-pro-2.local:11434/v1",
        "apiKey": "ollama",
        "api": "openai-completions",
        "headers": {{ "X-Fleet-Secret": "{MACBOOK_HEADER_SECRET}" }},
        "models": [ {{ "id": "devstral-small-2:24b", "name": "Devstral Small 2" }} ]
      }}
    }}
  }},
  "agents": {{
    "defaults": {{
      "model": {{
        "primary": "ollama/gpt-oss:20b",
        "fallbacks": ["ollama/qwen3:8b", "anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-5"]
      }},
      "heartbeat": {{ "every": "30m", "model": "ollama/gpt-oss:20b" }},
      "subagents": {{
        "model": {{
          "primary": "ollama/gpt-oss:20b",
          "fallbacks": ["ollama/qwen3:8b", "anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-5"]
        }},
        "maxConcurrent": 4
      }},
      "workspace": "/Users/felipemacmini/clawd"
    }},
    "list": [ {{ "id": "main" }}, {{ "id": "aphos" }}, {{ "id": "shitcoin-bot" }} ]
  }},
  "gateway": {{
    "port": {gateway_port},
    "mode": "local",
    "bind": "loopback",
    "auth": {{ "mode": "token", "token": "{GATEWAY_TOKEN}" }}
  }}
}}
"#
    )
}

/// The probe of the config at `path`, as `[openclaw] config_path` names it,
/// in an empty environment whose home is `home`.
async fn probe_at(path: &Path, home: &Path) -> OpenClawStatus {
    let settings = Settings {
        ours: OpenClawConfig {
            config_path: Some(path.to_path_buf()),
            ..OpenClawConfig::default()
        },
        timeout: TIMEOUT,
    };
    let env = Environment::with(|_| None, Some(home.to_path_buf()));
    let status = probe(&settings, &env, &CliCache::default()).await;
    let checked = status.checked_at.expect("checked_at is set");
    let age = jiff::Timestamp::now().duration_since(checked);
    assert!(age.as_secs() < 60, "checked_at {checked} is not now");
    status
}

/// The gateway stand-ins here are bare TCP listeners: the websocket health
/// check finds a socket that says nothing (tests/integration/gateway_probe.rs speaks
/// the real exchange).
fn assert_silent(status: &OpenClawStatus) {
    let h = status
        .gateway_health
        .as_ref()
        .expect("the gateway was asked");
    assert!(!h.ok);
    assert_eq!(h.failure.as_deref(), Some("silent"), "{h:?}");
}

#[tokio::test]
async fn mac_mini_config_with_gateway_listening() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gateway.local_addr().unwrap().port();
    let path = dir.path().join("clawdbot.json");
    std::fs::write(&path, mac_mini_config(port)).unwrap();

    let status = probe_at(&path, dir.path()).await;

    let json = serde_json::to_string(&status).unwrap();
    for secret in [
        OLLAMA_KEY,
        MACBOOK_HEADER_SECRET,
        GATEWAY_TOKEN,
        "X-Fleet-Secret",
    ] {
        assert!(!json.contains(secret), "{secret} leaked into {json}");
    }
    assert_silent(&status);
    assert_eq!(status.config_path, Some(path.display().to_string()));
    assert!(status.config_found);
    assert_eq!(status.error, None);
    assert_eq!(status.primary_model.as_deref(), Some("ollama/gpt-oss:20b"));
    assert_eq!(
        status.fallbacks,
        [
            "ollama/qwen3:8b",
            "anthropic/claude-sonnet-4-5",
            "anthropic/claude-opus-4-5"
        ]
    );
    assert_eq!(
        status.heartbeat_model.as_deref(),
        Some("ollama/gpt-oss:20b")
    );
    assert_eq!(status.heartbeat_every.as_deref(), Some("30m"));
    assert_eq!(status.subagent_model.as_deref(), Some("ollama/gpt-oss:20b"));
    assert_eq!(
        status.providers,
        vec![
            OpenClawProvider {
                name: "ollama".into(),
                base_url: Some("http://127.0.0.1:11434/v1".into()),
                api: Some("openai-completions".into()),
                models: vec![
                    "gpt-oss:20b".into(),
                    "qwen3:8b".into(),
                    "qwen3-fast:8b".into()
                ],
                timeout_secs: None,
            },
            OpenClawProvider {
                name: "ollama-macbook".into(),
                base_url: Some("http://felipes-macbook-pro-2.local:11434/v1".into()),
                api: Some("openai-completions".into()),
                models: vec!["devstral-small-2:24b".into()],
                timeout_secs: None,
            },
        ]
    );
    assert_eq!(status.gateway_port, port);
    assert_eq!(status.gateway_port_from.as_deref(), Some("gateway.port"));
    assert_eq!(status.gateway_bind.as_deref(), Some("loopback"));
    assert_eq!(status.gateway_listening, Some(true));
    // The path as the user knows it, from their home.
    assert_eq!(
        status.gateway_auth.as_deref(),
        Some("token from gateway.auth.token in ~/clawdbot.json")
    );
    let install = status.install.expect("the install");
    assert_eq!(
        install.kind,
        AgentKind::Clawdbot,
        "a clawdbot.json never touched by OpenClaw"
    );
    assert_eq!(install.services.cli, "clawdbot");
    assert_eq!(install.version.as_deref(), Some("2026.1.24"));
    assert_eq!(
        install.version_from.as_deref(),
        Some("its config (meta.lastTouchedVersion)")
    );
    assert!(
        install.found_by.starts_with("[openclaw] config_path"),
        "{}",
        install.found_by
    );
}

#[tokio::test]
async fn hand_edited_json5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openclaw.json");
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gateway.local_addr().unwrap().port();
    // Comments, unquoted keys, single quotes, trailing commas, a string model.
    std::fs::write(
        &path,
        format!(
            "// Mac Mini, edited by hand\n\
             {{\n\
               /* local first */\n\
               agents: {{\n\
                 defaults: {{\n\
                   model: 'ollama/gpt-oss:20b',\n\
                   heartbeat: {{ every: '1h', model: 'ollama/qwen3:8b', }},\n\
                   subagents: {{ model: 'ollama/qwen3:8b', }},\n\
                 }},\n\
               }},\n\
               models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:11434', apiKey: '{OLLAMA_KEY}',\n\
                 api: 'ollama', timeoutSeconds: 600, models: [ {{ id: 'gpt-oss:20b', }}, ], }}, }}, }},\n\
               gateway: {{ port: {port}, }}, // no bind\n\
             }}\n"
        ),
    )
    .unwrap();

    let status = probe_at(&path, dir.path()).await;
    assert!(!serde_json::to_string(&status).unwrap().contains(OLLAMA_KEY));
    // No secret to send: the socket says nothing, and `openclaw health`
    // (not installed here) could not help either.
    assert_silent(&status);
    assert_eq!(status.error, None);
    assert_eq!(status.primary_model.as_deref(), Some("ollama/gpt-oss:20b"));
    assert_eq!(status.heartbeat_model.as_deref(), Some("ollama/qwen3:8b"));
    assert_eq!(status.heartbeat_every.as_deref(), Some("1h"));
    assert_eq!(
        status.providers,
        vec![OpenClawProvider {
            name: "ollama".into(),
            base_url: Some("http://127.0.0.1:11434".into()),
            api: Some("ollama".into()),
            models: vec!["gpt-oss:20b".into()],
            timeout_secs: Some(600),
        }]
    );
    assert_eq!(status.gateway_port, port);
    assert_eq!(status.gateway_bind, None);
    assert_eq!(status.install.unwrap().kind, AgentKind::OpenClaw);
    // No token anywhere: said, and the gateway was still asked.
    assert!(status.gateway_auth.unwrap().starts_with("no gateway token"),);
}

#[tokio::test]
async fn gateway_port_closed() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_closed_port();
    let path = dir.path().join("clawdbot.json");
    std::fs::write(&path, mac_mini_config(port)).unwrap();
    let status = probe_at(&path, dir.path()).await;
    assert_eq!(status.gateway_listening, Some(false));
    assert_eq!(status.gateway_health, None, "nothing to ask");
    assert_eq!(status.primary_model.as_deref(), Some("ollama/gpt-oss:20b"));
}

#[tokio::test]
async fn broken_file_is_located_and_default_port_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openclaw.json");
    // A missing comma after the primary model, on line 4.
    std::fs::write(
        &path,
        "{\n  agents: {\n    defaults: {\n      model: { primary: \"ollama/gpt-oss:20b\" fallbacks: [] },\n    },\n  },\n  gateway: { port: 1 },\n}\n",
    )
    .unwrap();
    let status = probe_at(&path, dir.path()).await;
    let error = status.error.clone().expect("an error");
    // 1-based: the `f` of `fallbacks`, where the comma should be.
    assert_eq!(
        error,
        format!("{}: line 4 column 46: expected comma", path.display())
    );
    assert!(status.config_found);
    // Nothing half-read from a file that does not parse.
    assert_eq!(status.primary_model, None);
    assert_eq!(status.gateway_port, DEFAULT_GATEWAY_PORT);
    assert!(
        status.gateway_listening.is_some(),
        "the default port is still checked"
    );
}

#[tokio::test]
async fn a_config_nested_ten_thousand_deep_is_refused_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openclaw.json");
    std::fs::write(
        &path,
        format!("{{a: {}{}}}", "[".repeat(10_000), "]".repeat(10_000)),
    )
    .unwrap();
    let status = probe_at(&path, dir.path()).await;
    let error = status.error.expect("an error");
    assert!(
        error.ends_with("nested more than 128 levels deep"),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_types_do_not_hide_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openclaw.json");
    std::fs::write(
        &path,
        r#"{"agents": {"defaults": {"model": {"primary": "ollama/gpt-oss:20b", "fallbacks": "ollama/qwen3:8b"},
            "heartbeat": "30m"}}, "gateway": {"port": "18789", "bind": "loopback"}}"#,
    )
    .unwrap();
    let status = probe_at(&path, dir.path()).await;
    assert_eq!(status.primary_model.as_deref(), Some("ollama/gpt-oss:20b"));
    assert_eq!(status.fallbacks, Vec::<String>::new());
    assert_eq!(status.heartbeat_model, None);
    assert_eq!(status.gateway_port, DEFAULT_GATEWAY_PORT);
    assert_eq!(status.gateway_bind.as_deref(), Some("loopback"));
    assert_eq!(
        status.error.as_deref(),
        Some(
            "agents.defaults.model.fallbacks: expected a list of strings, found a string; \
             agents.defaults.heartbeat: expected an object, found a string; \
             gateway.port: expected a port number (1-65535), found a string"
        )
    );
}

#[tokio::test]
async fn missing_file_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere").join("openclaw.json");
    let status = probe_at(&path, dir.path()).await;
    assert!(!status.config_found);
    assert_eq!(status.error, None);
    assert_eq!(status.config_path, Some(path.display().to_string()));
    assert_eq!(status.gateway_port, DEFAULT_GATEWAY_PORT);
    assert!(status.gateway_listening.is_some());
}

#[tokio::test]
async fn unreadable_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // A folder where the file should be: it exists but cannot be read as one.
    let path = dir.path().join("openclaw.json");
    std::fs::create_dir(&path).unwrap();
    let status = probe_at(&path, dir.path()).await;
    assert!(status.config_found);
    assert_eq!(
        status.error,
        Some(format!(
            "{} is not a regular file (a folder); it was not read",
            path.display()
        ))
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_as_the_config_does_not_block_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openclaw.json");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), probe_at(&path, dir.path()))
        .await
        .expect("the probe ends though no one writes the FIFO");
    assert!(status.error.unwrap().contains("a FIFO"));
}

#[tokio::test]
async fn oversized_file_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openclaw.json");
    let padding = " ".repeat(config::MAX_CONFIG_BYTES as usize);
    std::fs::write(&path, format!("{{{padding}}}")).unwrap();
    let status = probe_at(&path, dir.path()).await;
    assert!(status.config_found);
    assert_eq!(
        status.error,
        Some(format!(
            "{} is larger than 4194304 bytes; it was not read",
            path.display()
        ))
    );
}
