//! Clawdbot's gateway, beyond "the port is open" (its HTTP side answers 200
//! to anything): its websocket, the `connect` handshake with the token from
//! Clawdbot's config, then the `health` method.
//!
//! The exchange (JSON text frames): the gateway may open with an event
//! `{"type":"event","event":"connect.challenge","payload":{"nonce",...}}`;
//! the client sends `{"type":"req","id":"1","method":"connect","params":
//! {"minProtocol","maxProtocol","client":{...},"role":"operator","scopes":
//! ["operator.read"],"auth":{"token"}}}` and gets `{"type":"res","id":"1",
//! "ok":true,"payload":{"type":"hello-ok","protocol",...}}` (or `"ok":false`
//! with `{"error":{"code","message"}}`); then `{"type":"req","id":"2",
//! "method":"health"}` answers `{"ok":true,"heartbeatSeconds",...}`.
//!
//! Untrusted: every frame is capped at 1 MiB, the whole exchange has one
//! time limit, and a gateway that accepts the socket and says nothing is
//! reported as such. The token is never logged or stored in the snapshot.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long the gateway has to open with its challenge before we send
/// `connect` anyway (an older gateway does not send one).
const CHALLENGE_WAIT: Duration = Duration::from_millis(700);
/// The largest frame read.
const MAX_FRAME: usize = 1 << 20;

/// What the gateway said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayHealth {
    /// The handshake worked and `health` answered `ok: true`.
    pub ok: bool,
    /// What went wrong, in words.
    pub error: Option<String>,
    /// `refused` (the handshake was refused: a wrong token), `silent` (it
    /// accepted the socket and said nothing), `unhealthy` (health said not
    /// ok), `broken` (not the protocol), or none when ok.
    pub failure: Option<String>,
    /// The protocol it speaks (`hello-ok`).
    pub protocol: Option<u64>,
    /// Its version, when it says.
    pub server_version: Option<String>,
    /// `heartbeatSeconds` from `health`.
    pub heartbeat_seconds: Option<u64>,
    /// The agents `health` lists.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Round trip of the whole exchange.
    pub latency_ms: Option<f64>,
}

fn failed(kind: &str, error: String) -> GatewayHealth {
    GatewayHealth {
        failure: Some(kind.to_owned()),
        error: Some(error),
        ..GatewayHealth::default()
    }
}

