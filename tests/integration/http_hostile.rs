//! The proxy under hostile HTTP, both ways, on real sockets: clients that
//! smuggle, trickle, oversize or lie about the host, and machines whose
//! answers are framed two ways, stall, or carry heads and trailers no
//! Ollama sends. HTTP is hyper's on both sides; these tests hold the
//! proxy to what hyper and its configured limits promise, and check each
//! time that nothing acknowledged was lost: every request the proxy
//! answered is in the ledger, and none reached a machine twice.
//!
//! Waits are bounded (a hung proxy fails the test); nothing here asserts
//! how fast anything is.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use clawfleet::daemon::{self, Running};
use clawfleet::ledger::Record;
use serde_json::{Value, json};
use support::{FakeOllama, Garbage, GarbageServer, TestConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Small limits, so that each is reached quickly: `[proxy]` keys.
const LIMITS: &[(&str, u64)] = &[
    ("connect_timeout_ms", 500),
    ("first_byte_timeout_secs", 5),
    ("max_body_bytes", 65536),
    ("header_read_timeout_secs", 1),
    ("max_header_bytes", 16384),
    ("body_idle_timeout_secs", 1),
    ("body_read_timeout_secs", 3),
    ("stream_idle_timeout_secs", 1),
];

/// An upper bound on any wait here.
const BOUND: Duration = Duration::from_secs(15);

struct Fleet {
    running: Running,
    data: tempfile::TempDir,
}

/// A daemon with [`LIMITS`] whose machine `local` has the Ollama at
/// `local`, and `peer` the one at `peer`; once the health poll has seen
/// `up` of them answer.
async fn start(local: &str, peer: &str, up: usize) -> Fleet {
    let data = tempfile::tempdir().unwrap();
    let config = LIMITS
        .iter()
        .fold(TestConfig::new("local", data.path()), |c, (key, value)| {
            c.set("proxy", key, value)
        })
        .set("probes", "timeout_ms", 500)
        .ollama_machine("local", "Local", local)
        .ollama_machine("peer", "Peer", peer);
    let running = config.start().await;
    let fleet = Fleet { running, data };
    fleet.probed(up).await;
    fleet
}

/// A fleet of one fake Ollama with `qwen3:8b`.
async fn alone() -> (FakeOllama, Fleet) {
    let local = FakeOllama::start().await;
    local.set_model_names(&["qwen3:8b"]);
    let fleet = start(&local.url(), &support::closed_url(), 1).await;
    (local, fleet)
}

/// A raw Ollama (the documented listings, `answer` to everything else) as
/// `local`, and `peer` as the peer's.
async fn raw_local(answer: Garbage, peer: &str, up: usize) -> (GarbageServer, Fleet) {
    let local = GarbageServer::ollama(answer).await;
    let fleet = start(&local.url(), peer, up).await;
    (local, fleet)
}

impl Fleet {
    fn addr(&self) -> SocketAddr {
        self.running.proxy_addr
    }

    async fn probed(&self, n: usize) {
        support::ollamas_up(&self.running, n).await;
    }

    /// Exactly `n` ledger records, newest first: waits for `n`, then makes
    /// sure a moment later that no more came.
    async fn records(&self, n: usize) -> Vec<Record> {
        if n > 0 {
            support::ledger_records(self.data.path(), n).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let file = self.data.path().join(daemon::LEDGER_FILE);
        let records = clawfleet::ledger::read_recent(&file, 100).expect("read the ledger");
        assert_eq!(records.len(), n, "{records:?}");
        records
    }

    /// A client that opens a new connection for each request.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    }

    async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// One answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The head, lowercased.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection to the proxy.
struct Conn {
    reader: OwnedReadHalf,
    writer: Option<OwnedWriteHalf>,
    read: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let (reader, writer) = TcpStream::connect(addr)
            .await
            .expect("connect to the proxy")
            .into_split();
        Self {
            reader,
            writer: Some(writer),
            read: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.writer
            .as_mut()
            .expect("the writing half")
            .write_all(bytes.as_ref())
            .await
            .expect("write to the proxy");
    }

    /// Sends `head`, then hands the writing half to a task that writes
    /// `pieces` one by one, `every` apart, until the proxy stops taking
    /// them.
    async fn trickle(&mut self, head: &str, pieces: Vec<Vec<u8>>, every: Duration) {
        self.send(head).await;
        let mut writer = self.writer.take().expect("the writing half");
        tokio::spawn(async move {
            for piece in pieces {
                if writer.write_all(&piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
            // Holds the connection open, silent, until the test ends.
            std::future::pending::<()>().await;
        });
    }

    /// Reads more; false once the proxy closed (or reset) the connection.
    async fn fill(&mut self) -> bool {
        let read = tokio::time::timeout(BOUND, self.reader.read_buf(&mut self.read))
            .await
            .expect("the proxy answers or closes within the bound");
        matches!(read, Ok(n) if n > 0)
    }

    /// The next answer (framed by its Content-Length, or by the close);
    /// `None` when the connection closed before a whole one came.
    async fn answer(&mut self) -> Option<Answer> {
        loop {
            if let Some(end) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.read[..end]).to_ascii_lowercase();
                let status = head.get(9..12)?.parse().ok()?;
                let length = head.lines().find_map(|l| {
                    l.strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                });
                match length {
                    Some(n) if self.read.len() >= end + 4 + n => {
                        let body = self.read[end + 4..end + 4 + n].to_vec();
                        self.read.drain(..end + 4 + n);
                        return Some(Answer { status, head, body });
                    }
                    Some(_) => {}
                    None => {
                        assert!(
                            !head.contains("transfer-encoding"),
                            "a chunked answer where a whole one was expected: {head}"
                        );
                        // Framed by the close.
                        while self.fill().await {}
                        let body = self.read[end + 4..].to_vec();
                        self.read.clear();
                        return Some(Answer { status, head, body });
                    }
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Whether the proxy closes the connection with nothing more to say.
    async fn closes(&mut self) -> bool {
        while self.fill().await {}
        self.read.is_empty()
    }
}

/// A chat request body for `model`, not streamed.
fn chat(model: &str) -> String {
    json!({"model": model, "stream": false, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
}

/// A whole `POST /api/chat` with a Content-Length.
fn post_chat(model: &str) -> String {
    let body = chat(model);
    format!(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

// Clients.

#[tokio::test]
async fn content_length_and_transfer_encoding_together_never_make_two_requests() {
    // The classic smuggling request: one framing says the body ends after
    // the chunked part, the other that it runs over the request behind it.
    // hyper frames by Transfer-Encoding and closes the connection after the
    // answer (RFC 9112, 6.3), so what hides behind is never read as a
    // request, whichever header comes first.
    let (local, fleet) = alone().await;
    let smuggled = post_chat("qwen3:8b");
    let body = chat("qwen3:8b");
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let total = chunked.len() + smuggled.len();
    let heads = [
        format!(
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {total}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        format!(
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: {total}\r\n\r\n"
        ),
    ];
    for head in &heads {
        let mut c = Conn::open(fleet.addr()).await;
        c.send(format!("{head}{chunked}{smuggled}")).await;
        let a = c.answer().await.expect("one answer");
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json()["done"], true, "{a:?}");
        assert!(a.head.contains("connection: close"), "{}", a.head);
        assert!(c.closes().await, "a second answer: {:?}", c.read);
    }
    // Behind an empty chunked body, the request is refused (no model in
    // it) and the one behind is still never read.
    let mut c = Conn::open(fleet.addr()).await;
    let total = 5 + smuggled.len();
    c.send(format!(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {total}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    ))
    .await;
    let a = c.answer().await.expect("one answer");
    assert_eq!(a.status, 400, "{a:?}");
    assert!(c.closes().await, "a second answer: {:?}", c.read);

    assert_eq!(local.count("/api/chat"), 2, "only the two chunked bodies");
    let records = fleet.records(3).await;
    let mut statuses: Vec<u16> = records.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 400]);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_bad_chunked_body_is_a_400_and_reaches_no_machine() {
    let (local, fleet) = alone().await;
    for body in [
        "zz\r\n{}\r\n0\r\n\r\n",                 // not a chunk size
        "2\r\n{}XX0\r\n\r\n",                    // no CRLF after the data
        "ffffffffffffffffff\r\n{}\r\n",          // a size that overflows
        "3\r\n{}\n\r\n0\r\nbad trailer\r\n\r\n", // a trailer that is no header
    ] {
        let mut c = Conn::open(fleet.addr()).await;
        c.send(format!(
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        ))
        .await;
        let a = c.answer().await.expect("an answer");
        assert_eq!(a.status, 400, "{body:?}: {a:?}");
        assert!(
            a.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not read the request body")),
            "{a:?}"
        );
    }
    assert_eq!(local.count("/api/chat"), 0);
    let records = fleet.records(4).await;
    assert!(records.iter().all(|r| r.status == 400), "{records:?}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (local, fleet) = alone().await;
    let mut c = Conn::open(fleet.addr()).await;
    // Sent in one write: served, a listing, a model no machine that
    // answers has (503: the peer that is down might), served again.
    c.send(format!(
        "{}GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n{}{}",
        post_chat("qwen3:8b"),
        post_chat("llama9"),
        post_chat("qwen3:8b"),
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let a = c.answer().await.expect("an answer");
        statuses.push(a.status);
        match a.status {
            200 if a.json().get("models").is_some() => {
                assert_eq!(a.json()["models"][0]["name"], "qwen3:8b", "{a:?}");
            }
            200 => assert_eq!(a.json()["done"], true, "{a:?}"),
            _ => assert!(a.text().contains("llama9"), "{a:?}"),
        }
    }
    assert_eq!(statuses, [200, 200, 503, 200]);
    assert_eq!(local.count("/api/chat"), 2);
    fleet.records(3).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_head_trickled_slowly_is_dropped_after_the_header_timeout() {
    let (local, fleet) = alone().await;
    let mut c = Conn::open(fleet.addr()).await;
    // A header line every 200 ms, never the end of the head.
    let lines = (0..1000)
        .map(|i| format!("x-{i}: y\r\n").into_bytes())
        .collect();
    c.trickle(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        lines,
        Duration::from_millis(200),
    )
    .await;
    while c.fill().await {}
    let got = String::from_utf8_lossy(&c.read);
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");
    // Others are still served; the dropped one was never a request.
    let mut c = Conn::open(fleet.addr()).await;
    c.send(post_chat("qwen3:8b")).await;
    assert_eq!(c.answer().await.expect("an answer").status, 200);
    assert_eq!(local.count("/api/chat"), 1);
    fleet.records(1).await;
    fleet.shutdown().await;
}

/// A request head announcing a body of `length` bytes.
fn head_with_length(length: usize) -> String {
    format!(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_trickled_slowly_is_cut_with_408() {
    let (local, fleet) = alone().await;
    let mut c = Conn::open(fleet.addr()).await;
    // A byte every 300 ms: never a pause as long as the limit between
    // frames, never the whole body within the overall limit either.
    c.trickle(
        &head_with_length(100),
        vec![b" ".to_vec(); 100],
        Duration::from_millis(300),
    )
    .await;
    let a = c.answer().await.expect("an answer");
    assert_eq!(a.status, 408, "{a:?}");
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("body_read_timeout_secs")),
        "{a:?}"
    );
    // A body that stops: the limit between frames.
    let mut c = Conn::open(fleet.addr()).await;
    c.trickle(
        &head_with_length(100),
        vec![b"{\"model\": ".to_vec()],
        Duration::from_millis(10),
    )
    .await;
    let a = c.answer().await.expect("an answer");
    assert_eq!(a.status, 408, "{a:?}");
    assert_eq!(local.count("/api/chat"), 0);
    let records = fleet.records(2).await;
    assert!(
        records
            .iter()
            .all(|r| r.status == 408 && r.error.as_deref().is_some_and(|e| e.contains("in time"))),
        "{records:?}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_head_over_the_size_limit_is_a_431() {
    let (local, fleet) = alone().await;
    let mut c = Conn::open(fleet.addr()).await;
    let body = chat("qwen3:8b");
    c.send(format!(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nContent-Length: {}\r\n\r\n{body}",
        "a".repeat(20_000),
        body.len()
    ))
    .await;
    let a = c.answer().await.expect("an answer");
    assert_eq!(a.status, 431, "{a:?}");
    assert_eq!(local.count("/api/chat"), 0);
    // A head just under the limit is served.
    let mut c = Conn::open(fleet.addr()).await;
    c.send(format!(
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nContent-Length: {}\r\n\r\n{body}",
        "a".repeat(12_000),
        body.len()
    ))
    .await;
    assert_eq!(c.answer().await.expect("an answer").status, 200);
    fleet.records(1).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_a_413_before_the_body() {
    let (local, fleet) = alone().await;
    let mut c = Conn::open(fleet.addr()).await;
    // The head alone: the answer comes without a byte of the body sent.
    c.send(head_with_length(10_000_000)).await;
    let a = c.answer().await.expect("an answer");
    assert_eq!(a.status, 413, "{a:?}");
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("max_body_bytes")),
        "{a:?}"
    );
    assert_eq!(local.count("/api/chat"), 0);
    let records = fleet.records(1).await;
    assert_eq!(records[0].status, 413, "{records:?}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn two_hosts_or_a_foreign_absolute_target_are_refused() {
    let (local, fleet) = alone().await;
    let body = chat("qwen3:8b");
    let port = fleet.addr().port();
    let refused = [
        (
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n".to_owned(),
            400,
        ),
        (
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n".to_owned(),
            400,
        ),
        (
            "POST http://evil.example/api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_owned(),
            403,
        ),
        (
            "POST http://127.0.0.1@evil.example/api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                .to_owned(),
            403,
        ),
        (
            format!("POST http://127.0.0.1:{port}/api/chat HTTP/1.1\r\nHost: evil.example\r\n"),
            403,
        ),
        (
            "GET http://evil.example/api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_owned(),
            403,
        ),
    ];
    for (head, status) in &refused {
        let mut c = Conn::open(fleet.addr()).await;
        c.send(format!(
            "{head}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let a = c.answer().await.expect("an answer");
        assert_eq!(a.status, *status, "{head}: {a:?}");
    }
    assert_eq!(local.count("/api/chat"), 0);
    // Our own name in the request line is served.
    let mut c = Conn::open(fleet.addr()).await;
    c.send(format!(
        "POST http://127.0.0.1:{port}/api/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await;
    assert_eq!(c.answer().await.expect("an answer").status, 200);
    assert_eq!(local.count("/api/chat"), 1);
    // Refused at the door: no request reached the handler, none is billed.
    fleet.records(1).await;
    fleet.shutdown().await;
}

// Machines.

/// An Ollama chat answer's NDJSON lines: one piece of text, then the end
/// with its token counts.
const FIRST_LINE: &str = r#"{"model":"llama3.2:latest","created_at":"2026-12-01T00:00:00Z","message":{"role":"assistant","content":"Hel"},"done":false}"#;
const LAST_LINE: &str = r#"{"model":"llama3.2:latest","created_at":"2026-12-01T00:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":298}"#;

/// `line` and its newline as one chunk of a chunked body.
fn chunk(line: &str) -> String {
    format!("{:x}\r\n{line}\n\r\n", line.len() + 1)
}

const NDJSON_HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n";

fn llama_chat(stream: bool) -> Value {
    json!({"model": "llama3.2:latest", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn an_answer_framed_two_ways_is_a_failure_and_the_next_machine_serves() {
    let peer = FakeOllama::start().await;
    peer.set_model_names(&["llama3.2:latest"]);
    let both = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n{}{}0\r\n\r\n",
        chunk(FIRST_LINE),
        chunk(LAST_LINE)
    );
    let (local, fleet) = raw_local(Garbage::Raw(both.into_bytes()), &peer.url(), 2).await;
    let r = fleet
        .client()
        .post(format!("http://{}/api/chat", fleet.addr()))
        .json(&llama_chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-clawfleet-machine"], "peer");
    let fallbacks = r.headers()["x-clawfleet-fallbacks"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        fallbacks.contains("local") && fallbacks.contains("Transfer-Encoding and Content-Length"),
        "{fallbacks}"
    );
    let text = tokio::time::timeout(BOUND, r.text())
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.contains("\"done\":true")),
        "{text}"
    );
    assert_eq!(local.count("/api/chat"), 1, "asked once");
    assert_eq!(peer.count("/api/chat"), 1);
    let records = fleet.records(1).await;
    assert_eq!(
        (
            records[0].machine.as_deref(),
            records[0].fallback_depth,
            records[0].outcome.as_str()
        ),
        (Some("peer"), 1, "ok"),
        "{records:?}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_stalls_after_its_first_chunk_ends_with_an_error_line() {
    let stall = format!("{NDJSON_HEAD}{}", chunk(FIRST_LINE));
    let (local, fleet) = raw_local(
        Garbage::Stall(stall.into_bytes()),
        &support::closed_url(),
        1,
    )
    .await;
    let r = fleet
        .client()
        .post(format!("http://{}/api/chat", fleet.addr()))
        .json(&llama_chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = tokio::time::timeout(BOUND, r.text())
        .await
        .expect("the stream ends, not hangs")
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["message"]["content"], "Hel", "{text}");
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("stream_idle_timeout_secs")),
        "an error in Ollama's stream format: {text}"
    );
    assert_eq!(local.count("/api/chat"), 1);
    let records = fleet.records(1).await;
    assert_eq!(
        records[0].outcome, "upstream_failed_midstream",
        "{records:?}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn informational_heads_before_the_answer_are_skipped() {
    let body = LAST_LINE;
    let answer = format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (local, fleet) =
        raw_local(Garbage::Raw(answer.into_bytes()), &support::closed_url(), 1).await;
    let r = fleet
        .client()
        .post(format!("http://{}/api/chat", fleet.addr()))
        .json(&llama_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), body);
    assert_eq!(local.count("/api/chat"), 1);
    let records = fleet.records(1).await;
    assert_eq!(records[0].outcome, "ok", "{records:?}");
    let usage = records[0].usage.expect("tokens read");
    assert_eq!((usage.input_tokens, usage.output_tokens), (26, 298));
    fleet.shutdown().await;
}

#[tokio::test]
async fn huge_trailers_after_a_whole_stream_lose_nothing() {
    // Trailers far over hyper's limit (16 KiB) after the last line: the
    // client already has its whole answer, and the ledger its tokens.
    let answer = format!(
        "{NDJSON_HEAD}{}{}0\r\nX-Junk: {}\r\n\r\n",
        chunk(FIRST_LINE),
        chunk(LAST_LINE),
        "j".repeat(200_000)
    );
    let (local, fleet) =
        raw_local(Garbage::Raw(answer.into_bytes()), &support::closed_url(), 1).await;
    let r = fleet
        .client()
        .post(format!("http://{}/api/chat", fleet.addr()))
        .json(&llama_chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = tokio::time::timeout(BOUND, r.text())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text, format!("{FIRST_LINE}\n{LAST_LINE}\n"));
    assert_eq!(local.count("/api/chat"), 1);
    let records = fleet.records(1).await;
    assert_eq!(records[0].outcome, "ok", "{records:?}");
    let usage = records[0].usage.expect("tokens read");
    assert_eq!((usage.input_tokens, usage.output_tokens), (26, 298));
    fleet.shutdown().await;
}

/// One request read off a raw connection: its path and body; `None` once
/// the connection closed.
async fn read_request(stream: &mut TcpStream, read: &mut Vec<u8>) -> Option<(String, String)> {
    loop {
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(str::trim))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if read.len() >= end + 4 + length {
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let body = String::from_utf8_lossy(&read[end + 4..end + 4 + length]).into_owned();
                read.drain(..end + 4 + length);
                return Some((path, body));
            }
        }
        match stream.read_buf(read).await {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
    }
}

/// A machine that answers the first chat request of each connection and
/// keeps the connection, then reads the next one whole and closes without
/// a word: that request reached it. Listings are answered as documented.
/// Returns its URL and the chat bodies it received.
async fn forgetful_ollama() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let chats = seen.clone();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let chats = chats.clone();
            connections.spawn(async move {
                let mut read = Vec::new();
                let mut answered = 0;
                while let Some((path, body)) = read_request(&mut stream, &mut read).await {
                    let listing = match path.as_str() {
                        "/api/tags" => Some(support::DOC_TAGS_JSON),
                        "/api/ps" => Some("{\"models\":[]}"),
                        "/api/version" => Some(support::DOC_VERSION_JSON),
                        _ => None,
                    };
                    if let Some(json) = listing {
                        let _ = stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                                    json.len()
                                )
                                .as_bytes(),
                            )
                            .await;
                        return;
                    }
                    chats.lock().unwrap().push(body);
                    if answered == 1 {
                        return;
                    }
                    answered += 1;
                    let _ = stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{LAST_LINE}",
                                LAST_LINE.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                }
            });
            while connections.try_join_next().is_some() {}
        }
    });
    (url, seen, task)
}

#[tokio::test]
async fn a_request_a_reused_connection_took_is_never_sent_twice() {
    // The machine closes a kept-alive connection after reading the second
    // request on it. It may have started working on it: the proxy must not
    // send it again, on that connection or another (the old own client
    // did, taking the close for a stale connection).
    let (url, chats, server) = forgetful_ollama().await;
    let fleet = start(&url, &support::closed_url(), 1).await;
    let client = fleet.client();
    let mut statuses = Vec::new();
    for i in 0..2 {
        let body = json!({"model": "llama3.2:latest", "stream": false,
                          "messages": [{"role": "user", "content": format!("request {i}")}]});
        let r = client
            .post(format!("http://{}/api/chat", fleet.addr()))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // The second went out on the kept connection and was cut: no machine
    // could serve it, and nothing was sent twice.
    assert_eq!(statuses, [200, 503]);
    let chats = chats.lock().unwrap().clone();
    assert_eq!(chats.len(), 2, "{chats:?}");
    assert!(
        chats[0].contains("request 0") && chats[1].contains("request 1"),
        "{chats:?}"
    );
    let records = fleet.records(2).await;
    let cut = records
        .iter()
        .find(|r| r.status == 503)
        .expect("the cut one");
    assert!(
        cut.error.as_deref().is_some_and(|e| e.contains("local")),
        "{records:?}"
    );
    server.abort();
    fleet.shutdown().await;
}
