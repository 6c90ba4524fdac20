//! The proxy listener's own HTTP/1.1 server for its hot path: the
//! inference `POST`s (an [`Endpoint`], also under `/via/<machine>/`) with a
//! `Content-Length` body, the requests Clawdbot sends all day.
//!
//! hyper's server parses every head into its own types, runs a dispatcher
//! loop around the service and arms a fresh header timer for each request;
//! in a profile under `cargo xtask bench proxy` that was about a tenth of
//! the proxy's CPU per request. This server does only what those requests
//! need and is strict about it: anything else — another method or path,
//! `Transfer-Encoding`, `Expect`, `Upgrade`, HTTP/1.0, a head over 16 KiB or
//! that `httparse` refuses, a body over `[proxy] max_body_bytes`, a body cut
//! short — goes to hyper with the bytes read so far
//! ([`crate::server::Handoff`]), and hyper answers it and the rest of the
//! connection exactly as before. So every refusal and every other endpoint
//! keep hyper's behaviour; this server only ever answers well-formed
//! requests of the hot path.
//!
//! What it keeps of hyper's: keep-alive and pipelining (requests answered
//! in order; bytes read ahead are kept, at most [`READ_AHEAD`]), a time
//! limit for each request head (one timer per connection, moved only when
//! it fires), `Connection: close`, a `Date` header, `Content-Length` when
//! the answer's length is known and chunked framing otherwise, the head and
//! the body in one write when the body is there already (the head goes
//! alone when it is not), each body chunk written as soon as no other is
//! ready (streams are not buffered), and a client that closes its
//! side while an answer is on its way drops the answer (which cancels the
//! request upstream).
//!
//! And one thing hyper's server does not do: a body that stops coming (no
//! byte of it for as long as a head may take) gets `408 Request Timeout`
//! and the connection is closed, so a stalled upload cannot hold one of the
//! listener's connections, or a graceful shutdown, for ever.

use std::io::Write as _;
use std::ops::Range;

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use super::{Endpoint, ProxyApp, hot_path};
use crate::proxy::h1::parse_length;
use crate::server::{FrontConnection, Handoff};

/// A request head longer than this goes to hyper (which allows more).
const MAX_HEAD: usize = 16 * 1024;
/// Header lines at most; more go to hyper (which answers 431).
const MAX_HEADERS: usize = 64;
/// Bytes of later requests read while an answer is written, at most; past
/// this the client is not read until the answer is done.
const READ_AHEAD: usize = 64 * 1024;
/// Room made in the read buffer before a read.
const READ_CHUNK: usize = 8 * 1024;
/// What a client whose body stopped coming is told before the close.
const BODY_TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 53\r\n\r\nThe request body stopped coming: send it again whole.";
/// Body chunks up to this size are copied next to their framing and written
/// in one piece; larger ones are written from where they are.
const COPY_MAX: usize = 16 * 1024;

/// What the bytes read so far hold.
#[derive(Debug)]
enum Parse {
    /// The head of a request this server answers.
    Ready(Head),
    /// Not a whole head yet.
    More,
    /// A request for hyper.
    Hyper,
}

/// A request head of the hot path, as offsets into the bytes read.
#[derive(Debug)]
struct Head {
    len: usize,
    body_len: usize,
    close: bool,
    endpoint: Endpoint,
    prefer: Option<String>,
    uri: Uri,
    headers: Vec<(HeaderName, Range<usize>)>,
}

