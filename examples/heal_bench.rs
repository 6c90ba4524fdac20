//! The self-healing check cycle's cost: `cargo xtask bench heal`.
//!
//! Starts 500 real processes (`sleep`) beside whatever the machine runs and
//! 10 services (8 listening TCP ports, 2 closed), then measures the CPU time
//! (user + system, this process and its threads) of, in the same run:
//!
//! 1. a direct baseline: every `/proc/<pid>/stat` read and its state letter
//!    taken (the least a zombie check can do), and 10 plain TCP connects;
//! 2. ClawFleet's cycle: the process probe (process count and zombies, as the
//!    health view and the zombie check read it), the 10 service probes, and
//!    the watcher's cycle (every check over the snapshot, the open findings,
//!    the guards, the event log);
//! 3. the checks alone over that snapshot (`heal::check::check`);
//! 4. the same process walk through sysinfo, for comparison.
//!
//! Prints a Markdown table; figures are medians over the cycles.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawfleet::config::{self, Source};
use clawfleet::events::EventLog;
use clawfleet::fleet::Fleet;
use clawfleet::heal::check::{self, CheckState, Extra};
use clawfleet::heal::watcher::Watcher;
use clawfleet::probe::system::SystemProbe;
use clawfleet::probe::{Collector, services};

const PROCESSES: usize = 500;
const OPEN_SERVICES: usize = 8;
const CLOSED_SERVICES: usize = 2;
const CYCLES: usize = 60;

/// No CPU clock of the process here: the CPU column reads zero.
#[cfg(not(unix))]
fn cpu() -> Duration {
    Duration::ZERO
}

