//! A stand-in for the Anthropic Messages API, speaking its documented
//! request headers, SSE events and error shape.

use axum::http::HeaderMap;
use serde_json::{Value, json};

/// The only API key the fake accepts.
pub const ANTHROPIC_TEST_KEY: &str = "sk-ant-test-123";
/// The only `Authorization` value the fake accepts (an OAuth token).
pub const ANTHROPIC_TEST_BEARER: &str = "Bearer sk-ant-oat01-test-456";

/// A stand-in for the Anthropic Messages API: checks the key and version
/// headers (the key [`ANTHROPIC_TEST_KEY`] as `x-api-key`, or the OAuth
/// token [`ANTHROPIC_TEST_BEARER`] as `Authorization`; anything else is
/// Anthropic's 401), answers the documented stream (named events, usage in
/// `message_start` and cumulative in `message_delta`) or a whole message.
pub async fn fake_anthropic() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    async fn messages(headers: HeaderMap, body: axum::body::Bytes) -> axum::response::Response {
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
        if key != Some(ANTHROPIC_TEST_KEY) && bearer != Some(ANTHROPIC_TEST_BEARER) {
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            )
                .into_response();
        }
        if headers.get("anthropic-version").is_none() {
            return (StatusCode::BAD_REQUEST, "missing anthropic-version").into_response();
        }
        let req: Value = serde_json::from_slice(&body).unwrap();
        if req["stream"] == true {
            let events = [
                (
                    "message_start",
                    json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}),
                ),
                (
                    "content_block_start",
                    json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
                ),
                ("ping", json!({"type": "ping"})),
                (
                    "content_block_delta",
                    json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}),
                ),
                (
                    "content_block_stop",
                    json!({"type":"content_block_stop","index":0}),
                ),
                (
                    "message_delta",
                    json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}),
                ),
                ("message_stop", json!({"type":"message_stop"})),
            ];
            let text: String = events
                .iter()
                .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
                .collect();
            ([("content-type", "text/event-stream")], text).into_response()
        } else {
            (
                [("content-type", "application/json")],
                json!({"id":"msg_2","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],"model":"claude-sonnet-4-5","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3}}).to_string(),
            )
                .into_response()
        }
    }
    let app = axum::Router::new().route("/v1/messages", axum::routing::post(messages));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}
