//! A fake Ollama for the benchmarks that measure what users feel
//! (`examples/user_bench.rs`), shared through `#[path]`: a real server on
//! 127.0.0.1 that answers in the shapes of Ollama's `docs/api.md` —
//! `/api/version`, `/api/tags`, `/api/ps`, and `/api/chat`,
//! `/api/generate` (NDJSON when streamed, one JSON object when not) and
//! `/v1/chat/completions` (SSE when streamed) — with what a benchmark needs
//! to control:
//!
//! - how a streamed answer is paced (`pace` between tokens; the request's
//!   `options.num_predict` is the number of tokens, as in Ollama), each
//!   chunk's `created_at` the moment it was written, to the nanosecond;
//! - cold loads: a model not in `/api/ps` makes the request wait
//!   `load_delay` before its first byte, then it is loaded (listed by
//!   `/api/ps`), as Ollama loads a model on first use; every request that
//!   waited is counted;
//! - dying: [`Fake::black_hole`] (connections still accepted, nothing ever
//!   answered, also on connections already open) and [`Fake::refuse`] (the
//!   port closed and every open connection dropped, as when the process
//!   crashes).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a fake is set up with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Installed models (`/api/tags`).
    pub models: Vec<String>,
    /// Of those, loaded at the start (`/api/ps`).
    pub loaded: Vec<String>,
    /// Time between two streamed tokens (zero: as fast as they can be
    /// written).
    pub pace: Duration,
    /// Wait before the first byte of an answer from a model not loaded.
    pub load_delay: Duration,
}

impl Setup {
    /// `models` installed and all loaded, tokens as fast as possible, no
    /// load time.
    pub fn loaded(models: &[&str]) -> Setup {
        Setup {
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            loaded: models.iter().map(|m| (*m).to_owned()).collect(),
            pace: Duration::ZERO,
            load_delay: Duration::ZERO,
        }
    }
}

