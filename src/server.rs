//! Serving an axum `Router` on a listener, hardened for untrusted clients:
//! a time limit on reading request headers (a client that connects and
//! says nothing is dropped), a cap on open connections, the peer address in
//! each request, and a graceful shutdown that drains open connections
//! within a bound.
//!
//! `axum::serve` has none of the first three; every listener of ClawFleet
//! goes through here instead.
//!
//! A listener may also have a [`Front`]: its own server for the requests it
//! answers all day, tried first on each connection. It hands the
//! connection to hyper, with the bytes it has read, as soon as a request is
//! not one of those ([`Handoff`]), and hyper serves the rest of it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
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

/// A listener's own HTTP/1.1 server for the requests it answers all day,
/// run first on each connection it accepts.
pub trait Front: Clone + Send + Sync + 'static {
    /// Serves `connection` until it closes (`None`), or until a request is
    /// not one this server answers: then the connection and every byte read
    /// from it and not answered go to hyper.
    fn serve(self, connection: FrontConnection) -> impl Future<Output = Option<Handoff>> + Send;
}

/// A connection as [`Front::serve`] gets it.
pub struct FrontConnection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Time a client has to send a request head, as [`Limits`] says.
    pub header_read_timeout: Duration,
    /// Fires when the listener shuts down: close once idle.
    pub stop: CancellationToken,
}

/// A connection that hyper takes over, and the bytes already read from it,
/// which hyper reads first.
pub struct Handoff {
    pub stream: TcpStream,
    pub read: Bytes,
}

/// The listener without a [`Front`]: every connection goes to hyper.
#[derive(Clone, Copy)]
enum NoFront {}

impl Front for NoFront {
    async fn serve(self, _: FrontConnection) -> Option<Handoff> {
        match self {}
    }
}

/// Serves `app` on `listener` until `stop` fires, then drains. `app` is an
/// axum [`Router`](axum::Router), or any service of the same shape.
pub async fn serve<S: App>(listener: TcpListener, app: S, limits: Limits, stop: CancellationToken) {
    run(listener, app, None::<NoFront>, limits, stop).await;
}

/// [`serve`], with `front` trying each connection first (the inference
/// proxy's `proxy::server::ProxyApp`, which answers its hot path without
/// hyper); hyper gets what `front` hands over.
pub async fn serve_with_front<S: App, F: Front>(
    listener: TcpListener,
    app: S,
    front: F,
    limits: Limits,
    stop: CancellationToken,
) {
    run(listener, app, Some(front), limits, stop).await;
}

async fn run<S: App, F: Front>(
    listener: TcpListener,
    app: S,
    front: Option<F>,
    limits: Limits,
    stop: CancellationToken,
) {
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
        let front = front.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let header_read_timeout = limits.header_read_timeout;
        let stop = stop.clone();
        tokio::spawn(async move {
            let io = match front {
                None => Rewind::new(stream, Bytes::new()),
                Some(front) => {
                    let connection = FrontConnection {
                        stream,
                        peer,
                        header_read_timeout,
                        stop,
                    };
                    match front.serve(connection).await {
                        Some(handoff) => Rewind::new(handoff.stream, handoff.read),
                        None => return drop(permit),
                    }
                }
            };
            let connection =
                http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(connection).await {
                debug!(%peer, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    // `graceful` tells hyper's connections to finish and waits for every
    // connection task's watcher, the front's too (they close once idle when
    // `stop` fires); every task also holds a permit, so all permits back
    // means all closed, whoever served them.
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

/// A connection whose first bytes were already read: they are read again
/// before the socket's.
struct Rewind {
    stream: TcpStream,
    read: Bytes,
}

impl Rewind {
    fn new(stream: TcpStream, read: Bytes) -> Self {
        Self { stream, read }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read[..n]);
        this.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The peer address of a request served by [`serve`].
pub fn peer_of<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
