//! The agent's gateway, beyond "the port is open" (its HTTP side answers
//! anything): its websocket, the `connect` handshake as a read-only
//! operator, then `health` and `last-heartbeat`; or, where the websocket
//! cannot be used, `openclaw health --json`.
//!
//! Protocol 4, as OpenClaw 2026.9 defines it (`ConnectParamsSchema`, a
//! closed object: an unknown property is refused): the gateway opens with
//! `{"type":"event","event":"connect.challenge","payload":{"nonce","ts"}}`;
//! the client sends `{"type":"req","id":"1","method":"connect","params":
//! {"minProtocol":1,"maxProtocol":4,"client":{"id":"cli","displayName",
//! "version","platform","mode":"cli"},"role":"operator","scopes":
//! ["operator.read"],"auth":{"token"|"password"}}}`. The nonce is signed
//! only inside `params.device`, which a token- or password-authenticated
//! operator on loopback does not need; and only client `cli`/`cli` keeps its
//! scopes without one. The answer is `{"type":"res","id":"1","ok":true,
//! "payload":{"type":"hello-ok","protocol":4,"server":{"version"},
//! "snapshot":{"uptimeMs"}}}`, or `"ok":false` with `{"error":{"code",
//! "message","details":{"code"}}}` and a close (1008; 1013 while the
//! gateway starts). A legacy Clawdbot 2026.1 speaks protocol 3 and takes the
//! same frame. `health` works with any scope; its `ok` only means a snapshot
//! was made, so health is judged from what it holds: each channel's
//! `healthState` (present only when the channel is unwell), plugin errors,
//! a degraded event loop or model runtime.
//!
//! Untrusted: every frame is capped at 1 MiB, the whole exchange has one
//! time limit, and a gateway that accepts the socket and says nothing is
//! reported as such. The secret is sent only here, to 127.0.0.1, and never
//! logged or stored in the snapshot.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::auth::Auth;
use crate::net::preview;
use crate::snapshot::{Channel, GatewayHealth, GatewayHeartbeat};

/// How long the gateway has to open with its challenge before we send
/// `connect` anyway (an older gateway does not send one).
const CHALLENGE_WAIT: Duration = Duration::from_millis(700);
/// The largest frame read.
const MAX_FRAME: usize = 1 << 20;
/// The most channels, plugin errors and agents kept from one answer.
const MAX_ITEMS: usize = 64;

/// What `health` says about one agent, for the agent's entry in the
/// snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayAgent {
    /// Its id.
    pub id: String,
    /// The default agent.
    pub is_default: bool,
    /// Sessions OpenClaw counts for it.
    pub sessions: Option<u64>,
    /// Its heartbeat interval, when heartbeats are on.
    pub heartbeat_every_secs: Option<u64>,
    /// Whether its heartbeat is on.
    pub heartbeat_enabled: Option<bool>,
}

fn failed(kind: &str, error: String, hint: Option<String>) -> GatewayHealth {
    GatewayHealth {
        failure: Some(kind.to_owned()),
        error: Some(error),
        hint,
        ..GatewayHealth::default()
    }
}

/// Asks the gateway on `127.0.0.1:port` for its health over its websocket,
/// within `limit`.
pub async fn health(port: u16, auth: &Auth, limit: Duration) -> (GatewayHealth, Vec<GatewayAgent>) {
    let started = Instant::now();
    let (mut out, agents) = match tokio::time::timeout(limit, exchange(port, auth, limit)).await {
        Ok(r) => r,
        Err(_) => (
            failed(
                "silent",
                format!(
                    "the gateway accepted the connection but did not finish the handshake and health in {} ms",
                    limit.as_millis()
                ),
                Some("it may be overloaded or hung: `openclaw gateway restart`".to_owned()),
            ),
            Vec::new(),
        ),
    };
    out.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    out.via = Some("websocket".to_owned());
    (out, agents)
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
                    None,
                ));
            }
            Some(Err(e)) => return Err(failed("broken", format!("websocket error: {e}"), None)),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| {
                    failed(
                        "broken",
                        format!(
                            "the gateway sent a frame that is not JSON ({e}): {}",
                            preview(t.as_bytes(), 80)
                        ),
                        Some("is this port OpenClaw's gateway?".to_owned()),
                    )
                });
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or_default();
                let reason = preview(reason.as_bytes(), 200);
                return Err(if code == 1013 {
                    starting(&reason)
                } else {
                    failed(
                        "refused",
                        format!("the gateway closed the connection ({code} {reason})")
                            .replace(" )", ")"),
                        None,
                    )
                });
            }
            Some(Ok(_)) => {}
        }
    }
}

