#![allow(dead_code, unused_imports)]
//! Fakes and helpers shared by the integration tests: use `mod support;` from
//! a test file. Not every test uses every item, hence the `allow` above.
//!
//! - [`FakeOllama`]: a real HTTP server speaking Ollama's documented API
//!   (native and OpenAI-compatible), configurable at runtime, that can fail,
//!   stop and come back on the same port.
//! - [`HangingServer`]: accepts TCP connections and never writes a byte.
//! - [`GarbageServer`]: answers with raw, broken or surprising HTTP.
//! - [`fake_anthropic`]: Anthropic's Messages API, streamed and whole.
//! - [`one_machine_config`], [`serve`]: the real `clawfleet serve` as a
//!   child process on a one-machine config, with its proxy's address.
//! - [`free_closed_port`]: a port where nothing listens (connection refused).
//! - `openclaw` (Unix): the real, pinned OpenClaw (`cargo xtask deps`
//!   installs it): [`OpenClawHome`], [`Gateway`], [`openclaw`],
//!   [`agent_turn_local`]; see that module's documentation.
//!
//! Everything binds 127.0.0.1 only and stops when dropped.

mod anthropic;
mod fake_ollama;
#[cfg(unix)]
mod openclaw;
mod raw;
pub mod socks;

use std::time::Duration;

pub use anthropic::{ANTHROPIC_TEST_BEARER, ANTHROPIC_TEST_KEY, fake_anthropic};
pub use fake_ollama::{
    DOC_PS_JSON, DOC_TAGS_JSON, DOC_VERSION_JSON, FakeLoaded, FakeModel, FakeOllama, FakeUsage,
    Recorded, StreamFault,
};
#[cfg(unix)]
pub use openclaw::{
    CLI_LIMIT, GATEWAY_READY_LIMIT, GATEWAY_TOKEN, Gateway, OFFLINE_ENV, OPENCLAW_DIR_ENV,
    OPENCLAW_VERSION, OpenClawHome, OpenClawInstall, STOP_GRACE, TURN_LIMIT, agent_turn_local,
    agent_turn_via_gateway, assistant_events, gateway_config, http_get_status, install, openclaw,
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

/// The ledger's records in `data_dir`, newest first, once at least `n` are
/// there (a bounded wait: the daemon holds the ledger, and stores what its
/// journal holds a moment after a response ends).
pub async fn ledger_records(
    data_dir: &std::path::Path,
    n: usize,
) -> Vec<clawfleet::ledger::Record> {
    let file = data_dir.join(clawfleet::daemon::LEDGER_FILE);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let recent = clawfleet::ledger::read_recent(&file, 100).expect("read the ledger");
        if recent.len() >= n {
            return recent;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ledger has {} of {n} records",
            recent.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A config of one machine, `local`, whose Ollama is `ollama`: both
/// listeners on port 0 of loopback, Ollama polled every second, pm2 and
/// Clawdbot as good as off; `proxy_extra` goes under `[proxy]`.
pub fn one_machine_config(data: &std::path::Path, ollama: &str, proxy_extra: &str) -> String {
    format!(
        r#"this_machine = "local"
data_dir = {data:?}
[api]
listen = "127.0.0.1:0"
[proxy]
listen = "127.0.0.1:0"
{proxy_extra}
[probes]
ollama_interval_secs = 1
timeout_ms = 1000
pm2_interval_secs = 3600
openclaw_interval_secs = 3600
[clawdbot]
config_path = {none:?}
[[machines]]
id = "local"
name = "Local"
ollama_url = "{ollama}"
"#,
        none = data.join("none.json"),
    )
}

/// Starts `cmd` (the `clawfleet` binary with `--config PATH serve` and
/// whatever environment the caller gave it; stdout is taken here) and
/// returns it, killed when dropped, with its proxy's URL, read from the
/// second line it prints.
pub async fn serve(mut cmd: tokio::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
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
