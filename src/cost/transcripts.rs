//! Incremental reading of OpenClaw's (and legacy Clawdbot's) session
//! transcripts into the cost store.
//!
//! **What is read**, under the agents folder it is given
//! (`<state>/agents`), for each `<agent>`:
//! - `agent/openclaw-agent.sqlite`, OpenClaw's (2026.9+) per-agent store:
//!   live `transcript_events`, deleted/reset archives
//!   (`session_transcript_archives`) and cold archives
//!   (`session_transcript_cold_archives`, only while their row exists), read
//!   only and in short read transactions: see [`super::openclaw`];
//! - `sessions/<session>.jsonl`, legacy transcripts, and the archives beside
//!   them: `<session>.jsonl.reset.<…>` and `<session>.jsonl.deleted.<…>`,
//!   plain or zstd-compressed (a published archive whose row is still in
//!   the agent's database is read from the row instead: same bytes);
//! - `session-sqlite-import-archive/*.jsonl*`, legacy transcripts that
//!   `openclaw doctor --fix` imported into the database and moved there.
//!
//! **Counted once.** Every copy of a turn is read; the store keeps one. A
//! turn (a `type:"message"` event whose `message.role` is `assistant`, with
//! a `usage` object) is matched to the turns already stored, in order:
//! 1. by its **event key**, the 128-bit xxh3 of its session id and its
//!    event `id` ([`event_key`]). The session id is the SQLite `session_id`,
//!    else the JSONL header line's (`{"type":"session","id":…}`), else the
//!    file name's (`<session>.jsonl…`). OpenClaw keeps `id` through
//!    compression, archives, cold storage and Doctor's import, so a turn in
//!    a live row, an archive blob, the published archive file and a legacy
//!    JSONL copy is one turn;
//! 2. by its **line key**, the 128-bit xxh3 of its line (the event's JSON
//!    text, without the line ending): the same bytes read again, from any
//!    file, are the same turn. A turn found this way that has no event key
//!    yet (stored before event keys existed, schema v1) gets it now;
//! 3. when it or its twin has no event id (Clawdbot 2026.1 lines may have
//!    none, and Doctor gives such lines new ids when it imports them), by
//!    its **content**: same agent, session, time (to the microsecond),
//!    provider, model and four token counts. Two id-less turns of one
//!    session identical in all of these are counted once. A turn with no
//!    timestamp of its own is never matched by content.
//!
//! **Incremental.** Each file's read position is kept in `transcript_files`
//! with its identity (device, inode), size, modification time and a hash of
//! its first bytes. A file whose size, time and inode are unchanged is not
//! opened at all, so a restart with nothing new costs one `stat` per file. A
//! plain file that grew is read from where the last pass stopped, once its
//! first bytes still hash the same; a file that is now shorter, or whose
//! first bytes changed, was rewritten and is read again from the start. A
//! file renamed to another name that is read (same device and inode) keeps
//! its position. A zstd-compressed file is read whole, again only when it
//! changed. The position and the turns read up to it are committed in one
//! transaction, so a crash never skips a line.
//!
//! **Whole lines only.** A last line without its `\n` is being written: it is
//! left for the next pass (an archive is complete: its last line is read).
//! A line that is not JSON is counted as corrupt and skipped, as is a line
//! longer than [`MAX_LINE`] (read through without being held in memory).
//! Problems name the file and line (or the database, session and `seq`) and
//! the reason, never the content. Files are opened without blocking (a FIFO
//! where a transcript should be is reported, not waited on) and must be
//! regular files (a symbolic link is followed to one).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use memchr::memmem;
use rusqlite::{Connection, params};
use serde::Deserialize;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::store::{CostStore, StoreError, TurnFlags};
use crate::outside::time_of;
pub use crate::snapshot::IngestReport;

/// The longest line read; longer ones are skipped (and reported).
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// How many bytes are read at a time.
const CHUNK: usize = 1024 * 1024;

/// How many of a file's first bytes identify it.
const HEAD: u64 = 4096;

/// The page cache during a pass, in KiB (as `PRAGMA cache_size` takes it,
/// negative).
const INGEST_CACHE_KIB: i64 = -64 * 1024;

/// At most this many problems are listed per pass.
const MAX_PROBLEMS: usize = 20;

/// Turns committed per transaction within one large file.
const ROWS_PER_COMMIT: u64 = 50_000;

/// The first bytes of a zstd frame.
pub(super) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The folder `openclaw doctor --fix` moves imported legacy files to.
pub const IMPORT_ARCHIVE_DIR: &str = "session-sqlite-import-archive";

impl IngestReport {
    pub(super) fn problem(&mut self, text: String) {
        tracing::debug!(problem = %text, "transcripts");
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        }
    }
}

/// What `transcript_files` remembers of a file.
#[derive(Debug, Clone)]
struct FileState {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    offset: u64,
    head: Vec<u8>,
    head_len: u64,
    lines: u64,
    corrupt: u64,
    session: Option<String>,
}

/// A transcript file found on disk.
struct Found {
    path: PathBuf,
    agent: String,
    /// The session id its name gives.
    session: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> (u64, u64) {
    // No stable inode through std on Windows: a renamed file is read again
    // from the start, and the keys keep the totals right.
    (0, 0)
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| Timestamp::try_from(t).ok())
        .map_or(0, |t| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX))
}

/// Opens `path` for reading as `outside::open` does (no blocking on a FIFO
/// or a device, a regular file checked through the handle, a symbolic link
/// followed), with its error as an I/O error for the ingest's problems.
pub(super) fn open_regular(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    use crate::outside::OutsideFileError as E;
    crate::outside::open(path, u64::MAX).map_err(|e| match e {
        E::Io { source, .. } => source,
        E::Missing { .. } => std::io::ErrorKind::NotFound.into(),
        E::NotAFile { kind, .. } => std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({kind})"),
        ),
        other => std::io::Error::other(other.to_string()),
    })
}

