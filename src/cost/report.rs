//! The figures: what a month cost, where it will land, what local models
//! saved. Pure computation over priced [`Item`]s; [`super::engine`] gathers
//! them from the ledger and the transcripts.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use super::prices::PriceTable;
use crate::usage::Usage;

/// Where an item was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The proxy's ledger.
    Ledger,
    /// The agent's transcripts.
    Transcripts,
}

/// Usage ready to be summed: one request, or several requests of one model on
/// one machine within one quarter-hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// When (the request's start; a group's quarter-hour).
    pub at: Timestamp,
    /// How many requests.
    pub requests: u64,
    /// The model as the client named it.
    pub model: String,
    /// Who served it: the agent's provider name, `anthropic`, or `ollama`
    /// for requests the proxy sent to a fleet machine.
    pub provider: String,
    /// The fleet machine whose Ollama served it, when known.
    pub served_by: Option<String>,
    /// Served by a local model (free).
    pub local: bool,
    /// Tokens.
    pub usage: Usage,
    /// `usage` holds one request (so long-context tiers can be applied).
    pub single: bool,
    /// Where it was read.
    pub source: Source,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Requests.
    pub requests: u64,
    /// Uncached prompt tokens.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Cache reads.
    pub cache_read: u64,
    /// Cache writes.
    pub cache_write: u64,
    /// All four.
    pub total: u64,
}

impl Tokens {
    fn add(&mut self, requests: u64, u: &Usage) {
        self.requests += requests;
        self.input += u.input_tokens;
        self.output += u.output_tokens;
        self.cache_read += u.cache_read_tokens;
        self.cache_write += u.cache_write_tokens;
        self.total += total(u);
    }
}

/// All tokens of `u`.
pub fn total(u: &Usage) -> u64 {
    u.input_tokens
        .saturating_add(u.output_tokens)
        .saturating_add(u.cache_read_tokens)
        .saturating_add(u.cache_write_tokens)
}

/// Spend on one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCost {
    /// The model.
    pub model: String,
    /// Who served it.
    pub provider: String,
    /// Local (free).
    pub local: bool,
    /// Tokens.
    pub tokens: Tokens,
    /// USD; `None` when the model has no price.
    pub usd: Option<f64>,
}

/// Spend with one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderCost {
    /// The provider.
    pub provider: String,
    /// Local (free).
    pub local: bool,
    /// Tokens.
    pub tokens: Tokens,
    /// USD of the priced part.
    pub usd: f64,
}

/// Local tokens served by one fleet machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedBy {
    /// The machine id.
    pub machine: String,
    /// Tokens.
    pub tokens: Tokens,
}

/// One local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// The date, in the report's time zone.
    pub date: Date,
    /// Cloud spend (priced part).
    pub usd: f64,
    /// Tokens served locally.
    pub local_tokens: u64,
    /// Tokens sent to the cloud.
    pub cloud_tokens: u64,
}

/// A model that was used but has no price: counted, shown, never $0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unpriced {
    /// The model.
    pub model: String,
    /// Who served it.
    pub provider: String,
    /// Tokens.
    pub tokens: Tokens,
}

/// Where the month will land.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// Lower end of the range.
    pub low_usd: f64,
    /// The expected total.
    pub expected_usd: f64,
    /// Upper end of the range.
    pub high_usd: f64,
    /// The daily rate the expected total assumes.
    pub daily_rate_usd: f64,
    /// Days of the month still to come (fractional).
    pub days_left: f64,
    /// How it was worked out, in words.
    pub basis: String,
}

/// A budget and how much of it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The budget in USD.
    pub budget_usd: f64,
    /// Spent so far.
    pub spent_usd: f64,
    /// Spent as a percentage of the budget.
    pub percent: f64,
    /// The projection's expected total is above the budget.
    pub projected_over: bool,
}

/// How many sessions [`AgentCost::top_sessions`] lists.
pub const TOP_SESSIONS: usize = 10;

