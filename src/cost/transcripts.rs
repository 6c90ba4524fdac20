//! Incremental reading of Clawdbot's session transcripts
//! (`<agents>/<agent>/sessions/<session>.jsonl`) into the cost store.
//!
//! **Incremental.** Each file's read position is kept in `transcript_files`
//! with its identity (device, inode), size, modification time and a hash of
//! its first bytes. A file whose size, time and inode are unchanged is not
//! opened at all, so a restart with nothing new costs one `stat` per file. A
//! file that grew is read from where the last pass stopped, once its first
//! bytes still hash the same; a file that is now shorter, or whose first
//! bytes changed, was rewritten and is read again from the start. A file
//! renamed to another `*.jsonl` name (same device and inode) keeps its
//! position. The position and the turns read up to it are committed in one
//! transaction, so a crash never skips a line.
//!
//! **Counted once.** A turn is stored under the 128-bit xxh3 hash of its line
//! (without the line ending): reading a line again — after a rewrite, a
//! rotation, or from a copy of the file — finds it already there.
//!
//! **Whole lines only.** A last line without its `\n` is being written: it is
//! left for the next pass. A line that is not JSON is counted as corrupt and
//! skipped, as is a line longer than [`MAX_LINE`] (read through without
//! being held in memory).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use memchr::memmem;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::store::{CostStore, StoreError, TurnFlags};

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

/// What one ingest pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// `*.jsonl` files found.
    pub files_seen: usize,
    /// Files that had new bytes.
    pub files_read: usize,
    /// Complete lines read.
    pub lines_read: u64,
    /// New turns stored.
    pub turns_added: u64,
    /// Turns already stored (a line read again).
    pub duplicates: u64,
    /// Lines skipped: not JSON, not an object, or too long.
    pub corrupt_lines: u64,
    /// Turns stored with something wrong with them (see `TurnFlags`).
    pub flagged_turns: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// What was wrong, at most 20 entries: `path:line: what`.
    pub problems: Vec<String>,
}

impl IngestReport {
    fn problem(&mut self, text: String) {
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
}

/// A transcript file found on disk.
struct Found {
    path: PathBuf,
    agent: String,
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
    // from the start, and the line hashes keep the totals right.
    (0, 0)
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| Timestamp::try_from(t).ok())
        .map_or(0, |t| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX))
}

/// The transcript files under `agents_dir`, sorted by path.
fn find(agents_dir: &Path, report: &mut IngestReport) -> Result<Vec<Found>, StoreError> {
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
        let sessions = agent.path().join("sessions");
        let Ok(entries) = std::fs::read_dir(&sessions) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            // Follows a symlink to a file, like Clawdbot would.
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
                session: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                agent: agent_name.clone(),
                dev,
                ino,
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
                path,
            });
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
                "SELECT path, dev, ino, size, mtime_ns, offset, head, head_len, lines, corrupt \
                 FROM transcript_files",
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
                    },
                ))
            })
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }

    /// Reads what is new in every `<agents_dir>/<agent>/sessions/*.jsonl`.
    /// A missing `agents_dir` is an empty pass; a file that cannot be read
    /// is a problem in the report, and the others are still read.
    pub fn ingest_transcripts(&mut self, agents_dir: &Path) -> Result<IngestReport, StoreError> {
        let mut report = IngestReport::default();
        let found = find(agents_dir, &mut report)?;
        // A first pass over months of history inserts hundreds of thousands
        // of keys into a B-tree at random places: with SQLite's 2 MiB
        // default cache that spills pages to the WAL again and again. A
        // bigger cache for the pass, and back to small after, so an idle
        // daemon keeps its memory.
        let big_cache = !found.is_empty();
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
        let result = self.ingest_found(&found, report);
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
        let mut moved_from = Vec::new();
        for (slot, f) in assigned.iter_mut().zip(found) {
            if slot.is_some() || f.ino == 0 {
                continue;
            }
            if let Some(old) = by_identity.get(&(f.dev, f.ino))
                && let Some(moved) = states.remove(old)
            {
                moved_from.push(old.clone());
                *slot = Some(moved);
            }
        }
        let mut pass = Pass::begin(&self.conn, &self.path)?;
        for old in &moved_from {
            pass.forget(old)?;
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
        pass.finish()?;
        Ok(report)
    }
}