/// The session id in a file name of `sessions/`, when it is a transcript
/// ClawFleet reads: `<session>.jsonl`, `<session>.jsonl.reset.<…>`,
/// `<session>.jsonl.deleted.<…>` (OpenClaw's own usage-counted names;
/// `.bak` copies and other rotations are not read).
pub fn session_of_name(name: &str) -> Option<&str> {
    let session = if let Some(stem) = name.strip_suffix(".jsonl") {
        stem
    } else {
        let (stem, rest) = name.split_once(".jsonl.")?;
        if !(rest.starts_with("reset.") || rest.starts_with("deleted.")) {
            return None;
        }
        stem
    };
    (!session.is_empty()).then_some(session)
}

/// The session id in a file name of Doctor's import archive
/// (`<key slug>.<base name>.imported-<ms>[.<n>]`, the base name being a
/// transcript's name): the part before `.jsonl`, after the key slug. The
/// header line, when there is one, names it better.
pub fn session_of_imported_name(name: &str) -> Option<&str> {
    if !name.contains(".imported-") {
        return None;
    }
    let (before, _) = name.split_once(".jsonl")?;
    let session = before.rsplit('.').next().unwrap_or(before);
    (!session.is_empty()).then_some(session)
}

/// The transcript files under `agents_dir`, sorted by path; `skip` holds
/// published archive files whose database row is read instead.
fn find(
    agents_dir: &Path,
    skip: &HashSet<PathBuf>,
    report: &mut IngestReport,
) -> Result<Vec<Found>, StoreError> {
    let mut found = Vec::new();
    let agents = match std::fs::read_dir(agents_dir) {
        Ok(a) => a,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(source) => {
            return Err(StoreError::Io {
                path: agents_dir.to_path_buf(),
                source,
            });
        }
    };
    for agent in agents.flatten() {
        let agent_name = agent.file_name().to_string_lossy().into_owned();
        for (dir, imported) in [("sessions", false), (IMPORT_ARCHIVE_DIR, true)] {
            let Ok(entries) = std::fs::read_dir(agent.path().join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let session = if imported {
                    session_of_imported_name(&name)
                } else {
                    session_of_name(&name)
                };
                let Some(session) = session else { continue };
                if skip.contains(&path) {
                    continue;
                }
                // Follows a symlink to a file, like OpenClaw would.
                let meta = match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        report.problem(format!("{}: cannot read: {e}", path.display()));
                        continue;
                    }
                };
                if !meta.is_file() {
                    report.problem(format!("{}: not a file, skipped", path.display()));
                    continue;
                }
                let (dev, ino) = identity(&meta);
                found.push(Found {
                    session: session.to_owned(),
                    agent: agent_name.clone(),
                    dev,
                    ino,
                    size: meta.len(),
                    mtime_ns: mtime_ns(&meta),
                    path,
                });
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

impl CostStore {
    fn load_states(&self) -> Result<HashMap<String, FileState>, StoreError> {
        let err = self.sqlite("read transcript positions");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, dev, ino, size, mtime_ns, offset, head, head_len, lines, corrupt, \
                 session FROM transcript_files",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                let n = |i: usize| -> rusqlite::Result<u64> {
                    Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
                };
                Ok((
                    r.get::<_, String>(0)?,
                    FileState {
                        dev: n(1)?,
                        ino: n(2)?,
                        size: n(3)?,
                        mtime_ns: r.get(4)?,
                        offset: n(5)?,
                        head: r.get(6)?,
                        head_len: n(7)?,
                        lines: n(8)?,
                        corrupt: n(9)?,
                        session: r.get(10)?,
                    },
                ))
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    /// Reads what is new under `agents_dir`: every agent's OpenClaw
    /// database, its archives, and the transcript files (see the module
    /// documentation). A missing `agents_dir` is an empty pass; a file or
    /// database that cannot be read is a problem in the report, and the
    /// others are still read. Files are read first, so that a turn stored
    /// from a JSONL line before event keys existed gets its key before the
    /// same turn comes from the database.
    pub fn ingest_transcripts(&mut self, agents_dir: &Path) -> Result<IngestReport, StoreError> {
        let mut report = IngestReport::default();
        let stores = super::openclaw::open_all(agents_dir, &mut report);
        let skip: HashSet<PathBuf> = stores.iter().flat_map(|s| s.published_files()).collect();
        let found = find(agents_dir, &skip, &mut report)?;
        // A first pass over months of history inserts hundreds of thousands
        // of keys into a B-tree at random places: with SQLite's 2 MiB
        // default cache that spills pages to the WAL again and again. A
        // bigger cache for the pass, and back to small after, so an idle
        // daemon keeps its memory.
        let big_cache = !found.is_empty() || !stores.is_empty();
        if big_cache {
            self.conn
                .pragma_update(None, "cache_size", INGEST_CACHE_KIB)
                .map_err(self.sqlite("size the cache"))?;
            // One checkpoint at the end instead of one (with its fsync) every
            // 4 MiB of WAL.
            self.conn
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(self.sqlite("pause checkpoints"))?;
        }
        let result = self.ingest_found(&found, &stores, report);
        if big_cache {
            let _ = self.conn.pragma_update(None, "wal_autocheckpoint", 1000);
            if result.as_ref().is_ok_and(|r| r.turns_added > 0) {
                let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
            let _ = self.conn.pragma_update(None, "cache_size", -2000);
            let _ = self.conn.execute_batch("PRAGMA shrink_memory");
        }
        result
    }

    fn ingest_found(
        &mut self,
        found: &[Found],
        stores: &[super::openclaw::AgentStore],
        mut report: IngestReport,
    ) -> Result<IngestReport, StoreError> {
        report.files_seen = found.len();
        let mut states = self.load_states()?;
        let key_of = |f: &Found| f.path.to_string_lossy().into_owned();
        // Which remembered position belongs to which file found: first the
        // same path holding the same file; then a file renamed (rotated) to
        // a new name keeps its position; anything else starts afresh.
        let mut assigned: Vec<Option<FileState>> = found.iter().map(|_| None).collect();
        for (slot, f) in assigned.iter_mut().zip(found) {
            if states
                .get(&key_of(f))
                .is_some_and(|s| (s.dev, s.ino) == (f.dev, f.ino))
            {
                *slot = states.remove(&key_of(f));
            }
        }
        let by_identity: HashMap<(u64, u64), String> = states
            .iter()
            .filter(|(_, s)| s.ino != 0)
            .map(|(p, s)| ((s.dev, s.ino), p.clone()))
            .collect();
        let mut moved = Vec::new();
        for (slot, f) in assigned.iter_mut().zip(found) {
            if slot.is_some() || f.ino == 0 {
                continue;
            }
            if let Some(old) = by_identity.get(&(f.dev, f.ino))
                && let Some(state) = states.remove(old)
            {
                // Whatever was remembered at the new path was another file.
                states.remove(&key_of(f));
                moved.push((old.clone(), key_of(f)));
                *slot = Some(state);
            }
        }
        let mut pass = Pass::begin(&self.conn, &self.path)?;
        for (old, new) in &moved {
            // The position moves with the file, even when nothing is read
            // from it this pass (Doctor moving an imported transcript).
            pass.relocate(old, new)?;
        }
        for (file, state) in found.iter().zip(assigned) {
            // A remembered position at this path for another file: read
            // from the start (`read_file` sees the identity differ).
            let state = state.or_else(|| states.remove(&key_of(file)));
            if let Some(s) = &state
                && (s.dev, s.ino, s.size, s.mtime_ns)
                    == (file.dev, file.ino, file.size, file.mtime_ns)
            {
                continue;
            }
            match pass.read_file(file, state, &mut report) {
                Ok(()) => {}
                Err(FileError::Io(e)) => {
                    report.problem(format!("{}: cannot read: {e}", file.path.display()));
                }
                Err(FileError::Store(e)) => return Err(e),
            }
        }
        // Files that disappeared: their turns stay, their positions go.
        for gone in states.keys() {
            pass.forget(gone)?;
        }
        for store in stores {
            pass.read_store(store, &mut report)?;
        }
        pass.finish()?;
        Ok(report)
    }
}

/// One ingest pass's writes: turns and positions in transactions of up to
/// [`ROWS_PER_COMMIT`] turns, each file's position (each session's cursor)
/// in the same transaction as the turns read up to it.
pub(super) struct Pass<'a> {
    pub(super) conn: &'a Connection,
    store: &'a Path,
    batch: Batch<'a>,
    rows: u64,
    /// The store holds turns without an event key: new turns are matched
    /// by content too (see the module documentation).
    keyless: bool,
}

impl<'a> Pass<'a> {
    fn begin(conn: &'a Connection, store: &'a Path) -> Result<Pass<'a>, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: store.to_path_buf(),
            action: "store transcript turns",
            source,
        };
        let batch = Batch::begin(conn).map_err(err)?;
        // The unique index on event_key answers this without a scan.
        let keyless: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM turns WHERE event_key IS NULL)",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(Pass {
            conn,
            store,
            batch,
            rows: 0,
            keyless,
        })
    }

    pub(super) fn sqlite(
        &self,
        action: &'static str,
    ) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
        let store = self.store;
        move |source| StoreError::Sqlite {
            path: store.to_path_buf(),
            action,
            source,
        }
    }

    fn relocate(&mut self, old: &str, new: &str) -> Result<(), StoreError> {
        self.forget(new)?;
        self.conn
            .execute(
                "UPDATE transcript_files SET path = ?2 WHERE path = ?1",
                [old, new],
            )
            .map_err(self.sqlite("move a transcript position"))?;
        Ok(())
    }

    fn forget(&mut self, path: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM transcript_files WHERE path = ?1", [path])
            .map_err(self.sqlite("forget a transcript"))?;
        Ok(())
    }

    /// Commits what is written so far and opens the next transaction.
    fn commit(&mut self) -> Result<(), StoreError> {
        self.batch
            .commit()
            .map_err(self.sqlite("store transcript turns"))?;
        self.batch = Batch::begin(self.conn).map_err(self.sqlite("store transcript turns"))?;
        self.rows = 0;
        Ok(())
    }

    /// Commits when enough turns are written (call with the position of
    /// what was read already saved).
    pub(super) fn maybe_commit(&mut self) -> Result<(), StoreError> {
        if self.rows >= ROWS_PER_COMMIT {
            self.commit()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), StoreError> {
        self.batch
            .commit()
            .map_err(self.sqlite("store transcript turns"))
    }

    /// Stores `turn` (see the module documentation for how it is matched)
    /// and counts it in `report`.
    pub(super) fn store_turn(
        &mut self,
        keys: &TurnKeys,
        turn: &ParsedTurn,
        at: Timestamp,
        flags: u32,
        place: &Place<'_>,
        report: &mut IngestReport,
    ) -> Result<(), StoreError> {
        self.rows += 1;
        let added = store_turn_in(self.conn, keys, turn, at, flags, place, &mut self.keyless)
            .map_err(self.sqlite("store a transcript turn"))?;
        if added {
            report.turns_added += 1;
            if flags != 0 {
                report.flagged_turns += 1;
            }
        } else {
            report.duplicates += 1;
        }
        Ok(())
    }

    /// Reads `file` from its stored position (or from the start), storing
    /// turns and the new position in the pass's transaction.
    fn read_file(
        &mut self,
        file: &Found,
        state: Option<FileState>,
        report: &mut IngestReport,
    ) -> Result<(), FileError> {
        let (mut f, _) = open_regular(&file.path).map_err(FileError::Io)?;
        // Where to start, and whether the file is still the one we read.
        let mut head_bytes = vec![0u8; usize::try_from(HEAD.min(file.size)).unwrap_or(0)];
        f.read_exact(&mut head_bytes).map_err(FileError::Io)?;
        if head_bytes.starts_with(&ZSTD_MAGIC) {
            return self.read_compressed(file, f, &head_bytes, report);
        }
        let (mut offset, mut lines, mut corrupt) = (0u64, 0u64, 0u64);
        let mut session = file.session.clone();
        if let Some(s) = state {
            let same_start = s.offset <= file.size
                && s.head_len <= head_bytes.len() as u64
                && xxh3_64(&head_bytes[..usize::try_from(s.head_len).unwrap_or(0)]).to_be_bytes()[..]
                    == s.head[..];
            if same_start && (s.dev, s.ino) == (file.dev, file.ino) {
                offset = s.offset;
                lines = s.lines;
                corrupt = s.corrupt;
                if let Some(known) = s.session {
                    session = known;
                }
            }
        }
        if offset >= file.size {
            // Touched, nothing new: remember the new time.
            save_position_in(
                self.conn,
                file,
                &Position::new(offset, &head_bytes, lines, corrupt, &session),
            )
            .map_err(self.sqlite("save a transcript position"))
            .map_err(FileError::Store)?;
            return Ok(());
        }
        report.files_read += 1;
        f.seek(SeekFrom::Start(offset)).map_err(FileError::Io)?;

        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut chunk = vec![0u8; CHUNK];
        // Skipping the rest of an over-long line.
        let mut skipping = false;
        let mut eof = false;
        let mtime =
            Timestamp::from_nanosecond(i128::from(file.mtime_ns)).unwrap_or(Timestamp::UNIX_EPOCH);
        while !eof {
            let n = f.read(&mut chunk).map_err(FileError::Io)?;
            if n == 0 {
                eof = true;
            }
            buf.extend_from_slice(&chunk[..n]);
            report.bytes_read += n as u64;
            let mut start = 0usize;
            while let Some(pos) = memchr::memchr(b'\n', &buf[start..]) {
                let end = start + pos;
                let line_len = (end - start + 1) as u64;
                lines += 1;
                if skipping || end - start > MAX_LINE {
                    skipping = false;
                    corrupt += 1;
                    report.corrupt_lines += 1;
                    report.problem(format!(
                        "{}:{lines}: line longer than {} MiB, skipped",
                        file.path.display(),
                        MAX_LINE / (1024 * 1024)
                    ));
                } else {
                    report.lines_read += 1;
                    let mut line = &buf[start..end];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    if offset == 0
                        && let Some(id) = header_session(line)
                    {
                        session = id;
                    }
                    let place = Place {
                        agent: &file.agent,
                        session: &session,
                    };
                    let bad = self
                        .take(line, &place, Fallback::FileTime(mtime), report)
                        .map_err(FileError::Store)?;
                    if let Some(why) = bad {
                        corrupt += 1;
                        report.corrupt_lines += 1;
                        report.problem(format!("{}:{lines}: {why}", file.path.display()));
                    }
                }
                offset += line_len;
                start = end + 1;
            }
            buf.drain(..start);
            if buf.len() > MAX_LINE {
                // The rest of this line is read through and dropped.
                offset += buf.len() as u64;
                buf.clear();
                skipping = true;
            }
            if self.rows >= ROWS_PER_COMMIT {
                // Commit as we go, with the position reached.
                save_position_in(
                    self.conn,
                    file,
                    &Position::new(offset, &head_bytes, lines, corrupt, &session),
                )
                .map_err(self.sqlite("save a transcript position"))
                .map_err(FileError::Store)?;
                self.commit().map_err(FileError::Store)?;
            }
        }
        // Ending inside an over-long line: what was skipped is not read
        // again; the line's remainder will read as a corrupt line.
        // A partial last line stays for the next pass: `offset` stops before it.
        save_position_in(
            self.conn,
            file,
            &Position::new(offset, &head_bytes, lines, corrupt, &session),
        )
        .map_err(self.sqlite("save a transcript position"))
        .map_err(FileError::Store)?;
        Ok(())
    }

    /// Reads a zstd-compressed file whole (an archive: it does not grow),
    /// and saves its position at its end.
    fn read_compressed(
        &mut self,
        file: &Found,
        mut f: File,
        head: &[u8],
        report: &mut IngestReport,
    ) -> Result<(), FileError> {
        report.files_read += 1;
        report.bytes_read += file.size;
        f.seek(SeekFrom::Start(0)).map_err(FileError::Io)?;
        let decoder = zstd::stream::read::Decoder::new(f).map_err(FileError::Io)?;
        let mtime =
            Timestamp::from_nanosecond(i128::from(file.mtime_ns)).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut session = file.session.clone();
        let mut corrupt = 0u64;
        let path = file.path.display();
        let result = for_each_line(decoder, MAX_LINE, |n, line| {
            let Some(line) = line else {
                corrupt += 1;
                report.corrupt_lines += 1;
                report.problem(format!(
                    "{path}:{n}: line longer than {} MiB, skipped",
                    MAX_LINE / (1024 * 1024)
                ));
                return Ok(());
            };
            report.lines_read += 1;
            if n == 1
                && let Some(id) = header_session(line)
            {
                session = id;
            }
            let place = Place {
                agent: &file.agent,
                session: &session,
            };
            if let Some(why) = self.take(line, &place, Fallback::FileTime(mtime), report)? {
                corrupt += 1;
                report.corrupt_lines += 1;
                report.problem(format!("{path}:{n}: {why}"));
            }
            Ok(())
        });
        let lines = match result {
            Ok(lines) => lines,
            Err(LinesError::Sink(e)) => return Err(FileError::Store(e)),
            Err(LinesError::Read(e, lines)) => {
                // Not zstd after all, cut short, or corrupt: what decoded
                // is stored; the file is read again only if it changes.
                corrupt += 1;
                report.corrupt_lines += 1;
                report.problem(format!("{path}:{}: cannot decompress: {e}", lines + 1));
                lines
            }
        };
        let position = Position {
            offset: file.size,
            head,
            lines,
            corrupt,
            session: &session,
        };
        save_position_in(self.conn, file, &position)
            .map_err(self.sqlite("save a transcript position"))
            .map_err(FileError::Store)
    }

    /// Takes one line (or event): stores its turn, if it is one. Returns
    /// why it is corrupt, when it is; the caller counts and names it.
    pub(super) fn take(
        &mut self,
        text: &[u8],
        place: &Place<'_>,
        fallback: Fallback,
        report: &mut IngestReport,
    ) -> Result<Option<String>, StoreError> {
        match parse_line(text) {
            Parsed::Skip => Ok(None),
            Parsed::Corrupt(why) => Ok(Some(why)),
            Parsed::Turn(turn) => {
                let (at, flags) = turn.dated(fallback);
                let keys = TurnKeys {
                    line: xxh3_128(text).to_be_bytes(),
                    event: turn.id.as_deref().map(|id| event_key(place.session, id)),
                };
                self.store_turn(&keys, &turn, at, flags, place, report)?;
                Ok(None)
            }
        }
    }
}