/// One agent's month so far, from its transcript turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCost {
    /// The agent (its folder under `agents/`).
    pub agent: String,
    /// Cloud spend at the price table (the priced part).
    pub usd: f64,
    /// What OpenClaw itself recorded for these turns (`usage.cost.total`,
    /// from its own model catalog), where it did.
    pub reported_usd: Option<f64>,
    /// Tokens served locally.
    pub local: Tokens,
    /// Tokens sent to the cloud.
    pub cloud: Tokens,
    /// Cloud requests of a model with no price: not in `usd`.
    pub unpriced_requests: u64,
    /// Sessions with turns this month.
    pub sessions: u64,
    /// Per model, most expensive first.
    pub by_model: Vec<ModelCost>,
    /// The most expensive sessions, at most [`TOP_SESSIONS`].
    pub top_sessions: Vec<SessionCost>,
}

/// One session's month so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCost {
    /// The session id.
    pub session: String,
    /// Cloud spend at the price table.
    pub usd: f64,
    /// What OpenClaw recorded, where it did.
    pub reported_usd: Option<f64>,
    /// All its tokens, local and cloud.
    pub tokens: Tokens,
    /// Some of its cloud requests have no price.
    pub unpriced: bool,
    /// Its latest turn.
    pub last_at: Timestamp,
}

fn add_reported(sum: &mut Option<f64>, v: Option<f64>) {
    if let Some(v) = v {
        *sum = Some(sum.unwrap_or(0.0) + v);
    }
}

/// Per agent, per model and per session, from turn sums (SQL's
/// [`super::store::CostStore::turn_groups`]). A group's turns share a model,
/// a UTC day and a side of every long-context threshold, so pricing the sum
/// at the rates of its smallest prompt prices each turn as it would be
/// alone. `local(provider, model)` says which are free. Agents most
/// expensive first.
pub fn agent_costs(
    groups: &[super::store::TurnGroup],
    prices: &PriceTable,
    local: impl Fn(&str, &str) -> bool,
) -> Vec<AgentCost> {
    #[derive(Default)]
    struct Acc {
        cost: Option<AgentCost>,
        models: BTreeMap<(String, String, bool), (Tokens, Option<f64>)>,
        sessions: BTreeMap<String, SessionCost>,
    }
    let mut agents: BTreeMap<&str, Acc> = BTreeMap::new();
    for g in groups {
        let acc = agents.entry(g.agent.as_str()).or_default();
        let cost = acc.cost.get_or_insert_with(|| AgentCost {
            agent: g.agent.clone(),
            usd: 0.0,
            reported_usd: None,
            local: Tokens::default(),
            cloud: Tokens::default(),
            unpriced_requests: 0,
            sessions: 0,
            by_model: Vec::new(),
            top_sessions: Vec::new(),
        });
        let is_local = local(&g.provider, &g.model);
        let usd = if is_local {
            Some(0.0)
        } else {
            prices.lookup(&g.model, g.day).map(|entry| {
                let representative = Usage {
                    input_tokens: g.min_prompt,
                    ..Usage::default()
                };
                super::prices::usd(&entry.rates_for(&representative), &g.usage)
            })
        };
        add_reported(&mut cost.reported_usd, g.reported_usd);
        if is_local {
            cost.local.add(g.requests, &g.usage);
        } else {
            cost.cloud.add(g.requests, &g.usage);
        }
        match usd {
            Some(u) => cost.usd += u,
            None => cost.unpriced_requests += g.requests,
        }
        let model = acc
            .models
            .entry((g.model.clone(), g.provider.clone(), is_local))
            .or_insert((Tokens::default(), Some(0.0)));
        model.0.add(g.requests, &g.usage);
        model.1 = match (model.1, usd) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        let session = acc
            .sessions
            .entry(g.session.clone())
            .or_insert_with(|| SessionCost {
                session: g.session.clone(),
                usd: 0.0,
                reported_usd: None,
                tokens: Tokens::default(),
                unpriced: false,
                last_at: g.last_at,
            });
        session.usd += usd.unwrap_or(0.0);
        session.unpriced |= usd.is_none();
        add_reported(&mut session.reported_usd, g.reported_usd);
        session.tokens.add(g.requests, &g.usage);
        session.last_at = session.last_at.max(g.last_at);
    }
    let mut out: Vec<AgentCost> = agents
        .into_values()
        .filter_map(|acc| {
            let mut cost = acc.cost?;
            cost.sessions = acc.sessions.len() as u64;
            cost.by_model = acc
                .models
                .into_iter()
                .map(|((model, provider, local), (tokens, usd))| ModelCost {
                    model,
                    provider,
                    local,
                    tokens,
                    usd,
                })
                .collect();
            cost.by_model.sort_by(|a, b| {
                b.usd
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&a.usd.unwrap_or(f64::INFINITY))
                    .then(b.tokens.total.cmp(&a.tokens.total))
            });
            let mut sessions: Vec<SessionCost> = acc.sessions.into_values().collect();
            sessions.sort_by(|a, b| {
                b.usd
                    .total_cmp(&a.usd)
                    .then(b.tokens.total.cmp(&a.tokens.total))
                    .then(a.session.cmp(&b.session))
            });
            sessions.truncate(TOP_SESSIONS);
            cost.top_sessions = sessions;
            Some(cost)
        })
        .collect();
    out.sort_by(|a, b| {
        b.usd
            .total_cmp(&a.usd)
            .then(b.cloud.total.cmp(&a.cloud.total))
            .then(a.agent.cmp(&b.agent))
    });
    out
}

