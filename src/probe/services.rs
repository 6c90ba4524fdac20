//! Configured services: a TCP port that accepts, or a URL that answers.
//!
//! A `port` service is up when a TCP connection is accepted within the time
//! limit; a `url` service is up when the response head arrives in time with
//! the expected status (any 2xx or 3xx unless `expect_status` says otherwise).
//! Redirects are not followed: the shared client reports what it got.
//!
//! Not for: anything about what the service says; the body is never read.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::net::TcpStream;

use super::fail::{self, Failure};
use crate::config::ServiceConfig;
use crate::snapshot::ServiceStatus;

/// Host probed for a `port` service without a `host`.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// Probes one service within `timeout`. Never fails: problems are in the status.
///
/// A service with a `url` is probed over HTTP (the `url` wins should both be
/// set, which validation rejects); one with only a `port` over TCP.
pub async fn probe(
    client: &reqwest::Client,
    service: &ServiceConfig,
    timeout: Duration,
) -> ServiceStatus {
    let mut status = ServiceStatus {
        name: service.name.clone(),
        ..ServiceStatus::default()
    };
    match (&service.url, service.port) {
        (Some(url), _) => {
            probe_http(client, url, service.expect_status, timeout, &mut status).await
        }
        (None, Some(port)) => {
            let host = service.host.as_deref().unwrap_or(DEFAULT_HOST);
            status.kind = "tcp".to_owned();
            status.target = fail::host_port(host, port);
            match tcp_open(host, port, timeout).await {
                Ok(latency) => {
                    status.up = true;
                    status.latency_ms = Some(millis(latency));
                }
                Err(why) => status.error = Some(why),
            }
        }
        (None, None) => {
            status.error = Some("neither `port` nor `url` is configured".to_owned());
        }
    }
    status.checked_at = Some(Timestamp::now());
    status
}

/// Opens (and at once closes) a TCP connection to `host:port` within
/// `timeout`, name resolution included. Returns the time it took, or why it
/// failed: "connection refused", "timed out after N ms", "cannot resolve host
/// H", or the OS's words for anything else.
pub async fn tcp_open(host: &str, port: u16, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let attempt = async {
        // Resolve first so an unknown name is told apart from a refusal.
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("cannot resolve host {host}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("cannot resolve host {host}"));
        }
        match TcpStream::connect(addrs.as_slice()).await {
            // Dropping the stream closes it: only acceptance matters.
            Ok(_stream) => Ok(started.elapsed()),
            Err(e) => Err(match fail::classify_io(&e) {
                Failure::Refused => "connection refused".to_owned(),
                Failure::Unresolvable => format!("cannot resolve host {host}"),
                Failure::Closed(detail) | Failure::Other(detail) => detail,
            }),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
    }
}

/// GETs `url` and judges the status of the response head.
async fn probe_http(
    client: &reqwest::Client,
    url: &str,
    expect_status: Option<u16>,
    timeout: Duration,
    status: &mut ServiceStatus,
) {
    status.kind = "http".to_owned();
    status.target = url.to_owned();
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(_) => {
            status.error = Some(format!(
                "{url:?} is not an http:// or https:// URL with a host"
            ));
            return;
        }
        Err(e) => {
            status.error = Some(format!("{url:?} is not a valid URL: {e}"));
            return;
        }
    };
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let started = Instant::now();
    // `send` resolves at the response head; the body is dropped unread with
    // the response, which closes that connection instead of draining it.
    let response = match tokio::time::timeout(timeout, client.get(parsed).send()).await {
        Err(_) => {
            status.error = Some(format!("timed out after {} ms", timeout.as_millis()));
            return;
        }
        Ok(Err(e)) => {
            status.error = Some(match fail::classify(&e) {
                Failure::Refused => "connection refused".to_owned(),
                Failure::Unresolvable => format!("cannot resolve host {host}"),
                Failure::Closed(_) => "the connection closed without an answer".to_owned(),
                Failure::Other(detail) => detail,
            });
            return;
        }
        Ok(Ok(response)) => response,
    };
    status.latency_ms = Some(millis(started.elapsed()));
    let code = response.status();
    drop(response);
    status.http_status = Some(code.as_u16());
    let (up, expected) = match expect_status {
        Some(want) => (code.as_u16() == want, want.to_string()),
        None => (
            code.is_success() || code.is_redirection(),
            "2xx or 3xx".to_owned(),
        ),
    };
    status.up = up;
    if !up {
        let words = match code.canonical_reason() {
            Some(reason) => format!("{} {reason}", code.as_u16()),
            None => code.as_u16().to_string(),
        };
        status.error = Some(format!("answered HTTP {words}, expected {expected}"));
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
