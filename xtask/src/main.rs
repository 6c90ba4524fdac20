//! Project automation, run as `cargo xtask <command>`: the same set-up, test
//! and benchmark steps on every machine, without shell glue.
//!
//! - `cargo xtask run` — build and run the app on the embedded default config.
//! - `cargo xtask test` — install what the tests need, then fmt, clippy and
//!   every test. This is what CI runs.
//! - `cargo xtask deps` — only the installing: Debian packages, and the
//!   pinned Node 24 + OpenClaw of `tests/openclaw/` (skipped when already
//!   installed from the same lockfiles).
//! - `cargo xtask bench [--no-tray]` — the suite of what users feel: one
//!   table of failover, streaming, cold loads, memory, cost scans and the
//!   proxy's throughput, each against a baseline of the same run.
//! - `cargo xtask bench idle [--secs N]` — the idle daemon's memory and CPU.
//! - `cargo xtask bench heal` — the self-healing check cycle's CPU cost.
//! - `cargo xtask bench ledger` — the ledger's writer: sustained finished
//!   requests per second with 64 recorders, and `record().await` latency at
//!   200/s and 2,000/s.
//! - `cargo xtask bench tray` — the tray app's memory, CPU and start time.
//! - `cargo xtask bench fleet` — polling 20 peers: CPU and staleness.
//! - `cargo xtask check-windows` — clippy of the whole workspace for
//!   Windows (x86_64-pc-windows-gnu, with MinGW): the `cfg(windows)` code
//!   compiles and is lint-clean, though it cannot run here. Not part of
//!   `test`: it fetches a Rust target, which CI may not reach.

mod layers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["run", rest @ ..] => run(rest),
        ["test", rest @ ..] => test(rest),
        ["bench"] => bench_suite(true),
        ["bench", "--no-tray"] => bench_suite(false),
        ["bench", "idle", rest @ ..] => bench_idle(rest),
        ["bench", "proxy"] => bench_proxy(),
        ["bench", "transcripts"] => bench_transcripts(),
        ["bench", "heal"] => bench_heal(),
        ["bench", "ledger"] => bench_ledger(),
        ["bench", "tray"] => bench_tray(),
        ["bench", "fleet"] => bench_fleet(),
        ["deps"] => ensure_system_packages().and_then(|()| ensure_openclaw().map(drop)),
        ["check-windows"] => check_windows(),
        ["check-layers"] => check_layers(),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 run [ARGS]           build and run `clawfleet serve` (extra ARGS go to clawfleet)\n  \
                 test                 install test dependencies, then fmt, clippy and all tests\n  \
                 bench [--no-tray]    what users feel: failover, streaming, cold loads, memory, cost scans (one table)\n  \
                 bench idle [--secs N] idle daemon memory and CPU (default 60 s)\n  \
                 bench proxy          the inference proxy against direct, same run\n  \
                 bench transcripts    ingesting 1,000,000 JSONL lines and a 300 MB OpenClaw store, and a restart\n  \
                 bench heal           a self-healing check cycle with 500 processes and 10 services\n  \
                 bench ledger         the ledger's writer: 64 recorders awaiting commits, and record() latency at 200/s and 2,000/s\n  \
                 bench tray           the tray app: launch to tray icon, PSS with the popover closed and open, idle CPU\n  \
                 bench fleet          polling 20 peers (one hung) every 5 s: daemon CPU and staleness of the view\n  \
                 deps                 install the system packages the build and tests need, and the pinned OpenClaw (npm)\n  \
                 check-windows        clippy of the workspace for Windows (fetches the target and MinGW)\n  \
                 check-layers         the engine's modules depend only downwards, without a cycle"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

/// The checkout xtask was run from. `cargo run` (which `cargo xtask` is)
/// tells the program its package's folder at run time; the folder it was
/// compiled in is only the fallback, because a build shared between two
/// checkouts (one `target/`) may run a binary compiled in the other.
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(what: &str, cmd: &mut Command) -> Result {
    eprintln!("xtask: {what}");
    let st = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what}: failed ({st})"))
    }
}

/// Debian packages the build and the tests need: the engine needs only the
/// Rust toolchain; Chromium runs the browser tests of the dashboard;
/// microsocks is the real SOCKS5 server of `tests/integration/proxy_socks.rs`; the tray
/// app (`src-tauri/`) builds against WebKitGTK, AppIndicator, librsvg and
/// libxdo, and its tests run it under Xvfb on a private D-Bus session with
/// WebKitWebDriver, a notification server (dunst) and python3-gi for the
/// StatusNotifier watcher; `tests/integration/secret.rs` stores keys in GNOME Keyring's
/// Secret Service on a private session bus (dbus) and reads them back with
/// `secret-tool` (libsecret-tools); `openclaw gateway restart` finds a
/// foreground gateway with `lsof`.
const APT_PACKAGES: &[&str] = &[
    "chromium",
    "microsocks",
    "pkg-config",
    "file",
    "libwebkit2gtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libxdo-dev",
    "libssl-dev",
    "xvfb",
    "xauth",
    "webkit2gtk-driver",
    "dbus-x11",
    "at-spi2-core",
    "fonts-dejavu-core",
    "imagemagick",
    "x11-utils",
    "python3-gi",
    "gir1.2-glib-2.0",
    "dunst",
    "dbus",
    "gnome-keyring",
    "libsecret-tools",
    "lsof",
];

