//! Budgets and the credit-leak alarm: rules evaluated each cost cycle, with
//! their state kept in the cost store so that a crossing is announced once —
//! not every cycle, and not again after a restart.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::engine::{ActiveAlarm, CostEvent, Settings, Share};
use super::report::MonthReport;
use super::store::{CostStore, StoreError};

/// One rule's verdict this cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Stable key: a new month (or day) is a new alarm.
    pub key: String,
    /// Event kind.
    pub kind: &'static str,
    /// The machine, or `None` for the fleet.
    pub machine: Option<String>,
    /// Whether the alarm is on.
    pub active: bool,
    /// What was measured.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// In words, for when it starts.
    pub message: String,
    /// In words, for when it ends.
    pub resolved: String,
}

/// What the peers spent in the month of a report, as their own daemons
/// computed it (fleet polling brings it): the rest of the fleet's budget.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeerSpend {
    /// The peers' month to date, summed.
    pub month_to_date_usd: f64,
    /// How many peers sent figures for the month.
    pub machines: usize,
}

/// The rules for this machine's `report`, the leak window's `share`, and
/// the fleet's budget over this machine's spend and `peers`'.
pub fn rules(
    settings: &Settings,
    report: &MonthReport,
    share: &Share,
    local_healthy: bool,
    peers: &PeerSpend,
) -> Vec<Rule> {
    let name = &settings.machine_name;
    let id = &settings.machine;
    let month = &report.month;
    let spent = report.month_to_date_usd;
    let mut rules = Vec::new();
    if let Some(budget) = settings.machine_budget_usd {
        rules.push(Rule {
            key: format!("budget:{id}:{month}"),
            kind: "budget",
            machine: Some(id.clone()),
            active: spent >= budget,
            value: spent,
            threshold: budget,
            message: format!(
                "{name} has spent ${spent:.2} in {month}, over its ${budget:.2} monthly budget"
            ),
            resolved: format!("{name} is back under its ${budget:.2} budget for {month}"),
        });
        if let Some(p) = report.projection.as_ref().filter(|_| report.in_progress) {
            rules.push(Rule {
                key: format!("budget_projected:{id}:{month}"),
                kind: "budget_projected",
                machine: Some(id.clone()),
                active: spent < budget && p.expected_usd > budget,
                value: p.expected_usd,
                threshold: budget,
                message: format!(
                    "{name} is on course for ${:.2} in {month} (${:.2}–${:.2}), over its ${budget:.2} budget",
                    p.expected_usd, p.low_usd, p.high_usd
                ),
                resolved: format!("{name} is no longer projected over its ${budget:.2} budget"),
            });
        }
    }
    if let Some(budget) = settings.fleet_budget_usd {
        // This machine's spend and what the peers that sent figures spent.
        let fleet = spent + peers.month_to_date_usd;
        let machines = peers.machines + 1;
        rules.push(Rule {
            key: format!("budget:fleet:{month}"),
            kind: "budget",
            machine: None,
            active: fleet >= budget,
            value: fleet,
            threshold: budget,
            message: format!(
                "the fleet has spent ${fleet:.2} in {month} ({machines} machine{} reporting), over its ${budget:.2} monthly budget",
                if machines == 1 { "" } else { "s" }
            ),
            resolved: format!("the fleet is back under its ${budget:.2} budget for {month}"),
        });
    }
    if let (Some(budget), Some(today)) = (settings.daily_budget_usd, report.today_usd) {
        let date = report
            .daily
            .last()
            .map(|d| d.date.to_string())
            .unwrap_or_default();
        rules.push(Rule {
            key: format!("daily_budget:{id}:{date}"),
            kind: "daily_budget",
            machine: Some(id.clone()),
            active: today >= budget,
            value: today,
            threshold: budget,
            message: format!(
                "{name} has spent ${today:.2} today, over the ${budget:.2} daily budget"
            ),
            resolved: format!("{name} is back under the ${budget:.2} daily budget"),
        });
    }
    let leak = &settings.leak;
    let all = share.local_tokens + share.cloud_tokens;
    let percent = share.cloud_percent.unwrap_or(0.0);
    rules.push(Rule {
        key: format!("credit_leak:{id}"),
        kind: "credit_leak",
        machine: Some(id.clone()),
        active: local_healthy && all >= leak.min_tokens && percent > leak.cloud_share_percent,
        value: percent,
        threshold: leak.cloud_share_percent,
        message: format!(
            "credit leak on {name}: {percent:.0}% of the last {} min's tokens ({} of {all}) went to the cloud while local models were up",
            leak.window_mins, share.cloud_tokens
        ),
        resolved: format!("{name}: cloud share back to {percent:.0}% of tokens"),
    });
    rules
}

