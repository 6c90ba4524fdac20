//! Self-healing with real processes: the command runner's bounds, the
//! Cleaner on a real tree with symlinks leading out, a real zombie found and
//! reaped, a stand-in Ollama brought back by a configured restart command,
//! an action that always fails backing off into one "needs human", and the
//! token on `POST /fleet/v1/heal`.

#![cfg(unix)]

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use clawfleet::command as run;
use clawfleet::config::{self, Source};
use clawfleet::daemon;
use clawfleet::events::{Event, Kind};
use clawfleet::heal::clean::{self, CleanSpec};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/heal")
        .join(name)
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn commands_are_bounded_in_output_and_time() {
    // Megabytes of output: kept to the cap, the rest drained.
    let r = run::run(
        &argv(&["head", "-c", "5000000", "/dev/zero"]),
        Duration::from_secs(20),
    )
    .await;
    assert!(r.success, "{r:?}");
    assert!(r.truncated);
    assert_eq!(r.stdout.len(), run::MAX_OUTPUT);

    // A command that hangs, with a grandchild holding the output open: the
    // whole group is killed at the limit.
    let started = Instant::now();
    let r = run::run(
        &argv(&[
            "python3",
            "-c",
            "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
        ]),
        Duration::from_millis(700),
    )
    .await;
    assert!(r.timed_out, "{r:?}");
    assert!(!r.success);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        r.summary().contains("did not finish in time"),
        "{}",
        r.summary()
    );

    // Not installed.
    let r = run::run(
        &argv(&["no-such-program-clawfleet"]),
        Duration::from_secs(5),
    )
    .await;
    assert!(r.spawn_error.is_some());
    assert!(r.summary().contains("could not start"), "{}", r.summary());

    // A failure says why, from stderr.
    let r = run::run(
        &argv(&[
            "python3",
            "-c",
            "import sys; sys.stderr.write('boom happened\\n'); sys.exit(3)",
        ]),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.code, Some(3));
    assert!(
        r.summary().contains("exit code 3: boom happened"),
        "{}",
        r.summary()
    );
}

fn touch(path: &Path, bytes: usize, days_old: u64) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, vec![b'x'; bytes]).expect("write");
    let when = SystemTime::now() - Duration::from_secs(days_old * 86_400 + 60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("mtime");
}

#[test]
fn the_cleaner_stays_inside_its_folders() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("cache");
    let outside = tmp.path().join("precious");
    touch(&root.join("old1.bin"), 1000, 10);
    touch(&root.join("sub/deeper/old2.bin"), 3000, 30);
    touch(&root.join("young.bin"), 500, 1);
    touch(&root.join("keep/young2.bin"), 100, 0);
    touch(&outside.join("old-precious.bin"), 7000, 100);
    std::os::unix::fs::symlink(&outside, root.join("link-to-folder")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("old-precious.bin"), root.join("link-to-file"))
        .expect("symlink");
    let linked_root = tmp.path().join("linked-root");
    std::os::unix::fs::symlink(&outside, &linked_root).expect("symlink");
    let spec = CleanSpec {
        roots: vec![
            root.clone(),
            linked_root.clone(),
            tmp.path().join("missing"),
            PathBuf::from("relative/path"),
        ],
        older_than_days: 7,
    };

    let dry = clean::clean(&spec, true, SystemTime::now());
    assert!(dry.dry_run);
    assert_eq!((dry.files, dry.bytes), (2, 4000));
    assert_eq!((dry.removed_files, dry.removed_bytes), (0, 0));
    assert!(root.join("old1.bin").exists(), "a dry run touches nothing");
    assert_eq!(dry.largest[0].bytes, 3000);
    assert_eq!(dry.largest[1].bytes, 1000);
    assert_eq!(dry.roots.len(), 1);
    assert_eq!(dry.roots[0].root, root);
    let skipped = dry.skipped.join("\n");
    assert!(
        skipped.contains("link-to-folder: symlink, not followed"),
        "{skipped}"
    );
    assert!(
        skipped.contains("link-to-file: symlink, not followed"),
        "{skipped}"
    );
    assert!(
        skipped.contains("linked-root: refused: it is a symlink"),
        "{skipped}"
    );
    assert!(skipped.contains("missing: refused"), "{skipped}");
    assert!(skipped.contains("relative/path: refused"), "{skipped}");

    let done = clean::clean(&spec, false, SystemTime::now());
    assert_eq!((done.removed_files, done.removed_bytes), (2, 4000));
    assert!(!root.join("old1.bin").exists());
    assert!(
        !root.join("sub").exists(),
        "folders emptied by the clean go"
    );
    assert!(root.join("young.bin").exists());
    assert!(root.join("keep/young2.bin").exists());
    assert!(root.exists(), "never the root");
    assert!(
        outside.join("old-precious.bin").exists(),
        "nothing outside touched"
    );
    assert!(
        std::fs::symlink_metadata(root.join("link-to-folder")).is_ok(),
        "the symlink itself stays"
    );
}

