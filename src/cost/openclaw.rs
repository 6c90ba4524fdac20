//! OpenClaw's per-agent store, `<agents>/<agent>/agent/openclaw-agent.sqlite`
//! (OpenClaw 2026.9, agent schema 23), read into the cost store: live
//! `transcript_events`, deleted/reset archives and cold archives. How a
//! turn is counted once across them (and the JSONL copies) is in
//! [`super::transcripts`].
//!
//! **Read only, never in OpenClaw's way.** OpenClaw is writing while we
//! read, and kills itself if its `-wal`/`-shm` files are replaced. So the
//! file is first looked at through a handle opened without blocking (a
//! FIFO, a device, a file that is not SQLite is reported, not opened by
//! SQLite), then opened with `SQLITE_OPEN_READ_ONLY | SQLITE_OPEN_URI`
//! (`mode=ro`; never `immutable=1`, which would ignore the WAL), no
//! checkpoint on close, `query_only`, and a busy timeout of one second.
//! Nothing is ever written, checkpointed or vacuumed. Every read is one
//! short statement (a batch of at most [`BATCH_ROWS`] events), finished
//! before its rows are parsed and stored: a read snapshot held open would
//! pin OpenClaw's WAL and block its checkpoints.
//!
//! **Schema.** `PRAGMA user_version` and `schema_meta` must say an agent
//! database of a schema up to [`KNOWN_SCHEMA`]; a newer one is refused with
//! a problem that says so (its turns are not counted until ClawFleet is
//! updated), as is a database that is locked, corrupt or not OpenClaw's.
//!
//! **Incremental.** Per database and session the cost store keeps a cursor:
//! the rewrite generation (`transcript_rewrite_watermarks`) and the last
//! `seq` read. One statement lists every session with events (a loose scan
//! of the primary key) with its generation and its last `seq`; a session
//! whose pair equals its cursor is not read at all, so a pass with nothing
//! new decodes nothing. New events are read past the cursor; a changed
//! generation, or a last `seq` below the cursor (rows rewritten), reads the
//! session again from its start, and the keys keep the totals right. A
//! session that disappears (deleted, or moved to cold storage) loses its
//! cursor, never its turns.
//!
//! **Events.** `event_json`, or `event_zstd`: one plain zstd frame (no
//! dictionary) of `event_utf8_bytes` bytes (at most 4 MiB). It is decoded
//! into a buffer of exactly the declared size, so a blob that would decode
//! past it fails, and one that decodes to less is refused too. Compressed
//! rows whose `navigation_json` says the message is not the assistant's
//! are not even fetched. `transcript_event_identities` is not joined: it
//! tells a message from other events but not the role, messages are nearly
//! all the rows, and the other events are few and small; a lookup per row
//! would cost more than the pre-filter it saves.
//!
//! **Archives.** Each `session_transcript_archives` row (`zstd` or
//! `identity` JSONL: a header and one event a line) and each
//! `session_transcript_cold_archives` row (its `archive_blob`, or the file
//! `sessions/cold/<archive_name>`: records `{"kind":"event","row":{"seq",
//! "event_json","created_at"}}`) is read once, streamed line by line with
//! [`MAX_LINE`] per line, and remembered by database, session and
//! generation. A cold file with no row is never read (the session was
//! restored). A published archive file (`sessions/<archive_name>`) whose
//! row exists is not read as a file: the row holds the same bytes.
//!
//! The zstd crate (the C library, built from source by `zstd-sys`, no
//! system library needed) rather than the pure-Rust `ruzstd`: decoding is
//! the hot part of a first pass over a large store, and libzstd decodes
//! about three times faster; its bulk API decodes into a caller's buffer of
//! a fixed size, which is the bound we need on every event.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use memchr::memmem;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::Cause;
use serde::Deserialize;

use super::store::StoreError;
use super::transcripts::{
    Fallback, IngestReport, LinesError, MAX_LINE, Pass, Place, for_each_line, open_regular,
};

