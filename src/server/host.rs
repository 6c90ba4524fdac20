//! The Host and Origin check: a defence against DNS rebinding and against
//! other web pages reading or driving the API from the user's browser.
//!
//! A browser sends the name it used in `Host`. A rebinding attack makes
//! `evil.example` resolve to 127.0.0.1, so the request arrives here with
//! `Host: evil.example`: refusing every name that is not ours defeats it.
//! A cross-site `fetch` carries the page's `Origin`: refusing foreign origins
//! keeps other sites from using the API even where CORS would not stop them
//! (simple requests and SSE are sent regardless of CORS).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::fleet::Fleet;

/// The names this API answers to, and the web origins it accepts.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: HashSet<String>,
    /// When set, only these exact origins (`http://host:port`) may call;
    /// when unset, any origin on one of our own names may.
    origins: Option<HashSet<String>>,
}

impl AllowedHosts {
    /// Loopback names, this machine's host names (full, short and `.local`),
    /// its tailnet address, the addresses actually bound, and
    /// `[api] allowed_hosts`.
    pub fn new(config: &Config, fleet: &Fleet, bound: &[SocketAddr]) -> Self {
        let mut names = HashSet::new();
        for n in ["localhost", "127.0.0.1", "::1"] {
            names.insert(n.to_owned());
        }
        let mut add_host = |h: &str| {
            let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
            if h.is_empty() {
                return;
            }
            if let Some(short) = h.split('.').next()
                && h.parse::<IpAddr>().is_err()
            {
                names.insert(short.to_owned());
                names.insert(format!("{short}.local"));
            }
            names.insert(h);
        };
        add_host(&fleet.os_hostname);
        if let Some(h) = &fleet.this.hostname {
            add_host(h);
        }
        if let Some(ip) = &fleet.this.tailnet_ip {
            add_host(ip);
        }
        for h in &config.api.allowed_hosts {
            add_host(h);
        }
        for addr in bound {
            if !addr.ip().is_unspecified() {
                add_host(&addr.ip().to_string());
            }
        }
        Self {
            names,
            origins: None,
        }
    }

