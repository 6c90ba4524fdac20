use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

// --- Framing, from bytes ---------------------------------------------------

/// Reads a whole body out of `wire` given in `pieces` reads, as the body
/// stream does: the data, and whether the end was reached.
fn decode(framing: Framing, pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), String> {
    let mut framing = framing;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match framing.step(&mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::More => break,
                Step::End => return Ok((out, true)),
            }
        }
    }
    Ok((out, false))
}

const CHUNKED: &[u8] = b"6;ext=1\r\n{\"a\":1\r\n2\r\n}\n\r\n18\r\n{\"done\":true,\"eval\":12}\n\r\n0\r\nx-trailer: yes\r\n\r\n";
const CHUNKED_DATA: &[u8] = b"{\"a\":1}\n{\"done\":true,\"eval\":12}\n";

#[test]
fn a_chunked_body_decodes_whatever_the_reads() {
    let whole = decode(Framing::Chunked(Chunked::Size), &[CHUNKED]).expect("whole");
    assert_eq!(whole, (CHUNKED_DATA.to_vec(), true));
    for at in 0..=CHUNKED.len() {
        let (a, b) = CHUNKED.split_at(at);
        let got = decode(Framing::Chunked(Chunked::Size), &[a, b]).expect("split");
        assert_eq!(got, (CHUNKED_DATA.to_vec(), true), "split at {at}");
    }
    let bytes: Vec<&[u8]> = CHUNKED.chunks(1).collect();
    let got = decode(Framing::Chunked(Chunked::Size), &bytes).expect("byte by byte");
    assert_eq!(got, (CHUNKED_DATA.to_vec(), true));
}

#[test]
fn a_chunked_body_with_bare_line_feeds_decodes_too() {
    let got = decode(Framing::Chunked(Chunked::Size), &[b"3\nabc\n0\n\n"]).expect("LF only");
    assert_eq!(got, (b"abc".to_vec(), true));
}

#[test]
fn bad_chunks_are_said_in_words() {
    let cases: &[(&[u8], &str)] = &[
        (b"zz\r\nab\r\n", "not hexadecimal"),
        (b"\r\n", "not hexadecimal"),
        (b"+5\r\nabcde\r\n", "not hexadecimal"),
        (b"11111111111111111\r\n", "not hexadecimal"),
        (b"2\r\nabc\r\n", "longer than its size"),
    ];
    for (wire, said) in cases {
        let err = decode(Framing::Chunked(Chunked::Size), &[wire]).expect_err("refused");
        assert!(err.contains(said), "{wire:?}: {err}");
    }
    let long = vec![b'1'; MAX_CHUNK_LINE + 1];
    let err = decode(Framing::Chunked(Chunked::Size), &[&long]).expect_err("long line");
    assert!(err.contains("chunk-size line over"), "{err}");
}

#[test]
fn a_length_body_ends_at_its_length_and_leaves_the_rest() {
    let mut framing = Framing::Length(5);
    let mut buf = BytesMut::from(&b"helloEXTRA"[..]);
    assert_eq!(
        framing.step(&mut buf),
        Ok(Step::Data(Bytes::from_static(b"hello")))
    );
    assert_eq!(framing.step(&mut buf), Ok(Step::End));
    assert_eq!(&buf[..], b"EXTRA");
    assert!(
        Framing::Length(3)
            .at_close()
            .is_err_and(|e| e.contains("3 bytes before the end"))
    );
    assert!(Framing::Chunked(Chunked::Data(2)).at_close().is_err());
    assert!(Framing::Close.at_close().is_ok());
}

// --- Heads ------------------------------------------------------------------

fn head(wire: &[u8]) -> Result<Option<Head>, String> {
    let mut buf = BytesMut::from(wire);
    match parse_head(&mut buf) {
        Ok(h) => Ok(h),
        Err(Failure::Said(s)) => Err(s),
        Err(Failure::Stale) => Err("stale".to_owned()),
    }
}

fn complete(wire: &[u8]) -> Head {
    match head(wire) {
        Ok(Some(h)) => h,
        Ok(None) => panic!("incomplete: {:?}", String::from_utf8_lossy(wire)),
        Err(e) => panic!("refused: {e}"),
    }
}