/// When a turn happened if it does not say.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fallback {
    /// The file's modification time (flagged `NO_TIMESTAMP`).
    FileTime(Timestamp),
    /// When its row was written (`created_at`): as good as its own.
    RowTime(Timestamp),
}

/// Whose a turn is.
pub(super) struct Place<'a> {
    /// The agent (its folder's name).
    pub(super) agent: &'a str,
    /// The session id.
    pub(super) session: &'a str,
}

/// How a turn is identified: see the module documentation.
pub(super) struct TurnKeys {
    /// The 128-bit xxh3 of its line (its event's JSON text).
    pub(super) line: [u8; 16],
    /// [`event_key`], when the event has an `id`.
    pub(super) event: Option<[u8; 16]>,
}

/// The event key of event `id` of `session`: the 128-bit xxh3 of the
/// session id, a NUL byte and the event id.
pub fn event_key(session: &str, id: &str) -> [u8; 16] {
    let mut buf = Vec::with_capacity(session.len() + id.len() + 1);
    buf.extend_from_slice(session.as_bytes());
    buf.push(0);
    buf.extend_from_slice(id.as_bytes());
    xxh3_128(&buf).to_be_bytes()
}

/// `BEGIN IMMEDIATE` … `COMMIT` on a shared connection, rolled back if
/// dropped uncommitted (an error, or a panic, half-way through a file).
struct Batch<'a> {
    conn: &'a Connection,
    open: bool,
}

