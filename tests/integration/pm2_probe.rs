//! The pm2 probe: real recorded `pm2 jlist` output (tests/fixtures/pm2), and
//! `list_in` against fake `pm2` programs that answer, fail, print garbage or
//! hang, with a fake daemon (a listening `rpc.sock`) in a home of their own;
//! with no daemon there, the program is never run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clawfleet::probe::pm2::{self, Pm2Error, Pm2Home};
use clawfleet::snapshot::{Pm2App, Pm2State};
use jiff::Timestamp;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pm2")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture")
}

/// `ms` after the epoch.
fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("timestamp")
}

/// `web` was (re)started at this time in the three-app recordings.
const WEB_STARTED_MS: i64 = 1_795_488_466_718;

#[test]
fn three_apps_online_stopped_errored() {
    let apps = pm2::parse_jlist_at(
        &fixture("jlist-three-apps.json"),
        at(WEB_STARTED_MS + 90_500),
    )
    .unwrap();
    assert_eq!(
        apps,
        vec![
            Pm2App {
                name: "web".into(),
                pm_id: Some(0),
                status: "online".into(),
                restarts: 0,
                uptime_secs: Some(90),
                cpu_percent: Some(0.0),
                memory_bytes: Some(50_864_128),
                pid: Some(6630),
                expected: false,
            },
            Pm2App {
                name: "worker".into(),
                pm_id: Some(1),
                status: "stopped".into(),
                restarts: 0,
                uptime_secs: None,
                cpu_percent: Some(0.0),
                memory_bytes: Some(0),
                pid: None,
                expected: false,
            },
            Pm2App {
                name: "crasher".into(),
                pm_id: Some(3),
                status: "errored".into(),
                restarts: 2,
                uptime_secs: None,
                cpu_percent: Some(0.0),
                memory_bytes: Some(0),
                pid: None,
                expected: false,
            },
        ]
    );
}

