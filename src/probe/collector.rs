//! Runs every probe on its own interval and publishes the [`Snapshot`] on a
//! watch channel.
//!
//! One task per kind of probe, each owning its timer, so a slow Ollama never
//! delays the CPU figures. Each task changes only its own part of the
//! snapshot, stamps the time, and notifies readers (API, SSE, tray).

use crate::every::Every;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use jiff::Timestamp;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::system::SystemProbe;
use super::{ollama, pm2, services};
use crate::config::{Config, MachineConfig};
use crate::fleet::Fleet;
use crate::publish::Publisher;
use crate::snapshot::{MachineSnapshot, OllamaStatus, Snapshot};

use crate::publish::{SnapshotRx, initial_snapshot};

/// Owns the probes and the snapshot they publish.
pub struct Collector {
    config: Arc<Config>,
    fleet: Arc<Fleet>,
    client: reqwest::Client,
    publisher: Publisher,
    system: Arc<Mutex<SystemProbe>>,
    system_busy: Arc<AtomicBool>,
    processes_busy: Arc<AtomicBool>,
    openclaw_env: crate::openclaw::locate::Environment,
    openclaw_cli: crate::openclaw::probe::CliCache,
}

impl Collector {
    /// A collector with an initial snapshot built from the config alone.
    pub fn new(config: Arc<Config>, fleet: Arc<Fleet>, client: reqwest::Client) -> Self {
        let publisher = Publisher::new(initial_snapshot(&fleet), refresh_chain);
        Self {
            config,
            fleet,
            client,
            publisher,
            system: Arc::new(Mutex::new(SystemProbe::new())),
            system_busy: Arc::default(),
            processes_busy: Arc::default(),
            openclaw_env: crate::openclaw::locate::Environment::current(),
            openclaw_cli: crate::openclaw::probe::CliCache::default(),
        }
    }

    /// A new reader of the snapshot.
    pub fn subscribe(&self) -> SnapshotRx {
        self.publisher.subscribe()
    }