impl<'a> Batch<'a> {
    fn begin(conn: &'a Connection) -> rusqlite::Result<Batch<'a>> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Batch { conn, open: true })
    }

    fn commit(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

enum FileError {
    Io(std::io::Error),
    Store(StoreError),
}

pub(super) fn sql_u64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Where a file's reading stopped.
struct Position<'a> {
    offset: u64,
    head: &'a [u8],
    lines: u64,
    corrupt: u64,
    session: &'a str,
}

impl<'a> Position<'a> {
    fn new(offset: u64, head: &'a [u8], lines: u64, corrupt: u64, session: &'a str) -> Self {
        Position {
            offset,
            head,
            lines,
            corrupt,
            session,
        }
    }
}

fn save_position_in(tx: &Connection, file: &Found, p: &Position<'_>) -> rusqlite::Result<()> {
    // The hash covers the first bytes up to the position (at most HEAD):
    // bytes past it may still change (a partial line being completed).
    let head_len = (p.head.len() as u64).min(p.offset);
    let hash = xxh3_64(&p.head[..usize::try_from(head_len).unwrap_or(0)]).to_be_bytes();
    tx.prepare_cached(
        "INSERT INTO transcript_files (path, dev, ino, size, mtime_ns, offset, head, head_len, \
         lines, corrupt, updated_at_us, session) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (path) DO UPDATE SET dev = ?2, ino = ?3, size = ?4, mtime_ns = ?5, \
         offset = ?6, head = ?7, head_len = ?8, lines = ?9, corrupt = ?10, updated_at_us = ?11, \
         session = ?12",
    )?
    .execute(params![
        file.path.to_string_lossy(),
        sql_u64(file.dev),
        sql_u64(file.ino),
        // A partial last line: the size seen is past the position, so the
        // next pass opens the file again and finds the line's end.
        sql_u64(if p.offset < file.size {
            p.offset
        } else {
            file.size
        }),
        file.mtime_ns,
        sql_u64(p.offset),
        &hash[..],
        sql_u64(head_len),
        sql_u64(p.lines),
        sql_u64(p.corrupt),
        Timestamp::now().as_microsecond(),
        p.session,
    ])?;
    Ok(())
}