#[test]
fn crash_loop_waiting_restart() {
    let apps =
        pm2::parse_jlist_at(&fixture("jlist-waiting-restart.json"), at(WEB_STARTED_MS)).unwrap();
    let summary: Vec<String> = apps
        .iter()
        .map(|a| {
            format!(
                "{} #{:?} {} restarts {} pid {:?}",
                a.name, a.pm_id, a.status, a.restarts, a.pid
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            "web #Some(0) online restarts 0 pid Some(6630)",
            "worker #Some(1) stopped restarts 0 pid None",
            "crasher #Some(2) waiting restart restarts 2 pid None",
        ]
    );
    assert_eq!(apps[0].cpu_percent, Some(0.3));
    assert_eq!(apps[0].memory_bytes, Some(50_208_768));
    assert_eq!(apps[0].uptime_secs, Some(0));
}

#[test]
fn empty_list() {
    assert_eq!(
        pm2::parse_jlist(&fixture("jlist-empty.json")).unwrap(),
        vec![]
    );
}

#[test]
fn first_run_banner_before_the_list() {
    let text = fixture("jlist-first-run-banner.txt");
    // The recording really has the banner: make sure the test means something.
    assert!(text.contains("Spawning PM2 daemon"));
    assert_eq!(pm2::parse_jlist(&text).unwrap(), vec![]);
}

#[test]
fn out_of_date_banner_before_the_list() {
    let text = fixture("jlist-outdated-banner.txt");
    assert!(text.contains(">>>> In-memory PM2 is out-of-date"));
    let apps = pm2::parse_jlist_at(&text, at(1_795_488_525_938 + 5_000)).unwrap();
    assert_eq!(
        apps,
        vec![Pm2App {
            name: "web".into(),
            pm_id: Some(0),
            status: "online".into(),
            restarts: 0,
            uptime_secs: Some(5),
            cpu_percent: Some(5.9),
            memory_bytes: Some(55_713_792),
            pid: Some(7299),
            expected: false,
        }]
    );
}

#[test]
fn notice_after_the_list() {
    // pm2 writes the list without a newline; its version notice is printed
    // asynchronously and can land after it.
    let mut text = fixture("jlist-three-apps.json");
    text.push_str("\n>>>> In-memory PM2 is out-of-date, do:\n>>>> $ pm2 update\n");
    assert_eq!(pm2::parse_jlist(&text).unwrap().len(), 3);
}

#[test]
fn garbage_is_an_error_with_a_preview() {
    let err = pm2::parse_jlist("[PM2][ERROR] Something\nnot json at all").unwrap_err();
    assert!(matches!(err, Pm2Error::NoJsonList { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "pm2 jlist printed no JSON list: [PM2][ERROR] Something not json at all"
    );
    // A list cut short is not a list.
    let cut = fixture("jlist-three-apps.json");
    assert!(pm2::parse_jlist(&cut[..cut.len() / 2]).is_err());
}

// Fake `pm2` programs: shell scripts.

#[cfg(unix)]
mod fake {
    use std::os::unix::net::UnixListener;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Writes an executable script. It is written by a child `sh`, not by this
    /// process: a file this process had open for writing could be inherited
    /// by a child another test forks at that moment, and running it would
    /// then fail with "text file busy".
    pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        let status = Command::new("sh")
            .args([
                "-c",
                "printf '%s\\n' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(format!("#!/bin/sh\n{body}"))
            .arg(&path)
            .status()
            .expect("sh");
        assert!(status.success());
        path
    }

    /// A pm2 home in `dir` whose daemon answers: something listens on its
    /// RPC socket (the kernel queues the connection; nothing need accept),
    /// and the pid file names a live process. The daemon runs for as long as
    /// the listener is kept.
    pub fn daemon(dir: &Path) -> (clawfleet::probe::pm2::Pm2Home, UnixListener) {
        let home = clawfleet::probe::pm2::Pm2Home::at(dir.join("pm2-home"));
        std::fs::create_dir_all(&home.dir).expect("home");
        let listener = UnixListener::bind(&home.rpc_socket).expect("rpc.sock");
        std::fs::write(&home.pid_file, std::process::id().to_string()).expect("pid");
        (home, listener)
    }

    /// Whether a process with this pid exists (zombies included).
    pub fn alive(pid: &str) -> bool {
        Command::new("kill")
            .args(["-0", pid])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(unix)]
#[tokio::test]
async fn list_in_prints_a_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    // Answers only to `jlist`, so the test also checks the argument.
    let pm2 = fake::script(
        dir.path(),
        "pm2",
        &format!(
            "[ \"$1\" = jlist ] || exit 3\nexec cat '{}'",
            fixture_path("jlist-outdated-banner.txt").display()
        ),
    );
    let expected = vec!["web".to_owned(), "aphos-server-prod".to_owned()];
    let (state, apps) = pm2::list_in(&home, &pm2, &expected, TIMEOUT).await;
    assert_eq!(state, Pm2State::Ok);
    let summary: Vec<(&str, &str, bool)> = apps
        .iter()
        .map(|a| (a.name.as_str(), a.status.as_str(), a.expected))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("web", "online", true),
            ("aphos-server-prod", "missing", true)
        ]
    );
    assert_eq!(apps[0].pid, Some(7299));
    assert!(apps[0].uptime_secs.is_some());
    assert_eq!(apps[1].pm_id, None);
    assert_eq!(apps[1].pid, None);
}

#[cfg(unix)]
#[tokio::test]
async fn list_in_unexpected_apps_are_not_expected() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    let pm2 = fake::script(
        dir.path(),
        "pm2",
        &format!(
            "exec cat '{}'",
            fixture_path("jlist-three-apps.json").display()
        ),
    );
    let (state, apps) = pm2::list_in(&home, &pm2, &["worker".to_owned()], TIMEOUT).await;
    assert_eq!(state, Pm2State::Ok);
    let expected: Vec<(&str, bool)> = apps.iter().map(|a| (a.name.as_str(), a.expected)).collect();
    assert_eq!(
        expected,
        vec![("web", false), ("worker", true), ("crasher", false)]
    );
}

#[cfg(unix)]
#[tokio::test]
async fn list_in_garbage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    let pm2 = fake::script(
        dir.path(),
        "pm2",
        "echo 'Segmentation fault (core dumped)'\necho '{broken'",
    );
    let (state, apps) = pm2::list_in(&home, &pm2, &["web".to_owned()], TIMEOUT).await;
    assert_eq!(
        state,
        Pm2State::Error {
            message: "pm2 jlist printed no JSON list: Segmentation fault (core dumped) {broken"
                .into()
        }
    );
    // The apps' state is unknown: none is reported, not even as missing.
    assert_eq!(apps, vec![]);
}

#[cfg(unix)]
#[tokio::test]
async fn list_in_failure_shows_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    let pm2 = fake::script(
        dir.path(),
        "pm2",
        "echo '[]'\necho '[PM2][ERROR] Daemon not launched' >&2\nexit 1",
    );
    let (state, apps) = pm2::list_in(&home, &pm2, &[], TIMEOUT).await;
    let Pm2State::Error { message } = state else {
        panic!("expected an error, got {state:?}");
    };
    assert_eq!(
        message,
        "pm2 jlist failed (exit status: 1): [PM2][ERROR] Daemon not launched"
    );
    assert_eq!(apps, vec![]);
}

#[cfg(unix)]
#[tokio::test]
async fn list_in_hang_times_out_and_kills_it() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    let pid_file = dir.path().join("pid");
    // Same pid as the script once it execs: that is the process to be killed.
    let pm2 = fake::script(
        dir.path(),
        "pm2",
        &format!("echo $$ > '{}'\nexec sleep 30", pid_file.display()),
    );
    let started = std::time::Instant::now();
    let (state, apps) = pm2::list_in(&home, &pm2, &[], Duration::from_millis(500)).await;
    let took = started.elapsed();
    assert_eq!(
        state,
        Pm2State::Error {
            message: "pm2 jlist did not finish within 500 ms and was stopped".into()
        }
    );
    assert_eq!(apps, vec![]);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.trim();
    assert!(!pid.is_empty());
    // Killed and reaped: not even a zombie is left.
    assert!(!fake::alive(pid), "pm2 {pid} still there");
}