/// The agent database's file name, in `<agents>/<agent>/agent/`.
pub const AGENT_DB: &str = "openclaw-agent.sqlite";

/// The newest agent schema ClawFleet reads (OpenClaw 2026.9).
pub const KNOWN_SCHEMA: i64 = 23;

/// How long a read waits for a lock (WAL readers wait only while the WAL is
/// recovered after a crash, or during Doctor's offline `VACUUM`).
const BUSY: Duration = Duration::from_secs(1);

/// Events read per statement.
pub const BATCH_ROWS: i64 = 1000;

/// Event bytes copied per statement, at most (a batch ends early past it).
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// The largest event OpenClaw stores compressed (and so the largest
/// `event_utf8_bytes` decoded).
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

/// The largest archive blob read (SQLite's own limit is 1 GB).
const MAX_ARCHIVE_BLOB: i64 = 256 * 1024 * 1024;

/// No event read yet.
const NONE_SEQ: i64 = -1;

/// One agent's database, opened and checked.
pub(super) struct AgentStore {
    agent: String,
    agent_dir: PathBuf,
    path: PathBuf,
    /// The database's key in the cost store's cursor tables.
    db: String,
    conn: Connection,
    has_zstd: bool,
    has_navigation: bool,
    has_watermarks: bool,
    has_archives: bool,
    has_cold: bool,
    /// `session_transcript_archives.archive_name`: files in `sessions/`
    /// whose bytes the rows hold.
    archive_names: Vec<String>,
}

impl AgentStore {
    /// The published archive files whose rows are read instead.
    pub(super) fn published_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        let sessions = self.agent_dir.join("sessions");
        self.archive_names.iter().map(move |n| sessions.join(n))
    }
}

/// In words, what a SQLite error on OpenClaw's database means for us: the
/// words every SQLite file gets ([`crate::sqlite::explain`]), and what
/// follows for this one.
fn describe(e: &rusqlite::Error) -> String {
    let words = crate::sqlite::explain(e);
    match Cause::of(e) {
        Cause::Locked => format!("{words}: it is read again next pass"),
        Cause::CannotOpen => format!(
            "{words}: ClawFleet must run as OpenClaw's user, with its -shm file readable and writable"
        ),
        _ => words.to_string(),
    }
}

/// Opens every agent database under `agents_dir`; one that cannot be read
/// is a problem in `report`.
pub(super) fn open_all(agents_dir: &Path, report: &mut IngestReport) -> Vec<AgentStore> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(agents_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        // `find` reports the folder itself.
        Err(_) => return out,
    };
    let mut agents: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    agents.sort();
    for (agent, dir) in agents {
        let path = dir.join("agent").join(AGENT_DB);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
            _ => {}
        }
        report.stores_seen += 1;
        match open(&agent, &dir, &path) {
            Ok(store) => out.push(store),
            Err(why) => {
                report.stores_refused += 1;
                tracing::warn!(db = %path.display(), %why, "OpenClaw agent database not read");
                report.problem(format!("{}: {why}", path.display()));
            }
        }
    }
    out
}

