//! The real `clawfleet` binary as a child process: `serve` on an OS-chosen
//! port, `status` from the daemon and without one, clean shutdown on SIGTERM
//! and SIGINT even with a live stream open.

#![cfg(unix)]

use crate::support::{self, TestConfig, clawfleet, http};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for a machine `test` whose services are one open port (held by
/// `open`) and one closed port, with Ollama on a closed port.
fn write_config(dir: &Path, open: &TcpListener, closed_port: u16) -> PathBuf {
    let open_port = open.local_addr().unwrap().port();
    TestConfig::new("test", &dir.join("data"))
        .set("probes", "system_interval_secs", 1)
        .set("probes", "processes_interval_secs", 1)
        .set("probes", "services_interval_secs", 1)
        .set("probes", "timeout_ms", 500)
        .machine(
            "test",
            "Test Box",
            &format!(
                r#"role = "ci"
                ollama_url = "http://127.0.0.1:{closed_port}"
                services = [ {{ name = "open one", port = {open_port} }}, {{ name = "closed one", port = {closed_port} }} ]"#
            ),
        )
        .write(&dir.join("config.toml"))
}

fn serve(config: &Path) -> Daemon {
    let mut child = clawfleet(config)
        .arg("serve")
        .env("CLAWFLEET_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start clawfleet serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("clawfleet: fleet API on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Daemon { child, addr }
}

/// `GET path` on the daemon's API, raw, so the test controls every header.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = http::get_blocking(addr, path, &[("Host", "localhost")]).expect("GET");
    (answer.status, answer.body)
}

/// Waits for the child to exit, failing the test if it never does (a hung
/// shutdown), without asserting how fast.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    support::poll_blocking(
        30,
        Duration::from_millis(50),
        "the daemon to exit after the signal",
        || child.try_wait().unwrap(),
        Option::is_some,
    )
    .expect("exited")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls until `check` accepts the snapshot JSON (probes run every second).
fn wait_for_snapshot(
    addr: SocketAddr,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    support::poll_blocking(
        30,
        Duration::from_millis(200),
        "the snapshot to match",
        || {
            let (status, body) = get(addr, "/fleet/v1/snapshot");
            assert_eq!(status, 200);
            serde_json::from_str(&body).unwrap()
        },
        check,
    )
}

#[test]
fn serve_publishes_health_and_status_reads_it_from_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(dir.path(), &open, support::free_closed_port());
    let mut daemon = serve(&config);

    let snap = wait_for_snapshot(daemon.addr, |s| {
        let m = &s["machines"][0];
        m["services"].as_array().is_some_and(|v| v.len() == 2)
            && m["memory"]["total_bytes"].as_u64().is_some_and(|t| t > 0)
            && m["ollama"]["checked_at"].is_string()
    });
    let m = &snap["machines"][0];
    assert_eq!(snap["this_machine"], "test");
    assert_eq!(m["name"], "Test Box");
    assert_eq!(m["online"], true);
    assert_eq!(m["services"][0]["name"], "open one");
    assert_eq!(m["services"][0]["up"], true);
    assert_eq!(m["services"][1]["up"], false);
    assert_eq!(m["ollama"]["reachable"], false);
    assert!(m["ollama"]["error"].is_string(), "{m:#}");
    assert_eq!(m["openclaw"]["config_found"], false);

    // The runtime file lets `status` find a daemon on an OS-chosen port.
    let runtime = dir.path().join("data/daemon.json");
    assert!(runtime.exists());
    let out = clawfleet(&config).arg("status").output().unwrap();
    assert!(out.status.success());
    let table = text(&out);
    assert!(
        table.contains(&format!("from the daemon at {}", daemon.addr)),
        "{table}"
    );
    assert!(table.contains("Test Box *"), "{table}");
    assert!(table.contains("open one"), "{table}");
    assert!(table.contains("DOWN"), "{table}");
    // The proxy's line appears once its figures were published.
    let is_proxy = |l: &&str| l.starts_with("PROXY  127.0.0.1:");
    let table = support::poll_blocking(
        20,
        Duration::from_millis(300),
        "a PROXY line in `status`",
        || text(&clawfleet(&config).arg("status").output().unwrap()),
        |table| table.lines().any(|l| is_proxy(&l)),
    );
    let line = table.lines().find(is_proxy).expect("the PROXY line");
    assert!(line.contains("0 requests in the last 15 min"), "{line}");

    let out = clawfleet(&config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["this_machine"], "test");
    assert_eq!(json["started_at"], snap["started_at"], "same daemon");

    signal(&daemon.child, "-TERM");
    let st = wait_exit(&mut daemon.child);
    assert!(st.success(), "exit status {st}");
    assert!(!runtime.exists(), "runtime file removed on clean shutdown");
}

#[test]
fn status_without_a_daemon_probes_once() {
    let dir = tempfile::tempdir().unwrap();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(dir.path(), &open, support::free_closed_port());
    let out = clawfleet(&config).arg("status").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = text(&out);
    assert!(
        table.contains("no daemon running: probed just now"),
        "{table}"
    );
    assert!(table.contains("Test Box *"), "{table}");
    let open_line = table.lines().find(|l| l.starts_with("open one")).unwrap();
    assert!(open_line.contains(" up "), "{open_line}");
    let closed_line = table.lines().find(|l| l.starts_with("closed one")).unwrap();
    assert!(closed_line.contains("DOWN"), "{closed_line}");
    assert!(table.contains("OPENCLAW  no config at"), "{table}");

    let out = clawfleet(&config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &json["machines"][0];
    assert!(m["cpu_percent"].is_number());
    assert!(m["memory"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(m["process_count"].as_u64().unwrap() > 0);
}

#[test]
fn sigint_with_an_open_stream_still_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(dir.path(), &open, support::free_closed_port());
    let mut daemon = serve(&config);

    let mut stream = TcpStream::connect(daemon.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /fleet/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    reader.read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Read until the first event arrives.
    let mut line = String::new();
    while !line.starts_with("event: snapshot") {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
    }

    signal(&daemon.child, "-INT");
    let st = wait_exit(&mut daemon.child);
    assert!(st.success(), "exit status {st}");
    // The server ended the stream (chunked terminator, then EOF).
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(
        rest.contains("0\r\n\r\n") || rest.is_empty() || rest.ends_with("\r\n"),
        "{rest:?}"
    );
}

#[test]
fn a_second_daemon_on_the_same_port_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = TestConfig::one_machine(&dir.path().join("d"), &support::closed_url())
        .set("api", "listen", format!("127.0.0.1:{port}"))
        .write(&dir.path().join("c.toml"));
    let out = clawfleet(&config).arg("serve").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("[api] listen"), "{err}");
}

#[test]
fn a_bad_config_stops_serve_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[api]\nlisten = 11436\n").unwrap();
    let out = clawfleet(&config).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:10: api.listen:", config.display())),
        "{err}"
    );
}

#[test]
fn help_is_everywhere() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["status", "--help"],
        vec!["config", "--help"],
        vec!["config", "init", "--help"],
        vec!["config", "check", "--help"],
        vec!["config", "path", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_clawfleet"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out).contains("Usage: clawfleet"), "{args:?}");
    }
}
