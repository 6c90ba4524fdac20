//! The usage ledger: every proxied request, in SQLite (WAL) in `data_dir`.
//!
//! One [`Ledger`] owns one database file and a writer thread, the only
//! owner of the read-write connection. Recording a request puts it in a
//! bounded queue in memory; the writer takes everything queued, stores it in
//! one transaction (group commit: one commit for one record when the proxy
//! is quiet, for hundreds under load), and then wakes each request that
//! waits for its record. SQLite is the one place a record is stored.
//!
//! [`LedgerHandle::record`] returns once its record is committed: from then
//! on the record survives the ClawFleet process being killed (even
//! `SIGKILL`) at any moment, because it is in the write-ahead log, in the
//! operating system's hands. (With `synchronous = NORMAL` a commit does not
//! wait for the disk: a power cut can still lose the last commits, the trade
//! we make for not calling `fsync` on every request.) The proxy awaits it
//! before the last byte of an answer goes out. When the commit takes longer
//! than [`COMMIT_WAIT`] — another connection holds SQLite's write lock, or the
//! disk fails — `record` gives up waiting with [`LedgerError::Late`]: the
//! record stays queued and the writer keeps trying, so it is stored when
//! SQLite lets go, unless the process dies first. Nothing is dropped
//! silently: a warning says so, and the writer says when it stored them.
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC): a
//! [`Record::started_at`] with finer precision comes back truncated to the
//! microsecond.
//!
//! Reads ([`LedgerHandle::stats_since`], [`LedgerHandle::recent`]) first wait
//! for what is queued to be committed, so they see every record recorded
//! before them; then they use a second, read-only connection on the blocking
//! thread pool: WAL lets them run while the writer writes.
//!
//! What is stored is exactly what [`Record`] holds — never a header, a body or
//! a key. As a second line of defence (active in release builds too), text
//! fields that could echo a credential (`client`, `endpoint`, `error`) are
//! scrubbed of anything shaped like one before they are queued.
//!
//! ClawFleet before 2026-12 wrote each record to a journal folder beside the
//! database first (`ledger.sqlite-pending/`); opening stores what an older
//! version left there, once, and deletes the folder (`ledger/legacy.rs`).

mod legacy;
pub mod live;
mod schema;
mod scrub;
mod stats;

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The ledger's file name inside `data_dir`.
pub const LEDGER_FILE: &str = "ledger.sqlite";

use jiff::Timestamp;
use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};

use crate::usage::Usage;

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

/// The window of [`LedgerHandle::live_stats`]: the proxy's recent figures.
pub const LIVE_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

/// How many records may be queued and not yet committed. When that many
/// are, [`LedgerHandle::record`] waits for room and
/// [`LedgerHandle::record_nowait`] drops the record. About 7 MB; only
/// reached when SQLite cannot keep up or is locked by another program.
pub const QUEUE_CAPACITY: usize = 16_384;

/// How long [`LedgerHandle::record`] waits for its record's commit before it
/// returns [`LedgerError::Late`] and lets the answer go out, the record still
/// queued. A commit takes well under a millisecond; only another connection
/// holding SQLite's write lock, or a failing disk, makes one wait this long.
/// The writer tells the waiters, between two attempts to commit (so the
/// wait can be longer by one attempt, [`WRITE_BUSY`], and the retry pause):
/// no timer of the caller's runtime is needed.
pub const COMMIT_WAIT: Duration = Duration::from_secs(2);

/// How long one attempt to commit waits for another connection's write lock
/// (SQLite's busy timeout on the writer's connection) before it fails and is
/// tried again. Short, so that the writer soon tells waiters past
/// [`COMMIT_WAIT`], and hears [`Ledger::close`].
const WRITE_BUSY: Duration = Duration::from_millis(250);