/// What went into the figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    /// Requests read from the proxy's ledger.
    pub ledger_requests: u64,
    /// Turns read from the agent's transcripts and counted.
    pub transcript_turns: u64,
    /// Transcript turns left out because the ledger holds the same request.
    pub counted_once: u64,
}

/// One machine's costs for one month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthReport {
    /// The machine id.
    pub machine: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The time zone days and months are counted in.
    pub time_zone: String,
    /// When the figures were computed.
    pub generated_at: Timestamp,
    /// The month is still running.
    pub in_progress: bool,
    /// Cloud spend today (a month in progress only).
    pub today_usd: Option<f64>,
    /// Cloud spend of the month so far (the whole month when it is over).
    pub month_to_date_usd: f64,
    /// Where it will land (a month in progress only).
    pub projection: Option<Projection>,
    /// The month before, in full.
    pub previous_month_usd: f64,
    /// Change against the month before, percent: of the projection for a
    /// month in progress, of the total otherwise. `None` when the month before
    /// cost nothing.
    pub change_percent: Option<f64>,
    /// What the local tokens would have cost on [`MonthReport::savings_model`].
    pub savings_usd: Option<f64>,
    /// The cloud model savings are priced at.
    pub savings_model: String,
    /// Tokens served locally.
    pub local: Tokens,
    /// Tokens sent to the cloud.
    pub cloud: Tokens,
    /// Per model, most expensive first.
    pub by_model: Vec<ModelCost>,
    /// Per provider, most expensive first.
    pub by_provider: Vec<ProviderCost>,
    /// Local tokens per serving machine.
    pub served_by: Vec<ServedBy>,
    /// Per day of the month, in order.
    pub daily: Vec<Day>,
    /// Models with no price: not in the dollar figures.
    pub unpriced: Vec<Unpriced>,
    /// Per agent (with its models and top sessions), from every turn read
    /// from its transcripts this month, also those the proxy's ledger holds
    /// (which the machine's totals count once, as ledger requests).
    #[serde(default)]
    pub by_agent: Vec<AgentCost>,
    /// The machine's monthly budget, if set.
    pub budget: Option<Budget>,
    /// What was counted.
    pub sources: Sources,
    /// What is doubtful in the figures, in words.
    pub flags: Vec<String>,
}

/// What a report needs besides the items.
#[derive(Debug)]
pub struct Context<'a> {
    /// Prices.
    pub prices: &'a PriceTable,
    /// The zone days are counted in.
    pub tz: &'a TimeZone,
    /// Now.
    pub now: Timestamp,
    /// The machine.
    pub machine: &'a str,
    /// The model savings are priced at.
    pub savings_model: &'a str,
    /// The machine's monthly budget.
    pub budget_usd: Option<f64>,
}

/// A month: its first day and the instants it spans in a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    /// The first day.
    pub first: Date,
}

impl Month {
    /// The month holding `date`.
    pub fn of(date: Date) -> Month {
        Month {
            first: date.first_of_month(),
        }
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.trim().split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let date = Date::new(y.parse().ok()?, m.parse().ok()?, 1).ok()?;
        Some(Month { first: date })
    }

    /// The month before.
    pub fn previous(self) -> Month {
        Month::of(self.first.saturating_sub(1.month()))
    }

    /// The month after.
    pub fn next(self) -> Month {
        Month::of(self.first.saturating_add(1.month()))
    }

    /// The instant it starts in `tz`.
    pub fn start(self, tz: &TimeZone) -> Timestamp {
        start_of(self.first, tz)
    }

