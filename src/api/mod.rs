//! The fleet HTTP API: the snapshot as JSON and as a live stream, Prometheus
//! metrics, and a health check. Every request passes the Host/Origin guard
//! ([`host`]).
//!
//! Not for: inference (that is the proxy, on its own listener).

pub use crate::server::host;
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
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::publish::SnapshotRx;
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
    /// Self-healing, when the daemon runs it.
    pub heal: Option<HealState>,
    /// The last minutes of each machine's figures.
    pub history: Option<crate::history::History>,
    /// What this process is (version, config file, data folder).
    pub info: Arc<Info>,
}

/// `GET /fleet/v1/info`: for the dashboard's settings.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Info {
    /// ClawFleet's version.
    pub version: String,
    /// The config file in use, or "embedded default".
    pub config: String,
    /// The data folder (ledger, costs, events, the fleet token).
    pub data_dir: String,
    /// This machine's id.
    pub this_machine: String,
    /// Where the fleet token is (its value is never served).
    pub token_file: String,
}

/// What the heal endpoints need.
#[derive(Clone)]
pub struct HealState {
    /// The watcher.
    pub watcher: Arc<crate::heal::watcher::Watcher>,
    /// The fleet token every heal request must carry.
    pub token: Arc<String>,
    /// The peers, for heals asked of them.
    pub peers: Option<Arc<crate::peers::Peers>>,
    /// Every machine id of the fleet (who may say it forwarded a heal).
    pub machines: Vec<String>,
}

/// The API's routes behind the Host/Origin guard.
pub fn router(state: ApiState, allowed: Arc<AllowedHosts>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/assets/app.js", get(page::script))
        .route("/assets/app.css", get(page::style))
        .route("/assets/uplot.js", get(page::chart_script))
        .route("/assets/locale.js", get(page::locale_script))
        .route("/assets/uplot.css", get(page::chart_style))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/healthz", get(healthz))
        .route("/fleet/v1/snapshot", get(snapshot))
        .route("/fleet/v1/stream", get(stream))
        .route("/metrics", get(prometheus))
        .route("/fleet/v1/costs", get(costs))
        .route("/fleet/v1/events", get(events_list))
        .route("/fleet/v1/events/stream", get(events_stream))
        .route("/fleet/v1/heal", get(heal_status).post(heal_run))
        .route("/fleet/v1/heal/pause", axum::routing::post(heal_pause))
        .route("/fleet/v1/heal/resume", axum::routing::post(heal_resume))
        .route("/fleet/v1/heal/mode", axum::routing::post(heal_mode))
        .route("/fleet/v1/history", get(history))
        .route("/fleet/v1/info", get(info))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            remote_guard,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(allowed, host::guard))
        .layer(axum::middleware::from_fn(trace_request))
}

/// Whether a request came from this machine (loopback, also as an
/// IPv4-mapped IPv6 address). Unknown counts as not.
fn from_loopback(request: &axum::extract::Request) -> bool {
    crate::server::peer_of(request).is_some_and(|p| match p.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    })
}

/// Every request from another machine needs the fleet token, as
/// `Authorization: Bearer` or as the `clawfleet_token` cookie the dashboard
/// sets for its streams (a browser cannot add headers to those). The page
/// and its assets are code, not data, and are served to anyone whose Host
/// and Origin pass, so a phone can load the page that asks for the token.
async fn remote_guard(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let public = path == "/" || path.starts_with("/assets/") || path == "/favicon.ico";
    if public || from_loopback(&request) {
        return next.run(request).await;
    }
    let Some(heal) = &state.heal else {
        return error_json(
            StatusCode::FORBIDDEN,
            "this process serves loopback only: it has no fleet token",
        );
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let ok = crate::token::authorized(bearer, &heal.token)
        || crate::token::from_cookie(headers)
            .is_some_and(|t| crate::token::same(t.as_bytes(), heal.token.as_bytes()));
    if ok {
        return next.run(request).await;
    }
    tracing::info!("refused a request from another machine without the fleet token");
    let mut r = error_json(
        StatusCode::UNAUTHORIZED,
        if bearer.is_none() {
            "requests from other machines need the fleet token: send Authorization: Bearer <token> (`clawfleet token show` prints it)"
        } else {
            "wrong fleet token"
        },
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer realm=\"clawfleet\""),
    );
    r
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
    let mut served = (*snap).clone();
    served.served_at = Some(jiff::Timestamp::now());
    json_response(&served)
}

