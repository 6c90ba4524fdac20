//! The proxy's HTTP side: OpenAI-compatible, Ollama-native and Anthropic
//! endpoints, failover before the first byte, metered pass-through streams.
//!
//! A request's life: read the body (capped), find the model, [`route::plan`]
//! the machines, try each in turn (circuit permitting) until one answers with
//! a response head that is not a failure, then pass its body through chunk by
//! chunk while a [`UsageTap`] reads the tokens, and write one ledger
//! [`Record`] before the response ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use tracing::{Instrument, debug, info_span, warn};

use super::circuit::{Admission, Circuit, CircuitConfig};
use super::errors::{ApiShape, ErrorKind, RETRY_AFTER_SECS, error_body, stream_error_frame};
use super::route::{self, Candidate, RouteError};
use super::upstream::{Answer, BodyStream, Upstreams};
use super::usage::{SseUsageFilter, UsageTap, Wire, ask_for_usage, options_want_usage};
use crate::config::Config;
use crate::fleet::Fleet;
use crate::ledger::{LedgerError, LedgerHandle, Record};
use crate::net;
use crate::publish::SnapshotRx;
use crate::secret::{KeychainSecret, Secret};
use crate::server::host::AllowedHosts;

/// Response header naming the machine that served.
pub const MACHINE_HEADER: &str = "x-clawfleet-machine";
/// Response header listing the machines tried before it, and why each failed.
pub const FALLBACKS_HEADER: &str = "x-clawfleet-fallbacks";

/// Everything the handlers share.
pub struct Proxy {
    config: Arc<Config>,
    fleet: Arc<Fleet>,
    snapshot: SnapshotRx,
    upstreams: Upstreams,
    circuits: Mutex<HashMap<String, Circuit>>,
    ledger: LedgerHandle,
    /// The key for Anthropic clients that send none: the key file's, read
    /// at start, else the OS keychain's, read when first needed.
    anthropic_key: Option<String>,
    anthropic_keychain: Option<KeychainSecret>,
}

impl Proxy {
    /// The proxy's state. Peers are reached through `[proxy] socks5` when it
    /// is set; this machine and Anthropic directly.
    pub fn new(
        config: Arc<Config>,
        fleet: Arc<Fleet>,
        snapshot: SnapshotRx,
        ledger: LedgerHandle,
    ) -> Result<Self, crate::Error> {
        let connect = Duration::from_millis(config.proxy.connect_timeout_ms);
        let idle = Duration::from_secs(config.proxy.stream_idle_timeout_secs);
        let upstreams = Upstreams::new(connect, config.proxy.socks5.as_deref(), idle)?;
        let anthropic_key = match &config.proxy.anthropic_key_file {
            Some(path) => Some(net::read_secret_file(path)?),
            None => None,
        };
        let anthropic_keychain = (anthropic_key.is_none() && config.proxy.anthropic_key_keychain)
            .then(|| KeychainSecret::new(Secret::Anthropic));
        Ok(Self {
            config,
            fleet,
            snapshot,
            upstreams,
            circuits: Mutex::new(HashMap::new()),
            ledger,
            anthropic_key,
            anthropic_keychain,
        })
    }

    /// The circuits' states, by machine, for the snapshot.
    pub fn circuits(&self) -> Vec<crate::snapshot::CircuitView> {
        let circuits = self
            .circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<_> = circuits
            .iter()
            .map(|(machine, c)| crate::snapshot::CircuitView {
                machine: machine.clone(),
                state: c.state(),
            })
            .collect();
        out.sort_by(|a, b| a.machine.cmp(&b.machine));
        out
    }

    fn admit(&self, machine: &str) -> Admission {
        self.with_circuit(machine, |c| c.allow(Instant::now()))
    }

    fn report(&self, machine: &str, ok: bool) {
        self.with_circuit(machine, |c| {
            if ok {
                c.success();
            } else {
                c.failure(Instant::now());
            }
        });
    }

    /// `f` on `machine`'s circuit, made on first use. The name is copied
    /// only then, not on every request.
    fn with_circuit<T>(&self, machine: &str, f: impl FnOnce(&mut Circuit) -> T) -> T {
        let mut circuits = self
            .circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = circuits.get_mut(machine) {
            return f(c);
        }
        f(circuits
            .entry(machine.to_owned())
            .or_insert_with(|| Circuit::new(CircuitConfig::default())))
    }
}

/// The proxy as served: every request, the inference `POST`s included,
/// goes through this one router and its layers — the Host/Origin guard,
/// and a time limit between a request body's frames (408). The head's
/// limits are the listener's (`server::Limits`); a body's size and overall
/// time limits are the handlers' ([`json_body`]), so that a refusal is an
/// error in the client's own shape and a ledger record.
pub fn router(proxy: Arc<Proxy>, allowed: Arc<AllowedHosts>) -> Router {
    let body_idle = Duration::from_secs(proxy.config.proxy.body_idle_timeout_secs);
    let inference = |endpoint: Endpoint| {
        move |state: State<Arc<Proxy>>, request: Request| infer(state, endpoint, None, request)
    };
    // `/via/<machine>/...`: the same, that machine first (see `route::prefer`).
    let via = |endpoint: Endpoint| {
        move |state: State<Arc<Proxy>>, Path(machine): Path<String>, request: Request| {
            infer(state, endpoint, Some(machine), request)
        }
    };
    // Each endpoint routed by model, at its own path and under
    // `/via/<machine>` (what `clawfleet clawdbot wire` writes).
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        router = router
            .route(endpoint.path(), post(inference(endpoint)))
            .route(
                &format!("/via/{{machine}}{}", endpoint.path()),
                post(via(endpoint)),
            );
    }
    // The rest of Ollama's and OpenAI's API, at the root and under
    // `/via/<machine>` alike: a client given a `/via/` base URL (OpenClaw's
    // discovery, its cron pre-checks) asks `<baseUrl>/api/tags` there. The
    // listings are the fleet's, as the inference behind that address is;
    // model management goes to that machine's own Ollama.
    for prefix in ["", "/via/{machine}"] {
        router = router
            .route(&format!("{prefix}/v1/models"), get(openai_models))
            .route(&format!("{prefix}/v1/models/{{*model}}"), get(openai_model))
            .route(&format!("{prefix}/api/tags"), get(ollama_tags))
            .route(&format!("{prefix}/api/ps"), get(ollama_ps))
            .route(&format!("{prefix}/api/version"), get(ollama_version))
            .route(&format!("{prefix}/api/pull"), post(manage_ollama))
            .route(&format!("{prefix}/api/push"), post(manage_ollama))
            .route(&format!("{prefix}/api/create"), post(manage_ollama))
            .route(&format!("{prefix}/api/copy"), post(manage_ollama))
            .route(&format!("{prefix}/api/delete"), any(manage_ollama))
            .route(
                &format!("{prefix}/api/blobs/{{digest}}"),
                any(manage_ollama),
            );
    }
    router
        .route("/v1/messages", post(anthropic))
        .route("/", get(ollama_root))
        .route("/via/{machine}", get(ollama_root))
        .route("/via/{machine}/", get(ollama_root))
        .with_state(proxy)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_idle))
        .layer(axum::middleware::from_fn_with_state(
            allowed,
            crate::server::host::guard,
        ))
}

