//! The ledger's journal: where a record is written first, by the task that
//! records it, before it reaches SQLite.
//!
//! The journal is a folder beside the database (`ledger.sqlite-pending/`)
//! holding numbered segment files of lines, one [`Record`] per line, already
//! scrubbed: the segment's number (20 digits), a tab, the record as JSON.
//! Exactly one segment is *active*: records are appended to it (see
//! [`Segment`]). The writer thread *rotates* it (a fresh segment becomes
//! active), stores the rotated segment's records in SQLite in one
//! transaction that also sets the ledger's `journal.committed_segment` to
//! that segment's number, and then deletes the file, or keeps it, emptied,
//! as the *spare* the next rotation renames and reuses (a mapped segment
//! whose pages are in memory already costs no page faults).
//!
//! A line stands only for the segment its number names: a reused file whose
//! emptying had not reached the disk when the machine lost power still
//! holds the earlier segment's lines, stored already, and reading skips
//! them. Lines that are bare JSON (ClawFleet before 2026-12) are read as
//! the segment's.
//!
//! So at any moment a record is in a segment file, or committed in SQLite, or
//! both (between the commit and the deletion); never in neither. When the
//! ledger opens, segments numbered at most `committed_segment` are already
//! stored and are deleted; later ones are stored first. A line cut short by a
//! crash or a full disk is skipped with a warning, and so are the zero bytes
//! a mapped segment had reserved and not yet used.
//!
//! The folder also holds `lock`, locked exclusively by the process writing
//! the ledger (two writers would number their segments over each other),
//! and at times `spare`, which is not a segment and is deleted when the
//! ledger opens.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BUSY_TIMEOUT, LedgerError, Record, scrub};

/// The journal folder of the ledger at `db`: `<db>-pending`, beside it.
pub(super) fn dir_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-pending");
    db.with_file_name(name)
}

/// The file of segment `n`: zero-padded so that names sort as numbers do.
pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.ndjson"))
}

/// The file of the spare segment, emptied and waiting to be reused.
pub(super) fn spare_path(dir: &Path) -> PathBuf {
    dir.join("spare")
}

/// The length of a line's segment number and the tab after it.
const TAG_LEN: usize = 21;

/// Writes `n` as the 20 digits that start a line of segment `n`.
fn put_tag(line: &mut [u8], mut n: u64) {
    for digit in line[..TAG_LEN - 1].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    line[TAG_LEN - 1] = b'\t';
}

/// The active segment: records are appended to it, each one in the
/// operating system's hands (the page cache) once [`Segment::append`]
/// returns, so that it survives the process being killed.
///
/// On Linux the file gets room reserved on disk ([`MAPPED_ROOM`] to start
/// with, doubled when used up) and is mapped into memory: appending a line is
/// a copy into the page cache, with no system call. Elsewhere, and where the
/// file system cannot reserve room (`fallocate`) or map the file, each line
/// is one `write`. Room is reserved rather than mapped as a sparse file
/// because a write into a page the disk has no room for would kill the
/// process (`SIGBUS`) instead of failing one record. A mapped segment is
/// cut to its lines when it is [closed](Segment::close); one left by a crash
/// ends in zero bytes, which reading skips.
pub(super) struct Segment {
    file: File,
    /// The segment's number, written at the start of each line.
    number: u64,
    /// Bytes of lines appended: where the next one goes, and where to cut a
    /// line a failed `write` left half-written.
    len: u64,
    #[cfg(target_os = "linux")]
    map: Option<mapped::Map>,
}

/// The room a fresh mapped segment reserves: about 2,500 usual records,
/// more than the writer's [`super::BATCH_EVERY`] gathers at the proxy's
/// measured peak.
#[cfg(target_os = "linux")]
pub(super) const MAPPED_ROOM: u64 = 1 << 20;