/// One ingest pass's writes: turns and positions in transactions of up to
/// [`ROWS_PER_COMMIT`] turns, each file's position in the same transaction
/// as the turns read up to it.
struct Pass<'a> {
    conn: &'a Connection,
    store: &'a Path,
    batch: Batch<'a>,
    rows: u64,
}

impl<'a> Pass<'a> {
    fn begin(conn: &'a Connection, store: &'a Path) -> Result<Pass<'a>, StoreError> {
        let batch = Batch::begin(conn).map_err(|source| StoreError::Sqlite {
            path: store.to_path_buf(),
            action: "store transcript turns",
            source,
        })?;
        Ok(Pass {
            conn,
            store,
            batch,
            rows: 0,
        })
    }

    fn sqlite(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
        let store = self.store;
        move |source| StoreError::Sqlite {
            path: store.to_path_buf(),
            action,
            source,
        }
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

    fn finish(mut self) -> Result<(), StoreError> {
        self.batch
            .commit()
            .map_err(self.sqlite("store transcript turns"))
    }

    /// Reads `file` from its stored position (or from the start), storing
    /// turns and the new position in the pass's transaction.
    fn read_file(
        &mut self,
        file: &Found,
        state: Option<FileState>,
        report: &mut IngestReport,
    ) -> Result<(), FileError> {
        let mut f = File::open(&file.path).map_err(FileError::Io)?;
        // Where to start, and whether the file is still the one we read.
        let mut head_bytes = vec![0u8; usize::try_from(HEAD.min(file.size)).unwrap_or(0)];
        f.read_exact(&mut head_bytes).map_err(FileError::Io)?;
        let (mut offset, mut lines, mut corrupt) = (0u64, 0u64, 0u64);
        if let Some(s) = state {
            let same_start = s.offset <= file.size
                && s.head_len <= head_bytes.len() as u64
                && xxh3_64(&head_bytes[..usize::try_from(s.head_len).unwrap_or(0)]).to_be_bytes()[..]
                    == s.head[..];
            if same_start && (s.dev, s.ino) == (file.dev, file.ino) {
                offset = s.offset;
                lines = s.lines;
                corrupt = s.corrupt;
            }
        }
        if offset >= file.size {
            // Touched, nothing new: remember the new time.
            save_position_in(self.conn, file, offset, &head_bytes, lines, corrupt)
                .map_err(self.sqlite("save a transcript position"))
                .map_err(FileError::Store)?;
            return Ok(());
        }
        report.files_read += 1;
        f.seek(SeekFrom::Start(offset)).map_err(FileError::Io)?;

        let conn = self.conn;
        let store = self.store;
        let sqlite = move |action: &'static str| {
            move |source| StoreError::Sqlite {
                path: store.to_path_buf(),
                action,
                source,
            }
        };
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
                    match parse_line(line, mtime) {
                        Parsed::Skip => {}
                        Parsed::Corrupt(why) => {
                            corrupt += 1;
                            report.corrupt_lines += 1;
                            report.problem(format!("{}:{lines}: {why}", file.path.display()));
                        }
                        Parsed::Turn(turn) => {
                            let added = insert_turn(conn, line, &turn, file)
                                .map_err(sqlite("store a transcript turn"))
                                .map_err(FileError::Store)?;
                            if added {
                                report.turns_added += 1;
                                if turn.flags != 0 {
                                    report.flagged_turns += 1;
                                }
                            } else {
                                report.duplicates += 1;
                            }
                            self.rows += 1;
                        }
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
                save_position_in(conn, file, offset, &head_bytes, lines, corrupt)
                    .map_err(self.sqlite("save a transcript position"))
                    .map_err(FileError::Store)?;
                self.commit().map_err(FileError::Store)?;
            }
        }
        // Ending inside an over-long line: what was skipped is not read
        // again; the line's remainder will read as a corrupt line.
        // A partial last line stays for the next pass: `offset` stops before it.
        save_position_in(conn, file, offset, &head_bytes, lines, corrupt)
            .map_err(self.sqlite("save a transcript position"))
            .map_err(FileError::Store)?;
        Ok(())
    }
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

