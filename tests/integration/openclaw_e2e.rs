#![cfg(unix)]
//! End-to-end tests against the real, pinned OpenClaw (npm `openclaw`, see
//! `tests/openclaw/`, installed by `cargo xtask deps`), driven through the
//! harness of `tests/integration/support/openclaw.rs`.
//!
//! A gateway start costs about 25 s and an agent turn 20–40 s on a 2-core
//! machine, so every scenario lives in this one binary and starts at most
//! one gateway.

use crate::support;

use std::net::TcpStream;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clawfleet::config::OpenClawConfig;
use clawfleet::openclaw::locate::Environment;
use clawfleet::openclaw::probe::{CliCache, Settings, probe};
use clawfleet::snapshot::{Activity, AgentKind, OpenClawStatus};
use serde_json::{Value, json};
use support::{
    FakeOllama, Gateway, OpenClawHome, TestConfig, agent_turn_local, agent_turn_via_gateway,
    assistant_events, free_closed_port, gateway_config, install, openclaw, stdout_json,
};

/// The OpenClaw version `tests/openclaw/package-lock.json` pins.
const OPENCLAW_VERSION: &str = "2026.9.6";

/// ClawFleet's probe of the install in `home`, found as OpenClaw finds it
/// (no variables set, that home).
async fn probe_home(home: &OpenClawHome) -> OpenClawStatus {
    let settings = Settings {
        ours: OpenClawConfig::default(),
        timeout: Duration::from_secs(10),
    };
    let env = Environment::with(|_| None, Some(home.home().to_path_buf()));
    probe(&settings, &env, &CliCache::default()).await
}

/// ClawFleet's probe of the config at `path` (as `[openclaw] config_path`).
async fn probe_config(path: PathBuf, home: &Path) -> OpenClawStatus {
    probe_with(
        OpenClawConfig {
            config_path: Some(path),
            ..OpenClawConfig::default()
        },
        home,
    )
    .await
}

/// ClawFleet's probe with `[openclaw]` as `ours`, `home` the home folder.
async fn probe_with(ours: OpenClawConfig, home: &Path) -> OpenClawStatus {
    let settings = Settings {
        ours,
        timeout: Duration::from_secs(10),
    };
    let env = Environment::with(|_| None, Some(home.to_path_buf()));
    probe(&settings, &env, &CliCache::default()).await
}

/// The JSON a turn printed, once it is known to have succeeded.
fn succeeded(turn: &std::process::Output, what: &str) -> Value {
    let result = stdout_json(turn);
    assert!(
        turn.status.success(),
        "{what} ({}): {result}\n{}",
        turn.status,
        String::from_utf8_lossy(&turn.stderr)
    );
    result
}

/// What the fake Ollama answers, word by word.
const REPLY: &str = "Hello from the fake Ollama";

/// A fake Ollama with `qwen3:8b` installed, answering [`REPLY`].
async fn fake_qwen() -> FakeOllama {
    let ollama = FakeOllama::start().await;
    ollama.set_model_names(&["qwen3:8b"]);
    ollama.set_reply(REPLY);
    ollama
}

/// OpenClaw's native Ollama provider pointed at `ollama`, with
/// `ollama/qwen3:8b` the agents' model.
fn ollama_config(ollama: &FakeOllama) -> Value {
    json!({
        "models": {"providers": {"ollama": {
            "baseUrl": ollama.url(),
            "apiKey": "ollama-local",
            "api": "ollama",
            "models": [{"id": "qwen3:8b", "name": "qwen3:8b"}],
        }}},
        "agents": {"defaults": {"model": {"primary": "ollama/qwen3:8b"}}},
    })
}