#[cfg(unix)]
#[tokio::test]
async fn list_in_endless_output_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    let pm2 = fake::script(dir.path(), "pm2", "exec yes '[PM2] spam spam spam'");
    let (state, _) = pm2::list_in(&home, &pm2, &[], Duration::from_secs(20)).await;
    assert_eq!(
        state,
        Pm2State::Error {
            message: format!(
                "pm2 jlist printed more than {} bytes; stopped reading",
                pm2::MAX_OUTPUT_BYTES
            )
        }
    );
}

#[cfg(unix)]
#[tokio::test]
async fn list_in_not_executable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    let pm2 = dir.path().join("pm2");
    std::fs::write(&pm2, "not a program").unwrap();
    let (state, _) = pm2::list_in(&home, &pm2, &[], TIMEOUT).await;
    let Pm2State::Error { message } = state else {
        panic!("expected an error, got {state:?}");
    };
    assert!(
        message.starts_with(&format!("cannot run {}: ", pm2.display())),
        "{message}"
    );
}

#[tokio::test]
async fn list_in_missing_program_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let pm2 = dir.path().join("no-such-pm2");
    // No daemon either: not installed says more than not running.
    let home = Pm2Home::at(dir.path().join("pm2-home"));
    let (state, apps) = pm2::list_in(&home, &pm2, &["aphos-server-prod".to_owned()], TIMEOUT).await;
    assert_eq!(state, Pm2State::NotInstalled);
    // No pm2 means the expected app is not running: it is missing.
    assert_eq!(
        apps,
        vec![Pm2App {
            name: "aphos-server-prod".into(),
            status: "missing".into(),
            expected: true,
            ..Pm2App::default()
        }]
    );
    assert!(matches!(
        pm2::jlist(&pm2, TIMEOUT).await,
        Err(Pm2Error::NotInstalled { .. })
    ));
}

/// A daemon whose pm2 program is gone (uninstalled while it runs): starting
/// the program says it is not installed.
#[cfg(unix)]
#[tokio::test]
async fn list_in_missing_program_with_a_daemon_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _daemon) = fake::daemon(dir.path());
    let pm2 = dir.path().join("no-such-pm2");
    let (state, apps) = pm2::list_in(&home, &pm2, &["web".to_owned()], TIMEOUT).await;
    assert_eq!(state, Pm2State::NotInstalled);
    assert_eq!(apps.len(), 1);
}

/// A fake pm2 that leaves a mark when it runs, whatever it is asked.
#[cfg(unix)]
fn marking_pm2(dir: &Path) -> (PathBuf, PathBuf) {
    let mark = dir.join("pm2-ran");
    let pm2 = fake::script(
        dir,
        "pm2",
        &format!(
            "echo \"$@\" >> '{}'\nexec cat '{}'",
            mark.display(),
            fixture_path("jlist-three-apps.json").display()
        ),
    );
    (pm2, mark)
}

#[cfg(unix)]
#[tokio::test]
async fn no_daemon_is_not_running_and_pm2_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let (pm2, mark) = marking_pm2(dir.path());
    let home = Pm2Home::at(dir.path().join("pm2-home"));
    let (state, apps) = pm2::list_in(&home, &pm2, &["web".to_owned()], TIMEOUT).await;
    assert_eq!(
        state,
        Pm2State::NotRunning {
            pm2_home: Some(home.dir.display().to_string())
        }
    );
    // The expected app is listed, not running.
    assert_eq!(
        apps,
        vec![Pm2App {
            name: "web".into(),
            status: "missing".into(),
            expected: true,
            ..Pm2App::default()
        }]
    );
    assert!(!mark.exists(), "pm2 was run");
    assert!(!home.dir.exists(), "the pm2 home was created");
}

#[cfg(unix)]
#[tokio::test]
async fn a_daemon_killed_without_cleaning_up_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let (pm2, mark) = marking_pm2(dir.path());
    let (home, daemon) = fake::daemon(dir.path());
    // While it runs, pm2 is asked.
    let (state, apps) = pm2::list_in(&home, &pm2, &[], TIMEOUT).await;
    assert_eq!(state, Pm2State::Ok);
    assert_eq!(apps.len(), 3);
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "jlist\n");
    std::fs::remove_file(&mark).unwrap();
    // `kill -9`: its socket file and pid file stay; the pid is even in use
    // (by this test), as after a reboot.
    drop(daemon);
    assert!(home.rpc_socket.exists() && home.pid_file.exists());
    let (state, _) = pm2::list_in(&home, &pm2, &[], TIMEOUT).await;
    assert!(matches!(state, Pm2State::NotRunning { .. }), "{state:?}");
    assert!(!mark.exists(), "pm2 was run");
}