/// Asks the gateway on `127.0.0.1:port` for its health, within `limit`.
pub async fn health(port: u16, token: Option<&str>, limit: Duration) -> GatewayHealth {
    let started = Instant::now();
    let mut out = match tokio::time::timeout(limit, exchange(port, token, limit)).await {
        Ok(r) => r,
        Err(_) => failed(
            "silent",
            format!(
                "the gateway accepted the connection but did not finish the handshake and health in {} ms",
                limit.as_millis()
            ),
        ),
    };
    out.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    out
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON frame; pings are answered by the library, others skipped.
async fn next_json(ws: &mut Socket) -> Result<Value, GatewayHealth> {
    loop {
        match ws.next().await {
            None => {
                return Err(failed(
                    "broken",
                    "the gateway closed the connection".to_owned(),
                ));
            }
            Some(Err(e)) => return Err(failed("broken", format!("websocket error: {e}"))),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| {
                    failed(
                        "broken",
                        format!(
                            "the gateway sent a frame that is not JSON ({e}): {}",
                            crate::net::preview(t.as_bytes(), 80)
                        ),
                    )
                });
            }
            Some(Ok(Message::Close(frame))) => {
                let why = frame
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(failed(
                    "refused",
                    format!("the gateway closed the connection {why}")
                        .trim()
                        .to_owned(),
                ));
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Waits for the response to request `id`, skipping events.
async fn response(ws: &mut Socket, id: &str) -> Result<Value, GatewayHealth> {
    loop {
        let frame = next_json(ws).await?;
        if frame["type"] == "res" && frame["id"] == id {
            return Ok(frame);
        }
    }
}

fn refusal(frame: &Value, what: &str) -> GatewayHealth {
    let e = &frame["error"];
    let code = e["code"].as_str().unwrap_or("error");
    let message = e["message"].as_str().unwrap_or("no message");
    let hint = if what == "connect" {
        " (check gateway.auth.token in Clawdbot's config)"
    } else {
        ""
    };
    failed(
        if what == "connect" {
            "refused"
        } else {
            "unhealthy"
        },
        format!(
            "the gateway refused {what}: {}: {}{hint}",
            crate::net::preview(code.as_bytes(), 40),
            crate::net::preview(message.as_bytes(), 200)
        ),
    )
}

async fn exchange(port: u16, token: Option<&str>, limit: Duration) -> GatewayHealth {
    let url = format!("ws://127.0.0.1:{port}/");
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let mut ws =
        match tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false).await
        {
            Ok((ws, _)) => ws,
            Err(e) => {
                return failed(
                    "broken",
                    format!("no websocket on port {port}: {e} (is it Clawdbot's gateway?)"),
                );
            }
        };
    // The challenge, if it sends one.
    let mut nonce = None;
    if let Ok(first) = tokio::time::timeout(CHALLENGE_WAIT.min(limit / 3), next_json(&mut ws)).await
    {
        match first {
            Ok(f) if f["type"] == "event" && f["event"] == "connect.challenge" => {
                nonce = f["payload"]["nonce"].as_str().map(str::to_owned);
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    let mut params = json!({
        "minProtocol": 1,
        "maxProtocol": 4,
        "client": {
            "id": "cli",
            "displayName": "ClawFleet",
            "version": env!("CARGO_PKG_VERSION"),
            "platform": std::env::consts::OS,
            "mode": "cli",
        },
        "role": "operator",
        "scopes": ["operator.read"],
    });
    if let Some(t) = token {
        params["auth"] = json!({ "token": t });
    }
    if let Some(n) = nonce {
        params["nonce"] = Value::String(n);
    }
    let connect = json!({ "type": "req", "id": "1", "method": "connect", "params": params });
    if let Err(e) = ws.send(Message::text(connect.to_string())).await {
        return failed("broken", format!("cannot send connect: {e}"));
    }
    let hello = match response(&mut ws, "1").await {
        Ok(f) => f,
        Err(e) => return e,
    };
    if hello["ok"] != true {
        let _ = ws.close(None).await;
        return refusal(&hello, "connect");
    }
    let payload = &hello["payload"];
    if payload["type"] != "hello-ok" {
        return failed(
            "broken",
            format!(
                "the gateway answered connect without hello-ok: {}",
                crate::net::preview(payload.to_string().as_bytes(), 120)
            ),
        );
    }
    let mut out = GatewayHealth {
        protocol: payload["protocol"].as_u64(),
        server_version: payload["server"]["version"]
            .as_str()
            .map(|v| crate::net::preview(v.as_bytes(), 40)),
        ..GatewayHealth::default()
    };
    let req = json!({ "type": "req", "id": "2", "method": "health", "params": {} });
    if let Err(e) = ws.send(Message::text(req.to_string())).await {
        return failed("broken", format!("cannot send health: {e}"));
    }
    let res = match response(&mut ws, "2").await {
        Ok(f) => f,
        Err(e) => return e,
    };
    let _ = ws.close(None).await;
    if res["ok"] != true {
        return GatewayHealth {
            protocol: out.protocol,
            server_version: out.server_version,
            ..refusal(&res, "health")
        };
    }
    let h = &res["payload"];
    out.heartbeat_seconds = h["heartbeatSeconds"].as_u64();
    out.agents = h["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    x.as_str()
                        .or_else(|| x["id"].as_str())
                        .or_else(|| x["agentId"].as_str())
                })
                .take(256)
                .map(|s| crate::net::preview(s.as_bytes(), 60))
                .collect()
        })
        .unwrap_or_default();
    if h["ok"] == false {
        out.failure = Some("unhealthy".to_owned());
        out.error = Some("the gateway's health says it is not ok".to_owned());
    } else {
        out.ok = true;
    }
    out
}

/// `gateway.auth.token` from Clawdbot's config text (JSON5), if any.
pub fn token_of(config_text: &str) -> Option<String> {
    let v: Value = json5::from_str(config_text).ok()?;
    v["gateway"]["auth"]["token"].as_str().map(str::to_owned)
}