/// Stores one turn; `false` when it was already stored (see the module
/// documentation for the three ways it is matched). `keyless` says whether
/// the store holds turns without an event key, and becomes true when one
/// is added.
fn store_turn_in(
    tx: &Connection,
    keys: &TurnKeys,
    t: &ParsedTurn,
    at: Timestamp,
    flags: u32,
    place: &Place<'_>,
    keyless: &mut bool,
) -> rusqlite::Result<bool> {
    let by_content = flags & TurnFlags::NO_TIMESTAMP == 0;
    let content = |only_keyless: bool| -> rusqlite::Result<Option<i64>> {
        let sql = if only_keyless {
            "SELECT id FROM turns WHERE at_us = ?1 AND agent = ?2 AND session = ?3 \
             AND provider = ?4 AND model = ?5 AND input = ?6 AND output = ?7 \
             AND cache_read = ?8 AND cache_write = ?9 AND event_key IS NULL LIMIT 1"
        } else {
            "SELECT id FROM turns WHERE at_us = ?1 AND agent = ?2 AND session = ?3 \
             AND provider = ?4 AND model = ?5 AND input = ?6 AND output = ?7 \
             AND cache_read = ?8 AND cache_write = ?9 LIMIT 1"
        };
        use rusqlite::OptionalExtension;
        tx.prepare_cached(sql)?
            .query_row(
                params![
                    at.as_microsecond(),
                    place.agent,
                    place.session,
                    t.provider,
                    t.model,
                    sql_u64(t.input),
                    sql_u64(t.output),
                    sql_u64(t.cache_read),
                    sql_u64(t.cache_write),
                ],
                |r| r.get(0),
            )
            .optional()
    };
    match &keys.event {
        Some(event) => {
            if *keyless
                && by_content
                && let Some(id) = content(true)?
            {
                // The same turn, stored before from a copy without an id
                // (or before event keys existed): it gets this key.
                tx.prepare_cached("UPDATE OR IGNORE turns SET event_key = ?1 WHERE id = ?2")?
                    .execute(params![&event[..], id])?;
                return Ok(false);
            }
        }
        None => {
            if by_content && content(false)?.is_some() {
                return Ok(false);
            }
        }
    }
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO turns (key, at_us, agent, session, provider, model, api, input, \
         output, cache_read, cache_write, reported_usd, flags, event_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            &keys.line[..],
            at.as_microsecond(),
            place.agent,
            place.session,
            t.provider,
            t.model,
            t.api,
            sql_u64(t.input),
            sql_u64(t.output),
            sql_u64(t.cache_read),
            sql_u64(t.cache_write),
            t.reported_usd,
            flags,
            keys.event.as_ref().map(|k| &k[..]),
        ])?;
    if n == 1 {
        if keys.event.is_none() {
            *keyless = true;
        }
        return Ok(true);
    }
    if let Some(event) = &keys.event {
        // Found by its line: the row may predate event keys.
        tx.prepare_cached(
            "UPDATE OR IGNORE turns SET event_key = ?1 WHERE key = ?2 AND event_key IS NULL",
        )?
        .execute(params![&event[..], &keys.line[..]])?;
    }
    Ok(false)
}