/// Reads `buf` for a request head of the hot path with a body of at most
/// `max_body` bytes.
fn parse(buf: &[u8], max_body: u64) -> Parse {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parse::More,
        _ => return Parse::Hyper,
    };
    if request.method != Some("POST") || request.version != Some(1) {
        return Parse::Hyper;
    }
    let Some(path) = request.path else {
        return Parse::Hyper;
    };
    let Some((endpoint, prefer)) = hot_path(path) else {
        return Parse::Hyper;
    };
    let uri = match &prefer {
        None => Uri::from_static(endpoint.path()),
        Some(_) => match Uri::try_from(path) {
            Ok(uri) => uri,
            Err(_) => return Parse::Hyper,
        },
    };
    let mut body_len = None;
    let mut close = false;
    let mut headers = Vec::with_capacity(request.headers.len());
    for h in request.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return Parse::Hyper;
        };
        // What `HeaderValue` accepts; httparse lets a little more through.
        if !h
            .value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        {
            return Parse::Hyper;
        }
        if name == header::CONTENT_LENGTH {
            match (body_len, parse_length(h.value)) {
                (None, Some(n)) => body_len = Some(n),
                _ => return Parse::Hyper,
            }
        } else if name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return Parse::Hyper;
        } else if name == header::CONNECTION {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parse::Hyper;
                }
            }
        }
        // httparse's slices point into `buf`.
        let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
        headers.push((name, start..start + h.value.len()));
    }
    let Some(body_len) = body_len.filter(|&n| n <= max_body) else {
        return Parse::Hyper;
    };
    let Ok(body_len) = usize::try_from(body_len) else {
        return Parse::Hyper;
    };
    Parse::Ready(Head {
        len,
        body_len,
        close,
        endpoint,
        prefer,
        uri,
        headers,
    })
}

/// The request the handler gets: `head` read from `bytes`, its body, the
/// peer as [`crate::server::peer_of`] finds it.
fn request(head: Head, bytes: &Bytes, body: Bytes, peer: std::net::SocketAddr) -> Request<Body> {
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for (name, range) in head.headers {
        // Checked by `parse`: the fallback is never taken.
        let value = HeaderValue::from_maybe_shared(bytes.slice(range))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        headers.append(name, value);
    }
    let mut request = Request::new(Body::from(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = head.uri;
    *request.headers_mut() = headers;
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// What ended an answer on its way out: the connection closes.
#[derive(Debug)]
struct Broke(String);

/// Serves one connection; see the module's text.
pub(super) async fn serve(app: ProxyApp, connection: FrontConnection) -> Option<Handoff> {
    let FrontConnection {
        mut stream,
        peer,
        header_read_timeout,
        stop,
    } = connection;
    let max_body = app.proxy.config.proxy.max_body_bytes;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // One timer for the connection: a request head must come within
    // `header_read_timeout` of the wait for it starting. The timer is
    // moved only when it fires early, not armed anew for each request.
    let timer = tokio::time::sleep(header_read_timeout);
    tokio::pin!(timer);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let deadline = Instant::now() + header_read_timeout;
        let mut head = loop {
            match parse(&buf, max_body) {
                Parse::Ready(head) => break head,
                Parse::Hyper => return handoff(stream, buf),
                Parse::More => {}
            }
            buf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                read = stream.read_buf(&mut buf) => match read {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => {
                        debug!(%peer, "connection ended: {e}");
                        return None;
                    }
                },
                () = &mut timer => {
                    if Instant::now() >= deadline {
                        debug!(%peer, "no request head within {header_read_timeout:?}: closing");
                        return None;
                    }
                    timer.as_mut().reset(deadline);
                }
                () = &mut stopped, if buf.is_empty() => return None,
            }
        };
        let whole = head.len + head.body_len;
        while buf.len() < whole {
            // Room as the body comes, not for what the head claims: a client
            // that announces 32 MiB and sends nothing costs 64 KiB.
            buf.reserve((whole - buf.len()).min(READ_AHEAD));
            // A timer only here: a usual body came with its head.
            match tokio::time::timeout(header_read_timeout, stream.read_buf(&mut buf)).await {
                // A body cut short: hyper gives the handler what came, and
                // its refusal is recorded like any other.
                Ok(Ok(0)) => return handoff(stream, buf),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    debug!(%peer, "connection ended: {e}");
                    return None;
                }
                Err(_) => {
                    debug!(
                        %peer,
                        "no byte of the request body within {header_read_timeout:?}: answering 408 and closing"
                    );
                    let _ = stream.write_all(BODY_TIMED_OUT).await;
                    let _ = stream.shutdown().await;
                    return None;
                }
            }
        }
        let bytes = buf.split_to(head.len).freeze();
        let body = buf.split_to(head.body_len).freeze();
        let close = head.close;
        let endpoint = head.endpoint;
        let prefer = head.prefer.take();
        let response = app
            .answer(request(head, &bytes, body, peer), endpoint, prefer)
            .await;
        drop(bytes);
        if let Err(Broke(why)) = respond(&mut stream, &mut buf, &mut out, response, close).await {
            debug!(%peer, "connection ended: {why}");
            return None;
        }
        if close || stop.is_cancelled() {
            let _ = stream.shutdown().await;
            return None;
        }
        // A large body was read into room made for it: what is left of
        // that room would keep the whole allocation alive while the
        // connection idles. Start small again.
        if buf.capacity() > READ_AHEAD {
            buf = BytesMut::from(&buf[..]);
        }
    }
}

