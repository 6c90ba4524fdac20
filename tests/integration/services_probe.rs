//! The services probe against real sockets: open and closed ports, a hung
//! server, and URLs answering various statuses.

use crate::support;

use std::time::Duration;

use clawfleet::config::ServiceConfig;
use clawfleet::probe::services;
use clawfleet::snapshot::ServiceStatus;
use support::*;

const TIMEOUT: Duration = Duration::from_millis(3000);

fn port_service(host: Option<&str>, port: u16) -> ServiceConfig {
    ServiceConfig {
        name: "Clawdbot gateway".into(),
        port: Some(port),
        host: host.map(str::to_owned),
        url: None,
        expect_status: None,
    }
}

fn url_service(url: &str, expect_status: Option<u16>) -> ServiceConfig {
    ServiceConfig {
        name: "Aphos".into(),
        port: None,
        host: None,
        url: Some(url.to_owned()),
        expect_status,
    }
}

/// Probes, failing the test (instead of hanging it) if the probe does not
/// return well after its own time limit.
async fn probe(service: &ServiceConfig, timeout: Duration) -> ServiceStatus {
    tokio::time::timeout(
        deadline(timeout),
        services::probe(&client(), service, timeout),
    )
    .await
    .expect("the probe must return within its time limit")
}

#[tokio::test]
async fn open_port_is_up() {
    let fake = FakeOllama::start().await;

    let status = probe(&port_service(None, fake.port()), TIMEOUT).await;

    assert_eq!(status.name, "Clawdbot gateway");
    assert_eq!(status.kind, "tcp");
    assert_eq!(status.target, format!("127.0.0.1:{}", fake.port()));
    assert!(status.up, "{status:?}");
    assert!(status.latency_ms.is_some());
    assert_eq!(status.http_status, None);
    assert_eq!(status.error, None);
    assert!(status.checked_at.is_some());
    // A TCP probe sends no HTTP request.
    assert_eq!(fake.total_requests(), 0);
}

#[tokio::test]
async fn explicit_host_is_used() {
    let fake = FakeOllama::start().await;

    let status = probe(&port_service(Some("127.0.0.1"), fake.port()), TIMEOUT).await;

    assert!(status.up);
    assert_eq!(status.target, format!("127.0.0.1:{}", fake.port()));
}

#[tokio::test]
async fn closed_port_is_refused() {
    let port = free_closed_port();

    let status = probe(&port_service(None, port), TIMEOUT).await;

    assert_eq!(status.kind, "tcp");
    assert!(!status.up);
    assert_eq!(status.latency_ms, None);
    assert_eq!(status.error.as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn tcp_open_reports_success_and_refusal() {
    let hang = HangingServer::start().await;
    assert!(
        services::tcp_open("127.0.0.1", hang.port(), TIMEOUT)
            .await
            .is_ok()
    );

    let closed = free_closed_port();
    assert_eq!(
        services::tcp_open("127.0.0.1", closed, TIMEOUT).await,
        Err("connection refused".to_owned())
    );
}

#[tokio::test]
async fn hanging_url_times_out_cleanly() {
    let hang = HangingServer::start().await;

    let status = probe(&url_service(&hang.url(), None), SHORT_TIMEOUT).await;

    assert_eq!(status.kind, "http");
    assert_eq!(status.target, hang.url());
    assert!(!status.up);
    assert_eq!(status.http_status, None);
    assert_eq!(status.latency_ms, None);
    assert_eq!(
        status.error.as_deref(),
        Some(format!("timed out after {} ms", SHORT_TIMEOUT.as_millis()).as_str())
    );
    assert!(eventually(|| hang.accepted() == 1).await);
}

#[tokio::test]
async fn url_answering_200_is_up_by_default() {
    let fake = FakeOllama::start().await;

    let status = probe(&url_service(&format!("{}/", fake.url()), None), TIMEOUT).await;

    assert!(status.up, "{status:?}");
    assert_eq!(status.http_status, Some(200));
    assert!(status.latency_ms.is_some());
    assert_eq!(status.error, None);
    assert_eq!(fake.count("/"), 1);
}

#[tokio::test]
async fn expect_status_match_is_up() {
    let garbage = GarbageServer::start(Garbage::status(204)).await;

    let status = probe(&url_service(&garbage.url(), Some(204)), TIMEOUT).await;

    assert!(status.up, "{status:?}");
    assert_eq!(status.http_status, Some(204));
    assert_eq!(status.error, None);
}

#[tokio::test]
async fn expect_status_mismatch_is_down_and_says_both() {
    let fake = FakeOllama::start().await;
    fake.fail_path("/health", 503, "maintenance");

    let status = probe(
        &url_service(&format!("{}/health", fake.url()), Some(200)),
        TIMEOUT,
    )
    .await;

    assert!(!status.up);
    assert_eq!(status.http_status, Some(503));
    assert!(status.latency_ms.is_some());
    assert_eq!(
        status.error.as_deref(),
        Some("answered HTTP 503 Service Unavailable, expected 200")
    );
}

#[tokio::test]
async fn server_error_is_down_without_expect_status() {
    let garbage = GarbageServer::start(Garbage::ServerErrorJson).await;

    let status = probe(&url_service(&garbage.url(), None), TIMEOUT).await;

    assert!(!status.up);
    assert_eq!(status.http_status, Some(500));
    assert_eq!(
        status.error.as_deref(),
        Some("answered HTTP 500 Internal Server Error, expected 2xx or 3xx")
    );
}

#[tokio::test]
async fn redirect_is_reported_not_followed() {
    let garbage = GarbageServer::start(Garbage::status(301)).await;

    let status = probe(&url_service(&garbage.url(), None), TIMEOUT).await;

    assert!(status.up, "a 3xx counts as up: {status:?}");
    assert_eq!(status.http_status, Some(301));
    assert_eq!(status.error, None);
    // Following the Location would have made a second request.
    assert_eq!(garbage.hits(), 1);
}

#[tokio::test]
async fn redirect_with_expect_200_is_down() {
    let garbage = GarbageServer::start(Garbage::status(302)).await;

    let status = probe(&url_service(&garbage.url(), Some(200)), TIMEOUT).await;

    assert!(!status.up);
    assert_eq!(status.http_status, Some(302));
    assert_eq!(
        status.error.as_deref(),
        Some("answered HTTP 302 Found, expected 200")
    );
    assert_eq!(garbage.hits(), 1);
}

#[tokio::test]
async fn refused_url_says_so() {
    let port = free_closed_port();

    let status = probe(
        &url_service(&format!("http://127.0.0.1:{port}/"), None),
        TIMEOUT,
    )
    .await;

    assert!(!status.up);
    assert_eq!(status.http_status, None);
    assert_eq!(status.error.as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn service_without_port_or_url_says_so() {
    let service = ServiceConfig {
        name: "nothing".into(),
        port: None,
        host: None,
        url: None,
        expect_status: None,
    };

    let status = probe(&service, TIMEOUT).await;

    assert!(!status.up);
    assert_eq!(
        status.error.as_deref(),
        Some("neither `port` nor `url` is configured")
    );
    assert!(status.checked_at.is_some());
}
