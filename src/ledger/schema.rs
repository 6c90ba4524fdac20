//! The ledger's file: opening it safely, its schema, and its migrations.

use std::path::Path;

use jiff::Timestamp;
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, Row};

use super::{BUSY_TIMEOUT, LedgerError, Record};
use crate::sqlite::OwnFile;
use crate::usage::Usage;

/// `PRAGMA application_id` of a ClawFleet ledger (`CFLG`): tells our file
/// from another program's SQLite database.
const APPLICATION_ID: i64 = 0x4346_4C47;

/// The ledger, as its messages name it.
const LEDGER: OwnFile = OwnFile {
    name: "ledger",
    aside: "ClawFleet will create a new ledger there",
};

/// Migrations, in order: `MIGRATIONS[i]` takes the schema from version `i` to
/// `i + 1`. Append, never edit: a released step has already run on someone's
/// file.
const MIGRATIONS: &[&str] = &[
    // v1: one row per proxied request. Times are integer microseconds since
    // the Unix epoch, UTC. The four token columns are all NULL when the
    // backend reported no usage. `id` is the order records were stored in.
    "CREATE TABLE requests (
        id                 INTEGER PRIMARY KEY,
        started_at_us      INTEGER NOT NULL,
        client             TEXT    NOT NULL,
        api                TEXT    NOT NULL,
        endpoint           TEXT    NOT NULL,
        requested_model    TEXT,
        machine            TEXT,
        fallback_depth     INTEGER NOT NULL,
        stream             INTEGER NOT NULL,
        input_tokens       INTEGER,
        output_tokens      INTEGER,
        cache_read_tokens  INTEGER,
        cache_write_tokens INTEGER,
        ttfb_ms            REAL,
        duration_ms        REAL    NOT NULL,
        status             INTEGER NOT NULL,
        outcome            TEXT    NOT NULL,
        error              TEXT
    );
    CREATE INDEX requests_by_time ON requests (started_at_us);
    CREATE INDEX requests_by_machine ON requests (machine, started_at_us);
    PRAGMA application_id = 1128680519;",
    // v2: no index by machine. Every query asks for a time range first, and
    // the index cost a page write per commit on the proxy's hot path.
    "DROP INDEX IF EXISTS requests_by_machine;",
    // v3: the journal of ClawFleet before 2026-12. `committed_segment` is
    // the newest journal segment whose records are all in `requests`, set in
    // the same transaction that stored them. The journal is gone; the table
    // stays, for opening to store what an older version left in it, once
    // (`ledger/legacy.rs`).
    "CREATE TABLE journal (
        id                INTEGER PRIMARY KEY CHECK (id = 1),
        committed_segment INTEGER NOT NULL
    );
    INSERT INTO journal (id, committed_segment) VALUES (1, 0);",
];

/// The schema version this build writes (`PRAGMA user_version`). A file with a
/// higher version is refused, untouched.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The columns of a [`Record`], in the order of [`INSERT`] and
/// [`record_from_row`].
pub(super) const RECORD_COLUMNS: &str = "started_at_us, client, api, endpoint, requested_model, \
     machine, fallback_depth, stream, input_tokens, output_tokens, cache_read_tokens, \
     cache_write_tokens, ttfb_ms, duration_ms, status, outcome, error";

pub(super) const INSERT: &str = "INSERT INTO requests (started_at_us, client, api, endpoint, \
     requested_model, machine, fallback_depth, stream, input_tokens, output_tokens, \
     cache_read_tokens, cache_write_tokens, ttfb_ms, duration_ms, status, outcome, error) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// Opens the read-write connection: checks what the file is before changing
/// anything ([`crate::sqlite::open_checked`]), then migrates.
pub(super) fn open_writer(path: &Path) -> Result<Connection, LedgerError> {
    let opened =
        crate::sqlite::open_checked(&LEDGER, path, APPLICATION_ID, SCHEMA_VERSION, BUSY_TIMEOUT)?;
    let mut conn = opened.conn;
    migrate(&mut conn, opened.version).map_err(|source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        action: "migrate the schema",
        source,
    })?;
    Ok(conn)
}

/// Applies every migration after version `from`, each in its own transaction with
/// its version bump, so an interrupted upgrade leaves a consistent version.
fn migrate(conn: &mut Connection, from: i64) -> rusqlite::Result<()> {
    for (version, step) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= from) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process opening the same new file may have migrated it
        // while we waited for the write lock.
        let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if current >= version {
            continue;
        }
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

/// Opens the read-only connection used for statistics and listings. Called
/// after [`open_writer`], so the file exists and is in WAL mode.
pub(super) fn open_reader(path: &Path) -> Result<Connection, LedgerError> {
    let sqlite = |action| {
        move |source| LedgerError::Sqlite {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("open for reading"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite("set busy_timeout"))?;
    Ok(conn)
}

/// Reads a [`Record`] from a row selected with [`RECORD_COLUMNS`].
pub(super) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let started_at_us: i64 = row.get(0)?;
    let started_at = Timestamp::from_microsecond(started_at_us)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Integer, Box::new(e)))?;
    let tokens = |i: usize| -> rusqlite::Result<Option<u64>> {
        // Never negative as we write them; a hand-edited negative reads as 0.
        Ok(row
            .get::<_, Option<i64>>(i)?
            .map(|n| u64::try_from(n).unwrap_or(0)))
    };
    let (input, output, cache_read, cache_write) =
        (tokens(8)?, tokens(9)?, tokens(10)?, tokens(11)?);
    let usage = if [input, output, cache_read, cache_write]
        .iter()
        .all(Option::is_none)
    {
        None
    } else {
        Some(Usage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cache_read_tokens: cache_read.unwrap_or(0),
            cache_write_tokens: cache_write.unwrap_or(0),
        })
    };
    Ok(Record {
        started_at,
        client: row.get(1)?,
        api: row.get(2)?,
        endpoint: row.get(3)?,
        requested_model: row.get(4)?,
        machine: row.get(5)?,
        fallback_depth: row.get(6)?,
        stream: row.get(7)?,
        usage,
        ttfb_ms: row.get(12)?,
        duration_ms: row.get(13)?,
        status: row.get(14)?,
        outcome: row.get(15)?,
        error: row.get(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_id_in_v1_matches_the_constant() {
        assert!(MIGRATIONS[0].contains(&format!("application_id = {APPLICATION_ID};")));
    }
}
