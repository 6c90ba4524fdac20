//! `clawfleet clawdbot wire` / `unwire` on real JSON5 files written the way
//! people write them (comments, unquoted keys, single quotes, trailing
//! commas): only the Ollama providers' `baseUrl` values change, a dry run
//! changes nothing, wiring twice changes nothing the second time, unwire
//! restores the file byte for byte, and refuses when the user changed it
//! in between.

use std::path::{Path, PathBuf};
use std::process::Command;

use clawfleet::config::{self, Source};
use clawfleet::fleet::Fleet;
use clawfleet::openclaw::wire::{self, WireError};

/// The reference fleet's Clawdbot config on the MacBook, as edited by hand.
const CLAWDBOT: &str = r#"// ~/.clawdbot/clawdbot.json — edited by hand
{
  agents: {
    defaults: {
      model: {
        primary: "ollama-macmini/gpt-oss:20b",
        fallbacks: ["ollama-local/qwen3:8b", 'anthropic/claude-sonnet-4-5',],
      },
    },
  },
  models: {
    providers: {
      /* The Mac Mini's Ollama over the tailnet. Not this: http://100.115.10.14:11434/v1 */
      "ollama-macmini": {
        baseUrl: 'http://100.115.10.14:11434/v1',   // keep the quotes
        apiKey: "ollama-local",
        api: "openai-completions",
        models: [{ id: "gpt-oss:20b", name: "GPT-OSS 20B", contextWindow: 131072, }],
      },
      'ollama-local': {
        baseUrl: "http://127.0.0.1:11434/v1",
        api: "openai-completions",
        models: [{ id: "qwen3:8b" }],
      },
      friend: { baseUrl: "http://192.168.1.77:11434/v1", api: "openai-completions", models: [] },
      anthropic: {
        baseUrl: "https://api.anthropic.com",
        apiKey: "sk-ant-not-a-real-key",
        api: "anthropic-messages",
        models: [],
      },
    },
  },
  gateway: { port: 18789, bind: "loopback", auth: { token: "gw-token" } },
}
"#;

fn clawfleet_config(dir: &Path) -> String {
    format!(
        r#"this_machine = "macbook"
data_dir = {data:?}
[proxy]
listen = "127.0.0.1:11435"
[clawdbot]
config_path = {clawdbot:?}
[[machines]]
id = "macbook"
name = "MacBook Pro"
ollama_url = "http://127.0.0.1:11434"
[[machines]]
id = "macmini"
name = "Mac Mini"
tailnet_ip = "100.115.10.14"
ollama_url = "http://100.115.10.14:11434"
"#,
        data = dir.join("data"),
        clawdbot = dir.join("clawdbot.json"),
    )
}

fn setup() -> (tempfile::TempDir, PathBuf, Fleet) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawdbot.json");
    std::fs::write(&path, CLAWDBOT).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = config::parse(&clawfleet_config(dir.path()), &Source::Embedded).unwrap();
    let fleet = Fleet::resolve(&config, "somehost");
    (dir, path, fleet)
}

const PROXY: &str = "http://127.0.0.1:11435";

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("clawdbot.json.clawfleet-"))
        .collect();
    v.sort();
    v
}

#[test]
fn wire_changes_only_the_ollama_base_urls_and_unwire_restores_every_byte() {
    let (dir, path, fleet) = setup();
    let data = dir.path().join("data");

    // Dry run: the exact diff, nothing written.
    let dry = wire::wire(&path, &data, &fleet, PROXY, true).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), CLAWDBOT);
    assert!(backups(dir.path()).is_empty());
    assert!(
        dry.diff
            .contains("-        baseUrl: 'http://100.115.10.14:11434/v1',   // keep the quotes\n"),
        "{}",
        dry.diff
    );
    assert!(
        dry.diff.contains(
            "+        baseUrl: 'http://127.0.0.1:11435/via/macmini/v1',   // keep the quotes\n"
        ),
        "{}",
        dry.diff
    );
    assert!(
        dry.diff
            .contains("+        baseUrl: \"http://127.0.0.1:11435/via/macbook/v1\",\n"),
        "{}",
        dry.diff
    );

    // Wire: exactly those values change.
    let done = wire::wire(&path, &data, &fleet, PROXY, false).unwrap();
    let wired = std::fs::read_to_string(&path).unwrap();
    let expected = CLAWDBOT
        .replace(
            "baseUrl: 'http://100.115.10.14:11434/v1'",
            "baseUrl: 'http://127.0.0.1:11435/via/macmini/v1'",
        )
        .replace(
            "baseUrl: \"http://127.0.0.1:11434/v1\"",
            "baseUrl: \"http://127.0.0.1:11435/via/macbook/v1\"",
        )
        .replace(
            "baseUrl: \"http://192.168.1.77:11434/v1\"",
            "baseUrl: \"http://127.0.0.1:11435/v1\"",
        );
    assert_eq!(wired, expected, "comments, quotes, commas untouched");
    let by: Vec<(&str, Option<&str>)> = done
        .changes
        .iter()
        .map(|c| (c.provider.as_str(), c.machine.as_deref()))
        .collect();
    assert_eq!(
        by,
        [
            ("ollama-macmini", Some("macmini")),
            ("ollama-local", Some("macbook")),
            ("friend", None)
        ]
    );
    assert!(
        done.skipped
            .iter()
            .any(|s| s.provider == "anthropic" && s.why.contains("not an Ollama"))
    );
    let parsed: serde_json::Value = json5::from_str(&wired).unwrap();
    assert_eq!(
        parsed["models"]["providers"]["anthropic"]["baseUrl"],
        "https://api.anthropic.com"
    );
    let backup = done.backup.clone().unwrap();
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), CLAWDBOT);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&path),
            0o600,
            "the config keeps its permissions (it holds keys)"
        );
        assert_eq!(mode(&backup), 0o600, "and so does its backup");
    }

    // Twice: nothing changes, no second backup.
    let again = wire::wire(&path, &data, &fleet, PROXY, false).unwrap();
    assert!(again.changes.is_empty());
    assert!(
        again
            .skipped
            .iter()
            .filter(|s| s.why.contains("already goes through"))
            .count()
            == 3
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), wired);
    assert_eq!(backups(dir.path()).len(), 1);

    // Unwire: byte for byte.
    wire::unwire(&path, &data, false).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), CLAWDBOT.as_bytes());
    assert!(matches!(
        wire::unwire(&path, &data, false),
        Err(WireError::NotWired { .. })
    ));
}

