//! `FakeOllama`: a real axum server on 127.0.0.1 that answers in the shapes of
//! Ollama's `docs/api.md` (and its OpenAI-compatible endpoints).

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// `GET /api/version` response, verbatim from docs/api.md.
pub const DOC_VERSION_JSON: &str = include_str!("../../fixtures/ollama/version.json");

/// `GET /api/tags` response, verbatim from docs/api.md.
pub const DOC_TAGS_JSON: &str = include_str!("../../fixtures/ollama/tags.json");

/// `GET /api/ps` response, verbatim from docs/api.md.
pub const DOC_PS_JSON: &str = include_str!("../../fixtures/ollama/ps.json");

/// Largest request body the fake records (bigger ones are answered 413).
const REQUEST_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// An installed model, as `/api/tags` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeModel {
    /// `llama3.2:latest`.
    pub name: String,
    /// Size on disk in bytes.
    pub size: u64,
    /// sha256 hex digest.
    pub digest: String,
    /// RFC 3339 time, as Ollama writes it.
    pub modified_at: String,
    /// `gguf`.
    pub format: String,
    /// `llama`, `qwen2`.
    pub family: String,
    /// `3.2B`.
    pub parameter_size: String,
    /// `Q4_K_M`.
    pub quantization_level: String,
}

impl FakeModel {
    /// A model with plausible details (a 3.2B llama, Q4_K_M, 2 GB).
    pub fn new(name: &str) -> Self {
        Self {
            name: normalize(name),
            size: 2_019_393_189,
            digest: "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72".into(),
            modified_at: "2025-05-04T17:37:44.706015396-07:00".into(),
            format: "gguf".into(),
            family: "llama".into(),
            parameter_size: "3.2B".into(),
            quantization_level: "Q4_K_M".into(),
        }
    }

    /// The two models of the documented `/api/tags` example
    /// (`deepseek-r1:latest`, `llama3.2:latest`), field for field.
    pub fn documented() -> Vec<FakeModel> {
        vec![
            FakeModel {
                name: "deepseek-r1:latest".into(),
                size: 4_683_075_271,
                digest: "0a8c266910232fd3291e71e5ba1e058cc5af9d411192cf88b6d30e92b6e73163".into(),
                modified_at: "2025-05-10T08:06:48.639712648-07:00".into(),
                format: "gguf".into(),
                family: "qwen2".into(),
                parameter_size: "7.6B".into(),
                quantization_level: "Q4_K_M".into(),
            },
            FakeModel::new("llama3.2:latest"),
        ]
    }

    /// `details` as Ollama writes it.
    fn details(&self) -> Value {
        json!({
            "parent_model": "",
            "format": self.format,
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        })
    }

    /// One `/api/tags` entry.
    fn tags_entry(&self) -> Value {
        json!({
            "name": self.name,
            "model": self.name,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": self.details(),
        })
    }
}

/// A model loaded in memory, as `/api/ps` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeLoaded {
    /// The model (name, digest and details).
    pub model: FakeModel,
    /// Memory used in bytes.
    pub size: u64,
    /// Of which in GPU memory.
    pub size_vram: u64,
    /// When it will be unloaded, RFC 3339.
    pub expires_at: String,
}

impl FakeLoaded {
    /// `model` loaded entirely in VRAM, its memory equal to its size on disk.
    pub fn of(model: &FakeModel) -> Self {
        Self {
            model: model.clone(),
            size: model.size,
            size_vram: model.size,
            expires_at: "2024-06-04T14:38:31.83753-07:00".into(),
        }
    }

    /// The documented `/api/ps` example (`mistral:latest`), field for field.
    pub fn documented() -> FakeLoaded {
        FakeLoaded {
            model: FakeModel {
                name: "mistral:latest".into(),
                size: 5_137_025_024,
                digest: "2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8".into(),
                modified_at: "2024-06-04T14:33:31.83753-07:00".into(),
                format: "gguf".into(),
                family: "llama".into(),
                parameter_size: "7.2B".into(),
                quantization_level: "Q4_0".into(),
            },
            size: 5_137_025_024,
            size_vram: 5_137_025_024,
            expires_at: "2024-06-04T14:38:31.83753-07:00".into(),
        }
    }

