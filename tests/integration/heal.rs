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
use clawfleet::daemon;
use clawfleet::events::{Event, Kind};
use clawfleet::heal::clean::{self, CleanSpec};
use serde_json::{Value, json};
use support::{Garbage, GarbageServer, TestConfig};

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

/// The config of machine `m` with everything in `dir`: probes and the
/// watcher each second, costs from the ledger only. The machine itself
/// ("Test machine") is added by each test.
fn config(dir: &Path) -> TestConfig {
    TestConfig::new("m", &dir.join("data"))
        .set("probes", "system_interval_secs", 1)
        .set("probes", "processes_interval_secs", 1)
        .set("probes", "services_interval_secs", 60)
        .set("probes", "timeout_ms", 500)
        .set("costs", "read_transcripts", false)
        .set("heal", "interval_secs", 1)
        .set("heal", "verify_secs", 15)
}

/// Waits until the event log holds an event matching `pred`.
async fn wait_for(
    running: &daemon::Running,
    secs: u64,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    support::poll(
        secs,
        "such an event in the log",
        || async { running.watcher.events().list(1000, None).expect("events") },
        |events| events.iter().any(&pred),
    )
    .await
}

#[tokio::test]
async fn a_stand_in_ollama_is_restarted_by_its_configured_command_and_seen_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = support::free_closed_port();
    let pidfile = dir.path().join("ollama.pid");
    let running = config(dir.path())
        .set("heal", "ollama_down_probes", 2)
        .heal_command(
            "restart-ollama",
            &[
                "python3",
                &fixture("stand_in_ollama.py").to_string_lossy(),
                &port.to_string(),
                &pidfile.to_string_lossy(),
            ],
        )
        .ollama_machine("m", "Test machine", &format!("http://127.0.0.1:{port}"))
        .start()
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
    let hang_up = GarbageServer::start(Garbage::HangUp).await;
    let running = config(dir.path())
        .set("heal", "ollama_down_probes", 1)
        .set("heal", "cooldown_secs", 1)
        .set("heal", "backoff_max_secs", 2)
        .set("heal", "max_attempts", 3)
        .heal_command(
            "restart-ollama",
            &[
                "python3",
                "-c",
                "import sys; sys.exit('cannot restart: no such service')",
            ],
        )
        .ollama_machine("m", "Test machine", &hang_up.url())
        .start()
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
    let child: u32 = support::poll_blocking(
        10,
        Duration::from_millis(50),
        "the zombie parent to start",
        || {
            std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|text| text.split_whitespace().nth(1).and_then(|c| c.parse().ok()))
        },
        Option::is_some,
    )
    .expect("its child's pid");
    let state = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()))
            .flatten()
    };
    // The child has written its pid; it exits a moment later.
    support::poll_blocking(
        10,
        Duration::from_millis(20),
        "a zombie to begin with",
        || state(child),
        |s| *s == Some('Z'),
    );

    let running = config(dir.path())
        .set("heal", "zombie_cycles", 1)
        .machine("m", "Test machine", "")
        .start()
        .await;
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
    let running = config(dir.path())
        .set("heal", "mode", "suggest")
        .heal_command("restart-gateway", &["true"])
        .machine("m", "Test machine", "pm2_apps = [\"web\"]")
        .start()
        .await;
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
    let h = support::poll(
        20,
        "two points of history",
        || async {
            client
                .get(format!("{base}/fleet/v1/history"))
                .send()
                .await
                .expect("history")
                .json::<Value>()
                .await
                .expect("json")
        },
        |h| h["machines"]["m"].as_array().is_some_and(|p| p.len() >= 2),
    )
    .await;
    let p = h["machines"]["m"][0]
        .as_array()
        .expect("a point is an array");
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(p[0].as_i64().is_some_and(|t| t > 1_700_000_000));
    assert!(
        p[2].as_f64().is_some_and(|m| (0.0..=100.0).contains(&m)),
        "{p:?}"
    );
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
    let running = config(dir.path())
        .set("heal", "healer_interval_secs", 1)
        .set("heal", "summary_model", "summ:1b")
        .ollama_machine("m", "Test machine", &ollama.url())
        .start()
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
