//! The fleet token: a random secret in a file only the owner can read,
//! created on first run. Every heal request must carry it (`Authorization:
//! Bearer …`), from loopback too; later, every request from a peer.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The token file's name inside `data_dir`.
pub const TOKEN_FILE: &str = "fleet.token";

/// What went wrong with the token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It could not be read or written.
    #[error("fleet token {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
}

/// Reads the token at `path`, creating it (random, owner-only) if there is
/// none. A file others can read is refused (see `net::read_secret_file`).
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    let fail = |reason: String| TokenError::File {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| fail(format!("no randomness: {e}")))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut f) => {
                f.write_all(token.as_bytes())
                    .and_then(|()| f.write_all(b"\n"))
                    .map_err(|e| fail(e.to_string()))?;
                tracing::info!(file = %path.display(), "created the fleet token (owner-only)");
                return Ok(token);
            }
            // Another process created it first: read theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let token = crate::net::read_secret_file(path).map_err(|e| fail(e.to_string()))?;
    if token.len() < 16 {
        return Err(fail(
            "the token is shorter than 16 characters: delete the file and a new one is made".into(),
        ));
    }
    Ok(token)
}

/// Compares in time that does not depend on where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The name of the cookie the dashboard keeps the token in, for its
/// streams (`EventSource` cannot send headers).
pub const COOKIE: &str = "clawfleet_token";

/// The token from the `clawfleet_token` cookie, if any.
pub fn from_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == COOKIE).then_some(v.trim())
        })
}

/// Replaces the token at `path` with `token` (owner-only, written whole
/// then renamed), for giving every machine the fleet's token.
pub fn store(path: &Path, token: &str) -> Result<(), TokenError> {
    let fail = |reason: String| TokenError::File {
        path: path.to_path_buf(),
        reason,
    };
    let token = token.trim();
    if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(fail(
            "a fleet token is at least 16 visible ASCII characters (the other machine's `clawfleet token show` prints one)".to_owned(),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!(".{TOKEN_FILE}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(token.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    Ok(())
}

/// Whether an `Authorization` header value carries `token`.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(value) = header else { return false };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && same(given.trim().as_bytes(), token.as_bytes())
}

impl From<TokenError> for crate::Error {
    fn from(e: TokenError) -> Self {
        crate::Error::Service(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub").join(TOKEN_FILE);
        let a = load_or_create(&path).expect("created");
        assert_eq!(a.len(), 64);
        let b = load_or_create(&path).expect("read");
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(
                load_or_create(&path).is_err(),
                "a token others can read is refused"
            );
        }
    }

    #[test]
    fn bearer_checks() {
        let t = "0123456789abcdef0123";
        assert!(authorized(Some("Bearer 0123456789abcdef0123"), t));
        assert!(authorized(Some("bearer  0123456789abcdef0123 "), t));
        assert!(!authorized(Some("Bearer 0123456789abcdef0124"), t));
        assert!(!authorized(Some("Bearer 0123"), t));
        assert!(!authorized(Some("Basic 0123456789abcdef0123"), t));
        assert!(!authorized(Some("0123456789abcdef0123"), t));
        assert!(!authorized(None, t));
    }
}
