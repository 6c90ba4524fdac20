//! The last minutes of each machine's CPU, memory and disk use, for the
//! dashboard's sparklines: one point per new system sample, kept in memory
//! (at most [`MAX_POINTS`] per machine, none older than [`MAX_AGE_SECS`]).
//!
//! Not for: long-term metrics; `/metrics` and Prometheus are for that.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::publish::SnapshotRx;
use crate::snapshot::{MachineSnapshot, Snapshot};

/// Points kept per machine.
pub const MAX_POINTS: usize = 240;
/// The oldest point kept, in seconds.
pub const MAX_AGE_SECS: i64 = 15 * 60;

/// One sample: `[unix seconds, cpu %, memory %, disk %]` (`null` where the
/// figure was missing), compact for the wire.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point(pub i64, pub Option<f32>, pub Option<f32>, pub Option<f32>);

/// Recent points per machine id.
#[derive(Debug, Clone, Default)]
pub struct History {
    inner: Arc<Mutex<BTreeMap<String, Series>>>,
}

/// One machine's points and the system sample they are up to.
#[derive(Debug, Default)]
struct Series {
    last: Option<Timestamp>,
    points: VecDeque<Point>,
}

/// The fullest disk's use in percent (the one that fills first matters).
fn disk_percent(m: &MachineSnapshot) -> Option<f32> {
    m.disks
        .iter()
        .filter(|d| d.total_bytes > 0)
        .map(|d| (d.used_bytes as f64 / d.total_bytes as f64 * 100.0) as f32)
        .max_by(f32::total_cmp)
}

impl History {
    /// Records a point for each machine whose system figures are newer than
    /// its last point.
    pub fn record(&self, snapshot: &Snapshot) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for m in &snapshot.machines {
            let Some(at) = m.probed_at.system else {
                continue;
            };
            let series = inner.entry(m.id.clone()).or_default();
            if series.last.is_some_and(|l| l >= at) {
                continue;
            }
            series.last = Some(at);
            let points = &mut series.points;
            let memory = m
                .memory
                .as_ref()
                .filter(|mem| mem.total_bytes > 0)
                .map(|mem| (mem.used_bytes as f64 / mem.total_bytes as f64 * 100.0) as f32);
            points.push_back(Point(
                at.as_second(),
                m.cpu_percent,
                memory,
                disk_percent(m),
            ));
            let oldest = at.as_second() - MAX_AGE_SECS;
            while points.len() > MAX_POINTS || points.front().is_some_and(|p| p.0 < oldest) {
                points.pop_front();
            }
        }
        let ids: Vec<&str> = snapshot.machines.iter().map(|m| m.id.as_str()).collect();
        inner.retain(|id, _| ids.contains(&id.as_str()));
    }

    /// Every machine's points, oldest first.
    pub fn view(&self) -> BTreeMap<String, Vec<Point>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .iter()
            .map(|(id, series)| (id.clone(), series.points.iter().copied().collect()))
            .collect()
    }

    /// Records every new snapshot until `cancel`.
    pub async fn run(self, mut rx: SnapshotRx, cancel: CancellationToken) {
        loop {
            let snapshot = rx.borrow_and_update().clone();
            self.record(&snapshot);
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Disk, Memory};

    fn snap(second: i64, cpu: f32) -> Snapshot {
        let mut m = MachineSnapshot {
            id: "mini".into(),
            cpu_percent: Some(cpu),
            memory: Some(Memory {
                total_bytes: 1000,
                used_bytes: 250,
                ..Memory::default()
            }),
            disks: vec![
                Disk {
                    mount: "/".into(),
                    total_bytes: 100,
                    used_bytes: 10,
                    ..Disk::default()
                },
                Disk {
                    mount: "/data".into(),
                    total_bytes: 100,
                    used_bytes: 80,
                    ..Disk::default()
                },
            ],
            ..MachineSnapshot::default()
        };
        m.probed_at.system = Some(Timestamp::from_second(second).expect("time"));
        Snapshot {
            machines: vec![m],
            ..Snapshot::default()
        }
    }

    #[test]
    fn one_point_per_new_sample_and_old_ones_go() {
        let h = History::default();
        h.record(&snap(1_000, 10.0));
        h.record(&snap(1_000, 99.0)); // the same sample again (another part changed)
        h.record(&snap(1_005, 20.0));
        let v = h.view();
        assert_eq!(
            v["mini"],
            vec![
                Point(1_000, Some(10.0), Some(25.0), Some(80.0)),
                Point(1_005, Some(20.0), Some(25.0), Some(80.0)),
            ]
        );
        h.record(&snap(1_000 + MAX_AGE_SECS + 10, 30.0));
        assert_eq!(v["mini"].len(), 2, "a view is a copy");
        let v = h.view();
        assert_eq!(v["mini"].len(), 1, "older than the window: gone");
        for i in 0..(MAX_POINTS as i64 + 20) {
            h.record(&snap(5_000 + i, 1.0));
        }
        assert_eq!(h.view()["mini"].len(), MAX_POINTS);
        h.record(&Snapshot::default());
        assert!(h.view().is_empty(), "a machine no longer in the fleet goes");
    }
}
