//! The fleet: real instances (the daemon, in this process, each with its own
//! ports and data folder) that poll each other over loopback.
//!
//! - three instances see each other; one stopped goes stale, then offline,
//!   in the others, and comes back by itself when it starts again;
//! - a heal asked of a peer runs there, with the token, and says who asked;
//!   without the token, or with another, it is refused;
//! - polls go through a real SOCKS5 server (microsocks) when configured;
//! - peers that answer garbage, hang, send without end or claim to be another
//!   machine are marked, and never stall the view;
//! - from another machine (this host's own non-loopback address) every
//!   request needs the token; Host and Origin are checked.

use crate::support;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use clawfleet::daemon::{self, Running};
use clawfleet::snapshot::{PeerState, Snapshot};
use serde_json::{Value, json};
use support::{FakeOllama, Garbage, GarbageServer, HangingServer, TestConfig, Toml};

const TOKEN: &str = "0123456789abcdef0123456789abcdef-fleet";

/// One machine of a test fleet: its id, the port its API will use, its
/// fake Ollama.
struct Member {
    id: &'static str,
    port: u16,
    ollama: FakeOllama,
}

/// The config of machine `me` in a fleet of `members` (their fleet APIs on
/// loopback) plus `extra` peers (id, fleet_url) that are not ClawFleet
/// instances: quick polls, healing off (but for a stand-in restart), costs
/// from the ledger only.
fn config(me: &str, dir: &Path, members: &[&Member], extra: &[(&str, String)]) -> TestConfig {
    let this = members.iter().find(|m| m.id == me).expect("me in members");
    let mut config = TestConfig::new(me, &dir.join(me))
        .set("api", "listen", format!("127.0.0.1:{}", this.port))
        .set("probes", "system_interval_secs", 1)
        .set("probes", "processes_interval_secs", 5)
        .set("probes", "services_interval_secs", 5)
        .set("costs", "read_transcripts", false)
        .set("heal", "mode", "off")
        .set("heal", "verify_secs", 10)
        .heal_command("restart-ollama", &["true"])
        .set("fleet", "poll_interval_secs", 1)
        .set("fleet", "poll_timeout_ms", 800)
        .set("fleet", "stale_after_polls", 2)
        .set("fleet", "offline_after_secs", 4);
    for m in members {
        config = with_member(config, m, &format!("http://127.0.0.1:{}", m.port));
    }
    for (id, url) in extra {
        config = config.machine(id, &format!("Peer {id}"), &format!("fleet_url = \"{url}\""));
    }
    config
}

/// `config` with `m` as a machine whose fleet API is at `url`.
fn with_member(config: TestConfig, m: &Member, url: &str) -> TestConfig {
    config.machine(
        m.id,
        &format!("Machine {}", m.id),
        &format!("fleet_url = \"{url}\"\nollama_url = \"{}\"", m.ollama.url()),
    )
}

/// Starts the machine of `config`, with the fleet token `token` in its data
/// folder.
async fn start(config: &TestConfig, token: &str) -> Running {
    clawfleet::token::store(&config.data_dir().join(clawfleet::token::TOKEN_FILE), token)
        .expect("write the token");
    config.start().await
}

async fn member(id: &'static str) -> Member {
    Member {
        id,
        port: support::free_closed_port(),
        ollama: FakeOllama::start().await,
    }
}

/// Waits (up to `secs`) for `check` to hold on `running`'s snapshot.
async fn until(running: &Running, what: &str, secs: u64, check: impl Fn(&Snapshot) -> bool) {
    support::until(running, secs, what, check).await;
}

fn state(snap: &Snapshot, id: &str) -> Option<PeerState> {
    snap.machine(id)
        .and_then(|m| m.peer.as_ref())
        .map(|p| p.state)
}