impl Segment {
    /// Creates segment `n`, empty, readable by the owner only; on Linux,
    /// mapped when the file system allows it.
    pub(super) fn create(dir: &Path, n: u64) -> std::io::Result<Segment> {
        let mut options = OpenOptions::new();
        // Read and write for the mapping; append so that a `write` always
        // lands after the lines, also after a failed one was cut off.
        options.read(true).append(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(segment_path(dir, n))?;
        #[cfg(target_os = "linux")]
        {
            let map = match mapped::Map::reserve(&file, MAPPED_ROOM) {
                Ok(map) => Some(map),
                Err(e) => {
                    tracing::debug!(journal = %dir.display(), "journal segments are written, not mapped: {e}");
                    // Room reserved before the mapping failed would put
                    // zeros before the first written line.
                    file.set_len(0)?;
                    None
                }
            };
            Ok(Segment {
                file,
                number: n,
                len: 0,
                map,
            })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(Segment {
            file,
            number: n,
            len: 0,
        })
    }

    /// A segment whose lines are always written with `write`, whatever the
    /// platform: what [`Segment::create`] falls back to.
    #[cfg(test)]
    fn create_written(dir: &Path, n: u64) -> std::io::Result<Segment> {
        let segment = Segment::create(dir, n)?;
        #[cfg(target_os = "linux")]
        let segment = {
            let mut segment = segment;
            if segment.map.take().is_some() {
                segment.file.set_len(0)?;
            }
            segment
        };
        Ok(segment)
    }

    /// Whether lines are copied into a mapping rather than written.
    #[cfg(test)]
    fn is_mapped(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.map.is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// The segment's number.
    pub(super) fn number(&self) -> u64 {
        self.number
    }

    /// Appends one whole line made by [`prepare`], numbering it for this
    /// segment. On failure (a full disk) nothing of it is kept, so the next
    /// line starts clean.
    pub(super) fn append(&mut self, line: &mut [u8]) -> std::io::Result<()> {
        put_tag(line, self.number);
        let line = &*line;
        #[cfg(target_os = "linux")]
        if let Some(map) = self.map.as_mut() {
            map.put(&self.file, self.len, line)?;
            self.len += line.len() as u64;
            return Ok(());
        }
        if let Err(e) = (&self.file).write_all(line) {
            // A partial line would spoil the next one: cut it off.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += line.len() as u64;
        Ok(())
    }

    /// Closes the file (Windows deletes no open file); a mapped segment is
    /// first unmapped and cut to its lines. If the cut fails the file keeps
    /// its zero tail, which reading skips.
    pub(super) fn close(self) {
        #[cfg(target_os = "linux")]
        if let Some(map) = self.map {
            drop(map);
            if let Err(e) = self.file.set_len(self.len) {
                tracing::debug!("cannot cut a journal segment to its lines: {e}");
            }
        }
    }

    /// Makes this segment, stored already, the spare: its lines zeroed and
    /// its file renamed `spare`. Only a mapped segment of at most twice
    /// [`MAPPED_ROOM`] is worth keeping; any other is handed back, to be
    /// closed and deleted.
    #[cfg(target_os = "linux")]
    pub(super) fn recycle(mut self, dir: &Path) -> Result<Segment, Segment> {
        let Some(map) = self.map.as_mut().filter(|m| m.room() <= 2 * MAPPED_ROOM) else {
            return Err(self);
        };
        map.zero(self.len);
        if let Err(e) = std::fs::rename(segment_path(dir, self.number), spare_path(dir)) {
            tracing::debug!(journal = %dir.display(), "cannot keep a spare segment: {e}");
            return Err(self);
        }
        self.len = 0;
        Ok(self)
    }

    /// Every segment is closed and deleted once stored.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn recycle(self, _dir: &Path) -> Result<Segment, Segment> {
        Err(self)
    }

    /// The spare, renamed segment `n` to be active. On failure it is closed
    /// and deleted, and the caller creates a fresh one.
    pub(super) fn reuse(mut self, dir: &Path, n: u64) -> std::io::Result<Segment> {
        let spare = spare_path(dir);
        if let Err(e) = std::fs::rename(&spare, segment_path(dir, n)) {
            self.close();
            let _ = std::fs::remove_file(&spare);
            return Err(e);
        }
        self.number = n;
        Ok(self)
    }
}

#[cfg(target_os = "linux")]
mod mapped {
    use std::fs::File;
    use std::os::fd::AsRawFd as _;

    use memmap2::MmapMut;

    /// A segment file with room reserved on disk, mapped shared and
    /// writable.
    pub(super) struct Map(MmapMut);

    impl Map {
        /// Reserves `room` bytes for `file` (which is then that long, all
        /// zeros) and maps it.
        pub(super) fn reserve(file: &File, room: u64) -> std::io::Result<Map> {
            allocate(file, room)?;
            map(file).map(Map)
        }

        /// The bytes mapped.
        pub(super) fn room(&self) -> u64 {
            self.0.len() as u64
        }

        /// Zeroes the first `len` bytes.
        pub(super) fn zero(&mut self, len: u64) {
            let len = usize::try_from(len).map_or(self.0.len(), |l| l.min(self.0.len()));
            self.0[..len].fill(0);
        }

        /// Copies `line` to offset `at`, reserving more room and mapping the
        /// file again when it does not fit. A failure changes nothing.
        pub(super) fn put(&mut self, file: &File, at: u64, line: &[u8]) -> std::io::Result<()> {
            let Ok(at) = usize::try_from(at) else {
                return Err(std::io::Error::other("journal segment too large to map"));
            };
            let end = at + line.len();
            if end > self.0.len() {
                let room = end.next_power_of_two().max(2 * self.0.len());
                allocate(file, room as u64)?;
                // The old mapping stays valid until replaced: the file only grew.
                self.0 = map(file)?;
            }
            self.0[at..end].copy_from_slice(line);
            Ok(())
        }
    }

    /// Makes `file` `len` bytes long with every block allocated, so that a
    /// write through the mapping never meets a full disk.
    fn allocate(file: &File, len: u64) -> std::io::Result<()> {
        let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
        // SAFETY: plain system call on a file descriptor `file` keeps open.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn map(file: &File) -> std::io::Result<MmapMut> {
        // SAFETY: the mapping's memory must not change under us, nor the file
        // shrink below it (SIGBUS). The file is a segment this process
        // created (`create_new`, owner-only) in the journal folder it holds
        // the exclusive lock on; nothing else writes or cuts it, and this
        // process only cuts it after unmapping (`Segment::close`).
        unsafe { MmapMut::map_mut(file) }
    }
}

/// The numbers of the segment files in `dir`, in order. Other files are
/// ignored.
pub(super) fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".ndjson")?;
            (stem.len() == 20).then(|| stem.parse().ok()).flatten()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// The records of segment `n`, and how many of its lines could not be read
/// (cut short by a crash or a full disk, or edited by hand). Lines numbered
/// for another segment are skipped without being counted (see the module's
/// text). A missing file has no records.
fn read_segment(dir: &Path, n: u64) -> std::io::Result<(Vec<Record>, usize)> {
    let file = match File::open(segment_path(dir, n)) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    let mut bad = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        // A mapped segment ends in zero bytes it reserved and did not use.
        let Some(start) = line.iter().position(|b| *b != 0) else {
            continue;
        };
        let end = line.iter().rposition(|b| *b != 0).map_or(start, |i| i + 1);
        let line = &line[start..end];
        let json = match line.split_at_checked(TAG_LEN) {
            _ if line.starts_with(b"{") => line,
            Some((tag, json)) if tag.ends_with(b"\t") => {
                let number = std::str::from_utf8(&tag[..TAG_LEN - 1])
                    .ok()
                    .and_then(|digits| digits.parse::<u64>().ok());
                match number {
                    Some(number) if number == n => json,
                    Some(_) => continue,
                    None => {
                        bad += 1;
                        continue;
                    }
                }
            }
            _ => {
                bad += 1;
                continue;
            }
        };
        match serde_json::from_slice::<Record>(json) {
            Ok(r) => records.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}

/// The records of segments `numbers`, in order, and how many lines could not
/// be read; those are reported in the log, once for all. Fails on the first
/// segment that cannot be read, naming it.
pub(super) fn read_segments(
    dir: &Path,
    numbers: impl IntoIterator<Item = u64>,
) -> Result<Vec<Record>, (u64, std::io::Error)> {
    let mut records = Vec::new();
    let mut bad = 0;
    for n in numbers {
        let (r, b) = read_segment(dir, n).map_err(|e| (n, e))?;
        records.extend(r);
        bad += b;
    }
    if bad > 0 {
        tracing::warn!(
            journal = %dir.display(),
            lines = bad,
            "journal lines that were not whole records were skipped (a write cut short by a crash or a full disk)"
        );
    }
    Ok(records)
}

/// Deletes segment `n`; one already gone is fine.
pub(super) fn remove_segment(dir: &Path, n: u64) -> std::io::Result<()> {
    match std::fs::remove_file(segment_path(dir, n)) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The room a journal line gets to start with: a usual record's line is
/// 250 to 400 bytes.
const LINE_CAPACITY: usize = 512;

/// A record made ready for the journal: the record as it will be stored,
/// and its journal line.
pub(super) struct Prepared {
    pub(super) record: Record,
    pub(super) line: Vec<u8>,
}

/// `record` as one journal line: its free text scrubbed of anything shaped
/// like a credential (so no key reaches the journal either), then room for
/// the segment's number, JSON, a newline. The record is kept as the line says it (scrubbed, finite
/// numbers): the writer stores it from memory rather than reading the line
/// back. Takes the record, so that only text that held a credential is
/// copied.
pub(super) fn prepare(mut record: Record) -> Prepared {
    scrub_in_place(&mut record.client);
    scrub_in_place(&mut record.endpoint);
    if let Some(error) = record.error.as_mut() {
        scrub_in_place(error);
    }
    // JSON has no NaN or infinity (they would come back as null and the
    // line would not read): keep only numbers.
    record.ttfb_ms = record.ttfb_ms.filter(|v| v.is_finite());
    if !record.duration_ms.is_finite() {
        record.duration_ms = 0.0;
    }
    // A Record is strings, numbers and a timestamp: it always serializes.
    // Sized for a usual record at once rather than grown by doubling.
    let mut line = Vec::with_capacity(LINE_CAPACITY);
    // Room for the segment's number, written by `Segment::append`.
    line.resize(TAG_LEN - 1, b'0');
    line.push(b'\t');
    if serde_json::to_writer(&mut line, &record).is_err() {
        line.truncate(TAG_LEN);
    }
    line.push(b'\n');
    Prepared { record, line }
}

fn scrub_in_place(text: &mut String) {
    if let std::borrow::Cow::Owned(clean) = scrub::scrub(text) {
        *text = clean;
    }
}

/// Creates the journal folder of `db` and locks it for this process,
/// waiting up to [`BUSY_TIMEOUT`] for another process to let go. The lock
/// lasts as long as the returned file is open.
pub(super) fn lock(db: &Path) -> Result<(PathBuf, File), LedgerError> {
    let dir = dir_for(db);
    let io = |action: &'static str| {
        let dir = dir.clone();
        move |source| LedgerError::Journal {
            path: dir,
            action,
            source,
        }
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(io("create the folder"))?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(io("open the lock file"))?;
    const PAUSE: Duration = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok((dir, file)),
            Err(std::fs::TryLockError::WouldBlock) if waited < BUSY_TIMEOUT => {
                std::thread::sleep(PAUSE);
                waited += PAUSE;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LedgerError::InUse {
                    path: db.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock the folder")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(client: &str) -> Record {
        Record {
            started_at: jiff::Timestamp::from_second(1_793_491_200).expect("in range"),
            client: client.into(),
            api: "ollama".into(),
            endpoint: "/api/chat".into(),
            requested_model: Some("qwen3:8b".into()),
            machine: Some("macmini".into()),
            fallback_depth: 0,
            stream: false,
            usage: None,
            ttfb_ms: Some(1.5),
            duration_ms: 2.5,
            status: 200,
            outcome: "ok".into(),
            error: None,
        }
    }

    fn clients(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.client.as_str()).collect()
    }

    /// Both ways of appending: lines in order, the file exactly its lines
    /// once closed.
    #[test]
    fn appended_lines_read_back_mapped_or_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (n, written) in [(1, false), (2, true)] {
            let mut segment = if written {
                Segment::create_written(dir.path(), n)
            } else {
                Segment::create(dir.path(), n)
            }
            .expect("created");
            assert_eq!(
                segment.is_mapped(),
                cfg!(target_os = "linux") && !written,
                "segment {n}"
            );
            let mut bytes = 0;
            for client in ["a", "b", "c"] {
                let mut line = prepare(record(client)).line;
                bytes += line.len() as u64;
                segment.append(&mut line).expect("appended");
            }
            segment.close();
            let path = segment_path(dir.path(), n);
            assert_eq!(std::fs::metadata(&path).expect("file").len(), bytes);
            let (records, bad) = read_segment(dir.path(), n).expect("read");
            assert_eq!((clients(&records), bad), (vec!["a", "b", "c"], 0));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_mapped_segment_reserves_more_room_when_its_lines_outgrow_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut segment = Segment::create(dir.path(), 7).expect("created");
        assert!(segment.is_mapped());
        let path = segment_path(dir.path(), 7);
        assert_eq!(std::fs::metadata(&path).expect("file").len(), MAPPED_ROOM);
        let mut bytes = 0;
        let mut n = 0;
        while bytes <= MAPPED_ROOM + MAPPED_ROOM / 2 {
            let mut line = prepare(record(&format!("client {n} {}", "x".repeat(400)))).line;
            bytes += line.len() as u64;
            segment.append(&mut line).expect("appended");
            n += 1;
        }
        assert_eq!(
            std::fs::metadata(&path).expect("file").len(),
            2 * MAPPED_ROOM
        );
        segment.close();
        assert_eq!(std::fs::metadata(&path).expect("file").len(), bytes);
        let (records, bad) = read_segment(dir.path(), 7).expect("read");
        assert_eq!((records.len(), bad), (n, 0));
        assert!(
            records[n - 1]
                .client
                .starts_with(&format!("client {} ", n - 1))
        );
    }

    /// What a process killed while appending leaves: the lines, one cut
    /// short, then the zero bytes of the room it had reserved.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_segment_left_by_a_crash_reads_its_lines_and_skips_its_zero_tail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut segment = Segment::create(dir.path(), 3).expect("created");
        for client in ["a", "b"] {
            segment
                .append(&mut prepare(record(client)).line)
                .expect("appended");
        }
        let mut cut = prepare(record("cut")).line;
        let half = cut.len() / 2;
        segment.append(&mut cut[..half]).expect("appended");
        // Dropped without being closed, as a crash leaves it.
        drop(segment);
        let path = segment_path(dir.path(), 3);
        assert_eq!(std::fs::metadata(&path).expect("file").len(), MAPPED_ROOM);
        let (records, bad) = read_segment(dir.path(), 3).expect("read");
        assert_eq!((clients(&records), bad), (vec!["a", "b"], 1));
    }

    /// A stored segment kept as the spare and reused: its earlier lines are
    /// gone, and a crash of its second life leaves only the new ones to
    /// read.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_recycled_segment_holds_only_the_lines_of_its_new_number() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut first = Segment::create(dir.path(), 4).expect("created");
        for client in ["old 1", "old 2", "old 3"] {
            first
                .append(&mut prepare(record(client)).line)
                .expect("appended");
        }
        let spare = first.recycle(dir.path()).ok().expect("kept as the spare");
        assert!(!segment_path(dir.path(), 4).exists());
        let bytes = std::fs::read(spare_path(dir.path())).expect("spare");
        assert!(bytes.iter().all(|b| *b == 0), "emptied");
        assert_eq!(segments(dir.path()).expect("listed"), Vec::<u64>::new());

        let mut second = spare.reuse(dir.path(), 9).expect("reused");
        assert!(!spare_path(dir.path()).exists());
        second
            .append(&mut prepare(record("new")).line)
            .expect("appended");
        // Dropped without being closed, as a crash leaves it.
        drop(second);
        assert_eq!(segments(dir.path()).expect("listed"), vec![9]);
        let (records, bad) = read_segment(dir.path(), 9).expect("read");
        assert_eq!((clients(&records), bad), (vec!["new"], 0));
    }

    /// A written segment is never kept: every one is deleted once stored.
    #[test]
    fn a_written_segment_is_not_kept_as_the_spare() {
        let dir = tempfile::tempdir().expect("temp dir");
        let segment = Segment::create_written(dir.path(), 5).expect("created");
        assert!(segment.recycle(dir.path()).is_err());
        assert!(segment_path(dir.path(), 5).exists());
    }

    /// What a reused file holds when the machine lost power before its
    /// emptying reached the disk: lines of its earlier number, skipped as
    /// stored already, not as damage. Bare JSON lines (earlier versions) are
    /// the segment's own.
    #[test]
    fn lines_of_another_segment_are_skipped_and_bare_json_lines_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tagged = |n: u64, client: &str| {
            let mut line = prepare(record(client)).line;
            put_tag(&mut line, n);
            line
        };
        let bare = |client: &str| prepare(record(client)).line[TAG_LEN..].to_vec();
        let mut bytes = tagged(12, "mine 1");
        bytes.extend(tagged(11, "stored in 11"));
        bytes.extend(bare("from an earlier version"));
        bytes.extend(tagged(12, "mine 2"));
        // Zeros before a line: room a failed mapping had reserved.
        bytes.extend([0; 16]);
        bytes.extend(tagged(12, "after zeros"));
        bytes.extend(b"not a line of the journal\n");
        bytes.extend(b"00000000000000000x12\t{}\n");
        std::fs::write(segment_path(dir.path(), 12), bytes).expect("written");
        let (records, bad) = read_segment(dir.path(), 12).expect("read");
        assert_eq!(
            (clients(&records), bad),
            (
                vec!["mine 1", "from an earlier version", "mine 2", "after zeros"],
                2
            )
        );
    }

    /// The writer stores the prepared record from memory and recovery reads
    /// the line: both must be the same record.
    #[test]
    fn the_prepared_record_is_what_its_line_reads_back_as() {
        let record = Record {
            started_at: jiff::Timestamp::from_nanosecond(1_793_491_200_123_456_789)
                .expect("in range"),
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
        let Prepared { record, line } = prepare(record);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let read: Record = serde_json::from_slice(&line[TAG_LEN..]).expect("reads back");
        assert_eq!(read, record);
        let text = String::from_utf8(line).expect("UTF-8");
        assert!(
            text.starts_with(&format!("{}\t{{", "0".repeat(20))),
            "{text}"
        );
        assert!(!text.contains("abcdefghijklmnop"), "scrubbed: {text}");
        assert_eq!((record.ttfb_ms, record.duration_ms), (None, 0.0));
        assert_eq!(record.started_at.as_nanosecond(), 1_793_491_200_123_456_789);
    }
}