fn sql_u64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn save_position_in(
    tx: &Connection,
    file: &Found,
    offset: u64,
    head: &[u8],
    lines: u64,
    corrupt: u64,
) -> rusqlite::Result<()> {
    // The hash covers the first bytes up to the position (at most HEAD):
    // bytes past it may still change (a partial line being completed).
    let head_len = (head.len() as u64).min(offset);
    let hash = xxh3_64(&head[..usize::try_from(head_len).unwrap_or(0)]).to_be_bytes();
    tx.prepare_cached(
        "INSERT INTO transcript_files (path, dev, ino, size, mtime_ns, offset, head, head_len, \
         lines, corrupt, updated_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (path) DO UPDATE SET dev = ?2, ino = ?3, size = ?4, mtime_ns = ?5, \
         offset = ?6, head = ?7, head_len = ?8, lines = ?9, corrupt = ?10, updated_at_us = ?11",
    )?
    .execute(params![
        file.path.to_string_lossy(),
        sql_u64(file.dev),
        sql_u64(file.ino),
        // A partial last line: the size seen is past the position, so the
        // next pass opens the file again and finds the line's end.
        sql_u64(if offset < file.size {
            offset
        } else {
            file.size
        }),
        file.mtime_ns,
        sql_u64(offset),
        &hash[..],
        sql_u64(head_len),
        sql_u64(lines),
        sql_u64(corrupt),
        Timestamp::now().as_microsecond(),
    ])?;
    Ok(())
}

/// Stores one turn; `false` when its line was already stored.
fn insert_turn(
    tx: &Connection,
    line: &[u8],
    t: &ParsedTurn,
    file: &Found,
) -> rusqlite::Result<bool> {
    let key = xxh3_128(line).to_be_bytes();
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO turns (key, at_us, agent, session, provider, model, api, input, \
         output, cache_read, cache_write, reported_usd, flags) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            &key[..],
            t.at.as_microsecond(),
            file.agent,
            file.session,
            t.provider,
            t.model,
            t.api,
            sql_u64(t.input),
            sql_u64(t.output),
            sql_u64(t.cache_read),
            sql_u64(t.cache_write),
            t.reported_usd,
            t.flags,
        ])?;
    Ok(n == 1)
}

