//! The fleet: polling each peer's fleet API for its snapshot, and asking a
//! peer to heal.
//!
//! Every machine with a `fleet_url` gets its own polling loop, so one slow
//! or hung peer never delays the others; a semaphore bounds how many polls
//! run at once. A peer's answer is untrusted input: it is read with a size
//! limit and a time limit, parsed into a [`Snapshot`], and must describe the
//! machine we asked (its `this_machine` is the id we know it by). What it
//! says about itself is merged into its entry; its state (`fresh`, `stale`,
//! `offline`, `faulty`) and "last seen" use this machine's clock only.
//!
//! Requests carry this machine's fleet token; every machine of a fleet has
//! the same one.

use crate::every::Every;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{Config, FleetConfig, MachineConfig};
use crate::events::{Event, EventLog, Kind, Severity};
use crate::fleet::Fleet;
use crate::publish::Publisher;
use crate::snapshot::{MachineSnapshot, PeerState, Snapshot};

/// The header that says which machine forwarded a heal.
pub const FROM_HEADER: &str = "x-clawfleet-from";
/// How long a peer may take to run a heal it was asked for (its command
/// time limit and verification included).
pub const REMOTE_HEAL_TIMEOUT: Duration = Duration::from_secs(180);
/// The largest answer to a heal request.
const HEAL_ANSWER_LIMIT: usize = 256 * 1024;

/// Why a poll did not give a snapshot.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollError {
    /// No connection, or it broke.
    #[error("not reachable: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("no answer in {0} ms")]
    Timeout(u64),
    /// It answered with an HTTP error.
    #[error("answered HTTP {status}: {message}")]
    Refused {
        /// The status.
        status: u16,
        /// What it said, or what to do.
        message: String,
    },
    /// It answered, but not with a snapshot of itself.
    #[error("{0}")]
    Faulty(String),
}

impl PollError {
    fn faulty(&self) -> bool {
        matches!(self, PollError::Faulty(_))
    }
}

/// What one poll brought back.
#[derive(Debug, Clone)]
pub struct Polled {
    /// The peer's entry for itself.
    pub machine: MachineSnapshot,
    /// Its ClawFleet version.
    pub version: String,
    /// Round trip.
    pub latency: Duration,
    /// Its clock minus ours, in seconds, when it said when it served.
    pub skew_secs: Option<f64>,
}

/// A peer's polling history, as far as its state needs it.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// Polls in a row that failed.
    pub failures: u32,
    /// When the last good snapshot arrived (monotonic).
    pub last_seen: Option<Instant>,
    /// When polling began (monotonic), for a peer never seen.
    pub since: Option<Instant>,
    /// The last poll got an answer that was not a snapshot of the peer.
    pub faulty: bool,
}

/// A peer's state from its track: fresh after a good poll; faulty when it
/// answered garbage; stale after `stale_after_polls` failures; offline when
/// not heard from for `offline_after_secs` (counting from the first poll
/// for a peer never seen).
pub fn judge(track: &Track, now: Instant, cfg: &FleetConfig) -> PeerState {
    let offline_after = Duration::from_secs(cfg.offline_after_secs);
    if track.failures == 0 {
        return if track.last_seen.is_some() {
            PeerState::Fresh
        } else {
            PeerState::Waiting
        };
    }
    let heard = track.last_seen.or(track.since);
    if heard.is_some_and(|t| now.saturating_duration_since(t) >= offline_after) {
        return PeerState::Offline;
    }
    if track.faulty {
        return PeerState::Faulty;
    }
    if track.last_seen.is_none() {
        // Never answered: there is no data to call stale.
        return if track.failures >= cfg.stale_after_polls {
            PeerState::Offline
        } else {
            PeerState::Waiting
        };
    }
    if track.failures >= cfg.stale_after_polls {
        PeerState::Stale
    } else {
        PeerState::Fresh
    }
}

