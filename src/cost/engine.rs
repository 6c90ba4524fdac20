//! The cost engine: gathers usage from the ledger and the transcripts, counts
//! each request once, prices it and keeps the alarms.
//!
//! **Counting once.** An agent's turn that went through this machine's proxy
//! is in both sources: the transcript line and the ledger row. The ledger is
//! kept (it knows which machine served), and the transcript turn is left out
//! when the ledger holds a request for the same model with exactly the same
//! four token counts that started between 15 minutes before and 1 minute
//! after the turn's time; each ledger row can stand for one turn only.
//! Everything else in the transcripts (direct Anthropic calls, providers that
//! bypass the proxy) is counted from the transcripts.
//!
//! **Local or cloud.** A model with a price in the table is cloud. Otherwise
//! a request the proxy sent to a fleet machine, or a turn whose agent
//! provider is local (named in `[costs] local_providers`, or whose `baseUrl`
//! in the agent's config is loopback or a fleet machine), is local and free.
//! Anything else is cloud without a price: counted, and flagged as unpriced.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::prices::PriceTable;
use super::report::{self, Context, Item, Month, MonthReport, Source, Sources};
use super::store::{CostStore, STORE_FILE, StoreError, TurnFlags};
use crate::config::ConfigError;
use crate::config::{Config, LeakConfig, MachineConfig};
use crate::ledger::{self, LedgerError};
pub use crate::snapshot::Share;

/// How long before a transcript turn its ledger twin may have started.
const MATCH_BEFORE: SignedDuration = SignedDuration::from_mins(15);
/// How long after.
const MATCH_AFTER: SignedDuration = SignedDuration::from_mins(1);

/// What can go wrong computing costs.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The cost store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Reading the ledger failed.
    #[error("ledger {}: cannot read usage: {}", path.display(), crate::sqlite::explain(source))]
    LedgerRead {
        /// The ledger file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The price file is wrong.
    #[error(transparent)]
    Prices(#[from] ConfigError),
    /// `[costs] time_zone` names no zone this machine knows.
    #[error("[costs] time_zone {name:?}: {reason}")]
    TimeZone {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// One alarm crossing (or its end), as stored and broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEvent {
    /// When.
    pub at: Timestamp,
    /// `budget`, `budget_projected`, `daily_budget` or `credit_leak`.
    pub kind: String,
    /// The alarm's key (`budget:macmini:2026-11`).
    pub alarm: String,
    /// The machine, or `None` for the fleet.
    pub machine: Option<String>,
    /// `true` when the alarm started, `false` when it ended.
    pub active: bool,
    /// The measured value (USD, or percent for the leak).
    pub value: f64,
    /// The threshold crossed.
    pub threshold: f64,
    /// In words, for a notification.
    pub message: String,
}

/// An alarm that is on now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlarm {
    /// Its key.
    pub alarm: String,
    /// Since when.
    pub since: Timestamp,
    /// In words.
    pub message: String,
}

/// The settings the engine reads from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This machine's id.
    pub machine: String,
    /// Its display name.
    pub machine_name: String,
    /// Its monthly budget.
    pub machine_budget_usd: Option<f64>,
    /// The fleet's monthly budget.
    pub fleet_budget_usd: Option<f64>,
    /// The daily budget.
    pub daily_budget_usd: Option<f64>,
    /// The savings model.
    pub savings_model: String,
    /// Local provider names and `prefix*` patterns.
    pub local_providers: Vec<String>,
    /// The leak rule.
    pub leak: LeakConfig,
    /// Transcripts to read, if any.
    pub transcripts_dir: Option<PathBuf>,
    /// The agent's config, for its providers' `baseUrl`s.
    pub agent_config: Option<PathBuf>,
    /// Hosts of the fleet's machines, by machine id.
    pub fleet_hosts: Vec<(String, String)>,
    /// The price file overlay.
    pub prices_path: Option<PathBuf>,
    /// The time zone name, if configured.
    pub time_zone: Option<String>,
    /// `data_dir`.
    pub data_dir: PathBuf,
}