/// The harness itself: a real gateway in a temporary home is ready, the
/// real CLI finds the config valid and the gateway healthy, the gateway runs
/// an agent turn against a fake Ollama, and once stopped nothing listens on
/// its port and none of its processes is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_starts_answers_the_cli_and_leaves_nothing_behind() {
    install();
    let ollama = fake_qwen().await;
    let port = free_closed_port();
    let mut config = ollama_config(&ollama);
    config["gateway"] = gateway_config(port);
    let home = OpenClawHome::new(&config);
    // Blocking from here on: the fake serves on the runtime's workers.
    let mut gateway = Gateway::start(&home, port);
    let pgid = gateway.pid().expect("a started gateway has a pid");

    let validate = openclaw(&home, &["config", "validate", "--json"]);
    let report = stdout_json(&validate);
    assert!(validate.status.success(), "config validate: {report}");
    assert_eq!(report["valid"], json!(true), "{report}");
    assert_eq!(
        report["path"].as_str().map(std::path::PathBuf::from),
        Some(home.config_path()),
        "{report}"
    );

    let health = openclaw(&home, &["health", "--json", "--timeout", "5000"]);
    let payload = stdout_json(&health);
    assert!(
        health.status.success(),
        "health ({}): {payload}\n{}",
        health.status,
        String::from_utf8_lossy(&health.stderr)
    );
    assert_eq!(payload["ok"], json!(true), "{payload}");
    assert_eq!(payload["defaultAgentId"], json!("main"), "{payload}");

    let turn = agent_turn_via_gateway(&home, "Say hello.");
    let result = succeeded(&turn, "agent turn via the gateway");
    // The gateway wraps the turn's report in `result`.
    assert_eq!(
        result.pointer("/result/meta/finalAssistantVisibleText"),
        Some(&json!(REPLY)),
        "{result}"
    );
    assert_eq!(
        result.pointer("/result/meta/agentMeta/provider"),
        Some(&json!("ollama")),
        "{result}"
    );
    assert!(
        ollama.count("/api/chat") >= 1,
        "the gateway's turn reached the fake: {result}"
    );
    assert!(
        assistant_events(&home, "main") >= 1,
        "the gateway stored no assistant message in {}",
        home.agent_store("main").display()
    );

    // ClawFleet's own probe finds this install as OpenClaw finds it, speaks
    // its gateway's protocol and reads its agents from its databases.
    let status = probe_home(&home).await;
    let install = status.install.clone().expect("an install");
    assert_eq!(install.kind, AgentKind::OpenClaw);
    assert_eq!(
        install.config_path,
        home.config_path().display().to_string()
    );
    assert!(
        install.found_by.contains("~/.openclaw/openclaw.json"),
        "{}",
        install.found_by
    );
    assert_eq!(install.version.as_deref(), Some(OPENCLAW_VERSION));
    assert_eq!(install.version_from.as_deref(), Some("its running gateway"));
    assert_eq!(install.services.systemd_unit, "openclaw-gateway");
    assert_eq!(status.gateway_port, port);
    assert_eq!(
        status.gateway_port_from.as_deref(),
        Some("the running gateway's lock file")
    );
    assert_eq!(status.gateway_listening, Some(true));
    let h = status
        .gateway_health
        .clone()
        .expect("the gateway was asked");
    assert!(h.ok, "the card is green against the real gateway: {h:?}");
    assert_eq!(h.protocol, Some(4));
    assert_eq!(h.via.as_deref(), Some("websocket"));
    assert_eq!(h.server_version.as_deref(), Some(OPENCLAW_VERSION));
    assert!(h.agents.contains(&"main".to_owned()), "{h:?}");
    let main = status
        .agents
        .iter()
        .find(|a| a.id == "main")
        .expect("the main agent");
    assert!(main.sessions >= 1, "{main:?}");
    assert!(main.is_default, "{main:?}");
    assert_eq!(main.activity, Some(Activity::Idle), "{main:?}");
    assert_eq!(main.last_model.as_deref(), Some("qwen3:8b"), "{main:?}");
    assert_eq!(main.last_provider.as_deref(), Some("ollama"), "{main:?}");
    assert!(!main.on_fallback, "{main:?}");
    assert_eq!(status.state_problems, Vec::<String>::new());

    // A wrong token: OpenClaw's own words, and the hint that fits.
    let mut wrong: Value = json5::from_str(&home.config_text()).expect("the config is JSON5");
    wrong["gateway"]["auth"]["token"] = json!("not-the-gateways-token");
    let other = OpenClawHome::new(&wrong);
    let refused = probe_config(other.config_path(), other.home()).await;
    let h = refused.gateway_health.expect("asked");
    assert_eq!(h.failure.as_deref(), Some("refused"), "{h:?}");
    assert!(
        h.error
            .as_deref()
            .unwrap_or_default()
            .contains("gateway token mismatch"),
        "{h:?}"
    );

    // A secret only OpenClaw can read (its own store): the websocket is
    // refused for want of one, and `openclaw health --json` answers.
    let mut stored = json5::from_str::<Value>(&home.config_text()).expect("JSON5");
    stored["gateway"]["auth"]["token"] =
        json!({"source": "store", "provider": "default", "id": "GW_TOKEN"});
    let store_home = OpenClawHome::new(&stored);
    let token_file = store_home.home().join("token.txt");
    std::fs::write(&token_file, support::GATEWAY_TOKEN).expect("write the token file");
    let set = openclaw(
        &store_home,
        &[
            "secrets",
            "store",
            "set",
            "GW_TOKEN",
            "--kind",
            "secret",
            "--value-file",
            token_file.to_str().expect("a UTF-8 path"),
        ],
    );
    assert!(
        set.status.success(),
        "secrets store set: {}",
        String::from_utf8_lossy(&set.stderr)
    );
    let by_cli = probe_with(
        OpenClawConfig {
            config_path: Some(store_home.config_path()),
            cli: store_home.cli_script().display().to_string(),
            ..OpenClawConfig::default()
        },
        store_home.home(),
    )
    .await;
    assert!(
        by_cli
            .gateway_auth
            .as_deref()
            .unwrap_or_default()
            .contains("OpenClaw's own secret store"),
        "{:?}",
        by_cli.gateway_auth
    );
    let h = by_cli.gateway_health.expect("asked");
    assert!(h.ok, "`openclaw health` answered for it: {h:?}");
    assert_eq!(h.via.as_deref(), Some("cli"));
    assert!(h.agents.contains(&"main".to_owned()), "{h:?}");

    // Healing: the restart action of the table, for the install found, run
    // with the real `openclaw gateway restart`; the gateway comes back.
    let mut install = status.install.clone().expect("an install");
    install.services.cli = home.cli_script().display().to_string();
    let machine = clawfleet::snapshot::MachineSnapshot {
        is_self: true,
        openclaw: Some(OpenClawStatus {
            install: Some(install),
            ..status.clone()
        }),
        ..Default::default()
    };
    let executor = clawfleet::heal::execute::Executor::new(
        &clawfleet::config::HealConfig::default(),
        "pm2",
        None,
        support::client(),
    );
    let done = executor
        .execute(&clawfleet::action::Action::RestartGateway, false, &machine)
        .await;
    assert!(done.success, "restart: {}", done.summary);
    assert!(
        done.commands[0].argv[1..] == ["gateway", "restart"],
        "OpenClaw's own command first: {:?}",
        done.commands[0].argv
    );
    let mut back = None;
    for _ in 0..60 {
        let s = probe_home(&home).await;
        if s.gateway_health.as_ref().is_some_and(|h| h.ok) {
            back = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        back.is_some(),
        "the gateway is healthy again after its restart"
    );

    // Before stopping: the gateway's processes carry this home; nothing
    // else the test started does.
    assert!(
        home.processes().contains(&pgid),
        "the gateway {pgid} runs with HOME={}",
        home.home().display()
    );
    gateway.stop();

    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on the gateway's port {port}"
    );
    assert_eq!(
        home.processes(),
        Vec::<u32>::new(),
        "OpenClaw processes left running with HOME={}",
        home.home().display()
    );
    // SAFETY: kill(2) with signal 0 only checks whether the group exists.
    let group_left = unsafe { libc::kill(-(pgid as libc::pid_t), 0) } == 0;
    assert!(!group_left, "processes left in the gateway's group {pgid}");
}

