//! The agent gateway's websocket health against stand-ins on real sockets
//! that speak the exchange as OpenClaw 2026.9.6 does (frames captured from
//! the real gateway, `shared/interop/openclaw.md`): a `connect.challenge`
//! event, `connect` validated strictly (an unknown property such as a
//! top-level `nonce` is refused, as protocol 4's closed schema refuses it),
//! `hello-ok`, then `health` and `last-heartbeat`. Also one that refuses a
//! wrong token with OpenClaw's error frame, one that is starting, one that
//! accepts the socket and says nothing, one that sends garbage, and a
//! legacy Clawdbot (protocol 3, no challenge, no `last-heartbeat`). The real
//! gateway itself is in `openclaw_e2e.rs`.

use std::time::Duration;

use crate::support::{Garbage, GarbageServer};
use clawfleet::openclaw::auth::{Auth, Credential};
use clawfleet::openclaw::gateway;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Healthy,
    Silent,
    Garbage,
    Starting,
    Legacy,
    ChannelDown,
}

const TOKEN: &str = "gw-token-0123456789";

fn token(t: &str) -> Auth {
    Auth::Secret(Credential {
        password: false,
        secret: t.to_owned(),
        source: "gateway.auth.token in ~/.openclaw/openclaw.json".to_owned(),
    })
}

/// The properties protocol 4's `ConnectParamsSchema` allows; anything else
/// is refused as the real gateway refuses it.
const CONNECT_PARAMS: &[&str] = &[
    "minProtocol",
    "maxProtocol",
    "client",
    "caps",
    "commands",
    "computerUse",
    "workerRuns",
    "permissions",
    "pathEnv",
    "role",
    "scopes",
    "modelCatalog",
    "device",
    "auth",
    "locale",
    "userAgent",
];

fn refuse(id: &Value, code: &str, message: &str, details: Value) -> Value {
    json!({"type": "res", "id": id, "ok": false, "error": {"code": code, "message": message, "details": details}})
}

/// The answer of a protocol-4 gateway to `connect`, checked as it checks it.
fn connect_answer(req: &Value, mode: Mode) -> Result<Value, (Value, u16, String)> {
    let id = &req["id"];
    let params = req["params"].as_object().cloned().unwrap_or_default();
    if let Some(bad) = params
        .keys()
        .find(|k| !CONNECT_PARAMS.contains(&k.as_str()))
    {
        let message = format!("invalid connect params: at root: unexpected property '{bad}'");
        return Err((
            refuse(id, "INVALID_REQUEST", &message, Value::Null),
            1008,
            message,
        ));
    }
    let max = params
        .get("maxProtocol")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let min = params
        .get("minProtocol")
        .and_then(Value::as_u64)
        .unwrap_or(99);
    let protocol = if mode == Mode::Legacy { 3 } else { 4 };
    if max < protocol || min > protocol {
        let d = json!({"code": "PROTOCOL_MISMATCH", "expectedProtocol": protocol});
        return Err((
            refuse(id, "INVALID_REQUEST", "protocol mismatch", d),
            1002,
            "protocol mismatch".into(),
        ));
    }
    let client = &req["params"]["client"];
    assert_eq!(
        client["id"], "cli",
        "only cli/cli keeps its scopes without a device"
    );
    assert_eq!(client["mode"], "cli");
    match req["params"]["auth"]["token"].as_str() {
        Some(TOKEN) => {}
        Some(_) => {
            let m = "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)";
            return Err((
                refuse(
                    id,
                    "INVALID_REQUEST",
                    m,
                    json!({"code": "AUTH_TOKEN_MISMATCH"}),
                ),
                1008,
                m.into(),
            ));
        }
        None => {
            let m = "device identity required";
            return Err((
                refuse(
                    id,
                    "NOT_PAIRED",
                    m,
                    json!({"code": "DEVICE_IDENTITY_REQUIRED"}),
                ),
                1008,
                m.into(),
            ));
        }
    }
    Ok(json!({"type": "res", "id": id, "ok": true, "payload": {
        "type": "hello-ok", "protocol": protocol,
        "server": {"version": if mode == Mode::Legacy { "2026.1.24" } else { "2026.9.6" }, "connId": "c1"},
        "features": {"methods": ["health", "last-heartbeat"], "events": []},
        "snapshot": {"uptimeMs": 3_723_000, "presence": [], "health": {}, "stateVersion": {"presence": 1, "health": 1}},
        "auth": {"role": "operator", "scopes": ["operator.read"]},
        "policy": {"tickIntervalMs": 30000, "maxPayload": 26214400, "maxBufferedBytes": 52428800}}}))
}