fn starting(words: &str) -> GatewayHealth {
    failed(
        "starting",
        format!("the gateway is starting: {words}"),
        Some(
            "it answers once its start-up is done (OpenClaw takes up to half a minute)".to_owned(),
        ),
    )
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

/// A refusal of `connect`, with the gateway's own words and what to do,
/// from its `details.code` (OpenClaw's `connect-error-details`).
pub fn refusal(error: &Value, auth: &Auth) -> GatewayHealth {
    let code = error["code"].as_str().unwrap_or("error");
    let message = preview(
        error["message"].as_str().unwrap_or("no message").as_bytes(),
        240,
    );
    let detail = error["details"]["code"].as_str().unwrap_or_default();
    let words = format!("the gateway refused the connection: {message}");
    let ours = match auth {
        Auth::Secret(c) => format!(
            "the {} ClawFleet sent came from {}",
            if c.password { "password" } else { "token" },
            c.source
        ),
        other => other.describe(),
    };
    let (kind, hint) = match detail {
        "AUTH_TOKEN_MISMATCH" | "AUTH_PASSWORD_MISMATCH" => (
            "refused",
            format!(
                "{ours}, and it is not the gateway's: a gateway started with --token/--password or another OPENCLAW_GATEWAY_TOKEN/PASSWORD uses that; give ClawFleet the same (its environment, or [openclaw] config_path to the config the gateway reads)"
            ),
        ),
        "AUTH_TOKEN_MISSING" | "AUTH_PASSWORD_MISSING" | "DEVICE_IDENTITY_REQUIRED" => (
            "no_credential",
            format!(
                "ClawFleet sent no secret the gateway accepts ({ours}): set gateway.auth.token in OpenClaw's config, or OPENCLAW_GATEWAY_TOKEN where ClawFleet runs"
            ),
        ),
        "PAIRING_REQUIRED" => {
            let request = error["details"]["requestId"]
                .as_str()
                .map(|r| preview(r.as_bytes(), 64));
            (
                "refused",
                match request {
                    Some(r) => format!("the gateway wants this device approved: on its machine run `openclaw devices approve {r}`"),
                    None => "the gateway wants this device approved: on its machine run `openclaw devices list`, then `openclaw devices approve <requestId>`".to_owned(),
                },
            )
        }
        "PROTOCOL_MISMATCH" => (
            "broken",
            format!(
                "the gateway speaks protocol {}, this ClawFleet speaks 1 to 4: update the older of the two",
                error["details"]["expectedProtocol"]
            ),
        ),
        "AUTH_RATE_LIMITED" => (
            "refused",
            "too many failed connections: the gateway refuses them for a while".to_owned(),
        ),
        _ if code == "UNAVAILABLE" => return starting(&message),
        _ => (
            "refused",
            "see the gateway's own log (`openclaw logs`)".to_owned(),
        ),
    };
    failed(kind, words, Some(hint))
}

async fn exchange(port: u16, auth: &Auth, limit: Duration) -> (GatewayHealth, Vec<GatewayAgent>) {
    let url = format!("ws://127.0.0.1:{port}/");
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let mut ws =
        match tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false).await
        {
            Ok((ws, _)) => ws,
            Err(e) => {
                return (
                    failed(
                        "broken",
                        format!("no websocket on port {port}: {e}"),
                        Some("is this port OpenClaw's gateway?".to_owned()),
                    ),
                    Vec::new(),
                );
            }
        };
    let out = talk(&mut ws, auth, limit).await;
    // A polite close; the answer is already in hand.
    let _ = ws.close(None).await;
    out.unwrap_or_else(|e| (e, Vec::new()))
}