fn open(agent: &str, agent_dir: &Path, path: &Path) -> Result<AgentStore, String> {
    let conn = crate::outside::open_sqlite_read_only(path, BUSY)?;
    let newer = |found: i64| {
        format!(
            "agent {}: its turns are not counted until ClawFleet is updated",
            crate::sqlite::newer_schema(found, KNOWN_SCHEMA)
        )
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| describe(&e))?;
    if version > KNOWN_SCHEMA {
        return Err(newer(version));
    }
    let mut tables = HashSet::new();
    {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(|e| describe(&e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| describe(&e))?;
        for name in rows {
            tables.insert(name.map_err(|e| describe(&e))?);
        }
    }
    if !tables.contains("transcript_events") {
        return Err("not an OpenClaw agent database (no transcript_events table)".to_owned());
    }
    if tables.contains("schema_meta") {
        let meta: Option<(String, i64)> = conn
            .query_row(
                "SELECT role, schema_version FROM schema_meta WHERE meta_key = 'primary'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| describe(&e))?;
        if let Some((role, schema)) = meta {
            if role != "agent" {
                return Err(format!(
                    "an OpenClaw database of role {role:?}, not an agent database"
                ));
            }
            if schema > KNOWN_SCHEMA {
                return Err(newer(schema));
            }
        }
    }
    let mut columns = HashSet::new();
    {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('transcript_events')")
            .map_err(|e| describe(&e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| describe(&e))?;
        for name in rows {
            columns.insert(name.map_err(|e| describe(&e))?);
        }
    }
    for needed in ["session_id", "seq", "event_json", "created_at"] {
        if !columns.contains(needed) {
            return Err(format!("transcript_events has no {needed} column"));
        }
    }
    let has_archives = tables.contains("session_transcript_archives");
    let mut archive_names = Vec::new();
    if has_archives {
        let mut stmt = conn
            .prepare("SELECT archive_name FROM session_transcript_archives")
            .map_err(|e| describe(&e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| describe(&e))?;
        for name in rows {
            archive_names.push(name.map_err(|e| describe(&e))?);
        }
    }
    Ok(AgentStore {
        agent: agent.to_owned(),
        agent_dir: agent_dir.to_path_buf(),
        db: path.to_string_lossy().into_owned(),
        path: path.to_path_buf(),
        has_zstd: columns.contains("event_zstd") && columns.contains("event_utf8_bytes"),
        has_navigation: columns.contains("navigation_json"),
        has_watermarks: tables.contains("transcript_rewrite_watermarks"),
        has_archives,
        has_cold: tables.contains("session_transcript_cold_archives"),
        archive_names,
        conn,
    })
}

/// What went wrong reading one database.
enum ReadError {
    /// OpenClaw's database: a problem, and the next database is read.
    Source(String),
    /// The cost store: the pass fails.
    Store(StoreError),
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> ReadError {
        ReadError::Store(e)
    }
}

fn source(e: rusqlite::Error) -> ReadError {
    ReadError::Source(describe(&e))
}

/// An event kept from a batch, to be parsed once the statement is done.
enum Kept {
    /// `event_json` that mentions `"assistant"` and `"usage"`.
    Json {
        seq: i64,
        created_at: i64,
        text: Vec<u8>,
    },
    /// A compressed assistant event.
    Zstd {
        seq: i64,
        created_at: i64,
        blob: Vec<u8>,
        declared: Option<i64>,
    },
    /// Neither text nor a blob that can be read.
    Bad { seq: i64, why: &'static str },
}

/// One statement's worth of events.
struct EventBatch {
    rows: i64,
    last_seq: Option<i64>,
    /// Ended early on [`BATCH_BYTES`].
    cut: bool,
    kept: Vec<Kept>,
}

/// A cold-archive record (`{"kind":"event","row":{…}}`); other kinds are
/// skipped.
#[derive(Deserialize)]
struct ColdRecord {
    kind: Option<String>,
    row: Option<ColdRow>,
}

#[derive(Deserialize)]
struct ColdRow {
    event_json: Option<String>,
    created_at: Option<i64>,
}

/// Decodes one compressed event into `out` (resized to the declared size):
/// the frame must decode to exactly `declared` bytes, at most
/// [`MAX_EVENT`].
pub(super) fn decode_event(
    decoder: &mut zstd::bulk::Decompressor<'_>,
    blob: &[u8],
    declared: Option<i64>,
    out: &mut Vec<u8>,
) -> Result<usize, String> {
    let declared = declared
        .and_then(|d| usize::try_from(d).ok())
        .filter(|d| (1..=MAX_EVENT).contains(d))
        .ok_or_else(|| "event_utf8_bytes missing or out of range".to_owned())?;
    out.resize(declared, 0);
    let n = decoder
        .decompress_to_buffer(blob, &mut out[..declared])
        .map_err(|e| {
            format!("zstd blob does not decode within its declared {declared} bytes ({e})")
        })?;
    if n != declared {
        return Err(format!(
            "zstd blob decodes to {n} bytes, {declared} declared"
        ));
    }
    Ok(n)
}

impl AgentStore {
    /// The statement that reads a batch of one session's events after a
    /// `seq`. A compressed event whose navigation says another role than
    /// the assistant's is not fetched.
    fn batch_sql(&self) -> String {
        let role = if self.has_navigation {
            "CASE WHEN json_valid(navigation_json) THEN coalesce(\
             json_extract(navigation_json, '$.model.message.role'), \
             json_extract(navigation_json, '$.navigation.message.role')) END"
        } else {
            "NULL"
        };
        let (zstd, declared) = if self.has_zstd {
            (
                format!(
                    "CASE WHEN event_json IS NULL AND coalesce({role}, 'assistant') = 'assistant' \
                     THEN event_zstd END"
                ),
                "event_utf8_bytes",
            )
        } else {
            ("NULL".to_owned(), "NULL")
        };
        format!(
            "SELECT seq, created_at, event_json, {zstd}, {declared} FROM transcript_events \
             WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        )
    }

    /// Every session with events: id, rewrite generation ('' when never
    /// rewritten), last `seq`. One statement: a loose scan of the primary
    /// key `(session_id, seq)`, each step an index seek.
    fn sessions(&self) -> rusqlite::Result<Vec<(String, String, i64)>> {
        let generation = if self.has_watermarks {
            "coalesce((SELECT generation FROM transcript_rewrite_watermarks m \
             WHERE m.session_id = s.id), '')"
        } else {
            "''"
        };
        let sql = format!(
            "WITH RECURSIVE s(id) AS ( \
               SELECT (SELECT min(session_id) FROM transcript_events) \
               UNION ALL \
               SELECT (SELECT min(session_id) FROM transcript_events WHERE session_id > s.id) \
               FROM s WHERE s.id IS NOT NULL) \
             SELECT s.id, {generation}, \
               coalesce((SELECT max(seq) FROM transcript_events e WHERE e.session_id = s.id), {NONE_SEQ}) \
             FROM s WHERE s.id IS NOT NULL"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], |r| {
            // A session id that is not text (STRICT forbids it) reads as
            // its text form.
            let id = match r.get_ref(0)? {
                ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Real(f) => f.to_string(),
                ValueRef::Null => String::new(),
            };
            Ok((id, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        rows.collect()
    }

    /// Reads one batch; the statement is finished when this returns.
    fn read_batch(&self, sql: &str, session: &str, after: i64) -> rusqlite::Result<EventBatch> {
        let mut batch = EventBatch {
            rows: 0,
            last_seq: None,
            cut: false,
            kept: Vec::new(),
        };
        let mut bytes = 0usize;
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params![session, after, BATCH_ROWS])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let created_at: i64 = row.get::<_, Option<i64>>(1)?.unwrap_or(0);
            batch.rows += 1;
            batch.last_seq = Some(seq);
            match (row.get_ref(2)?, row.get_ref(3)?) {
                (ValueRef::Text(t) | ValueRef::Blob(t), _) => {
                    // The same pre-filter as a JSONL line's: only these are
                    // parsed. Anything else costs nothing, unless it is not
                    // even shaped like an object.
                    if memmem::find(t, b"\"usage\"").is_some()
                        && memmem::find(t, b"\"assistant\"").is_some()
                    {
                        bytes += t.len();
                        batch.kept.push(Kept::Json {
                            seq,
                            created_at,
                            text: t.to_vec(),
                        });
                    } else {
                        let s = t.trim_ascii();
                        let object = s.first() == Some(&b'{') && s.last() == Some(&b'}');
                        if !s.is_empty() && !object {
                            batch.kept.push(Kept::Bad {
                                seq,
                                why: "not a JSON object",
                            });
                        }
                    }
                }
                (ValueRef::Null, ValueRef::Blob(b)) => {
                    bytes += b.len();
                    batch.kept.push(Kept::Zstd {
                        seq,
                        created_at,
                        blob: b.to_vec(),
                        declared: row.get::<_, Option<i64>>(4).ok().flatten(),
                    });
                }
                // A compressed event of another role (not fetched).
                (ValueRef::Null, ValueRef::Null) => {}
                _ => batch.kept.push(Kept::Bad {
                    seq,
                    why: "neither JSON text nor a zstd blob",
                }),
            }
            if bytes > BATCH_BYTES {
                batch.cut = true;
                break;
            }
        }
        Ok(batch)
    }
}

impl Pass<'_> {
    /// Reads what is new in `store`. A problem with OpenClaw's database is
    /// reported and ends this database's reading (what was stored stays,
    /// with its cursor); a problem with the cost store fails the pass.
    pub(super) fn read_store(
        &mut self,
        store: &AgentStore,
        report: &mut IngestReport,
    ) -> Result<(), StoreError> {
        match self.read_store_inner(store, report) {
            Ok(()) => Ok(()),
            Err(ReadError::Store(e)) => Err(e),
            Err(ReadError::Source(why)) => {
                report.stores_refused += 1;
                tracing::warn!(db = %store.path.display(), %why, "OpenClaw agent database read stopped");
                report.problem(format!("{}: {why}", store.path.display()));
                Ok(())
            }
        }
    }

    fn read_store_inner(
        &mut self,
        store: &AgentStore,
        report: &mut IngestReport,
    ) -> Result<(), ReadError> {
        let sessions = store.sessions().map_err(source)?;
        let mut cursors: HashMap<String, (String, i64)> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT session, generation, last_seq FROM openclaw_sessions WHERE db = ?1",
                )
                .map_err(self.sqlite("read OpenClaw cursors"))?;
            let rows = stmt
                .query_map([&store.db], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
                .map_err(self.sqlite("read OpenClaw cursors"))?;
            for row in rows {
                let (session, cursor) = row.map_err(self.sqlite("read OpenClaw cursors"))?;
                cursors.insert(session, cursor);
            }
        }
        let sql = store.batch_sql();
        let mut decoder =
            zstd::bulk::Decompressor::new().map_err(|e| ReadError::Source(format!("zstd: {e}")))?;
        let mut decoded = Vec::new();
        for (session, generation, max_seq) in &sessions {
            let cursor = cursors.remove(session);
            let after = match &cursor {
                Some((g, last)) if g == generation && *last == *max_seq => continue,
                Some((g, last)) if g == generation && *last < *max_seq => *last,
                // New, rewritten (another generation) or shorter: from the
                // start; the keys find what was stored before.
                _ => i64::MIN,
            };
            if cursor.is_some() && after == i64::MIN {
                tracing::debug!(db = %store.db, %session, "session rewritten: read again");
            }
            report.sessions_read += 1;
            self.read_session(
                store,
                &sql,
                session,
                generation,
                after,
                &mut decoder,
                &mut decoded,
                report,
            )?;
        }
        // Sessions that left `transcript_events` (deleted, or cold): their
        // cursors go, their turns stay.
        for gone in cursors.keys() {
            self.conn
                .prepare_cached("DELETE FROM openclaw_sessions WHERE db = ?1 AND session = ?2")
                .and_then(|mut s| s.execute(params![store.db, gone]))
                .map_err(self.sqlite("forget an OpenClaw session"))?;
        }
        self.read_archives(store, report)
    }

    #[allow(clippy::too_many_arguments)]
    fn read_session(
        &mut self,
        store: &AgentStore,
        sql: &str,
        session: &str,
        generation: &str,
        mut after: i64,
        decoder: &mut zstd::bulk::Decompressor<'_>,
        decoded: &mut Vec<u8>,
        report: &mut IngestReport,
    ) -> Result<(), ReadError> {
        let place = Place {
            agent: &store.agent,
            session,
        };
        loop {
            let batch = store.read_batch(sql, session, after).map_err(source)?;
            report.events_read += u64::try_from(batch.rows).unwrap_or(0);
            for kept in &batch.kept {
                let (seq, outcome) = match kept {
                    Kept::Json {
                        seq,
                        created_at,
                        text,
                    } => (
                        *seq,
                        self.take(text, &place, row_time(*created_at), report)?,
                    ),
                    Kept::Zstd {
                        seq,
                        created_at,
                        blob,
                        declared,
                    } => match decode_event(decoder, blob, *declared, decoded) {
                        Ok(n) => (
                            *seq,
                            self.take(&decoded[..n], &place, row_time(*created_at), report)?,
                        ),
                        Err(why) => (*seq, Some(why)),
                    },
                    Kept::Bad { seq, why } => (*seq, Some((*why).to_owned())),
                };
                if let Some(why) = outcome {
                    report.corrupt_events += 1;
                    report.problem(format!(
                        "{}: session {session} seq {seq}: {why}",
                        store.path.display()
                    ));
                }
            }
            let Some(last) = batch.last_seq else { break };
            after = last;
            self.conn
                .prepare_cached(
                    "INSERT INTO openclaw_sessions (db, session, generation, last_seq) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (db, session) DO UPDATE SET \
                     generation = excluded.generation, last_seq = excluded.last_seq",
                )
                .and_then(|mut s| s.execute(params![store.db, session, generation, last]))
                .map_err(self.sqlite("save an OpenClaw cursor"))?;
            self.maybe_commit()?;
            if batch.rows < BATCH_ROWS && !batch.cut {
                break;
            }
        }
        Ok(())
    }

    /// Deleted/reset archives and cold archives not read yet.
    fn read_archives(
        &mut self,
        store: &AgentStore,
        report: &mut IngestReport,
    ) -> Result<(), ReadError> {
        if !store.has_archives && !store.has_cold {
            return Ok(());
        }
        let mut done = HashSet::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT archive FROM openclaw_archives WHERE db = ?1")
                .map_err(self.sqlite("read the archives read"))?;
            let rows = stmt
                .query_map([&store.db], |r| r.get::<_, String>(0))
                .map_err(self.sqlite("read the archives read"))?;
            for row in rows {
                done.insert(row.map_err(self.sqlite("read the archives read"))?);
            }
        }
        if store.has_archives {
            let rows: Vec<(String, String, String, i64, i64)> = {
                let mut stmt = store
                    .conn
                    .prepare_cached(
                        "SELECT session_id, generation, encoding, created_at, length(archive_blob) \
                         FROM session_transcript_archives",
                    )
                    .map_err(source)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(source)?;
                rows.collect::<Result<_, _>>().map_err(source)?
            };
            for (session, generation, encoding, created_at, len) in rows {
                let key = format!("archive:{session}:{generation}");
                if done.contains(&key) {
                    continue;
                }
                let label = format!("{}: archive {session}/{generation}", store.path.display());
                if len > MAX_ARCHIVE_BLOB {
                    report.corrupt_lines += 1;
                    report.problem(format!("{label}: {len} bytes, larger than ClawFleet reads"));
                    continue;
                }
                let blob: Option<Vec<u8>> = store
                    .conn
                    .prepare_cached(
                        "SELECT archive_blob FROM session_transcript_archives \
                         WHERE session_id = ?1 AND generation = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![session, generation], |r| r.get(0))
                            .optional()
                    })
                    .map_err(source)?;
                let Some(blob) = blob else { continue };
                let place = Place {
                    agent: &store.agent,
                    session: &session,
                };
                let fallback = Fallback::FileTime(
                    Timestamp::from_millisecond(created_at).unwrap_or(Timestamp::UNIX_EPOCH),
                );
                match encoding.as_str() {
                    "zstd" => match zstd::stream::read::Decoder::with_buffer(&blob[..]) {
                        Ok(d) => self.archive_lines(d, &place, fallback, false, &label, report)?,
                        Err(e) => {
                            report.corrupt_lines += 1;
                            report.problem(format!("{label}: cannot decompress: {e}"));
                        }
                    },
                    "identity" => {
                        self.archive_lines(&blob[..], &place, fallback, false, &label, report)?
                    }
                    other => {
                        report.corrupt_lines += 1;
                        report.problem(format!("{label}: unknown encoding {other:?}"));
                    }
                }
                self.mark_read(store, &key)?;
            }
        }
        if store.has_cold {
            let rows: Vec<(String, String, String, String)> = {
                let mut stmt = store
                    .conn
                    .prepare_cached(
                        "SELECT session_id, generation, archive_name, storage \
                         FROM session_transcript_cold_archives",
                    )
                    .map_err(source)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(source)?;
                rows.collect::<Result<_, _>>().map_err(source)?
            };
            for (session, generation, name, storage) in rows {
                let key = format!("cold:{session}:{generation}");
                if done.contains(&key) {
                    continue;
                }
                let label = format!("{}: cold archive {name}", store.path.display());
                let place = Place {
                    agent: &store.agent,
                    session: &session,
                };
                let fallback = Fallback::FileTime(Timestamp::UNIX_EPOCH);
                if storage == "sqlite" {
                    let blob: Option<Vec<u8>> = store
                        .conn
                        .prepare_cached(
                            "SELECT archive_blob FROM session_transcript_cold_archives \
                             WHERE session_id = ?1 AND length(archive_blob) <= ?2",
                        )
                        .and_then(|mut s| {
                            s.query_row(params![session, MAX_ARCHIVE_BLOB], |r| r.get(0))
                                .optional()
                        })
                        .map_err(source)?;
                    let Some(blob) = blob else {
                        report.problem(format!("{label}: no blob, or larger than ClawFleet reads"));
                        continue;
                    };
                    match zstd::stream::read::Decoder::with_buffer(&blob[..]) {
                        Ok(d) => self.archive_lines(d, &place, fallback, true, &label, report)?,
                        Err(e) => {
                            report.corrupt_lines += 1;
                            report.problem(format!("{label}: cannot decompress: {e}"));
                        }
                    }
                } else {
                    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".."
                    {
                        report.problem(format!("{label}: not a file name, skipped"));
                        continue;
                    }
                    let path = store.agent_dir.join("sessions").join("cold").join(&name);
                    let label = path.display().to_string();
                    let file = match open_regular(&path) {
                        Ok((f, meta)) => {
                            report.bytes_read += meta.len();
                            f
                        }
                        Err(e) => {
                            // Not written yet, or gone: tried again next pass.
                            report.problem(format!("{label}: cannot read: {e}"));
                            continue;
                        }
                    };
                    match zstd::stream::read::Decoder::new(file) {
                        Ok(d) => self.archive_lines(d, &place, fallback, true, &label, report)?,
                        Err(e) => {
                            report.corrupt_lines += 1;
                            report.problem(format!("{label}: cannot decompress: {e}"));
                        }
                    }
                }
                self.mark_read(store, &key)?;
            }
        }
        Ok(())
    }

    fn mark_read(&mut self, store: &AgentStore, key: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO openclaw_archives (db, archive, read_at_us) \
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![store.db, key, Timestamp::now().as_microsecond()]))
            .map_err(self.sqlite("remember an archive read"))?;
        self.maybe_commit()
    }

    /// Streams an archive's lines: transcript JSONL, or cold-archive
    /// records when `cold`.
    fn archive_lines<R: Read>(
        &mut self,
        reader: R,
        place: &Place<'_>,
        fallback: Fallback,
        cold: bool,
        label: &str,
        report: &mut IngestReport,
    ) -> Result<(), StoreError> {
        report.archives_read += 1;
        let result = for_each_line(reader, MAX_LINE, |n, line| {
            let Some(line) = line else {
                report.corrupt_lines += 1;
                report.problem(format!(
                    "{label}:{n}: line longer than {} MiB, skipped",
                    MAX_LINE / (1024 * 1024)
                ));
                return Ok(());
            };
            report.lines_read += 1;
            let outcome = if cold {
                self.cold_record(line, place, report)?
            } else {
                self.take(line, place, fallback, report)?
            };
            if let Some(why) = outcome {
                report.corrupt_lines += 1;
                report.problem(format!("{label}:{n}: {why}"));
            }
            Ok(())
        });
        match result {
            Ok(_) => Ok(()),
            Err(LinesError::Sink(e)) => Err(e),
            Err(LinesError::Read(e, lines)) => {
                report.corrupt_lines += 1;
                report.problem(format!("{label}:{}: cannot decompress: {e}", lines + 1));
                Ok(())
            }
        }
    }

    /// One cold-archive record: an `event` record's event is taken.
    fn cold_record(
        &mut self,
        line: &[u8],
        place: &Place<'_>,
        report: &mut IngestReport,
    ) -> Result<Option<String>, StoreError> {
        // The event is an escaped string inside the record: look for the
        // words alone.
        if memmem::find(line, b"usage").is_none() || memmem::find(line, b"assistant").is_none() {
            return Ok(None);
        }
        let record: ColdRecord = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return Ok(Some(format!("not a cold-archive record ({e})"))),
        };
        if record.kind.as_deref() != Some("event") {
            return Ok(None);
        }
        let Some(ColdRow {
            event_json: Some(event),
            created_at,
        }) = record.row
        else {
            return Ok(Some("an event record without event_json".to_owned()));
        };
        self.take(
            event.as_bytes(),
            place,
            row_time(created_at.unwrap_or(0)),
            report,
        )
    }
}