/// After a failed commit, how long before the writer tries again. The
/// records stay queued meanwhile, in order.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// How long [`Ledger::close`] keeps trying to commit what is queued when
/// SQLite refuses (locked by another connection): past it, those records are
/// lost, and `close` says how many.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// While commits fail, how often the writer says so again.
const TROUBLE_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a statement of the reader waits for a lock held by another
/// connection, and how long opening waits for another process writing the
/// same ledger.
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
    /// The file could not be opened, or was refused and left untouched: not
    /// a ClawFleet ledger (not SQLite, or another program's database), or
    /// from a newer ClawFleet. The message says which and what to do.
    #[error(transparent)]
    Open(#[from] crate::sqlite::OpenError),
    /// Another process has the ledger open for writing (a second `clawfleet
    /// serve` on the same `data_dir`).
    #[error(
        "the ledger {} is being written by another ClawFleet process (its lock file is held); stop the other one, or give this one another data_dir",
        path.display()
    )]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// SQLite refused an operation.
    #[error("ledger {}: cannot {action}: {}", path.display(), crate::sqlite::explain(source))]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What we were doing (`open`, `read statistics`, ...).
        action: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The lock file, or the journal folder an older ClawFleet left, could
    /// not be used.
    #[error("ledger {}: cannot {action}: {source}", path.display())]
    Journal {
        /// The file or folder.
        path: PathBuf,
        /// What we were doing (`read a segment`, ...).
        action: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Storing queued records (or a prune) failed and was rolled back; the
    /// records stay queued and are tried again — unless the ledger was
    /// closing, when the reason says how many were lost.
    #[error("ledger {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// SQLite's reason.
        reason: String,
    },
    /// The record was not committed within [`COMMIT_WAIT`]: it stays queued
    /// and the writer keeps trying, so it is stored once SQLite lets go (it
    /// is lost only if the process dies first).
    #[error(
        "ledger {}: the record was not stored within {} s (SQLite is locked by another connection, or failing); it stays queued and is stored when SQLite lets go",
        path.display(),
        COMMIT_WAIT.as_secs()
    )]
    Late {
        /// The file.
        path: PathBuf,
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

/// A record waiting to be committed, and the request waiting for it, if one
/// does ([`LedgerHandle::record`]; none for [`LedgerHandle::record_nowait`]).
struct Queued {
    record: Record,
    /// Told `Ok` after the commit, or `Err(Late)` past [`COMMIT_WAIT`] (then
    /// taken out: the record stays, no one waits for it any more).
    done: Option<oneshot::Sender<Result<(), Late>>>,
    /// When it was queued: [`COMMIT_WAIT`] runs from here.
    since: Instant,
}

/// The commit did not happen within [`COMMIT_WAIT`].
struct Late;

/// What the writer is asked to do, behind one short lock taken once per
/// record.
struct State {
    /// Records not yet taken by the writer, in the order recorded.
    queue: VecDeque<Queued>,
    /// Records queued or taken by the writer and not yet committed: what
    /// [`QUEUE_CAPACITY`] bounds.
    uncommitted: usize,
    /// No more records are taken: [`Ledger::close`] was called, or the
    /// writer stopped.
    closed: bool,
    /// The writer is to store what is queued and stop.
    stop: bool,
    /// The writer sleeps on [`Shared::work`] and must be woken for a record.
    idle: bool,
    /// [`LedgerHandle::flush`]es waiting for the writer's next commit.
    flushes: Vec<oneshot::Sender<Result<(), String>>>,
    prunes: Vec<(i64, oneshot::Sender<Result<u64, String>>)>,
}

/// Why a record could not be queued.
enum Refused {
    Full,
    Closed,
}

/// What every handle shares.
struct Shared {
    path: PathBuf,
    state: Mutex<State>,
    /// Wakes the writer: a record while it was idle, a flush, a prune, a
    /// stop.
    work: Condvar,
    /// Signalled when records are committed (room in the queue) and when the
    /// ledger closes.
    room: Notify,
    dropped: AtomicU64,
    /// Records whose [`LedgerHandle::record`] gave up waiting for the commit.
    late: AtomicU64,
    /// Transactions committed by the writer.
    commits: AtomicU64,
    /// The read-only connection. One is enough for a handful of readers (the
    /// snapshot, the API); they take turns.
    reader: Mutex<Connection>,
    /// The figures of the last [`LIVE_WINDOW`], as the writer stores records.
    live: Mutex<live::LiveStats>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock can leave the state half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the record in `slot`, taking it out of the slot (a refused one
    /// stays there, for a retry); wakes the writer when it was idle.
    fn push(&self, slot: &mut Option<Queued>) -> Result<(), Refused> {
        let mut state = self.state();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.uncommitted >= QUEUE_CAPACITY {
            return Err(Refused::Full);
        }
        let Some(queued) = slot.take() else {
            return Ok(());
        };
        state.queue.push_back(queued);
        state.uncommitted += 1;
        let wake = std::mem::replace(&mut state.idle, false);
        drop(state);
        if wake {
            self.work.notify_one();
        }
        Ok(())
    }
}

/// `record` as it is stored: its free text scrubbed of anything shaped like
/// a credential, its numbers finite (SQLite would store a NaN as NULL, which
/// the NOT NULL duration refuses). Takes the record, so that only text that
/// held a credential is copied.
fn prepare(mut record: Record) -> Record {
    scrub_in_place(&mut record.client);
    scrub_in_place(&mut record.endpoint);
    if let Some(error) = record.error.as_mut() {
        scrub_in_place(error);
    }
    record.ttfb_ms = record.ttfb_ms.filter(|v| v.is_finite());
    if !record.duration_ms.is_finite() {
        record.duration_ms = 0.0;
    }
    record
}

fn scrub_in_place(text: &mut String) {
    if let std::borrow::Cow::Owned(clean) = scrub::scrub(text) {
        *text = clean;
    }
}

/// The ledger: owns the writer thread. Use [`Ledger::handle`] to record and
/// read; [`Ledger::close`] (or drop) stores what is queued and stops.
pub struct Ledger {
    handle: LedgerHandle,
    writer: Option<JoinHandle<Result<(), String>>>,
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

/// The lock file of the ledger at `db`: `<db>-lock`, beside it, held by the
/// process that writes the ledger.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-lock");
    db.with_file_name(name)
}

/// Locks `file` (at `path`) exclusively for this process, waiting up to
/// [`BUSY_TIMEOUT`] for another process to let go; the lock lasts as long as
/// the file is open.
fn lock_file(db: &Path, file: &File, path: &Path) -> Result<(), LedgerError> {
    const PAUSE: Duration = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if waited < BUSY_TIMEOUT => {
                std::thread::sleep(PAUSE);
                waited += PAUSE;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LedgerError::InUse {
                    path: db.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LedgerError::Journal {
                    path: path.to_path_buf(),
                    action: "lock the file",
                    source,
                });
            }
        }
    }
}

