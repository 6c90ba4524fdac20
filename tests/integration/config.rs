//! Configuration: the embedded default, `config init|check|path` through the
//! real binary, and one test per error message (file, line, key, expected).

use std::path::Path;
use std::process::{Command, Output};

use clawfleet::config::{self, Config, DEFAULT_TOML, Source};

fn clawfleet(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clawfleet"))
        .args(args)
        // A private home and config folder: never the developer's own files.
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("CLAWFLEET_CONFIG")
        .output()
        .expect("run clawfleet")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses `toml` as if it were the file `bad.toml` and returns the error text.
fn error_of(toml: &str) -> String {
    match config::parse(toml, &Source::File("bad.toml".into())) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_embedded_default_mirrors_the_reference_fleet() {
    let c = config::parse(DEFAULT_TOML, &Source::Embedded).expect("default parses");
    let ids: Vec<_> = c.machines.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["macbook", "macmini", "msi"]);
    let mini = c.machine("macmini").unwrap();
    assert_eq!(mini.tailnet_ip.as_deref(), Some("100.115.10.14"));
    assert_eq!(
        mini.ollama_url.as_deref(),
        Some("http://felipes-mac-mini.local:11434")
    );
    assert_eq!(mini.pm2_apps, ["aphos-server-prod", "aphos-server-dev"]);
    let ports: Vec<_> = mini.services.iter().filter_map(|s| s.port).collect();
    assert_eq!(ports, [18789, 11434, 9009, 2567, 2568]);
    assert_eq!(mini.models[0].name, "gpt-oss:20b");
    let msi = c.machine("msi").unwrap();
    assert_eq!(msi.ollama_url, None, "the Windows box has no local Ollama");
    assert_eq!(msi.tailnet_ip.as_deref(), Some("100.67.241.32"));
    let macbook = c.machine("macbook").unwrap();
    assert_eq!(
        macbook.hostname.as_deref(),
        Some("felipes-macbook-pro-2.local")
    );
    assert_eq!(macbook.models.len(), 3);
    assert_eq!(c.api.listen.addrs(), ["127.0.0.1:11436".parse().unwrap()]);
    assert_eq!(c.proxy.listen, "127.0.0.1:11435");
    assert_eq!(c.heal.interval_secs, 60);
    // The embedded heal policy is the built-in one, spelled out; the
    // Cleaner's folders are caches that rebuild themselves.
    let mut spelled = c.heal.clone();
    spelled.clean = clawfleet::config::CleanConfig::default();
    assert_eq!(spelled, clawfleet::config::HealConfig::default());
    assert!(
        c.heal
            .clean
            .roots
            .iter()
            .all(|r| r.to_string_lossy().starts_with("~/")),
        "{:?}",
        c.heal.clean.roots
    );
    assert_eq!(c.routes[0].model, "gpt-oss:20b");
    assert_eq!(c.routes[0].machines, ["macmini", "macbook"]);
}

#[test]
fn config_serializes_and_parses_back_to_the_same_value() {
    let c = config::embedded();
    let written = toml::to_string(&c).expect("serialize");
    let back: Config = config::parse(&written, &Source::Embedded).expect("parse back");
    assert_eq!(back, c);
}

#[test]
fn init_writes_the_commented_default_and_check_accepts_it() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("conf/clawfleet.toml");
    let p = path.to_str().unwrap();

    let out = clawfleet(&["--config", p, "config", "init"], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), DEFAULT_TOML);
    assert!(DEFAULT_TOML.contains("# ClawFleet configuration."));

    let out = clawfleet(&["config", "check", p], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(
        stdout.contains("3 machines (macbook, macmini, msi), 3 routes"),
        "{stdout}"
    );

    // A second init refuses to clobber the user's file.
    std::fs::write(&path, "# mine\n").unwrap();
    let out = clawfleet(&["--config", p, "config", "init"], home.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    let out = clawfleet(&["--config", p, "config", "init", "--force"], home.path());
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), DEFAULT_TOML);
}

