//! Prices as data: USD per million tokens, with the day each rate took effect
//! and long-context tiers.
//!
//! The embedded table (`prices.toml` beside this file) is the default; a user
//! file adds entries or replaces the embedded entry with the same model and
//! `from` date. Nothing about a particular model is written in code: a model
//! that is retired, renamed or repriced is a data change.

use std::collections::HashMap;
use std::path::Path;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, LocatedIssue};
use crate::config::{Issue, Seg, locate};
use crate::usage::Usage;

/// The embedded price table.
pub const EMBEDDED_TOML: &str = include_str!("prices.toml");

/// The name of the user's price file, beside `config.toml`.
pub use crate::config::PRICES_FILE as USER_FILE;

/// Rates in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Uncached prompt tokens.
    pub input: f64,
    /// Generated tokens.
    pub output: f64,
    /// Prompt tokens read from the cache.
    pub cache_read: f64,
    /// Prompt tokens written to the cache (the 5-minute rate).
    pub cache_write: f64,
}

/// Rates for requests whose prompt is above a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContext {
    /// A request whose prompt (input + cache reads + cache writes) is above
    /// this many tokens pays these rates on every token.
    pub above_prompt_tokens: u64,
    /// Uncached prompt tokens.
    pub input: f64,
    /// Generated tokens.
    pub output: f64,
    /// Cache reads.
    pub cache_read: f64,
    /// Cache writes.
    pub cache_write: f64,
}

/// One `[[price]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// The model id (see [`canonical`]).
    pub model: String,
    /// Other ids of the same model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Who bills it (informational).
    #[serde(default)]
    pub provider: Option<String>,
    /// First day (UTC) these rates apply; `None` = always.
    #[serde(default)]
    pub from: Option<Date>,
    /// The day the model leaves the API (informational).
    #[serde(default)]
    pub retires: Option<Date>,
    /// USD per million uncached prompt tokens.
    pub input: f64,
    /// USD per million generated tokens.
    pub output: f64,
    /// USD per million cache-read tokens.
    pub cache_read: f64,
    /// USD per million cache-write tokens.
    pub cache_write: f64,
    /// Long-context rates, if the model has them.
    #[serde(default)]
    pub long_context: Option<LongContext>,
}

impl PriceEntry {
    /// The canonical ids this entry prices: its model and aliases, each once.
    pub fn ids(&self) -> std::collections::BTreeSet<String> {
        std::iter::once(&self.model)
            .chain(&self.aliases)
            .map(|m| canonical(m))
            .collect()
    }

    /// The rates that apply to a request with `usage`.
    pub fn rates_for(&self, usage: &Usage) -> Rates {
        let prompt = usage
            .input_tokens
            .saturating_add(usage.cache_read_tokens)
            .saturating_add(usage.cache_write_tokens);
        match self.long_context {
            Some(lc) if prompt > lc.above_prompt_tokens => Rates {
                input: lc.input,
                output: lc.output,
                cache_read: lc.cache_read,
                cache_write: lc.cache_write,
            },
            _ => Rates {
                input: self.input,
                output: self.output,
                cache_read: self.cache_read,
                cache_write: self.cache_write,
            },
        }
    }

    /// What a request with `usage` costs, in USD.
    pub fn cost(&self, usage: &Usage) -> f64 {
        usd(&self.rates_for(usage), usage)
    }
}

/// `usage` at `rates`, in USD.
pub fn usd(rates: &Rates, usage: &Usage) -> f64 {
    (usage.input_tokens as f64 * rates.input
        + usage.output_tokens as f64 * rates.output
        + usage.cache_read_tokens as f64 * rates.cache_read
        + usage.cache_write_tokens as f64 * rates.cache_write)
        / 1_000_000.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    #[allow(dead_code)]
    checked: Option<String>,
    #[serde(default)]
    price: Vec<PriceEntry>,
}

/// The model id as prices are looked up: lowercase, without a `provider/`
/// prefix, a `-YYYYMMDD` snapshot suffix or `-latest`, dots read as dashes.
/// `anthropic/claude-sonnet-4.5-20250929` → `claude-sonnet-4-5`.
pub fn canonical(model: &str) -> String {
    let id = model.trim().rsplit('/').next().unwrap_or("");
    let mut id = id.to_ascii_lowercase().replace('.', "-");
    if let Some(stripped) = id.strip_suffix("-latest") {
        id = stripped.to_owned();
    }
    if let Some((head, tail)) = id.rsplit_once('-')
        && tail.len() == 8
        && tail.bytes().all(|b| b.is_ascii_digit())
    {
        id = head.to_owned();
    }
    id
}

/// The price table in effect: the embedded entries, overlaid with the user's.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// By canonical id (aliases included), entries sorted by `from`.
    by_model: HashMap<String, Vec<PriceEntry>>,
    /// Where the entries came from, for display.
    pub sources: Vec<String>,
}

impl PriceTable {
    /// The embedded table alone.
    pub fn embedded() -> PriceTable {
        let mut table = PriceTable::default();
        // Covered by a test; should it ever fail, the table is empty and every
        // cloud model shows as unpriced rather than crashing.
        if let Ok(entries) = parse(EMBEDDED_TOML, "<embedded prices>") {
            table.overlay(entries);
            table.sources.push("<embedded prices>".into());
        }
        table
    }

