//! The Ollama probe against real sockets: the fake Ollama, a hung server,
//! garbage answers and a closed port.

use crate::support;

use std::time::Duration;

use clawfleet::probe::ollama;
use clawfleet::snapshot::{LoadedModel, OllamaModel, OllamaStatus};
use support::*;

const TIMEOUT: Duration = Duration::from_millis(3000);

/// Probes `url`, failing the test (instead of hanging it) if the probe does
/// not return well after its own time limit.
async fn probe(url: &str, timeout: Duration) -> OllamaStatus {
    tokio::time::timeout(deadline(timeout), ollama::probe(&client(), url, timeout))
        .await
        .expect("the probe must return within its time limit")
}

#[tokio::test]
async fn healthy_fake_is_mapped_field_for_field() {
    let fake = FakeOllama::start().await;
    fake.set_loaded(vec![FakeLoaded::documented()]);

    let status = probe(&fake.url(), TIMEOUT).await;

    assert!(status.reachable, "{status:?}");
    assert_eq!(status.error, None);
    assert_eq!(status.url, fake.url());
    assert_eq!(status.version.as_deref(), Some("0.5.1"));
    assert!(status.latency_ms.is_some_and(|ms| ms >= 0.0));
    assert!(status.checked_at.is_some());
    assert_eq!(
        status.models,
        vec![
            OllamaModel {
                name: "deepseek-r1:latest".into(),
                size_bytes: 4_683_075_271,
                family: Some("qwen2".into()),
                parameter_size: Some("7.6B".into()),
                quantization: Some("Q4_K_M".into()),
                modified_at: Some("2025-05-10T08:06:48.639712648-07:00".into()),
                digest: Some(
                    "0a8c266910232fd3291e71e5ba1e058cc5af9d411192cf88b6d30e92b6e73163".into(),
                ),
                format: Some("gguf".into()),
                purpose: None,
            },
            OllamaModel {
                name: "llama3.2:latest".into(),
                size_bytes: 2_019_393_189,
                family: Some("llama".into()),
                parameter_size: Some("3.2B".into()),
                quantization: Some("Q4_K_M".into()),
                modified_at: Some("2025-05-04T17:37:44.706015396-07:00".into()),
                digest: Some(
                    "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72".into(),
                ),
                format: Some("gguf".into()),
                purpose: None,
            },
        ]
    );
    assert_eq!(
        status.loaded,
        vec![LoadedModel {
            name: "mistral:latest".into(),
            size_bytes: 5_137_025_024,
            vram_bytes: 5_137_025_024,
            expires_at: Some("2024-06-04T14:38:31.83753-07:00".into()),
        }]
    );
    // One request each, nothing else.
    assert_eq!(fake.count("/api/version"), 1);
    assert_eq!(fake.count("/api/tags"), 1);
    assert_eq!(fake.count("/api/ps"), 1);
    assert_eq!(fake.total_requests(), 3);
}

#[tokio::test]
async fn runtime_changes_of_the_fake_are_seen() {
    let fake = FakeOllama::start().await;
    fake.set_version("0.12.6");
    let mut big = FakeModel::new("gpt-oss:20b");
    big.size = 13_780_173_724;
    big.family = "gptoss".into();
    big.parameter_size = "20.9B".into();
    big.quantization_level = "MXFP4".into();
    fake.set_models(vec![big.clone()]);
    let mut loaded = FakeLoaded::of(&big);
    loaded.size_vram = 1_000;
    fake.set_loaded(vec![loaded]);

    // A trailing slash on the base URL is fine.
    let status = probe(&format!("{}/", fake.url()), TIMEOUT).await;

    assert!(status.reachable, "{status:?}");
    assert_eq!(status.version.as_deref(), Some("0.12.6"));
    assert_eq!(status.models.len(), 1);
    assert_eq!(status.models[0].name, "gpt-oss:20b");
    assert_eq!(status.models[0].size_bytes, 13_780_173_724);
    assert_eq!(status.models[0].family.as_deref(), Some("gptoss"));
    assert_eq!(status.models[0].parameter_size.as_deref(), Some("20.9B"));
    assert_eq!(status.models[0].quantization.as_deref(), Some("MXFP4"));
    assert_eq!(status.loaded.len(), 1);
    assert_eq!(status.loaded[0].size_bytes, 13_780_173_724);
    assert_eq!(status.loaded[0].vram_bytes, 1_000);
}

