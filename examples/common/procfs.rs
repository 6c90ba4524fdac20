//! What the benchmarks read of a process from Linux's `/proc`, shared by
//! `examples/*_bench.rs` through `#[path]`. A process that is gone, or a
//! file that cannot be read, reads as 0.

/// CPU time (user + system) of process `pid` (`"self"` for the caller), in
/// clock ticks: the 12th and 13th fields after the name in
/// `/proc/<pid>/stat` (`man 5 proc`).
pub fn cpu_ticks(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| {
            let rest: Vec<&str> = t.rsplit_once(')')?.1.split_whitespace().collect();
            Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Clock ticks per second, as `/proc/<pid>/stat` counts them on Linux.
pub const TICKS_PER_SEC: f64 = 100.0;

/// A field in KiB of `/proc/<pid>/status`, such as `VmRSS:`.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
