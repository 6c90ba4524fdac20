//! The proxy's HTTP/1.1 client for plain-HTTP model servers reached
//! directly: this machine's Ollama, and peers when no `[proxy] socks5` is
//! set. It runs on the request's own task.
//!
//! hyper's pooled client runs every connection as a task of its own and
//! hands it each request, the answer's head and each body chunk over
//! channels, so every request also wakes that task (often on the other
//! core) and is woken by it. Here the request's task takes an idle
//! connection, writes the request in one `write`, reads the head, and its
//! body stream reads the rest from the same socket. The body puts the
//! connection back when it has read the answer to its end. Dropping it
//! early closes the connection, which is how a client that went away
//! cancels the generation upstream.
//!
//! What it speaks is what model servers answer to `POST`s:
//! - bodies framed by `Content-Length`, `Transfer-Encoding: chunked` or the
//!   connection's close;
//! - `1xx` heads skipped;
//! - `Connection: close` and HTTP/1.0 connections not reused.
//!
//! Anything else (a head over [`MAX_HEAD`], a bad chunk size, two different
//! lengths) is an error in words. An idle connection the server closed is
//! seen when it is taken (the reactor flagged it readable) or when the
//! request on it gets no byte back. The request is then sent again, once,
//! on a fresh connection, and never counts against the machine.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::upstream::Answer;
use crate::net;

/// The longest answer head read: the head (with any `1xx` before it) or a
/// chunk's trailers.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header lines in a head.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// How much room a read is given: see [`make_room`].
const READ_ROOM: usize = 8 * 1024;
/// A body up to this size is copied behind the head and sent in the same
/// `write`; a longer one goes as a second buffer of one `writev`.
const COPY_BODY_MAX: usize = 16 * 1024;

/// One upstream URL: where to connect, and its request head up to the
/// length's digits.
#[derive(Clone, Debug)]
pub struct Target {
    /// Host and port as connected to: the pool's key.
    key: Arc<str>,
    host: url::Host<String>,
    port: u16,
    /// `POST <path> HTTP/1.1`, `Host`, `Content-Type`, `User-Agent`, and
    /// `Content-Length: ` waiting for its digits.
    head: Bytes,
}

impl Target {
    /// The target of `url`, which must be `http://`.
    pub fn new(url: &url::Url) -> Result<Target, String> {
        if url.scheme() != "http" {
            return Err(format!("{url} is not a plain http:// address"));
        }
        let host = url
            .host()
            .ok_or_else(|| format!("{url} names no host"))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("{url} names no port"))?;
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        // The url crate percent-encodes what it keeps; a control character
        // left in a head would split it.
        if authority.bytes().chain(path.bytes()).any(|b| b < 0x21) {
            return Err(format!("{url} has characters a request head cannot carry"));
        }
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\nuser-agent: {}\r\ncontent-length: ",
            net::USER_AGENT
        );
        Ok(Target {
            key: Arc::from(format!("{host}:{port}")),
            host,
            port,
            head: Bytes::from(head),
        })
    }
}

/// An open connection and what was read from it past the last answer.
struct Conn {
    tcp: TcpStream,
    buf: BytesMut,
}

/// Idle connections by host, most recently used last.
struct Idle {
    by_host: HashMap<Arc<str>, Vec<(Conn, Instant)>>,
    swept: Instant,
    /// For a host name with several addresses, the one the last connection
    /// went to: tried first next time, so that a black-holed address (an
    /// IPv6 route to nowhere) costs its share of the connect timeout once,
    /// not on every new connection. One entry per machine's address.
    good_addr: HashMap<Arc<str>, SocketAddr>,
}

/// Keep-alive connections to the model servers, shared by all requests.
pub struct Pool {
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_host: usize,
    idle: Mutex<Idle>,
}

/// Why an exchange failed.
enum Failure {
    /// A reused connection gave no byte back: the server had closed it.
    Stale,
    /// Said in words, to try the next machine.
    Said(String),
}

