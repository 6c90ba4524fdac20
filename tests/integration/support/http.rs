//! A raw HTTP/1.1 GET, for tests that must control every header (the
//! Host/Origin guard) or talk to something that is not quite HTTP: the
//! request written by hand, the answer read until the server closes.
//! [`get`] on the test's runtime, [`get_blocking`] from plain threads.

use std::net::SocketAddr;
use std::time::Duration;

/// How long a raw GET waits for its answer.
pub const LIMIT: Duration = Duration::from_secs(10);

/// An answer read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The status line and headers, without the blank line.
    pub head: String,
    /// Everything after the head, as sent (not de-chunked).
    pub body: String,
}

/// `GET path` with exactly `headers`, and `Connection: close`.
pub fn request(path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Splits what a server sent into status, head and body; `None` when it
/// is not an HTTP/1.x answer.
pub fn parse(text: &str) -> Option<Answer> {
    let status = text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    Some(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// `GET path` to `addr` with exactly `headers`; the whole answer. Panics
/// when there is none within [`LIMIT`].
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    get_on(&mut stream, path, headers).await
}

/// [`get`] on a connection the test opened itself (to know its address,
/// or to have it open before something happens).
pub async fn get_on(
    stream: &mut tokio::net::TcpStream,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(request(path, headers).as_bytes())
        .await
        .expect("write the request");
    let mut bytes = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut bytes))
        .await
        .unwrap_or_else(|_| panic!("an answer to GET {path} within {LIMIT:?}"))
        .expect("read the answer");
    let text = String::from_utf8_lossy(&bytes);
    parse(&text).unwrap_or_else(|| panic!("GET {path}: not HTTP: {text:?}"))
}

/// `GET path` to `addr` with `Host: localhost`.
pub async fn get_local(addr: SocketAddr, path: &str) -> Answer {
    get(addr, path, &[("Host", "localhost")]).await
}

/// [`get`] from a plain thread: connecting, writing and reading each within
/// [`LIMIT`]; an error when any fails or the answer is not HTTP.
pub fn get_blocking(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Answer> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, LIMIT)?;
    stream.set_read_timeout(Some(LIMIT))?;
    stream.set_write_timeout(Some(LIMIT))?;
    stream.write_all(request(path, headers).as_bytes())?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    parse(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not HTTP: {text:?}"),
        )
    })
}