/// Installs missing Debian packages; does nothing (and needs no network) when
/// all are present, so it is cheap to run every time.
fn ensure_system_packages() -> Result {
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = |args: &[&str]| {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let mut c = if is_root {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg(args[0]);
            c
        };
        c.args(&args[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    status("apt-get update", &mut sudo(&["apt-get", "update", "-q"]))?;
    let mut args = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    status(
        &format!("installing {}", missing.join(" ")),
        &mut sudo(&args),
    )
}

/// The Cargo profile the tray app is built with to be run or measured
/// (`Cargo.toml`): release, made for size, which is what its memory is.
const DESKTOP_PROFILE: &str = "desktop";

/// The app: the tray app when there is a desktop to show it on; on a Linux
/// machine without one (no DISPLAY or WAYLAND_DISPLAY), the same engine
/// headless as `clawfleet serve`. `cargo xtask run serve|status|…` runs
/// the `clawfleet` command line instead.
fn run(rest: &[&str]) -> Result {
    ensure_system_packages()?;
    let headless = cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none();
    let mut cmd = cargo();
    if rest.is_empty() && !headless {
        cmd.args(["run", "--profile", DESKTOP_PROFILE, "-p", "clawfleet-tray"]);
        return status("running the tray app (clawfleet-tray)", &mut cmd);
    }
    if rest.is_empty() {
        eprintln!(
            "xtask: no desktop here (neither DISPLAY nor WAYLAND_DISPLAY is set): running the engine headless, `clawfleet serve`"
        );
    }
    cmd.args(["run", "--release", "--bin", "clawfleet", "--"]);
    if rest.is_empty() {
        cmd.arg("serve");
    } else {
        cmd.args(rest);
    }
    status("running clawfleet", &mut cmd)
}

/// Clippy for Windows over every target of the workspace, in its own
/// target folder. Needs the Rust target (rustup) and MinGW's C compiler for
/// the crates that build C (SQLite, ring).
fn check_windows() -> Result {
    const TARGET: &str = "x86_64-pc-windows-gnu";
    if cfg!(target_os = "linux") && !on_path("x86_64-w64-mingw32-gcc") {
        let mut apt = Command::new("apt-get");
        apt.args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "gcc-mingw-w64-x86-64",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive");
        status("installing MinGW (gcc-mingw-w64-x86-64)", &mut apt)?;
    }
    status(
        &format!("rustup target add {TARGET}"),
        Command::new("rustup").args(["target", "add", TARGET]),
    )?;
    status(
        &format!("cargo clippy --target {TARGET}"),
        cargo()
            .args(["clippy", "--workspace", "--all-targets", "--target", TARGET])
            .args(["--", "-D", "warnings"])
            .env(
                "CARGO_TARGET_DIR",
                root().join("target").join("windows-check"),
            ),
    )
}

/// The engine's layers hold: every dependency between its modules points
/// down or sideways, and none closes a cycle (`layers.rs`).
fn check_layers() -> Result {
    let problems = layers::check(&root().join("src"))?;
    if problems.is_empty() {
        eprintln!("xtask: the layers hold (no dependency up, no cycle); within a layer:");
        for line in layers::sideways(&root().join("src"))? {
            eprintln!("  {line}");
        }
        return Ok(());
    }
    for p in &problems {
        eprintln!("  {p}");
    }
    Err(format!(
        "{} layering problem{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    ))
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn test(rest: &[&str]) -> Result {
    ensure_system_packages()?;
    // Cheapest first: the engine's dependencies point down, with no cycle.
    check_layers()?;
    status(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    status(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The real pm2 that tests/heal_pm2.rs supervises an app with.
    npm_ci("npm ci (pm2 for the heal tests)", &root().join("tests/pm2"))?;
    // The real OpenClaw (and its Node 24) that tests/openclaw_e2e.rs runs.
    let openclaw = ensure_openclaw()?;
    let mut totals = Counts::default();
    let mut cargo_test = cargo();
    cargo_test.args(["test", "--workspace"]).args(rest);
    if let Some(dir) = openclaw {
        cargo_test.env(OPENCLAW_DIR_ENV, dir);
    }
    totals.add(counting("cargo test", &mut cargo_test)?);
    totals.add(browser_tests()?);
    totals.add(client_tests()?);
    totals.add(desktop_tests()?);
    // One closing line over both runners.
    println!("\n{} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

/// Tests passed and failed, as the runners report them.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    passed: u64,
    failed: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
    }

    /// Reads one line of runner output: cargo's `test result: ok. 5 passed;
    /// 0 failed; …` or node's TAP `# pass 4` / `# fail 0`.
    fn read_line(&mut self, line: &str) {
        let number = |s: &str| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let part = part
                    .trim()
                    .trim_start_matches("ok. ")
                    .trim_start_matches("FAILED. ");
                if let Some(n) = part.strip_suffix(" passed").and_then(number) {
                    self.passed += n;
                } else if let Some(n) = part.strip_suffix(" failed").and_then(number) {
                    self.failed += n;
                }
            }
        } else if let Some(n) = line.strip_prefix("# pass ").and_then(number) {
            self.passed += n;
        } else if let Some(n) = line.strip_prefix("# fail ").and_then(number) {
            self.failed += n;
        }
    }
}

/// Runs a test command, passing its output through as it comes, and counts
/// the results it reports. A process the tests left behind that still holds
/// the output open does not hang the run: once the command has exited, what
/// is left is read for at most a few seconds.
fn counting(what: &str, cmd: &mut Command) -> Result<Counts> {
    eprintln!("xtask: {what}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    let mut counts = Counts::default();
    let mut take = |line: String| {
        println!("{line}");
        counts.read_line(&line);
    };
    let st = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => take(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break child.wait().map_err(|e| format!("{what}: {e}"))?;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(st) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            let grace = Instant::now() + Duration::from_secs(5);
            while let Some(left) = grace.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(line) => take(line),
                    Err(_) => break,
                }
            }
            break st;
        }
    };
    if st.success() {
        Ok(counts)
    } else {
        Err(format!(
            "{what}: failed ({st}): {} passed, {} failed",
            counts.passed, counts.failed
        ))
    }
}

/// `npm ci` in `dir`: the exact versions of its package-lock.json.
fn npm_ci(what: &str, dir: &Path) -> Result {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    status(
        what,
        Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir),
    )
}

/// Where the pinned OpenClaw of the end-to-end tests lives:
/// `package.json` + `package-lock.json` (npm `openclaw`, exact version), and
/// `node/` with the same for the npm package `node` (Node 24, which
/// OpenClaw needs; the system's Node may be older).
const OPENCLAW_DIR: &str = "tests/openclaw";

/// Tells the tests (`tests/integration/support/openclaw.rs`) where [`OPENCLAW_DIR`] is.
const OPENCLAW_DIR_ENV: &str = "CLAWFLEET_OPENCLAW_DIR";

/// The file, inside a `node_modules/` that `npm ci` completed, that records
/// which lockfiles it was installed from.
const INSTALL_STAMP: &str = ".clawfleet-installed";

/// Installs the pinned Node 24 and OpenClaw of [`OPENCLAW_DIR`] unless they
/// are installed already from the same lockfiles; returns the folder. `npm
/// ci` deletes `node_modules/` and takes about 30 s each time, so an install
/// is skipped when its stamp (the lockfiles' sha256, written only after
/// `npm ci` succeeded and the program is there) still matches and the
/// program is there. Node goes first: OpenClaw's preinstall refuses an
/// older Node, so its `npm ci` runs with Node 24 first on `PATH`.
/// Unix only (the end-to-end tests drive process groups); elsewhere it
/// says so and returns `None`.
fn ensure_openclaw() -> Result<Option<PathBuf>> {
    if !cfg!(unix) {
        eprintln!("xtask: the OpenClaw end-to-end tests run on Unix only; OpenClaw not installed");
        return Ok(None);
    }
    let dir = root().join(OPENCLAW_DIR);
    let node_dir = dir.join("node");
    let bin_dir = node_dir.join("node_modules/.bin");
    let node = bin_dir.join("node");
    let node_lock = lock_hash(&node_dir)?;
    let node_stamp = format!("node-lock-sha256 {node_lock}\n");
    // The binary must also run: a stamp outlives a node_modules/ that lost
    // the platform package the binary lives in.
    let node_runs = || {
        Command::new(&node)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if stamp_matches(&node_dir, &node_stamp) && node_runs() {
        eprintln!(
            "xtask: Node 24 for OpenClaw already installed ({OPENCLAW_DIR}/node, lock sha256 {node_lock:.12})"
        );
    } else {
        install_pinned(
            "npm ci (Node 24 for the OpenClaw tests)",
            &node_dir,
            None,
            &node,
            &node_stamp,
        )?;
        if !node_runs() {
            clear_stamp(&node_dir)?;
            return Err(format!("{} does not run after npm ci", node.display()));
        }
    }

    let openclaw_lock = lock_hash(&dir)?;
    // OpenClaw's install depends on the Node it ran under (native addons).
    let stamp = format!("openclaw-lock-sha256 {openclaw_lock}\nnode-lock-sha256 {node_lock}\n");
    let entry = dir.join("node_modules/openclaw/openclaw.mjs");
    if stamp_matches(&dir, &stamp) && entry.is_file() {
        eprintln!(
            "xtask: OpenClaw already installed ({OPENCLAW_DIR}, lock sha256 {openclaw_lock:.12})"
        );
    } else {
        install_pinned(
            "npm ci (OpenClaw, with Node 24 first on PATH)",
            &dir,
            Some(&bin_dir),
            &entry,
            &stamp,
        )?;
    }
    eprintln!("xtask: {OPENCLAW_DIR_ENV}={}", dir.display());
    Ok(Some(dir))
}

/// `npm ci` in `dir` (with `path_first` ahead of `PATH`), then the stamp,
/// once `npm ci` succeeded and `product` exists. The old stamp is removed
/// first, so an install that fails or is interrupted leaves none.
fn install_pinned(
    what: &str,
    dir: &Path,
    path_first: Option<&Path>,
    product: &Path,
    stamp: &str,
) -> Result {
    clear_stamp(dir)?;
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let mut cmd = Command::new(npm);
    cmd.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir);
    if let Some(first) = path_first {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(first.to_path_buf()).chain(std::env::split_paths(&rest)),
        )
        .map_err(|e| format!("{what}: cannot put {} on PATH: {e}", first.display()))?;
        cmd.env("PATH", path);
    }
    let started = Instant::now();
    status(what, &mut cmd)?;
    if !product.is_file() {
        return Err(format!(
            "{what}: npm ci succeeded but {} is missing",
            product.display()
        ));
    }
    let stamp_path = dir.join("node_modules").join(INSTALL_STAMP);
    let tmp = stamp_path.with_extension("tmp");
    std::fs::write(&tmp, stamp)
        .and_then(|()| std::fs::rename(&tmp, &stamp_path))
        .map_err(|e| format!("{what}: cannot write {}: {e}", stamp_path.display()))?;
    eprintln!(
        "xtask: {what}: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether `dir/node_modules` has a stamp that says exactly `stamp`.
fn stamp_matches(dir: &Path, stamp: &str) -> bool {
    std::fs::read_to_string(dir.join("node_modules").join(INSTALL_STAMP)).is_ok_and(|s| s == stamp)
}

fn clear_stamp(dir: &Path) -> Result {
    let path = dir.join("node_modules").join(INSTALL_STAMP);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The sha256 of `dir/package-lock.json`, in hex.
fn lock_hash(dir: &Path) -> Result<String> {
    use sha2::Digest;
    let path = dir.join("package-lock.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The status page in headless Chromium (Playwright's core library driving
/// Debian's Chromium: nothing is downloaded at run time), against the debug
/// binary `cargo test` just built.
fn browser_tests() -> Result<Counts> {
    let dir = root().join("tests/browser");
    npm_ci("npm ci (browser tests)", &dir)?;
    counting(
        "browser tests (node --test)",
        Command::new("node")
            .args(["--test", "--test-reporter=tap"])
            .current_dir(&dir)
            .env("CLAWFLEET_BIN", clawfleet_bin()),
    )
}

/// The inference proxy driven by the official OpenAI (6.x, as Clawdbot uses
/// it) and Ollama JavaScript clients, against the debug binary `cargo test`
/// just built.
fn client_tests() -> Result<Counts> {
    let dir = root().join("tests/clients");
    npm_ci("npm ci (client tests)", &dir)?;
    counting(
        "client tests (node --test)",
        Command::new("node")
            .args(["--test", "--test-reporter=tap"])
            .current_dir(&dir)
            .env("CLAWFLEET_BIN", clawfleet_bin()),
    )
}

/// The tray app for real (`tests/desktop/desktop_test.py`): under Xvfb on a
/// private D-Bus session, its tray over StatusNotifierItem/dbusmenu, a
/// notification reaching dunst, and the popover driven through tauri-driver
/// and WebKitWebDriver. Linux only.
fn desktop_tests() -> Result<Counts> {
    if !cfg!(target_os = "linux") {
        eprintln!("xtask: desktop tests run on Linux only (Xvfb, D-Bus); skipped");
        return Ok(Counts::default());
    }
    status(
        "building the tray app",
        cargo().args(["build", "-p", "clawfleet-tray"]),
    )?;
    ensure_tauri_driver()?;
    counting(
        "desktop tests (Xvfb, D-Bus, WebKitWebDriver)",
        desktop_python("tests/desktop/desktop_test.py").env(
            "CLAWFLEET_TRAY_BIN",
            root().join("target/debug/clawfleet-tray"),
        ),
    )
}

/// A script of `tests/desktop/` run by Debian's python3 (which has
/// python3-gi) under Xvfb on a private D-Bus session.
fn desktop_python(script: &str) -> Command {
    let mut c = Command::new("xvfb-run");
    c.args([
        "-a",
        "-s",
        "-screen 0 1280x800x24",
        "dbus-run-session",
        "--",
        "/usr/bin/python3",
    ])
    .arg(root().join(script));
    c
}

/// The version of tauri-driver the desktop tests are run with.
const TAURI_DRIVER: &str = "2.1.0";

/// Installs tauri-driver from crates.io unless that version is there.
fn ensure_tauri_driver() -> Result {
    let installed = Command::new("cargo")
        .args(["install", "--list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if installed.contains(&format!("tauri-driver v{TAURI_DRIVER}:")) {
        return Ok(());
    }
    status(
        "installing tauri-driver",
        Command::new("cargo").args([
            "install",
            "tauri-driver",
            "--locked",
            "--version",
            TAURI_DRIVER,
        ]),
    )
}

/// The debug binary `cargo test` builds.
fn clawfleet_bin() -> PathBuf {
    let exe = if cfg!(windows) {
        "clawfleet.exe"
    } else {
        "clawfleet"
    };
    root().join("target/debug").join(exe)
}

/// A home with an OpenClaw 2026.9 install for the idle benchmark:
/// `~/.openclaw/openclaw.json` and the main agent's database, made with
/// OpenClaw's own schema (`tests/fixtures/openclaw/agent-schema.sql`) by
/// Python's sqlite3, holding 200 sessions with a finished run each.
fn openclaw_home(home: &Path) -> Result {
    let state = home.join(".openclaw");
    let db = state.join("agents/main/agent/openclaw-agent.sqlite");
    std::fs::create_dir_all(db.parent().unwrap_or(&state)).map_err(|e| e.to_string())?;
    std::fs::write(
        state.join("openclaw.json"),
        r#"{"gateway": {"mode": "local", "port": 1, "auth": {"token": "bench"}},
  "agents": {"defaults": {"model": {"primary": "ollama/qwen3:8b"}}},
  "models": {"providers": {"ollama": {"baseUrl": "http://127.0.0.1:11434", "api": "ollama", "models": [{"id": "qwen3:8b", "name": "qwen3:8b"}]}}}}"#,
    )
    .map_err(|e| e.to_string())?;
    let script = r#"
import sqlite3, sys, json
db, ddl = sys.argv[1], open(sys.argv[2]).read()
# Python's SQLite may predate octet_length (3.43); the bytes of these TEXT
# columns are ASCII in this bench.
ddl = ddl.replace("octet_length(", "length(")
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
c.executescript(ddl)
for i in range(200):
    sid = "s%04d" % i
    c.execute("INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, status) VALUES (?, ?, '{}', ?, 'done')", ("agent:main:s%d" % i, sid, 1796687000000 + i))
    c.execute("INSERT INTO session_windows (session_id, session_key, created_at, updated_at) VALUES (?, ?, 0, 0)", (sid, "agent:main:s%d" % i))
    for seq, kind in enumerate(["session.started", "prompt.submitted", "model.completed", "session.ended"]):
        ev = json.dumps({"type": kind, "provider": "ollama", "modelId": "qwen3:8b", "data": {"systemPrompt": "x" * 2000}})
        c.execute("INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES (?, ?, ?, ?, ?)", (sid, seq, "r" + sid, ev, 1796687000000 + i))
c.execute("PRAGMA user_version = 23")
c.commit()
"#;
    status(
        "a bench OpenClaw agent database (python3 sqlite3)",
        Command::new("python3")
            .args(["-c", script])
            .arg(&db)
            .arg(root().join("tests/fixtures/openclaw/agent-schema.sql")),
    )
}

/// Reads one field (in kB) from /proc/PID/status or smaps_rollup.
fn proc_kb(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time of every thread of a process, in nanoseconds (schedstat is
/// nanosecond-exact, where /proc/PID/stat counts 10 ms ticks).
fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// utime + stime of a process in seconds, from /proc/PID/stat: 10 ms ticks,
/// but it includes threads that have exited (schedstat does not).
fn cpu_stat_secs(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: skip past ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_sec: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    Some(ticks as f64 / per_sec as f64)
}

/// A minimal Ollama stand-in for the benchmark: answers `/api/version`,
/// `/api/tags` and `/api/ps` with fixed documented-shape JSON, keep-alive.
fn fake_ollama() -> Result<std::net::SocketAddr> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let model = |name: &str, size: u64| {
        format!(
            r#"{{"name":"{name}","model":"{name}","modified_at":"2026-11-01T10:00:00Z","size":{size},"digest":"0","details":{{"parent_model":"","format":"gguf","family":"qwen3","families":["qwen3"],"parameter_size":"8.2B","quantization_level":"Q4_K_M"}}}}"#
        )
    };
    let tags = format!(
        r#"{{"models":[{},{},{}]}}"#,
        model("gpt-oss:20b", 13_000_000_000),
        model("qwen3:8b", 5_200_000_000),
        model("qwen3-fast:8b", 5_200_000_000)
    );
    let ps = r#"{"models":[{"name":"gpt-oss:20b","model":"gpt-oss:20b","size":14000000000,"digest":"0","details":{"parent_model":"","format":"gguf","family":"gptoss","families":["gptoss"],"parameter_size":"20.9B","quantization_level":"MXFP4"},"expires_at":"2099-01-01T00:00:00Z","size_vram":14000000000}]}"#.to_owned();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (tags, ps) = (tags.clone(), ps.clone());
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let path = head.split_whitespace().nth(1).unwrap_or("/");
                    let body = match path {
                        "/api/version" => r#"{"version":"0.12.6"}"#.to_owned(),
                        "/api/tags" => tags.clone(),
                        "/api/ps" => ps.clone(),
                        _ => "{}".to_owned(),
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A loopback port with nothing listening (a peer that is down).
fn closed_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The Mac Mini of the reference fleet, with every address on loopback: its
/// Ollama is a stand-in with three models (one loaded), its five services
/// are probed, and both peers are down (closed loopback ports).
fn fleet_config(data: &Path, ollama: std::net::SocketAddr) -> Result<String> {
    let (a, b, c) = (closed_port()?, closed_port()?, closed_port()?);
    Ok(format!(
        r#"this_machine = "macmini"
data_dir = {data:?}
[api]
listen = "127.0.0.1:0"
[proxy]
listen = "127.0.0.1:0"

[[machines]]
id = "macbook"
name = "MacBook Pro"
role = "orchestrator"
ollama_url = "http://127.0.0.1:{a}"
fleet_url = "http://127.0.0.1:{b}"

[[machines]]
id = "macmini"
name = "Mac Mini"
role = "central brain"
ollama_url = "http://{ollama}"
models = [ {{ name = "gpt-oss:20b", purpose = "Primary model, heartbeats" }} ]
services = [
  {{ name = "Clawdbot gateway", port = 18789 }},
  {{ name = "Ollama", port = {port} }},
  {{ name = "clawd-monitor", port = 9009 }},
  {{ name = "Aphos server (prod)", port = 2567 }},
  {{ name = "Aphos server (dev)", port = 2568 }},
]
pm2_apps = ["aphos-server-prod", "aphos-server-dev"]

[[machines]]
id = "msi"
name = "Windows MSI"
role = "windows bot"
fleet_url = "http://127.0.0.1:{c}"
"#,
        port = ollama.port(),
    ))
}

struct Measured {
    rss_end: u64,
    rss_peak: u64,
    pss_end: u64,
    cpu_pct: f64,
    cpu_secs: f64,
    elapsed: f64,
    threads: u64,
    clean_exit: bool,
    sse_events: usize,
}

/// Runs `clawfleet serve` on `config`, waits `warmup`, then samples memory
/// every second and CPU time over `secs`. With `watch`, a client holds the
/// SSE stream open and scrapes /metrics every 15 s, as a dashboard and a
/// Prometheus would.
fn measure(bin: &Path, config: &Path, home: &Path, secs: u64, watch: bool) -> Result<Measured> {
    use std::io::{Read, Write};
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("HOME", home)
        .env("CLAWFLEET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let api: std::net::SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("daemon did not say where it listens: {line:?}"))?;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let events = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut watchers = Vec::new();
    if watch {
        let (stop2, events2) = (stop.clone(), events.clone());
        watchers.push(std::thread::spawn(move || {
            let Ok(mut s) = std::net::TcpStream::connect(api) else {
                return;
            };
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = s.write_all(b"GET /fleet/v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
            let mut buf = [0u8; 65536];
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let seen = buf[..n]
                        .windows(15)
                        .filter(|w| w == b"event: snapshot")
                        .count();
                    events2.fetch_add(seen, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
        let stop3 = stop.clone();
        watchers.push(std::thread::spawn(move || {
            while !stop3.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut s) = std::net::TcpStream::connect(api) {
                    let _ = s.write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    );
                    let _ = s.read_to_end(&mut Vec::new());
                }
                for _ in 0..30 {
                    if stop3.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }));
    }

    std::thread::sleep(Duration::from_secs(5));
    let cpu0 = cpu_ns(pid).ok_or("daemon exited during warm-up")?;
    let stat0 = cpu_stat_secs(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let mut rss_peak = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        rss_peak = rss_peak.max(proc_kb(pid, "status", "VmRSS:").unwrap_or(0));
    }
    let cpu1 = cpu_ns(pid).ok_or("daemon exited during the run")?;
    let stat1 = cpu_stat_secs(pid).unwrap_or(0.0);
    let elapsed = t0.elapsed().as_secs_f64();
    // The larger of the two readings: schedstat is exact but forgets exited
    // threads, stat counts them but in 10 ms ticks.
    let cpu_secs = ((cpu1 - cpu0) as f64 / 1e9).max(stat1 - stat0);
    let m = Measured {
        rss_end: proc_kb(pid, "status", "VmRSS:").unwrap_or(0),
        rss_peak,
        pss_end: proc_kb(pid, "smaps_rollup", "Pss:").unwrap_or(0),
        cpu_secs,
        cpu_pct: cpu_secs / elapsed * 100.0,
        elapsed,
        threads: proc_kb(pid, "status", "Threads:").unwrap_or(0),
        clean_exit: false,
        sse_events: 0,
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.wait().map_err(|e| e.to_string())?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in watchers {
        let _ = w.join();
    }
    Ok(Measured {
        clean_exit: exit.success(),
        sse_events: events.load(std::sync::atomic::Ordering::Relaxed),
        ..m
    })
}

/// The proxy benchmark (`examples/proxy_bench.rs`): release builds, and a
/// file limit high enough for 1,000 streams (each holds two sockets).
fn bench_proxy() -> Result {
    if !cfg!(unix) {
        return Err("the proxy benchmark reads /proc and uses ulimit: run it on Linux".into());
    }
    let dir = build_release_example("proxy_bench")?;
    let script = format!(
        "ulimit -n 65536 2>/dev/null || ulimit -n 8192; exec {:?} {:?}",
        dir.join("examples/proxy_bench"),
        dir.join("clawfleet")
    );
    status(
        "running the proxy benchmark",
        Command::new("sh").args(["-c", &script]),
    )
}

/// Builds `clawfleet` and the benchmark `example` in release; returns the
/// folder both are in.
fn build_release_example(example: &str) -> Result<PathBuf> {
    status(
        "building clawfleet and the benchmark (release)",
        cargo().args([
            "build",
            "--release",
            "--bin",
            "clawfleet",
            "--example",
            example,
        ]),
    )?;
    Ok(root().join("target/release"))
}

/// The fleet benchmark (`examples/fleet_bench.rs`): 20 peers, one hung,
/// polled by a release daemon, against the same daemon not polling them.
fn bench_fleet() -> Result {
    if !cfg!(target_os = "linux") {
        return Err("the fleet benchmark reads /proc: run it on Linux".into());
    }
    let dir = build_release_example("fleet_bench")?;
    status(
        "running the fleet benchmark",
        Command::new(dir.join("examples/fleet_bench")).arg(dir.join("clawfleet")),
    )
}

/// The transcript ingestion benchmark (`examples/transcripts_bench.rs`), in
/// release.
fn bench_transcripts() -> Result {
    status(
        "running the transcript ingestion benchmark (release)",
        cargo().args([
            "run",
            "--quiet",
            "--release",
            "--example",
            "transcripts_bench",
        ]),
    )
}

/// The tray app (`tests/desktop/tray_bench.py`) on the release build, under
/// Xvfb on a private D-Bus session: time to the tray icon, PSS over the app
/// and its WebKit processes with the popover closed, open and closed again,
/// and idle CPU.
fn bench_tray() -> Result {
    if !cfg!(target_os = "linux") {
        return Err("the tray benchmark runs under Xvfb: run it on Linux".into());
    }
    ensure_system_packages()?;
    status(
        "building the tray app (desktop profile: release, made for size)",
        cargo().args([
            "build",
            "--profile",
            DESKTOP_PROFILE,
            "-p",
            "clawfleet-tray",
        ]),
    )?;
    status(
        "running the tray benchmark",
        desktop_python("tests/desktop/tray_bench.py").arg(
            root()
                .join("target")
                .join(DESKTOP_PROFILE)
                .join("clawfleet-tray"),
        ),
    )
}

/// The ledger's writer (`examples/ledger_bench.rs`), in release.
fn bench_ledger() -> Result {
    status(
        "running the ledger benchmark (release)",
        cargo().args(["run", "--quiet", "--release", "--example", "ledger_bench"]),
    )
}

/// The self-healing check cycle with 500 processes and 10 services.
fn bench_heal() -> Result {
    status(
        "running the self-healing benchmark (release)",
        cargo().args(["run", "--quiet", "--release", "--example", "heal_bench"]),
    )
}

/// The benchmark programs' output: `ROW\tGROUP\tfigure\tmeasured\tbaseline\ttarget\tmet`
/// lines for the table, `NOTE\ttext` lines under it; everything else is
/// passed on to stderr as it comes.
#[derive(Default)]
struct Gathered {
    rows: Vec<(u32, [String; 5])>,
    notes: Vec<String>,
    failures: Vec<String>,
}

impl Gathered {
    /// Takes one line; true when it was `PHASE\tbackground`.
    fn take(&mut self, line: &str) -> bool {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["ROW", group, figure, measured, baseline, target, met] => {
                let group = group.parse().unwrap_or(u32::MAX);
                self.rows.push((
                    group,
                    [*figure, *measured, *baseline, *target, *met].map(str::to_owned),
                ));
            }
            ["NOTE", text] => self.notes.push((*text).to_owned()),
            ["PHASE", "background"] => return true,
            _ => eprintln!("{line}"),
        }
        false
    }
}

/// Lines of a child's stdout, read on a thread.
fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    rx
}

/// Runs one benchmark program to its end, gathering its rows. A failure is
/// noted, and the suite goes on.
fn gather(what: &str, cmd: &mut Command, into: &mut Gathered) {
    eprintln!("xtask: {what}");
    let mut child = match cmd.stdout(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => {
            into.failures.push(format!("{what}: cannot start: {e}"));
            return;
        }
    };
    for line in stdout_lines(&mut child) {
        into.take(&line);
    }
    match child.wait() {
        Ok(st) if st.success() => {}
        Ok(st) => into.failures.push(format!("{what}: {st}")),
        Err(e) => into.failures.push(format!("{what}: {e}")),
    }
}

/// A copy of a freshly built program in `dir`: the build folder is shared
/// with other checkouts, whose builds may replace it while the suite runs.
fn own_copy(built: &Path, dir: &Path) -> Result<PathBuf> {
    let name = built.file_name().ok_or("a program without a name")?;
    let to = dir.join(name);
    std::fs::copy(built, &to).map_err(|e| format!("copying {}: {e}", built.display()))?;
    Ok(to)
}

/// This machine in one line: CPU model, cores, memory, OS (from /proc and
/// /etc/os-release).
fn machine_line() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or("Linux", |n| n.trim_matches('"'))
        .to_owned();
    format!(
        "{model}, {cores} cores, {:.1} GiB RAM, {os}",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

/// One command's trimmed output, or `fallback`.
fn output_of(cmd: &mut Command, fallback: &str) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| fallback.to_owned())
}

/// `cargo xtask bench`: what users feel, in one table. Builds once, then
/// runs `examples/user_bench.rs` (failover, streaming, cold loads, daemon
/// memory; its black-hole failover waits out the proxy's first-byte limit
/// in the background while the rest runs), `examples/transcripts_bench.rs`
/// (cost scans; the generated transcripts cached under
/// `target/bench-cache/`), `tests/desktop/tray_bench.py` (the tray's memory;
/// skipped with `--no-tray`) and the proxy's throughput at concurrency 16
/// (`examples/proxy_bench.rs --c16`), and prints their rows.
fn bench_suite(tray: bool) -> Result {
    if !cfg!(target_os = "linux") {
        return Err(
            "the benchmark suite reads /proc and runs the tray under Xvfb: run it on Linux".into(),
        );
    }
    if tray {
        ensure_system_packages()?;
    }
    let started = Instant::now();
    status(
        "building clawfleet and the benchmarks (release)",
        cargo().args([
            "build",
            "--release",
            "--bin",
            "clawfleet",
            "--example",
            "user_bench",
            "--example",
            "transcripts_bench",
            "--example",
            "proxy_bench",
        ]),
    )?;
    if tray {
        status(
            "building the tray app (desktop profile: release, made for size)",
            cargo().args([
                "build",
                "--profile",
                DESKTOP_PROFILE,
                "-p",
                "clawfleet-tray",
            ]),
        )?;
    }
    // The build folder is shared between checkouts, and cargo judges an
    // artifact fresh by its sources' times: what it left may have been
    // built from another checkout. Each artifact's dep-info names the
    // sources it was built from; if they are not ours, make ours newer and
    // build again.
    let release = root().join("target/release");
    let mut ours: Vec<(PathBuf, &str)> = vec![
        (release.join("clawfleet"), "src/main.rs"),
        (
            release.join("examples/user_bench"),
            "examples/user_bench.rs",
        ),
        (
            release.join("examples/transcripts_bench"),
            "examples/transcripts_bench.rs",
        ),
        (
            release.join("examples/proxy_bench"),
            "examples/proxy_bench.rs",
        ),
    ];
    if tray {
        ours.push((
            root()
                .join("target")
                .join(DESKTOP_PROFILE)
                .join("clawfleet-tray"),
            "src-tauri/src/main.rs",
        ));
    }
    let foreign: Vec<&Path> = ours
        .iter()
        .filter(|(artifact, source)| !built_from_here(artifact, source))
        .map(|(artifact, _)| artifact.as_path())
        .collect();
    if !foreign.is_empty() {
        eprintln!(
            "xtask: {} built from another checkout: rebuilding from this one",
            foreign
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for source in ["src/lib.rs", "src/main.rs", "src-tauri/src/main.rs"]
            .into_iter()
            .chain(ours.iter().map(|(_, s)| *s))
        {
            touch(&root().join(source))?;
        }
        status(
            "building clawfleet and the benchmarks (release), again",
            cargo().args([
                "build",
                "--release",
                "--bin",
                "clawfleet",
                "--example",
                "user_bench",
                "--example",
                "transcripts_bench",
                "--example",
                "proxy_bench",
            ]),
        )?;
        if tray {
            status(
                "building the tray app (desktop profile), again",
                cargo().args([
                    "build",
                    "--profile",
                    DESKTOP_PROFILE,
                    "-p",
                    "clawfleet-tray",
                ]),
            )?;
        }
        if let Some((artifact, _)) = ours
            .iter()
            .find(|(artifact, source)| !built_from_here(artifact, source))
        {
            return Err(format!(
                "{} is still not built from this checkout (another build replaced it?): run again",
                artifact.display()
            ));
        }
    }
    let built = started.elapsed();
    let run = std::env::temp_dir().join(format!("clawfleet-bench-suite-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| format!("{}: {e}", run.display()))?;
    let bin = own_copy(&release.join("clawfleet"), &run)?;
    let user_bench = own_copy(&release.join("examples/user_bench"), &run)?;
    let transcripts_bench = own_copy(&release.join("examples/transcripts_bench"), &run)?;
    let proxy_bench = own_copy(&release.join("examples/proxy_bench"), &run)?;
    let tray_bin = if tray {
        Some(own_copy(
            &root()
                .join("target")
                .join(DESKTOP_PROFILE)
                .join("clawfleet-tray"),
            &run,
        )?)
    } else {
        None
    };
    let mut commit = output_of(
        cargo_free("git").args(["rev-parse", "--short", "HEAD"]),
        "unknown commit",
    );
    if !output_of(cargo_free("git").args(["status", "--porcelain"]), "").is_empty() {
        commit.push_str(" with uncommitted changes");
    }
    let date = output_of(
        Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]),
        "unknown date",
    );
    // Others' work on this machine shows here: the figures are from a
    // shared machine.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let suite = Instant::now();
    let mut got = Gathered::default();

    // The black-holed machine's first request waits for the proxy's
    // first-byte limit: that wait runs in the background, after the
    // program's own measuring, while the others run.
    eprintln!("xtask: failover to a black-holed machine (user_bench black-hole)");
    let mut background = Command::new(&user_bench)
        .arg(&bin)
        .arg("black-hole")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", user_bench.display()))?;
    let background_lines = stdout_lines(&mut background);
    for line in background_lines.iter() {
        if got.take(&line) {
            break;
        }
    }
    gather(
        "failover to a refused machine, streaming, cold loads, daemon memory (user_bench)",
        Command::new(&user_bench)
            .arg(&bin)
            .args(["refused", "streaming", "cold", "memory"]),
        &mut got,
    );
    gather(
        "cost scans (transcripts_bench)",
        Command::new(&transcripts_bench)
            .arg("--cache")
            .arg(root().join("target/bench-cache")),
        &mut got,
    );
    if let Some(tray_bin) = &tray_bin {
        gather(
            "the tray app's memory (tray_bench.py)",
            desktop_python("tests/desktop/tray_bench.py")
                .arg(tray_bin)
                .env("TRAY_BENCH_IDLE_SECS", "10")
                .env("TRAY_BENCH_OPEN_SECS", "5"),
            &mut got,
        );
    }
    gather(
        "the proxy's throughput at concurrency 16 (proxy_bench --c16)",
        Command::new(&proxy_bench).arg(&bin).arg("--c16"),
        &mut got,
    );
    eprintln!("xtask: waiting for the black-holed machine's first request");
    for line in background_lines.iter() {
        got.take(&line);
    }
    match background.wait() {
        Ok(st) if st.success() => {}
        Ok(st) => got.failures.push(format!("user_bench black-hole: {st}")),
        Err(e) => got.failures.push(format!("user_bench black-hole: {e}")),
    }
    let _ = std::fs::remove_dir_all(&run);

    got.rows.sort_by_key(|(group, _)| *group);
    let took = suite.elapsed().as_secs();
    println!();
    println!(
        "Command: `cargo xtask bench{}`",
        if tray { "" } else { " --no-tray" }
    );
    println!(
        "Machine: {}; load average {load} when the suite began",
        machine_line()
    );
    println!(
        "Date: {date}; commit {commit}; the suite ran {}:{:02} min (after {} s of building)",
        took / 60,
        took % 60,
        built.as_secs()
    );
    println!();
    println!("| figure | measured | baseline in the same run (or count) | target | met? |");
    println!("|---|---|---|---|---|");
    for (_, cells) in &got.rows {
        println!("| {} |", cells.join(" | "));
    }
    if !got.notes.is_empty() {
        println!();
        for n in &got.notes {
            println!("- {n}");
        }
    }
    if !tray {
        println!("\n(The tray app was not measured: --no-tray.)");
    }
    if got.failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "some benchmarks failed: {}",
            got.failures.join("; ")
        ))
    }
}

/// Whether `artifact` was last built from this checkout: its dep-info
/// (`artifact.d`, written by cargo beside it) lists this checkout's
/// `source` (a path inside it).
fn built_from_here(artifact: &Path, source: &str) -> bool {
    let mut d = artifact.as_os_str().to_owned();
    d.push(".d");
    let ours = root().join(source);
    std::fs::read_to_string(PathBuf::from(d)).is_ok_and(|text| {
        text.split_whitespace()
            .any(|p| Path::new(p.trim_end_matches(':')) == ours)
    })
}

/// Sets a file's modification time to now, so that cargo rebuilds what it
/// goes into.
fn touch(path: &Path) -> Result {
    std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .map_err(|e| format!("touching {}: {e}", path.display()))
}

/// A command run in the checkout (not cargo).
fn cargo_free(program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(root());
    c
}

fn bench_idle(rest: &[&str]) -> Result {
    if !cfg!(target_os = "linux") {
        return Err("the idle benchmark reads /proc: run it on Linux".into());
    }
    let secs: u64 = match rest {
        [] => 60,
        ["--secs", n] => n
            .parse()
            .map_err(|_| format!("--secs takes a number, not {n:?}"))?,
        _ => return Err("usage: cargo xtask bench idle [--secs N]".into()),
    };
    status(
        "building clawfleet (release)",
        cargo().args(["build", "--release", "--bin", "clawfleet"]),
    )?;
    let bin = root().join("target/release/clawfleet");
    let work = std::env::temp_dir().join(format!("clawfleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;

    // Scenario 1: the embedded default as a user runs it (this machine is
    // not in the reference fleet, so it is shown alone), with a private data
    // folder and an OS-chosen API port so a running daemon does not collide.
    let default_config = work.join("default.toml");
    let init = Command::new(&bin)
        .arg("--config")
        .arg(&default_config)
        .args(["config", "init"])
        .env("HOME", &work)
        .output()
        .map_err(|e| format!("config init: {e}"))?;
    if !init.status.success() {
        return Err(format!(
            "config init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let text = std::fs::read_to_string(&default_config).map_err(|e| e.to_string())?;
    // OS-chosen ports for both listeners.
    let text = text
        .replacen(
            "listen = \"127.0.0.1:11436\"",
            "listen = \"127.0.0.1:0\"",
            1,
        )
        .replacen(
            "listen = \"127.0.0.1:11435\"",
            "listen = \"127.0.0.1:0\"",
            1,
        );
    let text = format!("data_dir = {:?}\n{text}", work.join("data1"));
    std::fs::write(&default_config, text).map_err(|e| e.to_string())?;

    // Scenario 2: the Mac Mini of the reference fleet on loopback, watched.
    let ollama = fake_ollama()?;
    let fleet = work.join("fleet.toml");
    std::fs::write(&fleet, fleet_config(&work.join("data2"), ollama)?)
        .map_err(|e| e.to_string())?;

    // Scenario 3: the default config on a machine with OpenClaw: a home
    // with its config and an agent database of 200 sessions (OpenClaw's own
    // schema), which the agent probe reads every 30 s.
    let oc_home = work.join("openclaw-home");
    openclaw_home(&oc_home)?;

    eprintln!("xtask: measuring the default config for {secs} s");
    let idle = measure(&bin, &default_config, &work, secs, false)?;
    eprintln!("xtask: measuring the Mac Mini fleet config with a dashboard attached for {secs} s");
    let busy = measure(&bin, &fleet, &work, secs, true)?;
    eprintln!("xtask: measuring the default config with an OpenClaw install for {secs} s");
    let agent = measure(&bin, &default_config, &oc_home, secs, false)?;
    let _ = std::fs::remove_dir_all(&work);

    let mib = |kb: u64| kb as f64 / 1024.0;
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    println!("\nclawfleet serve, default probe intervals, {secs} s after a 5 s warm-up:\n");
    println!(
        "| figure | default config (alone) | Mac Mini config + SSE client + /metrics every 15 s | default config, OpenClaw installed | target |"
    );
    println!("|---|---|---|---|---|");
    let all = [&idle, &busy, &agent];
    let row = |name: &str, f: &dyn Fn(&Measured) -> String, target: &str| {
        let cells: Vec<String> = all.iter().map(|m| f(m)).collect();
        println!("| {name} | {} | {target} |", cells.join(" | "));
    };
    row(
        "RSS at end",
        &|m| format!("{:.1} MiB ({:.1} MB)", mib(m.rss_end), mb(m.rss_end)),
        "< 30 MB",
    );
    row("RSS peak", &|m| format!("{:.1} MiB", mib(m.rss_peak)), "");
    row("PSS at end", &|m| format!("{:.1} MiB", mib(m.pss_end)), "");
    row(
        "CPU, % of one core",
        &|m| {
            format!(
                "{:.3}% ({:.3} s in {:.0} s)",
                m.cpu_pct, m.cpu_secs, m.elapsed
            )
        },
        "< 0.5%",
    );
    row("threads", &|m| m.threads.to_string(), "");
    println!(
        "| SSE snapshot events received | - | {} | - | |",
        busy.sse_events
    );
    row(
        "clean exit on SIGTERM",
        &|m| m.clean_exit.to_string(),
        "yes",
    );
    let ok = all
        .iter()
        .all(|m| mb(m.rss_end) < 30.0 && m.cpu_pct < 0.5 && m.clean_exit);
    println!("\nwithin targets: {}", if ok { "yes" } else { "NO" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_both_runners_closing_lines() {
        let mut c = Counts::default();
        for line in [
            "test result: ok. 37 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
            "test foo ... ok",
            "# pass 4",
            "# fail 0",
            "# tests 4",
        ] {
            c.read_line(line);
        }
        assert_eq!((c.passed, c.failed), (45, 1));
    }
}
