//! Reading files that belong to another program (the agent's config, its
//! `.env` files, its lock files): one way, bounded, never blocking.
//!
//! The file is opened without blocking (`O_NONBLOCK` on Unix, so a FIFO put
//! where a config should be does not hang the probe), then checked through
//! the opened handle: it must be a regular file (not a FIFO, a device or a
//! folder) of at most `limit` bytes. Symbolic links are followed, as the
//! program that owns the file follows them; the check is on what was
//! opened, never on the path a second time. Reading stops at `limit` bytes
//! even when the file grows meanwhile.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why an outside file could not be read. Never carries its content.
#[derive(Debug, thiserror::Error)]
pub enum OutsideFileError {
    /// No such file.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// It could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is a FIFO, a device, a socket or a folder.
    #[error("{} is not a regular file ({kind}); it was not read", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// It is larger than the limit.
    #[error("{} is larger than {limit} bytes; it was not read", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// It is not UTF-8 text.
    #[error("{} is not UTF-8 text (byte {at} is not)", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// The first offending byte.
        at: usize,
    },
}

impl OutsideFileError {
    /// Whether the file simply is not there.
    pub fn is_missing(&self) -> bool {
        matches!(self, OutsideFileError::Missing { .. })
    }
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() { "a folder" } else { "not a file" }
}