/// The inference endpoints the proxy routes by model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    OpenAiChat,
    OpenAiCompletions,
    OpenAiEmbeddings,
    OllamaChat,
    OllamaGenerate,
    OllamaEmbed,
    OllamaEmbeddings,
    OllamaShow,
}

impl Endpoint {
    /// Every endpoint.
    const ALL: [Endpoint; 8] = [
        Endpoint::OpenAiChat,
        Endpoint::OpenAiCompletions,
        Endpoint::OpenAiEmbeddings,
        Endpoint::OllamaChat,
        Endpoint::OllamaGenerate,
        Endpoint::OllamaEmbed,
        Endpoint::OllamaEmbeddings,
        Endpoint::OllamaShow,
    ];

    fn path(self) -> &'static str {
        match self {
            Endpoint::OpenAiChat => "/v1/chat/completions",
            Endpoint::OpenAiCompletions => "/v1/completions",
            Endpoint::OpenAiEmbeddings => "/v1/embeddings",
            Endpoint::OllamaChat => "/api/chat",
            Endpoint::OllamaGenerate => "/api/generate",
            Endpoint::OllamaEmbed => "/api/embed",
            Endpoint::OllamaEmbeddings => "/api/embeddings",
            Endpoint::OllamaShow => "/api/show",
        }
    }

    fn shape(self) -> ApiShape {
        match self {
            Endpoint::OpenAiChat | Endpoint::OpenAiCompletions | Endpoint::OpenAiEmbeddings => {
                ApiShape::OpenAi
            }
            _ => ApiShape::Ollama,
        }
    }

    fn api(self) -> &'static str {
        match self.shape() {
            ApiShape::OpenAi => "openai",
            ApiShape::Ollama => "ollama",
            ApiShape::Anthropic => "anthropic",
        }
    }

    /// Whether the response will stream. OpenAI streams only when asked;
    /// Ollama's chat and generate stream unless told `"stream": false`.
    fn streams(self, fields: &Fields) -> bool {
        let flag = fields.stream();
        match self {
            Endpoint::OpenAiChat | Endpoint::OpenAiCompletions => flag == Some(true),
            Endpoint::OllamaChat | Endpoint::OllamaGenerate => flag != Some(false),
            _ => false,
        }
    }

    fn wire(self, stream: bool) -> Wire {
        match (self.shape(), stream) {
            (ApiShape::OpenAi, true) => Wire::OpenAiSse,
            (ApiShape::OpenAi, false) => Wire::OpenAiJson,
            (_, true) => Wire::OllamaNdjson,
            (_, false) => Wire::OllamaJson,
        }
    }

    /// The model named in the body: `model`, or `name` in older `/api/show`.
    fn model(self, fields: &Fields) -> Option<String> {
        let name = match self {
            Endpoint::OllamaShow => {
                Fields::text(fields.model.as_ref()).or_else(|| Fields::text(fields.name.as_ref()))
            }
            _ => Fields::text(fields.model.as_ref()),
        };
        name.map(str::to_owned)
    }
}

/// Who asked, for the ledger: address and User-Agent, never a key.
fn client_of(request: &Request) -> String {
    let peer =
        crate::server::peer_of(request).map_or_else(|| "-".to_owned(), |p| p.ip().to_string());
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(120).collect::<String>());
    match agent {
        Some(a) => format!("{peer} {a}"),
        None => peer,
    }
}

/// An error answer in the client's shape.
fn fail(shape: ApiShape, status: u16, kind: ErrorKind, message: &str) -> Response {
    let (status, body) = error_body(shape, status, kind, message);
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if kind == ErrorKind::Overloaded {
        // A legacy Clawdbot's OpenAI SDK honours `x-should-retry`: it stops
        // retrying a fleet that is known to be down. OpenClaw reads the same
        // hint from the text (`errors::RETRY_AFTER_SECS`); other clients
        // from `Retry-After`.
        let headers = response.headers_mut();
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

/// How much of a request body the proxy reads, and for how long.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    /// Bytes at most (`[proxy] max_body_bytes`).
    max_bytes: u64,
    /// The whole body within this time (`[proxy] body_read_timeout_secs`);
    /// the time between its frames is the router's layer's.
    deadline: Duration,
}

impl BodyLimits {
    fn of(config: &Config) -> Self {
        Self {
            max_bytes: config.proxy.max_body_bytes,
            deadline: Duration::from_secs(config.proxy.body_read_timeout_secs),
        }
    }
}

/// Reads a request body within `limits`. A `Content-Length` above the
/// size limit is refused before a byte of the body is read (hyper has
/// checked the header: one value, and none beside `Transfer-Encoding`).
async fn read_body(request: Request, limits: BodyLimits) -> Result<Bytes, BodyProblem> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_bytes) {
        return Err(BodyProblem::TooLarge);
    }
    let limit = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
    let read = axum::body::to_bytes(request.into_body(), limit);
    let e = match tokio::time::timeout(limits.deadline, read).await {
        Err(_) => return Err(BodyProblem::TooSlow),
        Ok(Ok(b)) => return Ok(b),
        Ok(Err(e)) => e,
    };
    // axum reports the size limit as a length-limit error, and the router's
    // layer a pause between frames as a `TimeoutError`, in the source chain.
    let text = format!("{e}");
    let mut too_large = text.contains("length limit");
    let mut too_slow = false;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        too_large |= s.to_string().contains("length limit");
        too_slow |= s.is::<tower_http::timeout::TimeoutError>();
        source = s.source();
    }
    Err(if too_large {
        BodyProblem::TooLarge
    } else if too_slow {
        BodyProblem::TooSlow
    } else {
        BodyProblem::Broken(text)
    })
}

enum BodyProblem {
    TooLarge,
    /// Not all there within the overall time, or a pause between frames
    /// longer than the router allows.
    TooSlow,
    Broken(String),
}