/// CPU time used by this process so far (all threads), user + system, from
/// the scheduler's exact accounting (`getrusage` counts in ticks on some
/// kernels).
#[cfg(unix)]
fn cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The direct baseline: the state letter of every process, and a connect to
/// each service.
fn baseline(ports: &[u16]) -> (usize, usize) {
    let mut count = 0;
    let mut zombies = 0;
    let mut buf = String::with_capacity(512);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            buf.clear();
            let mut path = PathBuf::from("/proc");
            path.push(&name);
            path.push("stat");
            if std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut buf))
                .is_ok()
            {
                count += 1;
                if buf
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                {
                    zombies += 1;
                }
            }
        }
    }
    let mut up = 0;
    for port in ports {
        let addr = SocketAddr::from(([127, 0, 0, 1], *port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            up += 1;
        }
    }
    std::hint::black_box(zombies);
    (count, up)
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn main() {
    if !cfg!(target_os = "linux") {
        eprintln!("the heal benchmark reads /proc: run it on Linux");
        std::process::exit(2);
    }
    let mut children = Children(Vec::with_capacity(PROCESSES));
    for _ in 0..PROCESSES {
        match Command::new("sleep")
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(c) => children.0.push(c),
            Err(e) => {
                eprintln!("cannot start process {}: {e}", children.0.len());
                std::process::exit(1);
            }
        }
    }
    // Listening services that accept and drop, and closed ports.
    let mut ports = Vec::new();
    for _ in 0..OPEN_SERVICES {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        ports.push(l.local_addr().expect("addr").port());
        std::thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
            }
        });
    }
    for _ in 0..CLOSED_SERVICES {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        ports.push(l.local_addr().expect("addr").port());
    }

    let dir = std::env::temp_dir().join(format!("clawfleet-heal-bench-{}", std::process::id()));
    let services: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{ name = \"service {i}\", port = {p} }}"))
        .collect();
    let text = format!(
        r#"this_machine = "bench"
data_dir = {data:?}
[probes]
pm2_program = "/nonexistent/pm2"
timeout_ms = 500
[clawdbot]
config_path = {none:?}
[heal]
mode = "auto"
[[machines]]
id = "bench"
name = "Bench"
services = [{services}]
"#,
        data = dir.join("data"),
        none = dir.join("none.json"),
        services = services.join(", "),
    );
    let config = Arc::new(config::parse(&text, &Source::Embedded).expect("bench config"));
    let fleet = Arc::new(Fleet::resolve(&config, "bench"));
    let client = clawfleet::net::client().expect("client");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let events = EventLog::open(&dir.join("data/events.sqlite")).expect("event log");
    let collector = Arc::new(Collector::new(
        config.clone(),
        fleet.clone(),
        client.clone(),
    ));
    let snapshot = collector.subscribe();
    let watcher = Watcher::new(
        config.clone(),
        &fleet.this,
        events.clone(),
        snapshot.clone(),
        client.clone(),
    );
    let snap = runtime.block_on(collector.clone().probe_once());
    let me = snap
        .machines
        .iter()
        .find(|m| m.id == "bench")
        .cloned()
        .expect("this machine");

    let service_configs = fleet.this.services.clone();
    let timeout = config.probes.timeout();
    let mut base = Vec::new();
    let mut procs = Vec::new();
    let mut sysinfo = Vec::new();
    let mut svcs = Vec::new();
    let mut cycles = Vec::new();
    let mut checks = Vec::new();
    let mut seen = (0, 0, 0);
    for i in 0..CYCLES + 3 {
        let c0 = cpu();
        let (count, up) = baseline(&ports);
        let c1 = cpu();
        let sample = SystemProbe::sample_processes();
        let c2 = cpu();
        let statuses = runtime.block_on(futures_util::future::join_all(
            service_configs
                .iter()
                .map(|svc| services::probe(&client, svc, timeout)),
        ));
        let c3 = cpu();
        let findings = runtime.block_on(watcher.cycle());
        let c4 = cpu();
        std::hint::black_box(SystemProbe::sample_processes_sysinfo());
        let c5 = cpu();
        let t = Instant::now();
        let mut state = CheckState::default();
        let mut n = 0;
        while t.elapsed() < Duration::from_millis(20) {
            n += 1;
            std::hint::black_box(check::check(
                &me,
                &Extra::default(),
                &config.heal,
                &mut state,
                jiff::Timestamp::now(),
            ));
        }
        let per_check = t.elapsed().as_secs_f64() / f64::from(n);
        if i >= 3 {
            let ms = |a: Duration, b: Duration| (b - a).as_secs_f64() * 1e3;
            base.push(ms(c0, c1));
            procs.push(ms(c1, c2));
            svcs.push(ms(c2, c3));
            cycles.push(ms(c3, c4));
            sysinfo.push(ms(c4, c5));
            checks.push(per_check * 1e6);
        }
        seen = (
            count.max(sample.process_count),
            up.max(statuses.iter().filter(|s| s.up).count()),
            findings.len(),
        );
    }
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);

    let (b, p, s, w, k, si) = (
        median(base),
        median(procs),
        median(svcs),
        median(cycles),
        median(checks),
        median(sysinfo),
    );
    let ours = p + s + w;
    println!(
        "\nheal check cycle: {} processes on the machine ({PROCESSES} started), {} services ({} up), {} findings per cycle; medians of {CYCLES} cycles, CPU time (user + system):\n",
        seen.0,
        ports.len(),
        seen.1,
        seen.2
    );
    println!("| part | CPU per cycle | target |");
    println!("|---|---|---|");
    println!("| direct baseline: every /proc/<pid>/stat read + 10 TCP connects | {b:.2} ms | |");
    println!("| process probe (count, zombies, their parents) | {p:.2} ms | |");
    println!(
        "| (the same walk through sysinfo, as before: not used on Linux) | {si:.2} ms ({:.1}× the baseline) | |",
        si / b
    );
    println!("| 10 service probes | {s:.2} ms | |");
    println!("| watcher cycle (checks, findings, guards, event log) | {w:.3} ms | |");
    println!(
        "| **ClawFleet cycle, all three** | **{ours:.2} ms** ({:.1}× the baseline) | < 20 ms |",
        ours / b
    );
    println!("| the checks alone over the snapshot | {k:.1} µs (wall) | |");
}
