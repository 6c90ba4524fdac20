//! Raw TCP servers for the failures a real HTTP server would not produce.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::fake_ollama::{DOC_TAGS_JSON, DOC_VERSION_JSON};

/// Accepts TCP connections and never writes a byte, keeping them open until
/// dropped: a hung server.
pub struct HangingServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HangingServer {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for HangingServer");
        let addr = listener.local_addr().expect("HangingServer address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            // Held here so they stay open; dropped with the task.
            let mut held: Vec<TcpStream> = Vec::new();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        held.push(stream);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HangingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One raw answer of a [`GarbageServer`]. Each is sent after the request head
/// has been read, then the connection is closed (except [`Garbage::Hang`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Garbage {
    /// 200 with `Content-Type: text/html` and a small web page.
    Html,
    /// 200 `application/json` whose body is the documented `/api/tags`
    /// example cut in half (Content-Length matches what is sent).
    HalfJson,
    /// 200 `application/json` declaring 1000 bytes but sending a short valid
    /// document, then closing: the body breaks off.
    WrongContentLength,
    /// 200 `application/json` with no length, sending bytes until the client
    /// goes away.
    EndlessBody,
    /// 500 `application/json` `{"error": "…"}`, as Ollama fails.
    ServerErrorJson,
    /// 200 `application/json` with this body.
    Json(String),
    /// Exactly these bytes (status line, headers, body), then close.
    Raw(Vec<u8>),
    /// These pieces of bytes, each written and flushed 20 ms after the last
    /// (so that they arrive as separate reads), then close.
    Pieces(Vec<Vec<u8>>),
    /// Reads the request, then never writes and keeps the connection open
    /// (like [`HangingServer`], but for chosen paths only).
    Hang,
    /// Writes these bytes (a head and the start of a body), then neither
    /// writes nor closes: a machine that stalls mid-answer.
    Stall(Vec<u8>),
    /// Reads the request, then closes without a word: a machine whose
    /// server hangs up on everyone.
    HangUp,
}

/// The error text of [`Garbage::ServerErrorJson`].
pub const SERVER_ERROR_MESSAGE: &str = "llama runner process has terminated: exit status 2";

impl Garbage {
    /// A complete response with this status, no body, `Connection: close`
    /// (and `Location: /elsewhere` for a 3xx).
    pub fn status(code: u16) -> Garbage {
        let reason = reqwest::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        let location = if (300..400).contains(&code) {
            "Location: /elsewhere\r\n"
        } else {
            ""
        };
        Garbage::Raw(
            format!(
                "HTTP/1.1 {code} {reason}\r\n{location}Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
        )
    }

    /// A complete 200 with `content_type` and `body`, then close.
    pub fn ok(content_type: &str, body: &str) -> Garbage {
        Garbage::Raw(response("200 OK", content_type, body))
    }

    /// The half document sent by [`Garbage::HalfJson`].
    pub fn half_json() -> &'static str {
        &DOC_TAGS_JSON[..DOC_TAGS_JSON.len() / 2]
    }
}

fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A server answering every request (or those to given paths) with a fixed
/// raw [`Garbage`] answer. Counts requests.
pub struct GarbageServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl GarbageServer {
    /// Answers every request with `answer`.
    pub async fn start(answer: Garbage) -> Self {
        Self::start_routes(Vec::new(), answer).await
    }

    /// A raw Ollama: the documented `/api/tags`, `/api/version` and an
    /// empty `/api/ps` (so a health poll sees it up), and `answer` to
    /// everything else.
    pub async fn ollama(answer: Garbage) -> Self {
        Self::start_routes(
            vec![
                ("/api/tags", Garbage::Json(DOC_TAGS_JSON.to_owned())),
                ("/api/ps", Garbage::Json("{\"models\":[]}".to_owned())),
                ("/api/version", Garbage::Json(DOC_VERSION_JSON.to_owned())),
            ],
            answer,
        )
        .await
    }

