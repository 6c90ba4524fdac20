//! The Clawdbot probe against real files in a temp folder and real sockets on
//! loopback.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use clawfleet::openclaw::config::{self, DEFAULT_GATEWAY_PORT};
use clawfleet::snapshot::{OpenClawProvider, OpenClawStatus};

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

/// What the probe must read from the Mac Mini config.
fn mac_mini_status(path: &Path, gateway_port: u16, listening: bool) -> OpenClawStatus {
    let chain = vec![
        "ollama/qwen3:8b".to_owned(),
        "anthropic/claude-sonnet-4-5".to_owned(),
        "anthropic/claude-opus-4-5".to_owned(),
    ];
    OpenClawStatus {
        config_path: Some(path.display().to_string()),
        config_found: true,
        error: None,
        primary_model: Some("ollama/gpt-oss:20b".into()),
        fallbacks: chain,
        heartbeat_model: Some("ollama/gpt-oss:20b".into()),
        heartbeat_every: Some("30m".into()),
        subagent_model: Some("ollama/gpt-oss:20b".into()),
        providers: vec![
            OpenClawProvider {
                name: "ollama".into(),
                base_url: Some("http://127.0.0.1:11434/v1".into()),
                api: Some("openai-completions".into()),
                models: vec![
                    "gpt-oss:20b".into(),
                    "qwen3:8b".into(),
                    "qwen3-fast:8b".into(),
                ],
            },
            OpenClawProvider {
                name: "ollama-macbook".into(),
                base_url: Some("http://felipes-macbook-pro-2.local:11434/v1".into()),
                api: Some("openai-completions".into()),
                models: vec!["devstral-small-2:24b".into()],
            },
        ],
        gateway_port,
        gateway_bind: Some("loopback".into()),
        gateway_listening: Some(listening),
        gateway_health: None,
        chain: None,
        agents: vec![],
        heartbeat: None,
        checked_at: None,
    }
}

/// The status with `checked_at` checked and cleared, for comparing.
fn without_time(mut status: OpenClawStatus) -> OpenClawStatus {
    let checked = status.checked_at.take().expect("checked_at is set");
    let age = jiff::Timestamp::now().duration_since(checked);
    assert!(age.as_secs() < 60, "checked_at {checked} is not now");
    // The gateway stand-ins here are bare TCP listeners: the websocket
    // health check finds a socket that says nothing (tests/gateway_probe.rs
    // speaks the real exchange).
    if let Some(h) = status.gateway_health.take() {
        assert!(!h.ok);
        assert_eq!(h.failure.as_deref(), Some("silent"), "{h:?}");
    }
    status
}

#[tokio::test]
async fn mac_mini_config_with_gateway_listening() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gateway.local_addr().unwrap().port();
    let path = dir.path().join("clawdbot.json");
    std::fs::write(&path, mac_mini_config(port)).unwrap();

    let status = config::probe(Some(&path), TIMEOUT).await;

    let json = serde_json::to_string(&status).unwrap();
    for secret in [
        OLLAMA_KEY,
        MACBOOK_HEADER_SECRET,
        GATEWAY_TOKEN,
        "X-Fleet-Secret",
    ] {
        assert!(!json.contains(secret), "{secret} leaked into {json}");
    }
    assert_eq!(without_time(status), mac_mini_status(&path, port, true));
}