/// The ledger record of a request that has just arrived: an error until
/// the response says otherwise.
fn new_record(started_at: Timestamp, client: String, api: &str, endpoint: &str) -> Record {
    Record {
        started_at,
        client,
        api: api.to_owned(),
        endpoint: endpoint.to_owned(),
        requested_model: None,
        machine: None,
        fallback_depth: 0,
        stream: false,
        usage: None,
        ttfb_ms: None,
        duration_ms: 0.0,
        status: 0,
        outcome: "error".to_owned(),
        error: None,
    }
}

/// A request refused before any machine was asked: status, kind, words.
struct Refusal(u16, ErrorKind, String);

/// What the proxy reads of a request body: the fields that route and meter
/// it. serde skips everything else (its syntax still checked) without
/// building it: a chat request with a long history costs one scan, not an
/// allocation per message. Values rather than typed fields, so that a
/// `"stream": "yes"` is ignored as it always was rather than refused.
#[derive(Debug, Default, serde::Deserialize)]
struct Fields {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
}

impl Fields {
    fn text(field: Option<&Value>) -> Option<&str> {
        field.and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    fn stream(&self) -> Option<bool> {
        self.stream.as_ref().and_then(Value::as_bool)
    }

    /// `stream_options.include_usage` is `true`.
    fn wants_usage(&self) -> bool {
        options_want_usage(self.stream_options.as_ref())
    }
}

/// A request body as the client sent it, with the fields the proxy reads.
struct JsonBody {
    bytes: Bytes,
    fields: Fields,
}

impl JsonBody {
    /// The whole body as a tree, for the rare request that must be
    /// rewritten (a pinned model name, the usage chunk asked for).
    fn tree(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.bytes).map_err(|e| e.to_string())
    }
}

/// Reads a JSON request body and its [`Fields`]; a refusal is 400, 408 or
/// 413.
async fn json_body(request: Request, limits: BodyLimits) -> Result<JsonBody, Refusal> {
    let bytes = match read_body(request, limits).await {
        Ok(b) => b,
        Err(BodyProblem::TooLarge) => {
            return Err(Refusal(
                413,
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body is larger than {} bytes ([proxy] max_body_bytes)",
                    limits.max_bytes
                ),
            ));
        }
        Err(BodyProblem::TooSlow) => {
            return Err(Refusal(
                408,
                ErrorKind::BadRequest,
                format!(
                    "the request body did not arrive in time ([proxy] body_read_timeout_secs = {} for all of it, body_idle_timeout_secs between its parts)",
                    limits.deadline.as_secs()
                ),
            ));
        }
        Err(BodyProblem::Broken(why)) => {
            return Err(Refusal(
                400,
                ErrorKind::BadRequest,
                format!("could not read the request body: {why}"),
            ));
        }
    };
    let bad = |why: String| Err(Refusal(400, ErrorKind::BadRequest, why));
    // serde_json does not check the UTF-8 of strings it skips.
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return bad(format!(
                "the request body is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ));
        }
    };
    // A struct also deserializes from a JSON array: look first.
    if !text.trim_start().starts_with('{') {
        return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => bad("request body must be a JSON object".to_owned()),
            Err(e) => bad(format!("malformed JSON in request body: {e}")),
        };
    }
    match serde_json::from_str::<Fields>(text) {
        Ok(fields) => Ok(JsonBody { bytes, fields }),
        Err(e) => bad(format!("malformed JSON in request body: {e}")),
    }
}

/// Answers a refusal in the client's shape and records it in the ledger:
/// every request the proxy sees is in the ledger, served or not.
fn refuse(
    ledger: &LedgerHandle,
    mut record: Record,
    started: Instant,
    shape: ApiShape,
    r: Refusal,
) -> Response {
    let Refusal(status, kind, message) = r;
    record.status = status;
    record.outcome = "error".to_owned();
    record.error = Some(message.clone());
    record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    ledger.record_nowait(record);
    fail(shape, status, kind, &message)
}

/// One failed attempt, for the 503 text and the fallbacks header.
struct Tried {
    machine: String,
    why: String,
}

