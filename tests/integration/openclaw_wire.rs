//! `clawfleet openclaw wire` / `unwire` on real JSON5 files written the way
//! people write them (comments, unquoted keys, single quotes, trailing
//! commas), for OpenClaw (native Ollama endpoint, discovery, Anthropic) and
//! a legacy Clawdbot (`/v1`): only the values wired change, a dry run
//! changes nothing, wiring twice changes nothing the second time, unwire
//! restores the file byte for byte and refuses when the user changed it in
//! between, backups are never overwritten, a symbolic link is edited at its
//! target. `openclaw_e2e.rs` has the real OpenClaw accept the result.

use std::path::{Path, PathBuf};

use crate::support::{TestConfig, clawfleet};

use clawfleet::fleet::Fleet;
use clawfleet::openclaw::wire::{self, Options, WireError};
use clawfleet::snapshot::AgentKind;

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

/// ClawFleet's config on the MacBook of the reference fleet, its Clawdbot
/// config in `dir`.
fn clawfleet_config(dir: &Path) -> TestConfig {
    TestConfig::new("macbook", &dir.join("data"))
        .set("proxy", "listen", "127.0.0.1:11435")
        .set("openclaw", "config_path", dir.join("clawdbot.json"))
        .ollama_machine("macbook", "MacBook Pro", "http://127.0.0.1:11434")
        .machine(
            "macmini",
            "Mac Mini",
            r#"tailnet_ip = "100.115.10.14"
            ollama_url = "http://100.115.10.14:11434""#,
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
    let config = clawfleet_config(dir.path()).config();
    let fleet = Fleet::resolve(&config, "somehost");
    (dir, path, fleet)
}

const PROXY: &str = "http://127.0.0.1:11435";

fn legacy() -> Options {
    Options {
        kind: AgentKind::Clawdbot,
        ..Options::default()
    }
}

fn openclaw() -> Options {
    Options::default()
}

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
fn a_legacy_clawdbot_keeps_v1_only_its_ollama_base_urls_change_and_unwire_restores_every_byte() {
    let (dir, path, fleet) = setup();
    let data = dir.path().join("data");

    // Dry run: the exact diff, nothing written.
    let dry = wire::wire(&path, &data, &fleet, PROXY, &legacy(), true).unwrap();
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
    let done = wire::wire(&path, &data, &fleet, PROXY, &legacy(), false).unwrap();
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
    let again = wire::wire(&path, &data, &fleet, PROXY, &legacy(), false).unwrap();
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
    wire::wire(&path, &data, &fleet, PROXY, &legacy(), false).unwrap();
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
    let e = wire::wire(&missing, &data, &fleet, PROXY, &legacy(), false).unwrap_err();
    assert!(e.to_string().contains("OPENCLAW_CONFIG_PATH"), "{e}");

    let broken = "{ models: { providers: { a: { baseUrl: 'http://x:11434/v1' } }\n";
    std::fs::write(&path, broken).unwrap();
    let e = wire::wire(&path, &data, &fleet, PROXY, &legacy(), false).unwrap_err();
    assert!(e.to_string().contains("is not valid JSON5"), "{e}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);

    std::fs::write(&path, [0xff, 0xfe, b'{', b'}']).unwrap();
    assert!(
        wire::wire(&path, &data, &fleet, PROXY, &legacy(), false)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8")
    );

    // No Ollama provider at all: nothing to do, nothing written.
    let cloud = "{ models: { providers: { anthropic: { baseUrl: 'https://api.anthropic.com', api: 'anthropic-messages' } } } }";
    std::fs::write(&path, cloud).unwrap();
    let r = wire::wire(&path, &data, &fleet, PROXY, &legacy(), false).unwrap();
    assert!(r.changes.is_empty() && r.backup.is_none());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), cloud);
    assert!(backups(dir.path()).is_empty());
}