/// Stores each rule's state and returns the events of those that changed.
/// A rule seen for the first time only raises an event if it is on.
pub fn apply(
    store: &mut CostStore,
    rules: Vec<Rule>,
    now: Timestamp,
) -> Result<Vec<CostEvent>, StoreError> {
    let path = store.path.clone();
    let err = |action| {
        let path = path.clone();
        move |source| StoreError::Sqlite {
            path: path.clone(),
            action,
            source,
        }
    };
    let tx = store
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("record alarms"))?;
    let mut events = Vec::new();
    for rule in rules {
        let was: Option<bool> = tx
            .query_row(
                "SELECT active FROM alarms WHERE key = ?1",
                [&rule.key],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("read an alarm's state"))?;
        if was == Some(rule.active) || (was.is_none() && !rule.active) {
            if was.is_none() {
                tx.execute(
                    "INSERT INTO alarms (key, active, since_us, value, threshold, message) VALUES (?1, 0, ?2, ?3, ?4, ?5)",
                    params![rule.key, now.as_microsecond(), rule.value, rule.threshold, rule.resolved],
                )
                .map_err(err("record an alarm"))?;
            }
            continue;
        }
        let message = if rule.active {
            &rule.message
        } else {
            &rule.resolved
        };
        tx.execute(
            "INSERT INTO alarms (key, active, since_us, value, threshold, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (key) DO UPDATE SET active = ?2, since_us = ?3, value = ?4, threshold = ?5, message = ?6",
            params![rule.key, rule.active, now.as_microsecond(), rule.value, rule.threshold, message],
        )
        .map_err(err("record an alarm"))?;
        tx.execute(
            "INSERT INTO cost_events (at_us, kind, alarm, machine, active, value, threshold, message) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                now.as_microsecond(),
                rule.kind,
                rule.key,
                rule.machine,
                rule.active,
                rule.value,
                rule.threshold,
                message
            ],
        )
        .map_err(err("record a cost event"))?;
        events.push(CostEvent {
            at: now,
            kind: rule.kind.to_owned(),
            alarm: rule.key,
            machine: rule.machine,
            active: rule.active,
            value: rule.value,
            threshold: rule.threshold,
            message: message.clone(),
        });
    }
    tx.commit().map_err(err("record alarms"))?;
    Ok(events)
}

/// The alarms on now, oldest first.
pub fn active(store: &CostStore) -> Result<Vec<ActiveAlarm>, StoreError> {
    let err = store.sqlite("read alarms");
    let mut stmt = store
        .conn
        .prepare_cached(
            "SELECT key, since_us, message FROM alarms WHERE active = 1 ORDER BY since_us",
        )
        .map_err(&err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ActiveAlarm {
                alarm: r.get(0)?,
                since: Timestamp::from_microsecond(r.get(1)?).unwrap_or(Timestamp::UNIX_EPOCH),
                message: r.get(2)?,
            })
        })
        .map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

/// The last `limit` events, newest first.
pub fn events(store: &CostStore, limit: usize) -> Result<Vec<CostEvent>, StoreError> {
    let err = store.sqlite("read cost events");
    let mut stmt = store
        .conn
        .prepare_cached(
            "SELECT at_us, kind, alarm, machine, active, value, threshold, message FROM cost_events \
             ORDER BY id DESC LIMIT ?1",
        )
        .map_err(&err)?;
    let rows = stmt
        .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(CostEvent {
                at: Timestamp::from_microsecond(r.get(0)?).unwrap_or(Timestamp::UNIX_EPOCH),
                kind: r.get(1)?,
                alarm: r.get(2)?,
                machine: r.get(3)?,
                active: r.get(4)?,
                value: r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
                threshold: r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
                message: r.get(7)?,
            })
        })
        .map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}
