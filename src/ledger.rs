//! The usage ledger: every proxied request, in SQLite (WAL) in `data_dir`.
//!
//! One [`Ledger`] owns one database file. Writes go through a dedicated writer
//! thread that owns the read-write connection: the proxy's async tasks only
//! put records on a bounded queue, so a slow disk never stalls a runtime
//! thread, and records are stored in the order they were queued. The writer
//! takes everything that is waiting and stores it in one transaction, so a
//! burst costs one commit, not one per request.
//!
//! [`LedgerHandle::record`] resolves only once its row is committed. With
//! `journal_mode=WAL` and `synchronous=NORMAL` a committed transaction is in
//! the WAL file, in the operating system's hands: it survives the ClawFleet
//! process being killed (even `SIGKILL`) at any moment after. It may be lost
//! if the whole machine loses power before the OS flushes its cache; that is
//! the trade we make for not calling `fsync` on every request.
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC): a
//! [`Record::started_at`] with finer precision comes back truncated to the
//! microsecond.
//!
//! Reads ([`LedgerHandle::stats_since`], [`LedgerHandle::recent`]) use a
//! second, read-only connection on the blocking thread pool: WAL lets them run
//! while the writer writes.
//!
//! What is stored is exactly what [`Record`] holds — never a header, a body or
//! a key. As a second line of defence (active in release builds too), text
//! fields that could echo a credential (`client`, `endpoint`, `error`) are
//! scrubbed of anything shaped like one before they are written.

mod schema;
mod scrub;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use crate::proxy::usage::Usage;

pub use schema::SCHEMA_VERSION;
pub use stats::{MachineStats, ModelStats, Percentiles, ProxyStats, TokenSums};

/// One proxied request, as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the request arrived.
    pub started_at: Timestamp,
    /// Who asked: the client's address, and its User-Agent when given
    /// (`127.0.0.1 OpenAI/JS 6.1.0`). Never a key.
    pub client: String,
    /// The API the client spoke: `openai`, `ollama` or `anthropic`.
    pub api: String,
    /// The path asked for (`/v1/chat/completions`).
    pub endpoint: String,
    /// The model as the client named it (`macmini/gpt-oss:20b`).
    pub requested_model: Option<String>,
    /// The machine that served it, if any did.
    pub machine: Option<String>,
    /// How many candidates failed before the one that served (0 = first choice).
    pub fallback_depth: u32,
    /// Whether the response was streamed.
    pub stream: bool,
    /// Tokens, when the backend reported them.
    pub usage: Option<Usage>,
    /// Milliseconds to the first byte of the response body sent to the client.
    pub ttfb_ms: Option<f64>,
    /// Milliseconds from arrival to the end of the response.
    pub duration_ms: f64,
    /// HTTP status sent to the client.
    pub status: u16,
    /// `ok`, `error`, `upstream_failed_midstream` or `client_disconnected`.
    pub outcome: String,
    /// What went wrong, in words (never with a key).
    pub error: Option<String>,
}

/// How many records may wait for the writer. When that many are waiting,
/// [`LedgerHandle::record`] waits for room and [`LedgerHandle::record_nowait`]
/// drops the record.
pub const QUEUE_CAPACITY: usize = 4096;

/// The most records stored in one transaction. Bounded so that, under a
/// sustained flood, acks still flow every few milliseconds and the hourly
/// prune is not starved.
const MAX_BATCH: usize = 1024;

/// How long a statement waits for a lock held by another connection (another
/// ClawFleet process, or someone inspecting the file with `sqlite3`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the writer applies [`Retention`].
pub const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// How long the ledger keeps its rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Rows whose request started more than this many days ago are deleted:
    /// once when the ledger opens, then every [`PRUNE_EVERY`]. `0` keeps
    /// everything.
    pub max_age_days: u32,
}