    /// Its days.
    pub fn days(self) -> i8 {
        self.first.days_in_month()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

/// The instant `date` starts in `tz` (the first instant that exists, across a
/// DST gap at midnight).
pub fn start_of(date: Date, tz: &TimeZone) -> Timestamp {
    date.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or_else(|_| {
            // Out of range (year 9999): only with hostile input; the epoch
            // keeps the arithmetic going.
            Timestamp::UNIX_EPOCH
        })
}

/// The date of `at` in `tz`.
pub fn local_date(at: Timestamp, tz: &TimeZone) -> Date {
    at.to_zoned_datetime(tz.clone()).date()
}

/// The UTC day, which prices' `from` dates are in.
fn utc_date(at: Timestamp) -> Date {
    at.to_zoned_datetime(TimeZone::UTC).date()
}

/// The cloud price of `item`: `Some(None)` for local, `None` when unpriced.
fn price(item: &Item, prices: &PriceTable) -> Option<f64> {
    let entry = prices.lookup(&item.model, utc_date(item.at))?;
    Some(if item.single {
        entry.cost(&item.usage)
    } else {
        super::prices::usd(
            &super::prices::Rates {
                input: entry.input,
                output: entry.output,
                cache_read: entry.cache_read,
                cache_write: entry.cache_write,
            },
            &item.usage,
        )
    })
}

/// Cloud spend and token sums of `items`, split by local day in `tz`.
#[derive(Debug, Default)]
struct Tally {
    usd: f64,
    by_day: BTreeMap<Date, Day>,
}

fn tally_days(items: &[Item], ctx: &Context<'_>) -> Tally {
    let mut t = Tally::default();
    for item in items {
        let date = local_date(item.at, ctx.tz);
        let day = t.by_day.entry(date).or_insert_with(|| Day {
            date,
            usd: 0.0,
            local_tokens: 0,
            cloud_tokens: 0,
        });
        if item.local {
            day.local_tokens += total(&item.usage);
        } else {
            day.cloud_tokens += total(&item.usage);
            if let Some(usd) = price(item, ctx.prices) {
                day.usd += usd;
                t.usd += usd;
            }
        }
    }
    t
}

/// The month's report from its items and the month before's.
///
/// `items` may hold anything; only those inside `month` (and before now) are
/// counted. `previous` is the month before's items.
pub fn month_report(
    month: Month,
    items: &[Item],
    previous: &[Item],
    sources: Sources,
    ctx: &Context<'_>,
) -> MonthReport {
    let start = month.start(ctx.tz);
    let end = month.next().start(ctx.tz);
    let in_progress = start <= ctx.now && ctx.now < end;
    let mut flags = Vec::new();

    // A clock that jumped back leaves rows "in the future": shown, not counted.
    let horizon = ctx.now + jiff::SignedDuration::from_mins(5);
    let future: u64 = items
        .iter()
        .filter(|i| i.at >= horizon && i.at < end)
        .map(|i| i.requests)
        .sum();
    if future > 0 {
        flags.push(format!(
            "{future} request(s) are dated after now (did the clock jump?): not counted"
        ));
    }
    let counted: Vec<&Item> = items
        .iter()
        .filter(|i| i.at >= start && i.at < end && i.at < horizon)
        .collect();

    let mut local = Tokens::default();
    let mut cloud = Tokens::default();
    let mut models: BTreeMap<(String, String, bool), (Tokens, Option<f64>)> = BTreeMap::new();
    let mut providers: BTreeMap<(String, bool), (Tokens, f64)> = BTreeMap::new();
    let mut served: BTreeMap<String, Tokens> = BTreeMap::new();
    let mut unpriced: BTreeMap<(String, String), Tokens> = BTreeMap::new();
    let mut savings = Some(0.0);
    let mut month_usd = 0.0;

    for item in &counted {
        let key = (item.model.clone(), item.provider.clone(), item.local);
        let model = models.entry(key).or_insert((Tokens::default(), Some(0.0)));
        model.0.add(item.requests, &item.usage);
        let provider = providers
            .entry((item.provider.clone(), item.local))
            .or_insert((Tokens::default(), 0.0));
        provider.0.add(item.requests, &item.usage);
        if item.local {
            local.add(item.requests, &item.usage);
            if let Some(m) = &item.served_by {
                served
                    .entry(m.clone())
                    .or_default()
                    .add(item.requests, &item.usage);
            }
            let as_cloud = Item {
                model: ctx.savings_model.to_owned(),
                ..(*item).clone()
            };
            savings = match (savings, price(&as_cloud, ctx.prices)) {
                (Some(s), Some(usd)) => Some(s + usd),
                _ => None,
            };
            continue;
        }
        cloud.add(item.requests, &item.usage);
        match price(item, ctx.prices) {
            Some(usd) => {
                month_usd += usd;
                provider.1 += usd;
                if let Some(m) = model.1.as_mut() {
                    *m += usd;
                }
            }
            None => {
                model.1 = None;
                unpriced
                    .entry((item.model.clone(), item.provider.clone()))
                    .or_default()
                    .add(item.requests, &item.usage);
            }
        }
    }
    if savings.is_none() && local.requests > 0 {
        flags.push(format!(
            "savings not computed: the savings model {:?} has no price",
            ctx.savings_model
        ));
    }
    for ((model, provider), tokens) in &unpriced {
        flags.push(format!(
            "{model} ({provider}) has no price: {} request(s), {} tokens not in the dollar figures; add it to prices.toml",
            tokens.requests, tokens.total
        ));
    }

    let owned: Vec<Item> = counted.iter().map(|i| (*i).clone()).collect();
    let days = tally_days(&owned, ctx);
    let mut daily: Vec<Day> = Vec::new();
    let last_day = if in_progress {
        local_date(ctx.now, ctx.tz)
    } else {
        month.first.last_of_month()
    };
    let mut d = month.first;
    while d <= last_day {
        daily.push(days.by_day.get(&d).cloned().unwrap_or(Day {
            date: d,
            usd: 0.0,
            local_tokens: 0,
            cloud_tokens: 0,
        }));
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }

    let prev = previous_total(month, previous, ctx);
    let today_usd = in_progress.then(|| {
        days.by_day
            .get(&local_date(ctx.now, ctx.tz))
            .map_or(0.0, |d| d.usd)
    });
    let projection = in_progress.then(|| {
        project(
            month,
            month_usd,
            &daily,
            &previous_days(month, previous, ctx),
            ctx,
        )
    });
    let reference = projection.as_ref().map_or(month_usd, |p| p.expected_usd);
    let change_percent = (prev > 0.0).then(|| (reference - prev) / prev * 100.0);
    let budget = ctx.budget_usd.map(|b| Budget {
        budget_usd: b,
        spent_usd: month_usd,
        percent: month_usd / b * 100.0,
        projected_over: projection.as_ref().is_some_and(|p| p.expected_usd > b),
    });

    let mut by_model: Vec<ModelCost> = models
        .into_iter()
        .map(|((model, provider, local), (tokens, usd))| ModelCost {
            model,
            provider,
            local,
            tokens,
            usd: if local { Some(0.0) } else { usd },
        })
        .collect();
    by_model.sort_by(|a, b| {
        b.usd
            .unwrap_or(f64::INFINITY)
            .total_cmp(&a.usd.unwrap_or(f64::INFINITY))
            .then(b.tokens.total.cmp(&a.tokens.total))
    });
    let mut by_provider: Vec<ProviderCost> = providers
        .into_iter()
        .map(|((provider, local), (tokens, usd))| ProviderCost {
            provider,
            local,
            tokens,
            usd,
        })
        .collect();
    by_provider.sort_by(|a, b| {
        b.usd
            .total_cmp(&a.usd)
            .then(b.tokens.total.cmp(&a.tokens.total))
    });

    MonthReport {
        machine: ctx.machine.to_owned(),
        month: month.to_string(),
        time_zone: ctx.tz.iana_name().unwrap_or("local").to_owned(),
        generated_at: ctx.now,
        in_progress,
        today_usd,
        month_to_date_usd: month_usd,
        projection,
        previous_month_usd: prev,
        change_percent,
        savings_usd: if local.requests == 0 {
            Some(0.0)
        } else {
            savings
        },
        savings_model: ctx.savings_model.to_owned(),
        local,
        cloud,
        by_model,
        by_provider,
        served_by: served
            .into_iter()
            .map(|(machine, tokens)| ServedBy { machine, tokens })
            .collect(),
        daily,
        unpriced: unpriced
            .into_iter()
            .map(|((model, provider), tokens)| Unpriced {
                model,
                provider,
                tokens,
            })
            .collect(),
        budget,
        sources,
        flags,
        by_agent: Vec::new(),
    }
}

fn previous_total(month: Month, previous: &[Item], ctx: &Context<'_>) -> f64 {
    let (start, end) = (month.previous().start(ctx.tz), month.start(ctx.tz));
    previous
        .iter()
        .filter(|i| !i.local && i.at >= start && i.at < end)
        .filter_map(|i| price(i, ctx.prices))
        .sum()
}

/// The month before's days, for a projection early in a month.
fn previous_days(month: Month, previous: &[Item], ctx: &Context<'_>) -> Vec<Day> {
    let (start, end) = (month.previous().start(ctx.tz), month.start(ctx.tz));
    let items: Vec<Item> = previous
        .iter()
        .filter(|i| i.at >= start && i.at < end)
        .cloned()
        .collect();
    tally_days(&items, ctx).by_day.into_values().collect()
}

/// How many recent full days the projection's rate is taken over.
pub const PROJECTION_DAYS: usize = 7;

/// Month to date plus the days left at the recent daily rate. The rate is the
/// mean of the last [`PROJECTION_DAYS`] full days (reaching into the month
/// before early in a month, and starting at the first day with any usage);
/// the range uses their lower and upper quartiles. With fewer than two full
/// days of data, the pace so far, with a range of half to one and a half of
/// it.
fn project(
    month: Month,
    spent: f64,
    daily: &[Day],
    previous: &[Day],
    ctx: &Context<'_>,
) -> Projection {
    let today = local_date(ctx.now, ctx.tz);
    let end = month.next().start(ctx.tz);
    let days_left = (end.as_second() - ctx.now.as_second()).max(0) as f64 / 86_400.0;
    // Full days before today, newest last, from the first day with usage.
    let mut full: Vec<&Day> = previous
        .iter()
        .chain(daily.iter())
        .filter(|d| d.date < today)
        .skip_while(|d| d.usd == 0.0 && d.local_tokens == 0 && d.cloud_tokens == 0)
        .collect();
    if full.len() > PROJECTION_DAYS {
        full.drain(..full.len() - PROJECTION_DAYS);
    }
    if full.len() >= 2 {
        let mut rates: Vec<f64> = full.iter().map(|d| d.usd).collect();
        rates.sort_by(f64::total_cmp);
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let quartile = |q: f64| {
            let pos = q * (rates.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            rates[lo] + (rates[hi] - rates[lo]) * (pos - pos.floor())
        };
        let (low, high) = (quartile(0.25).min(mean), quartile(0.75).max(mean));
        return Projection {
            low_usd: spent + low * days_left,
            expected_usd: spent + mean * days_left,
            high_usd: spent + high * days_left,
            daily_rate_usd: mean,
            days_left,
            basis: format!(
                "mean of the last {} full day(s) (${mean:.2}/day), range from their quartiles",
                rates.len()
            ),
        };
    }
    let elapsed = (ctx.now.as_second() - month.start(ctx.tz).as_second()).max(60) as f64 / 86_400.0;
    let pace = spent / elapsed;
    Projection {
        low_usd: spent + 0.5 * pace * days_left,
        expected_usd: spent + pace * days_left,
        high_usd: spent + 1.5 * pace * days_left,
        daily_rate_usd: pace,
        days_left,
        basis: "pace so far (less than two full days of data): a rough range".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step() {
        let m = Month::parse("2026-01").expect("month");
        assert_eq!(m.previous().to_string(), "2025-12");
        assert_eq!(m.next().to_string(), "2026-02");
        assert_eq!(Month::parse("2026-13"), None);
        assert_eq!(Month::parse("26-01"), None);
        assert_eq!(Month::parse("2026-1"), None);
        assert_eq!(Month::parse("2026-02").expect("m").days(), 28);
    }

    #[test]
    fn a_month_starts_at_local_midnight() {
        let tz = TimeZone::get("America/New_York").expect("tz");
        let m = Month::parse("2026-11").expect("m");
        assert_eq!(m.start(&tz).to_string(), "2026-11-01T04:00:00Z");
        // After the DST change on 2026-11-01 the offset is -05:00.
        assert_eq!(m.next().start(&tz).to_string(), "2026-12-01T05:00:00Z");
    }
}
