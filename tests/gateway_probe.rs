//! The Clawdbot gateway's websocket health, against stand-ins on real
//! sockets that speak the exchange (a `connect.challenge` event, the
//! `connect` request answered with `hello-ok`, the `health` method), one
//! that refuses a wrong token, one that accepts the socket and says nothing,
//! one whose health is not ok, and one that sends garbage.

use std::time::Duration;

use clawfleet::openclaw::gateway;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Healthy,
    Silent,
    Unhealthy,
    Garbage,
    NoChallenge,
}

const TOKEN: &str = "gw-token-0123456789";

/// A gateway stand-in; returns its port. Records the connect params it got.
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
                if mode == Mode::Silent {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                if mode == Mode::Garbage {
                    let _ = ws.send(Message::text("<html>Control UI</html>")).await;
                    return;
                }
                if mode != Mode::NoChallenge {
                    let challenge = json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n-1", "ts": 1}});
                    let _ = ws.send(Message::text(challenge.to_string())).await;
                }
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let req: Value = serde_json::from_str(text.as_str()).unwrap();
                    seen.lock().unwrap().push(req.clone());
                    let id = req["id"].clone();
                    let answer = match req["method"].as_str() {
                        Some("connect") if req["params"]["auth"]["token"] == TOKEN => json!({
                            "type": "res", "id": id, "ok": true,
                            "payload": {"type": "hello-ok", "protocol": 3, "server": {"version": "2026.1.24", "connId": "c1"},
                                        "features": {"methods": ["health"], "events": []}, "policy": {"tickIntervalMs": 15000}},
                        }),
                        Some("connect") => json!({
                            "type": "res", "id": id, "ok": false,
                            "error": {"code": "UNAUTHORIZED", "message": "gateway token mismatch"},
                        }),
                        Some("health") => {
                            // An event in between, as a live gateway sends them.
                            let tick =
                                json!({"type": "event", "event": "tick", "payload": {"ts": 2}});
                            let _ = ws.send(Message::text(tick.to_string())).await;
                            json!({
                                "type": "res", "id": id, "ok": true,
                                "payload": {"ok": mode != Mode::Unhealthy, "heartbeatSeconds": 1800,
                                            "agents": [{"agentId": "main"}, {"agentId": "trading"}]},
                            })
                        }
                        _ => {
                            json!({"type": "res", "id": id, "ok": false, "error": {"code": "INVALID", "message": "unknown method"}})
                        }
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

#[tokio::test]
async fn a_healthy_gateway_answers_connect_then_health() {
    let seen = log();
    let port = stand_in(Mode::Healthy, seen.clone()).await;
    let h = gateway::health(port, Some(TOKEN), Duration::from_secs(5)).await;
    assert!(h.ok, "{h:?}");
    assert_eq!(h.failure, None);
    assert_eq!(h.protocol, Some(3));
    assert_eq!(h.server_version.as_deref(), Some("2026.1.24"));
    assert_eq!(h.heartbeat_seconds, Some(1800));
    assert_eq!(h.agents, ["main", "trading"]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0]["method"], "connect");
    assert_eq!(seen[0]["params"]["role"], "operator");
    assert_eq!(seen[0]["params"]["scopes"], json!(["operator.read"]));
    assert_eq!(seen[1]["method"], "health");
    // A gateway that does not open with a challenge works too.
    let port = stand_in(Mode::NoChallenge, log()).await;
    assert!(
        gateway::health(port, Some(TOKEN), Duration::from_secs(5))
            .await
            .ok
    );
}

#[tokio::test]
async fn a_wrong_token_is_a_refusal_with_the_gateways_words() {
    let port = stand_in(Mode::Healthy, log()).await;
    let h = gateway::health(port, Some("wrong-token"), Duration::from_secs(5)).await;
    assert!(!h.ok);
    assert_eq!(h.failure.as_deref(), Some("refused"));
    let e = h.error.unwrap();
    assert!(e.contains("UNAUTHORIZED: gateway token mismatch"), "{e}");
    assert!(e.contains("gateway.auth.token"), "{e}");
    assert!(!e.contains("wrong-token"), "the token is never repeated");
    let h = gateway::health(port, None, Duration::from_secs(5)).await;
    assert_eq!(h.failure.as_deref(), Some("refused"));
}

#[tokio::test]
async fn a_gateway_that_accepts_and_says_nothing_is_reported_in_time() {
    let port = stand_in(Mode::Silent, log()).await;
    let limit = Duration::from_millis(1500);
    let h = tokio::time::timeout(
        Duration::from_secs(15),
        gateway::health(port, Some(TOKEN), limit),
    )
    .await
    .expect("the check ends by itself");
    assert!(!h.ok);
    assert_eq!(h.failure.as_deref(), Some("silent"));
    assert!(h.error.unwrap().contains("did not finish the handshake"));
}

#[tokio::test]
async fn unhealthy_and_garbage_and_no_websocket_are_told_apart() {
    let port = stand_in(Mode::Unhealthy, log()).await;
    let h = gateway::health(port, Some(TOKEN), Duration::from_secs(5)).await;
    assert_eq!(h.failure.as_deref(), Some("unhealthy"));
    assert_eq!(h.protocol, Some(3), "what it said is kept");

    let port = stand_in(Mode::Garbage, log()).await;
    let h = gateway::health(port, Some(TOKEN), Duration::from_secs(5)).await;
    assert_eq!(h.failure.as_deref(), Some("broken"));
    assert!(h.error.unwrap().contains("not JSON"));

    // An HTTP server that is not a websocket (what the gateway's HTTP side
    // would be without the upgrade).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\ncontent-type: text/html\r\n\r\n<html/>\r\n")
                .await;
        }
    });
    let h = gateway::health(port, Some(TOKEN), Duration::from_secs(5)).await;
    assert_eq!(h.failure.as_deref(), Some("broken"));
    assert!(h.error.unwrap().contains("no websocket"));
}

#[test]
fn the_token_comes_from_clawdbots_json5_config() {
    let text = "{ // hand edited\n gateway: { port: 18789, auth: { token: 'abc-123', }, }, }";
    assert_eq!(gateway::token_of(text).as_deref(), Some("abc-123"));
    assert_eq!(gateway::token_of("{ gateway: { port: 1 } }"), None);
    assert_eq!(gateway::token_of("not json5 {"), None);
}