/// Opens `path` for reading without blocking and checks through the handle
/// that it is a regular file of at most `limit` bytes; the handle and what
/// it says of the file.
pub fn open(
    path: &Path,
    limit: u64,
) -> Result<(std::fs::File, std::fs::Metadata), OutsideFileError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            OutsideFileError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            OutsideFileError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let meta = file.metadata().map_err(|source| OutsideFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(OutsideFileError::NotAFile {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(OutsideFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok((file, meta))
}

/// The bytes of `path`, at most `limit` of them (see the module doc).
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, OutsideFileError> {
    let (file, meta) = open(path, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| OutsideFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(OutsideFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// The text of `path` (UTF-8, a leading byte-order mark dropped), at most
/// `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String, OutsideFileError> {
    let bytes = read(path, limit)?;
    let text = String::from_utf8(bytes).map_err(|e| OutsideFileError::NotText {
        path: path.to_path_buf(),
        at: e.utf8_error().valid_up_to(),
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// Opens another program's SQLite database for reading while it writes:
/// looked at first through a non-blocking handle (a FIFO would block
/// SQLite's open; a file that is not SQLite is said so plainly), then opened
/// `mode=ro` (never `immutable`, which would ignore the WAL, where the
/// newest rows are) with `query_only`, no checkpoint on close and a short
/// busy timeout. Its `-wal` and `-shm` files are never created, replaced or
/// removed by this connection. The caller checks the schema.
pub fn open_sqlite_read_only(
    path: &Path,
    busy: std::time::Duration,
) -> Result<rusqlite::Connection, String> {
    use rusqlite::{Connection, OpenFlags};
    let (mut f, _) = open(path, u64::MAX).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 16];
    if f.read_exact(&mut magic).is_err() || &magic != b"SQLite format 3\0" {
        return Err(format!(
            "{} is {}",
            path.display(),
            crate::sqlite::NOT_A_DATABASE
        ));
    }
    drop(f);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    #[cfg(unix)]
    let conn = Connection::open_with_flags(read_only_uri(path), flags);
    #[cfg(not(unix))]
    let conn = Connection::open_with_flags(path, flags);
    let conn = conn.map_err(|e| {
        format!(
            "cannot open {} read-only: {}",
            path.display(),
            crate::sqlite::explain(&e)
        )
    })?;
    // A read-only connection cannot checkpoint anyway; this says so twice.
    let _ = conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    );
    conn.busy_timeout(busy)
        .and_then(|()| conn.pragma_update(None, "query_only", true))
        .map_err(|e| {
            format!(
                "cannot set up reading {}: {}",
                path.display(),
                crate::sqlite::explain(&e)
            )
        })?;
    Ok(conn)
}

/// `file:<path>?mode=ro`, the path percent-encoded.
#[cfg(unix)]
pub fn read_only_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// The deepest nesting of objects and lists accepted in an outside JSON5
/// file. A real agent config is under 10 deep; the parser recurses once per
/// level, so a file nested 10,000 deep (20 KB) would overflow the stack.
pub const MAX_JSON_DEPTH: usize = 128;

/// Parses JSON5 text from another program, refusing nesting deeper than
/// [`MAX_JSON_DEPTH`] before the parser sees it. The error says where (line
/// and column, 1-based) and what, never the text.
pub fn parse_json5(text: &str) -> Result<serde_json::Value, String> {
    if let Some((line, column)) = too_deep(text, MAX_JSON_DEPTH) {
        return Err(format!(
            "line {line} column {column}: nested more than {MAX_JSON_DEPTH} levels deep"
        ));
    }
    json5::from_str(text).map_err(|e| describe_json5_error(&e))
}

/// `line L column C: message`, 1-based, from a JSON5 error.
fn describe_json5_error(error: &json5::Error) -> String {
    let message = match error.code() {
        Some(code) => code.to_string(),
        // A custom message: json5 appends " at line L column C" itself.
        None => {
            let text = error.to_string();
            match text.rfind(" at line ") {
                Some(cut) => text[..cut].to_owned(),
                None => text,
            }
        }
    };
    match error.position() {
        Some(at) => format!("line {} column {}: {message}", at.line + 1, at.column + 1),
        None => message,
    }
}

/// Where JSON5 `text` first opens more than `max` objects or lists, as a
/// 1-based line and column; `None` when it never does. Strings (single or
/// double quoted, with escapes) and comments are skipped, so brackets inside
/// them do not count.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    let before = &text[..i];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    return Some((line, column));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A JSON value's type in words, for messages about input of the wrong
/// shape. Never the value itself: it may be a secret.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A transcript timestamp: Unix milliseconds or an RFC 3339 string.
pub fn time_of(value: Option<&serde_json::Value>) -> Option<jiff::Timestamp> {
    match value? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
        serde_json::Value::String(s) => s.parse::<jiff::Timestamp>().ok(),
        _ => None,
    }
}

/// Whether a process with this id exists (another program's, named in its
/// pid or lock file). A process of another user counts; so does a zombie.
/// Where this cannot be told (not Unix), it is said to exist.
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json5_nesting_is_bounded_and_errors_are_located() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse_json5(&deep).unwrap_err();
        assert_eq!(err, "line 1 column 129: nested more than 128 levels deep");
        let ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_json5(&ok).is_ok());
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "{{a: \"{0}\", b: '{0}', // {0}\n /* {0} */ c: 1}}",
            "[".repeat(500)
        );
        assert_eq!(parse_json5(&quoted).unwrap()["c"], 1);
        let err = parse_json5("{\n  a: 1,\n  b: ]\n}").unwrap_err();
        assert!(err.starts_with("line 3 column "), "{err}");
    }

    #[test]
    fn reads_a_file_and_refuses_what_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, "\u{feff}{\"a\": 1}").unwrap();
        assert_eq!(read_text(&file, 100).unwrap(), "{\"a\": 1}");
        assert!(matches!(
            read_text(&file, 4),
            Err(OutsideFileError::TooLarge { limit: 4, .. })
        ));
        assert!(
            read_text(&dir.path().join("none"), 10)
                .unwrap_err()
                .is_missing()
        );
        let err = read_text(dir.path(), 10).unwrap_err();
        assert!(
            matches!(
                err,
                OutsideFileError::NotAFile {
                    kind: "a folder",
                    ..
                }
            ),
            "{err}"
        );
        std::fs::write(&file, [b'{', 0xff, b'}']).unwrap();
        assert!(matches!(
            read_text(&file, 10),
            Err(OutsideFileError::NotText { at: 1, .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_at_once_and_a_symlink_followed() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer ever opens it: a blocking open would hang here.
        let err = read_text(&fifo, 100).unwrap_err();
        assert!(
            matches!(err, OutsideFileError::NotAFile { kind: "a FIFO", .. }),
            "{err}"
        );
        let target = dir.path().join("real.json");
        std::fs::write(&target, "{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_text(&link, 100).unwrap(), "{}");
        // A link to the FIFO is the FIFO.
        let to_fifo = dir.path().join("to-fifo.json");
        std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
        assert!(matches!(
            read_text(&to_fifo, 100),
            Err(OutsideFileError::NotAFile { .. })
        ));
    }
}
