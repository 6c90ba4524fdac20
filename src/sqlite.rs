//! Opening ClawFleet's SQLite files (the ledger, the cost store, the event
//! log) one way: look at the header before changing anything, so that a
//! file that is not ours comes out byte for byte as it went in; refuse a
//! file from a newer ClawFleet; then WAL and `synchronous = NORMAL`. Each
//! file's own module migrates and says what went wrong in its own error.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

/// Why a file could not be opened; each caller names its file.
#[derive(Debug)]
pub enum OpenError {
    /// SQLite failed while doing `action`.
    Sqlite {
        action: &'static str,
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database, or another program's.
    NotOurs { reason: String },
    /// Written by a newer ClawFleet: schema `found`, this build knows `known`.
    TooNew { found: i64, known: i64 },
}

/// A file opened read-write and checked, at schema version `version`
/// (0 for a new file), not yet migrated.
pub struct Opened {
    pub conn: Connection,
    pub version: i64,
    /// The journal mode in effect: `wal`, unless the file system cannot do
    /// it (a network share; said in the log).
    pub journal_mode: String,
}

/// Opens `path` read-write (creating it), with `busy` as SQLite's busy
/// timeout, and checks it: an existing file must carry `application_id`
/// and a `user_version` of at most `known`.
pub fn open_checked(
    path: &Path,
    application_id: i64,
    known: i64,
    busy: Duration,
) -> Result<Opened, OpenError> {
    let sqlite = |action| move |source| OpenError::Sqlite { action, source };
    let conn = Connection::open(path).map_err(sqlite("open"))?;
    conn.busy_timeout(busy)
        .map_err(sqlite("set busy_timeout"))?;
    // A read-only look first: nothing is written to a file that is not ours.
    let header = conn.query_row(
        "SELECT (SELECT user_version FROM pragma_user_version), \
                (SELECT application_id FROM pragma_application_id), \
                (SELECT count(*) FROM sqlite_schema)",
        [],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        },
    );
    let (version, found_id, objects) = match header {
        Ok(h) => h,
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            return Err(OpenError::NotOurs {
                reason: "not a SQLite database".into(),
            });
        }
        Err(e) => return Err(sqlite("read the schema version")(e)),
    };
    if objects > 0 && found_id != application_id {
        return Err(OpenError::NotOurs {
            reason: format!(
                "a SQLite database of another program (application_id {found_id:#x}, user_version {version})"
            ),
        });
    }
    if version > known {
        return Err(OpenError::TooNew {
            found: version,
            known,
        });
    }
    let journal_mode = switch_to_wal(&conn, busy).map_err(sqlite("switch to WAL"))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        // Some file systems (network shares) cannot do WAL. Rollback journal
        // with synchronous=NORMAL is still safe against a killed process.
        tracing::warn!(file = %path.display(), journal_mode = %journal_mode, "this SQLite file could not use WAL");
    }
    // Safe against a killed process in WAL and rollback modes alike.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite("set synchronous=NORMAL"))?;
    Ok(Opened {
        conn,
        version,
        journal_mode,
    })
}

/// Sets `journal_mode=WAL` and returns the mode in effect.
///
/// Changing the journal mode needs the file to itself, and SQLite answers
/// `SQLITE_BUSY` at once instead of calling the busy handler: when another
/// process opens the same new file at the same moment, retry for up to
/// `busy`. A file already in WAL mode never waits.
fn switch_to_wal(conn: &Connection, busy: Duration) -> rusqlite::Result<String> {
    const PAUSE: Duration = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && waited < busy => {
                std::thread::sleep(PAUSE);
                waited += PAUSE;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: i64 = 0x5445_5354;

    fn open(path: &Path, known: i64) -> Result<Opened, OpenError> {
        open_checked(path, ID, known, Duration::from_millis(100))
    }

    #[test]
    fn a_new_file_is_opened_in_wal_at_version_zero() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open(&dir.path().join("new.sqlite"), 1).unwrap();
        assert_eq!((opened.version, opened.journal_mode.as_str()), (0, "wal"));
    }

    #[test]
    fn files_that_are_not_ours_or_too_new_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.sqlite");
        std::fs::write(&text, b"not a database at all, just text").unwrap();
        match open(&text, 1) {
            Err(OpenError::NotOurs { reason }) => assert_eq!(reason, "not a SQLite database"),
            other => panic!("{:?}", other.err()),
        }
        assert_eq!(
            std::fs::read(&text).unwrap(),
            b"not a database at all, just text"
        );

        let other = dir.path().join("other.sqlite");
        Connection::open(&other)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t (x); PRAGMA application_id = 7; PRAGMA user_version = 3;",
            )
            .unwrap();
        let before = std::fs::read(&other).unwrap();
        match open(&other, 1) {
            Err(OpenError::NotOurs { reason }) => assert_eq!(
                reason,
                "a SQLite database of another program (application_id 0x7, user_version 3)"
            ),
            other => panic!("{:?}", other.err()),
        }
        assert_eq!(std::fs::read(&other).unwrap(), before);

        let newer = dir.path().join("newer.sqlite");
        Connection::open(&newer)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE t (x); PRAGMA application_id = {ID}; PRAGMA user_version = 9;"
            ))
            .unwrap();
        assert!(matches!(
            open(&newer, 2),
            Err(OpenError::TooNew { found: 9, known: 2 })
        ));
        assert!(open(&newer, 9).is_ok());
    }
}
