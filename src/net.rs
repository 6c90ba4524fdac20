//! The HTTP client every probe shares, and reading bodies with a size cap.
//!
//! Peers and model servers are untrusted: every body is read with a limit,
//! every request has a timeout set by its caller.

use std::sync::Once;
use std::time::Duration;

use futures_util::StreamExt;

use crate::error::Error;

/// The largest body a probe reads (a `/api/tags` with hundreds of models is
/// well under this).
pub const PROBE_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The User-Agent of every request ClawFleet makes.
pub const USER_AGENT: &str = concat!("clawfleet/", env!("CARGO_PKG_VERSION"));

static CRYPTO: Once = Once::new();

/// What every client of ClawFleet shares: rustls with the ring provider, no
/// proxy from the environment (fleet traffic must not leak to a corporate
/// proxy), no redirects (a probe reports what it got; a model server never
/// redirects), and ClawFleet's User-Agent.
fn builder() -> reqwest::ClientBuilder {
    CRYPTO.call_once(|| {
        // Fails only when another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
}

/// The client the probes share: a small keep-alive pool (a few requests per
/// machine every few seconds).
pub fn client() -> Result<reqwest::Client, Error> {
    builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(2)
        .build()
        .map_err(|e| Error::HttpClient(e.to_string()))
}

/// How long an idle upstream connection is kept for reuse.
pub const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle upstream connections kept per host: enough for a burst of
/// concurrent requests to one Ollama to reuse them.
pub const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// The client the proxy uses towards model servers: a connect time limit,
/// HTTP/1.1 keep-alive pools sized for concurrent generations, and
/// optionally every connection through a SOCKS5 proxy (Tailscale userspace
/// networking). No overall timeout: a generation may stream for minutes.
pub fn upstream_client(connect: Duration, socks5: Option<&str>) -> Result<reqwest::Client, Error> {
    let mut builder = builder()
        .connect_timeout(connect)
        .tcp_nodelay(true)
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST);
    if let Some(addr) = socks5 {
        // socks5h: names are resolved by the proxy, as tailnet names must be.
        let proxy = reqwest::Proxy::all(format!("socks5h://{addr}"))
            .map_err(|e| Error::HttpClient(format!("[proxy] socks5 = {addr:?}: {e}")))?;
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|e| Error::HttpClient(e.to_string()))
}

/// Reads a secret (an API key) from a file that only its owner may read.
/// The secret is trimmed; it is never logged.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, Error> {
    let err = |why: String| Error::Secret {
        path: path.to_path_buf(),
        why,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(format!(
                "others can read it (mode {:o}); run: chmod 600 {}",
                meta.permissions().mode() & 0o777,
                path.display()
            )));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(err("it is empty".to_owned()));
    }
    Ok(secret.to_owned())
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit.
    #[error("response body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("response body broke off: {0}")]
    Broken(String),
}

/// Reads a response body, refusing more than `limit` bytes.
pub async fn read_body_limited(
    response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(describe(&e)))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error in words, with its causes (reqwest's own Display omits them).
pub fn describe(err: &reqwest::Error) -> String {
    let head = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        err.to_string()
    };
    match std::error::Error::source(err) {
        Some(source) => describe_chain(head, source),
        None => head,
    }
}

/// `head`, then `err` and each of its causes, `: `-separated, each said
/// once (error types often repeat their cause in their own text).
pub fn describe_chain(head: String, err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = head;
    let mut next = Some(err);
    let mut last = String::new();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && text != last && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        last = text;
        next = e.source();
    }
    out
}

/// The first `max` characters of a body, printable, for error messages.
pub fn preview(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.trim().to_owned()
}