    /// One `/api/ps` entry.
    fn ps_entry(&self) -> Value {
        json!({
            "name": self.model.name,
            "model": self.model.name,
            "size": self.size,
            "digest": self.model.digest,
            "details": self.model.details(),
            "expires_at": self.expires_at,
            "size_vram": self.size_vram,
        })
    }
}

/// The statistics of the final `done: true` chunk (and, for the OpenAI
/// endpoints, `usage`: `prompt_tokens` = `prompt_eval_count`,
/// `completion_tokens` = `eval_count`). Durations are nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeUsage {
    /// Input tokens.
    pub prompt_eval_count: u64,
    /// Output tokens.
    pub eval_count: u64,
    /// Whole request.
    pub total_duration: u64,
    /// Loading the model.
    pub load_duration: u64,
    /// Evaluating the prompt.
    pub prompt_eval_duration: u64,
    /// Generating the answer.
    pub eval_duration: u64,
}

impl Default for FakeUsage {
    /// The numbers of the documented streaming `/api/chat` final chunk.
    fn default() -> Self {
        Self {
            prompt_eval_count: 26,
            eval_count: 282,
            total_duration: 4_883_583_458,
            load_duration: 1_334_875,
            prompt_eval_duration: 342_546_000,
            eval_duration: 4_535_599_000,
        }
    }
}

/// How a streamed answer goes wrong, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFault {
    /// The stream completes normally.
    #[default]
    None,
    /// After this many content chunks, an error line (`{"error": "…"}` for
    /// NDJSON, `data: {"error": {…}}` for SSE) ends the stream; the status
    /// stays 200, as Ollama documents for mid-stream errors.
    ErrorAfter(usize),
    /// After this many content chunks the connection is cut (the chunked body
    /// never terminates properly).
    CutAfter(usize),
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw request body.
    pub body: Vec<u8>,
    /// The address the connection came from: the client's, or a proxy's
    /// when one stood between.
    pub peer: Option<SocketAddr>,
    /// When it arrived.
    pub at: jiff::Timestamp,
}

impl Recorded {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What the fake is told to do; changed at runtime through [`FakeOllama`].
#[derive(Debug)]
struct Settings {
    version: String,
    models: Vec<FakeModel>,
    loaded: Vec<FakeLoaded>,
    /// Every path answers this status and error message.
    fail_all: Option<(u16, String)>,
    /// These paths answer this status and error message.
    fail_paths: HashMap<String, (u16, String)>,
    /// Wait before answering any request.
    delay: Duration,
    /// Wait between streamed chunks.
    chunk_delay: Duration,
    /// Answer nothing at all, to anything (a frozen process: connections
    /// are still accepted by the kernel).
    frozen: bool,
    reply: String,
    /// Answer a chat that has no tool result yet with this tool call
    /// (function name, arguments) instead of the reply.
    tool_call: Option<(String, Value)>,
    usage: FakeUsage,
    stream_fault: StreamFault,
    counts: HashMap<String, usize>,
    requests: Vec<Recorded>,
    next_id: u64,
    /// Streamed answers whose reader went away before their last chunk.
    abandoned_streams: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            version: "0.5.1".into(),
            models: FakeModel::documented(),
            loaded: Vec::new(),
            fail_all: None,
            fail_paths: HashMap::new(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            frozen: false,
            reply: "The sky is blue because of Rayleigh scattering.".into(),
            tool_call: None,
            usage: FakeUsage::default(),
            stream_fault: StreamFault::None,
            counts: HashMap::new(),
            requests: Vec::new(),
            next_id: 1,
            abandoned_streams: 0,
        }
    }
}

type Shared = Arc<Mutex<Settings>>;