#[test]
fn clean_roots_that_would_escape_are_refused() {
    let home = Path::new("/home/someone");
    assert_eq!(
        clean::check_root(Path::new("~/Library/Caches"), Some(home)).expect("ok"),
        PathBuf::from("/home/someone/Library/Caches")
    );
    for bad in [
        "relative",
        "/",
        "~",
        "/home/someone",
        "/tmp/../etc",
        "/tmp/./x",
    ] {
        assert!(
            clean::check_root(Path::new(bad), Some(home)).is_err(),
            "{bad} accepted"
        );
    }
}

/// A daemon for machine `m` with everything in `dir`, `extra` TOML added to
/// `[heal]` and `machine` lines to the machine.
async fn start(dir: &Path, heal: &str, machine: &str) -> daemon::Running {
    let text = format!(
        r#"this_machine = "m"
data_dir = {data:?}
[api]
listen = "127.0.0.1:0"
[proxy]
listen = "127.0.0.1:0"
[probes]
system_interval_secs = 1
processes_interval_secs = 1
ollama_interval_secs = 1
services_interval_secs = 60
pm2_interval_secs = 3600
clawdbot_interval_secs = 3600
timeout_ms = 500
[clawdbot]
config_path = {none:?}
[costs]
read_transcripts = false
[heal]
interval_secs = 1
verify_secs = 15
{heal}
[[machines]]
id = "m"
name = "Test machine"
{machine}
"#,
        data = dir.join("data"),
        none = dir.join("none.json"),
    );
    let config = config::parse(&text, &Source::Embedded).expect("valid config");
    daemon::start(config).await.expect("daemon starts")
}