/// Why reading lines stopped early.
pub(super) enum LinesError<E> {
    /// The reader failed (I/O, or a zstd stream that does not decode),
    /// after this many lines.
    Read(std::io::Error, u64),
    /// The line handler failed.
    Sink(E),
}

/// Reads `reader` to its end, line by line, and gives `f` each line's
/// 1-based number and its bytes (without the line ending), or `None` for a
/// line longer than `max` (read through, never held). The last line may lack
/// its `\n` (an archive is complete). Returns how many lines there were.
pub(super) fn for_each_line<R: Read, E>(
    mut reader: R,
    max: usize,
    mut f: impl FnMut(u64, Option<&[u8]>) -> Result<(), E>,
) -> Result<u64, LinesError<E>> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut lines = 0u64;
    let mut skipping = false;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LinesError::Read(e, lines)),
        };
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0usize;
        while let Some(pos) = memchr::memchr(b'\n', &buf[start..]) {
            let end = start + pos;
            lines += 1;
            if skipping || end - start > max {
                skipping = false;
                f(lines, None).map_err(LinesError::Sink)?;
            } else {
                let mut line = &buf[start..end];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                f(lines, Some(line)).map_err(LinesError::Sink)?;
            }
            start = end + 1;
        }
        buf.drain(..start);
        if buf.len() > max {
            buf.clear();
            skipping = true;
        }
        if eof {
            if skipping {
                lines += 1;
                f(lines, None).map_err(LinesError::Sink)?;
            } else if !buf.is_empty() {
                lines += 1;
                f(lines, Some(&buf)).map_err(LinesError::Sink)?;
            }
            return Ok(lines);
        }
    }
}

/// The session id of a JSONL header line (`{"type":"session","id":…}`).
pub(super) fn header_session(line: &[u8]) -> Option<String> {
    memmem::find(line, b"\"session\"")?;
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "type")]
        kind: Option<String>,
        id: Option<String>,
    }
    let h: Header = serde_json::from_slice(line).ok()?;
    (h.kind.as_deref() == Some("session"))
        .then_some(h.id)
        .flatten()
        .filter(|id| !id.is_empty())
}

/// A turn read from a line.
#[derive(Debug, PartialEq)]
pub(super) struct ParsedTurn {
    /// The message's own time, else the event's.
    at: Option<Timestamp>,
    /// The event's `id`.
    id: Option<String>,
    provider: String,
    model: String,
    api: String,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reported_usd: Option<f64>,
    flags: u32,
}