/// Lock, recovering from a test that panicked while holding the lock.
fn lock(shared: &Shared) -> MutexGuard<'_, Settings> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The serving task and the connections it accepted.
struct Running {
    task: JoinHandle<()>,
    conns: Conns,
}

impl Running {
    /// Closes the listener (abort drops it) and cuts every connection, the way
    /// a killed process would.
    fn kill(self) -> JoinHandle<()> {
        self.task.abort();
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for conn in conns.into_values() {
            // Shutting the duplicate down ends the connection for both ends
            // at once, even while its task sleeps in a slow stream. An error
            // means the connection is already gone, which is the goal.
            let _ = conn.shutdown(Shutdown::Both);
        }
        self.task
    }
}

/// A fake Ollama on 127.0.0.1, speaking the shapes of Ollama's `docs/api.md`:
///
/// - `GET /` → `Ollama is running`; `GET /api/version`, `/api/tags`, `/api/ps`;
/// - `POST /api/chat` and `/api/generate`: NDJSON streaming
///   (`application/x-ndjson`, last chunk `done: true` with `done_reason` and
///   the [`FakeUsage`] statistics) or one object with `"stream": false`; an
///   empty prompt / empty `messages` loads the model (`done_reason` `load`),
///   and with `keep_alive: 0` unloads it (`unload`); any other request loads
///   the model too, as Ollama does; an unknown model is a 404
///   `{"error": "model \"x\" not found, try pulling it first"}`;
/// - `POST /v1/chat/completions`: SSE `data: {chunk}` lines ending with
///   `data: [DONE]`, the usage chunk (`choices: []`) only when
///   `stream_options.include_usage` is true; not streaming by default (as
///   OpenAI), then one object with `usage`;
/// - `GET /v1/models`: the installed models.
///
/// Every request is counted per path and recorded. It can be told to fail
/// ([`fail_all`](Self::fail_all), [`fail_path`](Self::fail_path)), to be slow
/// ([`set_delay`](Self::set_delay)), to break streams
/// ([`set_stream_fault`](Self::set_stream_fault)), to stop listening
/// ([`stop`](Self::stop)) and to come back on the same port
/// ([`restart`](Self::restart)). Dropping it stops it.
pub struct FakeOllama {
    addr: SocketAddr,
    state: Shared,
    running: Mutex<Option<Running>>,
}

impl FakeOllama {
    /// Starts on a free port of 127.0.0.1 with the documented `/api/tags`
    /// models installed, nothing loaded, version `0.5.1`.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr` (127.0.0.1 and a port, e.g. from
    /// [`free_closed_port`](super::free_closed_port), for "comes up later").
    pub async fn start_on(addr: SocketAddr) -> Self {
        assert!(addr.ip().is_loopback(), "the fake binds loopback only");
        let state: Shared = Arc::new(Mutex::new(Settings::default()));
        let (addr, running) = serve(addr, state.clone())
            .await
            .unwrap_or_else(|e| panic!("FakeOllama cannot listen on {addr}: {e}"));
        Self {
            addr,
            state,
            running: Mutex::new(Some(running)),
        }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on (also while stopped: the one it will reuse).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops listening and cuts every open connection, like a killed process:
    /// new connections are refused until [`restart`](Self::restart).
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(running) = running {
            // Wait for the task to be gone so the port is closed on return.
            let _ = running.kill().await;
        }
    }

    /// Listens again on the same port, keeping models, settings and counts.
    /// Does nothing when already running. Panics if the port was taken
    /// meanwhile.
    pub async fn restart(&self) {
        if self.is_running() {
            return;
        }
        let (_, running) = serve(self.addr, self.state.clone())
            .await
            .unwrap_or_else(|e| panic!("FakeOllama cannot listen again on {}: {e}", self.addr));
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(running);
    }

    /// Whether it is listening.
    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Sets what `/api/version` reports.
    pub fn set_version(&self, version: &str) {
        lock(&self.state).version = version.to_owned();
    }

