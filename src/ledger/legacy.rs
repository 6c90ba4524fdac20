//! The journal of ClawFleet before 2026-12, read once when the ledger opens,
//! so that users who upgrade keep the records an older version left in it.
//!
//! That version wrote each record to a folder beside the database
//! (`ledger.sqlite-pending/`) before storing it in SQLite: numbered segment
//! files of lines, one [`Record`] per line, already scrubbed — the segment's
//! number (20 digits), a tab, the record as JSON (bare JSON before that). It
//! stored a segment's records in one transaction that also set the ledger's
//! `journal.committed_segment` to that segment's number, then deleted the
//! file, or zeroed it and kept it as `spare` for reuse. So a segment numbered
//! at most `committed_segment` is stored already; a later one is not.
//!
//! [`import`] stores the segments not yet stored, in one transaction that
//! also sets `committed_segment` (so a crash before the files are deleted
//! stores nothing twice on the next open), then deletes the folder. A line
//! cut short by a crash, the zero bytes a mapped segment had reserved, and
//! lines numbered for another segment (a reused file whose emptying had not
//! reached the disk) are skipped, as that version did.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use super::{LedgerError, Record};

/// The journal folder of the ledger at `db`: `<db>-pending`, beside it.
pub(super) fn dir_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-pending");
    db.with_file_name(name)
}

/// The file of segment `n`: zero-padded so that names sort as numbers do.
fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.ndjson"))
}

/// The length of a line's segment number and the tab after it.
const TAG_LEN: usize = 21;

/// The numbers of the segment files in `dir`, in order. Other files are
/// ignored.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
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
            Ok(r) => records.push(super::prepare(r)),
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}

/// Stores what an older ClawFleet left in the journal folder beside the
/// ledger at `db`, once, and deletes the folder. Nothing to do when there is
/// none. While an older ClawFleet still writes it (it holds the folder's
/// `lock`), waits up to [`super::BUSY_TIMEOUT`] for it, then fails with
/// [`LedgerError::InUse`].
pub(super) fn import(db: &Path, conn: &mut Connection) -> Result<(), LedgerError> {
    let dir = dir_for(db);
    if !dir.is_dir() {
        return Ok(());
    }
    let io = |action: &'static str| {
        let dir = dir.clone();
        move |source| LedgerError::Journal {
            path: dir,
            action,
            source,
        }
    };
    let lock = lock_if_present(db, &dir.join("lock"))?;
    let found = segments(&dir).map_err(io("list the segments"))?;
    let mut records = Vec::new();
    let mut bad = 0;
    let mut newest = 0;
    // Read before the transaction: the write lock is held only to store.
    let committed = committed_segment(conn).map_err(|source| LedgerError::Sqlite {
        path: db.to_path_buf(),
        action: "read the journal state",
        source,
    })?;
    for &n in found.iter().filter(|n| **n > committed) {
        let (r, b) = read_segment(&dir, n).map_err(io("read a segment"))?;
        records.extend(r);
        bad += b;
        newest = n;
    }
    if bad > 0 {
        tracing::warn!(
            journal = %dir.display(),
            lines = bad,
            "journal lines that were not whole records were skipped (a write cut short by a crash or a full disk)"
        );
    }
    if newest > 0 {
        store(conn, &records, newest).map_err(|source| LedgerError::Sqlite {
            path: db.to_path_buf(),
            action: "store the records an older ClawFleet left in its journal",
            source,
        })?;
        tracing::info!(
            ledger = %db.display(),
            records = records.len(),
            "stored the records an older ClawFleet left in its journal ({})",
            dir.display()
        );
    }
    // Windows deletes no open file: the lock goes first.
    drop(lock);
    for n in &found {
        remove(&segment_path(&dir, *n)).map_err(io("delete a stored segment"))?;
    }
    for name in ["spare", "lock"] {
        remove(&dir.join(name)).map_err(io("delete a file"))?;
    }
    if let Err(e) = std::fs::remove_dir(&dir) {
        // Only files we do not know are left; what we stored is marked
        // stored, so the next open stores nothing twice.
        tracing::warn!(journal = %dir.display(), "cannot delete the old journal folder: {e}");
    }
    Ok(())
}

/// Stores `records` in one transaction that also marks segment `newest` and
/// all before it as stored, unless another process did so meanwhile.
fn store(conn: &mut Connection, records: &[Record], newest: u64) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if committed_segment(&tx)? < newest {
        super::insert_rows(&tx, records)?;
        tx.execute(
            "UPDATE journal SET committed_segment = ?1 WHERE id = 1",
            [i64::try_from(newest).unwrap_or(i64::MAX)],
        )?;
    }
    tx.commit()
}

/// The newest journal segment whose records are all stored.
fn committed_segment(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT committed_segment FROM journal WHERE id = 1",
        [],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Deletes `path`; one already gone is fine.
fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Locks the older version's lock file, when there is one, waiting up to
/// [`super::BUSY_TIMEOUT`] for an older ClawFleet that still holds it.
fn lock_if_present(db: &Path, path: &Path) -> Result<Option<File>, LedgerError> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LedgerError::Journal {
                path: path.to_path_buf(),
                action: "open the lock file",
                source,
            });
        }
    };
    super::lock_file(db, &file, path)?;
    Ok(Some(file))
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

    fn line(n: Option<u64>, client: &str) -> Vec<u8> {
        let mut line = match n {
            Some(n) => format!("{n:020}\t").into_bytes(),
            None => Vec::new(),
        };
        serde_json::to_writer(&mut line, &record(client)).expect("serializes");
        line.push(b'\n');
        line
    }

    /// What an older version's files hold: its own lines, a reused file's
    /// lines of an earlier number (stored already), bare JSON lines (older
    /// still), the zeros a mapped file reserved, damage.
    #[test]
    fn lines_of_another_segment_and_zeros_are_skipped_bare_json_lines_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut bytes = line(Some(12), "mine 1");
        bytes.extend(line(Some(11), "stored in 11"));
        bytes.extend(line(None, "from an earlier version"));
        bytes.extend(line(Some(12), "mine 2"));
        bytes.extend([0; 16]);
        bytes.extend(line(Some(12), "after zeros"));
        bytes.extend(b"not a line of the journal\n");
        bytes.extend(b"00000000000000000x12\t{}\n");
        let cut = line(Some(12), "cut short");
        bytes.extend(&cut[..cut.len() / 2]);
        bytes.extend([0; 4096]);
        std::fs::write(segment_path(dir.path(), 12), bytes).expect("written");
        let (records, bad) = read_segment(dir.path(), 12).expect("read");
        let clients: Vec<&str> = records.iter().map(|r| r.client.as_str()).collect();
        assert_eq!(
            (clients, bad),
            (
                vec!["mine 1", "from an earlier version", "mine 2", "after zeros"],
                3
            )
        );
        assert_eq!(read_segment(dir.path(), 13).expect("none").0, vec![]);
    }
}