fn health_payload(mode: Mode) -> Value {
    let telegram = if mode == Mode::ChannelDown {
        json!({"enabled": true, "configured": true, "running": true, "connected": false, "lastError": "409 Conflict",
               "healthState": "disconnected"})
    } else {
        json!({"enabled": true, "configured": true, "running": true, "connected": true, "lastError": null})
    };
    json!({"ok": true, "ts": 1, "durationMs": 4,
        "plugins": {"loaded": ["telegram"], "errors": [], "unavailable": []},
        "channels": {"telegram": telegram}, "channelOrder": ["telegram"], "channelLabels": {"telegram": "Telegram"},
        "heartbeatSeconds": 1800, "defaultAgentId": "main",
        "agents": [{"agentId": "main", "isDefault": true, "heartbeat": {"enabled": true, "every": "30m", "everyMs": 1800000},
                    "sessions": {"path": "/x", "count": 4, "recent": []}},
                   {"agentId": "trading", "isDefault": false, "heartbeat": {"enabled": false, "everyMs": null},
                    "sessions": {"count": 1}}],
        "modelRuntime": {"degraded": false, "pendingAgents": []},
        "eventLoop": {"degraded": false, "reasons": []}})
}

/// A gateway stand-in; returns its port. Records the requests it got.
async fn stand_in(mode: Mode, seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                match mode {
                    Mode::Silent => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    Mode::Garbage => {
                        let _ = ws.send(Message::text("<html>Control UI</html>")).await;
                        return;
                    }
                    Mode::Legacy => {}
                    _ => {
                        let challenge = json!({"type": "event", "event": "connect.challenge",
                            "payload": {"nonce": "af021c0b", "ts": 1, "capabilities": ["model-catalog-snapshot"]}});
                        let _ = ws.send(Message::text(challenge.to_string())).await;
                    }
                }
                let mut connected = false;
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let req: Value = serde_json::from_str(text.as_str()).unwrap();
                    seen.lock().unwrap().push(req.clone());
                    let id = req["id"].clone();
                    let answer = match req["method"].as_str() {
                        Some("connect") if mode == Mode::Starting => {
                            let _ = ws
                                .send(Message::text(
                                    refuse(
                                        &id,
                                        "UNAVAILABLE",
                                        "gateway starting; retry shortly",
                                        json!({"reason": "startup-sidecars"}),
                                    )
                                    .to_string(),
                                ))
                                .await;
                            let _ = ws
                                .send(Message::Close(Some(CloseFrame {
                                    code: 1013.into(),
                                    reason: "gateway starting".into(),
                                })))
                                .await;
                            return;
                        }
                        Some("connect") => match connect_answer(&req, mode) {
                            Ok(a) => {
                                connected = true;
                                a
                            }
                            Err((a, code, reason)) => {
                                let _ = ws.send(Message::text(a.to_string())).await;
                                let _ = ws
                                    .send(Message::Close(Some(CloseFrame {
                                        code: code.into(),
                                        reason: reason.into(),
                                    })))
                                    .await;
                                return;
                            }
                        },
                        _ if !connected => {
                            let _ = ws
                                .send(Message::Close(Some(CloseFrame {
                                    code: 1008.into(),
                                    reason: "invalid handshake: first request must be connect"
                                        .into(),
                                })))
                                .await;
                            return;
                        }
                        Some("health") => {
                            // An event in between, as a live gateway sends them.
                            let tick = json!({"type": "event", "event": "tick", "payload": {"ts": 2}, "seq": 1});
                            let _ = ws.send(Message::text(tick.to_string())).await;
                            json!({"type": "res", "id": id, "ok": true, "payload": health_payload(mode)})
                        }
                        Some("last-heartbeat") if mode != Mode::Legacy => {
                            json!({"type": "res", "id": id, "ok": true,
                            "payload": {"ts": 1796687074043u64, "status": "skipped", "reason": "no-route", "silent": true}})
                        }
                        _ => refuse(&id, "INVALID_REQUEST", "unknown method", Value::Null),
                    };
                    if ws.send(Message::text(answer.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn log() -> std::sync::Arc<std::sync::Mutex<Vec<Value>>> {
    std::sync::Arc::default()
}

const LIMIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_healthy_gateway_answers_connect_then_health() {
    let seen = log();
    let port = stand_in(Mode::Healthy, seen.clone()).await;
    let (h, agents) = gateway::health(port, &token(TOKEN), LIMIT).await;
    assert!(h.ok, "{h:?}");
    assert_eq!(h.failure, None);
    assert_eq!(h.protocol, Some(4));
    assert_eq!(h.server_version.as_deref(), Some("2026.9.6"));
    assert_eq!(h.uptime_secs, Some(3723));
    assert_eq!(h.heartbeat_seconds, Some(1800));
    assert_eq!(h.agents, ["main", "trading"]);
    assert_eq!(h.channels.len(), 1);
    assert_eq!(
        (h.channels[0].label.as_str(), h.channels[0].state.as_str()),
        ("Telegram", "ok")
    );
    assert_eq!(h.channels[0].connected, Some(true));
    let last = h.last_heartbeat.expect("last-heartbeat answered");
    assert_eq!(last.status.as_deref(), Some("skipped"));
    assert_eq!(last.reason.as_deref(), Some("no-route"));
    assert_eq!(agents[0].sessions, Some(4));
    assert_eq!(agents[1].heartbeat_enabled, Some(false));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0]["method"], "connect");
    assert!(
        seen[0]["params"].get("nonce").is_none(),
        "protocol 4 refuses a top-level nonce"
    );
    assert_eq!(seen[0]["params"]["role"], "operator");
    assert_eq!(seen[0]["params"]["scopes"], json!(["operator.read"]));
    assert_eq!(seen[1]["method"], "health");
    assert_eq!(seen[2]["method"], "last-heartbeat");
}

#[tokio::test]
async fn a_legacy_clawdbot_speaks_protocol_3_without_a_challenge() {
    let port = stand_in(Mode::Legacy, log()).await;
    let (h, _) = gateway::health(port, &token(TOKEN), LIMIT).await;
    assert!(h.ok, "{h:?}");
    assert_eq!(h.protocol, Some(3));
    assert_eq!(h.server_version.as_deref(), Some("2026.1.24"));
    assert_eq!(h.last_heartbeat, None, "it has no last-heartbeat method");
}

#[tokio::test]
async fn a_refusal_shows_openclaws_words_and_the_right_hint() {
    let port = stand_in(Mode::Healthy, log()).await;
    let (h, _) = gateway::health(port, &token("wrong-token"), LIMIT).await;
    assert!(!h.ok);
    assert_eq!(h.failure.as_deref(), Some("refused"));
    let e = h.error.unwrap();
    assert!(e.contains("unauthorized: gateway token mismatch"), "{e}");
    assert!(!e.contains("wrong-token"), "the token is never repeated");
    let hint = h.hint.unwrap();
    assert!(
        hint.contains("came from gateway.auth.token in ~/.openclaw/openclaw.json"),
        "{hint}"
    );
    // No secret at all: the gateway asks for a device; we say there is none.
    let (h, _) = gateway::health(
        port,
        &Auth::Missing("no gateway token anywhere".into()),
        LIMIT,
    )
    .await;
    assert_eq!(h.failure.as_deref(), Some("no_credential"));
    assert!(h.hint.unwrap().contains("no gateway token anywhere"));
}

#[tokio::test]
async fn a_gateway_that_is_starting_is_not_a_failure_to_heal() {
    let port = stand_in(Mode::Starting, log()).await;
    let (h, _) = gateway::health(port, &token(TOKEN), LIMIT).await;
    assert_eq!(h.failure.as_deref(), Some("starting"), "{h:?}");
    assert!(h.error.unwrap().contains("gateway starting; retry shortly"));
}

#[tokio::test]
async fn a_disconnected_channel_makes_the_gateway_unwell() {
    let port = stand_in(Mode::ChannelDown, log()).await;
    let (h, _) = gateway::health(port, &token(TOKEN), LIMIT).await;
    assert!(!h.ok);
    assert_eq!(h.failure.as_deref(), Some("unhealthy"));
    assert_eq!(
        h.error.as_deref(),
        Some("Telegram: disconnected (409 Conflict)")
    );
    assert_eq!(h.channels[0].state, "disconnected");
}

#[tokio::test]
async fn a_gateway_that_accepts_and_says_nothing_is_reported_in_time() {
    let port = stand_in(Mode::Silent, log()).await;
    let limit = Duration::from_millis(1500);
    let (h, _) = tokio::time::timeout(
        Duration::from_secs(15),
        gateway::health(port, &token(TOKEN), limit),
    )
    .await
    .expect("the check ends by itself");
    assert!(!h.ok);
    assert_eq!(h.failure.as_deref(), Some("silent"));
    assert!(h.error.unwrap().contains("did not finish the handshake"));
}

#[tokio::test]
async fn garbage_and_no_websocket_are_told_apart() {
    let port = stand_in(Mode::Garbage, log()).await;
    let (h, _) = gateway::health(port, &token(TOKEN), LIMIT).await;
    assert_eq!(h.failure.as_deref(), Some("broken"));
    assert!(h.error.unwrap().contains("not JSON"));

    // An HTTP server that is not a websocket (what the gateway's HTTP side
    // would be without the upgrade).
    let html = GarbageServer::start(Garbage::Html).await;
    let port = html.port();
    let (h, _) = gateway::health(port, &token(TOKEN), LIMIT).await;
    assert_eq!(h.failure.as_deref(), Some("broken"));
    assert!(h.error.unwrap().contains("no websocket"));
}