    /// Sets the installed models (`/api/tags`, `/v1/models`, and which models
    /// chat and generate accept).
    pub fn set_models(&self, models: Vec<FakeModel>) {
        lock(&self.state).models = models;
    }

    /// Installs models by name with plausible details ([`FakeModel::new`]).
    pub fn set_model_names(&self, names: &[&str]) {
        self.set_models(names.iter().map(|n| FakeModel::new(n)).collect());
    }

    /// The installed models.
    pub fn models(&self) -> Vec<FakeModel> {
        lock(&self.state).models.clone()
    }

    /// Sets the models loaded in memory (`/api/ps`).
    pub fn set_loaded(&self, loaded: Vec<FakeLoaded>) {
        lock(&self.state).loaded = loaded;
    }

    /// The models loaded in memory.
    pub fn loaded(&self) -> Vec<FakeLoaded> {
        lock(&self.state).loaded.clone()
    }

    /// Every request answers `status` with `message` (in Ollama's
    /// `{"error": …}` shape, or OpenAI's under `/v1/`).
    pub fn fail_all(&self, status: u16, message: &str) {
        lock(&self.state).fail_all = Some((status, message.to_owned()));
    }

    /// Requests to `path` (e.g. `/api/ps`) answer `status` with `message`.
    pub fn fail_path(&self, path: &str, status: u16, message: &str) {
        lock(&self.state)
            .fail_paths
            .insert(path.to_owned(), (status, message.to_owned()));
    }

    /// Answers normally again.
    pub fn clear_failures(&self) {
        let mut state = lock(&self.state);
        state.fail_all = None;
        state.fail_paths.clear();
    }

    /// Waits this long before answering a request other than the version
    /// and the listings (a machine loading a model).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// Stops answering anything (`true`), as a frozen process whose
    /// connections the kernel still accepts; or answers again.
    pub fn set_frozen(&self, frozen: bool) {
        lock(&self.state).frozen = frozen;
    }

    /// Waits this long between streamed chunks (to see streaming is not
    /// buffered).
    pub fn set_chunk_delay(&self, delay: Duration) {
        lock(&self.state).chunk_delay = delay;
    }

    /// How many streamed answers were dropped before their last chunk was
    /// taken: the client (or the proxy in front) closed the connection.
    pub fn abandoned_streams(&self) -> usize {
        lock(&self.state).abandoned_streams
    }

    /// The assistant's answer; streamed word by word.
    pub fn set_reply(&self, reply: &str) {
        lock(&self.state).reply = reply.to_owned();
    }

    /// The statistics reported in the final chunk and in `usage`.
    /// Makes `/api/chat` ask for this tool (a function name and its
    /// arguments) until the request carries a tool result (`role: "tool"`),
    /// then answer with the reply, as a model does. Streamed as Ollama
    /// streams it: a chunk with `message.tool_calls`, then the final chunk.
    pub fn set_tool_call(&self, name: &str, arguments: Value) {
        lock(&self.state).tool_call = Some((name.to_owned(), arguments));
    }

    pub fn set_usage(&self, usage: FakeUsage) {
        lock(&self.state).usage = usage;
    }

    /// The statistics it reports.
    pub fn usage(&self) -> FakeUsage {
        lock(&self.state).usage
    }

    /// How streamed answers break, if they do.
    pub fn set_stream_fault(&self, fault: StreamFault) {
        lock(&self.state).stream_fault = fault;
    }

    /// How many requests reached `path` (counted also while failing).
    pub fn count(&self, path: &str) -> usize {
        lock(&self.state).counts.get(path).copied().unwrap_or(0)
    }