async fn talk(
    ws: &mut Socket,
    auth: &Auth,
    limit: Duration,
) -> Result<(GatewayHealth, Vec<GatewayAgent>), GatewayHealth> {
    // The challenge, if it sends one: only a device signs its nonce.
    if let Ok(first) = tokio::time::timeout(CHALLENGE_WAIT.min(limit / 3), next_json(ws)).await {
        first?;
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
    if let Auth::Secret(c) = auth {
        let field = if c.password { "password" } else { "token" };
        params["auth"] = json!({ field: c.secret });
    }
    let connect = json!({ "type": "req", "id": "1", "method": "connect", "params": params });
    ws.send(Message::text(connect.to_string()))
        .await
        .map_err(|e| failed("broken", format!("cannot send connect: {e}"), None))?;
    let hello = response(ws, "1").await?;
    if hello["ok"] != true {
        return Err(refusal(&hello["error"], auth));
    }
    let payload = &hello["payload"];
    if payload["type"] != "hello-ok" {
        return Err(failed(
            "broken",
            format!(
                "the gateway answered connect without hello-ok: {}",
                preview(payload.to_string().as_bytes(), 120)
            ),
            None,
        ));
    }
    let protocol = payload["protocol"].as_u64();
    let server_version = payload["server"]["version"]
        .as_str()
        .map(|v| preview(v.as_bytes(), 40));
    let uptime_secs = payload["snapshot"]["uptimeMs"].as_u64().map(|ms| ms / 1000);

    let req = json!({ "type": "req", "id": "2", "method": "health", "params": {} });
    ws.send(Message::text(req.to_string()))
        .await
        .map_err(|e| failed("broken", format!("cannot send health: {e}"), None))?;
    let res = response(ws, "2").await?;
    if res["ok"] != true {
        let mut h = refusal(&res["error"], auth);
        h.failure = Some("unhealthy".to_owned());
        h.protocol = protocol;
        h.server_version = server_version;
        return Err(h);
    }
    let (mut out, agents) = read_health(&res["payload"]);
    out.protocol = protocol;
    out.server_version = server_version;
    out.uptime_secs = uptime_secs;
    // The last heartbeat run, kept in the gateway's memory (a legacy
    // Clawdbot may not have the method: then there is none to show).
    let req = json!({ "type": "req", "id": "3", "method": "last-heartbeat", "params": {} });
    if ws.send(Message::text(req.to_string())).await.is_ok()
        && let Ok(res) = response(ws, "3").await
        && res["ok"] == true
    {
        out.last_heartbeat = read_last_heartbeat(&res["payload"]);
    }
    Ok((out, agents))
}

fn read_last_heartbeat(v: &Value) -> Option<GatewayHeartbeat> {
    let v = v.as_object()?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(|s| preview(s.as_bytes(), 120))
    };
    Some(GatewayHeartbeat {
        at: v
            .get("ts")
            .and_then(Value::as_i64)
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        status: text("status"),
        reason: text("reason"),
    })
}

