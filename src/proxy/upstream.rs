//! How the proxy reaches a machine's Ollama, and the one answer type the
//! relay reads.
//!
//! Every upstream request goes through reqwest (hyper-util's pooled client
//! underneath): one client for this machine, Anthropic and peers reached
//! directly, one through `[proxy] socks5` for peers behind it. reqwest
//! rather than hyper-util's legacy client on its own, because the proxy
//! needs reqwest anyway for HTTPS and SOCKS5: one client type, one error
//! vocabulary ([`net::describe`]), one pool configuration
//! ([`net::upstream_client`]). Neither resends a request once it was
//! written (hyper-util retries only a request that never left, reqwest's
//! default policy only HTTP/2 refusals, which we do not speak), so an
//! inference `POST` reaches a machine at most once per attempt.

use std::pin::Pin;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::net;

/// An answer's body, chunk by chunk; an error is why it broke off, in words.
pub(super) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// An upstream answer: its head, and its body still to be read.
pub(super) struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub content_length: Option<u64>,
    pub body: BodyStream,
}

impl Answer {
    /// A reqwest response, whose body must bring a byte at least every
    /// `idle`, or it ends with an error saying so. A head with both
    /// `Transfer-Encoding` and `Content-Length` is refused: its framing is
    /// ambiguous (RFC 9112, 6.3: "ought to be handled as an error"), and
    /// dropping the response unread closes its connection rather than
    /// handing it back to the pool.
    pub fn from_reqwest(response: reqwest::Response, idle: Duration) -> Result<Self, String> {
        let headers = response.headers();
        if headers.contains_key(header::TRANSFER_ENCODING)
            && headers.contains_key(header::CONTENT_LENGTH)
        {
            return Err(
                "answered with both Transfer-Encoding and Content-Length (ambiguous framing)"
                    .to_owned(),
            );
        }
        let status = response.status();
        let content_type = headers.get(header::CONTENT_TYPE).cloned();
        let content_length = response.content_length();
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| net::describe(&e)));
        Ok(Self {
            status,
            content_type,
            content_length,
            body: Box::pin(idle_limited(body, idle)),
        })
    }

    /// The body, whole, if it is at most `limit` bytes.
    pub async fn read_limited(mut self, limit: usize) -> Result<Vec<u8>, String> {
        if self.content_length.is_some_and(|n| n > limit as u64) {
            return Err(format!("longer than {limit} bytes"));
        }
        let mut out = Vec::new();
        while let Some(chunk) = self.body.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(format!("longer than {limit} bytes"));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// `body`, ended with an error when no chunk comes for `idle`: a machine
/// that stalls mid-answer is not waited on for ever.
fn idle_limited(
    body: impl Stream<Item = Result<Bytes, String>> + Send + 'static,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
    futures_util::stream::unfold(Some(Box::pin(body)), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(item)) => Some((item, Some(body))),
            Ok(None) => None,
            Err(_) => Some((
                Err(format!(
                    "no data from the machine for {} s ([proxy] stream_idle_timeout_secs)",
                    idle.as_secs()
                )),
                None,
            )),
        }
    })
}

/// The proxy's upstream clients.
pub(super) struct Upstreams {
    direct: reqwest::Client,
    peers: reqwest::Client,
    socks5: bool,
    /// How long an answer's body may go without a byte.
    idle: Duration,
}

impl Upstreams {
    /// Clients with `connect` as their connect timeout; peers through
    /// `socks5` when it is set; answers cut after `idle` without a byte.
    pub fn new(
        connect: Duration,
        socks5: Option<&str>,
        idle: Duration,
    ) -> Result<Self, crate::Error> {
        let direct = net::upstream_client(connect, None)?;
        let peers = match socks5 {
            Some(addr) => net::upstream_client(connect, Some(addr))?,
            None => direct.clone(),
        };
        Ok(Self {
            direct,
            peers,
            socks5: socks5.is_some(),
            idle,
        })
    }

    /// The client for addresses outside the fleet (Anthropic) and this
    /// machine's model management.
    pub fn direct(&self) -> &reqwest::Client {
        &self.direct
    }

    /// How long an answer's body may go without a byte.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// POSTs a JSON `payload` to `base` + `path` and waits for the answer's
    /// head. `is_self`: `base` is this machine's (never through SOCKS5).
    pub async fn post_json(
        &self,
        base: &str,
        path: &str,
        is_self: bool,
        payload: Bytes,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let client = if is_self || !self.socks5 {
            &self.direct
        } else {
            &self.peers
        };
        let response = client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(payload)
            .send()
            .await
            .map_err(|e| net::describe(&e))?;
        Answer::from_reqwest(response, self.idle)
    }

