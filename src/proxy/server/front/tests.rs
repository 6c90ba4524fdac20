use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::Source;
use crate::fleet::Fleet;
use crate::ledger::Ledger;
use crate::proxy::server::Proxy;
use crate::snapshot::Snapshot;

/// A proxy with one machine whose Ollama answered with no model: every
/// model is unknown, so each request is answered at once (404) without a
/// backend.
struct Fixture {
    app: ProxyApp,
    _ledger: Ledger,
    _snapshot: watch::Sender<Arc<Snapshot>>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with(1024)
}

fn fixture_with(max_body: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"this_machine = "local"
data_dir = {data:?}
[proxy]
max_body_bytes = {max_body}
[[machines]]
id = "local"
name = "Local"
ollama_url = "http://127.0.0.1:9"
"#,
        data = dir.path()
    );
    let config = Arc::new(crate::config::parse(&text, &Source::Embedded).unwrap());
    let fleet = Arc::new(Fleet::resolve(&config, "test-host"));
    let answered = Snapshot {
        machines: vec![crate::snapshot::MachineSnapshot {
            id: "local".into(),
            is_self: true,
            online: true,
            ollama: Some(crate::snapshot::OllamaStatus {
                reachable: true,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Snapshot::default()
    };
    let (tx, rx) = watch::channel(Arc::new(answered));
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let proxy = Proxy::new(config.clone(), fleet.clone(), rx, ledger.handle()).unwrap();
    let allowed = crate::api::AllowedHosts::new(&config, &fleet, &[]);
    Fixture {
        app: ProxyApp::new(Arc::new(proxy), Arc::new(allowed)),
        _ledger: ledger,
        _snapshot: tx,
        _dir: dir,
    }
}

/// A connection served by the front with `timeout` for each head: the
/// client's end, what `serve` returned, and the token that stops it.
async fn connect(
    app: &ProxyApp,
    timeout: Duration,
) -> (
    TcpStream,
    tokio::task::JoinHandle<Option<Handoff>>,
    CancellationToken,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (stream, peer) = listener.accept().await.unwrap();
    let stop = CancellationToken::new();
    let served = tokio::spawn(serve(
        app.clone(),
        FrontConnection {
            stream,
            peer,
            header_read_timeout: timeout,
            stop: stop.clone(),
        },
    ));
    (client, served, stop)
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One HTTP/1.1 answer with a `Content-Length` read off `stream`: status,
/// headers (lowercase names), body.
async fn answer(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, String) {
    answer_from(stream, &mut Vec::new()).await
}

/// [`answer`], with `buf` holding what was read past the last one.
async fn answer_from(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> (u16, Vec<(String, String)>, String) {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut slots);
        if let httparse::Status::Complete(len) = response.parse(buf).unwrap() {
            let headers: Vec<(String, String)> = response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .expect("a content-length")
                .1
                .parse()
                .unwrap();
            let status = response.code.unwrap();
            while buf.len() < len + length {
                read_some(stream, buf).await;
            }
            let body = String::from_utf8(buf[len..len + length].to_vec()).unwrap();
            buf.drain(..len + length);
            return (status, headers, body);
        }
        read_some(stream, buf).await;
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(buf))
        .await
        .expect("bytes within 10 s")
        .unwrap();
    assert!(
        n > 0,
        "the connection closed early: {:?}",
        String::from_utf8_lossy(buf)
    );
}

/// Reads until the server closes; what came.
async fn rest(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("closed within 10 s")
        .unwrap();
    out
}

#[test]
fn heads_of_the_hot_path_are_read_and_everything_else_is_left_to_hyper() {
    let ready = post("/api/chat", "{}", "");
    let Parse::Ready(head) = parse(ready.as_bytes(), 1000) else {
        panic!("not ready");
    };
    assert_eq!(head.len, ready.len() - 2);
    assert_eq!((head.body_len, head.close), (2, false));
    assert_eq!(head.endpoint, Endpoint::OllamaChat);
    assert_eq!(head.prefer, None);
    assert_eq!(head.uri, "/api/chat");
    let names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["host", "content-type", "content-length"]);
    assert_eq!(&ready[head.headers[0].1.clone()], "127.0.0.1");

    let via = post(
        "/via/macmini/v1/chat/completions",
        "{}",
        "Connection: keep-alive, close\r\n",
    );
    let Parse::Ready(head) = parse(via.as_bytes(), 1000) else {
        panic!("not ready");
    };
    assert_eq!(head.endpoint, Endpoint::OpenAiChat);
    assert_eq!(head.prefer.as_deref(), Some("macmini"));
    assert_eq!(head.uri, "/via/macmini/v1/chat/completions");
    assert!(head.close);

    // Every prefix of a head is "more", never a decision.
    let head_len = ready.len() - 2;
    for end in 0..head_len {
        assert!(
            matches!(parse(&ready.as_bytes()[..end], 1000), Parse::More),
            "{end}"
        );
    }

    let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
    let long = format!("X-Long: {}\r\n", "y".repeat(MAX_HEAD));
    for (why, text) in [
        (
            "GET",
            "GET /api/chat HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        ),
        ("other path", post("/api/tags", "{}", "")),
        ("query", post("/api/chat?x=1", "{}", "")),
        (
            "HTTP/1.0",
            post("/api/chat", "{}", "").replace("HTTP/1.1", "HTTP/1.0"),
        ),
        (
            "chunked",
            post("/api/chat", "{}", "Transfer-Encoding: chunked\r\n"),
        ),
        (
            "expect",
            post("/api/chat", "{}", "Expect: 100-continue\r\n"),
        ),
        ("upgrade", post("/api/chat", "{}", "Upgrade: websocket\r\n")),
        (
            "connection upgrade",
            post("/api/chat", "{}", "Connection: Upgrade\r\n"),
        ),
        (
            "two lengths",
            post("/api/chat", "{}", "Content-Length: 2\r\n"),
        ),
        (
            "signed length",
            post("/api/chat", "{}", "").replace("Length: 2", "Length: +2"),
        ),
        (
            "listed length",
            post("/api/chat", "{}", "").replace("Length: 2", "Length: 2, 2"),
        ),
        (
            "no length",
            post("/api/chat", "{}", "").replace("Content-Length: 2\r\n", ""),
        ),
        (
            "body over the limit",
            post("/api/chat", &"x".repeat(1001), ""),
        ),
        ("too many headers", post("/api/chat", "{}", &many)),
        ("head too long", post("/api/chat", "{}", &long)),
        ("control byte", post("/api/chat", "{}", "X-A: a\u{1}b\r\n")),
        ("not HTTP", "HELLO\r\n\r\n".to_owned()),
    ] {
        assert!(
            matches!(parse(text.as_bytes(), 1000), Parse::Hyper),
            "{why}"
        );
    }
    // A head that is still partial past the size limit is not waited for.
    let partial = format!("POST /api/chat HTTP/1.1\r\nX: {}", "y".repeat(MAX_HEAD));
    assert!(matches!(parse(partial.as_bytes(), 1000), Parse::Hyper));
}

#[test]
fn content_lengths_are_plain_decimals() {
    assert_eq!(parse_length(b"0"), Some(0));
    assert_eq!(parse_length(b"0042"), Some(42));
    assert_eq!(
        parse_length(b"9999999999999999999"),
        Some(9_999_999_999_999_999_999)
    );
    for bad in [
        &b""[..],
        b"-1",
        b"+1",
        b"1 ",
        b" 1",
        b"1,1",
        b"0x10",
        b"99999999999999999999",
    ] {
        assert_eq!(
            parse_length(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn heads_say_status_headers_date_and_framing() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let mut out = Vec::new();
    write_head(
        &mut out,
        StatusCode::NOT_FOUND,
        &headers,
        Some(5),
        false,
        false,
    );
    let text = String::from_utf8(out).unwrap();
    let (before, date) = text.split_once("date: ").unwrap();
    assert_eq!(
        before,
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
    );
    let (date, after) = date.split_once("\r\n").unwrap();
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    assert_eq!(after, "content-length: 5\r\n\r\n");

    let mut out = Vec::new();
    headers.insert(
        header::DATE,
        HeaderValue::from_static("Mon, 30 Nov 2026 20:00:00 GMT"),
    );
    write_head(&mut out, StatusCode::OK, &headers, None, false, true);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: Mon, 30 Nov 2026 20:00:00 GMT\r\n\
         connection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut out = Vec::new();
    write_head(
        &mut out,
        StatusCode::NO_CONTENT,
        &HeaderMap::new(),
        Some(0),
        true,
        false,
    );
    assert!(!String::from_utf8(out).unwrap().contains("length"));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let f = fixture();
    let (mut client, served, _stop) = connect(&f.app, Duration::from_secs(10)).await;
    let both = format!(
        "{}{}",
        post("/api/chat", r#"{"model":"nope"}"#, ""),
        post("/v1/chat/completions", r#"{"messages":[]}"#, "")
    );
    client.write_all(both.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (status, headers, body) = answer_from(&mut client, &mut buf).await;
    assert_eq!(status, 404);
    assert!(body.contains("nope"), "{body}");
    assert!(headers.iter().any(|(n, _)| n == "date"));
    let (status, _, body) = answer_from(&mut client, &mut buf).await;
    assert_eq!(status, 400);
    assert!(body.contains("names no model"), "{body}");
    // A third, sent in three pieces, is read whole.
    let third = post("/api/generate", r#"{"model":"gone"}"#, "");
    for piece in [&third[..10], &third[10..60], &third[60..]] {
        client.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, body) = answer_from(&mut client, &mut buf).await;
    assert_eq!(status, 404);
    assert!(body.contains("gone"), "{body}");
    drop(client);
    assert!(served.await.unwrap().is_none(), "closed, not handed over");
}

#[tokio::test]
async fn a_large_body_is_read_as_it_comes_and_the_connection_goes_on() {
    let f = fixture_with(1 << 20);
    let (mut client, served, _stop) = connect(&f.app, Duration::from_secs(10)).await;
    let pad = "x".repeat(300_000);
    let large = post(
        "/api/chat",
        &format!(r#"{{"model":"big","pad":"{pad}"}}"#),
        "",
    );
    let mut buf = Vec::new();
    for piece in large.as_bytes().chunks(70_000) {
        client.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, _, body) = answer_from(&mut client, &mut buf).await;
    assert_eq!(status, 404);
    assert!(body.contains("big"), "{body}");
    let small = post("/api/chat", r#"{"model":"small"}"#, "");
    client.write_all(small.as_bytes()).await.unwrap();
    let (status, _, body) = answer_from(&mut client, &mut buf).await;
    assert_eq!(status, 404);
    assert!(body.contains("small"), "{body}");
    drop(client);
    assert!(served.await.unwrap().is_none());
}

#[tokio::test]
async fn a_request_it_does_not_answer_goes_to_hyper_with_every_byte_read() {
    let f = fixture();
    let (mut client, served, _stop) = connect(&f.app, Duration::from_secs(10)).await;
    let get = "GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let both = format!("{}{get}", post("/api/chat", r#"{"model":"nope"}"#, ""));
    client.write_all(both.as_bytes()).await.unwrap();
    let (status, _, _) = answer(&mut client).await;
    assert_eq!(status, 404);
    let handoff = served.await.unwrap().expect("handed over");
    assert_eq!(handoff.read, get.as_bytes());

    // From the first request on, and a body cut short with what came.
    let chunked = post("/api/chat", "", "Transfer-Encoding: chunked\r\n") + "5\r\nab";
    let short = post("/api/chat", r#"{"model":"nope"}"#, "").replace("\"}", "");
    for sent in [chunked, short] {
        let (mut client, served, _stop) = connect(&f.app, Duration::from_secs(10)).await;
        client.write_all(sent.as_bytes()).await.unwrap();
        client.shutdown().await.unwrap();
        let handoff = served.await.unwrap().expect("handed over");
        assert_eq!(handoff.read, sent.as_bytes());
    }
}

#[tokio::test]
async fn each_head_has_its_own_time_limit_and_a_silent_client_is_dropped() {
    let f = fixture();
    let limit = Duration::from_secs(1);
    let (mut client, served, _stop) = connect(&f.app, limit).await;
    // Two waits of 0.6 s each: more than the limit in all, less each time.
    for model in ["one", "two"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let request = post("/api/chat", &format!(r#"{{"model":"{model}"}}"#), "");
        client.write_all(request.as_bytes()).await.unwrap();
        let (status, _, body) = answer(&mut client).await;
        assert_eq!(status, 404);
        assert!(body.contains(model), "{body}");
    }
    // Half a head, then nothing: the connection is closed without an answer.
    client
        .write_all(b"POST /api/chat HTTP/1.1\r\n")
        .await
        .unwrap();
    assert_eq!(rest(&mut client).await, b"");
    assert!(served.await.unwrap().is_none());
}

#[tokio::test]
async fn a_body_that_stops_coming_is_answered_408_and_a_slow_one_is_read() {
    let f = fixture();
    let limit = Duration::from_millis(400);
    let (mut client, served, _stop) = connect(&f.app, limit).await;
    // A body in three pieces 250 ms apart: longer than the limit in all,
    // never silent for as long.
    let request = post("/api/chat", r#"{"model":"slow-but-steady"}"#, "");
    let (head, body) = request.split_at(request.len() - 20);
    client.write_all(head.as_bytes()).await.unwrap();
    for piece in [&body[..10], &body[10..]] {
        tokio::time::sleep(Duration::from_millis(250)).await;
        client.write_all(piece.as_bytes()).await.unwrap();
    }
    let (status, _, text) = answer(&mut client).await;
    assert_eq!(status, 404);
    assert!(text.contains("slow-but-steady"), "{text}");

    // Then a body that stops half-way: 408, in words, and the close.
    let request = post("/api/chat", r#"{"model":"stalled"}"#, "");
    client
        .write_all(&request.as_bytes()[..request.len() - 5])
        .await
        .unwrap();
    let (status, headers, text) = answer(&mut client).await;
    assert_eq!(status, 408);
    assert!(headers.contains(&("connection".to_owned(), "close".to_owned())));
    assert_eq!(
        text,
        "The request body stopped coming: send it again whole."
    );
    assert_eq!(rest(&mut client).await, b"");
    assert!(served.await.unwrap().is_none());
}

#[tokio::test]
async fn stopping_closes_an_idle_connection() {
    let f = fixture();
    let (mut client, served, stop) = connect(&f.app, Duration::from_secs(10)).await;
    client
        .write_all(post("/api/chat", r#"{"model":"nope"}"#, "").as_bytes())
        .await
        .unwrap();
    assert_eq!(answer(&mut client).await.0, 404);
    stop.cancel();
    assert_eq!(rest(&mut client).await, b"");
    assert!(served.await.unwrap().is_none());
}

#[tokio::test]
async fn connection_close_is_honoured_and_said() {
    let f = fixture();
    let (mut client, served, _stop) = connect(&f.app, Duration::from_secs(10)).await;
    let request = post("/api/chat", r#"{"model":"nope"}"#, "Connection: close\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let (status, headers, _) = answer(&mut client).await;
    assert_eq!(status, 404);
    assert!(headers.contains(&("connection".to_owned(), "close".to_owned())));
    assert_eq!(rest(&mut client).await, b"");
    assert!(served.await.unwrap().is_none());
}

/// A connected pair: the server's end for `respond`, the client's to read.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    (listener.accept().await.unwrap().0, client)
}

fn streamed(rx: mpsc::Receiver<&'static str>) -> Response {
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(chunk.as_bytes())),
            rx,
        ))
    });
    Response::new(Body::from_stream(chunks))
}

/// A streamed answer being written by `respond`: the client's end, the
/// sender of its chunks, and the writer's outcome.
async fn streaming() -> (
    TcpStream,
    mpsc::Sender<&'static str>,
    tokio::task::JoinHandle<Result<(), Broke>>,
) {
    let (mut server, client) = pair().await;
    let (tx, rx) = mpsc::channel(1);
    let writer = tokio::spawn(async move {
        let (mut buf, mut out) = (BytesMut::new(), Vec::new());
        respond(&mut server, &mut buf, &mut out, streamed(rx), false).await
    });
    (client, tx, writer)
}

#[tokio::test]
async fn a_stream_goes_out_chunk_by_chunk_as_it_comes() {
    let (mut client, tx, writer) = streaming().await;
    let mut got = Vec::new();
    tx.send("{\"a\":1}\n").await.unwrap();
    while !got.ends_with(b"8\r\n{\"a\":1}\n\r\n") {
        read_some(&mut client, &mut got).await;
    }
    let text = String::from_utf8(got.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("\r\ntransfer-encoding: chunked\r\n\r\n8\r\n"),
        "{text}"
    );
    // The second chunk is not sent before it exists, and the end follows it.
    tx.send("{\"b\":22}\n").await.unwrap();
    drop(tx);
    while !got.ends_with(b"0\r\n\r\n") {
        read_some(&mut client, &mut got).await;
    }
    assert!(
        String::from_utf8(got)
            .unwrap()
            .ends_with("9\r\n{\"b\":22}\n\r\n0\r\n\r\n")
    );
    writer.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_drops_the_answer() {
    let (mut client, tx, writer) = streaming().await;
    tx.send("first\n").await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"first\n\r\n") {
        read_some(&mut client, &mut got).await;
    }
    drop(client);
    // The answer's body is dropped, which is what cancels the request upstream.
    tokio::time::timeout(Duration::from_secs(10), tx.closed())
        .await
        .expect("the body dropped within 10 s");
    let Err(Broke(why)) = writer.await.unwrap() else {
        panic!("not broken");
    };
    assert!(why.contains("closed"), "{why}");
}

#[tokio::test]
async fn an_answer_shorter_than_its_length_closes_the_connection() {
    let (mut server, mut client) = pair().await;
    let (tx, rx) = mpsc::channel(1);
    let mut response = streamed(rx);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
    tx.send("12345").await.unwrap();
    drop(tx);
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    let Err(Broke(why)) = respond(&mut server, &mut buf, &mut out, response, false).await else {
        panic!("not broken");
    };
    assert!(why.contains("shorter"), "{why}");
    drop(server);
    let text = String::from_utf8(rest(&mut client).await).unwrap();
    assert!(text.contains("content-length: 10\r\n\r\n12345"), "{text}");
    assert!(!text.contains("chunked"), "{text}");
}