/// What the head said, read before the body.
struct Head {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    content_length: Option<u64>,
    framing: Framing,
    keep_alive: bool,
}

impl Pool {
    pub fn new(connect_timeout: Duration) -> Arc<Pool> {
        Pool::with_limits(connect_timeout, net::POOL_IDLE, net::POOL_MAX_IDLE_PER_HOST)
    }

    fn with_limits(
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            connect_timeout,
            idle_timeout,
            max_idle_per_host: max_idle,
            idle: Mutex::new(Idle {
                by_host: HashMap::new(),
                swept: Instant::now(),
                good_addr: HashMap::new(),
            }),
        })
    }

    /// POSTs `payload` (JSON) to `target` and returns once the answer's head
    /// is read; its body is read as the answer's stream is.
    pub async fn post(self: &Arc<Self>, target: &Target, payload: Bytes) -> Result<Answer, String> {
        let mut request =
            BytesMut::with_capacity(target.head.len() + 24 + payload.len().min(COPY_BODY_MAX));
        request.extend_from_slice(&target.head);
        request.extend_from_slice(payload.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        let request = if payload.len() <= COPY_BODY_MAX {
            request.extend_from_slice(&payload);
            (request.freeze(), Bytes::new())
        } else {
            (request.freeze(), payload)
        };
        // A stale idle connection sends the request again on a fresh one.
        let mut fresh_only = false;
        loop {
            let (mut conn, reused) =
                match (!fresh_only).then(|| self.checkout(&target.key)).flatten() {
                    Some(conn) => (conn, true),
                    None => (self.connect(target).await?, false),
                };
            match exchange(&mut conn, &request, reused).await {
                Ok(head) => {
                    let body = Body {
                        conn: Some(conn),
                        framing: head.framing,
                        keep_alive: head.keep_alive,
                        pool: self.clone(),
                        key: target.key.clone(),
                    };
                    return Ok(Answer {
                        status: head.status,
                        content_type: head.content_type,
                        content_length: head.content_length,
                        body: Box::pin(body),
                    });
                }
                Err(Failure::Stale) => {
                    tracing::debug!(host = %target.key, "an idle connection was closed by the server; sending again on a fresh one");
                    self.forget(&target.key);
                    fresh_only = true;
                }
                Err(Failure::Said(why)) => return Err(why),
            }
        }
    }

    /// The idle connections, locked (a panic while they were held leaves
    /// them usable: every change to them is one push, pop or removal).
    fn idle(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection to `key` that is still open.
    fn checkout(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle();
        let list = idle.by_host.get_mut(key)?;
        let mut cx = Context::from_waker(Waker::noop());
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() >= self.idle_timeout {
                continue;
            }
            // Readable while idle: the server closed it (or sent what it
            // should not have). Either way it is not for a new request.
            if conn.tcp.poll_read_ready(&mut cx).is_ready() {
                continue;
            }
            return Some(conn);
        }
        None
    }

    /// Keeps `conn` for the next request to `key`, within the limits.
    fn checkin(&self, key: &Arc<str>, conn: Conn) {
        let now = Instant::now();
        let mut idle = self.idle();
        if now.duration_since(idle.swept) >= self.idle_timeout {
            let timeout = self.idle_timeout;
            idle.by_host.retain(|_, list| {
                list.retain(|(_, since)| now.duration_since(*since) < timeout);
                !list.is_empty()
            });
            idle.swept = now;
        }
        let list = idle.by_host.entry(key.clone()).or_default();
        if list.len() < self.max_idle_per_host {
            list.push((conn, now));
        }
    }

    /// Closes every idle connection to `key` (its server went away).
    fn forget(&self, key: &str) {
        let mut idle = self.idle();
        idle.by_host.remove(key);
    }

    /// How many connections to `key` are idle.
    #[cfg(test)]
    fn idle_count(&self, key: &str) -> usize {
        let idle = self.idle();
        idle.by_host.get(key).map_or(0, Vec::len)
    }

    /// The address of `key` the last connection went to, if it had several.
    #[cfg(test)]
    fn good_addr(&self, key: &str) -> Option<SocketAddr> {
        self.idle().good_addr.get(key).copied()
    }

    /// A new connection to `target`, each of its addresses in turn, within
    /// the connect timeout: the one that worked last time first, then the
    /// others in the resolver's order. Each address gets an equal share of
    /// the time left, as hyper's connector does, so that a black-holed
    /// address (an IPv6 route to nowhere) leaves time for the next.
    async fn connect(&self, target: &Target) -> Result<Conn, String> {
        let timeout = self.connect_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || {
            format!(
                "timed out: no connection to {} within {} ms",
                target.key,
                timeout.as_millis()
            )
        };
        let addrs: Vec<SocketAddr> = match &target.host {
            url::Host::Ipv4(ip) => vec![SocketAddr::from((*ip, target.port))],
            url::Host::Ipv6(ip) => vec![SocketAddr::from((*ip, target.port))],
            url::Host::Domain(name) => {
                let resolved = tokio::time::timeout_at(
                    deadline,
                    tokio::net::lookup_host((name.as_str(), target.port)),
                )
                .await
                .map_err(|_| timed_out())?;
                resolved
                    .map_err(|e| format!("connection failed: cannot resolve {name}: {e}"))?
                    .collect()
            }
        };
        self.connect_to(&target.key, addrs, deadline, timed_out)
            .await
    }

    /// [`Pool::connect`] once `key`'s addresses are known.
    async fn connect_to(
        &self,
        key: &Arc<str>,
        mut addrs: Vec<SocketAddr>,
        deadline: tokio::time::Instant,
        timed_out: impl Fn() -> String,
    ) -> Result<Conn, String> {
        let several = addrs.len() > 1;
        if several {
            let good = self.idle().good_addr.get(key).copied();
            good_first(&mut addrs, good);
        }
        let mut last = None;
        let count = addrs.len();
        let mut connected = None;
        for (i, addr) in addrs.into_iter().enumerate() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let share = left / u32::try_from(count - i).unwrap_or(u32::MAX);
            match tokio::time::timeout(share, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    if several {
                        self.idle().good_addr.insert(key.clone(), addr);
                    }
                    connected = Some(tcp);
                    break;
                }
                Ok(Err(e)) => last = Some(format!("connection failed: {addr}: {e}")),
                Err(_) => last = Some(timed_out()),
            }
        }
        let tcp = connected.ok_or_else(|| {
            last.unwrap_or_else(|| format!("connection failed: {key} has no address"))
        })?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("connection failed: cannot set TCP_NODELAY: {e}"))?;
        Ok(Conn {
            tcp,
            buf: BytesMut::new(),
        })
    }
}