fn tried_list(tried: &[Tried]) -> String {
    tried
        .iter()
        .map(|t| format!("{} ({})", t.machine, t.why))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A header value from free text: visible ASCII only, capped.
fn header_text(text: &str) -> HeaderValue {
    // A machine id (every response names one) is clean already: no copy.
    if text.len() <= 512
        && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && let Ok(value) = HeaderValue::from_str(text)
    {
        return value;
    }
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(512)
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

async fn infer(
    State(proxy): State<Arc<Proxy>>,
    endpoint: Endpoint,
    prefer: Option<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let started_at = Timestamp::now();
    let client = client_of(&request);
    let shape = endpoint.shape();
    let span = info_span!(
        "proxy",
        path = endpoint.path(),
        model = tracing::field::Empty,
        machine = tracing::field::Empty
    );
    async move {
        let mut record = new_record(started_at, client, endpoint.api(), endpoint.path());
        let body = match json_body(request, BodyLimits::of(&proxy.config)).await {
            Ok(b) => b,
            Err(r) => return refuse(&proxy.ledger, record, started, shape, r),
        };
        let Some(model) = endpoint.model(&body.fields) else {
            let r = Refusal(
                400,
                ErrorKind::BadRequest,
                "the request names no model: set \"model\"".to_owned(),
            );
            return refuse(&proxy.ledger, record, started, shape, r);
        };
        tracing::Span::current().record("model", model.as_str());
        let stream = endpoint.streams(&body.fields);
        record.requested_model = Some(model.clone());
        record.stream = stream;
        let snap = proxy.snapshot.borrow().clone();
        let mut candidates = match route::plan(&model, &proxy.config, &proxy.fleet, &snap) {
            Ok(c) => c,
            Err(e @ RouteError::UnknownModel { .. }) => {
                let r = Refusal(404, ErrorKind::ModelNotFound, e.to_string());
                return refuse(&proxy.ledger, record, started, shape, r);
            }
            // It may exist on a machine that is down: nothing can serve it
            // now, which the agent moves on from (see errors::RETRY_AFTER_SECS).
            Err(e @ RouteError::NoneUp { .. }) => {
                let r = Refusal(503, ErrorKind::Overloaded, e.to_string());
                return refuse(&proxy.ledger, record, started, shape, r);
            }
        };
        if let Some(machine) = prefer.as_deref() {
            if !proxy.fleet.machines().any(|m| m.id == machine) {
                let r = Refusal(
                    404,
                    ErrorKind::ModelNotFound,
                    format!(
                        "no machine {:?} in the fleet: the address /via/<machine>/ names a machine id of ClawFleet's config",
                        crate::net::preview(machine.as_bytes(), 60)
                    ),
                );
                return refuse(&proxy.ledger, record, started, shape, r);
            }
            route::prefer(&mut candidates, machine);
        }
        // Ask upstream for the usage chunk even when the client did not, and
        // take it out again on the way back. Only then, or when a candidate
        // knows the model by another name, is the body parsed whole.
        let mut tree = None;
        let mut filter_usage = false;
        if endpoint == Endpoint::OpenAiChat && stream && !body.fields.wants_usage() {
            match body.tree() {
                Ok(mut t) => {
                    filter_usage = ask_for_usage(&mut t);
                    tree = Some(t);
                }
                Err(e) => {
                    let r = Refusal(400, ErrorKind::BadRequest, format!("malformed JSON in request body: {e}"));
                    return refuse(&proxy.ledger, record, started, shape, r);
                }
            }
        }

        let mut tried: Vec<Tried> = Vec::new();
        for candidate in &candidates {
            match attempt(
                &proxy,
                endpoint,
                candidate,
                &body,
                &mut tree,
                &model,
                filter_usage,
            )
            .await
            {
                Ok(upstream) => {
                    tracing::Span::current().record("machine", candidate.machine.as_str());
                    record.machine = Some(candidate.machine.clone());
                    record.fallback_depth = u32::try_from(tried.len()).unwrap_or(u32::MAX);
                    let wire = endpoint.wire(stream);
                    if wire.is_whole_body()
                        && !filter_usage
                        && upstream.content_length.is_some_and(|n| n <= WHOLE_BODY_MAX)
                    {
                        return relay_whole(
                            upstream,
                            Relay {
                                shape,
                                wire,
                                filter_usage,
                                started,
                                record,
                                ledger: proxy.ledger.clone(),
                                machine: Some(candidate.machine.clone()),
                                fallbacks: (!tried.is_empty()).then(|| tried_list(&tried)),
                            },
                        )
                        .await;
                    }
                    return relay(
                        upstream,
                        Relay {
                            shape,
                            wire: endpoint.wire(stream),
                            filter_usage,
                            started,
                            record,
                            ledger: proxy.ledger.clone(),
                            machine: Some(candidate.machine.clone()),
                            fallbacks: (!tried.is_empty()).then(|| tried_list(&tried)),
                        },
                    );
                }
                Err(why) => {
                    debug!(machine = %candidate.machine, %why, "candidate failed");
                    tried.push(Tried {
                        machine: candidate.machine.clone(),
                        why,
                    });
                }
            }
        }
        let message = format!(
            "overloaded: no machine of the fleet could serve {model:?}; tried {}",
            if tried.is_empty() {
                "none".to_owned()
            } else {
                tried_list(&tried)
            }
        );
        warn!("{message}");
        record.status = 503;
        record.fallback_depth = u32::try_from(tried.len()).unwrap_or(u32::MAX);
        record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        record.error = Some(message.clone());
        proxy.ledger.record_nowait(record);
        fail(shape, 503, ErrorKind::Overloaded, &message)
    }
    .instrument(span)
    .await
}

/// Sends the request to one candidate. `Ok` is a response head worth
/// passing on; `Err` says why to try the next machine.
async fn attempt(
    proxy: &Proxy,
    endpoint: Endpoint,
    candidate: &Candidate,
    body: &JsonBody,
    tree: &mut Option<Value>,
    model: &str,
    modified: bool,
) -> Result<Answer, String> {
    if let Admission::Open { retry_in } = proxy.admit(&candidate.machine) {
        return Err(format!(
            "circuit open, next try in {} s",
            retry_in.as_secs().max(1)
        ));
    }
    // The bytes the client sent, unless the model name or usage request
    // had to change.
    let payload = if candidate.model == model && !modified {
        body.bytes.clone()
    } else {
        let tree = match tree {
            Some(t) => t,
            None => tree.insert(body.tree()?),
        };
        tree["model"] = Value::String(candidate.model.clone());
        Bytes::from(serde_json::to_vec(tree).map_err(|e| e.to_string())?)
    };
    let first_byte = Duration::from_secs(proxy.config.proxy.first_byte_timeout_secs);
    let sent = proxy.upstreams.post_json(
        &candidate.base_url,
        endpoint.path(),
        candidate.is_self,
        payload,
    );
    // A machine may take minutes to start answering (a model to load, a
    // long prompt, requests queued ahead), but one that accepted the
    // connection and answers nothing at all (a frozen process, a path that
    // died) is found by asking it something trivial meanwhile.
    let answered = tokio::select! {
        biased;
        answered = tokio::time::timeout(first_byte, sent) => answered,
        why = hung(proxy, candidate) => Ok(Err(why)),
    };
    let outcome = match answered {
        Err(_) => Err(format!("no answer within {} s", first_byte.as_secs())),
        Ok(Err(why)) => Err(why),
        Ok(Ok(response)) => {
            let status = response.status;
            if status.is_server_error()
                || status == StatusCode::NOT_FOUND
                || status == StatusCode::TOO_MANY_REQUESTS
            {
                Err(format!(
                    "HTTP {}: {}",
                    status.as_u16(),
                    error_text(response).await
                ))
            } else if let Some(other) = not_a_model_server(&response) {
                // Something else answers on that port (a web UI, a captive
                // portal): not an answer to pass on.
                Err(format!(
                    "answered {other}, not a model server's JSON or stream"
                ))
            } else {
                Ok(response)
            }
        }
    };
    // A 404 is the machine lacking the model, not the machine failing.
    let healthy = match &outcome {
        Ok(_) => true,
        Err(why) => why.starts_with("HTTP 404"),
    };
    proxy.report(&candidate.machine, healthy);
    outcome
}

/// Resolves, with why, once `candidate` is found hung while a request to it
/// waits for its answer's head: `[proxy] hang_check_after_ms` after the
/// request went out and then every `hang_check_every_secs`, its
/// `/api/version` must answer within `hang_check_timeout_ms`. Never
/// resolves while it does.
async fn hung(proxy: &Proxy, candidate: &Candidate) -> String {
    let px = &proxy.config.proxy;
    let limit = Duration::from_millis(px.hang_check_timeout_ms);
    tokio::time::sleep(Duration::from_millis(px.hang_check_after_ms)).await;
    loop {
        if let Err(why) = proxy
            .upstreams
            .answers(&candidate.base_url, candidate.is_self, limit)
            .await
        {
            return format!(
                "accepted the request but answers nothing: its /api/version said {why}"
            );
        }
        tokio::time::sleep(Duration::from_secs(px.hang_check_every_secs)).await;
    }
}

/// The content type of a response that cannot be a model server's answer
/// (HTML and the like); `None` for JSON, NDJSON, SSE or no content type.
fn not_a_model_server(response: &Answer) -> Option<String> {
    let ct = response
        .content_type
        .as_ref()?
        .to_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    let ok = ct.starts_with("application/json")
        || ct.starts_with("application/x-ndjson")
        || ct.starts_with("text/event-stream")
        || ct.starts_with("text/plain");
    (!ok).then(|| format!("with {ct}"))
}

/// The error text of a failed upstream answer, short.
async fn error_text(response: Answer) -> String {
    let body = tokio::time::timeout(Duration::from_secs(2), response.read_limited(16 * 1024)).await;
    let Ok(Ok(body)) = body else {
        return "no readable body".to_owned();
    };
    let parsed: Option<String> = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("error").and_then(|e| {
            e.as_str()
                .map(str::to_owned)
                .or_else(|| e.get("message").and_then(Value::as_str).map(str::to_owned))
        })
    });
    parsed.unwrap_or_else(|| net::preview(&body, 200))
}

