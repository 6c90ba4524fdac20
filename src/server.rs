//! Serving an axum `Router` on a listener, hardened for untrusted clients:
//! a time limit on reading request headers (a client that connects and
//! says nothing is dropped), a cap on open connections, the peer address in
//! each request, and a graceful shutdown that drains open connections
//! within a bound.
//!
//! `axum::serve` has none of the first three; every listener of ClawFleet
//! goes through here instead. HTTP itself (parsing, framing, keep-alive,
//! pipelining, the head's size and time limits) is hyper's, configured by
//! [`Limits`]: no request is parsed here, and every request of a listener
//! reaches its one router, in a `tracing` span of its own.

pub mod host;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{Instrument, debug, info_span, warn};

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers, and a chunked
    /// body's trailers) in bytes: hyper answers 431 past it. At least
    /// 8192 (hyper's smallest read buffer).
    pub max_header_bytes: usize,
    /// Open connections at most; further clients wait in the accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for open requests before dropping them.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 512,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// What a listener serves: an axum [`Router`](axum::Router), or any
/// service of the same shape.
pub trait App:
    tower::Service<
        axum::http::Request<Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            axum::http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `app` on `listener` until `stop` fires, then drains. `app` is an
/// axum [`Router`](axum::Router), or any service of the same shape.
pub async fn serve<S: App>(listener: TcpListener, app: S, limits: Limits, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The read buffer never needs to hold more than a head: bodies are
    // handed to the service frame by frame.
    let max_buf = limits.max_header_bytes.max(8192);
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(max_buf)
        .max_buf_size(max_buf)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        // The peer address in each request, and each request in its own
        // span (whatever the handler adds goes under it).
        let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let span = info_span!(
                "request",
                method = %request.method(),
                path = request.uri().path(),
                %peer,
            );
            app.clone().oneshot(request).instrument(span)
        });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                debug!(%peer, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    // `graceful` tells hyper's connections to finish (each closes once its
    // request in flight is answered) and waits for them; every connection
    // task also holds a permit, so all permits back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = async {
        graceful.shutdown().await;
        let _ = permits.acquire_many(all).await;
    };
    if tokio::time::timeout(limits.drain_timeout, drained)
        .await
        .is_err()
    {
        warn!(
            "connections still open after {} s; closing them",
            limits.drain_timeout.as_secs()
        );
    }
}

/// The peer address of a request served by [`serve`].
pub fn peer_of<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