/// Moves `good` to the front of `addrs` when it is one of them; the others
/// keep their order.
fn good_first(addrs: &mut [SocketAddr], good: Option<SocketAddr>) {
    if let Some(at) = good.and_then(|good| addrs.iter().position(|a| *a == good)) {
        addrs[..=at].rotate_right(1);
    }
}

/// An error of a reused connection before any answer byte: the server
/// closed it while it was idle.
fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// Writes `request` (head and body, the body possibly apart) and reads the
/// answer's head, skipping `1xx` heads.
async fn exchange(
    conn: &mut Conn,
    request: &(Bytes, Bytes),
    reused: bool,
) -> Result<Head, Failure> {
    let io_failure = |what: &str, e: io::Error| {
        if reused && is_stale(&e) {
            Failure::Stale
        } else {
            Failure::Said(format!("request failed: {what}: {e}"))
        }
    };
    let written = if request.1.is_empty() {
        conn.tcp.write_all(&request.0).await
    } else {
        let mut both = request.0.clone().chain(request.1.clone());
        conn.tcp.write_all_buf(&mut both).await
    };
    written.map_err(|e| io_failure("cannot send the request", e))?;
    let mut received = false;
    loop {
        if let Some(head) = parse_head(&mut conn.buf)? {
            return Ok(head);
        }
        make_room(&mut conn.buf);
        let n = conn.tcp.read_buf(&mut conn.buf).await.map_err(|e| {
            if received {
                Failure::Said(format!("request failed: reading the answer: {e}"))
            } else {
                io_failure("reading the answer", e)
            }
        })?;
        if n == 0 {
            return Err(if !received && reused {
                Failure::Stale
            } else if !received {
                Failure::Said("request failed: the connection closed without an answer".to_owned())
            } else {
                Failure::Said(format!(
                    "request failed: the connection closed in the middle of the answer's head: {}",
                    net::preview(&conn.buf, 120)
                ))
            });
        }
        received = true;
    }
}

