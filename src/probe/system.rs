//! This machine's CPU, memory, disks, load, uptime, temperatures, processes
//! and zombies, from sysinfo.
//!
//! This runs every few seconds inside an idle daemon, so it asks the OS for
//! as little as it can: the sysinfo state is created once and each sample
//! refreshes only the figures it reports (no per-process command lines,
//! environments, memory or disk I/O).

use std::collections::HashMap;

use sysinfo::{
    Components, CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, ProcessRefreshKind,
    ProcessStatus, ProcessesToUpdate, RefreshKind, System,
};

use crate::snapshot::{Disk, LoadAverage, Memory, Temperature, Zombie};

/// Figures refreshed every few seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemSample {
    /// Total CPU use in percent; `None` when too little time has passed
    /// since the previous reading to measure it (the first sample).
    pub cpu_percent: Option<f32>,
    /// Per-core CPU use in percent; empty when `cpu_percent` is `None`.
    pub cpu_cores: Vec<f32>,
    /// Memory and swap.
    pub memory: Memory,
    /// Real disks.
    pub disks: Vec<Disk>,
    /// Load average, where the OS has one.
    pub load: Option<LoadAverage>,
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// Temperature sensors.
    pub temperatures: Vec<Temperature>,
}

/// Figures that need a walk over every process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    /// Number of processes.
    pub process_count: usize,
    /// Zombies with their parents.
    pub zombies: Vec<Zombie>,
}

/// Holds sysinfo's state between samples (CPU use is a difference between two
/// readings).
#[derive(Debug)]
pub struct SystemProbe {
    /// CPU and memory. `None` when sysinfo cannot read this OS at all: the
    /// probe then reports empty figures instead of failing.
    system: Option<System>,
    /// Mounted file systems.
    disks: Option<Disks>,
    /// Temperature sensors, listed once: sensors do not come and go while
    /// the machine runs, and re-listing them walks `/sys/class/hwmon`.
    components: Option<Components>,
    /// When CPU counters were last read: use over a shorter span is noise.
    last_cpu_read: std::time::Instant,
}

impl Default for SystemProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// What a disk refresh reads: sizes only. Not the disk kind (reads
/// `/sys/block/*/queue/rotational`) nor I/O counters (`/proc/diskstats`).
fn disk_refresh() -> DiskRefreshKind {
    DiskRefreshKind::nothing().with_storage()
}

/// What a process refresh reads: on Linux only `/proc/<pid>/stat`, which holds
/// the name, the state and the parent. Threads are left out: they are not
/// processes and listing them multiplies the work.
fn process_refresh() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing().without_tasks()
}