struct Shared {
    setup: Setup,
    loaded: Mutex<HashSet<String>>,
    /// Held while a model loads: one load at a time, as Ollama's scheduler.
    loading: tokio::sync::Mutex<()>,
    black_hole: AtomicBool,
    /// Requests that had to wait for their model to load.
    cold_waits: AtomicU64,
    /// Connections accepted while black-holed, held open, never read.
    held: Mutex<Vec<TcpStream>>,
    /// The serving tasks of open connections (aborted by `refuse`).
    conns: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake.
pub struct Fake {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Fake {
    /// Starts a fake on an OS-chosen loopback port.
    pub async fn start(setup: Setup) -> std::io::Result<Fake> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            loaded: Mutex::new(setup.loaded.iter().cloned().collect()),
            setup,
            loading: tokio::sync::Mutex::new(()),
            black_hole: AtomicBool::new(false),
            cold_waits: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
        });
        let app = router(shared.clone());
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                // As Go's net/http, which Ollama is served by.
                let _ = tcp.set_nodelay(true);
                if s.black_hole.load(Ordering::SeqCst) {
                    lock(&s.held).push(tcp);
                    continue;
                }
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let task = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
                let mut conns = lock(&s.conns);
                conns.retain(|t| !t.is_finished());
                conns.push(task);
            }
        });
        Ok(Fake {
            addr,
            shared,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on nothing is answered: new connections are accepted and
    /// held, requests on open ones wait forever.
    pub fn black_hole(&self) {
        self.shared.black_hole.store(true, Ordering::SeqCst);
    }

    /// The port closes (a connect is refused) and every open connection is
    /// dropped.
    pub fn refuse(&self) {
        self.accept.abort();
        for t in lock(&self.shared.conns).drain(..) {
            t.abort();
        }
        lock(&self.shared.held).clear();
    }

    /// Requests so far that waited for their model to load.
    pub fn cold_waits(&self) -> u64 {
        self.shared.cold_waits.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.refuse();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/v1/chat/completions", post(openai_chat))
        // Go's net/http answer for an unknown path.
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        .with_state(shared)
}

/// Waits forever when black-holed (a request on a connection opened
/// before).
async fn gate(s: &Shared) {
    if s.black_hole.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

const DIGEST: &str = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72";
const SIZE: u64 = 13_780_173_839;

fn details() -> Value {
    json!({"parent_model": "", "format": "gguf", "family": "gptoss", "families": ["gptoss"],
        "parameter_size": "20.9B", "quantization_level": "MXFP4"})
}

async fn version(State(s): State<Arc<Shared>>) -> Response {
    gate(&s).await;
    json_response(StatusCode::OK, &json!({"version": "0.12.6"}))
}

async fn tags(State(s): State<Arc<Shared>>) -> Response {
    gate(&s).await;
    let models: Vec<Value> = s
        .setup
        .models
        .iter()
        .map(|m| {
            json!({"name": m, "model": m, "modified_at": "2025-11-04T17:37:44.706015396-07:00",
                "size": SIZE, "digest": DIGEST, "details": details()})
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

async fn ps(State(s): State<Arc<Shared>>) -> Response {
    gate(&s).await;
    let mut loaded: Vec<String> = lock(&s.loaded).iter().cloned().collect();
    loaded.sort();
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(300))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let models: Vec<Value> = loaded
        .iter()
        .map(|m| {
            json!({"name": m, "model": m, "size": SIZE, "digest": DIGEST, "details": details(),
                "expires_at": expires.to_string(), "size_vram": SIZE})
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Generate,
    OpenAi,
}

async fn chat(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    answer(&s, Api::Chat, &body).await
}

async fn generate(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    answer(&s, Api::Generate, &body).await
}

async fn openai_chat(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    answer(&s, Api::OpenAi, &body).await
}

fn error(api: Api, status: StatusCode, message: &str) -> Response {
    let body = if api == Api::OpenAi {
        json!({"error": {"message": message, "type": "api_error", "param": null, "code": null}})
    } else {
        json!({ "error": message })
    };
    json_response(status, &body)
}

/// One token of the answer: `t0`, `t1`, … with a space before all but the
/// first.
fn token(i: u64) -> String {
    if i == 0 {
        "t0".to_owned()
    } else {
        format!(" t{i}")
    }
}

/// The final chunk's statistics (Ollama's names, nanoseconds).
fn stats(model: &str, tokens: u64, api: Api) -> Value {
    let mut v = json!({"model": model, "created_at": jiff::Timestamp::now().to_string(), "done": true,
        "done_reason": "stop", "total_duration": 4_883_583_458u64, "load_duration": 1_334_875,
        "prompt_eval_count": 26, "prompt_eval_duration": 342_546_000, "eval_count": tokens,
        "eval_duration": 4_535_599_000u64});
    if api == Api::Chat {
        v["message"] = json!({"role": "assistant", "content": ""});
    } else {
        v["response"] = json!("");
    }
    v
}

async fn answer(s: &Arc<Shared>, api: Api, body: &Bytes) -> Response {
    gate(s).await;
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                api,
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {e}"),
            );
        }
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return error(api, StatusCode::BAD_REQUEST, "model is required");
    };
    if !s.setup.models.iter().any(|m| m == model) {
        return error(
            api,
            StatusCode::NOT_FOUND,
            &format!("model \"{model}\" not found, try pulling it first"),
        );
    }
    // Loading follows use: a request for a model not loaded waits for the
    // load (one at a time), then the model is listed by /api/ps.
    if !lock(&s.loaded).contains(model) {
        s.cold_waits.fetch_add(1, Ordering::SeqCst);
        let _one = s.loading.lock().await;
        if !lock(&s.loaded).contains(model) {
            tokio::time::sleep(s.setup.load_delay).await;
            lock(&s.loaded).insert(model.to_owned());
        }
    }
    let tokens = request
        .pointer("/options/num_predict")
        .and_then(Value::as_u64)
        .or_else(|| request.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(8);
    let stream = request.get("stream").and_then(Value::as_bool) != Some(false);
    // Ollama streams unless told not to; the OpenAI endpoint only when told.
    let stream = if api == Api::OpenAi {
        request.get("stream").and_then(Value::as_bool) == Some(true)
    } else {
        stream
    };
    let model = model.to_owned();
    if !stream {
        let text: String = (0..tokens).map(token).collect();
        let body = match api {
            Api::OpenAi => json!({"id": "chatcmpl-1", "object": "chat.completion",
                "created": jiff::Timestamp::now().as_second(), "model": model, "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 26, "completion_tokens": tokens, "total_tokens": 26 + tokens}}),
            _ => {
                let mut v = stats(&model, tokens, api);
                if api == Api::Chat {
                    v["message"]["content"] = json!(text);
                } else {
                    v["response"] = json!(text);
                }
                v
            }
        };
        return json_response(StatusCode::OK, &body);
    }
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    // Tokens, the final chunk, and for SSE the usage chunk when asked for
    // and `[DONE]`.
    let last = match api {
        Api::OpenAi => tokens + 1 + u64::from(include_usage),
        _ => tokens,
    };
    let pace = s.setup.pace;
    let start = tokio::time::Instant::now();
    let chunks = futures_util::stream::unfold(0u64, move |i| {
        let model = model.clone();
        async move {
            if i > last {
                return None;
            }
            if i > 0 && i < tokens && !pace.is_zero() {
                // On a fixed schedule: a late token does not delay the rest.
                let at = start + pace * u32::try_from(i).unwrap_or(u32::MAX);
                tokio::time::sleep_until(at).await;
            }
            let line = chunk(api, &model, i, tokens, include_usage);
            Some((Ok::<_, std::io::Error>(Bytes::from(line)), i + 1))
        }
    });
    let content_type = if api == Api::OpenAi {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(chunks))
        .unwrap_or_else(|_| error(api, StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

/// Chunk `i` of a streamed answer of `tokens` tokens: a token while
/// `i < tokens`, then the final chunk (and for SSE, the usage chunk when
/// asked for, then `[DONE]`).
fn chunk(api: Api, model: &str, i: u64, tokens: u64, include_usage: bool) -> String {
    let now = jiff::Timestamp::now();
    match api {
        Api::Chat | Api::Generate if i < tokens => {
            let mut v = json!({"model": model, "created_at": now.to_string(), "done": false});
            if api == Api::Chat {
                v["message"] = json!({"role": "assistant", "content": token(i)});
            } else {
                v["response"] = json!(token(i));
            }
            format!("{v}\n")
        }
        Api::Chat | Api::Generate => format!("{}\n", stats(model, tokens, api)),
        Api::OpenAi if i < tokens => format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": now.as_second(),
                "model": model, "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": token(i)}, "finish_reason": null}]})
        ),
        Api::OpenAi if i == tokens => format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": now.as_second(),
                "model": model, "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]})
        ),
        Api::OpenAi if i == tokens + 1 && include_usage => format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": now.as_second(),
                "model": model, "system_fingerprint": "fp_ollama", "choices": [],
                "usage": {"prompt_tokens": 26, "completion_tokens": tokens, "total_tokens": 26 + tokens}})
        ),
        Api::OpenAi => "data: [DONE]\n\n".to_owned(),
    }
}
