//! Cost estimates: prices as data, usage from the proxy's ledger and from
//! the agent's transcripts, monthly figures per machine and for the fleet,
//! budgets and the credit-leak alarm.
//!
//! - [`prices`]: the dated price table (embedded, overlaid by the user's file);
//! - [`store`]: `costs.sqlite` (transcript turns, read offsets, alarm state);
//! - [`transcripts`]: incremental reading of OpenClaw's and Clawdbot's
//!   session transcripts, each turn counted once;
//! - [`openclaw`]: OpenClaw's per-agent SQLite store, read only;
//! - [`engine`]: gathers and counts each request once, local or cloud;
//! - [`report`]: the month's figures, projection and savings;
//! - [`alarm`]: budgets and the credit leak, announced once per crossing;
//! - [`service`]: the daemon's cost cycle, snapshot summary and events;
//! - [`table`]: the `clawfleet costs` table.

pub mod alarm;
pub mod engine;
pub mod openclaw;
pub mod prices;
pub mod report;
pub mod service;
pub mod store;
pub mod table;
pub mod transcripts;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use engine::{ActiveAlarm, CostError, CostEvent, Engine, Settings, Share};
pub use report::{Month, MonthReport};

/// Every figure the API and the CLI show, for one month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostsView {
    /// `YYYY-MM`.
    pub month: String,
    /// The time zone days are counted in.
    pub time_zone: String,
    /// When computed.
    pub generated_at: Timestamp,
    /// The fleet's totals: the sum of the machines that reported.
    pub fleet: FleetCosts,
    /// One row per machine of the fleet.
    pub machines: Vec<MachineRow>,
    /// Alarms on now.
    pub alarms: Vec<ActiveAlarm>,
    /// The latest cost events, newest first.
    pub events: Vec<CostEvent>,
    /// Where the prices came from.
    pub price_sources: Vec<String>,
}

/// One machine's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRow {
    /// The machine id.
    pub machine: String,
    /// Its display name.
    pub name: String,
    /// This machine.
    pub is_self: bool,
    /// Its figures, when known: this machine's, in full.
    pub report: Option<MonthReport>,
    /// A peer's figures of the current month, as its own daemon computed
    /// them and fleet polling last brought them (its snapshot's `costs`).
    #[serde(default)]
    pub summary: Option<service::CostSummary>,
    /// Why there are none, or how old they are.
    pub note: Option<String>,
}

/// The fleet's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetCosts {
    /// Cloud spend of the month so far.
    pub month_to_date_usd: f64,
    /// Today's cloud spend (a month in progress).
    pub today_usd: Option<f64>,
    /// Projection low, expected and high (a month in progress).
    pub projection: Option<[f64; 3]>,
    /// The month before.
    pub previous_month_usd: f64,
    /// Change against the month before, percent.
    pub change_percent: Option<f64>,
    /// What local models saved; `None` if a machine's savings are unknown.
    pub savings_usd: Option<f64>,
    /// Tokens served locally.
    pub local_tokens: u64,
    /// Tokens sent to the cloud.
    pub cloud_tokens: u64,
    /// The fleet's monthly budget.
    pub budget_usd: Option<f64>,
    /// Some cloud usage had no price.
    pub has_unpriced: bool,
    /// Machines with figures.
    pub machines_reporting: usize,
    /// Machines in the fleet.
    pub machines_total: usize,
}

/// Why a peer's row is empty: it has not sent figures for the month.
pub const PEER_NOTE: &str =
    "each machine meters its own usage; peers' figures arrive with fleet polling";

/// Why a peer's row is empty for a month that is not the current one.
pub const PEER_PAST_NOTE: &str =
    "peers send only the current month's figures: ask that machine for earlier months";