#[tokio::test]
async fn refused_connection_says_nothing_listens_once() {
    let port = free_closed_port();
    let url = format!("http://127.0.0.1:{port}");

    let status = probe(&url, TIMEOUT).await;

    assert!(!status.reachable);
    assert_eq!(
        status.error.as_deref(),
        Some(
            format!(
                "nothing is listening at 127.0.0.1:{port} (connection refused) — is Ollama running?"
            )
            .as_str()
        )
    );
    assert_eq!(status.version, None);
    assert_eq!(status.latency_ms, None);
    assert!(status.models.is_empty() && status.loaded.is_empty());
    assert!(status.checked_at.is_some());
}

#[tokio::test]
async fn hanging_server_times_out_with_the_limit_in_words() {
    let hang = HangingServer::start().await;

    let status = probe(&hang.url(), SHORT_TIMEOUT).await;

    assert!(!status.reachable);
    assert_eq!(
        status.error.as_deref(),
        Some(
            format!(
                "/api/version did not answer within {} ms",
                SHORT_TIMEOUT.as_millis()
            )
            .as_str()
        )
    );
    assert_eq!(status.latency_ms, None);
    // All three requests were sent.
    assert!(
        eventually(|| hang.accepted() == 3).await,
        "{}",
        hang.accepted()
    );
}

#[tokio::test]
async fn html_answer_is_called_html() {
    let garbage = GarbageServer::start(Garbage::Html).await;

    let status = probe(&garbage.url(), TIMEOUT).await;

    assert!(!status.reachable);
    assert_eq!(
        status.error.as_deref(),
        Some(
            "/api/version answered with HTML (Content-Type text/html), not Ollama's JSON — \
             is something else on this port?"
        )
    );
    // The round trip happened, so it is measured.
    assert!(status.latency_ms.is_some());
}

#[tokio::test]
async fn half_json_from_tags_names_the_parse_error() {
    let garbage = GarbageServer::start_routes(
        vec![
            ("/api/version", Garbage::Json(DOC_VERSION_JSON.into())),
            ("/api/ps", Garbage::Json(DOC_PS_JSON.into())),
        ],
        Garbage::HalfJson,
    )
    .await;

    let status = probe(&garbage.url(), TIMEOUT).await;

    assert!(status.reachable, "version answered fine: {status:?}");
    let error = status.error.expect("the tags failure is reported");
    assert!(
        error.starts_with("invalid JSON from /api/tags: EOF while parsing"),
        "{error}"
    );
    assert!(
        error.contains(" at line ") && error.contains(" column "),
        "{error}"
    );
    assert!(status.models.is_empty());
    assert_eq!(status.loaded.len(), 1);
    assert_eq!(status.loaded[0].name, "mistral:latest");
}

#[tokio::test]
async fn server_error_quotes_ollamas_error_text() {
    let garbage = GarbageServer::start(Garbage::ServerErrorJson).await;

    let status = probe(&garbage.url(), TIMEOUT).await;

    assert!(!status.reachable);
    assert_eq!(
        status.error.as_deref(),
        Some(
            "/api/version answered HTTP 500 Internal Server Error: \
             llama runner process has terminated: exit status 2"
        )
    );
}

#[tokio::test]
async fn fake_failing_everything_is_unreachable_with_its_status() {
    let fake = FakeOllama::start().await;
    fake.fail_all(
        503,
        "server busy, please try again.  maximum pending requests exceeded",
    );

    let status = probe(&fake.url(), TIMEOUT).await;

    assert!(!status.reachable);
    // The same answer on all three paths is told once, for the first path.
    assert_eq!(
        status.error.as_deref(),
        Some(
            "/api/version answered HTTP 503 Service Unavailable: \
             server busy, please try again.  maximum pending requests exceeded"
        )
    );
    assert_eq!(fake.total_requests(), 3);
}

