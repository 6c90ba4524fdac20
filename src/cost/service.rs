//! The cost engine inside the daemon: a cycle every `[costs] interval_secs`
//! (read new transcript lines, price the month, check the alarms), its
//! summary in the snapshot, its events on a broadcast channel, and views of
//! any month on demand for the API.

use crate::every::Every;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use super::alarm::PeerSpend;
use super::engine::{CostEvent, Engine, Settings};
use super::report::{Month, MonthReport};
use super::{CostsView, view};
use crate::fleet::Fleet;
use crate::publish::{Publisher, SnapshotRx};
pub use crate::snapshot::CostSummary;
use crate::snapshot::Share;

impl CostSummary {
    fn from_report(r: &MonthReport, share: Share) -> CostSummary {
        CostSummary {
            month: r.month.clone(),
            time_zone: r.time_zone.clone(),
            today_usd: r.today_usd,
            month_to_date_usd: r.month_to_date_usd,
            projection: r
                .projection
                .as_ref()
                .map(|p| [p.low_usd, p.expected_usd, p.high_usd]),
            savings_usd: r.savings_usd,
            savings_model: r.savings_model.clone(),
            budget_usd: r.budget.as_ref().map(|b| b.budget_usd),
            previous_month_usd: r.previous_month_usd,
            local_tokens: r.local.total,
            cloud_tokens: r.cloud.total,
            share,
            unpriced_models: r.unpriced.iter().map(|u| u.model.clone()).collect(),
            alarms: Vec::new(),
            flags: r.flags.clone(),
            transcripts: None,
            error: None,
            updated_at: Some(r.generated_at),
        }
    }
}

/// How many events wait for a slow subscriber before it skips ahead.
const EVENT_BUFFER: usize = 64;

/// The cost engine, shared by the daemon's cycle and the API.
pub struct CostService {
    settings: Settings,
    fleet: Arc<Fleet>,
    /// Opened on the first cycle (or view); `None` until then or while it
    /// cannot be opened.
    engine: Mutex<Option<Engine>>,
    events: broadcast::Sender<CostEvent>,
}

impl std::fmt::Debug for CostService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CostService")
            .field("machine", &self.settings.machine)
            .finish_non_exhaustive()
    }
}

impl CostService {
    /// A service for `settings`; nothing is opened yet.
    pub fn new(settings: Settings, fleet: Arc<Fleet>) -> Arc<CostService> {
        Arc::new(CostService {
            settings,
            fleet,
            engine: Mutex::new(None),
            events: broadcast::channel(EVENT_BUFFER).0,
        })
    }

    /// Alarm crossings as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<CostEvent> {
        self.events.subscribe()
    }

    /// Runs `f` with the engine, opening it first if needed. Blocking.
    fn with_engine<T>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, super::CostError>,
    ) -> Result<T, String> {
        let mut guard = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(Engine::open(self.settings.clone()).map_err(|e| e.to_string())?);
        }
        let Some(engine) = guard.as_mut() else {
            return Err("the cost engine is not open".to_owned());
        };
        f(engine).map_err(|e| e.to_string())
    }

    /// One cycle: new transcript lines, this month, the leak window, alarms
    /// (the fleet's budget over this machine's and `peers`' figures).
    /// Blocking.
    pub fn cycle(
        &self,
        now: Timestamp,
        local_healthy: bool,
        peers: &HashMap<String, CostSummary>,
    ) -> (CostSummary, Vec<CostEvent>) {
        let result = self.with_engine(|engine| {
            let ingest = engine.ingest()?;
            let report = engine.current(now)?;
            let share = engine.share(now)?;
            let spend = peers
                .values()
                .filter(|s| s.error.is_none() && s.month == report.month)
                .fold(PeerSpend::default(), |acc, s| PeerSpend {
                    month_to_date_usd: acc.month_to_date_usd + s.month_to_date_usd,
                    machines: acc.machines + 1,
                });
            let events = engine.check_alarms(&report, &share, local_healthy, &spend, now)?;
            let mut summary = CostSummary::from_report(&report, share);
            summary.alarms = engine
                .active_alarms()?
                .into_iter()
                .map(|a| a.message)
                .collect();
            summary.transcripts = ingest;
            Ok((summary, events))
        });
        match result {
            Ok(r) => r,
            Err(error) => (
                CostSummary {
                    error: Some(error),
                    updated_at: Some(now),
                    ..CostSummary::default()
                },
                Vec::new(),
            ),
        }
    }

    /// The figures of `month` (the current one when `None`), with the
    /// peers' current-month summaries from `snapshot`. Blocking.
    pub fn view(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        month: Option<Month>,
        now: Timestamp,
    ) -> Result<CostsView, String> {
        let fleet = self.fleet.clone();
        let peers = peer_summaries(snapshot);
        self.with_engine(|engine| view(engine, &fleet, &peers, month, now))
    }

    /// The daemon's loop: a cycle at once, then every `interval`, until
    /// `cancel`.
    pub async fn run(
        self: Arc<Self>,
        publisher: Publisher,
        snapshot: SnapshotRx,
        interval: Duration,
        cancel: CancellationToken,
    ) {
        let mut last_error: Option<String> = None;
        let mut every = Every::new(interval, &cancel);
        while every.tick().await {
            let (local_healthy, peers) = {
                let snap = snapshot.borrow();
                let healthy = snap
                    .machines
                    .iter()
                    .any(|m| m.ollama.as_ref().is_some_and(|o| o.reachable));
                (healthy, peer_summaries(&snap))
            };
            let me = self.clone();
            let span = tracing::info_span!("costs");
            let done = tokio::task::spawn_blocking(move || {
                me.cycle(Timestamp::now(), local_healthy, &peers)
            })
            .instrument(span)
            .await;
            let (summary, events) = match done {
                Ok(r) => r,
                Err(e) => {
                    warn!("the cost cycle did not finish: {e}");
                    continue;
                }
            };
            // Said once, not every cycle, and said again when it clears.
            if summary.error != last_error {
                match &summary.error {
                    Some(e) => warn!("costs: {e}"),
                    None => info!("costs: figures are back"),
                }
                last_error.clone_from(&summary.error);
            }
            if let Some(t) = &summary.transcripts {
                for p in &t.problems {
                    warn!("transcripts: {p}");
                }
            }
            for event in events {
                if event.active {
                    warn!(alarm = %event.alarm, "{}", event.message);
                } else {
                    info!(alarm = %event.alarm, "{}", event.message);
                }
                // No subscriber is fine: the event is in the store.
                let _ = self.events.send(event);
            }
            publisher.publish_costs(&self.settings.machine, summary);
        }
    }
}

/// The peers' cost summaries in `snapshot`, by machine id: what each peer's
/// own daemon computed, as fleet polling last brought it.
pub fn peer_summaries(snapshot: &crate::snapshot::Snapshot) -> HashMap<String, CostSummary> {
    snapshot
        .machines
        .iter()
        .filter(|m| !m.is_self)
        .filter_map(|m| m.costs.clone().map(|c| (m.id.clone(), c)))
        .collect()
}
