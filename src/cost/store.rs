//! The cost store: `costs.sqlite` in `data_dir`.
//!
//! It holds what the cost engine must not recompute on every start: the
//! assistant turns read from OpenClaw's (and Clawdbot's) transcripts (one
//! row per turn, keyed by its session and event id, and by a hash of its
//! line, so reading a turn twice, from any copy, never counts it twice: see
//! [`super::transcripts`]), how far each transcript file and each OpenClaw
//! session has been read, the state of each alarm (so a crossing is
//! announced once, across restarts too) and the cost events raised.
//!
//! One connection, used from one thread at a time (the engine runs it on the
//! blocking pool). WAL with `synchronous=NORMAL`, like the ledger: several
//! processes (the daemon and `clawfleet costs`) may open the same file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::usage::Usage;

/// The cost store's file name inside `data_dir`.
pub const STORE_FILE: &str = "costs.sqlite";

/// `PRAGMA application_id` of a ClawFleet cost store (`CFCS`).
const APPLICATION_ID: i64 = 0x4346_4353;

/// The cost store, as its messages name it.
const COST_STORE: crate::sqlite::OwnFile = crate::sqlite::OwnFile {
    name: "cost store",
    aside: "ClawFleet will create a new one (transcripts are read again, nothing is counted twice)",
};

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations, in order: `MIGRATIONS[i]` takes the schema from version `i` to
/// `i + 1`. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // v1.
    // transcript_files: how far each transcript has been read. `head` is a
    // hash of the file's first bytes (up to `head_len`), to tell a file
    // rewritten in place from one that grew.
    // turns: one assistant turn with usage, in the order read (rows append
    // at the end of the table; only the small unique index on `key` takes
    // random inserts). `key` is the 128-bit xxh3 of the transcript line
    // (without its line ending): the same line read again, from any file, is
    // the same turn. Times are integer microseconds since
    // the Unix epoch, UTC. `flags` is a `TurnFlags` bit set.
    // alarms: the current state of each alarm rule, by key.
    // cost_events: every alarm crossing, in order.
    "CREATE TABLE transcript_files (
        path          TEXT PRIMARY KEY,
        dev           INTEGER NOT NULL,
        ino           INTEGER NOT NULL,
        size          INTEGER NOT NULL,
        mtime_ns      INTEGER NOT NULL,
        offset        INTEGER NOT NULL,
        head          BLOB    NOT NULL,
        head_len      INTEGER NOT NULL,
        lines         INTEGER NOT NULL,
        corrupt       INTEGER NOT NULL,
        updated_at_us INTEGER NOT NULL
    );
    CREATE TABLE turns (
        id           INTEGER PRIMARY KEY,
        key          BLOB    NOT NULL UNIQUE,
        at_us        INTEGER NOT NULL,
        agent        TEXT    NOT NULL,
        session      TEXT    NOT NULL,
        provider     TEXT    NOT NULL,
        model        TEXT    NOT NULL,
        api          TEXT    NOT NULL,
        input        INTEGER NOT NULL,
        output       INTEGER NOT NULL,
        cache_read   INTEGER NOT NULL,
        cache_write  INTEGER NOT NULL,
        reported_usd REAL,
        flags        INTEGER NOT NULL
    );
    CREATE INDEX turns_by_time ON turns (at_us);
    CREATE TABLE alarms (
        key       TEXT PRIMARY KEY,
        active    INTEGER NOT NULL,
        since_us  INTEGER NOT NULL,
        value     REAL,
        threshold REAL,
        message   TEXT NOT NULL
    );
    CREATE TABLE cost_events (
        id        INTEGER PRIMARY KEY,
        at_us     INTEGER NOT NULL,
        kind      TEXT    NOT NULL,
        alarm     TEXT    NOT NULL,
        machine   TEXT,
        active    INTEGER NOT NULL,
        value     REAL,
        threshold REAL,
        message   TEXT    NOT NULL
    );
    PRAGMA application_id = 1128678227;",
    // v2: OpenClaw's SQLite stores, and turns matched by event id.
    // turns.event_key: the 128-bit xxh3 of `<session id> NUL <event id>`
    // (see `transcripts::event_key`), NULL for a line with no `id`. Unique
    // (SQLite allows many NULLs), so a turn read from a live row, an archive
    // or a JSONL copy is stored once. ALTER TABLE cannot add a UNIQUE column:
    // the unique index is the constraint.
    // transcript_files.session: the session id a file's header line gave
    // (its name's otherwise), kept for the passes that resume past line 1.
    // The positions are forgotten so that the next pass reads every JSONL
    // file from the start once: each line found by its line hash gets its
    // event key set, and nothing is inserted twice.
    // openclaw_sessions: per agent database and session, the rewrite
    // generation and the last `seq` read.
    // openclaw_archives: archives (deleted/reset blobs, cold archives)
    // already read, by database and `<kind>:<session>:<generation>`.
    "ALTER TABLE turns ADD COLUMN event_key BLOB;
    CREATE UNIQUE INDEX turns_by_event ON turns (event_key);
    ALTER TABLE transcript_files ADD COLUMN session TEXT;
    DELETE FROM transcript_files;
    CREATE TABLE openclaw_sessions (
        db         TEXT    NOT NULL,
        session    TEXT    NOT NULL,
        generation TEXT    NOT NULL,
        last_seq   INTEGER NOT NULL,
        PRIMARY KEY (db, session)
    ) WITHOUT ROWID;
    CREATE TABLE openclaw_archives (
        db         TEXT    NOT NULL,
        archive    TEXT    NOT NULL,
        read_at_us INTEGER NOT NULL,
        PRIMARY KEY (db, archive)
    ) WITHOUT ROWID;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What can go wrong with the cost store. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder that should hold the store could not be created.
    #[error("cannot create the folder for the cost store {}: {source}", path.display())]
    CreateDir {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be opened, or was refused and left untouched: not
    /// a ClawFleet cost store, or from a newer ClawFleet.
    #[error(transparent)]
    Open(#[from] crate::sqlite::OpenError),
    /// SQLite refused an operation.
    #[error("cost store {}: cannot {action}: {}", path.display(), crate::sqlite::explain(source))]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// A transcript folder or file could not be listed or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Bits of [`Turn::flags`]: what was wrong with a transcript line that was
/// still counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnFlags(pub u32);

impl TurnFlags {
    /// A token field was missing or not a number (counted as 0).
    pub const MISSING_FIELD: u32 = 1;
    /// A token field was negative or fractional (counted as 0, or truncated).
    pub const INVALID_FIELD: u32 = 2;
    /// The line had no usable timestamp: the file's modification time was used.
    pub const NO_TIMESTAMP: u32 = 4;
    /// The line named no provider or no model.
    pub const NO_MODEL: u32 = 8;

    /// Whether `bit` is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// One assistant turn read from an OpenClaw (or Clawdbot) transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// When the turn happened (the message's own timestamp).
    pub at: Timestamp,
    /// The agent: its folder in `agents/`.
    pub agent: String,
    /// The session id: OpenClaw's `session_id`, else the JSONL header's,
    /// else the file name's (`<session>.jsonl…`).
    pub session: String,
    /// The agent's provider name (`anthropic`, `ollama-macmini`); empty if none.
    pub provider: String,
    /// The model id as the agent named it; empty if none.
    pub model: String,
    /// The agent's `api` kind (`anthropic-messages`, `ollama`, …).
    pub api: String,
    /// Tokens.
    pub usage: Usage,
    /// `usage.cost.total` as the agent computed it from its own catalog, if any.
    pub reported_usd: Option<f64>,
    /// What was wrong with the line.
    pub flags: TurnFlags,
}

/// At most this many long-context thresholds split [`CostStore::turn_groups`].
pub const MAX_THRESHOLDS: usize = 8;

/// Turns of one agent, session, provider, model, UTC day and side of the
/// long-context thresholds, summed: [`CostStore::turn_groups`].
#[derive(Debug, Clone, PartialEq)]
pub struct TurnGroup {
    /// The agent.
    pub agent: String,
    /// The session id.
    pub session: String,
    /// The provider as OpenClaw named it.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The UTC day.
    pub day: jiff::civil::Date,
    /// How many turns.
    pub requests: u64,
    /// Their tokens, summed.
    pub usage: Usage,
    /// The smallest prompt (input + cache reads + cache writes) among them:
    /// which side of each threshold they are all on.
    pub min_prompt: u64,
    /// The sum of what OpenClaw recorded (`usage.cost.total`), where it did.
    pub reported_usd: Option<f64>,
    /// The latest turn.
    pub last_at: Timestamp,
}

/// The cost store. See the module documentation.
#[derive(Debug)]
pub struct CostStore {
    pub(crate) path: PathBuf,
    pub(crate) conn: Connection,
}

impl CostStore {
    /// Opens (or creates) the store at `path`: creates the folder, checks that
    /// an existing file is a cost store (never modifying one that is not),
    /// switches to WAL and migrates.
    pub fn open(path: &Path) -> Result<CostStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let sqlite = |action| {
            move |source| StoreError::Sqlite {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let opened = crate::sqlite::open_checked(
            &COST_STORE,
            path,
            APPLICATION_ID,
            SCHEMA_VERSION,
            BUSY_TIMEOUT,
        )?;
        let (mut conn, version) = (opened.conn, opened.version);
        for (v, step) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= version) {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sqlite("migrate the schema"))?;
            let current: i64 = tx
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .map_err(sqlite("migrate the schema"))?;
            if current >= v {
                continue;
            }
            tx.execute_batch(step)
                .map_err(sqlite("migrate the schema"))?;
            tx.pragma_update(None, "user_version", v)
                .map_err(sqlite("migrate the schema"))?;
            tx.commit().map_err(sqlite("migrate the schema"))?;
        }
        Ok(CostStore {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn sqlite(
        &self,
        action: &'static str,
    ) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: self.path.clone(),
            action,
            source,
        }
    }

    /// The turns that happened in `[from, until)`, oldest first.
    pub fn turns_between(
        &self,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Turn>, StoreError> {
        let err = self.sqlite("read transcript turns");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT at_us, agent, session, provider, model, api, input, output, cache_read, \
                 cache_write, reported_usd, flags FROM turns WHERE at_us >= ?1 AND at_us < ?2 \
                 ORDER BY at_us",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map(
                params![from.as_microsecond(), until.as_microsecond()],
                |row| {
                    let at_us: i64 = row.get(0)?;
                    let tokens = |i: usize| -> rusqlite::Result<u64> {
                        Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
                    };
                    Ok(Turn {
                        at: Timestamp::from_microsecond(at_us).unwrap_or(Timestamp::UNIX_EPOCH),
                        agent: row.get(1)?,
                        session: row.get(2)?,
                        provider: row.get(3)?,
                        model: row.get(4)?,
                        api: row.get(5)?,
                        usage: Usage {
                            input_tokens: tokens(6)?,
                            output_tokens: tokens(7)?,
                            cache_read_tokens: tokens(8)?,
                            cache_write_tokens: tokens(9)?,
                        },
                        reported_usd: row.get(10)?,
                        flags: TurnFlags(row.get(11)?),
                    })
                },
            )
            .map_err(&err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&err)
    }

    /// The turns of `[from, until)` summed in SQL per agent, session,
    /// provider, model, UTC day (prices are dated by it) and side of each
    /// of `thresholds` (the long-context tiers' prompt sizes, at most
    /// [`MAX_THRESHOLDS`]: requests on the same side of every threshold are
    /// priced alike).
    pub fn turn_groups(
        &self,
        from: Timestamp,
        until: Timestamp,
        thresholds: &[u64],
    ) -> Result<Vec<TurnGroup>, StoreError> {
        let err = self.sqlite("sum transcript turns");
        let thresholds = &thresholds[..thresholds.len().min(MAX_THRESHOLDS)];
        let prompt = "(input + cache_read + cache_write)";
        let side = if thresholds.is_empty() {
            "0".to_owned()
        } else {
            (0..thresholds.len())
                .map(|i| format!("({prompt} > ?{})", i + 3))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let sql = format!(
            "SELECT agent, session, provider, model, at_us / 86400000000 AS day, {side} AS side, \
             count(*), sum(input), sum(output), sum(cache_read), sum(cache_write), min({prompt}), \
             sum(reported_usd), max(at_us) \
             FROM turns WHERE at_us >= ?1 AND at_us < ?2 \
             GROUP BY agent, session, provider, model, day, side"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(&err)?;
        let mut args: Vec<i64> = vec![from.as_microsecond(), until.as_microsecond()];
        args.extend(
            thresholds
                .iter()
                .map(|t| i64::try_from(*t).unwrap_or(i64::MAX)),
        );
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |row| {
                let n = |i: usize| -> rusqlite::Result<u64> {
                    Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
                };
                let day: i64 = row.get(4)?;
                Ok(TurnGroup {
                    agent: row.get(0)?,
                    session: row.get(1)?,
                    provider: row.get(2)?,
                    model: row.get(3)?,
                    day: Timestamp::from_second(day.saturating_mul(86_400))
                        .unwrap_or(Timestamp::UNIX_EPOCH)
                        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                        .date(),
                    requests: n(6)?,
                    usage: Usage {
                        input_tokens: n(7)?,
                        output_tokens: n(8)?,
                        cache_read_tokens: n(9)?,
                        cache_write_tokens: n(10)?,
                    },
                    min_prompt: n(11)?,
                    reported_usd: row.get(12)?,
                    last_at: Timestamp::from_microsecond(row.get(13)?)
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                })
            })
            .map_err(&err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&err)
    }

    /// How many turns the store holds.
    pub fn turn_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM turns", [], |row| row.get(0))
            .map_err(self.sqlite("count turns"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The stored state of alarm `key`: whether it is active, and since when.
    pub fn alarm_state(&self, key: &str) -> Result<Option<(bool, Timestamp)>, StoreError> {
        self.conn
            .query_row(
                "SELECT active, since_us FROM alarms WHERE key = ?1",
                [key],
                |row| {
                    let since: i64 = row.get(1)?;
                    Ok((
                        row.get::<_, bool>(0)?,
                        Timestamp::from_microsecond(since).unwrap_or(Timestamp::UNIX_EPOCH),
                    ))
                },
            )
            .optional()
            .map_err(self.sqlite("read an alarm's state"))
    }
}