impl SystemProbe {
    /// A probe ready for its first sample. CPU use is measured between two
    /// samples, so the first sample's CPU figures cover the time since this
    /// call (they read 0 when taken at once).
    pub fn new() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::everything()),
        )
        .map_err(|e| tracing::debug!("sysinfo cannot read this system: {e}"))
        .ok();
        let disks = Disks::new_with_refreshed_list_specifics(disk_refresh())
            .map_err(|e| tracing::debug!("sysinfo cannot list disks: {e}"))
            .ok();
        let components = Components::new_with_refreshed_list()
            .map_err(|e| tracing::debug!("sysinfo cannot list sensors: {e}"))
            .ok();
        Self {
            system,
            disks,
            components,
            last_cpu_read: std::time::Instant::now(),
        }
    }

    /// CPU, memory, disks, load, uptime, temperatures. Blocking: call from
    /// `spawn_blocking`.
    pub fn sample_system(&mut self) -> SystemSample {
        let mut sample = SystemSample {
            load: load_average(),
            // 0 only where the OS will not say: no running machine has been up
            // for zero seconds, so a reader can tell.
            uptime_secs: System::uptime().unwrap_or(0),
            ..SystemSample::default()
        };

        if let Some(system) = self.system.as_mut() {
            if self.last_cpu_read.elapsed() >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
                system.refresh_cpu_usage();
                self.last_cpu_read = std::time::Instant::now();
                sample.cpu_percent = Some(clean_percent(system.global_cpu_usage()));
                sample.cpu_cores = system
                    .cpus()
                    .iter()
                    .map(|c| clean_percent(c.usage()))
                    .collect();
            }
            system.refresh_memory();
            let total = system.total_memory();
            let available = system.available_memory().min(total);
            sample.memory = Memory {
                total_bytes: total,
                used_bytes: total - available,
                available_bytes: available,
                swap_total_bytes: system.total_swap(),
                swap_used_bytes: system.used_swap(),
            };
        }

        if let Some(disks) = self.disks.as_mut() {
            // `true`: drop disks that were unmounted since the last sample.
            disks.refresh_specifics(true, disk_refresh());
            let all = disks
                .iter()
                .map(|d| {
                    let total = d.total_space();
                    let available = d.available_space().min(total);
                    Disk {
                        mount: d.mount_point().to_string_lossy().into_owned(),
                        device: d.name().to_string_lossy().into_owned(),
                        file_system: d.file_system().to_string_lossy().into_owned(),
                        total_bytes: total,
                        used_bytes: total - available,
                        available_bytes: available,
                        removable: d.is_removable(),
                    }
                })
                .collect();
            sample.disks = real_disks(all);
        }

        if let Some(components) = self.components.as_mut() {
            for component in components.iter_mut() {
                component.refresh();
            }
            sample.temperatures = components
                .iter()
                .filter_map(|c| {
                    let celsius = c.temperature().filter(|t| t.is_finite())?;
                    Some(Temperature {
                        label: c.label().to_owned(),
                        celsius,
                        critical_celsius: c.critical().filter(|t| t.is_finite()),
                    })
                })
                .collect();
        }

        sample
    }

    /// Process count and zombies. Blocking. Keeps no state between calls
    /// (see below), so it needs no probe instance.
    ///
    /// On Linux it reads `/proc/<pid>/stat` itself: one read per process,
    /// which holds the name, state and parent (sysinfo spends 2.4× that on
    /// the same walk: `cargo xtask bench heal`). Elsewhere, and should
    /// `/proc` be unreadable, sysinfo.
    pub fn sample_processes() -> ProcessSample {
        #[cfg(target_os = "linux")]
        if let Some(sample) = proc_fs::sample("/proc".as_ref()) {
            return sample;
        }
        Self::sample_processes_sysinfo()
    }

    /// [`SystemProbe::sample_processes`] through sysinfo.
    pub fn sample_processes_sysinfo() -> ProcessSample {
        // A fresh process table each time, dropped at the end: sysinfo reads a
        // process's name only when it first sees the pid, so a kept table
        // would show a shell that has since exec'd another program under its
        // old name. It costs the same reads (`/proc/<pid>/stat` on Linux) and
        // holds no memory between samples.
        let mut system = match System::new() {
            Ok(system) => system,
            Err(e) => {
                tracing::debug!("sysinfo cannot list processes: {e}");
                return ProcessSample::default();
            }
        };
        system.refresh_processes_specifics(ProcessesToUpdate::All, true, process_refresh());
        let processes = system.processes();
        let mut zombies: Vec<Zombie> = processes
            .iter()
            .filter(|(_, p)| p.status() == ProcessStatus::Zombie)
            .map(|(pid, p)| {
                let parent = p.parent();
                Zombie {
                    pid: pid.as_u32(),
                    name: p.name().to_string_lossy().into_owned(),
                    parent_pid: parent.map(|pp| pp.as_u32()),
                    parent_name: parent
                        .and_then(|pp| processes.get(&pp))
                        .map(|pp| pp.name().to_string_lossy().into_owned()),
                }
            })
            .collect();
        zombies.sort_by_key(|z| z.pid);
        ProcessSample {
            process_count: processes.len(),
            zombies,
        }
    }
}

/// Load average; `None` on Windows, which has none (sysinfo reports zeros
/// there, which would read as an idle machine).
fn load_average() -> Option<LoadAverage> {
    if cfg!(windows) {
        return None;
    }
    System::load_average().ok().map(|l| LoadAverage {
        one: l.one,
        five: l.five,
        fifteen: l.fifteen,
    })
}