/// Creates the ledger's lock file and locks it for this process.
fn lock(db: &Path) -> Result<File, LedgerError> {
    let path = lock_path(db);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(|source| LedgerError::Journal {
        path: path.clone(),
        action: "open the lock file",
        source,
    })?;
    lock_file(db, &file, &path)?;
    Ok(file)
}

impl Ledger {
    /// Opens (or creates) the ledger at `path`, keeping every row forever.
    /// See [`Ledger::open_with`].
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_with(path, Retention::default())
    }

    /// Opens (or creates) the ledger at `path` and starts its writer thread.
    ///
    /// Creates the parent folder, and a lock file beside the ledger
    /// (`<file>-lock`) that this process holds: while another process writes
    /// the same ledger, waits up to 5 s for it, then fails with
    /// [`LedgerError::InUse`]. Opens SQLite with `journal_mode=WAL` and
    /// `synchronous=NORMAL`. Brings an older schema up to
    /// [`SCHEMA_VERSION`]. Stores what an older ClawFleet left in its journal
    /// folder (`<file>-pending/`), once, and deletes the folder.
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
        let mut conn = schema::open_writer(path)?;
        let lock = lock(path)?;
        legacy::import(path, &mut conn)?;
        conn.busy_timeout(WRITE_BUSY)
            .map_err(|source| LedgerError::Sqlite {
                path: path.to_path_buf(),
                action: "set busy_timeout",
                source,
            })?;
        let reader = schema::open_reader(path)?;
        let mut live = live::LiveStats::new(LIVE_WINDOW);
        let now = Timestamp::now();
        let since = now
            .checked_sub(LIVE_WINDOW)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let recent = rows_since(&reader, since).map_err(|source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            action: "read the last minutes' records",
            source,
        })?;
        live.reset(&recent, now);
        drop(recent);

        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                uncommitted: 0,
                closed: false,
                stop: false,
                idle: false,
                flushes: Vec::new(),
                prunes: Vec::new(),
            }),
            work: Condvar::new(),
            room: Notify::new(),
            dropped: AtomicU64::new(0),
            late: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            reader: Mutex::new(reader),
            live: Mutex::new(live),
        });
        let writer = Writer {
            shared: shared.clone(),
            conn,
            retention,
            trouble: None,
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("clawfleet-ledger".into())
            .spawn(move || writer.run())
            .map_err(|source| LedgerError::Spawn {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Ledger {
            handle: LedgerHandle { shared },
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

    /// Takes no more records (from any handle: they fail with
    /// [`LedgerError::Closed`]), commits every record already queued, then
    /// stops the writer thread and waits for it.
    ///
    /// When SQLite refuses the commit (another connection holds its write
    /// lock), keeps trying for [`CLOSE_WAIT`]; past that the queued records
    /// are lost, logged, and the error says how many. Blocking (for one
    /// commit of at most [`QUEUE_CAPACITY`] records, or about 5 s at worst):
    /// from async code, call it from `spawn_blocking`. Dropping the ledger
    /// does the same.
    pub fn close(mut self) -> Result<(), LedgerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LedgerError> {
        let Some(thread) = self.writer.take() else {
            return Ok(());
        };
        let shared = &self.handle.shared;
        {
            let mut state = shared.state();
            state.closed = true;
            state.stop = true;
        }
        shared.work.notify_one();
        // Whoever waits for room learns at once that the ledger is closed.
        shared.room.notify_waiters();
        match thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(LedgerError::Write {
                path: shared.path.clone(),
                reason,
            }),
            Err(_) => Err(LedgerError::Write {
                path: shared.path.clone(),
                reason: "the writer thread panicked; records it had not committed are lost".into(),
            }),
        }
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

    /// Records `record` and returns once it is committed: after `Ok(())` the
    /// record survives the process being killed, and reads from any handle
    /// see it.
    ///
    /// Waits (asynchronously) for the writer's next commit, which stores
    /// whatever is queued by then in one transaction: a fraction of a
    /// millisecond when SQLite is free. Waits for room first while
    /// [`QUEUE_CAPACITY`] records are queued and not yet committed.
    /// Records recorded one after another from one task are stored in that
    /// order.
    ///
    /// When the commit has not happened within [`COMMIT_WAIT`] (another
    /// connection holds SQLite's write lock, or the disk fails), returns
    /// [`LedgerError::Late`]: the record stays queued, and the writer stores
    /// it when it can. A warning is logged at the 1st, 2nd, 4th, 8th... such
    /// record, and the writer logs while its commits fail. Needs no timer
    /// of the runtime: the writer thread tells it.
    pub async fn record(&self, record: Record) -> Result<(), LedgerError> {
        let (done, committed) = oneshot::channel();
        let mut slot = Some(Queued {
            record: prepare(record),
            done: Some(done),
            since: Instant::now(),
        });
        // The usual case first: room in the queue, and no waiter to set up.
        let mut outcome = self.shared.push(&mut slot);
        loop {
            match outcome {
                Ok(()) => break,
                Err(Refused::Closed) => return Err(self.closed()),
                Err(Refused::Full) => {}
            }
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before looking again, so a commit in between is
            // not missed.
            room.as_mut().enable();
            outcome = self.shared.push(&mut slot);
            if matches!(outcome, Err(Refused::Full)) {
                room.await;
                outcome = self.shared.push(&mut slot);
            }
        }
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Late)) => Err(LedgerError::Late {
                path: self.shared.path.clone(),
            }),
            // The writer let go of it uncommitted: it stopped, and could not
            // store what was queued (it said so).
            Err(_) => Err(self.closed()),
        }
    }

    /// Queues `record` without ever waiting, neither for room nor for its
    /// commit.
    ///
    /// When the queue is full or the ledger is closed, the record is dropped
    /// and counted in [`LedgerHandle::dropped`]; a warning is logged at the
    /// 1st, 2nd, 4th, 8th... drop, so an overload does not flood the log.
    pub fn record_nowait(&self, record: Record) {
        let mut slot = Some(Queued {
            record: prepare(record),
            done: None,
            since: Instant::now(),
        });
        let why = match self.shared.push(&mut slot) {
            Ok(()) => return,
            Err(Refused::Full) => "the ledger's queue is full (SQLite is not keeping up)",
            Err(Refused::Closed) => "the ledger is closed",
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

    /// How many transactions the writer has committed since the ledger was
    /// opened: against the records stored, how well commits are grouped.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Commits what is queued now; fails when that commit fails (the records
    /// stay queued and are tried again). Reads do this first by themselves.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let done = {
            let mut state = self.shared.state();
            if state.closed {
                return Err(self.closed());
            }
            if state.uncommitted == 0 {
                return Ok(());
            }
            let (ack, done) = oneshot::channel();
            state.flushes.push(ack);
            done
        };
        self.shared.work.notify_one();
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(LedgerError::Write {
                path: self.shared.path.clone(),
                reason,
            }),
            Err(_) => Err(self.closed()),
        }
    }

    /// Deletes every row whose request started before `older_than`, on the
    /// writer thread (after committing what is queued), and returns how many
    /// were deleted. The file does not shrink: SQLite reuses the space.
    pub async fn prune(&self, older_than: Timestamp) -> Result<u64, LedgerError> {
        let done = {
            let mut state = self.shared.state();
            if state.closed {
                return Err(self.closed());
            }
            let (ack, done) = oneshot::channel();
            state.prunes.push((older_than.as_microsecond(), ack));
            done
        };
        self.shared.work.notify_one();
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

    /// The proxy's figures over the last [`LIVE_WINDOW`], from memory: no
    /// query, no flush, so cheap enough for every snapshot. Records appear
    /// once committed; percentiles are within 0.5% of the exact ones (see
    /// [`live`]).
    pub fn live_stats(&self) -> ProxyStats {
        self.shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats(Timestamp::now())
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
        self.read("read recent records", move |conn| recent_rows(conn, limit))
            .await
    }

    /// Commits what is queued, then runs `f` on the read-only connection,
    /// on the blocking pool.
    async fn read<T, F>(&self, action: &'static str, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        match self.flush().await {
            // A closed ledger has stored everything it could: read what is there.
            Ok(()) | Err(LedgerError::Closed { .. }) => {}
            // Read what is stored; the rest stays queued for the next try.
            Err(e) => tracing::warn!("{e}"),
        }
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

/// The last `limit` records of the ledger at `path`, newest first, through a
/// read-only connection of their own: for another process (or a test) while
/// a daemon writes the ledger.
pub fn read_recent(path: &Path, limit: usize) -> Result<Vec<Record>, LedgerError> {
    let conn = schema::open_reader(path)?;
    recent_rows(&conn, limit).map_err(|source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        action: "read recent records",
        source,
    })
}