impl Settings {
    /// The settings for `this` machine from `config`; `config_file` is where
    /// the config was read from (the price file is looked for beside it).
    pub fn from_config(
        config: &Config,
        this: &MachineConfig,
        config_file: Option<&Path>,
    ) -> Settings {
        let costs = &config.costs;
        // The install OpenClaw itself would use: its config, and its
        // agents folder for the transcripts.
        let install = crate::openclaw::locate::locate(
            &config.openclaw,
            &crate::openclaw::locate::Environment::current(),
        );
        let agent_config =
            (!install.config_path.is_empty()).then(|| PathBuf::from(&install.config_path));
        let transcripts_dir = costs.read_transcripts.then(|| {
            costs.transcripts_dir.clone().or_else(|| {
                (!install.state_dir.is_empty())
                    .then(|| PathBuf::from(&install.state_dir).join("agents"))
            })
        });
        let prices_path = costs.prices_path.clone().or_else(|| {
            config_file
                .map(Path::to_path_buf)
                .or_else(crate::config::default_path)
                .and_then(|p| p.parent().map(|d| d.join(super::prices::USER_FILE)))
        });
        let mut fleet_hosts = Vec::new();
        for m in &config.machines {
            for host in [&m.hostname, &m.tailnet_ip].into_iter().flatten() {
                fleet_hosts.push((m.id.clone(), host.clone()));
            }
            for url in [&m.ollama_url, &m.fleet_url].into_iter().flatten() {
                if let Some(host) = url_host(url) {
                    fleet_hosts.push((m.id.clone(), host));
                }
            }
        }
        Settings {
            machine: this.id.clone(),
            machine_name: this.name.clone(),
            machine_budget_usd: this.monthly_budget_usd,
            fleet_budget_usd: costs.monthly_budget_usd,
            daily_budget_usd: costs.daily_budget_usd,
            savings_model: costs.savings_model.clone(),
            local_providers: costs.local_providers.clone(),
            leak: costs.leak.clone(),
            transcripts_dir: transcripts_dir.flatten(),
            agent_config,
            fleet_hosts,
            prices_path,
            time_zone: costs.time_zone.clone(),
            data_dir: config.data_dir(),
        }
    }
}

/// The host of an `http://host:port/...` URL, lowercase, without brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the agent's config says about its providers: which are local, and
/// on which fleet machine.
#[derive(Debug, Default)]
struct Providers {
    local: HashMap<String, Option<String>>,
}

/// Reads the providers of the agent's config. A missing or unreadable file
/// means none are known (the configured patterns still apply).
fn agent_providers(path: Option<&Path>, fleet_hosts: &[(String, String)]) -> Providers {
    let mut out = Providers::default();
    let Some(path) = path else { return out };
    let Ok(text) = crate::outside::read_text(path, crate::openclaw::config::MAX_CONFIG_BYTES)
    else {
        return out;
    };
    let Ok(config) = crate::openclaw::config::read(&text) else {
        return out;
    };
    for p in config.providers {
        if p.api.as_deref() == Some("anthropic-messages") {
            continue;
        }
        let Some(host) = p.base_url.as_deref().and_then(url_host) else {
            continue;
        };
        let machine = fleet_hosts
            .iter()
            .find(|(_, h)| crate::fleet::same_host(h, &host))
            .map(|(id, _)| id.clone());
        if machine.is_some() || is_loopback_host(&host) {
            out.local.insert(p.name, machine);
        }
    }
    out
}

/// A transcript turn is local (free) when its model has no price and its
/// provider is a local one: in the agent's config with a loopback or fleet
/// `baseUrl`, or named by `[costs] local_providers`.
fn is_local(
    prices: &PriceTable,
    providers: &Providers,
    patterns: &[String],
    provider: &str,
    model: &str,
) -> bool {
    !prices.knows(model)
        && (providers.local.contains_key(provider)
            || patterns.iter().any(|p| matches_pattern(provider, p)))
}

fn matches_pattern(name: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Counts of doubtful transcript lines, for the report's flags.
#[derive(Debug, Default)]
struct Doubts {
    bad_fields: u64,
    no_timestamp: u64,
    no_model: u64,
}

/// The cost engine. Blocking: run it on a blocking thread.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    store: CostStore,
    ledger_path: PathBuf,
    ledger: Option<Connection>,
    prices: PriceTable,
    tz: TimeZone,
}