/// A CPU percentage fit to show: NaN (no reading yet) becomes 0, and rounding
/// noise above 100 is capped.
fn clean_percent(value: f32) -> f32 {
    if value.is_finite() {
        value.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// File systems that hold no user data: kernel views, memory-backed ones,
/// container layers, read-only images and automounter placeholders. Compared
/// without regard to case (Windows says `NTFS`, Linux `ext4`).
const PSEUDO_FILE_SYSTEMS: &[&str] = &[
    // Linux kernel views and memory.
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "rootfs",
    "cgroup",
    "cgroup2",
    "pstore",
    "bpf",
    "debugfs",
    "tracefs",
    "securityfs",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "efivarfs",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "rpc_pipefs",
    "selinuxfs",
    // Container layers and images.
    "overlay",
    "overlayfs",
    "aufs",
    "squashfs",
    "fuse.lxcfs",
    "fuse.snapfuse",
    // Desktop helpers that show other things as files.
    "fuse.gvfsd-fuse",
    "fuse.portal",
    // Automounter placeholders (the real disk shows up once mounted).
    "autofs",
    // macOS and BSD.
    "devfs",
    "nullfs",
    "fdescfs",
    "procfs",
    "linprocfs",
    "linsysfs",
];

/// Mount points that are never user disks, with everything below them.
/// `/System/Volumes` holds macOS's own sub-volumes (VM, Preboot, Update, …).
const HIDDEN_MOUNTS: &[&str] = &["/System/Volumes", "/proc", "/sys", "/dev"];

/// Exact mount points shown even though they are under [`HIDDEN_MOUNTS`]:
/// the macOS Data volume is where the user's files are.
const SHOWN_MOUNTS: &[&str] = &["/System/Volumes/Data"];

/// True when a mount is a pseudo or system file system rather than a disk a
/// user would want to see filling up.
fn is_pseudo(file_system: &str, mount: &str) -> bool {
    if PSEUDO_FILE_SYSTEMS
        .iter()
        .any(|fs| fs.eq_ignore_ascii_case(file_system))
    {
        return true;
    }
    if SHOWN_MOUNTS.contains(&mount) {
        return false;
    }
    HIDDEN_MOUNTS
        .iter()
        .any(|hidden| is_at_or_under(mount, hidden))
}

/// `mount` is `dir` or inside it, by whole path components
/// (`/System/Volumes/Data` is under `/System/Volumes`; `/devices` is not under `/dev`).
fn is_at_or_under(mount: &str, dir: &str) -> bool {
    mount
        .strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Keeps the real disks: drops pseudo file systems and zero-size entries
/// (an empty card reader), and shows a device mounted more than once (bind
/// mounts, a container's `/etc/hosts`) once, at its shortest mount point.
/// The result is sorted by mount point.
fn real_disks(disks: Vec<Disk>) -> Vec<Disk> {
    let mut by_device: HashMap<String, Disk> = HashMap::new();
    let mut unkeyed = Vec::new();
    for disk in disks {
        if disk.total_bytes == 0 || is_pseudo(&disk.file_system, &disk.mount) {
            continue;
        }
        match dedupe_key(&disk) {
            Some(key) => match by_device.get(&key) {
                Some(kept) if !shorter_mount(&disk.mount, &kept.mount) => {}
                _ => {
                    by_device.insert(key, disk);
                }
            },
            None => unkeyed.push(disk),
        }
    }
    let mut out: Vec<Disk> = by_device.into_values().chain(unkeyed).collect();
    out.sort_by(|a, b| a.mount.cmp(&b.mount));
    out
}

/// What makes two entries the same device. On Unix the device name
/// (`/dev/sda1`, `disk3s5`); on Windows sysinfo gives the volume label
/// instead, which several drives may share, so no two drives are merged.
fn dedupe_key(disk: &Disk) -> Option<String> {
    if cfg!(windows) || disk.device.is_empty() {
        None
    } else {
        Some(disk.device.clone())
    }
}

/// `a` is a better mount point to show than `b`: shorter, then first in order
/// (so the choice does not depend on the order the OS lists mounts in).
fn shorter_mount(a: &str, b: &str) -> bool {
    (a.len(), a) < (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (file system, mount point, shown?)
    const FILTER_CASES: &[(&str, &str, bool)] = &[
        // Real disks.
        ("ext4", "/", true),
        ("xfs", "/home", true),
        ("btrfs", "/srv/data", true),
        ("vfat", "/boot/efi", true),
        ("apfs", "/", true),
        ("apfs", "/System/Volumes/Data", true),
        ("apfs", "/Volumes/Backup", true),
        ("NTFS", "C:\\", true),
        ("exfat", "/run/media/user/USB", true),
        ("fuse.sshfs", "/mnt/remote", true),
        // Pseudo file systems, wherever they are mounted.
        ("tmpfs", "/tmp", false),
        ("TMPFS", "/tmp", false),
        ("devtmpfs", "/dev", false),
        ("overlay", "/", false),
        ("squashfs", "/snap/core/1", false),
        ("proc", "/proc", false),
        ("sysfs", "/sys", false),
        ("cgroup2", "/sys/fs/cgroup", false),
        ("autofs", "/System/Volumes/Data/home", false),
        ("devfs", "/dev", false),
        ("nullfs", "/private/var/folders/x", false),
        ("fuse.lxcfs", "/proc/cpuinfo", false),
        // macOS system sub-volumes.
        ("apfs", "/System/Volumes/VM", false),
        ("apfs", "/System/Volumes/Preboot", false),
        ("apfs", "/System/Volumes/Update", false),
        ("apfs", "/System/Volumes/xarts", false),
        ("apfs", "/System/Volumes/Update/mnt1", false),
        ("apfs", "/System/Volumes", false),
        ("apfs", "/System/Volumes/DataExtra", false),
        // Kernel mount points, even with a real-looking file system.
        ("ext4", "/proc/sys/fs/binfmt_misc", false),
        ("ext4", "/dev/shm", false),
        // Component-aware: `/devices` is not `/dev`.
        ("ext4", "/devices", true),
        ("ext4", "/system", true),
    ];

    #[test]
    fn filter_table() {
        for &(fs, mount, shown) in FILTER_CASES {
            assert_eq!(!is_pseudo(fs, mount), shown, "{fs} at {mount}");
        }
    }

    fn disk(device: &str, mount: &str, fs: &str, total: u64) -> Disk {
        Disk {
            mount: mount.into(),
            device: device.into(),
            file_system: fs.into(),
            total_bytes: total,
            used_bytes: total / 2,
            available_bytes: total / 2,
            removable: false,
        }
    }

    /// (device, mount, file system, size) in OS order → mounts kept.
    #[allow(clippy::type_complexity)]
    const DEDUPE_CASES: &[(&[(&str, &str, &str, u64)], &[&str])] = &[
        // A container: the root is an overlay; the host disk is bind-mounted
        // for /etc/hosts and friends and must show once, at its shortest mount.
        (
            &[
                ("overlay", "/", "overlay", 100),
                ("/dev/sda1", "/etc/resolv.conf", "ext4", 500),
                ("/dev/sda1", "/etc/hostname", "ext4", 500),
                ("/dev/sda1", "/etc/hosts", "ext4", 500),
                ("tmpfs", "/dev", "tmpfs", 64),
            ],
            &["/etc/hosts"],
        ),
        // Same device at / and at a bind mount: / wins, whatever the order.
        (
            &[
                ("/dev/nvme0n1p2", "/var/lib/docker", "ext4", 900),
                ("/dev/nvme0n1p2", "/", "ext4", 900),
                ("/dev/nvme0n1p1", "/boot/efi", "vfat", 1),
            ],
            &["/", "/boot/efi"],
        ),
        // Equal lengths: the first in order wins, so the result is stable.
        (
            &[
                ("/dev/sdb1", "/mnt/b", "ext4", 10),
                ("/dev/sdb1", "/mnt/a", "ext4", 10),
            ],
            &["/mnt/a"],
        ),
        // macOS: different APFS volumes of one container are different devices.
        (
            &[
                ("/dev/disk3s1s1", "/", "apfs", 500),
                ("/dev/disk3s5", "/System/Volumes/Data", "apfs", 500),
                ("/dev/disk3s6", "/System/Volumes/VM", "apfs", 500),
                ("/dev/disk3s2", "/System/Volumes/Preboot", "apfs", 500),
                ("map auto_home", "/System/Volumes/Data/home", "autofs", 0),
                ("devfs", "/dev", "devfs", 1),
            ],
            &["/", "/System/Volumes/Data"],
        ),
        // Zero-size entries (an empty card reader) are dropped.
        (&[("/dev/sdc", "/media/card", "vfat", 0)], &[]),
    ];

    #[test]
    fn dedupe_table() {
        for &(input, kept) in DEDUPE_CASES {
            let disks = input
                .iter()
                .map(|&(device, mount, fs, total)| disk(device, mount, fs, total))
                .collect();
            let mounts: Vec<String> = real_disks(disks).into_iter().map(|d| d.mount).collect();
            assert_eq!(mounts, kept, "input {input:?}");
        }
    }

    #[test]
    fn percent_is_cleaned() {
        assert_eq!(clean_percent(f32::NAN), 0.0);
        assert_eq!(clean_percent(100.4), 100.0);
        assert_eq!(clean_percent(-0.1), 0.0);
        assert_eq!(clean_percent(42.5), 42.5);
    }
}

/// The process walk over Linux's `/proc`.
#[cfg(target_os = "linux")]
mod proc_fs {
    use std::io::Read;
    use std::path::Path;

    use super::ProcessSample;
    use crate::snapshot::Zombie;

    /// One process from its `stat` line: `pid (comm) S ppid ...`. The name
    /// may hold spaces and parentheses, so it ends at the *last* `)`.
    pub(super) fn parse_stat(line: &[u8]) -> Option<(String, u8, u32)> {
        let open = line.iter().position(|b| *b == b'(')?;
        let close = line.iter().rposition(|b| *b == b')')?;
        if close < open {
            return None;
        }
        let name = String::from_utf8_lossy(&line[open + 1..close]).into_owned();
        let mut rest = line[close + 1..]
            .split(|b| *b == b' ')
            .filter(|f| !f.is_empty());
        let state = *rest.next()?.first()?;
        let ppid = std::str::from_utf8(rest.next()?).ok()?.parse().ok()?;
        Some((name, state, ppid))
    }

    /// Every process under `proc` (a `/proc`), or `None` when it cannot be
    /// listed. A process that ends during the walk is skipped.
    pub(super) fn sample(proc: &Path) -> Option<ProcessSample> {
        let dir = std::fs::read_dir(proc).ok()?;
        let mut buf = Vec::with_capacity(512);
        // (pid, name, state, parent) of every process.
        let mut all: Vec<(u32, String, u8, u32)> = Vec::with_capacity(1024);
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            buf.clear();
            let read = std::fs::File::open(entry.path().join("stat"))
                .and_then(|mut f| f.read_to_end(&mut buf));
            if read.is_err() {
                continue;
            }
            if let Some((name, state, ppid)) = parse_stat(&buf) {
                all.push((pid, name, state, ppid));
            }
        }
        if all.is_empty() {
            return None;
        }
        let name_of = |pid: u32| {
            all.iter()
                .find(|(p, ..)| *p == pid)
                .map(|(_, n, ..)| n.clone())
        };
        let mut zombies: Vec<Zombie> = all
            .iter()
            .filter(|(.., state, _)| *state == b'Z')
            .map(|(pid, name, _, ppid)| Zombie {
                pid: *pid,
                name: name.clone(),
                parent_pid: (*ppid != 0).then_some(*ppid),
                parent_name: (*ppid != 0).then(|| name_of(*ppid)).flatten(),
            })
            .collect();
        zombies.sort_by_key(|z| z.pid);
        Some(ProcessSample {
            process_count: all.len(),
            zombies,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn stat_lines_with_awkward_names() {
            assert_eq!(
                parse_stat(b"1234 (sleep) S 1 1234 1234 0 -1 4194304 97 0"),
                Some(("sleep".into(), b'S', 1))
            );
            assert_eq!(
                parse_stat(b"77 (a) b (c)) Z 42 77 77 0 -1"),
                Some(("a) b (c)".into(), b'Z', 42))
            );
            assert_eq!(parse_stat(b"1 (init S 0"), None);
            assert_eq!(parse_stat(b""), None);
            assert_eq!(parse_stat(b"5 (x) R notanumber"), None);
        }

        #[test]
        fn a_fake_proc_tree_with_a_zombie_and_a_vanished_process() {
            let dir = tempfile::tempdir().expect("tmp");
            let put = |pid: &str, stat: &str| {
                std::fs::create_dir_all(dir.path().join(pid)).expect("dir");
                std::fs::write(dir.path().join(pid).join("stat"), stat).expect("stat");
            };
            put("1", "1 (init) S 0 1 1 0");
            put("300", "300 (python3) S 1 300 300 0");
            put("301", "301 (worker) Z 300 300 300 0");
            put("302", "302 (orphan z) Z 999 302 302 0");
            std::fs::create_dir_all(dir.path().join("303")).expect("gone: no stat");
            std::fs::create_dir_all(dir.path().join("self")).expect("not a pid");
            std::fs::write(dir.path().join("uptime"), "1 1").expect("file");
            let s = sample(dir.path()).expect("sample");
            assert_eq!(s.process_count, 4);
            assert_eq!(
                s.zombies,
                vec![
                    Zombie {
                        pid: 301,
                        name: "worker".into(),
                        parent_pid: Some(300),
                        parent_name: Some("python3".into()),
                    },
                    Zombie {
                        pid: 302,
                        name: "orphan z".into(),
                        parent_pid: Some(999),
                        parent_name: None,
                    },
                ]
            );
            assert!(sample(&dir.path().join("missing")).is_none());
        }
    }
}