    /// Requests received, on every path.
    pub fn total_requests(&self) -> usize {
        lock(&self.state).counts.values().sum()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// The last request to `path`, if any.
    pub fn last_request(&self, path: &str) -> Option<Recorded> {
        lock(&self.state)
            .requests
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
    }

    /// Forgets counts and recorded requests.
    pub fn reset_counts(&self) {
        let mut state = lock(&self.state);
        state.counts.clear();
        state.requests.clear();
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(running) = running {
            // Aborting is enough here: the runtime drops the task, and with it
            // the listener, at its next turn.
            drop(running.kill());
        }
    }
}

/// Handles on open connections, by connection number, so
/// [`FakeOllama::stop`] can cut them: axum serves each connection in its own
/// task, which aborting the server task would not end.
type Conns = Arc<Mutex<HashMap<u64, std::net::TcpStream>>>;

/// A TCP listener that registers a handle (a duplicate of the socket) for each
/// connection it accepts.
struct TrackedListener {
    inner: TcpListener,
    conns: Conns,
    next: u64,
}

impl axum::serve::Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TrackedStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    self.next += 1;
                    match TrackedStream::new(stream, self.next, self.conns.clone()) {
                        Ok(stream) => return (stream, peer),
                        Err(_) => continue,
                    }
                }
                // Out of file descriptors and the like: wait, then go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection whose registered handle goes away with it, so a
/// connection the server closes is really closed (the duplicate would
/// otherwise keep the socket open).
struct TrackedStream {
    inner: TcpStream,
    id: u64,
    conns: Conns,
}