#[tokio::test]
async fn oversized_tags_body_is_refused_and_version_stays_good() {
    let garbage = GarbageServer::start_routes(
        vec![
            ("/api/version", Garbage::Json(DOC_VERSION_JSON.into())),
            ("/api/ps", Garbage::Json(r#"{"models":[]}"#.into())),
        ],
        Garbage::EndlessBody,
    )
    .await;

    let status = probe(&garbage.url(), TIMEOUT).await;

    assert!(status.reachable);
    assert_eq!(
        status.error.as_deref(),
        Some(
            format!(
                "/api/tags sent a body larger than the {}-byte limit; not read",
                clawfleet::net::PROBE_BODY_LIMIT
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn body_shorter_than_its_content_length_is_broken_off() {
    let garbage = GarbageServer::start_routes(
        vec![
            ("/api/version", Garbage::Json(DOC_VERSION_JSON.into())),
            ("/api/ps", Garbage::Json(r#"{"models":[]}"#.into())),
        ],
        Garbage::WrongContentLength,
    )
    .await;

    let status = probe(&garbage.url(), TIMEOUT).await;

    assert!(status.reachable);
    assert_eq!(
        status.error.as_deref(),
        Some(
            "/api/tags: the answer broke off before its end (end of file before message length reached)"
        )
    );
}

#[tokio::test]
async fn tags_fine_but_ps_failing_keeps_reachable_and_names_ps() {
    let fake = FakeOllama::start().await;
    fake.set_loaded(vec![FakeLoaded::documented()]);
    fake.fail_path("/api/ps", 500, "unexpected server status");

    let status = probe(&fake.url(), TIMEOUT).await;

    assert!(status.reachable);
    assert_eq!(status.version.as_deref(), Some("0.5.1"));
    assert_eq!(status.models.len(), 2);
    assert!(status.loaded.is_empty());
    assert_eq!(
        status.error.as_deref(),
        Some("/api/ps answered HTTP 500 Internal Server Error: unexpected server status")
    );
}

#[tokio::test]
async fn tags_and_ps_failing_alike_are_both_named() {
    let fake = FakeOllama::start().await;
    fake.fail_path("/api/tags", 500, "boom");
    fake.fail_path("/api/ps", 500, "boom");

    let status = probe(&fake.url(), TIMEOUT).await;

    assert!(status.reachable);
    assert_eq!(
        status.error.as_deref(),
        Some(
            "/api/tags answered HTTP 500 Internal Server Error: boom; \
             /api/ps answered HTTP 500 Internal Server Error: boom"
        )
    );
}

#[tokio::test]
async fn hanging_tags_and_ps_are_both_named_as_timeouts() {
    let garbage = GarbageServer::start_routes(
        vec![("/api/version", Garbage::Json(DOC_VERSION_JSON.into()))],
        Garbage::Hang,
    )
    .await;

    let status = probe(&garbage.url(), SHORT_TIMEOUT).await;

    assert!(status.reachable);
    assert_eq!(status.version.as_deref(), Some("0.5.1"));
    let ms = SHORT_TIMEOUT.as_millis();
    assert_eq!(
        status.error,
        Some(format!(
            "/api/tags did not answer within {ms} ms; /api/ps did not answer within {ms} ms"
        ))
    );
}

#[tokio::test]
async fn entry_without_name_is_skipped_and_mentioned() {
    let garbage = GarbageServer::start_routes(
        vec![
            ("/api/version", Garbage::Json(DOC_VERSION_JSON.into())),
            (
                "/api/tags",
                Garbage::Json(r#"{"models":[{"name":"a:1b","size":1},{"size":2}]}"#.into()),
            ),
        ],
        Garbage::Json(r#"{"models":[]}"#.into()),
    )
    .await;

    let status = probe(&garbage.url(), TIMEOUT).await;

    assert!(status.reachable);
    assert_eq!(status.models.len(), 1);
    assert_eq!(status.models[0].name, "a:1b");
    assert_eq!(
        status.error.as_deref(),
        Some("/api/tags: skipped entry 2: it has no \"name\"")
    );
}

#[tokio::test]
async fn version_without_version_field_is_not_ollama() {
    let garbage = GarbageServer::start(Garbage::Json(r#"{"status":"ok"}"#.into())).await;

    let status = probe(&garbage.url(), TIMEOUT).await;

    assert!(!status.reachable);
    let error = status.error.expect("an error");
    assert!(
        error.starts_with(
            "/api/version answered a JSON object without a \"version\" — is this Ollama?"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn stopped_then_restarted_fake_goes_down_and_comes_back() {
    let fake = FakeOllama::start().await;
    let client = client();
    let first = ollama::probe(&client, &fake.url(), TIMEOUT).await;
    assert!(first.reachable);

    fake.stop().await;
    let down = ollama::probe(&client, &fake.url(), TIMEOUT).await;
    assert!(!down.reachable);
    let error = down.error.expect("an error");
    // A pooled connection cut by the stop may be reported as closed rather
    // than refused; either way the address is named.
    assert!(error.contains(&fake.addr().to_string()), "{error}");

    fake.restart().await;
    let back = ollama::probe(&client, &fake.url(), TIMEOUT).await;
    assert!(back.reachable, "{back:?}");
    assert_eq!(back.error, None);
}

#[tokio::test]
async fn invalid_base_url_is_reported_without_a_request() {
    let status = probe("not a url", TIMEOUT).await;
    assert!(!status.reachable);
    let error = status.error.expect("an error");
    assert!(
        error.starts_with("\"not a url\" is not a valid URL"),
        "{error}"
    );
    assert!(status.checked_at.is_some());
}