/// The records that started at `since` or later, oldest first.
fn rows_since(conn: &Connection, since: Timestamp) -> rusqlite::Result<Vec<Record>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM requests WHERE started_at_us >= ?1 ORDER BY started_at_us",
        schema::RECORD_COLUMNS
    ))?;
    let rows = stmt.query_map([since.as_microsecond()], schema::record_from_row)?;
    rows.collect()
}

fn recent_rows(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Record>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM requests ORDER BY id DESC LIMIT ?1",
        schema::RECORD_COLUMNS
    ))?;
    let rows = stmt.query_map([limit], schema::record_from_row)?;
    rows.collect()
}

/// What the writer took from [`State`] besides records, to answer after its
/// commit.
struct Asked {
    flushes: Vec<oneshot::Sender<Result<(), String>>>,
    prunes: Vec<(i64, oneshot::Sender<Result<u64, String>>)>,
    stop: bool,
}

/// A spell of failing commits, for the log.
struct Trouble {
    since: Instant,
    logged: Instant,
    failures: u64,
}

/// Marks the ledger closed when the writer stops, also by a panic: records
/// are refused from then on instead of waiting for a writer that is gone.
struct Stopped(Arc<Shared>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.closed = true;
        // Their waiters learn that the records were not stored.
        state.queue.clear();
        state.flushes.clear();
        state.prunes.clear();
        drop(state);
        self.0.room.notify_waiters();
    }
}