#[test]
fn unwire_refuses_to_clobber_an_edit_made_after_wire_unless_forced() {
    let (dir, path, fleet) = setup();
    let data = dir.path().join("data");
    wire::wire(&path, &data, &fleet, PROXY, false).unwrap();
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("port: 18789", "port: 18790 /* moved */");
    std::fs::write(&path, &edited).unwrap();
    let e = wire::unwire(&path, &data, false).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("changed since"), "{text}");
    assert!(
        text.contains("clawdbot.json.clawfleet-"),
        "says where the original is: {text}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        edited,
        "the edit is kept"
    );
    wire::unwire(&path, &data, true).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), CLAWDBOT);
}

#[test]
fn bad_configs_are_refused_with_clear_words_and_left_alone() {
    let (dir, path, fleet) = setup();
    let data = dir.path().join("data");
    let missing = dir.path().join("nope.json");
    let e = wire::wire(&missing, &data, &fleet, PROXY, false).unwrap_err();
    assert!(e.to_string().contains("CLAWDBOT_CONFIG_PATH"), "{e}");

    let broken = "{ models: { providers: { a: { baseUrl: 'http://x:11434/v1' } }\n";
    std::fs::write(&path, broken).unwrap();
    let e = wire::wire(&path, &data, &fleet, PROXY, false).unwrap_err();
    assert!(e.to_string().contains("is not valid JSON5"), "{e}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);

    std::fs::write(&path, [0xff, 0xfe, b'{', b'}']).unwrap();
    assert!(
        wire::wire(&path, &data, &fleet, PROXY, false)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8")
    );

    // No Ollama provider at all: nothing to do, nothing written.
    let cloud = "{ models: { providers: { anthropic: { baseUrl: 'https://api.anthropic.com', api: 'anthropic-messages' } } } }";
    std::fs::write(&path, cloud).unwrap();
    let r = wire::wire(&path, &data, &fleet, PROXY, false).unwrap();
    assert!(r.changes.is_empty() && r.backup.is_none());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), cloud);
    assert!(backups(dir.path()).is_empty());
}

#[test]
fn the_cli_wires_and_unwires_the_file_clawdbot_reads() {
    let (dir, path, _) = setup();
    let config = dir.path().join("clawfleet.toml");
    // The Clawdbot config found through CLAWDBOT_CONFIG_PATH, as Clawdbot
    // finds it.
    std::fs::write(
        &config,
        clawfleet_config(dir.path()).replace(
            &format!("config_path = {:?}\n", dir.path().join("clawdbot.json")),
            "",
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_clawfleet"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("CLAWDBOT_CONFIG_PATH", &path)
            .output()
            .unwrap()
    };
    let dry = run(&["clawdbot", "wire", "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let out = String::from_utf8(dry.stdout).unwrap();
    assert!(
        out.contains("+        baseUrl: 'http://127.0.0.1:11435/via/macmini/v1'"),
        "{out}"
    );
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), CLAWDBOT);

    let wired = run(&["clawdbot", "wire"]);
    assert!(wired.status.success());
    let out = String::from_utf8(wired.stdout).unwrap();
    assert!(out.contains("ollama-macmini: http://100.115.10.14:11434/v1 -> http://127.0.0.1:11435/via/macmini/v1 (macmini first"), "{out}");
    assert!(out.contains("left alone: anthropic"), "{out}");
    assert!(!out.contains("sk-ant"), "no key is printed");
    let again = run(&["clawdbot", "wire"]);
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .contains("nothing to change")
    );

    let json = run(&["clawdbot", "wire", "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["dry_run"], true);

    let undone = run(&["clawdbot", "unwire"]);
    assert!(
        undone.status.success(),
        "{}",
        String::from_utf8_lossy(&undone.stderr)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), CLAWDBOT);
    let nothing = run(&["clawdbot", "unwire"]);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to unwire"));
}