/// A turn read from a line.
#[derive(Debug, PartialEq)]
struct ParsedTurn {
    at: Timestamp,
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

#[derive(Debug, PartialEq)]
enum Parsed {
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

/// A transcript timestamp: Unix milliseconds or an RFC 3339 string.
pub(crate) fn time_of(value: Option<&serde_json::Value>) -> Option<Timestamp> {
    match value? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        serde_json::Value::String(s) => s.parse::<Timestamp>().ok(),
        _ => None,
    }
}

/// Reads one line (without its line ending). Only lines that mention both
/// `"assistant"` and `"usage"` are parsed.
fn parse_line(line: &[u8], fallback_time: Timestamp) -> Parsed {
    if memmem::find(line, b"\"usage\"").is_none() || memmem::find(line, b"\"assistant\"").is_none()
    {
        let text = line.trim_ascii();
        return if text.is_empty() || (text.first() == Some(&b'{') && text.last() == Some(&b'}')) {
            // Not a turn. Shaped like an object: not parsed (a broken user
            // or tool line costs nothing); a cut-off line is caught below.
            Parsed::Skip
        } else {
            Parsed::Corrupt(format!(
                "not a JSON object: {}",
                crate::net::preview(line, 60)
            ))
        };
    }
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Parsed::Corrupt(format!(
            "not a JSON object: {}",
            crate::net::preview(line, 60)
        ));
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
    let at =
        match time_of(message.timestamp.as_ref()).or_else(|| time_of(parsed.timestamp.as_ref())) {
            Some(t) => t,
            None => {
                flags |= TurnFlags::NO_TIMESTAMP;
                fallback_time
            }
        };
    let provider = message.provider.map(|c| c.into_owned()).unwrap_or_default();
    let model = message.model.map(|c| c.into_owned()).unwrap_or_default();
    if provider.is_empty() || model.is_empty() {
        flags |= TurnFlags::NO_MODEL;
    }
    Parsed::Turn(ParsedTurn {
        at,
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

    #[test]
    fn an_assistant_turn_with_usage() {
        let line = br#"{"type":"message","timestamp":"2026-11-05T09:00:05Z","message":{"role":"assistant","provider":"anthropic","model":"claude-opus-4-5","api":"anthropic-messages","usage":{"input":10,"output":20,"cacheRead":30,"cacheWrite":40,"totalTokens":100,"cost":{"total":0.5}},"timestamp":1762333205000}}"#;
        let Parsed::Turn(t) = parse_line(line, Timestamp::UNIX_EPOCH) else {
            panic!("not a turn");
        };
        assert_eq!(
            (t.input, t.output, t.cache_read, t.cache_write),
            (10, 20, 30, 40)
        );
        assert_eq!(
            t.at,
            Timestamp::from_millisecond(1_762_333_205_000).expect("ms")
        );
        assert_eq!(t.reported_usd, Some(0.5));
        assert_eq!(t.flags, 0);
        assert_eq!(t.model, "claude-opus-4-5");
    }

    #[test]
    fn doubtful_fields_are_flagged() {
        let line = br#"{"type":"message","timestamp":"2026-11-05T09:00:05Z","message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":-5,"output":2.7,"cacheRead":"x"}}}"#;
        let Parsed::Turn(t) = parse_line(line, Timestamp::UNIX_EPOCH) else {
            panic!("not a turn");
        };
        assert_eq!(
            (t.input, t.output, t.cache_read, t.cache_write),
            (0, 2, 0, 0)
        );
        assert!(t.flags & TurnFlags::INVALID_FIELD != 0);
        assert!(t.flags & TurnFlags::MISSING_FIELD != 0);
        assert_eq!(t.at, at("2026-11-05T09:00:05Z"), "the outer timestamp");

        let line = br#"{"type":"message","message":{"role":"assistant","usage":{"input":1,"output":1,"cacheRead":0,"cacheWrite":0}}}"#;
        let Parsed::Turn(t) = parse_line(line, at("2026-01-01T00:00:00Z")) else {
            panic!("not a turn");
        };
        assert_eq!(t.at, at("2026-01-01T00:00:00Z"));
        assert!(t.flags & TurnFlags::NO_TIMESTAMP != 0);
        assert!(t.flags & TurnFlags::NO_MODEL != 0);
    }

    #[test]
    fn other_lines_are_skipped_and_garbage_is_corrupt() {
        let fallback = Timestamp::UNIX_EPOCH;
        assert_eq!(
            parse_line(br#"{"type":"session","id":"x"}"#, fallback),
            Parsed::Skip
        );
        assert_eq!(
            parse_line(
                br#"{"type":"message","message":{"role":"user","content":"usage"}}"#,
                fallback
            ),
            Parsed::Skip
        );
        assert_eq!(
            parse_line(
                br#"{"type":"message","message":{"role":"assistant","content":[]}}"#,
                fallback
            ),
            Parsed::Skip,
            "an assistant message without usage"
        );
        assert_eq!(parse_line(b"   ", fallback), Parsed::Skip);
        assert!(matches!(
            parse_line(b"garbage", fallback),
            Parsed::Corrupt(_)
        ));
        assert!(matches!(
            parse_line(
                br#"{"type":"message","message":{"role":"assistant","usage":{"input":1"#,
                fallback
            ),
            Parsed::Corrupt(_)
        ));
        assert!(matches!(
            parse_line(br#"["assistant","usage"]"#, fallback),
            Parsed::Corrupt(_)
        ));
    }
}