/// One real `openclaw agent --local` turn with its Ollama provider pointed at
/// a fake Ollama: OpenClaw asks `/api/chat` for the configured model,
/// returns the streamed reply, and stores the assistant's message in the
/// agent's SQLite store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_agent_turn_talks_native_ollama_and_stores_the_transcript() {
    // Fail here, not after the fake started, when OpenClaw is missing.
    install();
    let ollama = fake_qwen().await;
    let home = OpenClawHome::new(&ollama_config(&ollama));

    // The turn blocks for tens of seconds; the fake serves on the workers.
    let turn = agent_turn_local(&home, "Say hello.");
    let result = succeeded(&turn, "agent turn");
    assert_eq!(
        result.pointer("/payloads/0/text"),
        Some(&json!(REPLY)),
        "{result}"
    );
    let meta = &result["meta"]["agentMeta"];
    assert_eq!(meta["provider"], json!("ollama"), "{result}");
    assert_eq!(meta["model"], json!("qwen3:8b"), "{result}");

    let chats: Vec<Value> = ollama
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/chat")
        .map(|r| serde_json::from_slice(&r.body).expect("OpenClaw sends JSON to /api/chat"))
        .collect();
    assert!(!chats.is_empty(), "no /api/chat request reached the fake");
    for chat in &chats {
        assert_eq!(chat["model"], json!("qwen3:8b"), "{chat}");
        assert_eq!(chat["stream"], json!(true), "{chat}");
    }
    let asked = chats[0]["messages"]
        .as_array()
        .expect("/api/chat has messages");
    assert!(
        asked.iter().any(|m| m["role"] == json!("user")
            && m["content"]
                .as_str()
                .is_some_and(|c| c.contains("Say hello."))),
        "the user's message is in the request: {asked:?}"
    );

    assert!(
        home.agent_store("main").is_file(),
        "no agent store at {}",
        home.agent_store("main").display()
    );
    let stored = assistant_events(&home, "main");
    assert!(
        stored >= 1,
        "no assistant message in {}",
        home.agent_store("main").display()
    );
    assert_eq!(
        home.processes(),
        Vec::<u32>::new(),
        "OpenClaw processes left running after the turn"
    );
}

