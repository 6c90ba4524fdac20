//! Why a connection or request failed, in words a user understands.
//!
//! Shared by the Ollama and service probes so that "connection refused",
//! "cannot resolve host" and timeouts read the same everywhere.

use std::io;

/// The connection-level reason a request or connect attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The address answered with a refusal: nothing listens on that port.
    Refused,
    /// The host name could not be resolved to an address.
    Unresolvable,
    /// The remote end reset or closed the connection before answering.
    Closed(String),
    /// Anything else, already in words (with its causes).
    Other(String),
}

/// Classifies a reqwest error that is not a timeout (timeouts are detected by
/// the caller's own time limit, which covers the whole exchange).
///
/// The detail kept is the innermost cause ("invalid HTTP version parsed"):
/// reqwest's own message names the full URL, which would make the same
/// failure on two paths look different, and the layers between add nothing a
/// user can act on.
pub(crate) fn classify(err: &reqwest::Error) -> Failure {
    let described = crate::net::describe(err);
    let detail = innermost(err).unwrap_or_else(|| described.clone());
    if let Some(kind) = io_kind(err) {
        match kind {
            io::ErrorKind::ConnectionRefused => return Failure::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => return Failure::Closed(detail),
            _ => {}
        }
    }
    // hyper-util reports resolver failures as a connect error whose message
    // is "dns error"; the io::Error underneath has no specific kind.
    if err.is_connect() && described.contains("dns error") {
        return Failure::Unresolvable;
    }
    // A peer that accepts and then closes without a response surfaces as
    // hyper's "connection closed before message completed" (no io::Error).
    if described.contains("closed before message completed")
        || described.contains("connection closed")
    {
        return Failure::Closed(detail);
    }
    Failure::Other(detail)
}

/// The text of the last non-empty cause in the chain.
fn innermost(err: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut last = None;
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() {
            last = Some(text);
        }
        source = s.source();
    }
    last
}

/// Classifies an io::Error from a plain TCP connect.
pub(crate) fn classify_io(err: &io::Error) -> Failure {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            Failure::Closed(err.to_string())
        }
        _ => Failure::Other(err.to_string()),
    }
}

/// The kind of the first io::Error in the error's cause chain, if any.
fn io_kind(err: &reqwest::Error) -> Option<io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// `host:port` as a user would type it (IPv6 hosts in brackets).
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_brackets_ipv6_only() {
        assert_eq!(host_port("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("[::1]", 80), "[::1]:80");
        assert_eq!(host_port("macmini", 11434), "macmini:11434");
    }

    #[test]
    fn io_refused_is_refused() {
        let err = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_io(&err), Failure::Refused);
    }
}