/// What can go wrong with the ledger. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The folder that should hold the ledger could not be created.
    #[error("cannot create the folder for the ledger {}: {source}", path.display())]
    CreateDir {
        /// The ledger file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a ClawFleet ledger. It was left untouched.
    #[error(
        "{} is not a ClawFleet ledger ({reason}); it was left untouched: move it aside and ClawFleet will create a new ledger there",
        path.display()
    )]
    NotALedger {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// The ledger was written by a newer ClawFleet. It was left untouched.
    #[error(
        "the ledger {} has schema version {found}, newer than this ClawFleet knows (up to {known}); it was left untouched: upgrade ClawFleet, or move the file aside and ClawFleet will create a new ledger there",
        path.display()
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// The file's `PRAGMA user_version`.
        found: i64,
        /// The newest version this build knows: [`SCHEMA_VERSION`].
        known: i64,
    },
    /// SQLite refused an operation.
    #[error("ledger {}: cannot {action}: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What we were doing (`open`, `read statistics`, ...).
        action: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The transaction holding the record (or the prune) failed and was rolled
    /// back: the record is not in the ledger.
    #[error("ledger {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// SQLite's reason (shared by every record of the failed batch).
        reason: String,
    },
    /// The ledger was closed (or its writer stopped): nothing more is stored.
    #[error("ledger {} is closed; the record was not stored", path.display())]
    Closed {
        /// The file.
        path: PathBuf,
    },
    /// The writer thread could not be started.
    #[error("ledger {}: cannot start the writer thread: {source}", path.display())]
    Spawn {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A read on the blocking pool did not finish (runtime shutting down, or
    /// a panic).
    #[error("ledger {}: a read did not finish: {reason}", path.display())]
    Task {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What the writer thread is asked to do.
enum Command {
    Record {
        /// Boxed: a `Record` is ten times the size of the other commands.
        record: Box<Record>,
        /// `None` for [`LedgerHandle::record_nowait`].
        ack: Option<oneshot::Sender<Result<(), String>>>,
        /// A queue slot, given back when the command is dropped (after the
        /// commit): this is what bounds the queue.
        _slot: OwnedSemaphorePermit,
    },
    Prune {
        before_us: i64,
        ack: oneshot::Sender<Result<u64, String>>,
    },
    /// Store everything queued, then stop.
    Shutdown,
}

/// What every handle shares.
struct Shared {
    path: PathBuf,
    /// Unbounded on its own; [`Shared::slots`] bounds it. A std channel because
    /// the writer is a plain thread that needs `recv_timeout` for the hourly
    /// prune, and because sending never blocks.
    tx: mpsc::Sender<Command>,
    slots: Arc<Semaphore>,
    dropped: AtomicU64,
    /// The read-only connection. One is enough for a handful of readers (the
    /// snapshot, the API); they take turns.
    reader: Mutex<Connection>,
}

/// The ledger: owns the writer thread. Use [`Ledger::handle`] to record and
/// read; [`Ledger::close`] (or drop) stores what is queued and stops.
pub struct Ledger {
    handle: LedgerHandle,
    writer: Option<JoinHandle<()>>,
}

/// A cheap, cloneable way to record into and read from a [`Ledger`]. Handles
/// keep working for reads after the ledger is closed; records then fail with
/// [`LedgerError::Closed`].
#[derive(Clone)]
pub struct LedgerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LedgerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerHandle")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.handle.shared.path)
            .field("open", &self.writer.is_some())
            .finish()
    }
}

impl Ledger {
    /// Opens (or creates) the ledger at `path`, keeping every row forever.
    /// See [`Ledger::open_with`].
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_with(path, Retention::default())
    }

    /// Opens (or creates) the ledger at `path` and starts its writer thread.
    ///
    /// Creates the parent folder. Opens SQLite with `journal_mode=WAL` and
    /// `synchronous=NORMAL`: a committed record survives the process being
    /// killed, even by `SIGKILL` (not a power cut before the OS flushes).
    /// Brings an older schema up to [`SCHEMA_VERSION`].
    ///
    /// A file that is not a SQLite database, a SQLite database of another
    /// program, or a ledger from a newer ClawFleet is an error that names the
    /// file and what to do; such a file is never modified or deleted.
    ///
    /// With a non-zero `retention`, rows older than it are deleted on the
    /// writer thread before the first record is stored, then every
    /// [`PRUNE_EVERY`].
    ///
    /// Blocking (it opens and may migrate the file): call it before starting
    /// work, or from `spawn_blocking`.
    pub fn open_with(path: &Path, retention: Retention) -> Result<Ledger, LedgerError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| LedgerError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let conn = schema::open_writer(path)?;
        let reader = schema::open_reader(path)?;

        let (tx, rx) = mpsc::channel();
        let slots = Arc::new(Semaphore::new(QUEUE_CAPACITY));
        let writer = Writer {
            path: path.to_path_buf(),
            conn,
            rx,
            slots: slots.clone(),
            retention,
        };
        let thread = std::thread::Builder::new()
            .name("clawfleet-ledger".into())
            .spawn(move || writer.run())
            .map_err(|source| LedgerError::Spawn {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Ledger {
            handle: LedgerHandle {
                shared: Arc::new(Shared {
                    path: path.to_path_buf(),
                    tx,
                    slots,
                    dropped: AtomicU64::new(0),
                    reader: Mutex::new(reader),
                }),
            },
            writer: Some(thread),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.handle.shared.path
    }

    /// A handle to record and read with; clone it freely.
    pub fn handle(&self) -> LedgerHandle {
        self.handle.clone()
    }

    /// Stores every record already queued (from any handle), then stops the
    /// writer thread and waits for it. Records sent afterwards fail with
    /// [`LedgerError::Closed`].
    ///
    /// Blocking (for as long as the queue takes to store, at most
    /// [`QUEUE_CAPACITY`] records): from async code, call it from
    /// `spawn_blocking`. Dropping the ledger does the same.
    pub fn close(mut self) -> Result<(), LedgerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LedgerError> {
        let Some(thread) = self.writer.take() else {
            return Ok(());
        };
        // Never blocks: the channel itself is unbounded. If the writer is
        // already gone the send fails, and join tells us why.
        let _ = self.handle.shared.tx.send(Command::Shutdown);
        thread.join().map_err(|_| LedgerError::Write {
            path: self.handle.shared.path.clone(),
            reason: "the writer thread panicked; records still queued were lost".into(),
        })
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!("{e}");
        }
    }
}

impl LedgerHandle {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Stores `record` and resolves once its transaction is committed: after
    /// `Ok(())`, the record survives the process being killed.
    ///
    /// Never blocks the thread. Waits (asynchronously) while
    /// [`QUEUE_CAPACITY`] records are already queued. Records queued one after
    /// another from one task are stored in that order. If this future is
    /// dropped after the record was queued, the record is still stored.
    pub async fn record(&self, record: Record) -> Result<(), LedgerError> {
        let slot = self
            .shared
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| self.closed())?;
        let (ack, done) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Record {
                record: Box::new(record),
                ack: Some(ack),
                _slot: slot,
            })
            .map_err(|_| self.closed())?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(LedgerError::Write {
                path: self.shared.path.clone(),
                reason,
            }),
            // The writer dropped the command without answering: it stopped.
            Err(_) => Err(self.closed()),
        }
    }

    /// Queues `record` and returns at once, without waiting for the commit.
    ///
    /// When the queue is full (or the ledger closed) the record is dropped and
    /// counted in [`LedgerHandle::dropped`]; a warning is logged at the 1st,
    /// 2nd, 4th, 8th... drop, so an overload does not flood the log.
    pub fn record_nowait(&self, record: Record) {
        let why = match self.shared.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let command = Command::Record {
                    record: Box::new(record),
                    ack: None,
                    _slot: slot,
                };
                match self.shared.tx.send(command) {
                    Ok(()) => return,
                    Err(_) => "the ledger is closed",
                }
            }
            Err(TryAcquireError::NoPermits) => "the ledger queue is full",
            Err(TryAcquireError::Closed) => "the ledger is closed",
        };
        let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(
                ledger = %self.shared.path.display(),
                dropped_total = dropped,
                "{why}: a record was dropped"
            );
        }
    }

    /// How many records [`LedgerHandle::record_nowait`] has dropped since the
    /// ledger was opened.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Deletes every row whose request started before `older_than`, on the
    /// writer thread (after the records queued before it), and returns how
    /// many were deleted. The file does not shrink: SQLite reuses the space.
    pub async fn prune(&self, older_than: Timestamp) -> Result<u64, LedgerError> {
        let (ack, done) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Prune {
                before_us: older_than.as_microsecond(),
                ack,
            })
            .map_err(|_| self.closed())?;
        match done.await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(reason)) => Err(LedgerError::Write {
                path: self.shared.path.clone(),
                reason,
            }),
            Err(_) => Err(self.closed()),
        }
    }

    /// Statistics of the requests that started at or after `since`, with the
    /// rate taken over `since` to now. See [`ProxyStats`].
    pub async fn stats_since(&self, since: Timestamp) -> Result<ProxyStats, LedgerError> {
        self.read("read statistics", move |conn| {
            let now = Timestamp::now();
            stats::query(conn, since, now, i64::MAX)
        })
        .await
    }

    /// Statistics of the requests that started in `[since, until)`. See
    /// [`ProxyStats`].
    pub async fn stats_between(
        &self,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<ProxyStats, LedgerError> {
        self.read("read statistics", move |conn| {
            stats::query(conn, since, until, until.as_microsecond())
        })
        .await
    }

    /// The last `limit` records stored, newest (last stored) first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<Record>, LedgerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("read recent records", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM requests ORDER BY id DESC LIMIT ?1",
                schema::RECORD_COLUMNS
            ))?;
            let rows = stmt.query_map([limit], schema::record_from_row)?;
            rows.collect()
        })
        .await
    }

    /// Runs `f` on the read-only connection, on the blocking pool.
    async fn read<T, F>(&self, action: &'static str, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable:
            // SQLite rolls back any open read transaction when it is reused.
            let mut conn = shared.reader.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn).map_err(|source| LedgerError::Sqlite {
                path: shared.path.clone(),
                action,
                source,
            })
        })
        .await
        .map_err(|e| LedgerError::Task {
            path: self.shared.path.clone(),
            reason: e.to_string(),
        })?
    }

    fn closed(&self) -> LedgerError {
        LedgerError::Closed {
            path: self.shared.path.clone(),
        }
    }
}