#[tokio::test]
async fn hand_edited_json5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawdbot.json");
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
               models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:11434/v1', apiKey: '{OLLAMA_KEY}',\n\
                 api: 'openai-completions', models: [ {{ id: 'gpt-oss:20b', }}, ], }}, }}, }},\n\
               gateway: {{ port: {port}, }}, // no bind\n\
             }}\n"
        ),
    )
    .unwrap();

    let status = without_time(config::probe(Some(&path), TIMEOUT).await);
    assert!(!serde_json::to_string(&status).unwrap().contains(OLLAMA_KEY));
    assert_eq!(
        status,
        OpenClawStatus {
            config_path: Some(path.display().to_string()),
            config_found: true,
            error: None,
            primary_model: Some("ollama/gpt-oss:20b".into()),
            fallbacks: vec![],
            heartbeat_model: Some("ollama/qwen3:8b".into()),
            heartbeat_every: Some("1h".into()),
            subagent_model: Some("ollama/qwen3:8b".into()),
            providers: vec![OpenClawProvider {
                name: "ollama".into(),
                base_url: Some("http://127.0.0.1:11434/v1".into()),
                api: Some("openai-completions".into()),
                models: vec!["gpt-oss:20b".into()],
            }],
            gateway_port: port,
            gateway_bind: None,
            gateway_listening: Some(true),
            gateway_health: None,
            chain: None,
            agents: vec![],
            heartbeat: None,
            checked_at: None,
        }
    );
}

#[tokio::test]
async fn gateway_port_closed() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: bound, then released.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let path = dir.path().join("clawdbot.json");
    std::fs::write(&path, mac_mini_config(port)).unwrap();
    let status = without_time(config::probe(Some(&path), TIMEOUT).await);
    assert_eq!(status, mac_mini_status(&path, port, false));
}

#[tokio::test]
async fn broken_file_is_located_and_default_port_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawdbot.json");
    // A missing comma after the primary model, on line 4.
    std::fs::write(
        &path,
        "{\n  agents: {\n    defaults: {\n      model: { primary: \"ollama/gpt-oss:20b\" fallbacks: [] },\n    },\n  },\n  gateway: { port: 1 },\n}\n",
    )
    .unwrap();
    let status = without_time(config::probe(Some(&path), TIMEOUT).await);
    let error = status.error.clone().expect("an error");
    // 1-based: the `f` of `fallbacks`, where the comma should be.
    assert_eq!(error, "line 4 column 46: expected comma");
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
async fn wrong_types_do_not_hide_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawdbot.json");
    std::fs::write(
        &path,
        r#"{"agents": {"defaults": {"model": {"primary": "ollama/gpt-oss:20b", "fallbacks": "ollama/qwen3:8b"},
            "heartbeat": "30m"}}, "gateway": {"port": "18789", "bind": "loopback"}}"#,
    )
    .unwrap();
    let status = without_time(config::probe(Some(&path), TIMEOUT).await);
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
    let path = dir.path().join("nowhere").join("clawdbot.json");
    let status = without_time(config::probe(Some(&path), TIMEOUT).await);
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
    let path = dir.path().join("clawdbot.json");
    std::fs::create_dir(&path).unwrap();
    let status = without_time(config::probe(Some(&path), TIMEOUT).await);
    assert!(status.config_found);
    let error = status.error.expect("an error");
    assert!(
        error.starts_with(&format!("cannot read {}: ", path.display())),
        "{error}"
    );
}

#[tokio::test]
async fn oversized_file_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawdbot.json");
    let padding = " ".repeat(config::MAX_CONFIG_BYTES as usize);
    std::fs::write(&path, format!("{{{padding}}}")).unwrap();
    let status = without_time(config::probe(Some(&path), TIMEOUT).await);
    assert!(status.config_found);
    assert_eq!(
        status.error,
        Some(format!("{} is larger than 4 MiB; not read", path.display()))
    );
}

#[tokio::test]
async fn no_path_at_all() {
    let status = without_time(config::probe(None, TIMEOUT).await);
    assert_eq!(status.config_path, None);
    assert!(!status.config_found);
    assert_eq!(
        status.error.as_deref(),
        Some("no config path: the home folder is unknown")
    );
    assert!(status.gateway_listening.is_some());
}

#[test]
fn configured_path_wins() {
    let configured = Path::new("/etc/clawfleet/clawdbot.json");
    assert_eq!(
        config::config_path(Some(configured)),
        Some(configured.to_path_buf())
    );
}