/// Reads a `health` payload (the websocket's or `openclaw health --json`'s):
/// the health, with `ok` judged from what it holds, and its agents.
pub fn read_health(h: &Value) -> (GatewayHealth, Vec<GatewayAgent>) {
    let mut out = GatewayHealth {
        heartbeat_seconds: h["heartbeatSeconds"].as_u64(),
        ..GatewayHealth::default()
    };
    let mut agents = Vec::new();
    for a in h["agents"].as_array().into_iter().flatten().take(MAX_ITEMS) {
        let id = a
            .as_str()
            .or_else(|| a["agentId"].as_str())
            .or_else(|| a["id"].as_str());
        let Some(id) = id else { continue };
        let id = preview(id.as_bytes(), 60);
        out.agents.push(id.clone());
        let hb = &a["heartbeat"];
        agents.push(GatewayAgent {
            id,
            is_default: a["isDefault"] == true,
            sessions: a["sessions"]["count"].as_u64(),
            heartbeat_every_secs: hb["everyMs"].as_u64().map(|ms| ms / 1000),
            heartbeat_enabled: hb["enabled"].as_bool(),
        });
    }
    // Channels in the gateway's order, then any it did not order.
    let channels = h["channels"].as_object();
    let mut order: Vec<String> = h["channelOrder"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for id in channels.into_iter().flat_map(|c| c.keys()) {
        if !order.contains(id) {
            order.push(id.clone());
        }
    }
    for id in order.into_iter().take(MAX_ITEMS) {
        let Some(c) = channels.and_then(|c| c.get(&id)) else {
            continue;
        };
        let label = h["channelLabels"][&id].as_str().unwrap_or(&id);
        out.channels.push(Channel {
            id: preview(id.as_bytes(), 40),
            label: preview(label.as_bytes(), 40),
            state: channel_state(c),
            connected: c["connected"].as_bool(),
            last_error: c["lastError"].as_str().map(|e| preview(e.as_bytes(), 200)),
        });
    }
    for e in h["plugins"]["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .take(MAX_ITEMS)
    {
        if e["activated"] == false {
            continue;
        }
        let id = e["id"].as_str().unwrap_or("a plugin");
        let error = e["error"].as_str().unwrap_or("failed");
        out.plugin_errors.push(format!(
            "{}: {}",
            preview(id.as_bytes(), 40),
            preview(error.as_bytes(), 160)
        ));
    }
    if h["eventLoop"]["degraded"] == true {
        let reasons: Vec<String> = h["eventLoop"]["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .take(4)
            .map(|r| preview(r.as_bytes(), 60))
            .collect();
        out.degraded.push(if reasons.is_empty() {
            "its event loop is degraded".to_owned()
        } else {
            format!("its event loop is degraded ({})", reasons.join(", "))
        });
    }
    if h["modelRuntime"]["degraded"] == true {
        out.degraded
            .push("its model runtime is degraded".to_owned());
    }
    if h["configReload"]["hotReloadStatus"] == "disabled" {
        out.degraded
            .push("config hot reload is disabled".to_owned());
    }
    // A degraded event loop or model runtime is said, not held against it:
    // both come and go with the machine's load (a busy 2-core machine shows
    // "cpu" for a while after the gateway starts).
    let unwell =
        out.channels.iter().any(|c| !channel_fine(&c.state)) || !out.plugin_errors.is_empty();
    if h.is_object() && h["ok"] != false && !unwell {
        out.ok = true;
    } else {
        out.failure = Some("unhealthy".to_owned());
        out.error = Some(unwell_words(&out, h));
    }
    (out, agents)
}

/// Whether a channel state is nothing to act on.
fn channel_fine(state: &str) -> bool {
    matches!(state, "ok" | "disabled" | "not configured")
}

/// A channel's state as OpenClaw's own `openclaw health` tells it: off when
/// disabled or not configured, else its `healthState` (set only when it is
/// unwell, by it or by one of its accounts), else ok.
fn channel_state(c: &Value) -> String {
    if c["enabled"] == false {
        return "disabled".to_owned();
    }
    if c["configured"] == false {
        return "not configured".to_owned();
    }
    let own = c["healthState"].as_str().filter(|s| *s != "healthy");
    let account = c["accounts"]
        .as_object()
        .into_iter()
        .flat_map(|a| a.values())
        .filter(|a| a["enabled"] != false && a["configured"] != false)
        .find_map(|a| a["healthState"].as_str().filter(|s| *s != "healthy"));
    own.or(account)
        .map_or_else(|| "ok".to_owned(), |s| preview(s.as_bytes(), 40))
}

fn unwell_words(out: &GatewayHealth, h: &Value) -> String {
    if !h.is_object() {
        return "the gateway's health answer is not an object".to_owned();
    }
    let mut parts: Vec<String> = out
        .channels
        .iter()
        .filter(|c| !channel_fine(&c.state))
        .map(|c| match &c.last_error {
            Some(e) => format!("{}: {} ({e})", c.label, c.state),
            None => format!("{}: {}", c.label, c.state),
        })
        .collect();
    parts.extend(out.plugin_errors.iter().map(|e| format!("plugin {e}")));
    if parts.is_empty() {
        "the gateway says it is not ok".to_owned()
    } else {
        parts.join("; ")
    }
}

/// `openclaw health --json --timeout <ms>` for the install at `state_dir`
/// with config `config_path`: for when the websocket cannot be used (a
/// secret only OpenClaw can read, a device it must pair). `program` is the
/// `openclaw` command. Bounded in time and output; never through a shell.
pub async fn health_by_cli(
    program: &str,
    state_dir: &Path,
    config_path: &Path,
    limit: Duration,
) -> (GatewayHealth, Vec<GatewayAgent>) {
    let started = Instant::now();
    let wait_ms = limit.as_millis().saturating_sub(2000).max(1000);
    let argv = [
        program,
        "health",
        "--json",
        "--timeout",
        &wait_ms.to_string(),
    ]
    .map(str::to_owned);
    let envs = [
        ("OPENCLAW_STATE_DIR", state_dir.as_os_str()),
        ("OPENCLAW_CONFIG_PATH", config_path.as_os_str()),
        ("NO_COLOR", std::ffi::OsStr::new("1")),
    ];
    let ran = crate::command::run_with(&argv, &envs, limit, 4 << 20).await;
    let parsed: Option<Value> = serde_json::from_str(&ran.stdout).ok();
    let (mut out, agents) = match parsed {
        _ if ran.spawn_error.is_some() || ran.timed_out => (
            failed(
                "broken",
                ran.summary(),
                Some("install OpenClaw's command where ClawFleet can run it, or set [openclaw] cli to its full path".to_owned()),
            ),
            Vec::new(),
        ),
        Some(v) if ran.success && v.get("error").is_none() => read_health(&v),
        Some(v) if v["error"].is_object() => {
            let e = &v["error"];
            let h = if e["type"] == "gateway_transport_error" {
                failed(
                    "silent",
                    format!(
                        "`openclaw health`: {}",
                        preview(e["message"].as_str().unwrap_or("no answer").as_bytes(), 200)
                    ),
                    None,
                )
            } else {
                refusal(e, &Auth::Unreadable("OpenClaw's own configuration".to_owned()))
            };
            (h, Vec::new())
        }
        _ => (
            failed(
                "broken",
                format!("{}, and printed no health", ran.summary()),
                None,
            ),
            Vec::new(),
        ),
    };
    out.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    out.via = Some("cli".to_owned());
    (out, agents)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `health` payload as OpenClaw 2026.9.6 sent it (trimmed), with a
    /// Telegram channel past its start-up grace and unable to connect.
    fn payload() -> Value {
        json!({"ok":true,"ts":1796687111118u64,"durationMs":2040,
         "plugins":{"loaded":["telegram"],"errors":[],"unavailable":[]},
         "configReload":{"hotReloadStatus":"active"},
         "channels":{"telegram":{"accountId":"default","enabled":true,"configured":true,"running":true,"connected":false,"lastError":null,
            "healthState":"disconnected","accounts":{"default":{"healthState":"disconnected"}}},
            "discord":{"enabled":true,"configured":true,"running":true,"connected":true}},
         "channelOrder":["telegram"],"channelLabels":{"telegram":"Telegram","discord":"Discord"},
         "heartbeatSeconds":1800,"defaultAgentId":"main",
         "agents":[{"agentId":"main","isDefault":true,
            "heartbeat":{"enabled":true,"every":"30m","everyMs":1800000},
            "sessions":{"path":"/x/openclaw-agent.sqlite","count":3,"recent":[]}},
            {"agentId":"ops","isDefault":false,"heartbeat":{"enabled":false,"everyMs":null},"sessions":{"count":0}}],
         "modelRuntime":{"degraded":false,"pendingAgents":[]},
         "eventLoop":{"degraded":false,"reasons":[]}})
    }

    #[test]
    fn health_is_judged_from_its_channels_plugins_and_loops() {
        let (h, agents) = read_health(&payload());
        assert!(!h.ok);
        assert_eq!(h.failure.as_deref(), Some("unhealthy"));
        assert_eq!(h.error.as_deref(), Some("Telegram: disconnected"));
        assert_eq!(h.channels.len(), 2);
        assert_eq!(h.channels[0].label, "Telegram");
        assert_eq!(h.channels[1].state, "ok");
        assert_eq!(h.agents, vec!["main", "ops"]);
        assert_eq!(
            agents[0],
            GatewayAgent {
                id: "main".into(),
                is_default: true,
                sessions: Some(3),
                heartbeat_every_secs: Some(1800),
                heartbeat_enabled: Some(true)
            }
        );
        assert_eq!(agents[1].heartbeat_every_secs, None);
        assert_eq!(h.heartbeat_seconds, Some(1800));

        let mut p = payload();
        p["channels"]["telegram"] = json!({"enabled": true, "configured": true, "connected": true});
        let (h, _) = read_health(&p);
        assert!(h.ok, "{h:?}");
        // Load: said, not held against it.
        p["eventLoop"] = json!({"degraded": true, "reasons": ["cpu"]});
        let (h, _) = read_health(&p);
        assert!(h.ok, "{h:?}");
        assert_eq!(h.degraded, ["its event loop is degraded (cpu)"]);
        p["plugins"]["errors"] =
            json!([{"id": "whatsapp", "activated": true, "error": "Cannot find module"}]);
        let (h, _) = read_health(&p);
        assert_eq!(
            h.error.as_deref(),
            Some("plugin whatsapp: Cannot find module")
        );
        // A channel that is off is nothing to act on; garbage is not ok.
        let (h, _) =
            read_health(&json!({"channels": {"x": {"enabled": false, "healthState": "stuck"}}}));
        assert!(h.ok);
        assert!(!read_health(&json!("garbage")).0.ok);
    }

    #[test]
    fn refusals_carry_the_gateways_words_and_the_right_hint() {
        let secret = Auth::Secret(super::super::auth::Credential {
            password: false,
            secret: "s".into(),
            source: "gateway.auth.token in ~/.openclaw/openclaw.json".into(),
        });
        let mismatch = json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
            "details":{"code":"AUTH_TOKEN_MISMATCH"}});
        let h = refusal(&mismatch, &secret);
        assert_eq!(h.failure.as_deref(), Some("refused"));
        assert!(h.error.unwrap().contains("gateway token mismatch"));
        assert!(
            h.hint
                .unwrap()
                .contains("came from gateway.auth.token in ~/.openclaw/openclaw.json")
        );
        let h = refusal(
            &json!({"code":"NOT_PAIRED","message":"device identity required","details":{"code":"DEVICE_IDENTITY_REQUIRED"}}),
            &Auth::Missing("no gateway token".into()),
        );
        assert_eq!(h.failure.as_deref(), Some("no_credential"));
        let h = refusal(
            &json!({"code":"NOT_PAIRED","message":"pairing required","details":{"code":"PAIRING_REQUIRED","requestId":"6e6e30e8"}}),
            &secret,
        );
        assert!(
            h.hint
                .unwrap()
                .contains("openclaw devices approve 6e6e30e8")
        );
        let h = refusal(
            &json!({"code":"UNAVAILABLE","message":"gateway starting; retry shortly"}),
            &secret,
        );
        assert_eq!(h.failure.as_deref(), Some("starting"));
        let h = refusal(
            &json!({"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH","expectedProtocol":5}}),
            &secret,
        );
        assert!(h.hint.unwrap().contains("protocol 5"));
    }
}