/// A record waiting in the current batch: what to store and whom to tell.
type Pending = (
    Box<Record>,
    Option<oneshot::Sender<Result<(), String>>>,
    OwnedSemaphorePermit,
);

/// The writer thread: the only owner of the read-write connection.
struct Writer {
    path: PathBuf,
    conn: Connection,
    rx: mpsc::Receiver<Command>,
    slots: Arc<Semaphore>,
    retention: Retention,
}

impl Writer {
    fn run(mut self) {
        // Retention is applied before anything else, then on a timer.
        let mut next_prune = (self.retention.max_age_days > 0).then(Instant::now);
        let mut shutting_down = false;
        let mut batch: Vec<Pending> = Vec::new();
        loop {
            if let Some(at) = next_prune.filter(|at| *at <= Instant::now()) {
                self.apply_retention();
                next_prune = Some(at.max(Instant::now()) + PRUNE_EVERY);
            }
            let first = if shutting_down {
                // Stop once everything queued so far is stored.
                match self.rx.try_recv() {
                    Ok(c) => c,
                    Err(_) => break,
                }
            } else {
                let received = match next_prune {
                    Some(at) => self
                        .rx
                        .recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => self
                        .rx
                        .recv()
                        .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(c) => c,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            // Take what else is already waiting, up to a batch.
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Record { record, ack, _slot } => batch.push((record, ack, _slot)),
                    Command::Prune { before_us, ack } => {
                        // Records queued before the prune are stored first.
                        self.commit(&mut batch);
                        let _ = ack.send(self.prune(before_us).map_err(|e| e.to_string()));
                    }
                    Command::Shutdown => {
                        // No new slots: what is left to store is bounded, so
                        // close finishes even while clients keep sending.
                        self.slots.close();
                        shutting_down = true;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            self.commit(&mut batch);
        }
        // Whoever waits for a slot learns at once that nothing more is stored
        // (already closed when we stop for a Shutdown).
        self.slots.close();
    }

    /// Stores `batch` in one transaction, then answers every record in it.
    fn commit(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let result = insert(&mut self.conn, batch.iter().map(|(r, _, _)| &**r));
        let result = result.map_err(|e| format!("cannot store {} record(s): {e}", batch.len()));
        if let Err(reason) = &result {
            tracing::error!(ledger = %self.path.display(), "{reason}");
        }
        // Dropping each entry also gives its queue slot back.
        for (_, ack, _slot) in batch.drain(..) {
            if let Some(ack) = ack {
                let _ = ack.send(result.clone());
            }
        }
    }

    fn prune(&mut self, before_us: i64) -> rusqlite::Result<u64> {
        let deleted = self
            .conn
            .execute("DELETE FROM requests WHERE started_at_us < ?1", [before_us])?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }

    fn apply_retention(&mut self) {
        let age = i64::from(self.retention.max_age_days).saturating_mul(MICROS_PER_DAY);
        let cutoff = Timestamp::now().as_microsecond().saturating_sub(age);
        match self.prune(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                ledger = %self.path.display(),
                deleted = n,
                max_age_days = self.retention.max_age_days,
                "pruned old ledger rows"
            ),
            Err(e) => tracing::error!(ledger = %self.path.display(), "cannot prune old rows: {e}"),
        }
    }
}

/// Inserts `records` in one transaction.
fn insert<'a>(
    conn: &mut Connection,
    records: impl Iterator<Item = &'a Record>,
) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front (waiting up to BUSY_TIMEOUT),
    // so another writer on the file can never make us fail half-way.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(schema::INSERT)?;
        for r in records {
            let usage = r.usage;
            stmt.execute(params![
                r.started_at.as_microsecond(),
                scrub::scrub(&r.client),
                r.api,
                scrub::scrub(&r.endpoint),
                r.requested_model,
                r.machine,
                i64::from(r.fallback_depth),
                r.stream,
                usage.map(|u| tokens(u.input_tokens)),
                usage.map(|u| tokens(u.output_tokens)),
                usage.map(|u| tokens(u.cache_read_tokens)),
                usage.map(|u| tokens(u.cache_write_tokens)),
                // SQLite stores NaN as NULL, which the NOT NULL duration
                // would reject and fail the whole batch: keep only numbers.
                r.ttfb_ms.filter(|v| v.is_finite()),
                if r.duration_ms.is_finite() {
                    r.duration_ms
                } else {
                    0.0
                },
                i64::from(r.status),
                r.outcome,
                r.error.as_deref().map(scrub::scrub),
            ])?;
        }
    }
    tx.commit()
}