/// Waits until the event log holds an event matching `pred`.
async fn wait_for(
    running: &daemon::Running,
    secs: u64,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let events = running.watcher.events().list(1000, None).expect("events");
        if events.iter().any(&pred) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no such event in time; the log: {:#?}",
            events
                .iter()
                .map(|e| (&e.kind, &e.message))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stand_in_ollama_is_restarted_by_its_configured_command_and_seen_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = support::free_closed_port();
    let pidfile = dir.path().join("ollama.pid");
    let heal = format!(
        "ollama_down_probes = 2\n[heal.commands]\n\"restart-ollama\" = [[\"python3\", {:?}, \"{port}\", {:?}]]\n",
        fixture("stand_in_ollama.py"),
        pidfile
    );
    let running = start(
        dir.path(),
        &heal,
        &format!("ollama_url = \"http://127.0.0.1:{port}\""),
    )
    .await;
    let events = wait_for(&running, 45, |e| e.kind == Kind::Outcome).await;
    let outcome = events
        .iter()
        .find(|e| e.kind == Kind::Outcome)
        .expect("outcome");
    assert_eq!(outcome.action.as_deref(), Some("restart-ollama"));
    let detail = outcome.detail.as_ref().expect("detail");
    assert_eq!(detail["success"], true, "{outcome:#?}");
    assert_eq!(
        detail["verified"], true,
        "the probe saw it back: {outcome:#?}"
    );
    assert!(
        outcome
            .message
            .starts_with("Restarted Ollama on Test machine"),
        "{}",
        outcome.message
    );
    assert!(outcome.message.contains("back in"), "{}", outcome.message);
    let finding = events
        .iter()
        .find(|e| e.kind == Kind::Finding && e.subject.as_deref() == Some("ollama"))
        .expect("the finding came first");
    assert!(
        finding.message.contains("not answering"),
        "{}",
        finding.message
    );
    assert!(events.iter().any(|e| e.kind == Kind::ActionStarted));
    // It is up: the finding clears.
    wait_for(&running, 20, |e| {
        e.kind == Kind::Cleared && e.subject.as_deref() == Some("ollama")
    })
    .await;
    running.shutdown().await;
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
}

#[tokio::test]
async fn an_action_that_always_fails_backs_off_then_needs_a_human_once() {
    let dir = tempfile::tempdir().expect("tmp");
    // An "Ollama" that holds its port (so no other test's listener can take
    // it and answer) and hangs up on every request: down for the whole test.
    let hang_up = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hang_up.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in hang_up.incoming() {
            drop(conn);
        }
    });
    let heal = "ollama_down_probes = 1\ncooldown_secs = 1\nbackoff_max_secs = 2\nmax_attempts = 3\n\
                [heal.commands]\n\"restart-ollama\" = [[\"python3\", \"-c\", \"import sys; sys.exit('cannot restart: no such service')\"]]\n";
    let running = start(
        dir.path(),
        heal,
        &format!("ollama_url = \"http://127.0.0.1:{port}\""),
    )
    .await;
    wait_for(&running, 45, |e| e.kind == Kind::NeedsHuman).await;
    // More cycles: no more attempts, no second "needs human".
    tokio::time::sleep(Duration::from_secs(4)).await;
    let events = running.watcher.events().list(1000, None).expect("events");
    // Only this subject: tests run side by side, and another one's zombie
    // is this machine's too.
    let events: Vec<Event> = events
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some("restart-ollama"))
        .collect();
    let count = |k: Kind| events.iter().filter(|e| e.kind == k).count();
    assert_eq!(count(Kind::NeedsHuman), 1);
    assert_eq!(
        count(Kind::Outcome),
        3,
        "three attempts, then none: {:#?}",
        events
            .iter()
            .rev()
            .map(|e| (e.at, e.kind, e.subject.clone(), e.message.clone()))
            .collect::<Vec<_>>()
    );
    let outcomes: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == Kind::Outcome)
        .rev()
        .collect();
    for o in &outcomes {
        assert!(
            o.message.contains("cannot restart: no such service"),
            "{}",
            o.message
        );
    }
    // Backoff: the gaps grow (1 s, then 2 s).
    let gap = |a: &Event, b: &Event| b.at.duration_since(a.at).as_secs_f64();
    assert!(gap(outcomes[0], outcomes[1]) >= 0.9, "{outcomes:#?}");
    assert!(gap(outcomes[1], outcomes[2]) >= 1.9, "{outcomes:#?}");
    let needs = events
        .iter()
        .find(|e| e.kind == Kind::NeedsHuman)
        .expect("needs");
    assert!(needs.message.contains("needs a human"), "{}", needs.message);
    let status = running.watcher.status();
    assert!(
        status
            .guards
            .iter()
            .any(|g| g.subject == "restart-ollama" && g.needs_human)
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_real_zombie_is_found_and_reaped() {
    let dir = tempfile::tempdir().expect("tmp");
    let pidfile = dir.path().join("pids");
    // Killed when the test ends, pass or fail; its output never holds the
    // test runner's pipes open.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _parent = KillOnDrop(
        std::process::Command::new("python3")
            .arg(fixture("zombie_parent.py"))
            .arg(&pidfile)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let child: u32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile)
            && let Some(c) = text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
        {
            break c;
        }
        assert!(Instant::now() < deadline, "the zombie parent did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let state = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()))
            .flatten()
    };
    // The child has written its pid; it exits a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(child) != Some('Z') {
        assert!(
            Instant::now() < deadline,
            "no zombie to begin with: {:?}",
            state(child)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let running = start(dir.path(), "zombie_cycles = 1", "").await;
    let events = wait_for(&running, 30, |e| {
        e.kind == Kind::Outcome && e.action.as_deref() == Some("reap-zombies")
    })
    .await;
    let outcome = events
        .iter()
        .find(|e| e.kind == Kind::Outcome && e.action.as_deref() == Some("reap-zombies"))
        .expect("outcome");
    assert_eq!(
        outcome.detail.as_ref().expect("detail")["success"],
        true,
        "{outcome:#?}"
    );
    assert_eq!(state(child), None, "reaped: gone from the process table");
    running.shutdown().await;
}

#[tokio::test]
async fn heal_requests_need_the_token_and_only_name_actions_of_the_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let heal = "mode = \"suggest\"\n[heal.commands]\n\"restart-gateway\" = [[\"true\"]]\n";
    let running = start(dir.path(), heal, "pm2_apps = [\"web\"]").await;
    let base = format!("http://{}", running.api_addrs[0]);
    let client = reqwest::Client::new();
    let token = std::fs::read_to_string(dir.path().join("data/fleet.token")).expect("token");
    let token = token.trim();
    let post = |body: Value, auth: Option<String>| {
        let mut r = client.post(format!("{base}/fleet/v1/heal")).json(&body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };

    let r = post(json!({"action": "restart-gateway"}), None)
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"].as_str().unwrap_or("").contains("fleet token"),
        "{body}"
    );
    let r = post(
        json!({"action": "restart-gateway"}),
        Some("Bearer nope".into()),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 401);

    let auth = Some(format!("Bearer {token}"));
    for (body, want) in [
        (json!({"action": "rm -rf /"}), "unknown action"),
        (
            json!({"action": "restart-pm2-app", "target": "web; reboot"}),
            "not a valid name",
        ),
        (json!({"action": "restart-pm2-app"}), "needs --target"),
        (json!({"action": "clean", "path": "/"}), "unknown field"),
        (
            json!({"action": "unload-model", "target": "../../etc"}),
            "not a valid name",
        ),
    ] {
        let r = post(body.clone(), auth.clone()).await.expect("send");
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.expect("json");
        assert!(
            e["error"].as_str().unwrap_or("").contains(want),
            "{body}: {e}"
        );
    }
    // A pm2 app this machine does not have.
    let r = post(
        json!({"action": "restart-pm2-app", "target": "other"}),
        auth.clone(),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 404);

    // A dry run, then the real thing (the configured command is `true`).
    let r = post(
        json!({"action": "restart-gateway", "dry_run": true}),
        auth.clone(),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    let o: Value = r.json().await.expect("json");
    assert_eq!(o["dry_run"], true);
    assert!(
        o["done"]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("would run: true"),
        "{o}"
    );
    let r = post(json!({"action": "restart-gateway"}), auth.clone())
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let o: Value = r.json().await.expect("json");
    assert_eq!(o["done"]["success"], true, "{o}");

    // The event log lists it, with who asked.
    let events: Vec<Value> = client
        .get(format!("{base}/fleet/v1/events?limit=50"))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let started = events
        .iter()
        .find(|e| e["kind"] == "action_started")
        .expect("action_started");
    assert!(
        started["requested_by"]
            .as_str()
            .unwrap_or("")
            .starts_with("api 127.0.0.1"),
        "{started}"
    );
    assert_eq!(started["action"], "restart-gateway");

    // Pause and resume need the token too.
    let r = client
        .post(format!("{base}/fleet/v1/heal/pause"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = client
        .post(format!("{base}/fleet/v1/heal/pause"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("send");
    let s: Value = r.json().await.expect("json");
    assert_eq!(s["paused"], true);
    assert_eq!(s["mode"], "suggest");

    // The mode: token, then only the three names.
    let mode = |body: &str, auth: Option<String>| {
        let mut r = client
            .post(format!("{base}/fleet/v1/heal/mode"))
            .body(body.to_owned());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    assert_eq!(
        mode(r#"{"mode": "off"}"#, None)
            .await
            .expect("send")
            .status(),
        401
    );
    let r = mode(r#"{"mode": "yolo"}"#, auth.clone())
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.expect("json");
    assert!(e["error"].as_str().unwrap_or("").contains("auto"), "{e}");
    let r = mode(r#"{"mode": "off"}"#, auth.clone())
        .await
        .expect("send");
    let s: Value = r.json().await.expect("json");
    assert_eq!(s["mode"], "off");
    assert_eq!(
        running.watcher.status().mode,
        clawfleet::config::HealMode::Off
    );
    let events = running.watcher.events().list(10, None).expect("events");
    assert!(
        events[0]
            .message
            .contains("set to off by api 127.0.0.1 (was suggest)"),
        "{events:#?}"
    );

    // What the dashboard's settings show: where the token is, never the token.
    let info = client
        .get(format!("{base}/fleet/v1/info"))
        .send()
        .await
        .expect("info")
        .text()
        .await
        .expect("text");
    let v: Value = serde_json::from_str(&info).expect("json");
    assert_eq!(v["this_machine"], "m");
    assert!(
        v["token_file"]
            .as_str()
            .unwrap_or("")
            .ends_with("fleet.token"),
        "{v}"
    );
    assert!(!info.contains(token), "the token is never served");

    // The sparklines' history: a point per system sample.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h: Value = client
            .get(format!("{base}/fleet/v1/history"))
            .send()
            .await
            .expect("history")
            .json()
            .await
            .expect("json");
        let points = h["machines"]["m"].as_array().cloned().unwrap_or_default();
        if points.len() >= 2 {
            let p = points[0].as_array().expect("a point is an array");
            assert_eq!(p.len(), 4, "{p:?}");
            assert!(p[0].as_i64().is_some_and(|t| t > 1_700_000_000));
            assert!(
                p[2].as_f64().is_some_and(|m| (0.0..=100.0).contains(&m)),
                "{p:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no history: {h}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    running.shutdown().await;
}

#[tokio::test]
async fn the_healer_has_a_local_model_summarise_the_day_through_the_proxy() {
    let dir = tempfile::tempdir().expect("tmp");
    let ollama = support::FakeOllama::start().await;
    ollama.set_model_names(&["summ:1b"]);
    ollama.set_reply(
        "<think>two restarts, both fine</think>\nOllama stopped answering once and was restarted; it has been fine since.",
    );
    let running = start(
        dir.path(),
        "healer_interval_secs = 1\nsummary_model = \"summ:1b\"",
        &format!("ollama_url = {:?}", ollama.url()),
    )
    .await;
    // Something to tell.
    running.watcher.set_paused(true, "the test");
    running.watcher.set_paused(false, "the test");
    let events = wait_for(&running, 45, |e| e.kind == Kind::Summary).await;
    let summary = events
        .iter()
        .find(|e| e.kind == Kind::Summary)
        .expect("summary");
    assert_eq!(
        summary.message, "Ollama stopped answering once and was restarted; it has been fine since.",
        "the reasoning block is dropped"
    );
    assert_eq!(summary.detail.as_ref().expect("detail")["model"], "summ:1b");
    // It went through the proxy to the fleet's Ollama, as a plain chat.
    let asked = ollama.last_request("/api/chat").expect("asked the model");
    let body: Value = serde_json::from_slice(&asked.body).expect("json");
    assert_eq!(body["model"], "summ:1b");
    assert_eq!(body["stream"], false);
    let prompt = body["messages"][1]["content"].as_str().expect("prompt");
    assert!(prompt.contains("self-healing paused"), "{prompt}");
    assert!(prompt.contains("Test machine"), "{prompt}");
    // Once a day: more Healer rounds, no second summary.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = running.watcher.events().list(1000, None).expect("events");
    assert_eq!(events.iter().filter(|e| e.kind == Kind::Summary).count(), 1);
    running.shutdown().await;
}