impl Engine {
    /// Opens the cost store in `data_dir`, loads the prices and the time zone.
    pub fn open(settings: Settings) -> Result<Engine, CostError> {
        let tz = match &settings.time_zone {
            Some(name) => TimeZone::get(name).map_err(|e| CostError::TimeZone {
                name: name.clone(),
                reason: e.to_string(),
            })?,
            None => TimeZone::system(),
        };
        let prices = PriceTable::load(settings.prices_path.as_deref())?;
        let store = CostStore::open(&settings.data_dir.join(STORE_FILE))?;
        let ledger_path = settings.data_dir.join(crate::ledger::LEDGER_FILE);
        Ok(Engine {
            settings,
            store,
            ledger_path,
            ledger: None,
            prices,
            tz,
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The price table in use.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// The time zone days are counted in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The cost store.
    pub fn store_mut(&mut self) -> &mut CostStore {
        &mut self.store
    }

    /// Reads what is new in the transcripts (when enabled).
    pub fn ingest(&mut self) -> Result<Option<super::transcripts::IngestReport>, CostError> {
        let Some(dir) = self.settings.transcripts_dir.clone() else {
            return Ok(None);
        };
        Ok(Some(self.store.ingest_transcripts(&dir)?))
    }

    fn ledger(&mut self) -> Result<Option<&Connection>, CostError> {
        if self.ledger.is_none() {
            self.ledger = ledger::usage::open_read_only(&self.ledger_path)?;
        }
        Ok(self.ledger.as_ref())
    }

    /// Every request in `[from, until)`, counted once, classified local or
    /// cloud; with what went into it and what was doubtful.
    fn items(
        &mut self,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<(Vec<Item>, Sources, Doubts), CostError> {
        let (from_us, until_us) = (from.as_microsecond(), until.as_microsecond());
        let mut items = Vec::new();
        let mut sources = Sources::default();
        let ledger_path = self.ledger_path.clone();
        let read = |source| CostError::LedgerRead {
            path: ledger_path.clone(),
            source,
        };
        // The turns first: matching them needs the ledger's connection.
        let turns = self.store.turns_between(from, until)?;
        let providers = agent_providers(
            self.settings.agent_config.as_deref(),
            &self.settings.fleet_hosts,
        );
        let mut used: HashSet<i64> = HashSet::new();
        let mut doubts = Doubts::default();
        if let Some(conn) = self.ledger()? {
            for g in ledger::usage::local_groups(conn, from_us, until_us).map_err(read)? {
                sources.ledger_requests += g.requests;
                items.push(Item {
                    at: Timestamp::from_microsecond(g.quarter_us).unwrap_or(from),
                    requests: g.requests,
                    model: g.model,
                    provider: "ollama".to_owned(),
                    served_by: (!g.machine.is_empty()).then_some(g.machine),
                    local: true,
                    usage: g.usage,
                    single: g.requests == 1,
                    source: Source::Ledger,
                });
            }
            for r in ledger::usage::cloud_rows(conn, from_us, until_us).map_err(read)? {
                sources.ledger_requests += 1;
                items.push(Item {
                    at: Timestamp::from_microsecond(r.started_at_us).unwrap_or(from),
                    requests: 1,
                    model: r.model,
                    provider: "anthropic".to_owned(),
                    served_by: None,
                    local: false,
                    usage: r.usage,
                    single: true,
                    source: Source::Ledger,
                });
            }
        }
        let conn = self.ledger.as_ref();
        let prices = &self.prices;
        let patterns = &self.settings.local_providers;
        for turn in turns {
            if let Some(conn) = conn {
                let lo = turn.at.checked_sub(MATCH_BEFORE).unwrap_or(turn.at);
                let hi = turn.at.checked_add(MATCH_AFTER).unwrap_or(turn.at);
                let ids = ledger::usage::matching_ids(
                    conn,
                    lo.as_microsecond(),
                    hi.as_microsecond(),
                    &turn.model,
                    &turn.usage,
                )
                .map_err(read)?;
                if let Some(id) = ids.into_iter().find(|id| !used.contains(id)) {
                    used.insert(id);
                    sources.counted_once += 1;
                    continue;
                }
            }
            let flags = turn.flags;
            if flags.has(TurnFlags::MISSING_FIELD) || flags.has(TurnFlags::INVALID_FIELD) {
                doubts.bad_fields += 1;
            }
            if flags.has(TurnFlags::NO_TIMESTAMP) {
                doubts.no_timestamp += 1;
            }
            if flags.has(TurnFlags::NO_MODEL) {
                doubts.no_model += 1;
            }
            sources.transcript_turns += 1;
            let known_local = providers.local.get(&turn.provider);
            let local = is_local(prices, &providers, patterns, &turn.provider, &turn.model);
            items.push(Item {
                at: turn.at,
                requests: 1,
                model: if turn.model.is_empty() {
                    "(no model)".to_owned()
                } else {
                    turn.model
                },
                provider: if turn.provider.is_empty() {
                    "(no provider)".to_owned()
                } else {
                    turn.provider
                },
                served_by: known_local.cloned().flatten(),
                local,
                usage: turn.usage,
                single: true,
                source: Source::Transcripts,
            });
        }
        Ok((items, sources, doubts))
    }

    /// The report of `month` for this machine, as of `now`.
    pub fn month(&mut self, month: Month, now: Timestamp) -> Result<MonthReport, CostError> {
        let from = month.previous().start(&self.tz);
        let until = month.next().start(&self.tz);
        let (items, sources, doubts) = self.items(from, until)?;
        let ctx = Context {
            prices: &self.prices,
            tz: &self.tz,
            now,
            machine: &self.settings.machine,
            savings_model: &self.settings.savings_model,
            budget_usd: self.settings.machine_budget_usd,
        };
        let mut report = report::month_report(month, &items, &items, sources, &ctx);
        // Per agent, from the stored turns of the month up to now (as the
        // report counts: nothing dated past now + 5 min).
        let horizon = now
            .checked_add(SignedDuration::from_mins(5))
            .unwrap_or(now)
            .min(until);
        let groups = self.store.turn_groups(
            month.start(&self.tz),
            horizon,
            &self.prices.long_context_thresholds(),
        )?;
        let providers = agent_providers(
            self.settings.agent_config.as_deref(),
            &self.settings.fleet_hosts,
        );
        let patterns = &self.settings.local_providers;
        report.by_agent = report::agent_costs(&groups, &self.prices, |provider, model| {
            is_local(&self.prices, &providers, patterns, provider, model)
        });
        if doubts.bad_fields > 0 {
            report.flags.push(format!(
                "{} transcript turn(s) had missing, negative or fractional token counts (counted as 0 or truncated)",
                doubts.bad_fields
            ));
        }
        if doubts.no_timestamp > 0 {
            report.flags.push(format!(
                "{} transcript turn(s) had no timestamp: dated by their file's modification time",
                doubts.no_timestamp
            ));
        }
        if doubts.no_model > 0 {
            report.flags.push(format!(
                "{} transcript turn(s) named no provider or model",
                doubts.no_model
            ));
        }
        Ok(report)
    }

    /// The current month's report.
    pub fn current(&mut self, now: Timestamp) -> Result<MonthReport, CostError> {
        let month = Month::of(report::local_date(now, &self.tz));
        self.month(month, now)
    }

    /// Local and cloud tokens over the leak window ending at `now`.
    pub fn share(&mut self, now: Timestamp) -> Result<Share, CostError> {
        let window = self.settings.leak.window_mins;
        let mins = i64::try_from(window).unwrap_or(i64::MAX);
        let from = now
            .checked_sub(SignedDuration::from_mins(mins))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let (items, _, _) = self.items(from, now)?;
        let mut share = Share {
            window_mins: window,
            ..Share::default()
        };
        for item in &items {
            let t = report::total(&item.usage);
            if item.local {
                share.local_tokens += t;
            } else {
                share.cloud_tokens += t;
            }
        }
        let all = share.local_tokens + share.cloud_tokens;
        share.cloud_percent = (all > 0).then(|| share.cloud_tokens as f64 / all as f64 * 100.0);
        Ok(share)
    }

    /// Checks budgets and the leak rule against `report` and `share`, stores
    /// each alarm's state, and returns the crossings since the last check:
    /// one event when an alarm starts and one when it ends, never one per
    /// check. `local_healthy` says whether a local Ollama was answering;
    /// `peers` is what the rest of the fleet spent, for the fleet's budget.
    pub fn check_alarms(
        &mut self,
        report: &MonthReport,
        share: &Share,
        local_healthy: bool,
        peers: &super::alarm::PeerSpend,
        now: Timestamp,
    ) -> Result<Vec<CostEvent>, CostError> {
        let rules = super::alarm::rules(&self.settings, report, share, local_healthy, peers);
        Ok(super::alarm::apply(&mut self.store, rules, now)?)
    }

    /// The alarms on now.
    pub fn active_alarms(&self) -> Result<Vec<ActiveAlarm>, CostError> {
        Ok(super::alarm::active(&self.store)?)
    }

    /// The last `limit` cost events, newest first.
    pub fn events(&self, limit: usize) -> Result<Vec<CostEvent>, CostError> {
        Ok(super::alarm::events(&self.store, limit)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            url_host("http://100.115.10.14:11434/v1").as_deref(),
            Some("100.115.10.14")
        );
        assert_eq!(url_host("http://[::1]:11435").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://user:pw@Mini.local/v1").as_deref(),
            Some("mini.local")
        );
        assert_eq!(url_host("http:///x"), None);
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("100.115.10.14"));
    }

    #[test]
    fn provider_patterns() {
        assert!(matches_pattern("ollama-macmini", "ollama*"));
        assert!(matches_pattern("ollama", "ollama*"));
        assert!(!matches_pattern("anthropic", "ollama*"));
        assert!(matches_pattern("lmstudio", "lmstudio"));
        assert!(!matches_pattern("lmstudio2", "lmstudio"));
    }
}