/// A ClawFleet daemon on a one-machine config (`local`, whose Ollama is
/// `ollama`) watching the OpenClaw install of `home`; its config file, and
/// its proxy's URL.
async fn clawfleet_for(
    home: &OpenClawHome,
    ollama: &FakeOllama,
    data: &Path,
) -> (tokio::process::Child, PathBuf, String) {
    let config = TestConfig::one_machine(data, &ollama.url())
        .set("openclaw", "config_path", home.config_path())
        .write(&data.join("clawfleet.toml"));
    let (child, proxy) = support::serve(support::clawfleet(&config)).await;
    (child, config, proxy)
}

fn clawfleet_cli(config: &Path, args: &[&str]) -> std::process::Output {
    support::clawfleet(config)
        .args(args)
        .output()
        .expect("run clawfleet")
}

/// The whole path with the real agent: `clawfleet openclaw wire` points
/// OpenClaw's Ollama provider at the proxy and OpenClaw accepts the file; a
/// real turn with a tool call goes through the proxy to the fake Ollama and
/// back; when the proxy says nothing can serve, OpenClaw moves to its
/// fallback after one request; and the turns' tokens are in `clawfleet
/// costs`, counted once though both the ledger and the transcript hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wired_openclaw_goes_through_the_proxy_falls_back_at_once_and_is_costed_once() {
    install();
    let ollama = fake_qwen().await;
    let home = OpenClawHome::empty();
    let note = home.home().join("note.txt");
    std::fs::write(&note, "the fleet is green\n").expect("write the note");
    ollama.set_tool_call("read", json!({"path": note.display().to_string()}));
    // The agent's fallback: another Ollama, not a machine of the fleet.
    let spare = FakeOllama::start().await;
    spare.set_model_names(&["good:1b"]);
    spare.set_reply("The spare answered");
    home.write_config(&json!({
        "models": {"providers": {
            "ollama": {"baseUrl": ollama.url(), "apiKey": "ollama-local", "api": "ollama",
                       "models": [{"id": "qwen3:8b", "name": "qwen3:8b"}]},
            "spare": {"baseUrl": spare.url(), "apiKey": "ollama-local", "api": "ollama",
                      "models": [{"id": "good:1b", "name": "good:1b"}]},
        }},
        "agents": {"defaults": {"model": {"primary": "ollama/qwen3:8b", "fallbacks": ["spare/good:1b"]}}},
    }));
    let data = tempfile::tempdir().expect("a data folder");
    let (_daemon, config, proxy) = clawfleet_for(&home, &ollama, data.path()).await;

    // Wire, and OpenClaw accepts what was written.
    let wired = clawfleet_cli(&config, &["openclaw", "wire"]);
    assert!(
        wired.status.success(),
        "wire: {}\n{}",
        String::from_utf8_lossy(&wired.stdout),
        String::from_utf8_lossy(&wired.stderr)
    );
    let after: Value = json5::from_str(&home.config_text()).expect("JSON5");
    assert_eq!(
        after["models"]["providers"]["ollama"]["baseUrl"],
        json!(format!("{proxy}/via/local")),
        "the native endpoint, no /v1"
    );
    assert_eq!(
        after["models"]["providers"]["spare"]["baseUrl"],
        json!(spare.url()),
        "not a machine of the fleet: left alone"
    );
    let validate = openclaw(&home, &["config", "validate", "--json"]);
    assert_eq!(
        stdout_json(&validate)["valid"],
        json!(true),
        "OpenClaw accepts the wired file"
    );

    // A real turn with a tool call, through the proxy.
    let turn = agent_turn_local(&home, "Read the note, then say hello.");
    let result = succeeded(&turn, "turn");
    assert_eq!(
        result.pointer("/payloads/0/text"),
        Some(&json!(REPLY)),
        "{result}"
    );
    let chats: Vec<Value> = ollama
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/chat")
        .map(|r| r.json())
        .collect();
    assert!(
        chats.len() >= 2,
        "the tool call and the answer: {}",
        chats.len()
    );
    let tool_result = chats
        .iter()
        .flat_map(|c| c["messages"].as_array().cloned().unwrap_or_default())
        .find(|m| m["role"] == "tool")
        .expect("OpenClaw ran the tool and sent its result back through the proxy");
    assert_eq!(tool_result["tool_name"], json!("read"), "{tool_result}");
    assert!(
        tool_result["content"]
            .as_str()
            .is_some_and(|c| c.contains("the fleet is green")),
        "{tool_result}"
    );
    let records = support::ledger_records(data.path(), chats.len()).await;
    let served: Vec<_> = records
        .iter()
        .filter(|r| r.endpoint == "/api/chat" && r.status == 200)
        .collect();
    assert_eq!(
        served.len(),
        chats.len(),
        "every turn's request metered: {records:?}"
    );
    assert!(served.iter().all(|r| r.usage.is_some()));

    // Nothing can serve: OpenClaw moves to its fallback after one request.
    ollama.fail_all(500, "out of memory");
    let failing_before = ollama.count("/api/chat");
    let turn = agent_turn_local(&home, "Say hello again.");
    let result = succeeded(&turn, "turn");
    assert_eq!(
        result.pointer("/payloads/0/text"),
        Some(&json!("The spare answered")),
        "{result}"
    );
    let records = support::ledger_records(data.path(), served.len() + 1).await;
    let refused: Vec<_> = records.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        refused.len(),
        1,
        "one request, then the fallback (no retry loop on the same model): {records:?}"
    );
    // The proxy asked the failing machine at most once (not at all once
    // its health poll saw it down).
    assert!(ollama.count("/api/chat") - failing_before <= 1);
    let fell_back = spare
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/chat")
        .expect("the spare was asked");
    let answered = refused[0].started_at
        + jiff::SignedDuration::from_secs_f64(refused[0].duration_ms / 1000.0);
    eprintln!(
        "time from the proxy's 503 to OpenClaw asking its fallback: {} ms",
        fell_back.at.duration_since(answered).as_millis()
    );

    // The costs: the local turns counted once, though the ledger and the
    // transcript both hold them.
    let costs = clawfleet_cli(&config, &["costs", "--json"]);
    assert!(
        costs.status.success(),
        "{}",
        String::from_utf8_lossy(&costs.stderr)
    );
    let v: Value = serde_json::from_slice(&costs.stdout).expect("costs JSON");
    let report = &v["machines"][0]["report"];
    let usage = ollama.usage();
    let per_turn = usage.prompt_eval_count + usage.eval_count;
    // The proxied requests once each, and the spare's turn (a provider
    // that bypasses the proxy) from the transcript: all local, all free.
    assert_eq!(
        report["local"]["total"],
        json!(per_turn * (served.len() as u64 + 1)),
        "{report}"
    );
    assert_eq!(
        report["sources"]["ledger_requests"],
        json!(served.len()),
        "{report}"
    );
    assert_eq!(
        report["sources"]["counted_once"],
        json!(served.len()),
        "{report}"
    );
    assert_eq!(report["sources"]["transcript_turns"], json!(1), "{report}");
    assert_eq!(report["month_to_date_usd"], json!(0.0), "{report}");
    let main = report["by_agent"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["agent"] == "main"))
        .unwrap_or_else(|| panic!("the main agent's costs: {report}"));
    assert!(main["local"]["total"].as_u64().unwrap_or(0) > 0, "{main}");
}