/// Checks a peer's answer: a snapshot, of the machine we asked, within
/// sane bounds. Returns its own entry.
pub fn accept(
    body: &[u8],
    expected_id: &str,
    url: &str,
) -> Result<(Snapshot, MachineSnapshot), PollError> {
    let snap: Snapshot = serde_json::from_slice(body).map_err(|e| {
        PollError::Faulty(format!(
            "{url} did not answer with a ClawFleet snapshot ({e}); it began {:?}",
            crate::net::preview(body, 60)
        ))
    })?;
    if snap.this_machine != expected_id {
        return Err(PollError::Faulty(format!(
            "{url} says it is machine {:?}, not {expected_id:?}: check that machine's fleet_url",
            crate::net::preview(snap.this_machine.as_bytes(), 40)
        )));
    }
    if snap.machines.len() > 1024 {
        return Err(PollError::Faulty(format!(
            "{url} sent {} machines: more than any fleet has",
            snap.machines.len()
        )));
    }
    let Some(me) = snap
        .machines
        .iter()
        .find(|m| m.id == expected_id && m.is_self)
        .cloned()
    else {
        return Err(PollError::Faulty(format!(
            "{url} sent a snapshot without an entry for itself"
        )));
    };
    Ok((snap, me))
}

/// Puts what a peer says about itself into our entry for it. Our config's
/// name and role stay; its Ollama stays as probed from here when we probe
/// one (the proxy routes by what it can reach from here), else its own
/// report is shown.
pub fn merge(ours: &mut MachineSnapshot, theirs: MachineSnapshot, keep_our_ollama: bool) {
    let MachineSnapshot {
        hostname,
        cpu_percent,
        cpu_cores,
        memory,
        disks,
        load,
        uptime_secs,
        temperatures,
        process_count,
        zombies,
        ollama,
        services,
        pm2,
        pm2_state,
        openclaw,
        probed_at,
        costs,
        ..
    } = theirs;
    if hostname.is_some() {
        ours.hostname = hostname;
    }
    ours.cpu_percent = cpu_percent;
    ours.cpu_cores = cpu_cores;
    ours.memory = memory;
    ours.disks = disks;
    ours.load = load;
    ours.uptime_secs = uptime_secs;
    ours.temperatures = temperatures;
    ours.process_count = process_count;
    ours.zombies = zombies;
    ours.services = services;
    ours.pm2 = pm2;
    ours.pm2_state = pm2_state;
    ours.openclaw = openclaw;
    ours.costs = costs;
    ours.probed_at.system = probed_at.system;
    ours.probed_at.processes = probed_at.processes;
    ours.probed_at.services = probed_at.services;
    ours.probed_at.pm2 = probed_at.pm2;
    ours.probed_at.openclaw = probed_at.openclaw;
    if !keep_our_ollama {
        ours.ollama = ollama;
        ours.probed_at.ollama = probed_at.ollama;
    }
}

/// Polls the peers and forwards heals to them.
pub struct Peers {
    cfg: FleetConfig,
    fleet: Arc<Fleet>,
    client: reqwest::Client,
    token: Arc<String>,
    publisher: Publisher,
    events: Option<EventLog>,
    permits: Arc<Semaphore>,
}

impl Peers {
    /// Peers of `fleet`, polled with `token`, published through `publisher`.
    pub fn new(
        config: &Config,
        fleet: Arc<Fleet>,
        token: Arc<String>,
        publisher: Publisher,
        events: Option<EventLog>,
    ) -> Result<Arc<Self>, crate::error::Error> {
        let cfg = config.fleet.clone();
        let connect = Duration::from_millis(cfg.poll_timeout_ms.max(100));
        Ok(Arc::new(Self {
            permits: Arc::new(Semaphore::new(cfg.max_concurrent_polls.max(1))),
            // Through SOCKS5 when `[proxy] socks5` is set (Tailscale userspace
            // networking), as the proxy reaches peers.
            client: crate::net::upstream_client(connect, config.proxy.socks5.as_deref())?,
            cfg,
            fleet,
            token,
            publisher,
            events,
        }))
    }

    /// The peers that are polled: those with a `fleet_url`.
    fn polled(&self) -> impl Iterator<Item = (&MachineConfig, &str)> {
        self.fleet
            .peers
            .iter()
            .filter_map(|m| m.fleet_url.as_deref().map(|u| (m, u.trim_end_matches('/'))))
    }