/// Room for the next read in `buf`: at least half of [`READ_ROOM`], else
/// [`READ_ROOM`] more (a fresh buffer when the last one went out as body
/// bytes still in use).
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_ROOM / 2 {
        buf.reserve(READ_ROOM);
    }
}

/// The head at the start of `buf`, taken out of it; `None` while it is
/// not complete. `1xx` heads before it are taken out and skipped.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Failure> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(Failure::Said(format!(
                    "answered a head longer than {} KiB",
                    MAX_HEAD / 1024
                )));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Failure::Said(format!(
                    "answered a head of more than {MAX_HEADERS} header lines"
                )));
            }
            Err(e) => {
                return Err(Failure::Said(format!(
                    "answered something that is not HTTP/1.1 ({e}): {}",
                    net::preview(buf, 120)
                )));
            }
        };
        let code = response.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| {
            Failure::Said(format!(
                "answered the status {code}, which HTTP does not have"
            ))
        })?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Failure::Said(
                "answered 101 Switching Protocols to a POST".to_owned(),
            ));
        }
        if status.is_informational() {
            buf.advance(len);
            continue;
        }
        let mut content_type = None;
        let mut length: Option<u64> = None;
        let mut chunked = None;
        let mut close = response.version == Some(0);
        for h in response.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-type") {
                content_type = HeaderValue::from_bytes(h.value).ok();
            } else if name.eq_ignore_ascii_case("content-length") {
                for part in h.value.split(|b| *b == b',') {
                    let n = parse_length(part.trim_ascii()).ok_or_else(|| {
                        Failure::Said(format!(
                            "answered a Content-Length that is not a number: {}",
                            net::preview(h.value, 60)
                        ))
                    })?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Failure::Said(
                            "answered two different Content-Lengths".to_owned(),
                        ));
                    }
                    length = Some(n);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Only the last coding says how the body ends.
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                        && response.version == Some(0)
                    {
                        close = false;
                    }
                }
            }
        }
        let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Length(0)
        } else {
            match (chunked, length) {
                (Some(true), _) => Framing::Chunked(Chunked::Size),
                // A transfer coding other than chunked: the body ends with
                // the connection, whatever a length says (RFC 9112, 6.3).
                (Some(false), _) => Framing::Close,
                (None, Some(n)) => Framing::Length(n),
                (None, None) => Framing::Close,
            }
        };
        let keep_alive = !close && !matches!(framing, Framing::Close);
        let content_length = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        buf.advance(len);
        return Ok(Some(Head {
            status,
            content_type,
            content_length,
            framing,
            keep_alive,
        }));
    }
}

/// A `Content-Length` value: digits only, as RFC 9110 has it (no sign, no
/// spaces, no list); `None` past `u64`. The proxy's own server reads its
/// requests' lengths with it too.
pub(in crate::proxy) fn parse_length(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// How the answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunked),
    /// At the connection's close.
    Close,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// At the line end after a chunk's data.
    DataEnd,
    /// At the trailer lines after the last chunk.
    Trailers,
    /// Past the end.
    Done,
}

/// One step of reading a body out of what was received.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Data(Bytes),
    /// More bytes are needed.
    More,
    End,
}