impl ParsedTurn {
    /// Its time (or `fallback`) and flags.
    fn dated(&self, fallback: Fallback) -> (Timestamp, u32) {
        match (self.at, fallback) {
            (Some(at), _) => (at, self.flags),
            (None, Fallback::RowTime(at)) => (at, self.flags),
            (None, Fallback::FileTime(at)) => (at, self.flags | TurnFlags::NO_TIMESTAMP),
        }
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum Parsed {
    /// Not a turn with usage (user, tool result, header…).
    Skip,
    /// Not JSON, or not an object.
    Corrupt(String),
    Turn(ParsedTurn),
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    role: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    provider: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    api: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    usage: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
}

/// A token count: missing or not a number → 0 and MISSING_FIELD; negative or
/// fractional → 0 or truncated, and INVALID_FIELD.
fn count(usage: &serde_json::Map<String, serde_json::Value>, key: &str, flags: &mut u32) -> u64 {
    match usage.get(key) {
        Some(serde_json::Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                v
            } else if let Some(f) = n.as_f64() {
                *flags |= TurnFlags::INVALID_FIELD;
                if f.is_finite() && f > 0.0 {
                    f as u64
                } else {
                    0
                }
            } else {
                *flags |= TurnFlags::INVALID_FIELD;
                0
            }
        }
        _ => {
            *flags |= TurnFlags::MISSING_FIELD;
            0
        }
    }
}

/// Reads one line (without its line ending), or one event's JSON text. Only
/// those that mention both `"assistant"` and `"usage"` are parsed.
pub(super) fn parse_line(line: &[u8]) -> Parsed {
    if memmem::find(line, b"\"usage\"").is_none() || memmem::find(line, b"\"assistant\"").is_none()
    {
        let text = line.trim_ascii();
        return if text.is_empty() || (text.first() == Some(&b'{') && text.last() == Some(&b'}')) {
            // Not a turn. Shaped like an object: not parsed (a broken user
            // or tool line costs nothing); a cut-off line is caught below.
            Parsed::Skip
        } else {
            // Never the content in a problem: it may be anything the user
            // wrote.
            Parsed::Corrupt("not a JSON object".to_owned())
        };
    }
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Parsed::Corrupt("not a JSON object".to_owned());
    }
    let parsed: Line<'_> = match serde_json::from_slice(line) {
        Ok(l) => l,
        Err(e) => return Parsed::Corrupt(format!("not JSON ({e})")),
    };
    if parsed.kind.as_deref() != Some("message") {
        return Parsed::Skip;
    }
    let Some(message) = parsed.message else {
        return Parsed::Skip;
    };
    if message.role.as_deref() != Some("assistant") {
        return Parsed::Skip;
    }
    let Some(usage) = message.usage else {
        return Parsed::Skip;
    };
    let mut flags = 0u32;
    let input = count(&usage, "input", &mut flags);
    let output = count(&usage, "output", &mut flags);
    let cache_read = count(&usage, "cacheRead", &mut flags);
    let cache_write = count(&usage, "cacheWrite", &mut flags);
    let reported_usd = usage
        .get("cost")
        .and_then(|c| c.get("total"))
        .and_then(serde_json::Value::as_f64)
        .filter(|v| v.is_finite() && *v >= 0.0);
    let at = time_of(message.timestamp.as_ref()).or_else(|| time_of(parsed.timestamp.as_ref()));
    let provider = message.provider.map(|c| c.into_owned()).unwrap_or_default();
    let model = message.model.map(|c| c.into_owned()).unwrap_or_default();
    if provider.is_empty() || model.is_empty() {
        flags |= TurnFlags::NO_MODEL;
    }
    Parsed::Turn(ParsedTurn {
        at,
        id: parsed
            .id
            .map(|c| c.into_owned())
            .filter(|id| !id.is_empty()),
        provider,
        model,
        api: message.api.map(|c| c.into_owned()).unwrap_or_default(),
        input,
        output,
        cache_read,
        cache_write,
        reported_usd,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn turn_of(line: &[u8]) -> ParsedTurn {
        match parse_line(line) {
            Parsed::Turn(t) => t,
            other => panic!("not a turn: {other:?}"),
        }
    }

    #[test]
    fn an_assistant_turn_with_usage() {
        let line = br#"{"type":"message","id":"a1","timestamp":"2026-11-05T09:00:05Z","message":{"role":"assistant","provider":"anthropic","model":"claude-opus-4-5","api":"anthropic-messages","usage":{"input":10,"output":20,"cacheRead":30,"cacheWrite":40,"totalTokens":100,"cost":{"total":0.5}},"timestamp":1762333205000}}"#;
        let t = turn_of(line);
        assert_eq!(
            (t.input, t.output, t.cache_read, t.cache_write),
            (10, 20, 30, 40)
        );
        assert_eq!(
            t.at,
            Some(Timestamp::from_millisecond(1_762_333_205_000).expect("ms"))
        );
        assert_eq!(t.id.as_deref(), Some("a1"));
        assert_eq!(t.reported_usd, Some(0.5));
        assert_eq!(t.flags, 0);
        assert_eq!(t.model, "claude-opus-4-5");
    }

    #[test]
    fn an_openclaw_event_as_stored() {
        // A real row of OpenClaw 2026.9.6 (research store), with its extra
        // usage fields.
        let line = br#"{"type":"message","id":"a75db29e-f510-4fb4-b542-e4327a4e4ca9","parentId":"9e2bb87a-9aaa-4d71-87d4-3a25988db095","timestamp":"2026-12-07T23:41:09.726Z","message":{"role":"assistant","content":[{"type":"text","text":"Hello from fake ollama."}],"stopReason":"stop","api":"ollama","provider":"ollama","model":"qwen3:8b","usage":{"input":123,"output":45,"cacheRead":0,"cacheWrite":0,"cacheTelemetry":{"state":"unavailable"},"totalTokens":168,"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0},"contextUsage":{"state":"available","promptTokens":123,"totalTokens":168}},"timestamp":1796686869685,"__openclaw":{"runId":"94b2729d-b567-4ba6-96b5-9a79d60f8fa0"}}}"#;
        let t = turn_of(line);
        assert_eq!(
            t.id.as_deref(),
            Some("a75db29e-f510-4fb4-b542-e4327a4e4ca9")
        );
        assert_eq!((t.input, t.output), (123, 45));
        assert_eq!(t.reported_usd, Some(0.0));
        assert_eq!((t.provider.as_str(), t.api.as_str()), ("ollama", "ollama"));
        assert_eq!(
            t.dated(Fallback::RowTime(Timestamp::UNIX_EPOCH)).0,
            Timestamp::from_millisecond(1_796_686_869_685).expect("ms"),
            "the message's own time first"
        );
    }

    #[test]
    fn doubtful_fields_are_flagged() {
        let line = br#"{"type":"message","timestamp":"2026-11-05T09:00:05Z","message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":-5,"output":2.7,"cacheRead":"x"}}}"#;
        let t = turn_of(line);
        assert_eq!(
            (t.input, t.output, t.cache_read, t.cache_write),
            (0, 2, 0, 0)
        );
        assert!(t.flags & TurnFlags::INVALID_FIELD != 0);
        assert!(t.flags & TurnFlags::MISSING_FIELD != 0);
        assert_eq!(
            t.at,
            Some(at("2026-11-05T09:00:05Z")),
            "the outer timestamp"
        );
        assert_eq!(t.id, None);

        let line = br#"{"type":"message","message":{"role":"assistant","usage":{"input":1,"output":1,"cacheRead":0,"cacheWrite":0}}}"#;
        let t = turn_of(line);
        let (when, flags) = t.dated(Fallback::FileTime(at("2026-01-01T00:00:00Z")));
        assert_eq!(when, at("2026-01-01T00:00:00Z"));
        assert!(flags & TurnFlags::NO_TIMESTAMP != 0);
        assert!(flags & TurnFlags::NO_MODEL != 0);
        // A row's `created_at` is as good as the event's own time.
        let (when, flags) = t.dated(Fallback::RowTime(at("2026-01-02T00:00:00Z")));
        assert_eq!(when, at("2026-01-02T00:00:00Z"));
        assert_eq!(flags & TurnFlags::NO_TIMESTAMP, 0);
    }

    #[test]
    fn other_lines_are_skipped_and_garbage_is_corrupt_without_its_content() {
        assert_eq!(parse_line(br#"{"type":"session","id":"x"}"#), Parsed::Skip);
        assert_eq!(
            parse_line(br#"{"type":"message","message":{"role":"user","content":"usage"}}"#),
            Parsed::Skip
        );
        assert_eq!(
            parse_line(br#"{"type":"message","message":{"role":"assistant","content":[]}}"#),
            Parsed::Skip,
            "an assistant message without usage"
        );
        assert_eq!(
            parse_line(br#"{"type":"custom","data":{"role":"assistant","usage":{}}}"#),
            Parsed::Skip,
            "not a message"
        );
        assert_eq!(parse_line(b"   "), Parsed::Skip);
        assert_eq!(
            parse_line(b"secret garbage"),
            Parsed::Corrupt("not a JSON object".into())
        );
        let Parsed::Corrupt(why) =
            parse_line(br#"{"type":"message","message":{"role":"assistant","usage":{"input":1"#)
        else {
            panic!("cut-off line");
        };
        assert!(why.starts_with("not JSON"), "{why}");
        assert!(matches!(
            parse_line(br#"["assistant","usage"]"#),
            Parsed::Corrupt(_)
        ));
        assert!(matches!(
            parse_line(
                b"{\"type\":\"message\",\"message\":{\"role\":\"assistant\",\"model\":\"\xff\xfe\",\"usage\":{}}}"
            ),
            Parsed::Corrupt(_)
        ));
    }

    #[test]
    fn event_keys_are_per_session_and_stable() {
        let k = event_key("9a74ca42-cc20-4ef1-82e8-d79d45427d3c", "83f473e1");
        assert_eq!(
            k,
            event_key("9a74ca42-cc20-4ef1-82e8-d79d45427d3c", "83f473e1")
        );
        assert_ne!(k, event_key("another-session", "83f473e1"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(event_key("ab", "c"), event_key("a", "bc"));
    }

    #[test]
    fn names_that_are_read() {
        assert_eq!(session_of_name("s1.jsonl"), Some("s1"));
        assert_eq!(
            session_of_name("s1.jsonl.reset.2026-01-02T03-04-05.000Z"),
            Some("s1")
        );
        assert_eq!(
            session_of_name(
                "89d2f287-fa5b-499a-a075-d397d5647528.jsonl.deleted.2026-12-07T23-44-26.484Z.7f726cc2c4c543e29efd381ef75f8a4d.zst"
            ),
            Some("89d2f287-fa5b-499a-a075-d397d5647528")
        );
        assert_eq!(session_of_name("s1.jsonl.1"), None, "a rotation");
        assert_eq!(session_of_name("s1.jsonl.bak"), None);
        assert_eq!(session_of_name("sessions.json"), None);
        assert_eq!(session_of_name(".jsonl"), None);
        assert_eq!(session_of_name("cold"), None);
        assert_eq!(
            session_of_imported_name("agent_main_main.s1.jsonl.imported-1796687000000"),
            Some("s1")
        );
        assert_eq!(
            session_of_imported_name(
                "agent_main_main.s1.jsonl.reset.2026-01-02T03-04-05.000Z.imported-1796687000000.2"
            ),
            Some("s1")
        );
        assert_eq!(
            session_of_imported_name("agent_main_main.sessions.json.imported-1"),
            None
        );
    }

    #[test]
    fn headers_name_the_session() {
        assert_eq!(
            header_session(br#"{"type":"session","version":4,"id":"abc","cwd":"/x"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(
            header_session(br#"{"type":"message","id":"session"}"#),
            None
        );
        assert_eq!(header_session(br#"{"type":"session"}"#), None);
        assert_eq!(header_session(b"\"session\" garbage"), None);
    }

    #[test]
    fn lines_are_split_capped_and_the_last_one_is_kept() {
        let text = b"a\r\nbb\n0123456789\nlast";
        let mut got = Vec::new();
        let n = for_each_line::<_, ()>(&text[..], 4, |n, l| {
            got.push((n, l.map(<[u8]>::to_vec)));
            Ok(())
        })
        .map_err(|_| "read")
        .expect("lines");
        assert_eq!(n, 4);
        assert_eq!(
            got,
            vec![
                (1, Some(b"a".to_vec())),
                (2, Some(b"bb".to_vec())),
                (3, None),
                (4, Some(b"last".to_vec())),
            ]
        );
    }
}
