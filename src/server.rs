//! Serving an axum `Router` on a listener, hardened for untrusted clients:
//! a time limit on reading request headers (a client that connects and
//! says nothing is dropped), a cap on open connections, the peer address in
//! each request, and a graceful shutdown that drains open connections
//! within a bound.
//!
//! `axum::serve` has none of the first three; every listener of ClawFleet
//! goes through here instead.

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
use tracing::{debug, warn};

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Open connections at most; further clients wait in the accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for open requests before dropping them.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on `listener` until `stop` fires, then drains. `app` is an
/// axum [`Router`](axum::Router), or any service of the same shape (the
/// inference proxy's `proxy::server::ProxyApp`, which answers its hot path
/// without the router's boxing).
pub async fn serve<S>(listener: TcpListener, app: S, limits: Limits, stop: CancellationToken)
where
    S: tower::Service<
            axum::http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
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
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
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
