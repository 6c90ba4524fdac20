//! The ledger's journal: where a record is written first, by the task that
//! records it, before it reaches SQLite.
//!
//! The journal is a folder beside the database (`ledger.sqlite-pending/`)
//! holding numbered segment files of JSON lines, one [`Record`] per line,
//! already scrubbed. Exactly one segment is *active*: records are appended to
//! it with one `write` each. The writer thread *rotates* it (a fresh segment
//! becomes active), stores the rotated segment's records in SQLite in one
//! transaction that also sets the ledger's `journal.committed_segment` to
//! that segment's number, and then deletes the file.
//!
//! So at any moment a record is in a segment file, or committed in SQLite, or
//! both (between the commit and the deletion); never in neither. When the
//! ledger opens, segments numbered at most `committed_segment` are already
//! stored and are deleted; later ones are stored first. A line cut short by a
//! crash or a full disk is skipped with a warning.
//!
//! The folder also holds `lock`, locked exclusively by the process writing
//! the ledger: two writers would number their segments over each other.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind};
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

/// Creates segment `n`, empty, for appending; readable by the owner only.
pub(super) fn create_segment(dir: &Path, n: u64) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(segment_path(dir, n))
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
/// (cut short by a crash or a full disk, or edited by hand). A missing file
/// has no records.
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
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
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
/// like a credential (so no key reaches the journal either), then JSON, then
/// a newline. The record is kept as the line says it (scrubbed, finite
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
    if serde_json::to_writer(&mut line, &record).is_err() {
        line.clear();
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
        let read: Record = serde_json::from_slice(&line).expect("reads back");
        assert_eq!(read, record);
        let text = String::from_utf8(line).expect("UTF-8");
        assert!(!text.contains("abcdefghijklmnop"), "scrubbed: {text}");
        assert_eq!((record.ttfb_ms, record.duration_ms), (None, 0.0));
        assert_eq!(record.started_at.as_nanosecond(), 1_793_491_200_123_456_789);
    }
}