    /// The embedded table overlaid with `user` when it exists. A user file
    /// that does not parse or validate is an error naming the line.
    pub fn load(user: Option<&Path>) -> Result<PriceTable, ConfigError> {
        let mut table = PriceTable::embedded();
        if let Some(path) = user.filter(|p| p.exists()) {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let name = path.display().to_string();
            table.overlay(parse(&text, &name)?);
            table.sources.push(name);
        }
        Ok(table)
    }

    /// Adds `entries`, replacing those with the same model and `from`.
    pub fn overlay(&mut self, entries: Vec<PriceEntry>) {
        for entry in entries {
            for id in entry.ids() {
                let list = self.by_model.entry(id).or_default();
                list.retain(|e| e.from != entry.from);
                list.push(entry.clone());
                list.sort_by_key(|e| e.from);
            }
        }
    }

    /// The entry for `model` on `day`: the one with the latest `from` on or
    /// before it. `None` when the model has no price (an unpriced model).
    pub fn lookup(&self, model: &str, day: Date) -> Option<&PriceEntry> {
        self.by_model
            .get(&canonical(model))?
            .iter()
            .rev()
            .find(|e| e.from.is_none_or(|from| from <= day))
    }

    /// Whether `model` has any entry at all.
    pub fn knows(&self, model: &str) -> bool {
        self.by_model.contains_key(&canonical(model))
    }

    /// The distinct prompt sizes above which a long-context tier applies,
    /// ascending: requests on the same side of each of them are priced
    /// alike, so sums can be priced per side (see `report::agent_costs`).
    pub fn long_context_thresholds(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .by_model
            .values()
            .flatten()
            .filter_map(|e| e.long_context.map(|lc| lc.above_prompt_tokens))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// How many distinct ids (aliases included) have a price.
    pub fn len(&self) -> usize {
        self.by_model.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_model.is_empty()
    }
}

/// Parses and validates a price file's text; `source_name` names it in
/// errors, which carry the line and column.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<PriceEntry>, ConfigError> {
    let file: PriceFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| locate::line_col(text, s.start))
            .unwrap_or((1, 1));
        ConfigError::Syntax {
            source_name: source_name.to_owned(),
            key: e.span().and_then(|s| locate::path_at(text, s.start)),
            line,
            column,
            message: e.message().trim().to_owned(),
            snippet: locate::snippet(text, line),
        }
    })?;
    let issues = validate(&file.price);
    if issues.is_empty() {
        return Ok(file.price);
    }
    let mut issues: Vec<LocatedIssue> = issues
        .into_iter()
        .map(|issue| {
            let (line, column) = locate::find(text, &issue.path).unwrap_or((1, 1));
            LocatedIssue {
                line,
                column,
                snippet: locate::snippet(text, line),
                issue,
            }
        })
        .collect();
    issues.sort_by_key(|i| (i.line, i.column));
    Err(ConfigError::Invalid {
        source_name: source_name.to_owned(),
        issues,
    })
}

fn issue(index: usize, field: &str, message: String, expected: &str) -> Issue {
    let mut path = vec![Seg::Key("price".into()), Seg::Index(index)];
    let mut key = format!("price[{index}]");
    for part in field.split('.').filter(|p| !p.is_empty()) {
        path.push(Seg::Key(part.to_owned()));
        key.push('.');
        key.push_str(part);
    }
    Issue {
        path,
        key,
        message,
        expected: expected.to_owned(),
    }
}