    /// Accepts only the listed origins (`scheme://host[:port]`), none when the
    /// list is empty: for the inference proxy, which no web page may use
    /// unless the user says so.
    pub fn only_origins(mut self, origins: &[String]) -> Self {
        self.origins = Some(
            origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// Whether a `Host` header value (with or without port) is ours.
    pub fn allows_host_header(&self, value: &str) -> bool {
        let host = strip_port(value.trim()).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        if self.names.contains(host) {
            return true;
        }
        // RFC 6761: *.localhost always resolves to loopback.
        host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether an `Origin` header value names one of our hosts.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if let Some(list) = &self.origins {
            return list.contains(&origin.trim().trim_end_matches('/').to_ascii_lowercase());
        }
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        if !matches!(scheme, "http" | "https" | "tauri") {
            return false;
        }
        self.allows_host_header(rest.trim_end_matches('/'))
    }
}

/// `host:port` → `host`; `[v6]:port` → `v6`; a bare v6 address is kept.
fn strip_port(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => value,
    }
}

/// Middleware: refuses a request whose Host is not ours (403), that has no
/// Host (400), or whose Origin is foreign (403).
pub async fn guard(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(refusal) = check(&allowed, request.headers(), request.uri()) {
        return refuse(refusal);
    }
    next.run(request).await
}

/// The answer to a request [`check`] refused, logged.
fn refuse(refusal: (StatusCode, String)) -> Response {
    tracing::warn!(reason = %refusal.1, "request refused");
    refusal.into_response()
}

/// Whether a request's Host and Origin are allowed; the refusal otherwise.
///
/// Exactly one `Host`: two are refused (400), since a cache or proxy in
/// front may read the other one. An absolute-form request line
/// (`POST http://host/api/chat`) names a host too: it must be ours as well,
/// whatever `Host` says. With neither, 400.
fn check(
    allowed: &AllowedHosts,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<(), (StatusCode, String)> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err((
            StatusCode::BAD_REQUEST,
            "more than one Host header: send exactly one\n".to_owned(),
        ));
    }
    let host = host.map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let authority = uri.authority().map(|a| a.as_str());
    if host.is_none() && authority.is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            "missing Host header: send the address you connected to\n".to_owned(),
        ));
    }
    for name in [host, authority].into_iter().flatten() {
        // An authority may carry user information (`user@host`): the host
        // is what follows it.
        let name = name.rsplit_once('@').map_or(name, |(_, h)| h);
        if !allowed.allows_host_header(name) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "Host {name:?} is not a name of this machine; if you reach ClawFleet by that \
                     name, add it to [api] allowed_hosts in the config\n"
                ),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("\u{fffd}");
        if !allowed.allows_origin(origin) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("requests from web pages at {origin:?} are not allowed\n"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedHosts {
        let mut config = crate::config::embedded();
        config.api.allowed_hosts = vec!["fleet.example.ts.net".into()];
        let fleet = Fleet::resolve(&config, "felipes-mac-mini.local");
        AllowedHosts::new(&config, &fleet, &["100.115.10.14:11436".parse().unwrap()])
    }

    #[test]
    fn host_header_table() {
        let a = allowed();
        let cases = [
            ("localhost", true),
            ("localhost:11436", true),
            ("LOCALHOST.", true),
            ("127.0.0.1:11436", true),
            ("127.8.9.1", true),
            ("[::1]:11436", true),
            ("app.localhost:3000", true),
            ("felipes-mac-mini.local:11436", true),
            ("felipes-mac-mini", true),
            ("100.115.10.14:11436", true),
            ("fleet.example.ts.net", true),
            ("evil.example", false),
            ("evil.example:11436", false),
            ("localhost.evil.example", false),
            ("100.115.10.15", false),
            ("felipes-macbook-pro-2.local", false),
            ("", false),
        ];
        for (host, want) in cases {
            assert_eq!(a.allows_host_header(host), want, "{host:?}");
        }
    }

    #[test]
    fn origin_table() {
        let a = allowed();
        let cases = [
            ("http://localhost:11436", true),
            ("http://127.0.0.1:11436", true),
            ("tauri://localhost", true),
            ("https://evil.example", false),
            ("null", false),
            ("file://", false),
        ];
        for (origin, want) in cases {
            assert_eq!(a.allows_origin(origin), want, "{origin:?}");
        }
    }

    fn checked(host: &[&str], uri: &str) -> Result<(), StatusCode> {
        let mut headers = HeaderMap::new();
        for h in host {
            headers.append(header::HOST, h.parse().unwrap());
        }
        check(&allowed(), &headers, &uri.parse().unwrap()).map_err(|(status, _)| status)
    }

    #[test]
    fn exactly_one_host_and_the_request_lines_own_are_checked() {
        assert_eq!(checked(&["localhost"], "/api/chat"), Ok(()));
        assert_eq!(
            checked(&["localhost", "localhost"], "/api/chat"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            checked(&["localhost", "evil.example"], "/api/chat"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(checked(&[], "/api/chat"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(checked(&[], "http://localhost:11435/api/chat"), Ok(()));
        assert_eq!(
            checked(&["localhost"], "http://localhost:11435/api/chat"),
            Ok(())
        );
        assert_eq!(
            checked(&["localhost"], "http://evil.example/api/chat"),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            checked(&["localhost"], "http://localhost@evil.example/api/chat"),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            checked(&["evil.example"], "http://localhost/api/chat"),
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn the_proxy_accepts_only_listed_origins() {
        let none = allowed().only_origins(&[]);
        assert!(
            !none.allows_origin("http://localhost:11436"),
            "not even our own dashboard"
        );
        let some = allowed().only_origins(&["http://localhost:3000/".into()]);
        assert!(some.allows_origin("http://LOCALHOST:3000"));
        assert!(!some.allows_origin("http://localhost:3001"));
        assert!(
            some.allows_host_header("localhost:11435"),
            "hosts are unchanged"
        );
    }
}