#[test]
fn the_cli_wires_and_unwires_the_file_a_legacy_clawdbot_reads() {
    let (dir, path, _) = setup();
    // The Clawdbot config found through CLAWDBOT_CONFIG_PATH, as Clawdbot
    // finds it.
    let config = clawfleet_config(dir.path())
        .unset("openclaw", "config_path")
        .write(&dir.path().join("clawfleet.toml"));
    let run = |args: &[&str]| {
        clawfleet(&config)
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
    assert!(out.contains("ollama-macmini baseUrl: http://100.115.10.14:11434/v1 -> http://127.0.0.1:11435/via/macmini/v1 (macmini first"), "{out}");
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

/// An OpenClaw 2026.9 config as its user edits it: a native Ollama provider
/// for the Mac Mini, an older one still on `/v1`, discovery for this
/// machine's own Ollama (`ollama/…` models and no `ollama` provider), and
/// Anthropic as the last resort.
const OPENCLAW: &str = r#"// ~/.openclaw/openclaw.json
{
  agents: {
    defaults: {
      model: { primary: "macmini/gpt-oss:20b", fallbacks: ["ollama/qwen3:8b", "anthropic/claude-sonnet-4-5"] },
    },
  },
  models: {
    providers: {
      macmini: { baseUrl: "http://100.115.10.14:11434", apiKey: "ollama-local", api: "ollama", models: [{ id: "gpt-oss:20b", name: "gpt-oss" }] },
      old: { baseUrl: "http://100.115.10.14:11434/v1", api: "openai-completions", models: [] },
    },
  },
  gateway: { mode: "local", port: 18789, auth: { token: "gw-token" } },
}
"#;

fn openclaw_setup() -> (tempfile::TempDir, PathBuf, Fleet) {
    let (dir, _, fleet) = setup();
    let path = dir.path().join("openclaw.json");
    std::fs::write(&path, OPENCLAW).unwrap();
    (dir, path, fleet)
}

#[test]
fn openclaw_goes_to_the_native_endpoint_and_its_discovery_through_the_proxy() {
    let (dir, path, fleet) = openclaw_setup();
    let data = dir.path().join("data");
    let done = wire::wire(&path, &data, &fleet, PROXY, &openclaw(), false).unwrap();
    let wired = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = json5::from_str(&wired).unwrap();
    let p = &v["models"]["providers"];
    // Native: no /v1, api "ollama"; each keeps the machine it named.
    assert_eq!(
        p["macmini"]["baseUrl"],
        "http://127.0.0.1:11435/via/macmini"
    );
    assert_eq!(p["macmini"]["api"], "ollama");
    assert_eq!(p["old"]["baseUrl"], "http://127.0.0.1:11435/via/macmini");
    assert_eq!(
        p["old"]["api"], "ollama",
        "/v1 breaks OpenClaw's tool calls"
    );
    // Discovery of this machine's Ollama now goes through the proxy.
    assert_eq!(p["ollama"]["baseUrl"], "http://127.0.0.1:11435/via/macbook");
    assert_eq!(p["ollama"]["api"], "ollama");
    assert_eq!(p["ollama"]["apiKey"], "ollama-local");
    // Nothing else moved: the comment, the gateway, the models.
    assert!(wired.starts_with("// ~/.openclaw/openclaw.json\n{"));
    assert_eq!(v["gateway"]["auth"]["token"], "gw-token");
    assert_eq!(p["macmini"]["models"][0]["id"], "gpt-oss:20b");
    assert!(p.get("anthropic").is_none(), "Anthropic only when asked");
    let keys: Vec<(&str, &str)> = done
        .changes
        .iter()
        .map(|c| (c.provider.as_str(), c.key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("macmini", "baseUrl"),
            ("old", "baseUrl"),
            ("old", "api"),
            ("ollama", "provider")
        ]
    );
    assert!(done.notes.is_empty(), "{:?}", done.notes);
    // Again: nothing.
    let again = wire::wire(&path, &data, &fleet, PROXY, &openclaw(), false).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    wire::unwire(&path, &data, false).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), OPENCLAW);
    // A provider that waits longer for a cold load than the proxy: named.
    let slow = OPENCLAW.replace(
        "apiKey: \"ollama-local\", api: \"ollama\"",
        "apiKey: \"ollama-local\", api: \"ollama\", timeoutSeconds: 900",
    );
    std::fs::write(&path, &slow).unwrap();
    let opts = Options {
        first_byte_timeout_secs: Some(300),
        ..Options::default()
    };
    let done = wire::wire(&path, &data, &fleet, PROXY, &opts, true).unwrap();
    assert_eq!(done.notes.len(), 1, "{:?}", done.notes);
    assert!(
        done.notes[0].contains("first_byte_timeout_secs = 900"),
        "{:?}",
        done.notes
    );
}