    /// Polls every peer until `cancel` fires: one loop per peer.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for (peer, url) in self.polled() {
            let this = self.clone();
            let peer = peer.clone();
            let url = url.to_owned();
            let cancel = cancel.clone();
            let span = info_span!("peer", machine = %peer.id);
            tasks.spawn(async move { this.poll_loop(peer, url, cancel).await }.instrument(span));
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done
                && e.is_panic()
            {
                warn!("a peer's polling loop panicked: {e}");
            }
        }
    }

    async fn poll_loop(
        self: Arc<Self>,
        peer: MachineConfig,
        url: String,
        cancel: CancellationToken,
    ) {
        let mut every = Every::new(
            Duration::from_secs(self.cfg.poll_interval_secs.max(1)),
            &cancel,
        );
        let mut track = Track {
            since: Some(Instant::now()),
            ..Track::default()
        };
        let mut state = PeerState::Waiting;
        let keep_our_ollama = peer.ollama_url.is_some();
        while every.tick().await {
            let Some(polled) = every.step(self.poll_once(&peer.id, &url)).await else {
                return;
            };
            let now = Instant::now();
            let error = match &polled {
                Ok(_) => {
                    track.failures = 0;
                    track.faulty = false;
                    track.last_seen = Some(now);
                    None
                }
                Err(e) => {
                    track.failures = track.failures.saturating_add(1);
                    track.faulty = e.faulty();
                    debug!("poll failed: {e}");
                    Some(e.to_string())
                }
            };
            let next = judge(&track, now, &self.cfg);
            if next != state {
                self.said(&peer, state, next, error.as_deref(), &track, now);
                state = next;
            }
            let failures = track.failures;
            self.publisher.publish_machine(&peer.id, |m| {
                let mut view = m.peer.take().unwrap_or_default();
                view.state = next;
                view.failures_in_row = failures;
                view.error = error;
                m.probed_at.peer = Some(Timestamp::now());
                match polled {
                    Ok(p) => {
                        merge(m, p.machine, keep_our_ollama);
                        view.last_seen_at = Some(Timestamp::now());
                        view.latency_ms = Some(p.latency.as_secs_f64() * 1000.0);
                        view.clock_skew_secs = p.skew_secs;
                        view.version = Some(p.version);
                        m.fleet_api_reachable = Some(true);
                    }
                    Err(_) => m.fleet_api_reachable = Some(false),
                }
                m.peer = Some(view);
            });
        }
    }

    /// Writes an event when a peer goes offline or comes back.
    fn said(
        &self,
        peer: &MachineConfig,
        before: PeerState,
        now_state: PeerState,
        error: Option<&str>,
        track: &Track,
        now: Instant,
    ) {
        let event = match (before, now_state) {
            (b, PeerState::Offline) if b != PeerState::Offline => {
                let quiet = track
                    .last_seen
                    .or(track.since)
                    .map_or(0, |t| now.saturating_duration_since(t).as_secs());
                Event::new(
                    Kind::Machine,
                    &peer.id,
                    Severity::Warning,
                    format!(
                        "{} is offline: not heard from for {quiet} s ({})",
                        peer.name,
                        error.unwrap_or("no answer")
                    ),
                )
            }
            (PeerState::Offline, PeerState::Fresh) => Event::new(
                Kind::Machine,
                &peer.id,
                Severity::Info,
                format!("{} is back online", peer.name),
            ),
            (_, PeerState::Faulty) => Event::new(
                Kind::Machine,
                &peer.id,
                Severity::Warning,
                format!(
                    "{} answers, but not with its snapshot: {}",
                    peer.name,
                    error.unwrap_or("?")
                ),
            ),
            _ => {
                info!(
                    from = before.as_str(),
                    to = now_state.as_str(),
                    "peer state"
                );
                return;
            }
        };
        info!(
            from = before.as_str(),
            to = now_state.as_str(),
            "{}",
            event.message
        );
        let event = event.subject(format!("machine:{}", peer.id));
        if let Some(log) = &self.events
            && let Err(e) = log.record(event)
        {
            warn!("cannot record a peer's state: {e}");
        }
    }

    /// One poll: a permit, then `GET {url}/fleet/v1/snapshot` with the
    /// token, in time and within the size limit.
    pub async fn poll_once(&self, id: &str, url: &str) -> Result<Polled, PollError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PollError::Unreachable("shutting down".to_owned()))?;
        let limit = Duration::from_millis(self.cfg.poll_timeout_ms);
        let sent = Timestamp::now();
        let t0 = Instant::now();
        let endpoint = format!("{url}/fleet/v1/snapshot");
        let fetch = async {
            let response = self
                .client
                .get(&endpoint)
                .bearer_auth(self.token.as_str())
                .header(FROM_HEADER, self.fleet.this.id.as_str())
                .send()
                .await
                .map_err(|e| PollError::Unreachable(crate::net::describe(&e)))?;
            let status = response.status();
            if !status.is_success() {
                let body = crate::net::read_body_limited(response, 4096)
                    .await
                    .unwrap_or_default();
                let message = if status == reqwest::StatusCode::UNAUTHORIZED {
                    "it refused our fleet token: give every machine the same one (`clawfleet token show` on one, `clawfleet token set` on the others)".to_owned()
                } else {
                    crate::net::preview(&body, 200)
                };
                return Err(PollError::Refused {
                    status: status.as_u16(),
                    message,
                });
            }
            crate::net::read_body_limited(response, self.cfg.max_snapshot_bytes)
                .await
                .map_err(|e| match e {
                    crate::net::BodyError::TooLarge { limit } => PollError::Faulty(format!(
                        "{endpoint} sent more than {limit} bytes ([fleet] max_snapshot_bytes)"
                    )),
                    other => PollError::Unreachable(other.to_string()),
                })
        };
        let body = tokio::time::timeout(limit, fetch)
            .await
            .map_err(|_| PollError::Timeout(self.cfg.poll_timeout_ms))??;
        let latency = t0.elapsed();
        let (snap, machine) = accept(&body, id, url)?;
        let skew_secs = snap.served_at.map(|at| {
            // Their clock at about the middle of the round trip.
            let middle = sent.as_millisecond() + (latency.as_millis() as i64) / 2;
            (at.as_millisecond() - middle) as f64 / 1000.0
        });
        Ok(Polled {
            machine,
            version: crate::net::preview(snap.clawfleet_version.as_bytes(), 40),
            latency,
            skew_secs,
        })
    }

    /// Asks peer `machine` to run a heal: the body as the API takes it,
    /// this machine's token, and who asked here. Records the request and
    /// its outcome in this machine's event log too (so the tray notifies).
    pub async fn heal(
        &self,
        machine: &str,
        action: &crate::action::Action,
        dry_run: bool,
        who: &str,
    ) -> Result<serde_json::Value, RemoteError> {
        let Some((peer, url)) = self.polled().find(|(m, _)| m.id == machine) else {
            return Err(RemoteError::Unknown(machine.to_owned()));
        };
        let body = serde_json::json!({
            "action": action.name(),
            "target": action.target(),
            "dry_run": dry_run,
        });
        let label = action.describe();
        if !dry_run {
            self.record(
                Event::new(
                    Kind::ActionStarted,
                    &peer.id,
                    Severity::Info,
                    format!("Asked {} to {}", peer.name, lowercase_first(&label)),
                )
                .action(action.name())
                .subject(action.subject())
                .requested_by(Some(who.to_owned())),
            );
        }
        let span = info_span!("remote_heal", machine = %peer.id, action = action.name());
        let answer = async {
            let response = self
                .client
                .post(format!("{url}/fleet/v1/heal"))
                .bearer_auth(self.token.as_str())
                .header(FROM_HEADER, self.fleet.this.id.as_str())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .timeout(REMOTE_HEAL_TIMEOUT)
                .send()
                .await
                .map_err(|e| RemoteError::Unreachable {
                    machine: peer.name.clone(),
                    why: crate::net::describe(&e),
                })?;
            let status = response.status();
            let bytes = crate::net::read_body_limited(response, HEAL_ANSWER_LIMIT)
                .await
                .map_err(|e| RemoteError::Unreachable {
                    machine: peer.name.clone(),
                    why: e.to_string(),
                })?;
            let json: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| RemoteError::Faulty {
                    machine: peer.name.clone(),
                    why: format!(
                        "its answer is not JSON ({e}): {}",
                        crate::net::preview(&bytes, 80)
                    ),
                })?;
            if status.is_success() {
                Ok(json)
            } else {
                let said = json
                    .get("error")
                    .and_then(serde_json::Value::as_str)
                    .map_or_else(
                        || crate::net::preview(&bytes, 200),
                        |s| crate::net::preview(s.as_bytes(), 300),
                    );
                Err(RemoteError::Refused {
                    machine: peer.name.clone(),
                    status: status.as_u16(),
                    said,
                })
            }
        }
        .instrument(span)
        .await;
        if !dry_run {
            let (success, message, detail) = match &answer {
                Ok(json) => (
                    json.get("success")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false),
                    json.get("message")
                        .and_then(serde_json::Value::as_str)
                        .map_or_else(
                            || format!("{label} on {}", peer.name),
                            |s| crate::net::preview(s.as_bytes(), 500),
                        ),
                    json.clone(),
                ),
                Err(e) => (
                    false,
                    e.to_string(),
                    serde_json::json!({ "error": e.to_string() }),
                ),
            };
            let mut detail = detail;
            if let Some(obj) = detail.as_object_mut() {
                obj.insert("success".into(), serde_json::Value::Bool(success));
                obj.insert("remote".into(), serde_json::Value::Bool(true));
            }
            self.record(
                Event::new(
                    Kind::Outcome,
                    &peer.id,
                    if success {
                        Severity::Info
                    } else {
                        Severity::Warning
                    },
                    message,
                )
                .action(action.name())
                .subject(action.subject())
                .detail(detail)
                .requested_by(Some(who.to_owned())),
            );
        }
        answer
    }

    fn record(&self, event: Event) {
        if let Some(log) = &self.events
            && let Err(e) = log.record(event)
        {
            warn!("cannot record a remote heal: {e}");
        }
    }
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Why a heal asked of a peer did not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    /// No such peer, or it has no `fleet_url`.
    #[error("no peer {0:?} with a fleet_url in the config")]
    Unknown(String),
    /// It could not be reached.
    #[error("{machine} could not be reached: {why}")]
    Unreachable {
        /// The peer's name.
        machine: String,
        /// Why.
        why: String,
    },
    /// It answered with an error.
    #[error("{machine} refused (HTTP {status}): {said}")]
    Refused {
        /// The peer's name.
        machine: String,
        /// Its status.
        status: u16,
        /// What it said.
        said: String,
    },
    /// It answered something that is not an answer.
    #[error("{machine}: {why}")]
    Faulty {
        /// The peer's name.
        machine: String,
        /// What was wrong.
        why: String,
    },
}