    /// The snapshot's publisher, for the other parts that write into it.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Runs every probe until `cancel` fires. Each probe kind is its own
    /// task; all are joined before this returns.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let p = &self.config.probes;
        let mut tasks = JoinSet::new();
        let every = |secs: u64| Duration::from_secs(secs.max(1));
        self.spawn_loop(
            &mut tasks,
            &cancel,
            "system",
            every(p.system_interval_secs),
            |c| Box::pin(c.probe_system()),
        );
        self.spawn_loop(
            &mut tasks,
            &cancel,
            "processes",
            every(p.processes_interval_secs),
            |c| Box::pin(c.probe_processes()),
        );
        self.spawn_loop(
            &mut tasks,
            &cancel,
            "ollama",
            every(p.ollama_interval_secs),
            |c| Box::pin(c.probe_ollama()),
        );
        self.spawn_loop(
            &mut tasks,
            &cancel,
            "services",
            every(p.services_interval_secs),
            |c| Box::pin(c.probe_services()),
        );
        self.spawn_loop(
            &mut tasks,
            &cancel,
            "pm2",
            every(p.pm2_interval_secs),
            |c| Box::pin(c.probe_pm2()),
        );
        self.spawn_loop(
            &mut tasks,
            &cancel,
            "openclaw",
            every(p.openclaw_interval_secs),
            |c| Box::pin(c.probe_openclaw()),
        );
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                warn!("a probe task panicked: {e}");
            }
        }
    }

    /// Runs every probe once, concurrently, and returns the snapshot (for
    /// `clawfleet status` when no daemon is running).
    pub async fn probe_once(self: Arc<Self>) -> Arc<Snapshot> {
        // CPU use is a difference between two readings: take one now and the
        // second after the other probes (at least sysinfo's minimum interval).
        let primed = self.clone().probe_system();
        let others = async {
            tokio::join!(
                self.clone().probe_processes(),
                self.clone().probe_ollama(),
                self.clone().probe_services(),
                self.clone().probe_pm2(),
                self.clone().probe_openclaw(),
                tokio::time::sleep(Duration::from_millis(300)),
            )
        };
        primed.await;
        others.await;
        self.clone().probe_system().await;
        self.publisher.current()
    }

    fn spawn_loop<F>(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        cancel: &CancellationToken,
        name: &'static str,
        every: Duration,
        mut step: F,
    ) where
        F: FnMut(Arc<Self>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static,
    {
        let this = self.clone();
        let cancel = cancel.clone();
        tasks.spawn(
            async move {
                let mut every = Every::new(every, &cancel);
                while every.tick().await {
                    if every.step(step(this.clone())).await.is_none() {
                        break;
                    }
                }
                debug!("probe loop stopped");
            }
            .instrument(info_span!("probe", kind = name)),
        );
    }

    fn publish(&self, change: impl FnOnce(&mut Snapshot)) {
        self.publisher.publish(change);
    }

    fn publish_machine(&self, id: &str, change: impl FnOnce(&mut MachineSnapshot)) {
        self.publisher.publish_machine(id, change);
    }

    /// Runs a blocking sysinfo call on the blocking pool, within the probe
    /// time limit. While the previous call of the same kind is still running
    /// (a hung network mount), the next one is skipped instead of piling up
    /// threads; `busy` is cleared when that call finally returns.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        busy: &Arc<AtomicBool>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if busy.swap(true, Ordering::AcqRel) {
            warn!("{what} probe skipped: the previous one is still running");
            return None;
        }
        let flag = busy.clone();
        let job = tokio::task::spawn_blocking(move || {
            let out = f();
            flag.store(false, Ordering::Release);
            out
        });
        let limit = self.config.probes.timeout().max(Duration::from_secs(5));
        match tokio::time::timeout(limit, job).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                // The closure panicked before clearing the flag.
                busy.store(false, Ordering::Release);
                warn!("{what} probe failed: {e}");
                None
            }
            Err(_) => {
                warn!(
                    "{what} probe did not finish within {} ms",
                    limit.as_millis()
                );
                None
            }
        }
    }

    async fn probe_system(self: Arc<Self>) {
        let probe = self.system.clone();
        let sample = move || {
            // Poisoned only by a panic inside sysinfo; its state is still
            // fine for fresh readings.
            let mut probe = probe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            probe.sample_system()
        };
        let Some(s) = self.blocking("system", &self.system_busy, sample).await else {
            return;
        };
        let now = Timestamp::now();
        self.publish_machine(&self.fleet.this.id, |m| {
            if s.cpu_percent.is_some() {
                m.cpu_percent = s.cpu_percent;
                m.cpu_cores = s.cpu_cores;
            }
            m.memory = Some(s.memory);
            m.disks = s.disks;
            m.load = s.load;
            m.uptime_secs = Some(s.uptime_secs);
            m.temperatures = s.temperatures;
            m.probed_at.system = Some(now);
        });
    }

    async fn probe_processes(self: Arc<Self>) {
        let Some(s) = self
            .blocking(
                "processes",
                &self.processes_busy,
                SystemProbe::sample_processes,
            )
            .await
        else {
            return;
        };
        let now = Timestamp::now();
        self.publish_machine(&self.fleet.this.id, |m| {
            m.process_count = Some(s.process_count);
            m.zombies = s.zombies;
            m.probed_at.processes = Some(now);
        });
    }

    async fn probe_ollama(self: Arc<Self>) {
        let timeout = self.config.probes.timeout();
        let targets: Vec<(&MachineConfig, &str)> = self
            .fleet
            .machines()
            .filter_map(|m| m.ollama_url.as_deref().map(|u| (m, u)))
            .collect();
        let results = join_all(targets.iter().map(|(m, url)| {
            ollama::probe(&self.client, url, timeout)
                .instrument(info_span!("ollama", machine = %m.id))
        }))
        .await;
        let now = Timestamp::now();
        // One change for the whole round: readers see every Ollama of a
        // round together, and the stream sends one event, not one per machine.
        self.publish(|snap| {
            for ((machine, _), mut status) in targets.into_iter().zip(results) {
                attach_purposes(machine, &mut status);
                crate::publish::change_machine(snap, &machine.id, |m| {
                    // Failed probes in a row: the watcher restarts Ollama
                    // after `[heal] ollama_down_probes` of them.
                    let before = m.ollama.as_ref().map_or(0, |o| o.failures_in_row);
                    status.failures_in_row = if status.reachable { 0 } else { before + 1 };
                    m.ollama = Some(status);
                    m.probed_at.ollama = Some(now);
                });
            }
        });
    }

    async fn probe_services(self: Arc<Self>) {
        let timeout = self.config.probes.timeout();
        let this = &self.fleet.this;
        let local = join_all(
            this.services
                .iter()
                .map(|svc| services::probe(&self.client, svc, timeout)),
        );
        // Peers' fleet APIs are polled by `peers`, on their own timers.
        let local = local.await;
        let now = Timestamp::now();
        self.publish_machine(&this.id, |m| {
            m.services = local;
            m.probed_at.services = Some(now);
        });
    }

    async fn probe_pm2(self: Arc<Self>) {
        let timeout = Duration::from_millis(self.config.probes.pm2_timeout_ms);
        let (state, apps) = pm2::list_with(
            std::path::Path::new(&self.config.probes.pm2_program),
            &self.fleet.this.pm2_apps,
            timeout,
        )
        .await;
        let now = Timestamp::now();
        self.publish_machine(&self.fleet.this.id, |m| {
            m.pm2 = apps;
            m.pm2_state = Some(state);
            m.probed_at.pm2 = Some(now);
        });
    }

    async fn probe_openclaw(self: Arc<Self>) {
        let settings = crate::openclaw::probe::Settings {
            ours: self.config.openclaw.clone(),
            timeout: self.config.probes.timeout(),
        };
        let mut status =
            crate::openclaw::probe::probe(&settings, &self.openclaw_env, &self.openclaw_cli).await;
        let now = Timestamp::now();
        self.publish_machine(&self.fleet.this.id, |m| {
            // Since when the gateway has not listened, on our clock.
            if status.gateway_listening == Some(false) {
                status.gateway_down_since = m
                    .openclaw
                    .as_ref()
                    .filter(|o| o.gateway_listening == Some(false))
                    .and_then(|o| o.gateway_down_since)
                    .or(Some(now));
            }
            m.openclaw = Some(status);
            m.probed_at.openclaw = Some(now);
        });
    }
}

/// Keeps this machine's Clawdbot chain view true to the fleet's Ollamas
/// (either can change it).
fn refresh_chain(snap: &mut Snapshot) {
    let Some(i) = snap
        .machines
        .iter()
        .position(|m| m.is_self && m.openclaw.is_some())
    else {
        return;
    };
    let view = snap.machines[i]
        .openclaw
        .as_ref()
        .map(|c| crate::openclaw::chain::assess(c, snap));
    if let Some(c) = snap.machines[i].openclaw.as_mut() {
        c.chain = view.filter(|v| !v.models.is_empty());
    }
}

/// Adds the config's "what it is for" to each installed model.
fn attach_purposes(machine: &MachineConfig, status: &mut OllamaStatus) {
    for model in &mut status.models {
        model.purpose = machine
            .models
            .iter()
            .find(|c| c.name == model.name || c.name == strip_latest(&model.name))
            .and_then(|c| c.purpose.clone());
    }
}

/// `qwen3:latest` is what Ollama lists for a model pulled as `qwen3`.
fn strip_latest(name: &str) -> &str {
    name.strip_suffix(":latest").unwrap_or(name)
}
