//! The system probe against this real machine: plausible figures, and a real
//! zombie process found with its parent.

#[cfg(unix)]
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use clawfleet::probe::system::SystemProbe;

#[test]
fn sample_system_gives_plausible_figures() {
    let mut probe = SystemProbe::new();
    // Taken at once, the first sample has no span to measure CPU over: it
    // says so instead of reporting 0%.
    let first = probe.sample_system();
    assert_eq!(first.cpu_percent, None);
    assert!(first.cpu_cores.is_empty());
    assert!(first.memory.total_bytes > 0, "memory is there at once");
    // CPU use is a difference: give sysinfo more than its minimum interval.
    sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + Duration::from_millis(100));
    let sample = probe.sample_system();

    assert!(!sample.cpu_cores.is_empty(), "no CPU cores");
    let cpu = sample.cpu_percent.expect("measured over the interval");
    assert!((0.0..=100.0).contains(&cpu), "cpu {cpu}");
    assert!(sample.cpu_cores.iter().all(|c| (0.0..=100.0).contains(c)));

    let memory = sample.memory;
    assert!(memory.total_bytes > 0);
    assert!(memory.available_bytes <= memory.total_bytes);
    assert_eq!(
        memory.used_bytes,
        memory.total_bytes - memory.available_bytes
    );
    assert!(memory.swap_used_bytes <= memory.swap_total_bytes);

    assert!(sample.uptime_secs > 0);
    for disk in &sample.disks {
        assert!(disk.total_bytes > 0, "{disk:?}");
        assert_eq!(
            disk.used_bytes + disk.available_bytes,
            disk.total_bytes,
            "{disk:?}"
        );
        assert!(
            !["tmpfs", "proc", "sysfs", "overlay"].contains(&disk.file_system.as_str()),
            "{disk:?}"
        );
    }
    let mounts: Vec<&str> = sample.disks.iter().map(|d| d.mount.as_str()).collect();
    let mut unique = mounts.clone();
    unique.dedup();
    assert_eq!(unique, mounts, "mounts are sorted and listed once");
    for t in &sample.temperatures {
        assert!(t.celsius.is_finite(), "{t:?}");
    }

    if cfg!(target_os = "linux") {
        // A container's root is an overlay (not a disk) and its host disk is
        // bind-mounted on files such as /etc/hosts; on a plain Linux machine
        // the root disk is at /.
        let in_container = std::fs::read_to_string("/proc/self/mounts")
            .map(|m| {
                m.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some("/") && l.contains(" overlay "))
            })
            .unwrap_or(false);
        if in_container {
            assert!(
                !sample.disks.is_empty(),
                "no disk at all: {:?}",
                sample.disks
            );
        } else {
            assert!(mounts.contains(&"/"), "no disk at /: {mounts:?}");
        }
    }
    if cfg!(unix) {
        let load = sample.load.expect("load average on Unix");
        assert!(load.one >= 0.0 && load.five >= 0.0 && load.fifteen >= 0.0);
    } else {
        assert_eq!(sample.load, None);
    }
}

/// Kills the zombie's parent when the test ends, pass or fail.
#[cfg(unix)]
struct KillOnDrop(Child);

#[cfg(unix)]
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[test]
fn sample_processes_finds_a_real_zombie() {
    use std::io::Write;

    // `sh` waits for a line, then starts `sleep 0` in the background and
    // becomes `sleep 30` (same pid). `sleep` never waits for children, so when
    // `sleep 0` exits it stays a zombie whose parent is our child.
    let parent = Command::new("sh")
        .args(["-c", "read x; sleep 0 & exec sleep 30"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut parent = KillOnDrop(parent);
    let parent_pid = parent.0.id();

    // A first sample sees the parent as `sh`, before it execs: the probe must
    // not keep reporting that stale name afterwards.
    let before = SystemProbe::sample_processes();
    assert!(
        !before
            .zombies
            .iter()
            .any(|z| z.parent_pid == Some(parent_pid))
    );
    let mut stdin = parent.0.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("write to sh");
    drop(stdin);

    let deadline = Instant::now() + Duration::from_secs(10);
    let (sample, zombie) = loop {
        let sample = SystemProbe::sample_processes();
        let found = sample
            .zombies
            .iter()
            .find(|z| z.parent_pid == Some(parent_pid) && z.parent_name.as_deref() == Some("sleep"))
            .cloned();
        if let Some(zombie) = found {
            break (sample, zombie);
        }
        assert!(
            Instant::now() < deadline,
            "no zombie of {parent_pid} after 10 s; zombies: {:?}",
            sample.zombies
        );
        sleep(Duration::from_millis(50));
    };

    assert_eq!(zombie.name, "sleep");
    assert_ne!(zombie.pid, parent_pid);
    if cfg!(target_os = "linux") {
        // What the kernel says about that pid: a zombie, child of our sh.
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", zombie.pid)).expect("zombie stat");
        let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
        let mut fields = after_name.split(' ');
        assert_eq!(fields.next(), Some("Z"), "{stat}");
        assert_eq!(
            fields.next(),
            Some(parent_pid.to_string().as_str()),
            "{stat}"
        );
    }
    assert!(sample.process_count >= 2, "count {}", sample.process_count);
    assert!(
        sample.zombies.windows(2).all(|w| w[0].pid < w[1].pid),
        "sorted by pid"
    );

    // Once its parent is gone the zombie is no longer reported as its child.
    drop(parent);
    let after = SystemProbe::sample_processes();
    assert!(
        !after
            .zombies
            .iter()
            .any(|z| z.parent_pid == Some(parent_pid)),
        "{:?}",
        after.zombies
    );
}