/// The view of `month` (the current month when `None`): this machine's
/// report from `engine`, each peer's figures from `peers` (the current
/// month's [`service::CostSummary`] by machine id, as fleet polling brought
/// them), and the fleet's totals over every machine with figures.
pub fn view(
    engine: &mut Engine,
    fleet: &crate::fleet::Fleet,
    peers: &std::collections::HashMap<String, service::CostSummary>,
    month: Option<Month>,
    now: Timestamp,
) -> Result<CostsView, CostError> {
    let current = Month::of(report::local_date(now, engine.time_zone()));
    let month = month.unwrap_or(current);
    let own = engine.month(month, now)?;
    let mut machines = Vec::new();
    for m in fleet.machines() {
        let is_self = m.id == fleet.this.id;
        let summary = (!is_self)
            .then(|| peers.get(&m.id))
            .flatten()
            .filter(|s| s.error.is_none() && s.month == month.to_string());
        let note = match (is_self, summary) {
            (true, _) => None,
            (false, Some(s)) => s
                .updated_at
                .map(|t| format!("as {} computed it at {t}", m.name)),
            (false, None) if month != current => Some(PEER_PAST_NOTE.to_owned()),
            (false, None) => Some(PEER_NOTE.to_owned()),
        };
        machines.push(MachineRow {
            machine: m.id.clone(),
            name: m.name.clone(),
            is_self,
            report: is_self.then(|| own.clone()),
            summary: summary.cloned(),
            note,
        });
    }
    if !machines.iter().any(|r| r.is_self) {
        machines.insert(
            0,
            MachineRow {
                machine: fleet.this.id.clone(),
                name: fleet.this.name.clone(),
                is_self: true,
                report: Some(own.clone()),
                summary: None,
                note: None,
            },
        );
    }
    let fleet_costs = fleet_totals(&machines, engine.settings().fleet_budget_usd);
    Ok(CostsView {
        month: month.to_string(),
        time_zone: own.time_zone.clone(),
        generated_at: now,
        fleet: fleet_costs,
        machines,
        alarms: engine.active_alarms()?,
        events: engine.events(20)?,
        price_sources: engine.prices().sources.clone(),
    })
}

/// What the fleet's totals add of one machine.
struct Figures {
    month_to_date: f64,
    previous_month: f64,
    local_tokens: u64,
    cloud_tokens: u64,
    unpriced: bool,
    savings: Option<f64>,
    today: Option<f64>,
    projection: Option<[f64; 3]>,
}

/// Sums the rows that have figures: this machine's report and the peers'
/// summaries.
pub fn fleet_totals(rows: &[MachineRow], budget_usd: Option<f64>) -> FleetCosts {
    let mut f = FleetCosts {
        budget_usd,
        machines_total: rows.len(),
        savings_usd: Some(0.0),
        ..FleetCosts::default()
    };
    let mut projection: Option<[f64; 3]> = None;
    let mut today: Option<f64> = None;
    for row in rows {
        // A full report (this machine), else a peer's summary: the same
        // figures either way.
        let figures = match (&row.report, &row.summary) {
            (Some(r), _) => Figures {
                month_to_date: r.month_to_date_usd,
                previous_month: r.previous_month_usd,
                local_tokens: r.local.total,
                cloud_tokens: r.cloud.total,
                unpriced: !r.unpriced.is_empty(),
                savings: r.savings_usd,
                today: r.today_usd,
                projection: r
                    .projection
                    .as_ref()
                    .map(|p| [p.low_usd, p.expected_usd, p.high_usd]),
            },
            (None, Some(s)) => Figures {
                month_to_date: s.month_to_date_usd,
                previous_month: s.previous_month_usd,
                local_tokens: s.local_tokens,
                cloud_tokens: s.cloud_tokens,
                unpriced: !s.unpriced_models.is_empty(),
                savings: s.savings_usd,
                today: s.today_usd,
                projection: s.projection,
            },
            (None, None) => continue,
        };
        f.machines_reporting += 1;
        f.month_to_date_usd += figures.month_to_date;
        f.previous_month_usd += figures.previous_month;
        f.local_tokens += figures.local_tokens;
        f.cloud_tokens += figures.cloud_tokens;
        f.has_unpriced |= figures.unpriced;
        f.savings_usd = match (f.savings_usd, figures.savings) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        if let Some(t) = figures.today {
            today = Some(today.unwrap_or(0.0) + t);
        }
        if let Some(p) = figures.projection {
            let sum = projection.get_or_insert([0.0; 3]);
            for (s, v) in sum.iter_mut().zip(p) {
                *s += v;
            }
        }
    }
    f.today_usd = today;
    f.projection = projection;
    let reference = projection.map_or(f.month_to_date_usd, |p| p[1]);
    f.change_percent = (f.previous_month_usd > 0.0)
        .then(|| (reference - f.previous_month_usd) / f.previous_month_usd * 100.0);
    f
}