fn row_time(created_at_ms: i64) -> Fallback {
    Fallback::RowTime(Timestamp::from_millisecond(created_at_ms).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_events_decode_to_their_declared_size_only() {
        let text = br#"{"type":"message","id":"x","message":{"role":"assistant"}}"#.repeat(40);
        let blob = zstd::bulk::compress(&text, 1).expect("compress");
        let mut d = zstd::bulk::Decompressor::new().expect("decoder");
        let mut out = Vec::new();
        let len = i64::try_from(text.len()).expect("len");
        assert_eq!(
            decode_event(&mut d, &blob, Some(len), &mut out),
            Ok(text.len())
        );
        assert_eq!(&out[..text.len()], &text[..]);
        // Declared smaller than it decodes: refused, never written past.
        let err = decode_event(&mut d, &blob, Some(len - 1), &mut out).expect_err("too big");
        assert!(err.contains("within its declared"), "{err}");
        assert_eq!(out.len(), text.len() - 1);
        // Declared larger: refused.
        let err = decode_event(&mut d, &blob, Some(len + 1), &mut out).expect_err("short");
        assert!(err.contains("declared"), "{err}");
        // No size, an absurd one, or garbage.
        assert!(decode_event(&mut d, &blob, None, &mut out).is_err());
        assert!(decode_event(&mut d, &blob, Some(5 * 1024 * 1024), &mut out).is_err());
        assert!(decode_event(&mut d, b"not zstd at all", Some(10), &mut out).is_err());
        // The real 3,570-byte user message of OpenClaw 2026.9.6.
        let real = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openclaw/event-3570.zst"
        ))
        .expect("fixture");
        assert_eq!(decode_event(&mut d, &real, Some(3570), &mut out), Ok(3570));
        assert!(out.starts_with(b"{\"type\":\"message\""));
    }

    #[cfg(unix)]
    #[test]
    fn paths_become_read_only_uris() {
        assert_eq!(
            crate::outside::read_only_uri(Path::new("/home/a b/x?#%.sqlite")),
            "file:/home/a%20b/x%3F%23%25.sqlite?mode=ro"
        );
    }
}
