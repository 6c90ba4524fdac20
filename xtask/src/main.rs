//! Project automation, run as `cargo xtask <command>`: the same set-up, test
//! and benchmark steps on every machine, without shell glue.
//!
//! - `cargo xtask run` — build and run the app on the embedded default config.
//! - `cargo xtask test` — install what the tests need, then fmt, clippy and
//!   every test. This is what CI runs.
//! - `cargo xtask bench idle [--secs N]` — the idle daemon's memory and CPU.

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
        ["bench", "idle", rest @ ..] => bench_idle(rest),
        ["deps"] => ensure_system_packages(),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 run [ARGS]           build and run `clawfleet serve` (extra ARGS go to clawfleet)\n  \
                 test                 install test dependencies, then fmt, clippy and all tests\n  \
                 bench idle [--secs N] idle daemon memory and CPU (default 60 s)\n  \
                 deps                 install the system packages the build and tests need"
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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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

/// Debian packages the build and the tests need. Empty for now: the engine
/// needs only the Rust toolchain. The tray app adds WebKitGTK here.
const APT_PACKAGES: &[&str] = &[];

/// Installs missing Debian packages; does nothing (and needs no network) when
/// all are present, so it is cheap to run every time.
fn ensure_system_packages() -> Result {
    if APT_PACKAGES.is_empty() || !cfg!(target_os = "linux") {
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

fn run(rest: &[&str]) -> Result {
    ensure_system_packages()?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--bin", "clawfleet", "--"]);
    if rest.is_empty() {
        cmd.arg("serve");
    } else {
        cmd.args(rest);
    }
    status("running clawfleet", &mut cmd)
}

fn test(rest: &[&str]) -> Result {
    ensure_system_packages()?;
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
    status(
        "cargo test",
        cargo().args(["test", "--workspace"]).args(rest),
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

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: skip past ')'.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
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
    // The embedded default as a user runs it, with a private data folder and
    // an OS-chosen API port so a running daemon does not collide.
    let default = Command::new(&bin)
        .args([
            "--config",
            work.join("config.toml").to_str().unwrap_or_default(),
            "config",
            "init",
        ])
        .env("HOME", &work)
        .output()
        .map_err(|e| format!("config init: {e}"))?;
    if !default.status.success() {
        return Err(format!(
            "config init failed: {}",
            String::from_utf8_lossy(&default.stderr)
        ));
    }
    let config_path = work.join("config.toml");
    let text = std::fs::read_to_string(&config_path).map_err(|e| e.to_string())?;
    let text = text.replacen(
        "listen = \"127.0.0.1:11436\"",
        "listen = \"127.0.0.1:0\"",
        1,
    );
    let text = format!("data_dir = {:?}\n{text}", work.join("data"));
    std::fs::write(&config_path, text).map_err(|e| e.to_string())?;

    let mut child = Command::new(&bin)
        .args([
            "--config",
            config_path.to_str().unwrap_or_default(),
            "serve",
        ])
        .env("HOME", &work)
        .env("CLAWFLEET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let mut api = String::new();
    if let Some(out) = child.stdout.take() {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        api = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
    }

    let warmup = Duration::from_secs(5);
    eprintln!("xtask: daemon pid {pid} at {api}; warming up {warmup:?}, then measuring {secs} s");
    std::thread::sleep(warmup);
    let ticks0 = cpu_ticks(pid).ok_or("daemon exited during warm-up")?;
    let t0 = Instant::now();
    let mut peak_rss = 0;
    let mut rss_sum = 0;
    let mut samples = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(rss) = proc_kb(pid, "status", "VmRSS:") {
            peak_rss = peak_rss.max(rss);
            rss_sum += rss;
            samples += 1;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let ticks1 = cpu_ticks(pid).ok_or("daemon exited during the run")?;
    let rss_end = proc_kb(pid, "status", "VmRSS:").unwrap_or(0);
    let pss_end = proc_kb(pid, "smaps_rollup", "Pss:").unwrap_or(0);
    let threads = proc_kb(pid, "status", "Threads:").unwrap_or(0);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.wait().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);

    let cpu_secs = (ticks1 - ticks0) as f64 / clock_ticks_per_sec() as f64;
    let cpu_pct = cpu_secs / elapsed * 100.0;
    let mib = |kb: u64| kb as f64 / 1024.0;
    println!("\nidle daemon, embedded default config, default probe intervals, {elapsed:.0} s:");
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!(
        "| resident memory (RSS) at end | {:.1} MiB | < 30 MB |",
        mib(rss_end)
    );
    println!(
        "| RSS mean / peak over the run | {:.1} / {:.1} MiB | |",
        mib(rss_sum / samples.max(1)),
        mib(peak_rss)
    );
    println!(
        "| proportional memory (PSS) at end | {:.1} MiB | |",
        mib(pss_end)
    );
    println!("| CPU | {cpu_pct:.3}% of one core ({cpu_secs:.2} s in {elapsed:.0} s) | < 0.5% |");
    println!("| threads | {threads} | |");
    println!(
        "| clean exit on SIGTERM | {} | yes |",
        if exit.success() { "yes" } else { "no" }
    );
    let ok = mib(rss_end) * 1.048_576 < 30.0 && cpu_pct < 0.5 && exit.success();
    println!("\nwithin targets: {}", if ok { "yes" } else { "NO" });
    Ok(())
}