fn validate(entries: &[PriceEntry]) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut seen: HashMap<(String, Option<Date>), usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if canonical(&e.model).is_empty() {
            issues.push(issue(
                i,
                "model",
                "the model id is empty".into(),
                "a model id such as \"claude-sonnet-5-5\"",
            ));
        }
        let mut rates = vec![
            ("input", e.input),
            ("output", e.output),
            ("cache_read", e.cache_read),
            ("cache_write", e.cache_write),
        ];
        if let Some(lc) = &e.long_context {
            rates.extend([
                ("long_context.input", lc.input),
                ("long_context.output", lc.output),
                ("long_context.cache_read", lc.cache_read),
                ("long_context.cache_write", lc.cache_write),
            ]);
            if lc.above_prompt_tokens == 0 {
                issues.push(issue(
                    i,
                    "long_context.above_prompt_tokens",
                    "0 would apply the long-context rates to every request".into(),
                    "the prompt size above which they apply, e.g. 200000",
                ));
            }
        }
        for (field, value) in rates {
            if !value.is_finite() || value < 0.0 {
                issues.push(issue(
                    i,
                    field,
                    format!("{value} is not a price"),
                    "USD per million tokens, 0 or more",
                ));
            } else if value > 10_000.0 {
                issues.push(issue(
                    i,
                    field,
                    format!("{value} USD per million tokens is implausible (a typo?)"),
                    "USD per million tokens, such as 3.0",
                ));
            }
        }
        if let (Some(from), Some(retires)) = (e.from, e.retires)
            && retires < from
        {
            issues.push(issue(
                i,
                "retires",
                format!("retires {retires} before its rates start ({from})"),
                "a date on or after `from`",
            ));
        }
        for id in e.ids() {
            let key = (id.clone(), e.from);
            if let Some(first) = seen.insert(key, i) {
                issues.push(issue(
                    i,
                    "model",
                    format!(
                        "{id:?} from {} is already priced by price[{first}]",
                        e.from
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "the start".into())
                    ),
                    "one entry per model and `from` date",
                ));
            }
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
        }
    }

    fn day(s: &str) -> Date {
        s.parse().expect("date")
    }

    #[test]
    fn embedded_table_parses_and_prices_the_seed_models() {
        parse(EMBEDDED_TOML, "embedded").expect("embedded prices parse");
        let t = PriceTable::embedded();
        let opus = t
            .lookup("anthropic/claude-opus-4-5", day("2026-11-01"))
            .expect("opus");
        assert_eq!((opus.input, opus.output), (5.0, 25.0));
        let sonnet = t
            .lookup("claude-sonnet-4-5-20250929", day("2026-11-01"))
            .expect("sonnet");
        assert_eq!(sonnet.cache_read, 0.30);
    }

    #[test]
    fn canonical_ids() {
        assert_eq!(
            canonical("anthropic/Claude-Sonnet-4.5-20250929"),
            "claude-sonnet-4-5"
        );
        assert_eq!(canonical("claude-opus-4-5-latest"), "claude-opus-4-5");
        assert_eq!(canonical("gpt-oss:20b"), "gpt-oss:20b");
        assert_eq!(canonical("claude-2024"), "claude-2024");
    }

    #[test]
    fn effective_dates_pick_the_latest_entry_on_or_before_the_day() {
        let t = PriceTable::embedded();
        let before = t.lookup("claude-sonnet-5-5", day("2026-10-06")).expect("p");
        let after = t.lookup("claude-sonnet-5-5", day("2026-10-07")).expect("p");
        assert_eq!(before.cache_read, 0.20);
        assert_eq!(after.cache_read, 0.10);
        let u = usage(0, 0, 1_000_000, 0);
        assert!((before.cost(&u) - 0.20).abs() < 1e-12);
        assert!((after.cost(&u) - 0.10).abs() < 1e-12);
    }

    #[test]
    fn long_context_applies_to_every_token_above_the_threshold() {
        let t = PriceTable::embedded();
        let haiku = t.lookup("claude-haiku-5-5", day("2026-11-01")).expect("p");
        // 100,000 prompt tokens exactly: base rates.
        let at = usage(60_000, 1_000, 30_000, 10_000);
        let want = (60_000.0 * 0.10 + 1_000.0 * 0.50 + 30_000.0 * 0.01 + 10_000.0 * 0.125) / 1e6;
        assert!((haiku.cost(&at) - want).abs() < 1e-12);
        // One more: long rates on all of it.
        let above = usage(60_001, 1_000, 30_000, 10_000);
        let want = (60_001.0 * 0.50 + 1_000.0 * 2.50 + 30_000.0 * 0.05 + 10_000.0 * 0.625) / 1e6;
        assert!((haiku.cost(&above) - want).abs() < 1e-12);
    }

    #[test]
    fn user_entries_replace_same_model_and_date_and_add_new_ones() {
        let mut t = PriceTable::embedded();
        let user = parse(
            "[[price]]\nmodel = \"claude-opus-4-5\"\ninput = 1\noutput = 2\ncache_read = 0\ncache_write = 0\n\n[[price]]\nmodel = \"my-cloud-model\"\nfrom = \"2026-11-10\"\ninput = 1\noutput = 1\ncache_read = 0\ncache_write = 0\n",
            "user",
        )
        .expect("parse");
        t.overlay(user);
        assert_eq!(
            t.lookup("claude-opus-4-5", day("2026-01-01"))
                .expect("p")
                .input,
            1.0
        );
        assert!(t.lookup("my-cloud-model", day("2026-11-09")).is_none());
        assert!(t.lookup("my-cloud-model", day("2026-11-10")).is_some());
        assert!(t.lookup("gpt-oss:20b", day("2026-11-10")).is_none());
    }

    #[test]
    fn typos_are_located() {
        let err = parse(
            "[[price]]\nmodel = \"x\"\ninput = 1\noutptu = 2\ncache_read = 0\ncache_write = 0\n",
            "p.toml",
        )
        .expect_err("typo");
        let text = err.to_string();
        assert!(text.contains("p.toml:4:"), "{text}");
        assert!(text.contains("outptu"), "{text}");

        let err = parse(
            "[[price]]\nmodel = \"x\"\ninput = -1\noutput = 2\ncache_read = 0\ncache_write = 0\n\n[[price]]\nmodel = \"X\"\ninput = 1\noutput = 2\ncache_read = 0\ncache_write = 0\n",
            "p.toml",
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("2 problems"), "{text}");
        assert!(text.contains("price[0].input"), "{text}");
        assert!(text.contains("already priced by price[0]"), "{text}");
        assert!(text.contains("3:"), "{text}");
    }
}