/// SQLite integers are signed: a count beyond `i64::MAX` (which no backend
/// will ever report) is stored as `i64::MAX` rather than failing the batch.
fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reading the ledger for the cost engine, on a connection of its own
/// ([`open_read_only`]): it runs in other processes too (`clawfleet costs`).
pub mod usage {
    use std::path::Path;

    use rusqlite::{Connection, OpenFlags, params};

    use super::{BUSY_TIMEOUT, LedgerError};
    use crate::proxy::usage::Usage;

    /// Microseconds in the quarter-hours local usage is grouped by. Every time
    /// zone's offset is a multiple of 15 minutes, so a quarter-hour never
    /// straddles a local midnight.
    pub const QUARTER_US: i64 = 900 * 1_000_000;

    /// Requests of one API, model and serving machine in one quarter-hour,
    /// with their summed usage.
    #[derive(Debug, Clone, PartialEq)]
    pub struct UsageGroup {
        /// Start of the quarter-hour, microseconds since the epoch.
        pub quarter_us: i64,
        /// `openai`, `ollama` or `anthropic`.
        pub api: String,
        /// The model as requested.
        pub model: String,
        /// The machine (or `anthropic`) that served.
        pub machine: String,
        /// How many requests.
        pub requests: u64,
        /// Their tokens, summed.
        pub usage: Usage,
    }