#[test]
fn init_and_path_use_the_platform_folder_and_the_env_override() {
    let home = tempfile::tempdir().unwrap();
    let expected = home.path().join(".config/clawfleet/config.toml");

    let out = clawfleet(&["config", "path"], home.path());
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), expected.to_str().unwrap());
    assert!(text(&out.stderr).contains("embedded default is in use"));

    let out = clawfleet(&["config", "init"], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(expected.exists());
    let out = clawfleet(&["config", "check"], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(expected.to_str().unwrap()));

    let other = home.path().join("elsewhere.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_clawfleet"))
        .args(["config", "path"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("CLAWFLEET_CONFIG", &other)
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), other.to_str().unwrap());
}

#[test]
fn check_reports_every_problem_with_file_line_and_key() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"this_machine = "nope"

[api]
listen = "localhost:11436"

[[machines]]
id = "mini"
name = "Mac Mini"
ollama_url = "ftp://mini:11434"

[[machines]]
id = "mini"
name = "Another"
tailnet_ip = "100.115.10.300"

[[routes]]
model = "gpt-oss:20b"
machines = ["mini", "macbook"]
"#,
    )
    .unwrap();
    let out = clawfleet(&["config", "check", path.to_str().unwrap()], home.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let file = path.display().to_string();
    for needle in [
        "6 problems in".to_owned(),
        format!("{file}:4:1: api.listen: \"localhost:11436\" is not an IP address with a port"),
        format!(
            "{file}:9:1: machines[0].ollama_url: \"ftp://mini:11434\" is not a usable URL: scheme \"ftp\" is not http or https"
        ),
        format!(
            "{file}:12:1: machines[1].id: duplicate machine id \"mini\" (also used by machines[0])"
        ),
        format!("{file}:14:1: machines[1].tailnet_ip: \"100.115.10.300\" is not an IP address"),
        format!("{file}:1:1: this_machine: \"nope\" is not the id of any [[machines]] entry"),
        "expected: one of: mini, mini".to_owned(),
        format!(
            "{file}:18:21: routes[0].machines[1]: route for \"gpt-oss:20b\" names machine \"macbook\", which does not exist"
        ),
        "     4 | listen = \"localhost:11436\"".to_owned(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn a_syntax_error_names_the_line() {
    let err = error_of("[api]\nlisten = \"127.0.0.1:11436\n");
    assert!(err.starts_with("bad.toml:2:"), "{err}");
    assert!(err.contains("listen = \"127.0.0.1:11436"), "{err}");
}

#[test]
fn a_wrong_type_names_the_key_and_what_was_expected() {
    let err = error_of("[probes]\nsystem_interval_secs = \"fast\"\n");
    assert!(
        err.starts_with("bad.toml:2:24: probes.system_interval_secs: invalid type: string \"fast\", expected u64"),
        "{err}"
    );
    let err = error_of("[heal]\nmode = \"sometimes\"\n");
    assert!(
        err.contains(
            "heal.mode: unknown variant `sometimes`, expected one of `auto`, `suggest`, `off`"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_key_is_named_with_the_keys_that_exist() {
    let err = error_of("[api]\nlisen = \"127.0.0.1:1\"\n");
    assert!(
        err.starts_with(
            "bad.toml:2:1: api.lisen: unknown field `lisen`, expected `listen` or `allowed_hosts`"
        ),
        "{err}"
    );
    let err = error_of("[[machines]]\nid = \"a\"\nname = \"A\"\nollama = \"http://x\"\n");
    assert!(
        err.contains("bad.toml:4:1: machines[0].ollama: unknown field `ollama`"),
        "{err}"
    );
}

#[test]
fn a_missing_required_key_points_at_its_table() {
    let err = error_of("[[machines]]\nname = \"A\"\n");
    assert!(err.starts_with("bad.toml:1:"), "{err}");
    assert!(err.contains("missing field `id`"), "{err}");
}

#[test]
fn services_need_exactly_one_of_port_or_url() {
    let err = error_of(
        "[[machines]]\nid = \"a\"\nname = \"A\"\nservices = [ { name = \"x\" }, { name = \"y\", port = 1, url = \"http://h\" }, { name = \"z\", port = 2, expect_status = 200 } ]\n",
    );
    assert!(
        err.contains("machines[0].services[0]: service \"x\" has neither `port` nor `url`"),
        "{err}"
    );
    assert!(
        err.contains("machines[0].services[1]: service \"y\" has both `port` and `url`"),
        "{err}"
    );
    assert!(
        err.contains(
            "machines[0].services[2].expect_status: `expect_status` only applies to a `url` service"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_explicit_file_is_an_error_but_no_file_at_all_is_the_default() {
    let home = tempfile::tempdir().unwrap();
    let out = clawfleet(
        &["--config", "/nonexistent/clawfleet.toml", "config", "check"],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/clawfleet.toml"));

    let out = clawfleet(&["config", "check"], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("<embedded default>: ok"));
}

#[test]
fn heal_settings_that_could_do_harm_are_refused_with_the_key() {
    let err = error_of(
        "[probes]\npm2_program = \" \"\n\
         [heal]\nmax_attempts = 0\nmemory_percent = 120\nwindow_secs = 5\n\
         [heal.clean]\nroots = [\"/\", \"~\", \"relative/dir\", \"/tmp/../etc\", \"~/Library/Caches\"]\nolder_than_days = 0\n\
         [heal.commands]\n\"restart-ollama\" = [[]]\n\"clean\" = [[\"rm\", \"-rf\", \"/\"]]\n\"rm-everything\" = [[\"rm\"]]\n\
         [[machines]]\nid = \"a\"\nname = \"A\"\n",
    );
    for expected in [
        "probes.pm2_program: it is empty",
        "heal.max_attempts: 0 is out of range",
        "heal.memory_percent: 120 is out of range",
        "heal.window_secs: 5 is out of range",
        "heal.clean.roots[0]: the file system root is never cleaned",
        "heal.clean.roots[1]: the home folder itself is never cleaned",
        "heal.clean.roots[2]: \"relative/dir\" is relative",
        "heal.clean.roots[3]: \"/tmp/../etc\" contains '..'",
        "heal.clean.older_than_days: 0 would clean files in use",
        "heal.commands.restart-ollama[0]: the command has no program",
        "heal.commands.clean: \"clean\" is done inside ClawFleet",
        "heal.commands.rm-everything: \"rm-everything\" is not an action",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("roots[4]"),
        "~/Library/Caches is a good root: {err}"
    );
}

#[test]
fn clawdbots_old_section_is_read_and_check_says_to_rename_it() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("clawfleet.toml");
    std::fs::write(
        &path,
        "[probes]\nclawdbot_interval_secs = 45\n\n[clawdbot]\nconfig_path = \"/srv/cb/clawdbot.json\"\n",
    )
    .unwrap();
    let loaded = clawfleet::config::load_file(&path).unwrap();
    assert_eq!(
        loaded.config.openclaw.config_path.as_deref(),
        Some(std::path::Path::new("/srv/cb/clawdbot.json"))
    );
    assert_eq!(loaded.config.probes.openclaw_interval_secs, 45);
    let out = clawfleet(&["config", "check", path.to_str().unwrap()], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("note: line 4: [clawdbot] is read as [openclaw]"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "note: line 2: [probes] clawdbot_interval_secs is read as openclaw_interval_secs"
        ),
        "{stdout}"
    );
    // Both names at once is a mistake, said as such.
    std::fs::write(&path, "[clawdbot]\n\n[openclaw]\n").unwrap();
    let out = clawfleet(&["config", "check", path.to_str().unwrap()], home.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
}
