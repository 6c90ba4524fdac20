//! A real pm2 (npm, installed by `cargo xtask test` into tests/pm2)
//! supervising a small app, and a real `clawfleet serve` watching it: a
//! stopped app is restarted by the watcher and seen online by the probe; an
//! app that crashed into "errored" while healing was paused is restarted
//! once healing resumes; `clawfleet heal` refuses a target with shell
//! characters and runs a manual restart through the daemon. And `clawfleet
//! status` with no pm2 daemon running says so and starts none.

#![cfg(unix)]

use crate::support::{self, TestConfig, clawfleet};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const APP: &str = "healme";

/// pm2 in its own home, killed (with its apps) when the test ends.
struct Pm2 {
    program: PathBuf,
    home: PathBuf,
}

impl Pm2 {
    fn new(dir: &Path) -> Pm2 {
        let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pm2/node_modules/.bin/pm2");
        assert!(
            program.exists(),
            "{} is missing: `cargo xtask test` installs it (npm ci in tests/pm2)",
            program.display()
        );
        Pm2 {
            program,
            home: dir.join("pm2-home"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .args(args)
            .env("PM2_HOME", &self.home)
            .stdin(Stdio::null())
            .output()
            .expect("pm2 runs")
    }

    fn ok(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pm2 {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The app's status, as `pm2 jlist` says.
    fn status(&self) -> Option<String> {
        let out = self.run(&["jlist"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let start = text.find('[')?;
        let list: Value = serde_json::from_str(&text[start..]).ok()?;
        list.as_array()?
            .iter()
            .find(|a| a["name"] == APP)
            .and_then(|a| a["pm2_env"]["status"].as_str().map(str::to_owned))
    }

    fn wait_status(&self, want: &str, secs: u64) {
        support::poll_blocking(
            secs,
            Duration::from_millis(300),
            &format!("pm2 to show {APP} {want}"),
            || self.status(),
            |now| now.as_deref() == Some(want),
        );
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        let _ = self.run(&["kill"]);
    }
}

/// The config of machine `m` ("Test machine"), whose pm2 is `pm2` and
/// which runs [`APP`]; its Ollama is a closed port.
fn config(dir: &Path, pm2: &Pm2) -> TestConfig {
    TestConfig::new("m", &dir.join("data"))
        .set("probes", "pm2_program", &pm2.program)
        .machine(
            "m",
            "Test machine",
            &format!("ollama_url = \"http://127.0.0.1:9\"\npm2_apps = [\"{APP}\"]"),
        )
}

struct Daemon {
    child: Child,
    config: PathBuf,
    pm2_home: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(dir: &Path, pm2: &Pm2) -> Daemon {
        let config = config(dir, pm2)
            .set("probes", "system_interval_secs", 5)
            .set("probes", "processes_interval_secs", 5)
            .set("probes", "ollama_interval_secs", 60)
            .set("probes", "services_interval_secs", 60)
            .set("probes", "pm2_interval_secs", 1)
            .set("costs", "read_transcripts", false)
            .set("heal", "interval_secs", 1)
            .set("heal", "cooldown_secs", 1)
            .set("heal", "verify_secs", 30)
            .write(&dir.join("config.toml"));
        let mut child = clawfleet(&config)
            .arg("serve")
            .env("PM2_HOME", &pm2.home)
            .env("CLAWFLEET_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clawfleet serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        assert!(line.starts_with("clawfleet: fleet API on"), "{line:?}");
        Daemon {
            child,
            config,
            pm2_home: pm2.home.clone(),
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        clawfleet(&self.config)
            .args(args)
            .env("PM2_HOME", &self.pm2_home)
            .output()
            .expect("clawfleet")
    }

    fn events(&self) -> Vec<Value> {
        let out = self.cli(&["events", "--json", "--limit", "1000"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("events JSON")
    }

    /// Waits for `n` events that match `pred`, and returns the log.
    fn wait_events(&self, secs: u64, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        support::poll_blocking(
            secs,
            Duration::from_millis(300),
            &format!("{n} such event(s) in the log"),
            || self.events(),
            |events| events.iter().filter(|e| pred(e)).count() >= n,
        )
    }
}

fn is_restart_outcome(e: &Value) -> bool {
    e["kind"] == "outcome" && e["action"] == "restart-pm2-app"
}

#[test]
fn pm2_apps_that_stop_or_crash_are_restarted_and_seen_online() {
    let dir = tempfile::tempdir().expect("tmp");
    let marker = dir.path().join("crash");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/heal/pm2_app.js");
    let pm2 = Pm2::new(dir.path());
    // An ecosystem file: pm2 gives up after 3 quick crashes ("errored").
    let ecosystem = dir.path().join("ecosystem.json");
    std::fs::write(
        &ecosystem,
        serde_json::json!({"apps": [{
            "name": APP, "script": app, "args": [marker],
            "max_restarts": 3, "min_uptime": 5000,
        }]})
        .to_string(),
    )
    .expect("ecosystem");
    pm2.ok(&["start", &ecosystem.to_string_lossy()]);
    pm2.wait_status("online", 30);
    pm2.ok(&["stop", APP]);
    pm2.wait_status("stopped", 30);

    // 1. Stopped: the watcher restarts it and the probe sees it online.
    let daemon = Daemon::start(dir.path(), &pm2);
    let events = daemon.wait_events(90, 1, is_restart_outcome);
    let outcome = events
        .iter()
        .find(|e| is_restart_outcome(e))
        .expect("outcome");
    assert_eq!(outcome["detail"]["success"], true, "{outcome:#}");
    assert_eq!(outcome["detail"]["verified"], true, "{outcome:#}");
    assert_eq!(outcome["subject"], format!("restart-pm2-app:{APP}"));
    assert!(
        outcome["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("Restarted the pm2 app {APP} on Test machine"))),
        "{outcome:#}"
    );
    let finding = events
        .iter()
        .find(|e| e["kind"] == "finding" && e["subject"] == format!("pm2:{APP}"))
        .expect("a finding came first");
    assert!(
        finding["message"]
            .as_str()
            .is_some_and(|m| m.contains("is stopped")),
        "{finding:#}"
    );
    pm2.wait_status("online", 10);

    // 2. Paused, the app crashes until pm2 gives up: findings, no action.
    let out = daemon.cli(&["heal", "pause"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("paused"));
    std::fs::write(&marker, "crash").expect("marker");
    pm2.ok(&["restart", APP]);
    pm2.wait_status("errored", 60);
    daemon.wait_events(30, 1, |e| {
        e["kind"] == "finding"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("{APP} is errored")))
    });
    let suggestions = daemon.wait_events(30, 1, |e| e["kind"] == "suggestion");
    assert_eq!(
        suggestions.iter().filter(|e| is_restart_outcome(e)).count(),
        1,
        "paused: no second restart"
    );

    // 3. The cause is gone and healing resumes: restarted, online again.
    std::fs::remove_file(&marker).expect("marker");
    let out = daemon.cli(&["heal", "resume"]);
    assert!(out.status.success(), "{out:?}");
    let events = daemon.wait_events(90, 2, |e| {
        is_restart_outcome(e) && e["detail"]["success"] == true
    });
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "mode"
                && e["message"].as_str().is_some_and(|m| m.contains("paused"))),
        "the pause is in the log"
    );
    pm2.wait_status("online", 10);

    // 4. By hand: shell characters never reach pm2; a real name does.
    let out = daemon.cli(&["heal", "restart-pm2-app", "--target", "healme; rm -rf /"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a valid name"),
        "{out:?}"
    );
    let out = daemon.cli(&["heal", "restart-pm2-app", "--target", "nosuchapp"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pm2 has no app \"nosuchapp\""),
        "{out:?}"
    );
    let out = daemon.cli(&["heal", "restart-pm2-app", "--target", APP, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let manual: Value = serde_json::from_slice(&out.stdout).expect("outcome JSON");
    assert_eq!(manual["success"], true, "{manual:#}");
    assert_eq!(manual["verified"], true, "{manual:#}");
    let argv = &manual["done"]["commands"][0]["argv"];
    assert_eq!(argv[1], "restart");
    assert_eq!(argv[2], APP);
    pm2.wait_status("online", 10);
}

/// The processes whose environment holds `PM2_HOME=<home>`: a pm2 daemon
/// (or any pm2) started for that home inherits it. Linux only (`/proc`).
#[cfg(target_os = "linux")]
fn processes_with_pm2_home(home: &Path) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;

    let mut wanted = b"PM2_HOME=".to_vec();
    wanted.extend_from_slice(home.as_os_str().as_bytes());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // A process that ended meanwhile, or of another user: skipped.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var == wanted.as_slice())
        {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{} {}",
                name.to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

#[test]
fn status_with_no_pm2_daemon_says_so_and_starts_none() {
    let dir = tempfile::tempdir().expect("tmp");
    let pm2 = Pm2::new(dir.path());
    let config = config(dir.path(), &pm2)
        .set("probes", "timeout_ms", 500)
        .write(&dir.path().join("config.toml"));
    let status = || {
        let out = clawfleet(&config)
            .arg("status")
            .env("PM2_HOME", &pm2.home)
            .stdin(Stdio::null())
            .output()
            .expect("clawfleet status");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("no daemon running: probed just now"),
            "{text}"
        );
        text
    };

    // 1. No daemon: said so, and none was started. pm2 was not even run: it
    //    makes its home folder first thing.
    let text = status();
    assert!(
        text.contains(&format!(
            "PM2  not running (no daemon in {}; none was started)",
            pm2.home.display()
        )),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(APP))
        .unwrap_or_else(|| panic!("the expected app is listed: {text}"));
    assert!(row.contains("missing"), "{row}");
    assert!(
        !pm2.home.exists(),
        "{} was created: pm2 ran",
        pm2.home.display()
    );
    #[cfg(target_os = "linux")]
    assert_eq!(processes_with_pm2_home(&pm2.home), Vec::<String>::new());

    // 2. A real daemon: status asks it and shows the app.
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/heal/pm2_app.js");
    pm2.ok(&["start", &app.to_string_lossy(), "--name", APP]);
    pm2.wait_status("online", 30);
    // The scan of part 1 finds a daemon when there is one.
    #[cfg(target_os = "linux")]
    assert!(
        !processes_with_pm2_home(&pm2.home).is_empty(),
        "no process found with PM2_HOME={}",
        pm2.home.display()
    );
    let text = status();
    assert!(!text.contains("PM2  not running"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(APP))
        .unwrap_or_else(|| panic!("the app is listed: {text}"));
    assert!(row.contains("online"), "{row}");

    // 3. Killed by pm2 (it removes its pid file and sockets): not running
    //    again, and status still starts none.
    pm2.ok(&["kill"]);
    #[cfg(target_os = "linux")]
    support::poll_blocking(
        15,
        Duration::from_millis(200),
        "pm2 kill to leave no process behind",
        || processes_with_pm2_home(&pm2.home),
        Vec::is_empty,
    );
    let text = status();
    assert!(text.contains("PM2  not running"), "{text}");
    #[cfg(target_os = "linux")]
    assert_eq!(processes_with_pm2_home(&pm2.home), Vec::<String>::new());
}