#[test]
fn heads_say_how_the_body_ends_and_whether_to_keep_the_connection() {
    let h = complete(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n",
    );
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(
        h.content_type.as_ref().map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    assert_eq!(
        (h.framing, h.content_length, h.keep_alive),
        (Framing::Length(12), Some(12), true)
    );

    let h = complete(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(
        (h.framing, h.content_length, h.keep_alive),
        (Framing::Chunked(Chunked::Size), None, true)
    );

    let h = complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));

    let h = complete(b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));

    let h = complete(
        b"HTTP/1.1 500 Internal Server Error\r\nConnection: Close\r\nContent-Length: 2\r\n\r\n",
    );
    assert_eq!((h.status.as_u16(), h.keep_alive), (500, false));

    let h = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
    assert!(!h.keep_alive, "HTTP/1.0 closes unless it says keep-alive");
    let h = complete(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n");
    assert!(h.keep_alive);

    let h = complete(b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(0));

    let h = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(7));
}

#[test]
fn informational_heads_are_skipped_and_the_body_is_left_in_place() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
    );
    let Ok(Some(h)) = parse_head(&mut buf) else {
        panic!("no head");
    };
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(&buf[..], b"ok");
    // A 100 alone is not the answer yet.
    assert!(matches!(head(b"HTTP/1.1 100 Continue\r\n\r\n"), Ok(None)));
}

#[test]
fn heads_that_cannot_be_read_are_said_in_words() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"<html><body>captive portal</body></html>\r\n\r\n",
            "not HTTP/1.1",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "two different",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "not a number",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
            "not a number",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"HTTP/1.1 099 Odd\r\n\r\n", "status"),
    ];
    for (wire, said) in cases {
        match head(wire) {
            Err(e) => assert!(e.contains(said), "{:?}: {e}", String::from_utf8_lossy(wire)),
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(wire)),
        }
    }
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for _ in 0..=MAX_HEADERS {
        many.extend_from_slice(b"x-filler: a\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert!(head(&many).is_err_and(|e| e.contains("more than 100 header lines")));
    let mut long = b"HTTP/1.1 200 OK\r\nx-filler: ".to_vec();
    long.resize(MAX_HEAD + 1, b'a');
    assert!(head(&long).is_err_and(|e| e.contains("longer than 64 KiB")));
    // Short of the limit, a partial head waits for more.
    assert!(matches!(head(&long[..1000]), Ok(None)));
}

#[test]
fn targets_carry_their_head_and_refuse_what_is_not_plain_http() {
    let url = url::Url::parse("http://127.0.0.1:11434/ollama/api/chat?x=1").expect("url");
    let t = Target::new(&url).expect("target");
    assert_eq!(&*t.key, "127.0.0.1:11434");
    let head = String::from_utf8(t.head.to_vec()).expect("ASCII");
    assert!(
        head.starts_with("POST /ollama/api/chat?x=1 HTTP/1.1\r\nhost: 127.0.0.1:11434\r\n"),
        "{head}"
    );
    assert!(head.ends_with("content-length: "), "{head}");
    let t = Target::new(&url::Url::parse("http://[::1]/api/chat").expect("url")).expect("v6");
    assert_eq!(&*t.key, "[::1]:80");
    assert!(Target::new(&url::Url::parse("https://example.com/api/chat").expect("url")).is_err());
}

// --- Real sockets -------------------------------------------------------------

/// What the scripted server does with a request.
#[derive(Clone)]
enum Act {
    /// Writes these bytes and waits for the next request.
    Answer(Vec<u8>),
    /// Writes these bytes, then closes.
    AnswerThenClose(Vec<u8>),
    /// Closes without answering.
    Close,
    /// Writes these bytes, then reads until the client closes, and counts
    /// that close.
    AnswerThenWatch(Vec<u8>),
}

/// A loopback server that plays `script(connection, request on it)` and
/// keeps every request it read.
struct Scripted {
    url: String,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    client_closed: Arc<AtomicUsize>,
}

async fn read_request(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return Some(seen);
            }
        }
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        seen.extend_from_slice(&buf[..n]);
    }
}