impl RemoteError {
    /// The HTTP status the asking API answers with.
    pub fn status(&self) -> u16 {
        match self {
            RemoteError::Unknown(_) => 404,
            RemoteError::Refused { status, .. }
                if (400..500).contains(status) && *status != 401 =>
            {
                *status
            }
            _ => 502,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FleetConfig {
        FleetConfig {
            stale_after_polls: 2,
            offline_after_secs: 30,
            ..FleetConfig::default()
        }
    }

    #[test]
    fn states_follow_the_polls_and_our_clock_only() {
        let t0 = Instant::now();
        let s = |failures, seen: Option<u64>, faulty, at: u64| {
            judge(
                &Track {
                    failures,
                    last_seen: seen.map(|x| t0 + Duration::from_secs(x)),
                    since: Some(t0),
                    faulty,
                },
                t0 + Duration::from_secs(at),
                &cfg(),
            )
        };
        assert_eq!(s(0, None, false, 0), PeerState::Waiting);
        assert_eq!(s(0, Some(5), false, 5), PeerState::Fresh);
        assert_eq!(
            s(1, Some(5), false, 10),
            PeerState::Fresh,
            "one missed poll is not stale"
        );
        assert_eq!(s(2, Some(5), false, 15), PeerState::Stale);
        assert_eq!(s(5, Some(5), false, 34), PeerState::Stale);
        assert_eq!(s(6, Some(5), false, 35), PeerState::Offline);
        assert_eq!(s(1, Some(5), true, 10), PeerState::Faulty);
        assert_eq!(
            s(9, Some(5), true, 40),
            PeerState::Offline,
            "garbage for long enough is offline"
        );
        assert_eq!(s(1, None, false, 5), PeerState::Waiting);
        assert_eq!(
            s(2, None, false, 10),
            PeerState::Offline,
            "never seen: offline, not stale"
        );
        assert_eq!(s(0, Some(40), false, 40), PeerState::Fresh, "back");
    }

    fn peer_snapshot(id: &str) -> Snapshot {
        Snapshot {
            this_machine: id.into(),
            clawfleet_version: "0.1.0".into(),
            machines: vec![
                MachineSnapshot {
                    id: id.into(),
                    name: "Their name".into(),
                    is_self: true,
                    cpu_percent: Some(12.5),
                    hostname: Some("mini.local".into()),
                    ..MachineSnapshot::default()
                },
                MachineSnapshot {
                    id: "other".into(),
                    ..MachineSnapshot::default()
                },
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_peer_must_answer_with_a_snapshot_of_itself() {
        let good = serde_json::to_vec(&peer_snapshot("macmini")).unwrap();
        let (_, me) = accept(&good, "macmini", "http://m").unwrap();
        assert_eq!(me.cpu_percent, Some(12.5));
        let e = accept(&good, "msi", "http://m").unwrap_err();
        assert!(
            e.to_string()
                .contains("says it is machine \"macmini\", not \"msi\""),
            "{e}"
        );
        for garbage in [
            &b"<html>oops</html>"[..],
            b"{}",
            b"[1,2]",
            b"{\"machines\": 5}",
            b"",
        ] {
            let e = accept(garbage, "macmini", "http://m").unwrap_err();
            assert!(e.faulty(), "{e}");
            assert!(
                e.to_string()
                    .contains("did not answer with a ClawFleet snapshot"),
                "{e}"
            );
        }
        let mut not_self = peer_snapshot("macmini");
        not_self.machines[0].is_self = false;
        let e = accept(&serde_json::to_vec(&not_self).unwrap(), "macmini", "u").unwrap_err();
        assert!(e.to_string().contains("without an entry for itself"), "{e}");
    }

    #[test]
    fn merging_keeps_our_names_and_our_view_of_its_ollama() {
        let mut ours = MachineSnapshot {
            id: "macmini".into(),
            name: "Mac Mini".into(),
            role: "server".into(),
            ollama: Some(crate::snapshot::OllamaStatus {
                url: "http://100.1.1.1:11434".into(),
                reachable: true,
                ..Default::default()
            }),
            ..MachineSnapshot::default()
        };
        let mut theirs = peer_snapshot("macmini").machines.remove(0);
        theirs.ollama = Some(crate::snapshot::OllamaStatus {
            url: "http://127.0.0.1:11434".into(),
            ..Default::default()
        });
        merge(&mut ours, theirs.clone(), true);
        assert_eq!(ours.name, "Mac Mini");
        assert_eq!(ours.role, "server");
        assert_eq!(ours.cpu_percent, Some(12.5));
        assert_eq!(ours.hostname.as_deref(), Some("mini.local"));
        assert_eq!(
            ours.ollama.as_ref().map(|o| o.url.as_str()),
            Some("http://100.1.1.1:11434")
        );
        merge(&mut ours, theirs, false);
        assert_eq!(
            ours.ollama.as_ref().map(|o| o.url.as_str()),
            Some("http://127.0.0.1:11434")
        );
    }

    #[test]
    fn remote_errors_map_to_statuses() {
        assert_eq!(RemoteError::Unknown("x".into()).status(), 404);
        let refused = |status| RemoteError::Refused {
            machine: "m".into(),
            status,
            said: String::new(),
        };
        assert_eq!(refused(409).status(), 409);
        assert_eq!(
            refused(401).status(),
            502,
            "their refusal of our token is not the caller's 401"
        );
        assert_eq!(refused(500).status(), 502);
    }
}