/// The shortest time between two events of `/fleet/v1/stream`: the probes,
/// the peers' polls, the proxy figures and the costs each publish on their
/// own schedule, and a page re-renders on every event.
pub const STREAM_MIN_GAP: Duration = Duration::from_millis(250);

/// The snapshots of `rx`: the current one at once, then the newest after
/// each change, at most one per `gap`. Changes within a gap are sent as one,
/// the newest; a change after a quiet spell is sent at once. A slow reader
/// skips to the newest snapshot instead of queueing old ones (watch
/// semantics), so no client can make us buffer.
pub fn coalesced(rx: SnapshotRx, gap: Duration) -> impl Stream<Item = Arc<Snapshot>> {
    futures_util::stream::unfold(
        (rx, None),
        move |(mut rx, sent): (SnapshotRx, Option<tokio::time::Instant>)| async move {
            if let Some(at) = sent {
                tokio::time::sleep_until(at + gap).await;
                rx.changed().await.ok()?;
            }
            let snap = rx.borrow_and_update().clone();
            Some((snap, (rx, Some(tokio::time::Instant::now()))))
        },
    )
}

/// Server-Sent Events: the current snapshot at once, then one `snapshot`
/// event per change, [`coalesced`] to at most one per [`STREAM_MIN_GAP`].
async fn stream(
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = coalesced(state.snapshot.clone(), STREAM_MIN_GAP)
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
    let snap = state.snapshot.borrow().clone();
    match tokio::task::spawn_blocking(move || service.view(&snap, month, now)).await {
        Ok(Ok(view)) => json_response(&view),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the cost computation did not finish: {e}"),
        ),
    }
}

fn error_json(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message.into() }).to_string(),
    )
        .into_response()
}

fn heal_state(state: &ApiState) -> Result<HealState, Box<Response>> {
    state.heal.clone().ok_or_else(|| {
        Box::new(error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            "self-healing does not run in this process",
        ))
    })
}

/// Every heal needs the fleet token, from loopback too: a local web page or
/// program cannot restart things by asking.
fn require_token(heal: &HealState, headers: &axum::http::HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if crate::token::authorized(given, &heal.token) {
        return Ok(());
    }
    let mut r = error_json(
        StatusCode::UNAUTHORIZED,
        if given.is_none() {
            "a heal needs the fleet token: send Authorization: Bearer <the token in fleet.token in the data folder>"
        } else {
            "wrong fleet token"
        },
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer realm=\"clawfleet\""),
    );
    Err(Box::new(r))
}

/// The healing state for a request that carries the fleet token, and who
/// asked (`api <peer address>`), for every endpoint that changes something.
fn authorized(
    state: &ApiState,
    request: &axum::extract::Request,
) -> Result<(HealState, String), Box<Response>> {
    let heal = heal_state(state)?;
    require_token(&heal, request.headers())?;
    let address =
        crate::server::peer_of(request).map_or_else(|| "-".to_owned(), |p| p.ip().to_string());
    // A peer that forwarded a heal says which machine it is; only a known
    // id is believed (the token already proved it is of the fleet).
    let from = request
        .headers()
        .get(crate::peers::FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| heal.machines.iter().any(|m| m == id));
    let who = match from {
        Some(id) => format!("peer {id} (api {address})"),
        None => format!("api {address}"),
    };
    Ok((heal, who))
}