impl TrackedStream {
    fn new(stream: TcpStream, id: u64, conns: Conns) -> io::Result<Self> {
        let std_stream = stream.into_std()?;
        let handle = std_stream.try_clone()?;
        conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle);
        Ok(Self {
            inner: TcpStream::from_std(std_stream)?,
            id,
            conns,
        })
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The address a connection came from, for [`Recorded::peer`].
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

impl Connected<axum::serve::IncomingStream<'_, TrackedListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TrackedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Binds `addr` and serves the fake on it.
async fn serve(addr: SocketAddr, state: Shared) -> io::Result<(SocketAddr, Running)> {
    let inner = TcpListener::bind(addr).await?;
    let addr = inner.local_addr()?;
    let conns: Conns = Arc::new(Mutex::new(HashMap::new()));
    let listener = TrackedListener {
        inner,
        conns: conns.clone(),
        next: 0,
    };
    let app = router(state).into_make_service_with_connect_info::<Peer>();
    let task = tokio::spawn(async move {
        // Serving ends only by abort; an error here would be an accept loop
        // failure, which axum already retries.
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, Running { task, conns }))
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/show", post(show))
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/models", get(openai_models))
        // Go's net/http answer for an unknown path.
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts and records every request, then applies delay and failures.
async fn observe(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(addr))| *addr);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, REQUEST_BODY_LIMIT).await else {
        return error_response(&path, 413, "request body too large");
    };
    let (delay, failure, frozen) = {
        let mut s = lock(&state);
        *s.counts.entry(path.clone()).or_default() += 1;
        s.requests.push(Recorded {
            at: jiff::Timestamp::now(),
            method,
            path: path.clone(),
            body: bytes.to_vec(),
            peer,
        });
        let failure = s
            .fail_all
            .clone()
            .or_else(|| s.fail_paths.get(&path).cloned());
        (s.delay, failure, s.frozen)
    };
    if frozen {
        return std::future::pending().await;
    }
    // As a real Ollama busy loading a model or reading a long prompt: the
    // answer is slow, its listings and version are not.
    if !delay.is_zero() && !matches!(path.as_str(), "/api/version" | "/api/tags" | "/api/ps") {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, message)) = failure {
        return error_response(&path, status, &message);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// An error in the API's own shape: OpenAI's under `/v1/`, else Ollama's.
fn error_response(path: &str, status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if path.starts_with("/v1/") {
        let kind = match status {
            400 => "invalid_request_error",
            404 => "not_found_error",
            _ => "api_error",
        };
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
    } else {
        json!({"error": message})
    };
    json_response(code, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn version(State(state): State<Shared>) -> Response {
    let version = lock(&state).version.clone();
    json_response(StatusCode::OK, &json!({ "version": version }))
}

async fn tags(State(state): State<Shared>) -> Response {
    let models: Vec<Value> = lock(&state)
        .models
        .iter()
        .map(FakeModel::tags_entry)
        .collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

async fn ps(State(state): State<Shared>) -> Response {
    let models: Vec<Value> = lock(&state)
        .loaded
        .iter()
        .map(FakeLoaded::ps_entry)
        .collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

async fn openai_models(State(state): State<Shared>) -> Response {
    let data: Vec<Value> = lock(&state)
        .models
        .iter()
        .map(|m| {
            let created = m
                .modified_at
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .unwrap_or(0);
            // Ollama reports the namespace; models without one are "library".
            let owned_by = m.name.split_once('/').map_or("library", |(ns, _)| ns);
            json!({"id": m.name, "object": "model", "created": created, "owned_by": owned_by})
        })
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

/// `llama3.2` means `llama3.2:latest`, as in Ollama.
fn normalize(name: &str) -> String {
    if name.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// Which endpoint is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Generate,
    OpenAi,
}

impl Api {
    fn path(self) -> &'static str {
        match self {
            Api::Chat => "/api/chat",
            Api::Generate => "/api/generate",
            Api::OpenAi => "/v1/chat/completions",
        }
    }
}

/// Everything one answer needs, taken from the state under one lock.
struct Answer {
    api: Api,
    model: String,
    pieces: Vec<String>,
    usage: FakeUsage,
    fault: StreamFault,
    chunk_delay: Duration,
    id: String,
    include_usage: bool,
    /// Where an abandoned stream is counted.
    state: Shared,
}

/// Checks the request, updates loaded models, and takes what the answer
/// needs; or the error response (boxed: a response is large).
fn begin(state: &Shared, api: Api, body: &Bytes) -> Result<(Answer, Value), Box<Response>> {
    let path = api.path();
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(error_response(
            path,
            400,
            &format!("invalid request body: {e}"),
        ))
    })?;
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return Err(Box::new(error_response(path, 400, "model is required")));
    };
    let mut s = lock(state);
    let wanted = normalize(model);
    let Some(installed) = s.models.iter().find(|m| m.name == wanted).cloned() else {
        return Err(Box::new(error_response(
            path,
            404,
            &format!("model \"{model}\" not found, try pulling it first"),
        )));
    };
    // Loading follows use, as in Ollama; `keep_alive: 0` unloads afterwards.
    if keep_alive_zero(&request) {
        s.loaded.retain(|l| l.model.name != wanted);
    } else if !s.loaded.iter().any(|l| l.model.name == wanted) {
        s.loaded.push(FakeLoaded::of(&installed));
    }
    let pieces = words(&s.reply);
    let id = format!("chatcmpl-{}", s.next_id);
    s.next_id += 1;
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let answer = Answer {
        api,
        model: model.to_owned(),
        pieces,
        usage: s.usage,
        fault: s.stream_fault,
        chunk_delay: s.chunk_delay,
        id,
        include_usage,
        state: state.clone(),
    };
    Ok((answer, request))
}

fn keep_alive_zero(request: &Value) -> bool {
    match request.get("keep_alive") {
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => matches!(s.as_str(), "0" | "0s" | "0m"),
        _ => false,
    }
}

/// The reply cut into streamed pieces: each word with the space before it.
fn words(reply: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    for (i, word) in reply.split(' ').enumerate() {
        pieces.push(if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        });
    }
    pieces
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// `POST /api/show` (`{"model"}`, or `{"name"}` as older clients send it):
/// the model's details, `model_info` with its context length, and its
/// `capabilities`, as Ollama 0.5+ answers (what OpenClaw's discovery reads).
async fn show(State(state): State<Shared>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(name) = request["model"]
        .as_str()
        .or_else(|| request["name"].as_str())
    else {
        return error_response("/api/show", 400, "model is required");
    };
    let wanted = normalize(name);
    let model = lock(&state)
        .models
        .iter()
        .find(|m| m.name == wanted)
        .cloned();
    let Some(m) = model else {
        return error_response("/api/show", 404, &format!("model '{name}' not found"));
    };
    let arch = m.family.clone();
    json_response(
        StatusCode::OK,
        &json!({
            "modelfile": format!("FROM {}\n", m.name),
            "parameters": "num_ctx                        8192",
            "template": "{{ .Prompt }}",
            "details": {
                "parent_model": "",
                "format": m.format,
                "family": m.family,
                "families": [m.family],
                "parameter_size": m.parameter_size,
                "quantization_level": m.quantization_level,
            },
            "model_info": {
                "general.architecture": arch,
                "general.parameter_count": 8_190_735_360u64,
                format!("{arch}.context_length"): 40960,
            },
            "capabilities": ["completion", "tools"],
            "modified_at": m.modified_at,
        }),
    )
}

async fn chat(State(state): State<Shared>, body: Bytes) -> Response {
    native(&state, Api::Chat, &body)
}

async fn generate(State(state): State<Shared>, body: Bytes) -> Response {
    native(&state, Api::Generate, &body)
}

/// `/api/chat` and `/api/generate`.
fn native(state: &Shared, api: Api, body: &Bytes) -> Response {
    let (answer, request) = match begin(state, api, body) {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    // An empty prompt (generate) or no messages (chat) only loads or unloads.
    let empty = match api {
        Api::Generate => request
            .get("prompt")
            .and_then(Value::as_str)
            .is_none_or(|p| p.is_empty()),
        _ => request
            .get("messages")
            .and_then(Value::as_array)
            .is_none_or(|m| m.is_empty()),
    };
    if empty {
        let reason = if keep_alive_zero(&request) {
            "unload"
        } else {
            "load"
        };
        let mut object = native_chunk(&answer, "");
        object["done"] = json!(true);
        object["done_reason"] = json!(reason);
        return json_response(StatusCode::OK, &object);
    }
    let tool_result_given = request
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x["role"] == "tool"));
    let tool_call = match api {
        Api::Chat if !tool_result_given => lock(state).tool_call.clone(),
        _ => None,
    };
    if let Some((name, arguments)) = tool_call {
        let mut call = native_chunk(&answer, "");
        call["message"]["tool_calls"] =
            json!([{"function": {"name": name, "arguments": arguments}}]);
        let mut last = native_chunk(&answer, "");
        finish_native(&mut last, &answer);
        if !stream {
            last["message"] = call["message"].clone();
            return json_response(StatusCode::OK, &last);
        }
        let lines = vec![format!("{call}\n"), format!("{last}\n")];
        let error_line = format!(
            "{}\n",
            json!({"error": "an error was encountered while running the model"})
        );
        return streamed(lines, error_line, &answer, "application/x-ndjson");
    }
    if !stream {
        let mut object = native_chunk(&answer, &answer.pieces.concat());
        finish_native(&mut object, &answer);
        return json_response(StatusCode::OK, &object);
    }
    let mut lines: Vec<String> = answer
        .pieces
        .iter()
        .map(|p| format!("{}\n", native_chunk(&answer, p)))
        .collect();
    let mut last = native_chunk(&answer, "");
    finish_native(&mut last, &answer);
    lines.push(format!("{last}\n"));
    let error_line = format!(
        "{}\n",
        json!({"error": "an error was encountered while running the model"})
    );
    streamed(lines, error_line, &answer, "application/x-ndjson")
}

/// One NDJSON object of `/api/chat` or `/api/generate` with this content.
fn native_chunk(answer: &Answer, content: &str) -> Value {
    match answer.api {
        Api::Generate => json!({
            "model": answer.model,
            "created_at": now(),
            "response": content,
            "done": false,
        }),
        _ => json!({
            "model": answer.model,
            "created_at": now(),
            "message": {"role": "assistant", "content": content},
            "done": false,
        }),
    }
}

/// Marks `object` as the final one, with the statistics.
fn finish_native(object: &mut Value, answer: &Answer) {
    let u = answer.usage;
    object["done"] = json!(true);
    object["done_reason"] = json!("stop");
    if answer.api == Api::Generate {
        object["context"] = json!([1, 2, 3]);
    }
    object["total_duration"] = json!(u.total_duration);
    object["load_duration"] = json!(u.load_duration);
    object["prompt_eval_count"] = json!(u.prompt_eval_count);
    object["prompt_eval_duration"] = json!(u.prompt_eval_duration);
    object["eval_count"] = json!(u.eval_count);
    object["eval_duration"] = json!(u.eval_duration);
}

/// `/v1/chat/completions`.
async fn openai_chat(State(state): State<Shared>, body: Bytes) -> Response {
    let (answer, request) = match begin(&state, Api::OpenAi, &body) {
        Ok(parts) => parts,
        Err(response) => return *response,
    };
    let created = jiff::Timestamp::now().as_second();
    let u = answer.usage;
    let usage = json!({
        "prompt_tokens": u.prompt_eval_count,
        "completion_tokens": u.eval_count,
        "total_tokens": u.prompt_eval_count + u.eval_count,
    });
    // OpenAI streams only when asked.
    if !request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let object = json!({
            "id": answer.id,
            "object": "chat.completion",
            "created": created,
            "model": answer.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.pieces.concat()},
                "finish_reason": "stop",
            }],
            "usage": usage,
        });
        return json_response(StatusCode::OK, &object);
    }
    let chunk = |content: &str, finish: Value| {
        json!({
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": answer.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{
                "index": 0,
                "delta": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }],
        })
    };
    let mut events: Vec<String> = answer
        .pieces
        .iter()
        .map(|p| format!("data: {}\n\n", chunk(p, Value::Null)))
        .collect();
    events.push(format!("data: {}\n\n", chunk("", json!("stop"))));
    if answer.include_usage {
        let usage_chunk = json!({
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": answer.model,
            "system_fingerprint": "fp_ollama",
            "choices": [],
            "usage": usage,
        });
        events.push(format!("data: {usage_chunk}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    let error_event = format!(
        "data: {}\n\n",
        json!({"error": {"message": "an error was encountered while running the model", "type": "api_error", "param": null, "code": null}})
    );
    streamed(events, error_event, &answer, "text/event-stream")
}

/// Counts a streamed answer as abandoned when it is dropped (hyper drops a
/// body whose connection went away) before its last chunk was taken.
struct StreamEnd {
    state: Shared,
    reached: AtomicBool,
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        if !self.reached.load(Ordering::SeqCst) {
            lock(&self.state).abandoned_streams += 1;
        }
    }
}

