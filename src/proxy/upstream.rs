//! How the proxy reaches a machine's Ollama, and the one answer type the
//! relay reads whichever client carried it.
//!
//! Plain-HTTP addresses reached directly (this machine's Ollama; peers when
//! no `[proxy] socks5` is set) go through the proxy's own HTTP/1.1 client,
//! [`super::h1`], on the request's own task: no redirect, retry or timeout
//! layers, no connection task to hand the request to (the proxy keeps its
//! own first-byte limit). HTTPS addresses and everything through SOCKS5
//! keep reqwest, which has the TLS and SOCKS5 connectors.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::h1;
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
    /// A reqwest response (HTTPS, SOCKS5, Anthropic, model management).
    pub fn from_reqwest(response: reqwest::Response) -> Self {
        Self {
            status: response.status(),
            content_type: response.headers().get(header::CONTENT_TYPE).cloned(),
            content_length: response.content_length(),
            body: Box::pin(
                response
                    .bytes_stream()
                    .map(|chunk| chunk.map_err(|e| net::describe(&e))),
            ),
        }
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

/// Where one upstream URL is sent from, decided once per URL.
#[derive(Clone)]
enum Target {
    /// Plain HTTP, reached directly: [`h1`]. Shared, so that taking it from
    /// the cache for each request copies no host name.
    Plain(Arc<h1::Target>),
    /// HTTPS, or a peer through SOCKS5: reqwest.
    Other(reqwest::Url, Via),
}

#[derive(Clone, Copy)]
enum Via {
    Direct,
    Peers,
}

/// The proxy's upstream clients, and the URLs already parsed.
pub(super) struct Upstreams {
    plain: Arc<h1::Pool>,
    direct: reqwest::Client,
    peers: reqwest::Client,
    socks5: bool,
    /// Parsed targets by base URL and path: parsing (with IDNA host
    /// processing) showed up at about 2% of the proxy's CPU under load.
    /// Bounded: base URLs come from the config, paths from a fixed set.
    targets: Mutex<HashMap<String, HashMap<&'static str, Target>>>,
}

impl Upstreams {
    /// Clients with `connect` as their connect timeout; peers through
    /// `socks5` when it is set.
    pub fn new(connect: Duration, socks5: Option<&str>) -> Result<Self, crate::Error> {
        let direct = net::upstream_client(connect, None)?;
        let peers = match socks5 {
            Some(addr) => net::upstream_client(connect, Some(addr))?,
            None => direct.clone(),
        };
        Ok(Self {
            plain: h1::Pool::new(connect),
            direct,
            peers,
            socks5: socks5.is_some(),
            targets: Mutex::new(HashMap::new()),
        })
    }

    /// The reqwest client for addresses outside the fleet (Anthropic) and
    /// this machine's model management.
    pub fn direct(&self) -> &reqwest::Client {
        &self.direct
    }

    /// `base` + `path`, parsed once, with the client that reaches it.
    fn target(&self, base: &str, path: &'static str, is_self: bool) -> Result<Target, String> {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = targets.get(base).and_then(|m| m.get(path)) {
            return Ok(t.clone());
        }
        let text = format!("{base}{path}");
        let url = reqwest::Url::parse(&text)
            .map_err(|e| format!("cannot make a URL of {base:?}: {e}"))?;
        let via = if is_self || !self.socks5 {
            Via::Direct
        } else {
            Via::Peers
        };
        let target = match (url.scheme(), via) {
            // The normalised form (IDNA, percent-encoding) reqwest would send.
            ("http", Via::Direct) => Target::Plain(Arc::new(
                h1::Target::new(&url).map_err(|e| format!("cannot make a URL of {base:?}: {e}"))?,
            )),
            _ => Target::Other(url, via),
        };
        targets
            .entry(base.to_owned())
            .or_default()
            .insert(path, target.clone());
        Ok(target)
    }

    /// POSTs a JSON `payload` to `base` + `path` and waits for the answer's
    /// head. `is_self`: `base` is this machine's (never through SOCKS5).
    pub async fn post_json(
        &self,
        base: &str,
        path: &'static str,
        is_self: bool,
        payload: Bytes,
    ) -> Result<Answer, String> {
        match self.target(base, path, is_self)? {
            Target::Plain(target) => self.plain.post(&target, payload).await,
            Target::Other(url, via) => {
                let client = match via {
                    Via::Direct => &self.direct,
                    Via::Peers => &self.peers,
                };
                client
                    .post(url)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(payload)
                    .send()
                    .await
                    .map(Answer::from_reqwest)
                    .map_err(|e| net::describe(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn upstreams() -> Upstreams {
        Upstreams::new(Duration::from_secs(2), None).expect("clients")
    }

    /// A listener on a free loopback port, and its base URL.
    async fn listen() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        (listener, base)
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

    /// A plain-HTTP answer through [`h1`]: the request as sent on the wire,
    /// the head, and a chunked body read back chunk by chunk.
    #[tokio::test]
    async fn a_plain_http_answer_keeps_its_head_and_body() {
        let (listener, base) = listen().await;
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(b"{\"model\":\"m\"}") {
                let n = tcp.read(&mut buf).await.expect("read");
                assert!(n > 0, "the request ended early: {seen:?}");
                seen.extend_from_slice(&buf[..n]);
            }
            tcp.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n\
                  6\r\n{\"a\":1\r\n2\r\n}\n\r\n0\r\n\r\n",
            )
            .await
            .expect("write");
            String::from_utf8(seen).expect("ASCII request")
        });
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
        let request = server.await.expect("server").to_ascii_lowercase();
        assert!(
            request.starts_with("post /api/chat http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/json\r\n"),
            "{request}"
        );
        assert!(request.contains("content-length: 13\r\n"), "{request}");
        assert!(
            request.contains(&format!("user-agent: {}\r\n", net::USER_AGENT)),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_from_its_length() {
        let (listener, base) = listen().await;
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 100000\r\n\r\n")
                .await;
        });
        let answer = upstreams()
            .post_json(&base, "/api/chat", true, Bytes::from_static(b"{}"))
            .await
            .expect("answer");
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.content_length, Some(100_000));
        let err = answer.read_limited(1024).await.expect_err("too long");
        assert_eq!(err, "longer than 1024 bytes");
    }

    #[test]
    fn https_and_socks5_peers_keep_reqwest() {
        let direct = upstreams();
        assert!(matches!(
            direct.target("http://127.0.0.1:11434", "/api/chat", true),
            Ok(Target::Plain(_))
        ));
        assert!(matches!(
            direct.target("https://ollama.example", "/api/chat", false),
            Ok(Target::Other(_, Via::Direct))
        ));
        let socks =
            Upstreams::new(Duration::from_secs(2), Some("127.0.0.1:1055")).expect("clients");
        assert!(matches!(
            socks.target("http://macmini:11434", "/api/chat", false),
            Ok(Target::Other(_, Via::Peers))
        ));
        assert!(matches!(
            socks.target("http://127.0.0.1:11434", "/api/chat", true),
            Ok(Target::Plain(_))
        ));
        assert!(socks.target("not a url", "/api/chat", true).is_err());
    }
}