#[test]
fn anthropic_and_one_machine_for_all_on_request() {
    let (dir, path, fleet) = openclaw_setup();
    let data = dir.path().join("data");
    let opts = Options {
        anthropic: true,
        machine: Some("macmini".into()),
        ..Options::default()
    };
    wire::wire(&path, &data, &fleet, PROXY, &opts, false).unwrap();
    let v: serde_json::Value = json5::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let p = &v["models"]["providers"];
    assert_eq!(p["anthropic"]["baseUrl"], PROXY);
    assert_eq!(p["anthropic"]["api"], "anthropic-messages");
    assert_eq!(p["ollama"]["baseUrl"], "http://127.0.0.1:11435/via/macmini");
    wire::unwire(&path, &data, false).unwrap();
    // An existing Anthropic provider keeps everything but its address.
    let with = OPENCLAW.replace(
        "old: {",
        "anthropic: { baseUrl: 'https://api.anthropic.com', api: 'anthropic-messages', models: [] },\n      old: {",
    );
    std::fs::write(&path, &with).unwrap();
    let done = wire::wire(&path, &data, &fleet, PROXY, &opts, false).unwrap();
    assert!(done.changes.iter().any(
        |c| c.provider == "anthropic" && c.from.as_deref() == Some("https://api.anthropic.com")
    ));
    let v: serde_json::Value = json5::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["models"]["providers"]["anthropic"]["baseUrl"], PROXY);
    // A legacy Clawdbot is not wired for Anthropic.
    let e = wire::wire(
        &path,
        &data,
        &fleet,
        PROXY,
        &Options {
            kind: AgentKind::Clawdbot,
            ..opts
        },
        false,
    );
    assert!(e.is_err());
}

#[test]
fn rewiring_after_an_edit_keeps_the_first_original_and_never_overwrites_a_copy() {
    let (dir, path, fleet) = openclaw_setup();
    let data = dir.path().join("data");
    let copies = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("openclaw.json.clawfleet-"))
            .collect();
        v.sort();
        v
    };
    let first = wire::wire(&path, &data, &fleet, PROXY, &openclaw(), false).unwrap();
    let original = first.backup.clone().unwrap();
    // Within the same second: the user edits (a provider back to its old
    // address) and wires again.
    let edited = std::fs::read_to_string(&path).unwrap().replace(
        "\"http://127.0.0.1:11435/via/macmini\", apiKey",
        "\"http://100.115.10.14:11434\", apiKey",
    );
    std::fs::write(&path, &edited).unwrap();
    let second = wire::wire(&path, &data, &fleet, PROXY, &openclaw(), false).unwrap();
    assert_eq!(
        second.backup.as_ref(),
        Some(&original),
        "the first original stays the one to restore"
    );
    let all = copies(dir.path());
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        std::fs::read_to_string(&original).unwrap(),
        OPENCLAW,
        "never overwritten"
    );
    assert!(
        all.iter()
            .any(|c| std::fs::read_to_string(c).unwrap() == edited)
    );
    let (restored_from, between) = wire::unwire(&path, &data, false).unwrap();
    assert_eq!(restored_from, original);
    assert_eq!(between.len(), 1);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), OPENCLAW);
}

#[cfg(unix)]
#[test]
fn a_symlinked_config_is_edited_at_its_target_with_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _, fleet) = openclaw_setup();
    let data = dir.path().join("data");
    let real = dir.path().join("dotfiles").join("openclaw.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, OPENCLAW).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("linked.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let done = wire::wire(&link, &data, &fleet, PROXY, &openclaw(), false).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "still a link"
    );
    assert_eq!(done.path, std::fs::canonicalize(&real).unwrap());
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("/via/macmini")
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&real), 0o640);
    assert_eq!(mode(done.backup.as_ref().unwrap()), 0o640);
    wire::unwire(&link, &data, false).unwrap();
    assert_eq!(std::fs::read_to_string(&real).unwrap(), OPENCLAW);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[cfg(unix)]
#[test]
fn when_the_record_cannot_be_written_the_config_is_left_and_the_copy_named() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe { libc::geteuid() } == 0 {
        // Root writes through permissions: a file where the folder should be.
        let (dir, path, fleet) = openclaw_setup();
        let data = dir.path().join("data-is-a-file");
        std::fs::write(&data, "").unwrap();
        let e = wire::wire(&path, &data, &fleet, PROXY, &openclaw(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not changed"), "{e}");
        assert!(e.contains("openclaw.json.clawfleet-"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), OPENCLAW);
        return;
    }
    let (dir, path, fleet) = openclaw_setup();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    let e = wire::wire(&path, &data, &fleet, PROXY, &openclaw(), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not changed"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), OPENCLAW);
}
