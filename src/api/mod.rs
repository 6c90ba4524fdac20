//! The fleet HTTP API: the snapshot as JSON and as a live stream, Prometheus
//! metrics, and a health check. Every request passes the Host/Origin guard
//! ([`host`]).
//!
//! Not for: inference (that is the proxy, on its own listener).

pub mod host;
pub mod metrics;
mod page;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::probe::SnapshotRx;
use crate::snapshot::Snapshot;

pub use host::AllowedHosts;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The live snapshot.
    pub snapshot: SnapshotRx,
    /// Fired at shutdown so open streams end and the server can drain.
    pub shutdown: CancellationToken,
    /// The cost engine, when the daemon runs one.
    pub costs: Option<Arc<crate::cost::service::CostService>>,
}

/// The API's routes behind the Host/Origin guard.
pub fn router(state: ApiState, allowed: Arc<AllowedHosts>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/assets/status.js", get(page::script))
        .route("/assets/status.css", get(page::style))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/healthz", get(healthz))
        .route("/fleet/v1/snapshot", get(snapshot))
        .route("/fleet/v1/stream", get(stream))
        .route("/metrics", get(prometheus))
        .route("/fleet/v1/costs", get(costs))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(allowed, host::guard))
        .layer(axum::middleware::from_fn(trace_request))
}

/// One span per request, so everything logged while serving it (including a
/// Host refusal) says which request it was.
async fn trace_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let peer = crate::server::peer_of(&request).map(|p| p.to_string());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        peer = peer.as_deref().unwrap_or("-"),
    );
    async move {
        let mut response = next.run(request).await;
        // No response of ours is meant to be sniffed into another type.
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        );
        tracing::debug!(status = response.status().as_u16(), "served");
        response
    }
    .instrument(span)
    .await
}

async fn healthz(State(state): State<ApiState>) -> Response {
    let snap = state.snapshot.borrow().clone();
    json_response(&serde_json::json!({
        "status": "ok",
        "version": snap.clawfleet_version,
        "this_machine": snap.this_machine,
        "started_at": snap.started_at,
    }))
}

async fn snapshot(State(state): State<ApiState>) -> Response {
    let snap = state.snapshot.borrow().clone();
    json_response(&*snap)
}

/// Server-Sent Events: the current snapshot at once, then one `snapshot`
/// event per change. A slow reader skips to the newest snapshot instead of
/// queueing old ones (watch semantics), so no client can make us buffer.
async fn stream(
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = WatchStream::new(state.snapshot.clone())
        .map(|snap: Arc<Snapshot>| {
            let event = Event::default().event("snapshot");
            Ok(match serde_json::to_string(&*snap) {
                Ok(json) => event.data(json),
                Err(e) => Event::default()
                    .event("error")
                    .data(format!("cannot serialize snapshot: {e}")),
            })
        })
        .take_until(state.shutdown.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn prometheus(State(state): State<ApiState>) -> Response {
    let snap = state.snapshot.borrow().clone();
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&snap),
    )
        .into_response()
}

/// `GET /fleet/v1/costs[?month=YYYY-MM]`: every cost figure of a month
/// (the current one by default), per machine and for the fleet, with the
/// alarms on now and the latest cost events.
async fn costs(State(state): State<ApiState>, uri: axum::http::Uri) -> Response {
    let error = |status: StatusCode, message: String| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": message }).to_string(),
        )
            .into_response()
    };
    let mut month = None;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "month" => match crate::cost::Month::parse(value) {
                Some(m) => month = Some(m),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "month={:?} is not a month: write it as YYYY-MM, e.g. 2026-11",
                            crate::net::preview(value.as_bytes(), 40)
                        ),
                    );
                }
            },
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown parameter {:?}: the only one is month=YYYY-MM",
                        crate::net::preview(other.as_bytes(), 40)
                    ),
                );
            }
        }
    }
    let Some(service) = state.costs.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "costs are not computed by this process".to_owned(),
        );
    };
    let now = jiff::Timestamp::now();
    match tokio::task::spawn_blocking(move || service.view(month, now)).await {
        Ok(Ok(view)) => json_response(&view),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the cost computation did not finish: {e}"),
        ),
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "error": format!("no such endpoint: {}", uri.path()),
            "endpoints": ["/", "/fleet/v1/snapshot", "/fleet/v1/stream", "/fleet/v1/costs", "/metrics", "/healthz"],
        })
        .to_string(),
    )
        .into_response()
}

fn json_response<T: serde::Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize response: {e}"),
        )
            .into_response(),
    }
}