/// What [`relay`] needs to meter and record a response.
struct Relay {
    shape: ApiShape,
    wire: Wire,
    filter_usage: bool,
    started: Instant,
    record: Record,
    ledger: LedgerHandle,
    machine: Option<String>,
    fallbacks: Option<String>,
}

/// Writes the record if the response never finished (the client went away
/// and hyper dropped the body): the upstream request is cancelled by the
/// same drop.
struct Unfinished {
    record: Option<Record>,
    ledger: LedgerHandle,
    started: Instant,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.outcome = "client_disconnected".to_owned();
            record.error =
                Some("the client closed the connection before the response ended".to_owned());
            record.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            self.ledger.record_nowait(record);
        }
    }
}

struct RelayState {
    upstream: BodyStream,
    tap: UsageTap,
    filter: Option<SseUsageFilter>,
    shape: ApiShape,
    wire: Wire,
    guard: Unfinished,
    done: bool,
    /// The upstream status was a success (2xx).
    success: bool,
}

/// Writes the response's ledger record, once, with what the tap read, and
/// waits for its commit: the caller then lets the client see the end, so a
/// completed response is never lost to a crash. (Past the ledger's
/// `COMMIT_WAIT`, when SQLite is locked by another connection, the end goes
/// out and the record stays queued.) `broke_off` is why the upstream answer
/// ended early, if it did.
async fn settle(s: &mut RelayState, broke_off: Option<String>) {
    let Some(mut rec) = s.guard.record.take() else {
        return;
    };
    let report = s.tap.finish();
    rec.usage = report.usage;
    rec.duration_ms = s.guard.started.elapsed().as_secs_f64() * 1000.0;
    match (broke_off, report.error) {
        (Some(why), _) => {
            rec.outcome = "upstream_failed_midstream".to_owned();
            rec.error = Some(why);
        }
        (None, Some(e)) => {
            rec.outcome = "error".to_owned();
            rec.error = Some(e);
        }
        (None, None) if s.success => rec.outcome = "ok".to_owned(),
        (None, None) => rec.outcome = "error".to_owned(),
    }
    match s.guard.ledger.record(rec).await {
        Ok(()) => {}
        // Still queued, stored when SQLite lets go; the ledger logs it.
        Err(LedgerError::Late { .. }) => {}
        Err(e) => warn!("ledger write failed: {e}"),
    }
}

/// The largest upstream answer of one JSON object (a non-streamed request,
/// with its length announced) that [`relay_whole`] reads before answering.
const WHOLE_BODY_MAX: u64 = 1024 * 1024;

/// A non-streamed answer of known, small length: read whole, metered and
/// recorded, then sent in one piece with its `Content-Length` — one write
/// instead of a chunked stream and its terminator, and since nothing reached
/// the client yet, an upstream that breaks off becomes a clean 502 in the
/// client's shape rather than a cut-off body.
async fn relay_whole(upstream: Answer, r: Relay) -> Response {
    let status = upstream.status;
    let content_type = upstream.content_type;
    let mut record = r.record;
    record.status = status.as_u16();
    let mut s = RelayState {
        upstream: upstream.body,
        tap: UsageTap::new(r.wire),
        filter: None,
        shape: r.shape,
        wire: r.wire,
        guard: Unfinished {
            record: Some(record),
            ledger: r.ledger,
            started: r.started,
        },
        done: false,
        success: status.is_success(),
    };
    // An answer that came in one chunk (the usual case) is sent as that
    // chunk; only one that came in several is copied into one buffer.
    let mut body = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    let broke_off = loop {
        match s.upstream.next().await {
            Some(Ok(chunk)) => {
                s.tap.feed(&chunk);
                let held = joined.as_ref().map_or(body.len(), Vec::len);
                if (held + chunk.len()) as u64 > WHOLE_BODY_MAX {
                    break Some(format!(
                        "the machine's answer is longer than the {WHOLE_BODY_MAX} bytes it announced"
                    ));
                }
                if body.is_empty() && joined.is_none() {
                    body = chunk;
                } else {
                    joined
                        .get_or_insert_with(|| body.to_vec())
                        .extend_from_slice(&chunk);
                }
            }
            Some(Err(e)) => break Some(format!("the machine's answer broke off: {e}")),
            None => break None,
        }
    };
    if let Some(why) = broke_off {
        if let Some(rec) = s.guard.record.as_mut() {
            rec.status = 502;
        }
        settle(&mut s, Some(why.clone())).await;
        let mut response = fail(r.shape, 502, ErrorKind::Upstream, &why);
        relay_headers(&mut response, r.machine.as_deref(), r.fallbacks.as_deref());
        return response;
    }
    if let Some(rec) = s.guard.record.as_mut() {
        rec.ttfb_ms = Some(s.guard.started.elapsed().as_secs_f64() * 1000.0);
    }
    settle(&mut s, None).await;
    let body = joined.map_or(body, Bytes::from);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    relay_headers(&mut response, r.machine.as_deref(), r.fallbacks.as_deref());
    response
}

