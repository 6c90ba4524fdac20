//! Errors of the engine. Each says what happened, where, and what to do.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Errors of the daemon and the CLI around it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another clawfleet running? change [api] listen)"
    )]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file in the data folder could not be written or read.
    #[error("{what} {}: {source}", path.display())]
    DataFile {
        /// What was being done (`cannot write`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    HttpClient(String),
    /// A secret file is missing, unreadable or readable by others.
    #[error("secret file {}: {why}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        why: String,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    /// A service could not start: the ledger, the event log, the fleet
    /// token. Each service converts its own error into this one (its
    /// message is kept whole), so this module names none of them.
    #[error(transparent)]
    Service(Box<dyn std::error::Error + Send + Sync + 'static>),
}
