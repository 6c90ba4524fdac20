//! The usage ledger: every proxied request, in SQLite (WAL) in `data_dir`.
//!
//! One [`Ledger`] owns one database file and its journal
//! (`ledger.sqlite-pending/`, see `ledger/journal.rs`). Recording a request
//! costs its task one JSON line appended to the journal's active segment (a
//! copy into a mapped file on Linux, one `write` elsewhere); nothing waits
//! for SQLite. A dedicated writer thread, the only owner of the read-write
//! connection, wakes at most every [`BATCH_EVERY`] while records arrive
//! (never while none do), moves the journal to a fresh segment, stores the
//! old one's records in one transaction and then deletes it or keeps it,
//! emptied, for the next rotation. Under load that is hundreds of rows per
//! commit, instead of a commit and two thread wake-ups per request.
//!
//! [`LedgerHandle::record`] returns once its line is written: from then on the
//! record survives the ClawFleet process being killed (even `SIGKILL`) at any
//! moment, because it is in the operating system's hands, in the journal or
//! in the WAL, and the next open stores what the journal still holds. It may
//! be lost if the whole machine loses power before the OS flushes its cache;
//! that is the trade we make for not calling `fsync` on every request.
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC): a
//! [`Record::started_at`] with finer precision comes back truncated to the
//! microsecond.
//!
//! Reads ([`LedgerHandle::stats_since`], [`LedgerHandle::recent`]) first ask
//! the writer to store what the journal holds, so they see every record
//! recorded before them; then they use a second, read-only connection on the
//! blocking thread pool: WAL lets them run while the writer writes.
//!
//! What is stored is exactly what [`Record`] holds — never a header, a body or
//! a key. As a second line of defence (active in release builds too), text
//! fields that could echo a credential (`client`, `endpoint`, `error`) are
//! scrubbed of anything shaped like one before they are written, to the
//! journal as to the database.

mod journal;
pub mod live;
mod schema;
mod scrub;
mod stats;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
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

/// How many records may be in the journal and not yet in SQLite. When that
/// many are, [`LedgerHandle::record`] waits for room and
/// [`LedgerHandle::record_nowait`] drops the record. About 7 MB of journal;
/// only reached when SQLite cannot keep up or is locked by another program.
pub const QUEUE_CAPACITY: usize = 16_384;

/// How long the writer lets records gather in the journal before storing
/// them: the first record after a quiet spell wakes it, and it stores that
/// record and everything after it this much later, in one transaction.
pub const BATCH_EVERY: Duration = Duration::from_millis(100);