impl Framing {
    /// The next piece of body in `buf`, taken out of it.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        match self {
            Framing::Length(0) => Ok(Step::End),
            Framing::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = (*left).min(buf.len() as u64);
                *left -= take;
                Ok(Step::Data(buf.split_to(take as usize).freeze()))
            }
            Framing::Close if buf.is_empty() => Ok(Step::More),
            Framing::Close => Ok(Step::Data(buf.split().freeze())),
            Framing::Chunked(state) => state.step(buf),
        }
    }

    /// What it means that the connection closed now.
    fn at_close(&self) -> Result<(), String> {
        match self {
            Framing::Close | Framing::Length(0) | Framing::Chunked(Chunked::Done) => Ok(()),
            Framing::Length(left) => Err(format!(
                "the connection closed {left} bytes before the end of the answer"
            )),
            Framing::Chunked(_) => {
                Err("the connection closed in the middle of a chunked answer".to_owned())
            }
        }
    }
}

/// The first line in `buf`, without its line end, and the length to take
/// out with it; `None` while it has no line end.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = memchr::memchr(b'\n', buf)?;
    let text = &buf[..end];
    Some((text.strip_suffix(b"\r").unwrap_or(text), end + 1))
}

impl Chunked {
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some((text, used)) = line(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(format!(
                                "answered a chunk-size line over {MAX_CHUNK_LINE} bytes"
                            ));
                        }
                        return Ok(Step::More);
                    };
                    let digits = text
                        .split(|b| *b == b';')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    let size = (!digits.is_empty() && digits.len() <= 16)
                        .then(|| std::str::from_utf8(digits).ok())
                        .flatten()
                        .and_then(|d| u64::from_str_radix(d, 16).ok())
                        .filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
                        .ok_or_else(|| {
                            format!(
                                "answered a chunk size that is not hexadecimal: {}",
                                net::preview(text, 40)
                            )
                        })?;
                    buf.advance(used);
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = left.min(buf.len() as u64);
                    *self = if take == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - take)
                    };
                    return Ok(Step::Data(buf.split_to(take as usize).freeze()));
                }
                Chunked::DataEnd => match buf.first() {
                    None => return Ok(Step::More),
                    Some(b'\n') => {
                        buf.advance(1);
                        *self = Chunked::Size;
                    }
                    Some(b'\r') if buf.len() < 2 => return Ok(Step::More),
                    Some(b'\r') if buf[1] == b'\n' => {
                        buf.advance(2);
                        *self = Chunked::Size;
                    }
                    Some(_) => return Err("answered a chunk longer than its size".to_owned()),
                },
                Chunked::Trailers => {
                    let Some((text, used)) = line(buf) else {
                        if buf.len() > MAX_HEAD {
                            return Err(format!("answered trailers over {} KiB", MAX_HEAD / 1024));
                        }
                        return Ok(Step::More);
                    };
                    let last = text.is_empty();
                    buf.advance(used);
                    if last {
                        *self = Chunked::Done;
                    }
                }
                Chunked::Done => return Ok(Step::End),
            }
        }
    }
}

/// An answer's body, read from its connection as it is polled.
struct Body {
    /// `None` once the body has ended (or failed).
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
    key: Arc<str>,
}

impl Body {
    fn end(&mut self, reusable: bool) {
        if let Some(conn) = self.conn.take()
            && reusable
            && self.keep_alive
            // Bytes past the answer's end: the server does not frame its
            // answers as it says; do not read the next one after them.
            && conn.buf.is_empty()
        {
            self.pool.checkin(&self.key, conn);
        }
    }
}

impl Stream for Body {
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.framing.step(&mut conn.buf) {
                Ok(Step::Data(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                Ok(Step::End) => {
                    this.end(true);
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(e) => {
                    this.end(false);
                    return Poll::Ready(Some(Err(e)));
                }
            }
            make_room(&mut conn.buf);
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.tcp), cx, &mut conn.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    let closed = this.framing.at_close();
                    this.end(false);
                    return Poll::Ready(closed.err().map(Err));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.end(false);
                    return Poll::Ready(Some(Err(e.to_string())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