/// `GET /fleet/v1/events[?limit=N&before=ID]`: newest first.
async fn events_list(State(state): State<ApiState>, uri: axum::http::Uri) -> Response {
    let heal = match heal_state(&state) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let mut limit = 100usize;
    let mut before = None;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v.parse::<i64>()) {
            ("limit", Ok(n)) if (1..=1000).contains(&n) => limit = n as usize,
            ("before", Ok(n)) => before = Some(n),
            _ => {
                return error_json(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "bad parameter {:?}: use limit=1..1000 and before=<event id>",
                        crate::net::preview(pair.as_bytes(), 40)
                    ),
                );
            }
        }
    }
    let log = heal.watcher.events().clone();
    match tokio::task::spawn_blocking(move || log.list(limit, before)).await {
        Ok(Ok(events)) => json_response(&events),
        Ok(Err(e)) => error_json(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error_json(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /fleet/v1/events/stream`: Server-Sent Events, one `event` per new
/// event. A reader too slow for the last 256 gets a `lagged` event.
async fn events_stream(State(state): State<ApiState>) -> Response {
    let heal = match heal_state(&state) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let rx = heal.watcher.events().subscribe();
    let events = tokio_stream::wrappers::BroadcastStream::new(rx)
        .map(|item| {
            Ok::<_, Infallible>(match item {
                Ok(e) => Event::default()
                    .event("event")
                    .data(serde_json::to_string(&e).unwrap_or_default()),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
            })
        })
        .take_until(state.shutdown.clone().cancelled_owned());
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// `GET /fleet/v1/heal`: mode, paused, findings, guards, action names.
async fn heal_status(State(state): State<ApiState>) -> Response {
    match heal_state(&state) {
        Ok(h) => json_response(&h.watcher.status()),
        Err(r) => *r,
    }
}

/// The body of `POST /fleet/v1/heal`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HealRequest {
    action: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// A peer's id: the heal is asked of that machine.
    #[serde(default)]
    machine: Option<String>,
}

/// `POST /fleet/v1/heal` `{"action", "target"?, "dry_run"?}` with the fleet
/// token: runs one action of the closed set and answers its outcome.
async fn heal_run(State(state): State<ApiState>, request: axum::extract::Request) -> Response {
    let (heal, who) = match authorized(&state, &request) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let body = match axum::body::to_bytes(request.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a heal request is a small JSON object (at most 16 KiB)",
            );
        }
    };
    let req: HealRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"action\": NAME, \"target\"?: NAME, \"dry_run\"?: bool}}: {e}"
                ),
            );
        }
    };
    let action = match crate::action::Action::parse(&req.action, req.target.as_deref()) {
        Ok(a) => a,
        Err(e) => return error_json(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Some(machine) = req.machine.as_deref()
        && machine != heal.watcher.machine()
    {
        let Some(peers) = &heal.peers else {
            return error_json(StatusCode::NOT_FOUND, "this process polls no peers");
        };
        return match peers.heal(machine, &action, req.dry_run, &who).await {
            Ok(answer) => json_response(&answer),
            Err(e) => error_json(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY),
                e.to_string(),
            ),
        };
    }
    match heal.watcher.heal(action, req.dry_run, &who).await {
        Ok(outcome) => json_response(&outcome),
        Err(e @ crate::heal::watcher::HealError::Busy) => {
            error_json(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error_json(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn heal_pause(State(state): State<ApiState>, request: axum::extract::Request) -> Response {
    heal_set_paused(state, request, true)
}

async fn heal_resume(State(state): State<ApiState>, request: axum::extract::Request) -> Response {
    heal_set_paused(state, request, false)
}

fn heal_set_paused(state: ApiState, request: axum::extract::Request, paused: bool) -> Response {
    let (heal, who) = match authorized(&state, &request) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    heal.watcher.set_paused(paused, &who);
    json_response(&heal.watcher.status())
}

/// `POST /fleet/v1/heal/mode` `{"mode": "auto" | "suggest" | "off"}` with
/// the fleet token.
async fn heal_mode(State(state): State<ApiState>, request: axum::extract::Request) -> Response {
    let (heal, who) = match authorized(&state, &request) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ModeRequest {
        mode: crate::config::HealMode,
    }
    let body = match axum::body::to_bytes(request.into_body(), 1024).await {
        Ok(b) => b,
        Err(_) => {
            return error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a mode request is {\"mode\": \"auto\" | \"suggest\" | \"off\"}",
            );
        }
    };
    match serde_json::from_slice::<ModeRequest>(&body) {
        Ok(r) => {
            heal.watcher.set_mode(r.mode, &who);
            json_response(&heal.watcher.status())
        }
        Err(e) => error_json(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"mode\": \"auto\" | \"suggest\" | \"off\"}}: {e}"),
        ),
    }
}

/// `GET /fleet/v1/history`: `{"machines": {id: [[unix s, cpu %, memory %,
/// disk %], ...]}}`, oldest first.
async fn history(State(state): State<ApiState>) -> Response {
    let machines = state.history.as_ref().map(|h| h.view()).unwrap_or_default();
    json_response(&serde_json::json!({ "machines": machines }))
}

async fn info(State(state): State<ApiState>) -> Response {
    json_response(&*state.info)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({
            "error": format!("no such endpoint: {}", uri.path()),
            "endpoints": ["/", "/fleet/v1/snapshot", "/fleet/v1/stream", "/fleet/v1/costs", "/fleet/v1/events", "/fleet/v1/events/stream", "/fleet/v1/heal", "/fleet/v1/history", "/fleet/v1/info", "/metrics", "/healthz"],
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