fn handoff(stream: TcpStream, buf: BytesMut) -> Option<Handoff> {
    Some(Handoff {
        stream,
        read: buf.freeze(),
    })
}

/// Writes `response` on `stream`. `buf` takes what the client sends
/// meanwhile; `out` is the connection's write buffer.
async fn respond(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    response: Response,
    close: bool,
) -> Result<(), Broke> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let bodyless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = if bodyless {
        Some(0)
    } else {
        body.size_hint().exact().or_else(|| {
            parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| parse_length(v.as_bytes()))
        })
    };
    let chunked = length.is_none();
    out.clear();
    write_head(out, status, &parts.headers, length, bodyless, close);
    if bodyless {
        drop(body);
        return flush(stream, out).await;
    }
    let mut sent: u64 = 0;
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                // Nothing more ready: what is written so far goes now.
                flush(stream, out).await?;
                next_frame(&mut body, stream, buf).await?
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| Broke(format!("the answer broke off: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not sent
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if length.is_some_and(|n| sent > n) {
            return Err(Broke("the answer is longer than its Content-Length".into()));
        }
        if chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        if data.len() <= COPY_MAX {
            out.extend_from_slice(&data);
        } else {
            flush(stream, out).await?;
            write(stream, &data).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= COPY_MAX {
            flush(stream, out).await?;
        }
    }
    if length.is_some_and(|n| sent != n) {
        flush(stream, out).await?;
        return Err(Broke(
            "the answer is shorter than its Content-Length".into(),
        ));
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    flush(stream, out).await
}

/// The answer's next frame; meanwhile the client is read, so that one that
/// closes the connection is noticed (and the answer dropped) at once.
async fn next_frame(
    body: &mut Body,
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>, Broke> {
    loop {
        let room = buf.len() < READ_AHEAD;
        if room {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            frame = body.frame() => return Ok(frame),
            read = stream.read_buf(buf), if room => match read {
                Ok(0) => return Err(Broke("the client closed the connection mid-answer".into())),
                Ok(_) => {}
                Err(e) => return Err(Broke(format!("reading from the client: {e}"))),
            },
        }
    }
}

/// The status line and headers. `length` is the body's length when known
/// (else the body is chunked); `bodyless` answers say neither.
fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    length: Option<u64>,
    bodyless: bool,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        dated |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        date::now(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    match length {
        _ if bodyless => {}
        Some(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

async fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> Result<(), Broke> {
    if out.is_empty() {
        return Ok(());
    }
    write(stream, out).await?;
    out.clear();
    Ok(())
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), Broke> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| Broke(format!("writing to the client: {e}")))
}

/// The `Date` header's value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn now(with: impl FnOnce(&[u8])) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.0 != second {
                *cache = (second, httpdate::fmt_http_date(now));
            }
            with(cache.1.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests;