fn events(data: &Path) -> Vec<clawfleet::events::Event> {
    let log = clawfleet::events::EventLog::open(&data.join(clawfleet::events::EVENTS_FILE))
        .expect("open the event log");
    log.list(500, None).expect("read events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_see_each_other_and_a_stopped_one_goes_stale_offline_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (member("a").await, member("b").await, member("c").await);
    let all = [&a, &b, &c];
    let config = |me| config(me, dir.path(), &all, &[]);
    let ra = start(&config("a"), TOKEN).await;
    let rb = start(&config("b"), TOKEN).await;
    let rc = start(&config("c"), TOKEN).await;

    // Each sees the other two, with what they say about themselves.
    for (r, me) in [(&ra, "a"), (&rb, "b"), (&rc, "c")] {
        until(r, &format!("{me} to see both peers fresh"), 30, |s| {
            s.machines.iter().filter(|m| m.id != me).all(|m| {
                let p = m.peer.as_ref();
                p.is_some_and(|p| {
                    p.state == PeerState::Fresh && p.last_seen_at.is_some() && p.version.is_some()
                }) && m.cpu_percent.is_some()
                    && m.memory.is_some()
                    && m.online
            })
        })
        .await;
    }
    let snap = ra.snapshot.borrow().clone();
    let seen_b = snap.machine("b").unwrap();
    assert_eq!(seen_b.name, "Machine b", "our config's name stays");
    assert!(!seen_b.is_self);
    let pv = seen_b.peer.as_ref().unwrap();
    assert!(pv.latency_ms.is_some_and(|ms| ms >= 0.0));
    assert!(
        pv.clock_skew_secs.is_some_and(|s| s.abs() < 5.0),
        "one clock on one host: {pv:?}"
    );
    // The merged view is what the API serves, and /metrics exports it.
    let metrics = support::client()
        .get(format!("http://127.0.0.1:{}/metrics", a.port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clawfleet_peer_up{machine=\"b\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("peer"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metrics.contains("clawfleet_peer_state{machine=\"c\",state=\"fresh\"} 1"));

    // c stops (the machine, with its Ollama): stale (its last data kept),
    // then offline, in a and b.
    rc.shutdown().await;
    c.ollama.stop().await;
    until(&ra, "c stale in a", 20, |s| {
        state(s, "c") == Some(PeerState::Stale)
    })
    .await;
    let snap = ra.snapshot.borrow().clone();
    let seen_c = snap.machine("c").unwrap();
    assert!(seen_c.cpu_percent.is_some(), "stale data is still shown");
    assert!(seen_c.peer.as_ref().unwrap().error.is_some());
    until(&ra, "c offline in a", 20, |s| {
        state(s, "c") == Some(PeerState::Offline)
    })
    .await;
    until(&rb, "c offline in b", 20, |s| {
        state(s, "c") == Some(PeerState::Offline)
    })
    .await;
    assert!(!ra.snapshot.borrow().machine("c").unwrap().online);
    assert_eq!(
        state(&ra.snapshot.borrow(), "b"),
        Some(PeerState::Fresh),
        "b unaffected"
    );

    // c starts again on the same port: fresh again, by itself.
    c.ollama.restart().await;
    let rc = start(&config("c"), TOKEN).await;
    until(&ra, "c back in a", 20, |s| {
        state(s, "c") == Some(PeerState::Fresh)
    })
    .await;
    let said: Vec<String> = events(&dir.path().join("a"))
        .into_iter()
        .filter(|e| e.machine == "c" && e.kind == clawfleet::events::Kind::Machine)
        .map(|e| e.message)
        .collect();
    assert!(
        said.iter().any(|m| m.contains("Machine c is offline")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|m| m.contains("Machine c is back online")),
        "{said:?}"
    );
    for r in [ra, rb, rc] {
        r.shutdown().await;
    }
}

async fn post_heal(port: u16, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = support::client()
        .post(format!("http://127.0.0.1:{port}/fleet/v1/heal"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(120));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heal_asked_of_a_peer_runs_there_with_the_token_and_says_who_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (member("a").await, member("b").await);
    let all = [&a, &b];
    // b listens on this host's LAN address too, and a reaches it there: as
    // from another machine, so every request of a's needs the token.
    let lan = own_lan_address();
    let lan_port = support::free_closed_port();
    let a_config = with_member(
        config("a", dir.path(), &[&a], &[]),
        &b,
        &format!("http://{lan}:{lan_port}"),
    );
    let b_config = config("b", dir.path(), &all, &[]).set(
        "api",
        "listen",
        Toml::new(format!("[\"127.0.0.1:{}\", \"{lan}:{lan_port}\"]", b.port)),
    );
    let ra = start(&a_config, TOKEN).await;
    let rb = start(&b_config, TOKEN).await;
    until(&ra, "b fresh in a", 30, |s| {
        state(s, "b") == Some(PeerState::Fresh)
    })
    .await;
    until(&rb, "b's Ollama up in b", 30, |s| {
        s.local()
            .and_then(|m| m.ollama.as_ref())
            .is_some_and(|o| o.reachable)
    })
    .await;

    // Asked of a, for b: runs on b, under b's guards.
    let (status, outcome) = post_heal(
        a.port,
        Some(TOKEN),
        json!({"action": "restart-ollama", "machine": "b"}),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["success"], true, "{outcome}");
    let on_b = events(&dir.path().join("b"));
    let started = on_b
        .iter()
        .find(|e| e.kind == clawfleet::events::Kind::ActionStarted)
        .expect("b ran it");
    assert!(
        started
            .requested_by
            .as_deref()
            .is_some_and(|w| w.starts_with(&format!("peer a (api {lan})"))),
        "{started:?}"
    );
    // a shows it as its own: started and outcome, for machine b.
    let on_a = events(&dir.path().join("a"));
    let asked = on_a
        .iter()
        .find(|e| e.kind == clawfleet::events::Kind::ActionStarted && e.machine == "b")
        .expect("a recorded asking");
    assert!(
        asked.message.contains("Asked Machine b to restart Ollama"),
        "{asked:?}"
    );
    let done = on_a
        .iter()
        .find(|e| e.kind == clawfleet::events::Kind::Outcome && e.machine == "b")
        .expect("a recorded the outcome");
    assert_eq!(done.detail.as_ref().unwrap()["success"], true);
    assert_eq!(done.detail.as_ref().unwrap()["remote"], true);

    // Without the token, or with another: refused, at a and at b.
    let (status, body) = post_heal(
        a.port,
        None,
        json!({"action": "restart-ollama", "machine": "b"}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = post_heal(b.port, None, json!({"action": "restart-ollama"})).await;
    assert_eq!(status, 401);
    let (status, _) = post_heal(
        b.port,
        Some("not-the-fleet-token-at-all"),
        json!({"action": "restart-ollama"}),
    )
    .await;
    assert_eq!(status, 401);
    // Only the closed set, even for a peer; an unknown machine is a 404.
    let (status, body) = post_heal(
        a.port,
        Some(TOKEN),
        json!({"action": "rm -rf", "machine": "b"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_heal(
        a.port,
        Some(TOKEN),
        json!({"action": "restart-ollama", "machine": "zz"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // b gets another token: a's polls are refused, and it says what to do.
    rb.shutdown().await;
    let rb = start(&b_config, "another-token-of-another-fleet").await;
    until(&ra, "b refusing a's token", 20, |s| {
        s.machine("b")
            .and_then(|m| m.peer.as_ref())
            .and_then(|p| p.error.as_deref())
            .is_some_and(|e| e.contains("HTTP 401") && e.contains("clawfleet token set"))
    })
    .await;
    let (status, body) = post_heal(
        a.port,
        Some(TOKEN),
        json!({"action": "restart-ollama", "machine": "b"}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("refused (HTTP 401)"),
        "{body}"
    );
    ra.shutdown().await;
    rb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polls_go_through_the_socks5_server() {
    let Some(bin) = support::socks::microsocks_or_skip("polls_go_through_the_socks5_server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut socks = support::socks::Socks::start(&bin, dir.path());
    let (a, b) = (member("a").await, member("b").await);
    let all = [&a, &b];
    let ra = start(
        &config("a", dir.path(), &all, &[]).set("proxy", "socks5", socks.addr.to_string()),
        TOKEN,
    )
    .await;
    let rb = start(&config("b", dir.path(), &all, &[]), TOKEN).await;
    until(&ra, "b fresh in a, through SOCKS5", 30, |s| {
        state(s, "b") == Some(PeerState::Fresh)
    })
    .await;
    let log = socks.log();
    assert!(
        log.contains(&format!("127.0.0.1:{}", b.port)),
        "microsocks made the connections to b: {log}"
    );
    // The SOCKS5 server gone, b is no longer reachable from a.
    socks.stop();
    until(&ra, "b stale in a without the SOCKS5 server", 20, |s| {
        matches!(state(s, "b"), Some(PeerState::Stale | PeerState::Offline))
    })
    .await;
    ra.shutdown().await;
    rb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_that_answer_garbage_hang_send_without_end_or_lie_are_marked_and_never_stall_the_view()
 {
    let dir = tempfile::tempdir().unwrap();
    let a = member("a").await;
    let b = member("b").await;
    let garbage = GarbageServer::start(Garbage::Json(r#"{"not": "a snapshot"}"#.into())).await;
    let html = GarbageServer::start(Garbage::Html).await;
    let broken =
        GarbageServer::start(Garbage::Raw(b"this is not HTTP at all\r\n\r\n".to_vec())).await;
    let hung = HangingServer::start().await;
    // A body without end, cut off by the size limit.
    let huge = GarbageServer::start(Garbage::EndlessBody).await;
    // A real instance, known here under the wrong id.
    let rb = start(&config("b", dir.path(), &[&a, &b], &[]), TOKEN).await;
    let extra = [
        ("garbage", garbage.url()),
        ("html", html.url()),
        ("broken", broken.url()),
        ("hung", hung.url()),
        ("huge", huge.url()),
        ("liar", format!("http://127.0.0.1:{}", b.port)),
    ];
    let ra = start(&config("a", dir.path(), &[&a, &b], &extra), TOKEN).await;
    until(&ra, "b fresh while the others misbehave", 30, |s| {
        state(s, "b") == Some(PeerState::Fresh)
    })
    .await;
    let error_of = |s: &Snapshot, id: &str| {
        s.machine(id)
            .and_then(|m| m.peer.as_ref())
            .and_then(|p| p.error.clone())
            .unwrap_or_default()
    };
    until(&ra, "each misbehaving peer marked", 30, |s| {
        ["garbage", "html", "liar", "huge"]
            .iter()
            .all(|id| matches!(state(s, id), Some(PeerState::Faulty | PeerState::Offline)))
            && matches!(state(s, "hung"), Some(PeerState::Offline))
            && matches!(state(s, "broken"), Some(PeerState::Offline))
    })
    .await;
    let snap = ra.snapshot.borrow().clone();
    assert!(
        error_of(&snap, "garbage").contains("did not answer with a ClawFleet snapshot"),
        "{}",
        error_of(&snap, "garbage")
    );
    assert!(error_of(&snap, "html").contains("did not answer with a ClawFleet snapshot"));
    assert!(
        error_of(&snap, "liar").contains("says it is machine \"b\", not \"liar\""),
        "{}",
        error_of(&snap, "liar")
    );
    assert!(
        error_of(&snap, "huge").contains("sent more than 8388608 bytes"),
        "{}",
        error_of(&snap, "huge")
    );
    assert!(
        error_of(&snap, "hung").contains("no answer in 800 ms"),
        "{}",
        error_of(&snap, "hung")
    );
    assert!(!error_of(&snap, "broken").is_empty());
    for id in ["garbage", "html", "liar", "huge", "hung", "broken"] {
        let m = snap.machine(id).unwrap();
        assert!(!m.online, "{id} is not online");
        assert!(
            m.cpu_percent.is_none(),
            "{id}: nothing of its answer was taken"
        );
    }
    assert!(
        huge.bytes_sent() < 40 << 20,
        "the endless answer was cut off early: {} bytes sent",
        huge.bytes_sent()
    );
    // The view stays live: the API answers, and this machine's own figures
    // keep coming while the hung peer holds its polls.
    let before = ra
        .snapshot
        .borrow()
        .local()
        .and_then(|m| m.probed_at.system);
    until(&ra, "this machine's figures to move on", 10, |s| {
        s.local().and_then(|m| m.probed_at.system) != before
    })
    .await;
    let served = tokio::time::timeout(
        Duration::from_secs(10),
        support::client()
            .get(format!("http://127.0.0.1:{}/fleet/v1/snapshot", a.port))
            .send(),
    )
    .await
    .expect("the API answers while a peer hangs")
    .unwrap();
    assert_eq!(served.status(), 200);
    ra.shutdown().await;
    rb.shutdown().await;
}

/// This host's own non-loopback address: where "another machine" comes
/// from in a single-host test (the route to a documentation address; no
/// packet is sent).
fn own_lan_address() -> IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind a UDP socket");
    s.connect("192.0.2.1:9")
        .or_else(|_| s.connect("8.8.8.8:53"))
        .expect("this host has no route off loopback: the test needs a non-loopback address");
    let ip = s.local_addr().expect("local address").ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "no non-loopback address: {ip}"
    );
    ip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn from_another_machine_every_request_needs_the_token_and_host_and_origin_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let a = member("a").await;
    let lan = own_lan_address();
    let lan_port = support::free_closed_port();
    let ra = start(
        &config("a", dir.path(), &[&a], &[]).set(
            "api",
            "listen",
            Toml::new(format!("[\"127.0.0.1:{}\", \"{lan}:{lan_port}\"]", a.port)),
        ),
        TOKEN,
    )
    .await;
    let from_lan = format!("http://{lan}:{lan_port}");
    let get = |url: String, headers: Vec<(&'static str, String)>| async move {
        let mut req = support::client().get(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    };
    // Data needs the token from off this machine; loopback does not.
    let (status, body) = get(format!("{from_lan}/fleet/v1/snapshot"), vec![]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("need the fleet token"), "{body}");
    let (status, _) = get(format!("{from_lan}/fleet/v1/stream"), vec![]).await;
    assert_eq!(status, 401);
    let (status, _) = get(format!("{from_lan}/metrics"), vec![]).await;
    assert_eq!(status, 401);
    let (status, _) = get(
        format!("{from_lan}/fleet/v1/snapshot"),
        vec![("authorization", "Bearer wrong-token-wrong-token".into())],
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = get(
        format!("{from_lan}/fleet/v1/snapshot"),
        vec![("authorization", format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(
        format!("{from_lan}/fleet/v1/snapshot"),
        vec![("cookie", format!("theme=dark; clawfleet_token={TOKEN}"))],
    )
    .await;
    assert_eq!(status, 200, "the dashboard's cookie, for its streams");
    let (status, _) = get(
        format!("http://127.0.0.1:{}/fleet/v1/snapshot", a.port),
        vec![],
    )
    .await;
    assert_eq!(status, 200, "loopback reads without the token");
    // The page itself (code, no data) loads, so a phone can give the token.
    let (status, page) = get(format!("{from_lan}/"), vec![]).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>"), "{page}");
    // A wrong Host (DNS rebinding) and a foreign Origin (another site) are
    // refused even with the token.
    let (status, _) = get(
        format!("{from_lan}/fleet/v1/snapshot"),
        vec![
            ("authorization", format!("Bearer {TOKEN}")),
            ("host", "evil.example".into()),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = get(
        format!("{from_lan}/fleet/v1/snapshot"),
        vec![
            ("authorization", format!("Bearer {TOKEN}")),
            ("origin", "https://evil.example".into()),
        ],
    )
    .await;
    assert_eq!(status, 403);
    ra.shutdown().await;
}

#[test]
fn token_show_and_set_through_the_cli_never_take_it_from_argv() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", dir.path().join("data")),
    )
    .unwrap();
    let cli = |args: &[&str], stdin: &str| {
        support::output_with_stdin(support::clawfleet(&config).args(args), stdin)
    };
    let shown = cli(&["token", "show"], "");
    assert!(shown.status.success());
    let first = String::from_utf8(shown.stdout).unwrap();
    assert_eq!(first.trim().len(), 64, "made on first use");
    let set = cli(&["token", "set"], &format!("{TOKEN}\n"));
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(String::from_utf8_lossy(&set.stderr).contains("restart"));
    let shown = cli(&["token", "show"], "");
    assert_eq!(String::from_utf8(shown.stdout).unwrap().trim(), TOKEN);
    let bad = cli(&["token", "set"], "short\n");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("at least 16"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path: std::path::PathBuf = dir.path().join("data").join("fleet.token");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// The Costs tab's fleet totals add each peer's own figures, as fleet
/// polling brings its snapshot's `costs`; a past month has only ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleets_cost_totals_add_each_peers_own_figures() {
    use clawfleet::ledger::{Ledger, Record};
    use clawfleet::proxy::usage::Usage;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (member("a").await, member("b").await);
    let all = [&a, &b];
    let config = |me| config(me, dir.path(), &all, &[]);
    // b's own ledger: one Anthropic request, 500,000 input tokens of
    // claude-sonnet-5 at $2 per million: $1.00 on b, nothing on a.
    {
        let ledger = Ledger::open(&dir.path().join("b").join(daemon::LEDGER_FILE)).unwrap();
        ledger
            .handle()
            .record(Record {
                started_at: jiff::Timestamp::now(),
                client: "127.0.0.1".into(),
                api: "anthropic".into(),
                endpoint: "/v1/messages".into(),
                requested_model: Some("claude-sonnet-5".into()),
                machine: Some("anthropic".into()),
                fallback_depth: 0,
                stream: false,
                usage: Some(Usage {
                    input_tokens: 500_000,
                    output_tokens: 0,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                }),
                ttfb_ms: Some(10.0),
                duration_ms: 100.0,
                status: 200,
                outcome: "ok".into(),
                error: None,
            })
            .await
            .unwrap();
        ledger.close().unwrap();
    }
    let ra = start(&config("a"), TOKEN).await;
    let rb = start(&config("b"), TOKEN).await;
    until(&ra, "b's costs to reach a", 30, |s| {
        s.machine("b")
            .and_then(|m| m.costs.as_ref())
            .is_some_and(|c| c.month_to_date_usd > 0.0)
    })
    .await;

    let costs = |query: &'static str| {
        let url = format!("http://127.0.0.1:{}/fleet/v1/costs{query}", a.port);
        async move {
            let r = support::client().get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let v = costs("").await;
    let row = |v: &Value, id: &str| {
        v["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["machine"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(v["fleet"]["machines_reporting"], 2, "{}", v["fleet"]);
    assert_eq!(v["fleet"]["machines_total"], 2);
    assert_eq!(v["fleet"]["month_to_date_usd"], 1.0, "{}", v["fleet"]);
    assert_eq!(v["fleet"]["cloud_tokens"], 500_000);
    let (row_a, row_b) = (row(&v, "a"), row(&v, "b"));
    assert_eq!(row_a["report"]["month_to_date_usd"], 0.0);
    assert!(row_a["summary"].is_null());
    assert!(row_b["report"].is_null());
    assert_eq!(row_b["summary"]["month_to_date_usd"], 1.0);
    assert!(
        row_b["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("as Machine b computed it at ")),
        "{row_b}"
    );

    // Peers send only the current month: an earlier one has our figures
    // alone, and b's row says why it is empty.
    let v = costs("?month=2020-01").await;
    assert_eq!(v["fleet"]["machines_reporting"], 1);
    let row_b = row(&v, "b");
    assert!(row_b["summary"].is_null());
    assert_eq!(row_b["note"], clawfleet::cost::PEER_PAST_NOTE);

    ra.shutdown().await;
    rb.shutdown().await;
}
