//! Opening ClawFleet's SQLite files (the ledger, the cost store, the event
//! log) one way: look at the header before changing anything, so that a
//! file that is not ours comes out byte for byte as it went in; refuse a
//! file from a newer ClawFleet; then WAL and `synchronous = NORMAL`. Each
//! file's own module migrates.
//!
//! And what a SQLite error means, said one way for every file, ours or
//! another program's: [`Cause`] sorts an error (locked, not a database,
//! corrupt, cannot be opened, the disk), [`explain`] puts it in words,
//! [`newer_schema`] words a schema this build does not know, and
//! [`OpenError`] is the whole message for one of our files that could not
//! be opened: which file, what is wrong, what to do. Each module's error
//! wraps these and keeps its own context.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

/// What a SQLite error says about the file, sorted once for every module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Another connection holds a lock (`SQLITE_BUSY`, `SQLITE_LOCKED`):
    /// trying again later can work.
    Locked,
    /// Not a SQLite database (`SQLITE_NOTADB`).
    NotADatabase,
    /// A SQLite database, damaged (`SQLITE_CORRUPT`).
    Corrupt,
    /// The file cannot be opened, or not for what was asked
    /// (`SQLITE_CANTOPEN`, `SQLITE_READONLY`, `SQLITE_PERM`).
    CannotOpen,
    /// The disk failed or is full (`SQLITE_IOERR`, `SQLITE_FULL`).
    Disk,
    /// Anything else (a bad statement, a constraint): SQLite's own words.
    Other,
}

impl Cause {
    /// Sorts `e`.
    pub fn of(e: &rusqlite::Error) -> Cause {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Cause::Locked,
            Some(ErrorCode::NotADatabase) => Cause::NotADatabase,
            Some(ErrorCode::DatabaseCorrupt) => Cause::Corrupt,
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
                Cause::CannotOpen
            }
            Some(ErrorCode::SystemIoFailure | ErrorCode::DiskFull) => Cause::Disk,
            _ => Cause::Other,
        }
    }
}

/// The words for a file that is not a SQLite database at all.
pub const NOT_A_DATABASE: &str = "not a SQLite database";

/// `e` in words: what it means for the file, then SQLite's own message.
pub fn explain(e: &rusqlite::Error) -> Explained<'_> {
    Explained(e)
}

/// A SQLite error in words (see [`explain`]).
pub struct Explained<'a>(&'a rusqlite::Error);

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        match Cause::of(e) {
            Cause::Locked => write!(f, "locked by another connection ({e})"),
            Cause::NotADatabase => f.write_str(NOT_A_DATABASE),
            Cause::Corrupt => write!(f, "corrupt ({e})"),
            Cause::CannotOpen => write!(f, "cannot be opened ({e})"),
            Cause::Disk => write!(f, "the disk failed ({e})"),
            Cause::Other => write!(f, "{e}"),
        }
    }
}

/// A schema version newer than this build reads, in words:
/// "schema version 9 is newer than this ClawFleet reads (up to 2)".
pub fn newer_schema(found: i64, known: i64) -> String {
    format!("schema version {found} is newer than this ClawFleet reads (up to {known})")
}

/// One of ClawFleet's own SQLite files, as its messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnFile {
    /// What it is: `"ledger"`, `"cost store"`, `"event log"`.
    pub name: &'static str,
    /// What follows when the file is moved aside, said after "move it
    /// aside and": `"ClawFleet will create a new ledger there"`.
    pub aside: &'static str,
}

/// Why one of ClawFleet's own files could not be opened. The message names
/// the file, says what is wrong and what to do; a file refused (not ours,
/// or from a newer ClawFleet) was left untouched.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite failed while doing `action`.
    #[error("{} {}: cannot {action}: {}", file.name, path.display(), explain(source))]
    Sqlite {
        /// Which file.
        file: &'static OwnFile,
        /// Where.
        path: PathBuf,
        /// What we were doing (`open`, `switch to WAL`, ...).
        action: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database, or another program's.
    #[error(
        "{} is not a ClawFleet {} ({reason}); it was left untouched: move it aside and {}",
        path.display(), file.name, file.aside
    )]
    NotOurs {
        /// Which file it should have been.
        file: &'static OwnFile,
        /// Where.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// Written by a newer ClawFleet: schema `found`, this build knows `known`.
    #[error(
        "the {} {}: {}; it was left untouched: upgrade ClawFleet, or move the file aside and {}",
        file.name, path.display(), newer_schema(*found, *known), file.aside
    )]
    TooNew {
        /// Which file.
        file: &'static OwnFile,
        /// Where.
        path: PathBuf,
        /// Its `PRAGMA user_version`.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
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

/// Opens `file` at `path` read-write (creating it), with `busy` as
/// SQLite's busy timeout, and checks it: an existing file must carry
/// `application_id` and a `user_version` of at most `known`.
pub fn open_checked(
    file: &'static OwnFile,
    path: &Path,
    application_id: i64,
    known: i64,
    busy: Duration,
) -> Result<Opened, OpenError> {
    let sqlite = |action| {
        move |source| OpenError::Sqlite {
            file,
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let not_ours = |reason: String| OpenError::NotOurs {
        file,
        path: path.to_path_buf(),
        reason,
    };
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
        Err(e) if Cause::of(&e) == Cause::NotADatabase => {
            return Err(not_ours(NOT_A_DATABASE.to_owned()));
        }
        Err(e) => return Err(sqlite("read the schema version")(e)),
    };
    if objects > 0 && found_id != application_id {
        return Err(not_ours(format!(
            "a SQLite database of another program (application_id {found_id:#x}, user_version {version})"
        )));
    }
    if version > known {
        return Err(OpenError::TooNew {
            file,
            path: path.to_path_buf(),
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
    const FILE: OwnFile = OwnFile {
        name: "test file",
        aside: "ClawFleet will create a new one there",
    };

    fn open(path: &Path, known: i64) -> Result<Opened, OpenError> {
        open_checked(&FILE, path, ID, known, Duration::from_millis(100))
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
            Err(e @ OpenError::NotOurs { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "{} is not a ClawFleet test file (not a SQLite database); it was left untouched: \
                     move it aside and ClawFleet will create a new one there",
                    text.display()
                )
            ),
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
            Err(OpenError::NotOurs { reason, .. }) => assert_eq!(
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
        match open(&newer, 2) {
            Err(
                e @ OpenError::TooNew {
                    found: 9, known: 2, ..
                },
            ) => assert_eq!(
                e.to_string(),
                format!(
                    "the test file {}: schema version 9 is newer than this ClawFleet reads (up to 2); \
                     it was left untouched: upgrade ClawFleet, or move the file aside and ClawFleet \
                     will create a new one there",
                    newer.display()
                )
            ),
            other => panic!("{:?}", other.err()),
        }
        assert!(open(&newer, 9).is_ok());
    }

    #[test]
    fn a_lock_held_by_another_connection_is_said_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.sqlite");
        let holder = open(&path, 1).unwrap().conn;
        holder
            .execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
            .unwrap();
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        let e = other.execute("INSERT INTO t VALUES (2)", []).unwrap_err();
        assert_eq!(Cause::of(&e), Cause::Locked);
        assert!(
            explain(&e)
                .to_string()
                .starts_with("locked by another connection ("),
            "{}",
            explain(&e)
        );
        holder.execute_batch("COMMIT").unwrap();
        other.execute("INSERT INTO t VALUES (2)", []).unwrap();
    }
}
