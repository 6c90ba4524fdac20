#![allow(dead_code, unused_imports)]
//! Fakes and helpers shared by the integration tests: use `mod support;` from
//! a test file. Not every test uses every item, hence the `allow` above.
//!
//! - [`FakeOllama`]: a real HTTP server speaking Ollama's documented API
//!   (native and OpenAI-compatible), configurable at runtime, that can fail,
//!   stop and come back on the same port.
//! - [`HangingServer`]: accepts TCP connections and never writes a byte.
//! - [`GarbageServer`]: answers with raw, broken or surprising HTTP (or
//!   none), per path; [`GarbageServer::ollama`] a raw Ollama.
//! - [`fake_anthropic`]: Anthropic's Messages API, streamed and whole.
//! - [`TestConfig`]: the daemon's config for a test, from one base.
//! - [`clawfleet`], [`serve`]: the real `clawfleet` binary on a config;
//!   `serve` as a child process, with its proxy's address.
//! - [`until`], [`ollamas_up`]: wait until the daemon's snapshot shows
//!   something; [`eventually`] for any other fact.
//! - [`free_closed_port`], [`closed_url`]: where nothing listens
//!   (connection refused).
//! - [`http`]: a raw HTTP/1.1 GET with exactly the headers given.
//! - `openclaw` (Unix): the real, pinned OpenClaw (`cargo xtask deps`
//!   installs it): [`OpenClawHome`], [`Gateway`], [`openclaw`],
//!   [`agent_turn_local`]; see that module's documentation.
//!
//! Everything binds 127.0.0.1 only and stops when dropped.

mod anthropic;
pub mod config;
mod fake_ollama;
pub mod http;
#[cfg(unix)]
mod openclaw;
mod raw;
pub mod socks;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawfleet::daemon::Running;
use clawfleet::snapshot::Snapshot;

pub use anthropic::{ANTHROPIC_TEST_BEARER, ANTHROPIC_TEST_KEY, fake_anthropic};
pub use config::{TestConfig, Toml};
pub use fake_ollama::{
    DOC_PS_JSON, DOC_TAGS_JSON, DOC_VERSION_JSON, FakeLoaded, FakeModel, FakeOllama, FakeUsage,
    Recorded, StreamFault,
};
#[cfg(unix)]
pub use openclaw::{
    CLI_LIMIT, GATEWAY_READY_LIMIT, GATEWAY_TOKEN, Gateway, OFFLINE_ENV, OPENCLAW_DIR_ENV,
    OPENCLAW_VERSION, OpenClawHome, OpenClawInstall, STOP_GRACE, TURN_LIMIT, agent_turn_local,
    agent_turn_via_gateway, assistant_events, gateway_config, install, openclaw,
    openclaw_with_limit, stdout_json, tail, without_catalog_refresh,
};
pub use raw::{Garbage, GarbageServer, HangingServer, SERVER_ERROR_MESSAGE};

/// A port on 127.0.0.1 where nothing listens: bound to port 0, then released.
/// Connecting to it is refused (unless another process grabs it meanwhile,
/// which the OS makes unlikely by not reusing ephemeral ports at once).
pub fn free_closed_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// `http://127.0.0.1:PORT` for a [`free_closed_port`]: an Ollama that is
/// down.
pub fn closed_url() -> String {
    format!("http://127.0.0.1:{}", free_closed_port())
}

/// The engine's shared HTTP client, as the daemon builds it.
pub fn client() -> reqwest::Client {
    clawfleet::net::client().expect("build the shared HTTP client")
}

/// A short time limit for probes against servers that never answer: long
/// enough for a loaded CI machine to connect over loopback, short enough to
/// keep the suite fast.
pub const SHORT_TIMEOUT: Duration = Duration::from_millis(400);

/// An upper bound for anything that must "return within the timeout": the
/// timeout plus a generous margin. Used with `tokio::time::timeout` so a hung
/// probe fails the test instead of hanging it (never to assert speed).
pub fn deadline(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(10)
}