/// The writer thread: the only owner of the read-write connection.
struct Writer {
    shared: Arc<Shared>,
    conn: Connection,
    retention: Retention,
    trouble: Option<Trouble>,
    /// The ledger's lock file, held until the writer stops.
    _lock: File,
}

impl Writer {
    /// Commits what is queued, again and again, until asked to stop; then
    /// [`Writer::finish`]es.
    fn run(mut self) -> Result<(), String> {
        let _stopped = Stopped(self.shared.clone());
        // Retention is applied before anything else, then on a timer.
        let mut next_prune = (self.retention.max_age_days > 0).then(Instant::now);
        // Records taken and not yet committed (a commit failed), oldest first.
        let mut batch: Vec<Queued> = Vec::new();
        // After a failed commit, when to try again.
        let mut retry_at: Option<Instant> = None;
        loop {
            if let Some(at) = next_prune.filter(|at| *at <= Instant::now()) {
                self.apply_retention();
                next_prune = Some(at.max(Instant::now()) + PRUNE_EVERY);
            }
            let asked = self.wait(&mut batch, retry_at, next_prune);
            let stored = if batch.is_empty() {
                Ok(())
            } else {
                self.commit(&mut batch)
            };
            retry_at = stored.is_err().then(|| Instant::now() + RETRY_EVERY);
            if stored.is_err() {
                self.release_late(&mut batch);
            }
            for ack in asked.flushes {
                let _ = ack.send(stored.clone());
            }
            for (before_us, ack) in asked.prunes {
                let _ = ack.send(self.prune(before_us).map_err(|e| e.to_string()));
            }
            if asked.stop {
                return self.finish(batch);
            }
        }
    }