    /// Whether the Ollama at `base` answers at all within `limit`: a GET of
    /// `/api/version`, on a connection of its own, and any HTTP answer
    /// counts (a server that is not Ollama may say 404, and is alive).
    /// `Err` says what happened instead.
    pub async fn answers(&self, base: &str, is_self: bool, limit: Duration) -> Result<(), String> {
        let url = format!("{}/api/version", base.trim_end_matches('/'));
        let client = if is_self || !self.socks5 {
            &self.direct
        } else {
            &self.peers
        };
        match tokio::time::timeout(limit, client.get(url).send()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(net::describe(&e)),
            Err(_) => Err(format!("nothing within {} ms", limit.as_millis())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn upstreams() -> Upstreams {
        Upstreams::new(Duration::from_secs(2), None, Duration::from_secs(2)).expect("clients")
    }

    /// A listener on a free loopback port, and its base URL.
    async fn listen() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        (listener, base)
    }

    /// Accepts one connection, reads the request up to `until`, writes
    /// `answer`, then holds the connection for a while.
    fn answer_once(
        listener: tokio::net::TcpListener,
        until: &'static [u8],
        answer: &'static [u8],
    ) -> tokio::task::JoinHandle<String> {
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(until) {
                let n = tcp.read(&mut buf).await.expect("read");
                assert!(n > 0, "the request ended early: {seen:?}");
                seen.extend_from_slice(&buf[..n]);
            }
            tcp.write_all(answer).await.expect("write");
            tokio::time::sleep(Duration::from_secs(5)).await;
            String::from_utf8(seen).expect("ASCII request")
        })
    }

    #[tokio::test]
    async fn a_refused_connection_is_said_in_words() {
        let (listener, base) = listen().await;
        drop(listener);
        let Err(why) = upstreams()
            .post_json(&base, "/api/chat", true, Bytes::from_static(b"{}"))
            .await
        else {
            panic!("a closed port answered");
        };
        assert!(why.starts_with("connection failed: "), "{why}");
        assert!(why.contains("refused"), "{why}");
    }

    /// The request as sent on the wire, the head, and a chunked body read
    /// back.
    #[tokio::test]
    async fn an_answer_keeps_its_head_and_body() {
        let (listener, base) = listen().await;
        let server = answer_once(
            listener,
            b"{\"model\":\"m\"}",
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n\
              6\r\n{\"a\":1\r\n2\r\n}\n\r\n0\r\n\r\n",
        );
        let answer = upstreams()
            .post_json(
                &base,
                "/api/chat",
                true,
                Bytes::from_static(b"{\"model\":\"m\"}"),
            )
            .await
            .expect("answer");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/x-ndjson")
        );
        assert_eq!(answer.content_length, None);
        let body = answer.read_limited(1024).await.expect("body");
        assert_eq!(body, b"{\"a\":1}\n");
        server.abort();
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_from_its_length() {
        let (listener, base) = listen().await;
        let server = answer_once(
            listener,
            b"{}",
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 100000\r\n\r\n",
        );
        let answer = upstreams()
            .post_json(&base, "/api/chat", true, Bytes::from_static(b"{}"))
            .await
            .expect("answer");
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.content_length, Some(100_000));
        let err = answer.read_limited(1024).await.expect_err("too long");
        assert_eq!(err, "longer than 1024 bytes");
        server.abort();
    }

    #[tokio::test]
    async fn an_answer_framed_two_ways_is_refused() {
        let (listener, base) = listen().await;
        let server = answer_once(
            listener,
            b"{}",
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        );
        let Err(why) = upstreams()
            .post_json(&base, "/api/chat", true, Bytes::from_static(b"{}"))
            .await
        else {
            panic!("an ambiguous answer was taken");
        };
        assert!(
            why.contains("Transfer-Encoding and Content-Length"),
            "{why}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_body_that_stalls_ends_with_an_error() {
        let (listener, base) = listen().await;
        let server = answer_once(
            listener,
            b"{}",
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{}\n\r\n",
        );
        let upstreams = Upstreams::new(Duration::from_secs(2), None, Duration::from_millis(200))
            .expect("clients");
        let mut answer = upstreams
            .post_json(&base, "/api/chat", true, Bytes::from_static(b"{}"))
            .await
            .expect("answer");
        let first = answer.body.next().await.expect("a chunk").expect("data");
        assert_eq!(&first[..], b"{}\n");
        let stalled = tokio::time::timeout(Duration::from_secs(10), answer.body.next())
            .await
            .expect("ended within 10 s")
            .expect("an item")
            .expect_err("an error");
        assert!(stalled.contains("stream_idle_timeout_secs"), "{stalled}");
        assert!(answer.body.next().await.is_none(), "ended after the error");
        server.abort();
    }
}