    /// One metered request, for pricing one by one (cloud requests: their
    /// price can depend on the request's own size).
    #[derive(Debug, Clone, PartialEq)]
    pub struct UsageRow {
        /// The ledger's row id.
        pub id: i64,
        /// When it started, microseconds since the epoch.
        pub started_at_us: i64,
        /// `openai`, `ollama` or `anthropic`.
        pub api: String,
        /// The model as requested.
        pub model: String,
        /// The machine (or `anthropic`) that served.
        pub machine: String,
        /// Its tokens.
        pub usage: Usage,
    }

    /// Opens `path` read-only. `Ok(None)` when there is no ledger yet.
    pub fn open_read_only(path: &Path) -> Result<Option<Connection>, LedgerError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| c.busy_timeout(BUSY_TIMEOUT).map(|()| c))
        .map_err(|source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            action: "open for reading",
            source,
        })?;
        Ok(Some(conn))
    }

    fn tokens(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Usage> {
        let n = |i: usize| -> rusqlite::Result<u64> {
            Ok(u64::try_from(row.get::<_, Option<i64>>(first + i)?.unwrap_or(0)).unwrap_or(0))
        };
        Ok(Usage {
            input_tokens: n(0)?,
            output_tokens: n(1)?,
            cache_read_tokens: n(2)?,
            cache_write_tokens: n(3)?,
        })
    }

    /// Requests with usage in `[from_us, to_us)` that a fleet machine served
    /// (every API but `anthropic`), grouped by quarter-hour, API, model and
    /// machine.
    pub fn local_groups(
        conn: &Connection,
        from_us: i64,
        to_us: i64,
    ) -> rusqlite::Result<Vec<UsageGroup>> {
        let mut stmt = conn.prepare_cached(
            "SELECT (started_at_us / ?3) * ?3 AS q, api, coalesce(requested_model, ''), \
             coalesce(machine, ''), count(*), sum(input_tokens), sum(output_tokens), \
             sum(cache_read_tokens), sum(cache_write_tokens) \
             FROM requests WHERE started_at_us >= ?1 AND started_at_us < ?2 \
             AND api <> 'anthropic' AND input_tokens IS NOT NULL \
             GROUP BY q, api, requested_model, machine ORDER BY q",
        )?;
        let rows = stmt.query_map(params![from_us, to_us, QUARTER_US], |row| {
            Ok(UsageGroup {
                quarter_us: row.get(0)?,
                api: row.get(1)?,
                model: row.get(2)?,
                machine: row.get(3)?,
                requests: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                usage: tokens(row, 5)?,
            })
        })?;
        rows.collect()
    }

    /// Requests with usage in `[from_us, to_us)` passed to the Anthropic API,
    /// one by one.
    pub fn cloud_rows(
        conn: &Connection,
        from_us: i64,
        to_us: i64,
    ) -> rusqlite::Result<Vec<UsageRow>> {
        let mut stmt = conn.prepare_cached(
            "SELECT id, started_at_us, api, coalesce(requested_model, ''), coalesce(machine, ''), \
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens \
             FROM requests WHERE started_at_us >= ?1 AND started_at_us < ?2 \
             AND api = 'anthropic' AND input_tokens IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt.query_map(params![from_us, to_us], |row| {
            Ok(UsageRow {
                id: row.get(0)?,
                started_at_us: row.get(1)?,
                api: row.get(2)?,
                model: row.get(3)?,
                machine: row.get(4)?,
                usage: tokens(row, 5)?,
            })
        })?;
        rows.collect()
    }

    /// Ids of requests that started in `[from_us, to_us)` for `model` with
    /// exactly `usage`: the candidates for "the same request" as a transcript
    /// turn.
    pub fn matching_ids(
        conn: &Connection,
        from_us: i64,
        to_us: i64,
        model: &str,
        usage: &Usage,
    ) -> rusqlite::Result<Vec<i64>> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM requests WHERE started_at_us >= ?1 AND started_at_us < ?2 \
             AND requested_model = ?3 AND output_tokens = ?4 AND input_tokens = ?5 \
             AND coalesce(cache_read_tokens, 0) = ?6 AND coalesce(cache_write_tokens, 0) = ?7 \
             ORDER BY started_at_us LIMIT 16",
        )?;
        let rows = stmt.query_map(
            params![
                from_us,
                to_us,
                model,
                n(usage.output_tokens),
                n(usage.input_tokens),
                n(usage.cache_read_tokens),
                n(usage.cache_write_tokens)
            ],
            |row| row.get(0),
        )?;
        rows.collect()
    }
}