    /// Sleeps until there is something to do, then takes every queued
    /// record into `batch` (after those a failed commit left there) and
    /// what else was asked.
    fn wait(
        &self,
        batch: &mut Vec<Queued>,
        retry_at: Option<Instant>,
        next_prune: Option<Instant>,
    ) -> Asked {
        let mut state = self.shared.state();
        loop {
            let now = Instant::now();
            let records = !state.queue.is_empty() || !batch.is_empty();
            // After a failure, new records wait for the retry with the rest.
            let retry_due = retry_at.is_none_or(|at| at <= now);
            let ready = state.stop
                || !state.flushes.is_empty()
                || !state.prunes.is_empty()
                || (records && retry_due)
                || next_prune.is_some_and(|at| at <= now);
            if ready {
                break;
            }
            let wake_at = retry_at
                .filter(|_| records)
                .into_iter()
                .chain(next_prune)
                .min();
            state.idle = true;
            state = match wake_at {
                Some(at) => {
                    self.shared
                        .work
                        .wait_timeout(state, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .shared
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
            state.idle = false;
        }
        batch.extend(state.queue.drain(..));
        Asked {
            flushes: std::mem::take(&mut state.flushes),
            prunes: std::mem::take(&mut state.prunes),
            stop: state.stop,
        }
    }

    /// Stores `batch` in one transaction, then wakes the requests waiting
    /// for its records. On failure everything stays as it was, to be tried
    /// again.
    fn commit(&mut self, batch: &mut Vec<Queued>) -> Result<(), String> {
        let n = batch.len();
        if let Err(e) = insert(&mut self.conn, batch.iter().map(|q| &q.record)) {
            let reason = format!("cannot store {n} record(s): {}", crate::sqlite::explain(&e));
            self.failed(&reason, n);
            return Err(reason);
        }
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        {
            let now = Timestamp::now();
            let mut live = self
                .shared
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for q in batch.iter() {
                live.add(&q.record, now);
            }
        }
        for q in batch.drain(..) {
            if let Some(done) = q.done {
                // A request that went away meanwhile: nothing to tell.
                let _ = done.send(Ok(()));
            }
        }
        {
            let mut state = self.shared.state();
            state.uncommitted = state.uncommitted.saturating_sub(n);
        }
        self.shared.room.notify_waiters();
        if let Some(trouble) = self.trouble.take() {
            tracing::info!(
                ledger = %self.shared.path.display(),
                records = n,
                failed_attempts = trouble.failures,
                "stored the records held back for {:.1} s",
                trouble.since.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Tells the requests that have waited [`COMMIT_WAIT`] for a record of
    /// `batch` that it is late: their answers go on, the records stay.
    fn release_late(&self, batch: &mut [Queued]) {
        let mut released = 0;
        for q in batch.iter_mut() {
            if q.done.is_some() && q.since.elapsed() >= COMMIT_WAIT {
                if let Some(done) = q.done.take() {
                    let _ = done.send(Err(Late));
                }
                released += 1;
            }
        }
        if released == 0 {
            return;
        }
        let before = self.shared.late.fetch_add(released, Ordering::Relaxed);
        let total = before + released;
        // Logged when the total passes a power of two: 1, 2, 4, 8...
        if (before + 1..=total).any(u64::is_power_of_two) {
            tracing::warn!(
                ledger = %self.shared.path.display(),
                late_total = total,
                "{released} record(s) not committed within {} s: their answers go on without waiting further; the records stay queued and are stored when SQLite lets go",
                COMMIT_WAIT.as_secs()
            );
        }
    }

    /// Logs a failed commit: the first of a spell, then every
    /// [`TROUBLE_LOG_EVERY`].
    fn failed(&mut self, reason: &str, queued: usize) {
        let now = Instant::now();
        let trouble = self.trouble.get_or_insert(Trouble {
            since: now,
            logged: now,
            failures: 0,
        });
        trouble.failures += 1;
        if trouble.failures == 1 || now.duration_since(trouble.logged) >= TROUBLE_LOG_EVERY {
            trouble.logged = now;
            tracing::warn!(
                ledger = %self.shared.path.display(),
                failing_for_s = now.duration_since(trouble.since).as_secs(),
                "{reason}; they stay queued ({queued} now) and are tried again every {} ms",
                RETRY_EVERY.as_millis()
            );
        }
    }

    /// Commits what is left (nothing more is taken: the ledger is closed),
    /// trying for [`CLOSE_WAIT`] while SQLite refuses. Records that cannot be
    /// committed by then are lost, and the error says how many.
    fn finish(&mut self, mut batch: Vec<Queued>) -> Result<(), String> {
        let flushes = {
            let mut state = self.shared.state();
            state.closed = true;
            batch.extend(state.queue.drain(..));
            std::mem::take(&mut state.flushes)
        };
        self.shared.room.notify_waiters();
        let deadline = Instant::now() + CLOSE_WAIT;
        let mut result = Ok(());
        while !batch.is_empty() {
            match self.commit(&mut batch) {
                Ok(()) => {}
                Err(_) if Instant::now() + RETRY_EVERY < deadline => {
                    self.release_late(&mut batch);
                    std::thread::sleep(RETRY_EVERY);
                }
                Err(reason) => {
                    let reason = format!(
                        "{reason}, for {} s while closing: the ledger closed without them, they are lost",
                        CLOSE_WAIT.as_secs()
                    );
                    tracing::error!(ledger = %self.shared.path.display(), "{reason}");
                    result = Err(reason);
                    break;
                }
            }
        }
        for ack in flushes {
            let _ = ack.send(result.clone());
        }
        result
    }

    fn prune(&mut self, before_us: i64) -> rusqlite::Result<u64> {
        let deleted = self
            .conn
            .execute("DELETE FROM requests WHERE started_at_us < ?1", [before_us])?;
        let now = Timestamp::now();
        let window_start = now
            .checked_sub(LIVE_WINDOW)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        if deleted > 0 && before_us > window_start.as_microsecond() {
            // Rows of the live window went: its figures start over from
            // what is left.
            let left = rows_since(&self.conn, window_start)?;
            self.shared
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reset(&left, now);
        }
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }

    fn apply_retention(&mut self) {
        let age = i64::from(self.retention.max_age_days).saturating_mul(MICROS_PER_DAY);
        let cutoff = Timestamp::now().as_microsecond().saturating_sub(age);
        match self.prune(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                ledger = %self.shared.path.display(),
                deleted = n,
                max_age_days = self.retention.max_age_days,
                "pruned old ledger rows"
            ),
            Err(e) => {
                tracing::error!(ledger = %self.shared.path.display(), "cannot prune old rows: {e}")
            }
        }
    }
}

/// Inserts `records` (prepared already, by [`prepare`]) in one transaction.
fn insert<'a>(
    conn: &mut Connection,
    records: impl IntoIterator<Item = &'a Record>,
) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front (waiting up to WRITE_BUSY),
    // so another writer on the file can never make us fail half-way.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    insert_rows(&tx, records)?;
    tx.commit()
}

/// Inserts `records` within the caller's transaction.
fn insert_rows<'a>(
    tx: &Connection,
    records: impl IntoIterator<Item = &'a Record>,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(schema::INSERT)?;
    for r in records {
        let usage = r.usage;
        stmt.execute(params![
            r.started_at.as_microsecond(),
            r.client,
            r.api,
            r.endpoint,
            r.requested_model,
            r.machine,
            i64::from(r.fallback_depth),
            r.stream,
            usage.map(|u| tokens(u.input_tokens)),
            usage.map(|u| tokens(u.output_tokens)),
            usage.map(|u| tokens(u.cache_read_tokens)),
            usage.map(|u| tokens(u.cache_write_tokens)),
            // Finite numbers only (prepare), as the NOT NULL duration needs.
            r.ttfb_ms,
            r.duration_ms,
            i64::from(r.status),
            r.outcome,
            r.error,
        ])?;
    }
    Ok(())
}

/// SQLite integers are signed: a count beyond `i64::MAX` (which no backend
/// will ever report) is stored as `i64::MAX` rather than failing the batch.
fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reading the ledger for the cost engine, on a connection of its own
/// ([`usage::open_read_only`]): it runs in other processes too (`clawfleet costs`).
pub mod usage {
    use std::path::Path;

    use rusqlite::{Connection, OpenFlags, params};

    use super::{BUSY_TIMEOUT, LedgerError};
    use crate::usage::Usage;

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
impl From<LedgerError> for crate::Error {
    fn from(e: LedgerError) -> Self {
        crate::Error::Service(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is queued is what is stored: free text scrubbed, numbers finite.
    #[test]
    fn a_prepared_record_is_scrubbed_and_its_numbers_finite() {
        let record = Record {
            started_at: Timestamp::from_nanosecond(1_793_491_200_123_456_789).expect("in range"),
            client: "127.0.0.1 curl/8 Bearer sk-ant-api03-abcdefghijklmnopqrstuvwxyz".into(),
            api: "anthropic".into(),
            endpoint: "/v1/messages?key=sk-ant-api03-abcdefghijklmnopqrstuvwxyz".into(),
            requested_model: Some("m\u{e9}\"\n".into()),
            machine: None,
            fallback_depth: 2,
            stream: true,
            usage: None,
            ttfb_ms: Some(f64::NAN),
            duration_ms: f64::INFINITY,
            status: 502,
            outcome: "error".into(),
            error: Some("x-api-key: sk-ant-api03-abcdefghijklmnopqrstuvwxyz refused".into()),
        };
        let prepared = prepare(record.clone());
        for text in [&prepared.client, &prepared.endpoint] {
            assert!(!text.contains("abcdefghijklmnop"), "scrubbed: {text}");
        }
        assert!(
            !prepared
                .error
                .as_deref()
                .is_some_and(|e| e.contains("abcdefghijklmnop"))
        );
        assert_eq!((prepared.ttfb_ms, prepared.duration_ms), (None, 0.0));
        assert_eq!(prepared.requested_model, record.requested_model);
        assert_eq!(prepared.started_at, record.started_at);
    }
}
