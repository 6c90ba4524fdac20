//! The hardened HTTP server under hostile or slow clients: silent clients are
//! dropped, open connections are capped, shutdown drains in-flight requests.

use crate::support::http;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use clawfleet::server::{self, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn start(
    limits: Limits,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "finally"
            }),
        )
        .route(
            "/peer",
            get(|req: axum::extract::Request| async move {
                server::peer_of(&req)
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server::serve(listener, app, limits, stop.clone()));
    (addr, stop, task)
}

/// `GET path` on `stream`; the body.
async fn request(stream: &mut TcpStream, path: &str) -> String {
    http::get_on(stream, path, &[("Host", "localhost")])
        .await
        .body
}

#[tokio::test]
async fn a_client_that_never_sends_headers_is_dropped() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, stop, task) = start(limits).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent
        .write_all(b"GET / HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The server closes it (a reset is a close too); nothing is served.
    let _ = tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut buf))
        .await
        .expect("the server closes a silent connection");
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // Others are still served.
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(request(&mut s, "/").await.ends_with("hello"));
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_their_turn() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (addr, stop, task) = start(limits).await;
    // Two idle keep-alive connections take both places.
    let mut a = TcpStream::connect(addr).await.unwrap();
    let b = TcpStream::connect(addr).await.unwrap();
    a.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = a.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));

    // A third is accepted by the kernel but not served while both are open.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf)).await;
    assert!(waiting.is_err(), "served beyond the cap");
    drop(a);
    drop(b);
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut out))
        .await
        .expect("served once a place is free")
        .unwrap();
    assert!(out.ends_with("hello"), "{out}");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
    let (addr, stop, task) = start(Limits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let slow = tokio::spawn(async move { request(&mut s, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    let out = slow.await.unwrap();
    assert!(out.ends_with("finally"), "{out}");
    task.await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let (addr, stop, task) = start(Limits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let local = s.local_addr().unwrap();
    let out = request(&mut s, "/peer").await;
    assert!(out.ends_with(&local.to_string()), "{out}");
    stop.cancel();
    task.await.unwrap();
}