/// Waits (up to 10 s, checking every 10 ms) until `condition` holds; returns
/// whether it did. For facts another task establishes a moment later (a
/// server task counting an accepted connection), never to measure speed.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// Reads `read()` every 100 ms, up to `secs`, until `done` accepts what it
/// read, and returns that; panics with `what` and the last reading
/// otherwise. For facts another task or process establishes a moment
/// later (an event logged, a record stored, the API showing a change),
/// never to measure speed.
pub async fn poll<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    secs: u64,
    what: &str,
    mut read: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out ({secs} s) waiting for {what}; last seen: {value:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`poll`] from a plain thread (a `#[test]` driving child processes):
/// `read()` every `every`, up to `secs`.
pub fn poll_blocking<T: std::fmt::Debug>(
    secs: u64,
    every: Duration,
    what: &str,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let value = read();
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out ({secs} s) waiting for {what}; last seen: {value:#?}"
        );
        std::thread::sleep(every);
    }
}

/// The ledger's records in `data_dir`, newest first, once at least `n` are
/// there (a bounded wait: the daemon holds the ledger, and stores a
/// record a moment after a response ends).
pub async fn ledger_records(data_dir: &Path, n: usize) -> Vec<clawfleet::ledger::Record> {
    let file = data_dir.join(clawfleet::daemon::LEDGER_FILE);
    poll(
        10,
        &format!("{n} ledger records"),
        || async { clawfleet::ledger::read_recent(&file, 100).expect("read the ledger") },
        |recent| recent.len() >= n,
    )
    .await
}

/// The real `clawfleet` binary with `--config config`: add the command
/// and its arguments.
pub fn clawfleet(config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clawfleet"));
    cmd.arg("--config").arg(config);
    cmd
}

/// Starts `cmd` — [`clawfleet`] on a config, with whatever environment
/// and stderr the caller gave it — as `serve` (its stdout read here) and
/// returns it, killed when dropped, with its proxy's URL, read from the
/// second line it prints.
pub async fn serve(mut cmd: std::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    cmd.arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("start clawfleet serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut read = Vec::new();
    while read.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("clawfleet prints its addresses")
            .expect("read clawfleet's stdout")
            .unwrap_or_else(|| panic!("clawfleet closed stdout after {read:?}"));
        read.push(line);
    }
    assert!(
        read[0].starts_with("clawfleet: fleet API on http://"),
        "{read:?}"
    );
    let proxy = read[1]
        .strip_prefix("clawfleet: inference proxy on ")
        .unwrap_or_else(|| panic!("second line names the proxy: {read:?}"))
        .trim()
        .to_owned();
    (child, proxy)
}

/// Waits (up to `secs`) until `check` holds on `running`'s snapshot and
/// returns that snapshot; panics with `what` and what each machine looked
/// like otherwise. For facts the probes establish a moment later, never to
/// measure speed.
pub async fn until(
    running: &Running,
    secs: u64,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let mut rx = running.snapshot.clone();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let snap = rx.borrow_and_update().clone();
        if check(&snap) {
            return snap;
        }
        if Instant::now() > deadline {
            let machines: Vec<String> = snap
                .machines
                .iter()
                .map(|m| {
                    format!(
                        "{}: online {}, ollama {:?}, peer {:?}",
                        m.id,
                        m.online,
                        m.ollama.as_ref().map(|o| (o.reachable, &o.error)),
                        m.peer.as_ref().map(|p| (p.state, &p.error)),
                    )
                })
                .collect();
            panic!("timed out ({secs} s) waiting for {what}; the machines: {machines:#?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
    }
}

/// Waits (up to 30 s) until the health poll has seen `n` Ollamas answer.
pub async fn ollamas_up(running: &Running, n: usize) {
    until(running, 30, &format!("{n} Ollama(s) seen up"), |s| {
        s.machines
            .iter()
            .filter(|m| m.ollama.as_ref().is_some_and(|o| o.reachable))
            .count()
            >= n
    })
    .await;
}

/// Runs `cmd` with `stdin` as its standard input and its output captured
/// (how the CLI takes secrets: never from argv).
pub fn output_with_stdin(cmd: &mut std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write its stdin");
    child.wait_with_output().expect("its output")
}