/// A 200 whose body is `items`, one chunk each, with the configured delay
/// between them and the configured fault (after content chunks only).
fn streamed(
    items: Vec<String>,
    error_item: String,
    answer: &Answer,
    content_type: &str,
) -> Response {
    let mut out: Vec<Result<Bytes, io::Error>> = Vec::new();
    match answer.fault {
        StreamFault::None => out.extend(items.into_iter().map(|i| Ok(Bytes::from(i)))),
        StreamFault::ErrorAfter(n) => {
            out.extend(items.into_iter().take(n).map(|i| Ok(Bytes::from(i))));
            out.push(Ok(Bytes::from(error_item)));
        }
        StreamFault::CutAfter(n) => {
            out.extend(items.into_iter().take(n).map(|i| Ok(Bytes::from(i))));
            out.push(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the fake cut the stream",
            )));
        }
    }
    let delay = answer.chunk_delay;
    let last = out.len().saturating_sub(1);
    let end = Arc::new(StreamEnd {
        state: answer.state.clone(),
        reached: AtomicBool::new(false),
    });
    let stream = futures_util::stream::iter(out.into_iter().enumerate()).then(move |(i, item)| {
        let end = end.clone();
        async move {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if item.is_err() {
                // Pending once, so hyper flushes the head and the chunks
                // before it sees the error and drops the connection.
                tokio::task::yield_now().await;
            }
            if i == last {
                end.reached.store(true, Ordering::SeqCst);
            }
            item
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
