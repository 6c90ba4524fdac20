//! The live [`Snapshot`] and the one way to change it.
//!
//! The [`Publisher`] owns the watch channel every reader (the API, its SSE
//! stream, the tray, the watcher, the router) subscribes to. Every writer —
//! the probes, the peer poller, the cost cycle, the proxy's figures — holds a
//! clone of it and changes only its own part; after each change the derived
//! fields are made true again (a peer's `online`, each machine's
//! `attention`, and whatever the [`Derive`] hook the daemon supplies keeps:
//! the agent's fallback chain, which reads the whole fleet), the time is
//! stamped, and readers are notified. So services depend on this, never on
//! the probes or on each other, to be seen.

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::fleet::Fleet;
use crate::snapshot::{CostSummary, MachineSnapshot, PeerState, PeerView, ProxyView, Snapshot};

/// Snapshot readers hold one of these.
pub type SnapshotRx = watch::Receiver<Arc<Snapshot>>;

/// What is derived from the whole snapshot after every change, before
/// `attention` (which may read it).
pub type Derive = fn(&mut Snapshot);

/// Changes the snapshot and tells its readers. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
    derive: Derive,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("readers", &self.tx.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher of `initial`, deriving with `derive` after each change.
    pub fn new(initial: Snapshot, derive: Derive) -> Self {
        let (tx, _) = watch::channel(Arc::new(initial));
        Self {
            tx: Arc::new(tx),
            derive,
        }
    }

    /// A new reader of the snapshot.
    pub fn subscribe(&self) -> SnapshotRx {
        self.tx.subscribe()
    }

    /// The snapshot as it is now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// Applies `change` to the snapshot, re-derives, and notifies readers.
    pub fn publish(&self, change: impl FnOnce(&mut Snapshot)) {
        let derive = self.derive;
        self.tx.send_modify(|snap| {
            let snap = Arc::make_mut(snap);
            change(snap);
            derive(snap);
            // Derived last: it reads what `derive` keeps too.
            for m in &mut snap.machines {
                m.attention = crate::snapshot::attention(m);
            }
            snap.updated_at = Some(Timestamp::now());
        });
    }

    /// Applies `change` to machine `id`'s entry (nothing when the fleet has
    /// no such machine) and keeps its `updated_at` and `online` true.
    pub fn publish_machine(&self, id: &str, change: impl FnOnce(&mut MachineSnapshot)) {
        self.publish(|snap| change_machine(snap, id, change));
    }

    /// The inference proxy's figures.
    pub fn publish_proxy(&self, view: ProxyView) {
        self.publish(|snap| snap.proxy = Some(view));
    }

    /// Machine `id`'s cost figures.
    pub fn publish_costs(&self, id: &str, summary: CostSummary) {
        self.publish(|snap| {
            if let Some(m) = snap.machines.iter_mut().find(|m| m.id == id) {
                m.costs = Some(summary);
            }
        });
    }
}

/// The snapshot before any probe ran: every machine with its config facts.
pub fn initial_snapshot(fleet: &Fleet) -> Snapshot {
    Snapshot {
        clawfleet_version: env!("CARGO_PKG_VERSION").to_owned(),
        this_machine: fleet.this.id.clone(),
        updated_at: Some(Timestamp::now()),
        started_at: Some(Timestamp::now()),
        served_at: None,
        machines: fleet
            .machines()
            .map(|m| MachineSnapshot {
                id: m.id.clone(),
                name: m.name.clone(),
                role: m.role.clone(),
                is_self: m.id == fleet.this.id,
                hostname: if m.id == fleet.this.id {
                    Some(fleet.os_hostname.clone())
                } else {
                    m.hostname.clone()
                },
                tailnet_ip: m.tailnet_addr(),
                online: m.id == fleet.this.id,
                // Polled: waiting for its first answer.
                peer: (m.id != fleet.this.id && m.fleet_url.is_some()).then(PeerView::default),
                ..MachineSnapshot::default()
            })
            .collect(),
        notices: fleet.notices.clone(),
        proxy: None,
    }
}

/// Applies `change` to machine `id`'s entry within a [`Publisher::publish`]
/// that changes several, keeping its `updated_at` and `online` true.
pub fn change_machine(snap: &mut Snapshot, id: &str, change: impl FnOnce(&mut MachineSnapshot)) {
    if let Some(m) = snap.machines.iter_mut().find(|m| m.id == id) {
        change(m);
        m.updated_at = Some(Timestamp::now());
        refresh_online(m);
    }
}

/// A peer is online when its fleet API or its Ollama answered last time,
/// or its last data is merely stale (a poll or two missed), not offline.
fn refresh_online(m: &mut MachineSnapshot) {
    if m.is_self {
        m.online = true;
        return;
    }
    let polled = m.peer.as_ref().map(|p| p.state);
    m.online = m.fleet_api_reachable == Some(true)
        || polled == Some(PeerState::Stale)
        || m.ollama.as_ref().is_some_and(|o| o.reachable);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{OllamaStatus, ServiceStatus};

    /// The default fleet, seen from its laptop.
    fn fleet() -> Fleet {
        let mut config = crate::config::embedded();
        config.this_machine = Some("macbook".to_owned());
        Fleet::resolve(&config, "some-host")
    }

    fn mark(snap: &mut Snapshot) {
        snap.notices.push("derived".to_owned());
    }

    #[test]
    fn a_change_is_derived_stamped_and_seen_by_readers() {
        let fleet = fleet();
        let publisher = Publisher::new(initial_snapshot(&fleet), mark);
        let mut rx = publisher.subscribe();
        let peer = fleet
            .machines()
            .find(|m| m.id != fleet.this.id)
            .map(|m| m.id.clone())
            .expect("the default fleet has peers");
        assert!(!publisher.current().machine(&peer).expect("peer").online);

        let down = Some(Timestamp::now());
        publisher.publish_machine(&peer, |m| {
            m.ollama = Some(OllamaStatus {
                reachable: true,
                checked_at: down,
                ..OllamaStatus::default()
            });
        });
        assert!(rx.has_changed().expect("open"));
        let snap = rx.borrow_and_update().clone();
        let m = snap.machine(&peer).expect("peer");
        assert!(m.online, "an Ollama that answered makes the peer online");
        assert!(m.updated_at.is_some());
        assert_eq!(snap.notices.last().map(String::as_str), Some("derived"));

        // An unknown machine changes nothing but is still a publish.
        publisher.publish_machine("nope", |_| panic!("not called"));
        assert!(rx.has_changed().expect("open"));
    }

    #[test]
    fn attention_says_each_reason_once() {
        let fleet = fleet();
        let publisher = Publisher::new(initial_snapshot(&fleet), |_| {});
        let now = Some(Timestamp::now());
        let this = fleet.this.id.clone();
        publisher.publish_machine(&this, |m| {
            m.ollama = Some(OllamaStatus {
                reachable: false,
                checked_at: now,
                ..OllamaStatus::default()
            });
            // The standalone default checks Ollama's port as a service too.
            m.services = vec![ServiceStatus {
                name: "Ollama".to_owned(),
                up: false,
                checked_at: now,
                ..ServiceStatus::default()
            }];
        });
        let snap = publisher.current();
        let m = snap.machine(&this).expect("this machine");
        assert_eq!(m.attention, vec!["Ollama is down".to_owned()]);
    }
}