    /// Answers requests to each listed path (without query) with its answer,
    /// and anything else with `fallback`.
    pub async fn start_routes(routes: Vec<(&str, Garbage)>, fallback: Garbage) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for GarbageServer");
        let addr = listener.local_addr().expect("GarbageServer address");
        let routes: Arc<Vec<(String, Garbage)>> =
            Arc::new(routes.into_iter().map(|(p, g)| (p.to_owned(), g)).collect());
        let fallback = Arc::new(fallback);
        let hits = Arc::new(AtomicUsize::new(0));
        let count = hits.clone();
        let sent = Arc::new(AtomicUsize::new(0));
        let written = sent.clone();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, which aborts them when this
            // task is aborted and drops it.
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(pair) => pair,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let routes = routes.clone();
                let fallback = fallback.clone();
                let count = count.clone();
                let written = written.clone();
                let seen = seen.clone();
                connections.spawn(async move {
                    answer(stream, &routes, &fallback, &count, &written, &seen).await;
                });
                // Reap finished ones so the set does not grow without end.
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            hits,
            sent,
            paths,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Bytes written to clients so far (all connections).
    pub fn bytes_sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Requests answered (or being answered) so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Requests to `path` (without query) so far.
    pub fn count(&self, path: &str) -> usize {
        self.paths
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

impl Drop for GarbageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head, then sends the chosen answer and closes.
async fn answer(
    mut stream: TcpStream,
    routes: &[(String, Garbage)],
    fallback: &Garbage,
    hits: &AtomicUsize,
    written: &AtomicUsize,
    seen: &Mutex<Vec<String>>,
) {
    // Read the whole head first: closing with unread input would make the
    // kernel send a reset, which could destroy the answer in flight.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let path = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .map(|target| target.split('?').next().unwrap_or(target).to_owned())
        .unwrap_or_default();
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(path.clone());
    let garbage = routes
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(fallback, |(_, g)| g);
    let mut out = Out {
        stream: &mut stream,
        written,
    };
    let _ = match garbage {
        Garbage::Html => {
            out.send(&response(
                "200 OK",
                "text/html; charset=utf-8",
                "<!DOCTYPE html><html><head><title>Router admin</title></head><body><h1>Welcome</h1></body></html>",
            ))
            .await
        }
        Garbage::HalfJson => {
            out.send(&response(
                "200 OK",
                "application/json; charset=utf-8",
                Garbage::half_json(),
            ))
            .await
        }
        Garbage::WrongContentLength => {
            let body = r#"{"models":[]}"#;
            out.send(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{body}"
                )
                .as_bytes(),
            )
            .await
        }
        Garbage::EndlessBody => endless(&mut out).await,
        Garbage::ServerErrorJson => {
            out.send(&response(
                "500 Internal Server Error",
                "application/json; charset=utf-8",
                &serde_json::json!({ "error": SERVER_ERROR_MESSAGE }).to_string(),
            ))
            .await
        }
        Garbage::Json(body) => {
            out.send(&response("200 OK", "application/json; charset=utf-8", body))
                .await
        }
        Garbage::Raw(bytes) => out.send(bytes).await,
        Garbage::Pieces(pieces) => {
            for piece in pieces {
                if out.send(piece).await.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(())
        }
        Garbage::Stall(bytes) => {
            if out.send(bytes).await.is_ok() {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
        Garbage::Hang => {
            // Holds the stream until the server is dropped, which aborts
            // this task.
            std::future::pending::<()>().await;
            Ok(())
        }
        Garbage::HangUp => Ok(()),
    };
    let _ = stream.shutdown().await;
}

/// A connection's writing side, counting what it wrote.
struct Out<'a> {
    stream: &'a mut TcpStream,
    written: &'a AtomicUsize,
}

impl Out<'_> {
    /// Writes and flushes `bytes` (each call its own read on the other
    /// side, as far as TCP lets it be).
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        self.written.fetch_add(bytes.len(), Ordering::SeqCst);
        Ok(())
    }
}

/// A 200 whose body never ends: a JSON list opening, then spaces, until the
/// client closes.
async fn endless(out: &mut Out<'_>) -> std::io::Result<()> {
    out.send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n{\"models\":[",
    )
    .await?;
    let filler = vec![b' '; 64 * 1024];
    loop {
        out.send(&filler).await?;
    }
}