impl Scripted {
    async fn start(script: fn(usize, usize) -> Act) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/api/chat", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let client_closed = Arc::new(AtomicUsize::new(0));
        let (a, r, c) = (accepted.clone(), requests.clone(), client_closed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let conn = a.fetch_add(1, Ordering::SeqCst);
                let (r, c) = (r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while let Some(request) = read_request(&mut tcp).await {
                        r.lock().expect("requests").push(request);
                        match script(conn, n) {
                            Act::Answer(bytes) => {
                                let _ = tcp.write_all(&bytes).await;
                            }
                            Act::AnswerThenClose(bytes) => {
                                let _ = tcp.write_all(&bytes).await;
                                return;
                            }
                            Act::Close => return,
                            Act::AnswerThenWatch(bytes) => {
                                let _ = tcp.write_all(&bytes).await;
                                let mut buf = [0u8; 1024];
                                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                                c.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                        n += 1;
                    }
                });
            }
        });
        Scripted {
            url,
            accepted,
            requests,
            client_closed,
        }
    }

    fn target(&self) -> Target {
        Target::new(&url::Url::parse(&self.url).expect("url")).expect("target")
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const ANSWER: &str = r#"{"model":"m","done":true,"eval_count":3}"#;

async fn body_of(answer: Answer) -> Result<Vec<u8>, String> {
    let mut body = answer.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// `{}` to `target`, and its answer's head.
async fn send(pool: &Arc<Pool>, target: &Target) -> Answer {
    pool.post(target, Bytes::from_static(b"{}"))
        .await
        .expect("an answer")
}

fn pool() -> Arc<Pool> {
    Pool::new(Duration::from_secs(2))
}

#[tokio::test]
async fn requests_in_turn_share_one_connection_and_are_sent_exactly() {
    let server = Scripted::start(|_, _| Act::Answer(ok(ANSWER))).await;
    let (pool, target) = (pool(), server.target());
    let mut payload = Bytes::new();
    for i in 0..3 {
        payload = Bytes::from(format!("{{\"model\":\"m\",\"n\":{i}}}"));
        let answer = pool.post(&target, payload.clone()).await.expect("answer");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_length, Some(ANSWER.len() as u64));
        assert_eq!(body_of(answer).await.expect("body"), ANSWER.as_bytes());
    }
    assert_eq!(server.accepted(), 1, "one keep-alive connection");
    assert_eq!(pool.idle_count(&target.key), 1);
    let requests = server.requests.lock().expect("requests").clone();
    let host = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/api/chat");
    assert_eq!(
        String::from_utf8(requests[2].clone()).expect("ASCII"),
        format!(
            "POST /api/chat HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\nuser-agent: {}\r\ncontent-length: {}\r\n\r\n{{\"model\":\"m\",\"n\":2}}",
            net::USER_AGENT,
            payload.len()
        )
    );
}

#[tokio::test]
async fn a_large_body_is_sent_whole() {
    let server = Scripted::start(|_, _| Act::Answer(ok(ANSWER))).await;
    let payload = format!("{{\"model\":\"m\",\"prompt\":\"{}\"}}", "x".repeat(300_000));
    let answer = pool()
        .post(&server.target(), Bytes::from(payload.clone()))
        .await
        .expect("answer");
    assert_eq!(body_of(answer).await.expect("body"), ANSWER.as_bytes());
    let request = server.requests.lock().expect("requests")[0].clone();
    assert!(request.ends_with(payload.as_bytes()));
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_not_an_error() {
    // The server answers each connection's first request, then closes it
    // without saying so: the second request must still be served.
    let server = Scripted::start(|_, _| Act::AnswerThenClose(ok(ANSWER))).await;
    let (pool, target) = (pool(), server.target());
    for _ in 0..3 {
        let answer = send(&pool, &target).await;
        assert_eq!(body_of(answer).await.expect("body"), ANSWER.as_bytes());
        // Time for the close to reach this side.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn a_request_that_meets_a_closing_connection_is_sent_again_once() {
    // The first connection answers once, then takes the next request and
    // closes without a byte, before its close could be noticed while idle.
    let server = Scripted::start(|conn, n| match (conn, n) {
        (0, 0) => Act::Answer(ok(ANSWER)),
        (0, _) => Act::Close,
        _ => Act::Answer(ok(ANSWER)),
    })
    .await;
    let (pool, target) = (pool(), server.target());
    let answer = pool
        .post(&target, Bytes::from_static(b"{\"n\":1}"))
        .await
        .expect("first");
    body_of(answer).await.expect("body");
    let answer = pool
        .post(&target, Bytes::from_static(b"{\"n\":2}"))
        .await
        .expect("sent again");
    assert_eq!(body_of(answer).await.expect("body"), ANSWER.as_bytes());
    assert_eq!(server.accepted(), 2);
    let requests = server.requests.lock().expect("requests").clone();
    assert_eq!(
        requests.len(),
        3,
        "the second request was sent twice, no more"
    );

    // A fresh connection that closes without a byte is an error, not sent again.
    let server = Scripted::start(|_, _| Act::Close).await;
    let err = pool
        .post(&server.target(), Bytes::from_static(b"{}"))
        .await
        .err()
        .expect("no answer");
    assert!(err.contains("closed without an answer"), "{err}");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn connections_that_cannot_be_reused_are_not_kept() {
    let server = Scripted::start(|_, _| {
        Act::Answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec())
    })
    .await;
    let (pool, target) = (pool(), server.target());
    for _ in 0..2 {
        let answer = send(&pool, &target).await;
        assert_eq!(body_of(answer).await.expect("body"), b"ok");
    }
    assert_eq!(server.accepted(), 2, "Connection: close is not reused");
    assert_eq!(pool.idle_count(&target.key), 0);

    // Bytes past the announced end: the connection is not trusted again.
    let server = Scripted::start(|_, _| {
        Act::Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK".to_vec())
    })
    .await;
    let target = server.target();
    let answer = send(&pool, &target).await;
    assert_eq!(body_of(answer).await.expect("body"), b"ok");
    assert_eq!(pool.idle_count(&target.key), 0);

    // A body that ends with the connection.
    let server = Scripted::start(|_, _| {
        Act::AnswerThenClose(b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec())
    })
    .await;
    let target = server.target();
    let answer = send(&pool, &target).await;
    assert_eq!(answer.content_length, None);
    assert_eq!(body_of(answer).await.expect("body"), b"until the end");
    assert_eq!(pool.idle_count(&target.key), 0);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_its_connection_is_dropped() {
    let server = Scripted::start(|_, _| {
        Act::AnswerThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec())
    })
    .await;
    let (pool, target) = (pool(), server.target());
    let answer = send(&pool, &target).await;
    let err = body_of(answer).await.expect_err("cut short");
    assert!(err.contains("90 bytes before the end"), "{err}");
    assert_eq!(pool.idle_count(&target.key), 0);
}

#[tokio::test]
async fn dropping_a_body_midway_closes_its_connection() {
    // A stream that has sent one chunk and would send more: the reader goes
    // away, and the server sees the connection close (the generation is
    // cancelled upstream).
    let server = Scripted::start(|_, _| {
        Act::AnswerThenWatch(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"a\":1\r\n".to_vec(),
        )
    })
    .await;
    let (pool, target) = (pool(), server.target());
    let mut answer = send(&pool, &target).await;
    let first = answer.body.next().await.expect("a chunk").expect("data");
    assert_eq!(&first[..], b"{\"a\":1");
    drop(answer);
    for _ in 0..200 {
        if server.client_closed.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.client_closed.load(Ordering::SeqCst),
        1,
        "the server saw the close"
    );
    assert_eq!(pool.idle_count(&target.key), 0);
}

#[tokio::test]
async fn idle_connections_are_bounded_in_number_and_time() {
    let server = Scripted::start(|_, _| Act::Answer(ok(ANSWER))).await;
    let target = server.target();
    let pool = Pool::with_limits(Duration::from_secs(2), Duration::from_millis(100), 2);
    let answers = futures_util::future::join_all(
        (0..4).map(|_| pool.post(&target, Bytes::from_static(b"{}"))),
    )
    .await;
    for answer in answers {
        body_of(answer.expect("answer")).await.expect("body");
    }
    assert_eq!(server.accepted(), 4, "four at once need four connections");
    assert_eq!(pool.idle_count(&target.key), 2, "two are kept");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let answer = send(&pool, &target).await;
    body_of(answer).await.expect("body");
    assert_eq!(
        server.accepted(),
        5,
        "an idle connection past its time is not used"
    );
}

#[tokio::test]
async fn a_host_name_is_resolved_and_its_addresses_tried_in_turn() {
    // localhost may resolve to ::1 first, where nothing listens.
    let server = Scripted::start(|_, _| Act::Answer(ok(ANSWER))).await;
    let url = server.url.replace("127.0.0.1", "localhost");
    let target = Target::new(&url::Url::parse(&url).expect("url")).expect("target");
    let answer = pool()
        .post(&target, Bytes::from_static(b"{}"))
        .await
        .expect("answer");
    assert_eq!(body_of(answer).await.expect("body"), ANSWER.as_bytes());
    let request =
        String::from_utf8(server.requests.lock().expect("requests")[0].clone()).expect("ASCII");
    assert!(request.contains("\r\nhost: localhost:"), "{request}");
}

#[test]
fn the_address_that_worked_goes_first_and_the_rest_keep_their_order() {
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let order = |good: Option<u16>| {
        let mut addrs = vec![addr(1), addr(2), addr(3), addr(4)];
        good_first(&mut addrs, good.map(addr));
        addrs.iter().map(SocketAddr::port).collect::<Vec<_>>()
    };
    assert_eq!(order(None), [1, 2, 3, 4]);
    assert_eq!(order(Some(1)), [1, 2, 3, 4]);
    assert_eq!(order(Some(3)), [3, 1, 2, 4]);
    assert_eq!(order(Some(4)), [4, 1, 2, 3]);
    assert_eq!(order(Some(9)), [1, 2, 3, 4], "no longer resolved: ignored");
}

/// A host name with several addresses: the one a connection went to is
/// tried first next time, and when it stops answering the next one that
/// does takes its place.
#[tokio::test]
async fn the_address_that_worked_is_tried_first_until_it_stops_working() {
    let pool = pool();
    let key: Arc<str> = Arc::from("fleet-peer:11434");
    let connect = |addrs: Vec<SocketAddr>| {
        let (pool, key) = (pool.clone(), key.clone());
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            let conn = pool
                .connect_to(&key, addrs, deadline, || "timed out".to_owned())
                .await
                .expect("connected");
            conn.tcp.peer_addr().expect("peer")
        }
    };
    // Listening (the kernel completes the handshake without an accept).
    let a = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (a_addr, b_addr) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
    let refused = {
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        closed.local_addr().expect("addr")
    };

    assert_eq!(pool.good_addr(&key), None);
    assert_eq!(connect(vec![refused, a_addr]).await, a_addr);
    assert_eq!(pool.good_addr(&key), Some(a_addr));
    // The resolver now lists b first: a, which worked, is still tried first.
    assert_eq!(connect(vec![b_addr, a_addr]).await, a_addr);
    // a goes away: refused, then b, which is remembered instead.
    drop(a);
    assert_eq!(connect(vec![b_addr, a_addr]).await, b_addr);
    assert_eq!(pool.good_addr(&key), Some(b_addr));
    // A single address is nothing to remember.
    let single: Arc<str> = Arc::from("one-address:11434");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    pool.connect_to(&single, vec![b_addr], deadline, || "timed out".to_owned())
        .await
        .expect("connected");
    assert_eq!(pool.good_addr(&single), None);
}

#[tokio::test]
async fn a_closed_port_is_a_connection_failure_in_words() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api/chat", listener.local_addr().expect("addr"));
    drop(listener);
    let target = Target::new(&url::Url::parse(&url).expect("url")).expect("target");
    let err = pool()
        .post(&target, Bytes::from_static(b"{}"))
        .await
        .err()
        .expect("refused");
    assert!(err.starts_with("connection failed: "), "{err}");
    assert!(err.contains("refused"), "{err}");
}

#[tokio::test]
async fn a_connection_that_never_completes_times_out_in_words() {
    // A listener whose accept queue is full drops further SYNs: connecting
    // to it hangs, as to a black-holed machine.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut held = Vec::new();
    let full = loop {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) if held.len() < 64 => held.push(tcp),
            Ok(Ok(_)) => break false,
            Ok(Err(e)) => panic!("connecting to fill the queue: {e}"),
            Err(_) => break true,
        }
    };
    assert!(full, "the accept queue never filled");
    let target = Target::new(&url::Url::parse(&format!("http://{addr}/api/chat")).expect("url"))
        .expect("target");
    let pool = Pool::new(Duration::from_millis(300));
    let err = pool
        .post(&target, Bytes::from_static(b"{}"))
        .await
        .err()
        .expect("no connection");
    assert_eq!(
        err,
        format!("timed out: no connection to {addr} within 300 ms")
    );
}