/// After a failed store (SQLite locked or the disk full), how long before
/// the writer tries again. The records stay in the journal meanwhile.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long a statement waits for a lock held by another connection (another
/// ClawFleet process, or someone inspecting the file with `sqlite3`), and how
/// long opening waits for another process writing the same ledger.
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
    /// Another process has the ledger open for writing (a second `clawfleet
    /// serve` on the same `data_dir`).
    #[error(
        "the ledger {} is being written by another ClawFleet process (its journal folder is locked); stop the other one, or give this one another data_dir",
        path.display()
    )]
    InUse {
        /// The file.
        path: PathBuf,
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
    /// The journal could not be written or read: for a record, it was not
    /// recorded.
    #[error("ledger journal {}: cannot {action}: {source}", path.display())]
    Journal {
        /// The journal folder.
        path: PathBuf,
        /// What we were doing (`write a record`, ...).
        action: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Storing the journal's records in SQLite (or a prune) failed and was
    /// rolled back; the records stay in the journal and are tried again.
    #[error("ledger {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// SQLite's reason.
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

/// What the writer thread is asked to do. Records themselves never pass
/// through here: they are in the journal.
enum Command {
    /// Records arrived after a quiet spell: store them in [`BATCH_EVERY`].
    Wake,
    /// Store what the journal holds now, then answer.
    Flush(oneshot::Sender<Result<(), String>>),
    Prune {
        before_us: i64,
        ack: oneshot::Sender<Result<u64, String>>,
    },
    /// Store everything journaled, then stop.
    Shutdown,
}

/// The segment records are appended to.
struct Active {
    file: journal::Segment,
    records: usize,
    /// The records written, as written, for the writer to store without
    /// reading the segment back; `None` past [`KEEP_MAX`] (it then reads).
    kept: Option<Vec<Record>>,
}

/// Records of one segment kept in memory at most; past that the writer reads
/// the segment back. Bounds the memory of a burst the writer has not yet
/// caught up with (about 1 MB).
const KEEP_MAX: usize = 4096;

impl Active {
    fn new(file: journal::Segment) -> Self {
        Self {
            file,
            records: 0,
            kept: Some(Vec::new()),
        }
    }

    /// The segment as the writer's backlog holds it.
    fn retire(self) -> Rotated {
        Rotated {
            file: self.file,
            records: self.records,
            kept: self.kept,
        }
    }
}

/// The journal's state, behind one short lock taken once per record.
struct Queue {
    /// `None` once the ledger is closed.
    active: Option<Active>,
    /// Records journaled and not yet committed, in every segment.
    uncommitted: usize,
    /// The writer has been told there is work ([`Command::Wake`]) and has not
    /// rotated since: further records need not tell it again.
    armed: bool,
}

/// Why a line could not be appended.
enum Refused {
    Full,
    Closed,
    Io(std::io::Error),
}

/// What every handle shares.
struct Shared {
    path: PathBuf,
    /// The journal folder.
    dir: PathBuf,
    queue: Mutex<Queue>,
    /// Signalled when records are committed (room in the queue) and when the
    /// writer stops.
    room: Notify,
    /// To the writer. A std channel because the writer is a plain thread that
    /// needs `recv_timeout`, and because sending never blocks.
    tx: mpsc::Sender<Command>,
    dropped: AtomicU64,
    /// The read-only connection. One is enough for a handful of readers (the
    /// snapshot, the API); they take turns.
    reader: Mutex<Connection>,
    /// The figures of the last [`LIVE_WINDOW`], as the writer stores records.
    live: Mutex<live::LiveStats>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing under this lock can leave the queue half-changed.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the record in `slot` to the journal, taking it out of the
    /// slot once written (a refused one stays there, for a retry); tells the
    /// writer when it was idle.
    fn append(&self, slot: &mut Option<journal::Prepared>) -> Result<(), Refused> {
        let mut guard = self.queue();
        let q = &mut *guard;
        let Some(active) = q.active.as_mut() else {
            return Err(Refused::Closed);
        };
        if q.uncommitted >= QUEUE_CAPACITY {
            return Err(Refused::Full);
        }
        let Some(mut prepared) = slot.take() else {
            return Ok(());
        };
        if let Err(e) = active.file.append(&mut prepared.line) {
            *slot = Some(prepared);
            return Err(Refused::Io(e));
        }
        active.records += 1;
        if let Some(kept) = active.kept.as_mut() {
            if kept.len() < KEEP_MAX {
                kept.push(prepared.record);
            } else {
                active.kept = None;
            }
        }
        q.uncommitted += 1;
        let wake = !std::mem::replace(&mut q.armed, true);
        drop(guard);
        if wake {
            // Fails only when the writer is gone; the record is in the
            // journal and the next open stores it.
            let _ = self.tx.send(Command::Wake);
        }
        Ok(())
    }
}

/// The ledger: owns the writer thread. Use [`Ledger::handle`] to record and
/// read; [`Ledger::close`] (or drop) stores what is journaled and stops.
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
    /// Creates the parent folder and the journal folder beside the file, and
    /// locks the journal for this process: while another process writes the
    /// same ledger, waits up to 5 s for it, then fails with
    /// [`LedgerError::InUse`]. Opens SQLite with `journal_mode=WAL` and
    /// `synchronous=NORMAL`. Brings an older schema up to
    /// [`SCHEMA_VERSION`]. Stores whatever an earlier run left in the journal
    /// (it was killed before its writer got to it).
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
        let (dir, lock) = journal::lock(path)?;
        remove_spare(&dir);
        let last = recover(path, &dir, &mut conn)?;
        let first = last + 1;
        let file =
            journal::Segment::create(&dir, first).map_err(|source| LedgerError::Journal {
                path: dir.clone(),
                action: "create a segment",
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

        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            dir,
            queue: Mutex::new(Queue {
                active: Some(Active::new(file)),
                uncommitted: 0,
                armed: false,
            }),
            room: Notify::new(),
            tx,
            dropped: AtomicU64::new(0),
            reader: Mutex::new(reader),
            live: Mutex::new(live),
        });
        let writer = Writer {
            shared: shared.clone(),
            conn,
            rx,
            retention,
            backlog: Vec::new(),
            spare: None,
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

    /// Stores every record already journaled (from any handle), then stops
    /// the writer thread and waits for it. Records sent afterwards fail with
    /// [`LedgerError::Closed`].
    ///
    /// Blocking (for as long as the journal takes to store, at most
    /// [`QUEUE_CAPACITY`] records): from async code, call it from
    /// `spawn_blocking`. Dropping the ledger does the same.
    pub fn close(mut self) -> Result<(), LedgerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LedgerError> {
        let Some(thread) = self.writer.take() else {
            return Ok(());
        };
        // Never blocks: the channel is unbounded. If the writer is already
        // gone the send fails, and join tells us why.
        let _ = self.handle.shared.tx.send(Command::Shutdown);
        thread.join().map_err(|_| LedgerError::Write {
            path: self.handle.shared.path.clone(),
            reason: "the writer thread panicked; what was journaled is stored when the ledger next opens".into(),
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

/// Stores what an earlier run left in the journal at `dir` and deletes the
/// segments; returns the newest segment number seen (stored or not), so
/// that new segments are numbered after it.
fn recover(path: &Path, dir: &Path, conn: &mut Connection) -> Result<u64, LedgerError> {
    let sqlite = |action| {
        move |source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let journal_err = |action| {
        move |source| LedgerError::Journal {
            path: dir.to_path_buf(),
            action,
            source,
        }
    };
    let committed = schema::committed_segment(conn).map_err(sqlite("read the journal state"))?;
    let found = journal::segments(dir).map_err(journal_err("list the segments"))?;
    let (done, left): (Vec<u64>, Vec<u64>) = found.iter().partition(|n| **n <= committed);
    if let Some(&newest) = left.last() {
        let records = journal::read_segments(dir, left.iter().copied())
            .map_err(|(_, e)| journal_err("read a segment")(e))?;
        insert(conn, &records, newest).map_err(sqlite("store the records left in the journal"))?;
        tracing::info!(
            ledger = %path.display(),
            records = records.len(),
            segments = left.len(),
            "stored the records an earlier run left in the journal"
        );
    }
    for n in done.iter().chain(&left) {
        journal::remove_segment(dir, *n).map_err(journal_err("delete a stored segment"))?;
    }
    Ok(found.last().copied().unwrap_or(0).max(committed))
}

impl LedgerHandle {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Records `record` and returns once it is in the journal: after
    /// `Ok(())`, the record survives the process being killed, and reads
    /// from any handle see it.
    ///
    /// Costs one line appended to the journal on the calling thread (a copy
    /// into a mapped file on Linux, one `write` elsewhere). Waits
    /// (asynchronously) only
    /// while [`QUEUE_CAPACITY`] records are journaled and not yet stored.
    /// Records recorded one after another from one task are stored in that
    /// order.
    pub async fn record(&self, record: Record) -> Result<(), LedgerError> {
        let mut slot = Some(journal::prepare(record));
        // The usual case first: room in the queue, and no waiter to set up.
        let mut outcome = self.shared.append(&mut slot);
        loop {
            match outcome {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(self.closed()),
                Err(Refused::Io(source)) => {
                    return Err(LedgerError::Journal {
                        path: self.shared.dir.clone(),
                        action: "write a record",
                        source,
                    });
                }
                Err(Refused::Full) => {}
            }
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before looking again, so a commit in between is
            // not missed.
            room.as_mut().enable();
            outcome = self.shared.append(&mut slot);
            if matches!(outcome, Err(Refused::Full)) {
                room.await;
                outcome = self.shared.append(&mut slot);
            }
        }
    }

    /// Records `record` without ever waiting.
    ///
    /// When the queue is full, the journal cannot be written or the ledger is
    /// closed, the record is dropped and counted in
    /// [`LedgerHandle::dropped`]; a warning is logged at the 1st, 2nd, 4th,
    /// 8th... drop, so an overload does not flood the log.
    pub fn record_nowait(&self, record: Record) {
        let why = match self.shared.append(&mut Some(journal::prepare(record))) {
            Ok(()) => return,
            Err(Refused::Full) => {
                "the ledger's journal is full (SQLite is not keeping up)".to_owned()
            }
            Err(Refused::Closed) => "the ledger is closed".to_owned(),
            Err(Refused::Io(e)) => format!("the ledger's journal cannot be written ({e})"),
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

    /// Stores what the journal holds now. Reads do this first by themselves.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let (ack, done) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Flush(ack))
            .map_err(|_| self.closed())?;
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
    /// writer thread (after storing what is journaled), and returns how many
    /// were deleted. The file does not shrink: SQLite reuses the space.
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

    /// The proxy's figures over the last [`LIVE_WINDOW`], from memory: no
    /// query, no flush, so cheap enough for every snapshot. Records appear
    /// once stored (within about [`BATCH_EVERY`]); percentiles are within
    /// 0.5% of the exact ones (see [`live`]).
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

    /// Stores what is journaled, then runs `f` on the read-only connection,
    /// on the blocking pool.
    async fn read<T, F>(&self, action: &'static str, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        match self.flush().await {
            // A closed ledger has stored everything it could: read what is there.
            Ok(()) | Err(LedgerError::Closed { .. }) => {}
            // Read what is stored; the rest stays journaled for the next try.
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
/// a daemon writes the ledger. Records still in the journal (recorded less
/// than about [`BATCH_EVERY`] ago) are not there yet.
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

/// A segment rotated out and not yet committed.
struct Rotated {
    /// Still open: once stored it is closed and deleted, or kept as the
    /// spare.
    file: journal::Segment,
    /// How many records it was given.
    records: usize,
    /// Those records, when they were kept in memory ([`Active::kept`]).
    kept: Option<Vec<Record>>,
}

/// Lets go of a segment whose records are stored: kept, emptied, as the
/// `spare` when there is none yet, else discarded.
fn let_go(spare: &mut Option<journal::Segment>, dir: &Path, segment: journal::Segment) {
    let segment = match spare {
        None => match segment.recycle(dir) {
            Ok(emptied) => {
                *spare = Some(emptied);
                return;
            }
            Err(segment) => segment,
        },
        Some(_) => segment,
    };
    discard(dir, segment);
}

/// Closes and deletes a segment that holds nothing left to store: stored
/// already (numbered at most `committed_segment`: if it cannot be deleted,
/// the next open deletes it without storing it again) or given no record.
fn discard(dir: &Path, segment: journal::Segment) {
    let n = segment.number();
    segment.close();
    if let Err(e) = journal::remove_segment(dir, n) {
        tracing::warn!(journal = %dir.display(), "cannot delete journal segment {n}: {e}");
    }
}

/// Deletes the spare segment a run left (it holds nothing to store).
fn remove_spare(dir: &Path) {
    match std::fs::remove_file(journal::spare_path(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(journal = %dir.display(), "cannot delete the spare segment: {e}");
        }
        _ => {}
    }
}

/// The writer thread: the only owner of the read-write connection.
struct Writer {
    shared: Arc<Shared>,
    conn: Connection,
    rx: mpsc::Receiver<Command>,
    retention: Retention,
    /// Segments rotated out and not yet committed: oldest first.
    backlog: Vec<Rotated>,
    /// A stored segment, emptied, for the next rotation to reuse.
    spare: Option<journal::Segment>,
    /// The journal's lock, held until the writer stops.
    _lock: File,
}

impl Writer {
    fn run(mut self) {
        // Retention is applied before anything else, then on a timer.
        let mut next_prune = (self.retention.max_age_days > 0).then(Instant::now);
        // When to store what the journal holds; `None` while it holds nothing
        // (then the thread sleeps until a record arrives).
        let mut due: Option<Instant> = None;
        loop {
            if let Some(at) = next_prune.filter(|at| *at <= Instant::now()) {
                self.apply_retention();
                next_prune = Some(at.max(Instant::now()) + PRUNE_EVERY);
            }
            if due.is_some_and(|at| at <= Instant::now()) {
                due = self.store().err().map(|_| Instant::now() + RETRY_EVERY);
            }
            let wake_at = due.into_iter().chain(next_prune).min();
            let received = match wake_at {
                Some(at) => self
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                None => self
                    .rx
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(Command::Wake) => {
                    due.get_or_insert_with(|| Instant::now() + BATCH_EVERY);
                }
                Ok(Command::Flush(ack)) => {
                    let stored = self.store();
                    due = stored.is_err().then(|| Instant::now() + RETRY_EVERY);
                    let _ = ack.send(stored);
                }
                Ok(Command::Prune { before_us, ack }) => {
                    // What was journaled before the prune is stored first.
                    let stored = self.store();
                    due = stored.is_err().then(|| Instant::now() + RETRY_EVERY);
                    let _ = ack.send(self.prune(before_us).map_err(|e| e.to_string()));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Command::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.finish();
    }

    /// Closes the journal to new records and stores what it holds. What
    /// cannot be stored stays in the journal for the next open.
    fn finish(&mut self) {
        let last = self.shared.queue().active.take();
        let shared = self.shared.clone();
        let dir = &shared.dir;
        if let Some(last) = last.map(Active::retire) {
            if last.records > 0 {
                self.backlog.push(last);
            } else {
                // Not made the spare: the ledger is closing.
                discard(dir, last.file);
            }
        }
        if let Err(reason) = self.commit() {
            let left: usize = self.backlog.iter().map(|r| r.records).sum();
            tracing::error!(
                ledger = %self.shared.path.display(),
                records = left,
                "{reason}; they stay in the journal and are stored when the ledger next opens"
            );
            for rotated in self.backlog.drain(..) {
                rotated.file.close();
            }
        }
        if let Some(spare) = self.spare.take() {
            spare.close();
            remove_spare(dir);
        }
        // Whoever waits for room learns at once that the ledger is closed.
        self.shared.room.notify_waiters();
    }

    /// Moves the journal to a fresh segment and stores every segment rotated
    /// out so far.
    fn store(&mut self) -> Result<(), String> {
        // Segments already rotated out are stored even when no fresh one
        // could be made (a full disk): the active one waits for the retry.
        let rotated = self.rotate();
        let committed = self.commit();
        rotated.and(committed)
    }

    /// Makes a fresh segment active, if the active one holds records, and
    /// puts the old one in the backlog.
    fn rotate(&mut self) -> Result<(), String> {
        let next = {
            let mut q = self.shared.queue();
            match &q.active {
                Some(a) if a.records > 0 => a.file.number() + 1,
                _ => {
                    q.armed = false;
                    return Ok(());
                }
            }
        };
        // Made outside the lock: only this thread numbers segments.
        let dir = &self.shared.dir;
        let file = match self.spare.take() {
            Some(spare) => spare
                .reuse(dir, next)
                .or_else(|_| journal::Segment::create(dir, next)),
            None => journal::Segment::create(dir, next),
        };
        let file = file.map_err(|e| {
            let reason = format!(
                "cannot create journal segment {next} in {}: {e}",
                self.shared.dir.display()
            );
            tracing::error!("{reason}");
            reason
        })?;
        let mut q = self.shared.queue();
        q.armed = false;
        let Some(active) = q.active.as_mut() else {
            drop(q);
            file.close();
            return Ok(());
        };
        let old = std::mem::replace(active, Active::new(file));
        drop(q);
        self.backlog.push(old.retire());
        Ok(())
    }

    /// Stores the backlog's records in one transaction, then deletes their
    /// segments. On failure everything stays as it was, to be tried again;
    /// records kept in memory are let go then (the segments have them), so
    /// that a long outage of SQLite does not also fill the memory.
    fn commit(&mut self) -> Result<(), String> {
        let result = self.try_commit();
        if result.is_err() {
            for rotated in &mut self.backlog {
                rotated.kept = None;
            }
        }
        result
    }

    fn try_commit(&mut self) -> Result<(), String> {
        let Some(newest) = self.backlog.last().map(|r| r.file.number()) else {
            return Ok(());
        };
        let dir = &self.shared.dir;
        // The segments whose records were not kept are read back.
        for rotated in &mut self.backlog {
            if rotated.kept.is_none() {
                let n = rotated.file.number();
                let read = journal::read_segments(dir, [n]).map_err(|(n, e)| {
                    format!("cannot read journal segment {n} in {}: {e}", dir.display())
                })?;
                rotated.kept = Some(read);
            }
        }
        let records = || self.backlog.iter().flat_map(|r| r.kept.iter().flatten());
        insert(&mut self.conn, records(), newest).map_err(|e| {
            let reason = format!("cannot store {} record(s): {e}", records().count());
            tracing::error!(ledger = %self.shared.path.display(), "{reason}");
            reason
        })?;
        {
            let now = Timestamp::now();
            let mut live = self
                .shared
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for r in records() {
                live.add(r, now);
            }
        }
        let mut stored = 0;
        for Rotated {
            file,
            records: count,
            ..
        } in self.backlog.drain(..)
        {
            stored += count;
            let_go(&mut self.spare, dir, file);
        }
        let mut q = self.shared.queue();
        q.uncommitted = q.uncommitted.saturating_sub(stored);
        drop(q);
        self.shared.room.notify_waiters();
        Ok(())
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

/// Inserts `records` (scrubbed already, by [`journal::prepare`]) in one
/// transaction that also marks journal segment `segment` and all before it
/// as stored.
fn insert<'a>(
    conn: &mut Connection,
    records: impl IntoIterator<Item = &'a Record>,
    segment: u64,
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
                // Finite numbers only (journal::prepare), as the NOT NULL
                // duration needs: SQLite would store a NaN as NULL.
                r.ttfb_ms,
                r.duration_ms,
                i64::from(r.status),
                r.outcome,
                r.error,
            ])?;
        }
    }
    tx.execute(
        schema::SET_COMMITTED,
        [i64::try_from(segment).unwrap_or(i64::MAX)],
    )?;
    tx.commit()
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