/// The headers every relayed answer carries: who served, what was tried.
fn relay_headers(response: &mut Response, machine: Option<&str>, fallbacks: Option<&str>) {
    let headers = response.headers_mut();
    if let Some(m) = machine {
        headers.insert(HeaderName::from_static(MACHINE_HEADER), header_text(m));
    }
    if let Some(f) = fallbacks {
        headers.insert(HeaderName::from_static(FALLBACKS_HEADER), header_text(f));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// Passes the upstream body to the client chunk by chunk, reading usage as
/// it goes; writes the ledger record before the client can see the end:
/// before the stream's terminal frame, or else before the body's end.
fn relay(upstream: Answer, r: Relay) -> Response {
    let status = upstream.status;
    let content_type = upstream.content_type;
    let mut record = r.record;
    record.status = status.as_u16();
    let state = RelayState {
        upstream: upstream.body,
        tap: UsageTap::new(r.wire),
        filter: r.filter_usage.then(SseUsageFilter::new),
        shape: r.shape,
        wire: r.wire,
        guard: Unfinished {
            record: Some(record),
            ledger: r.ledger,
            started: r.started,
        },
        done: false,
        success: status.is_success(),
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            match s.upstream.next().await {
                Some(Ok(chunk)) => {
                    s.tap.feed(&chunk);
                    let out = match s.filter.as_mut() {
                        Some(f) => f.push(chunk),
                        None => chunk,
                    };
                    if !out.is_empty()
                        && let Some(rec) = s.guard.record.as_mut()
                        && rec.ttfb_ms.is_none()
                    {
                        rec.ttfb_ms = Some(s.guard.started.elapsed().as_secs_f64() * 1000.0);
                    }
                    // A client takes the terminal frame (`done: true`,
                    // `data: [DONE]`, `message_stop`) as the end of its
                    // answer and may stop reading there (ollama-js does):
                    // the record is committed before that frame goes out.
                    if s.tap.reached_end() {
                        settle(&mut s, None).await;
                    }
                    if out.is_empty() {
                        continue;
                    }
                    return Some((Ok::<Bytes, std::io::Error>(out), s));
                }
                Some(Err(e)) => {
                    s.done = true;
                    // No record left: it was settled at the terminal frame,
                    // the client already has the whole answer, and only the
                    // connection's close went wrong. End the body cleanly.
                    s.guard.record.as_ref()?;
                    let why = format!("the machine's answer broke off: {e}");
                    settle(&mut s, Some(why.clone())).await;
                    if !s.wire.is_whole_body() {
                        // A well-formed error in the client's stream format,
                        // never a silent truncation.
                        let frame = stream_error_frame(s.shape, s.wire.is_sse(), &why);
                        return Some((Ok(Bytes::from(frame)), s));
                    }
                    // A whole JSON body cannot be mended: abort the response
                    // so the client sees an incomplete message.
                    return Some((Err(std::io::Error::other(why)), s));
                }
                None => {
                    s.done = true;
                    let tail = s
                        .filter
                        .as_mut()
                        .map(SseUsageFilter::finish)
                        .unwrap_or_default();
                    // A whole body (or a stream that never sent its terminal
                    // frame) ends here: committed before the client sees
                    // the end.
                    settle(&mut s, None).await;
                    if tail.is_empty() {
                        return None;
                    }
                    return Some((Ok(tail), s));
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    relay_headers(&mut response, r.machine.as_deref(), r.fallbacks.as_deref());
    response
}

fn json_ok(value: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response()
}

/// `GET /api/tags`, merged: each model once with the machines that have it
/// (`machines`), then each machine's copy under its pinned name
/// (`macmini/gpt-oss:20b`, with `machine`).
async fn ollama_tags(State(proxy): State<Arc<Proxy>>) -> Response {
    let snap = proxy.snapshot.borrow().clone();
    let mut merged: Vec<(String, Value, Vec<String>)> = Vec::new();
    let mut pinned = Vec::new();
    for m in &snap.machines {
        for model in m
            .ollama
            .iter()
            .filter(|o| o.reachable)
            .flat_map(|o| o.models.iter())
        {
            let entry = |name: &str| {
                json!({
                    "name": name,
                    "model": name,
                    "modified_at": model.modified_at,
                    "size": model.size_bytes,
                    "digest": model.digest,
                    "details": {
                        "format": model.format,
                        "family": model.family,
                        "parameter_size": model.parameter_size,
                        "quantization_level": model.quantization,
                    },
                })
            };
            match merged.iter_mut().find(|(n, _, _)| n == &model.name) {
                Some((_, _, machines)) => machines.push(m.id.clone()),
                None => merged.push((model.name.clone(), entry(&model.name), vec![m.id.clone()])),
            }
            let mut p = entry(&format!("{}/{}", m.id, model.name));
            p["machine"] = json!(m.id);
            pinned.push(p);
        }
    }
    let mut models: Vec<Value> = merged
        .into_iter()
        .map(|(_, mut v, machines)| {
            v["machines"] = json!(machines);
            v
        })
        .collect();
    models.extend(pinned);
    json_ok(&json!({ "models": models }))
}

/// `GET /api/ps`, merged, each entry with its `machine`, and `details` as
/// in `/api/tags` (typed clients such as ollama-js expect the object).
async fn ollama_ps(State(proxy): State<Arc<Proxy>>) -> Response {
    let snap = proxy.snapshot.borrow().clone();
    let models: Vec<Value> =
        snap.machines
            .iter()
            .flat_map(|m| {
                m.ollama.iter().flat_map(move |o| {
                    o.loaded.iter().map(move |l| {
                    let installed = o.models.iter().find(|i| route::same_model(&i.name, &l.name));
                    json!({
                        "name": l.name,
                        "model": l.name,
                        "size": l.size_bytes,
                        "size_vram": l.vram_bytes,
                        "expires_at": l.expires_at,
                        "details": {
                            "family": installed.and_then(|i| i.family.as_ref()),
                            "parameter_size": installed.and_then(|i| i.parameter_size.as_ref()),
                            "quantization_level": installed.and_then(|i| i.quantization.as_ref()),
                        },
                        "machine": m.id,
                    })
                })
                })
            })
            .collect();
    json_ok(&json!({ "models": models }))
}

/// `GET /api/version`: this machine's Ollama version, else the first peer's
/// that answered (clients use it to pick features).
async fn ollama_version(State(proxy): State<Arc<Proxy>>) -> Response {
    let snap = proxy.snapshot.borrow().clone();
    let version = snap
        .local()
        .into_iter()
        .chain(snap.machines.iter())
        .find_map(|m| m.ollama.as_ref().and_then(|o| o.version.clone()));
    match version {
        Some(v) => json_ok(&json!({ "version": v })),
        None => fail(
            ApiShape::Ollama,
            503,
            ErrorKind::Overloaded,
            "overloaded: no Ollama of the fleet has answered yet",
        ),
    }
}

/// `GET /v1/models`: every model of the fleet, plain and pinned, owned by
/// the machine that has it.
async fn openai_models(State(proxy): State<Arc<Proxy>>) -> Response {
    let snap = proxy.snapshot.borrow().clone();
    let mut seen = std::collections::HashSet::new();
    let mut data = Vec::new();
    for m in &snap.machines {
        for model in m
            .ollama
            .iter()
            .filter(|o| o.reachable)
            .flat_map(|o| o.models.iter())
        {
            if seen.insert(model.name.clone()) {
                data.push(
                    json!({ "id": model.name, "object": "model", "created": 0, "owned_by": m.id }),
                );
            }
            data.push(json!({ "id": format!("{}/{}", m.id, model.name), "object": "model", "created": 0, "owned_by": m.id }));
        }
    }
    json_ok(&json!({ "object": "list", "data": data }))
}

/// `GET /v1/models/{model}`.
async fn openai_model(State(proxy): State<Arc<Proxy>>, Path(model): Path<String>) -> Response {
    let snap = proxy.snapshot.borrow().clone();
    match route::plan(&model, &proxy.config, &proxy.fleet, &snap) {
        Ok(c) if !c.is_empty() => json_ok(&json!({
            "id": model, "object": "model", "created": 0, "owned_by": c[0].machine,
        })),
        Ok(_) => fail(
            ApiShape::OpenAi,
            404,
            ErrorKind::ModelNotFound,
            &format!("model {model:?} not found"),
        ),
        Err(e) => fail(
            ApiShape::OpenAi,
            404,
            ErrorKind::ModelNotFound,
            &e.to_string(),
        ),
    }
}

/// `GET /`: what Ollama answers there, which clients use to see that it is
/// up.
async fn ollama_root() -> &'static str {
    "Ollama is running"
}

/// The machine a `/via/<machine>` path names, when the route has one.
type ViaMachine = Option<Path<std::collections::HashMap<String, String>>>;

/// Model management (`pull`, `push`, `create`, `copy`, `delete`, `blobs`)
/// goes to one Ollama, streamed both ways, unmetered: this machine's, or,
/// under `/via/<machine>/`, that machine's.
async fn manage_ollama(
    State(proxy): State<Arc<Proxy>>,
    via: ViaMachine,
    request: Request,
) -> Response {
    let via = via.and_then(|Path(p)| p.get("machine").cloned());
    let machine = match &via {
        None => Some(&proxy.fleet.this),
        Some(id) => proxy.fleet.machines().find(|m| &m.id == id),
    };
    let Some(machine) = machine else {
        return fail(
            ApiShape::Ollama,
            404,
            ErrorKind::BadRequest,
            &format!(
                "no machine {:?} in the fleet: /via/<machine>/ takes a machine id of ClawFleet's config",
                via.unwrap_or_default()
            ),
        );
    };
    let Some(base) = machine.ollama_url.as_deref() else {
        return fail(
            ApiShape::Ollama,
            503,
            ErrorKind::Upstream,
            &format!(
                "the machine {} has no Ollama (no ollama_url in its [[machines]] entry)",
                machine.id
            ),
        );
    };
    let method = request.method().clone();
    let path = request.uri().path();
    // The path Ollama knows: without the `/via/<machine>` prefix.
    let path = match via.as_deref() {
        Some(_) => path
            .strip_prefix("/via/")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(path),
        None => path,
    };
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let body = reqwest::Body::wrap_stream(request.into_body().into_data_stream());
    let method =
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut upstream = proxy.upstreams.direct().request(method, &url).body(body);
    if let Some(ct) = content_type {
        upstream = upstream.header(header::CONTENT_TYPE, ct);
    }
    match upstream.send().await {
        Ok(response) => pass_through(response),
        Err(e) => fail(
            ApiShape::Ollama,
            502,
            ErrorKind::Upstream,
            &format!("{}'s Ollama at {base}: {}", machine.id, net::describe(&e)),
        ),
    }
}

/// An upstream response passed on as it is, streamed.
fn pass_through(upstream: reqwest::Response) -> Response {
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let body = Body::from_stream(upstream.bytes_stream());
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}

/// Headers a client may send that Anthropic needs; everything else (cookies,
/// the client's Host) stays here.
const ANTHROPIC_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta", "content-type"];

/// How a request to Anthropic authenticates; the value is marked sensitive.
enum Credential {
    /// `x-api-key`.
    ApiKey(HeaderValue),
    /// `Authorization` as the client sent it (an OAuth bearer token).
    Bearer(HeaderValue),
}

/// The client's credential (`x-api-key`, else `Authorization`), else the key
/// file's, else the OS keychain's; and whether it came from the keychain.
/// `Err` says, for a 401, why there is none.
async fn anthropic_credential(
    proxy: &Proxy,
    headers: &HeaderMap,
) -> Result<(Credential, bool), String> {
    let sensitive = |mut v: HeaderValue| {
        v.set_sensitive(true);
        v
    };
    if let Some(v) = headers.get("x-api-key") {
        return Ok((Credential::ApiKey(sensitive(v.clone())), false));
    }
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return Ok((Credential::Bearer(sensitive(v.clone())), false));
    }
    let key_header = |key: &str| {
        HeaderValue::from_str(key)
            .map(sensitive)
            .map_err(|_| "the configured Anthropic key is not a valid header value".to_owned())
    };
    if let Some(key) = &proxy.anthropic_key {
        return Ok((Credential::ApiKey(key_header(key)?), false));
    }
    let Some(keychain) = &proxy.anthropic_keychain else {
        return Err("no Anthropic API key: the request sent none (x-api-key or Authorization); set [proxy] anthropic_key_file, or anthropic_key_keychain = true and `clawfleet secret set anthropic`".to_owned());
    };
    match keychain.get().await {
        Ok(key) => Ok((Credential::ApiKey(key_header(&key)?), true)),
        Err(e) => Err(format!(
            "no Anthropic API key: the request sent none (x-api-key or Authorization), no [proxy] anthropic_key_file is set, and {e}"
        )),
    }
}

/// `POST /v1/messages`, passed to Anthropic and metered. The credential is
/// the client's, else the configured key's ([`anthropic_credential`]).
async fn anthropic(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let started = Instant::now();
    let started_at = Timestamp::now();
    let client = client_of(&request);
    let headers: HeaderMap = request.headers().clone();
    let shape = ApiShape::Anthropic;
    let mut record = new_record(started_at, client, "anthropic", "/v1/messages");
    let JsonBody {
        bytes: original,
        fields,
    } = match json_body(request, BodyLimits::of(&proxy.config)).await {
        Ok(b) => b,
        Err(r) => return refuse(&proxy.ledger, record, started, shape, r),
    };
    let Some(model) = fields
        .model
        .as_ref()
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        let r = Refusal(
            400,
            ErrorKind::BadRequest,
            "the request names no model: set \"model\"".to_owned(),
        );
        return refuse(&proxy.ledger, record, started, shape, r);
    };
    let stream = fields.stream() == Some(true);
    record.requested_model = Some(model);
    record.stream = stream;
    let (credential, from_keychain) = match anthropic_credential(&proxy, &headers).await {
        Ok(c) => c,
        Err(why) => {
            return refuse(
                &proxy.ledger,
                record,
                started,
                shape,
                Refusal(401, ErrorKind::Unauthenticated, why),
            );
        }
    };
    let url = format!(
        "{}/v1/messages",
        proxy.config.proxy.anthropic_url.trim_end_matches('/')
    );
    let mut upstream = proxy.upstreams.direct().post(&url).body(original);
    for name in ANTHROPIC_HEADERS {
        if let Some(v) = headers.get(*name) {
            upstream = upstream.header(*name, v);
        }
    }
    if !headers.contains_key("anthropic-version") {
        upstream = upstream.header("anthropic-version", "2023-06-01");
    }
    upstream = match credential {
        Credential::ApiKey(key) => upstream.header("x-api-key", key),
        Credential::Bearer(token) => upstream.header(header::AUTHORIZATION, token),
    };
    record.machine = Some("anthropic".to_owned());

    let first_byte = Duration::from_secs(proxy.config.proxy.first_byte_timeout_secs);
    let why = match tokio::time::timeout(first_byte, upstream.send()).await {
        Ok(Ok(response)) => {
            if from_keychain && response.status() == StatusCode::UNAUTHORIZED {
                // Refused: read the keychain again next time, not in a minute.
                if let Some(k) = &proxy.anthropic_keychain {
                    k.forget().await;
                }
            }
            let answer = match Answer::from_reqwest(response, proxy.upstreams.idle()) {
                Ok(a) => a,
                Err(why) => {
                    let why = format!("Anthropic {why}");
                    record.status = 502;
                    record.error = Some(why.clone());
                    record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                    proxy.ledger.record_nowait(record);
                    return fail(shape, 502, ErrorKind::Upstream, &why);
                }
            };
            return relay(
                answer,
                Relay {
                    shape,
                    wire: if stream {
                        Wire::AnthropicSse
                    } else {
                        Wire::AnthropicJson
                    },
                    filter_usage: false,
                    started,
                    record,
                    ledger: proxy.ledger.clone(),
                    machine: Some("anthropic".to_owned()),
                    fallbacks: None,
                },
            );
        }
        Err(_) => format!("Anthropic did not answer within {} s", first_byte.as_secs()),
        Ok(Err(e)) => format!("cannot reach Anthropic: {}", net::describe(&e)),
    };
    record.status = 502;
    record.error = Some(why.clone());
    record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    proxy.ledger.record_nowait(record);
    fail(shape, 502, ErrorKind::Upstream, &why)
}

/// The address the proxy is reached at, for logs.
pub fn describe_listener(addr: SocketAddr) -> String {
    format!(
        "inference proxy on http://{addr} (`clawfleet openclaw wire` points OpenClaw's Ollama provider here: api \"ollama\", base URL http://{addr} without /v1; a legacy Clawdbot uses http://{addr}/v1)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_keeps_clean_text_and_mends_the_rest() {
        assert_eq!(header_text("macmini"), "macmini");
        assert_eq!(
            header_text("macmini (HTTP 500: boom), laptop (timed out)"),
            "macmini (HTTP 500: boom), laptop (timed out)"
        );
        assert_eq!(header_text("a\r\nb\tc\u{e9}"), "a??b?c?");
        let long = "x".repeat(600);
        assert_eq!(header_text(&long).len(), 512);
        assert_eq!(header_text(&"x".repeat(512)).len(), 512);
    }

    async fn parse(body: &'static [u8]) -> Result<JsonBody, (u16, String)> {
        let limits = BodyLimits {
            max_bytes: 1024,
            deadline: Duration::from_secs(10),
        };
        json_body(Request::new(Body::from(body)), limits)
            .await
            .map_err(|Refusal(status, _, why)| (status, why))
    }

    #[tokio::test]
    async fn a_body_is_read_for_its_routing_fields_only() {
        let body = parse(br#"{"messages":[{"role":"user","content":"hi"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
            .await
            .expect("parsed");
        assert_eq!(
            Endpoint::OpenAiChat.model(&body.fields).as_deref(),
            Some("m")
        );
        assert!(Endpoint::OpenAiChat.streams(&body.fields));
        assert!(body.fields.wants_usage());
        assert_eq!(body.tree().expect("tree")["messages"][0]["content"], "hi");

        // Not a boolean: ignored as Ollama's own server would, not refused.
        let body = parse(br#"{"model":"m","stream":"yes"}"#)
            .await
            .expect("parsed");
        assert!(!Endpoint::OpenAiChat.streams(&body.fields));
        assert!(Endpoint::OllamaChat.streams(&body.fields));

        let body = parse(br#"{"name":"old"}"#).await.expect("parsed");
        assert_eq!(
            Endpoint::OllamaShow.model(&body.fields).as_deref(),
            Some("old")
        );
        assert_eq!(Endpoint::OllamaChat.model(&body.fields), None);
        let body = parse(br#"{"model":""}"#).await.expect("parsed");
        assert_eq!(Endpoint::OllamaChat.model(&body.fields), None);
    }

    #[tokio::test]
    async fn bad_bodies_are_refused_in_words() {
        let refused = |r: Result<JsonBody, (u16, String)>| match r {
            Ok(b) => panic!("accepted: {:?}", b.fields),
            Err(e) => e,
        };
        let (status, why) = refused(parse(b"[1, 2]").await);
        assert_eq!(
            (status, why.as_str()),
            (400, "request body must be a JSON object")
        );
        let (status, why) = refused(parse(b"[1, 2").await);
        assert_eq!(status, 400);
        assert!(why.starts_with("malformed JSON in request body: "), "{why}");
        // Invalid UTF-8 in a field the proxy skips is still refused.
        let (status, why) = refused(parse(b"{\"model\":\"m\",\"prompt\":\"\xff\"}").await);
        assert_eq!(status, 400);
        assert!(
            why.contains("not UTF-8") && why.contains("offset 23"),
            "{why}"
        );
        let (_, why) = refused(parse(br#"{"model":"m","prompt":"x",}"#).await);
        assert!(why.starts_with("malformed JSON"), "{why}");
        let (_, why) = refused(parse(br#"{"model":"a","model":"b"}"#).await);
        assert!(why.contains("duplicate field `model`"), "{why}");
        let (status, why) = refused(parse(&[b' '; 2000]).await);
        assert_eq!(status, 413, "{why}");
    }
}
