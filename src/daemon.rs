//! Wires the engine together: resolves the fleet, starts the probes and the
//! API listeners, and shuts everything down cleanly.
//!
//! While running it leaves `daemon.json` in the data folder (pid, API
//! addresses) so `clawfleet status` finds it even on a non-default port; the
//! file is removed on a clean shutdown.

use crate::every::Every;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{self, AllowedHosts, ApiState};
use crate::config::Config;
use crate::cost::Settings;
use crate::cost::service::CostService;
use crate::error::Error;
use crate::events::EventLog;
use crate::fleet::Fleet;
use crate::heal::watcher::Watcher;
use crate::ledger::{Ledger, LedgerHandle, Retention};
use crate::probe::Collector;
use crate::proxy::{self, server::Proxy};
use crate::publish::{Publisher, SnapshotRx};
use crate::snapshot::ProxyView;
use crate::{net, server};

/// Name of the runtime file in the data folder.
pub const RUNTIME_FILE: &str = "daemon.json";

/// What a running daemon tells other processes about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Its process id.
    pub pid: u32,
    /// Where its fleet API listens.
    pub api: Vec<SocketAddr>,
    /// Its version.
    pub version: String,
    /// When it started.
    pub started_at: jiff::Timestamp,
    /// Where its inference proxy listens (absent in a file of an older
    /// ClawFleet).
    #[serde(default)]
    pub proxy: Option<SocketAddr>,
}

impl RuntimeInfo {
    /// Reads the runtime file of a daemon using `data_dir`, if any.
    pub fn read(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(data_dir.join(RUNTIME_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// A started engine.
pub struct Running {
    /// The addresses the API is bound to.
    pub api_addrs: Vec<SocketAddr>,
    /// The address the inference proxy is bound to.
    pub proxy_addr: SocketAddr,
    /// The live snapshot.
    pub snapshot: SnapshotRx,
    /// The cost engine: views of any month, and alarm events.
    pub costs: Arc<CostService>,
    /// The self-healing watcher (its event log, heal requests).
    pub watcher: Arc<Watcher>,
    /// The peers: their polling, and heals asked of them.
    pub peers: Arc<crate::peers::Peers>,
    /// The fleet token (for the tray's settings; never logged).
    pub token: Arc<String>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    runtime_file: Option<PathBuf>,
    ledger: Option<Ledger>,
}

/// The OS host name.
pub fn os_hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "localhost".to_owned())
}

/// Starts the engine on `config`: binds every API address (failing if any
/// cannot be bound), then starts the probes.
pub async fn start(config: Config) -> Result<Running, Error> {
    start_from(config, &crate::config::Source::Embedded).await
}

/// [`start`], saying where the config came from (shown in the dashboard's
/// settings).
pub async fn start_from(config: Config, source: &crate::config::Source) -> Result<Running, Error> {
    let config = Arc::new(config);
    let fleet = Arc::new(Fleet::resolve(&config, &os_hostname()));
    for notice in &fleet.notices {
        warn!("{notice}");
    }
    info!(
        this_machine = %fleet.this.id,
        identified = ?fleet.identified,
        peers = fleet.peers.len(),
        "fleet resolved"
    );

    let mut listeners = Vec::new();
    for addr in config.api.listen.addrs() {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        listeners.push((listener, local));
    }
    let api_addrs: Vec<SocketAddr> = listeners.iter().map(|(_, a)| *a).collect();
    let proxy_listen: SocketAddr = config.proxy.listen.parse().map_err(|_| Error::Bind {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source: std::io::Error::other(format!(
            "[proxy] listen = {:?} is not an address",
            config.proxy.listen
        )),
    })?;
    let proxy_listener = TcpListener::bind(proxy_listen)
        .await
        .map_err(|source| Error::Bind {
            addr: proxy_listen,
            source,
        })?;
    let proxy_addr = proxy_listener.local_addr().map_err(|source| Error::Bind {
        addr: proxy_listen,
        source,
    })?;

    let ledger_path = config.data_dir().join(LEDGER_FILE);
    let retention = Retention {
        max_age_days: config.proxy.ledger_retention_days,
    };
    let ledger = tokio::task::spawn_blocking(move || Ledger::open_with(&ledger_path, retention))
        .await
        .map_err(|e| Error::Serve(std::io::Error::other(e)))??;

    let collector = Arc::new(Collector::new(
        config.clone(),
        fleet.clone(),
        net::client()?,
    ));
    let snapshot = collector.subscribe();
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(collector.clone().run(cancel.child_token()));

    let costs = CostService::new(
        Settings::from_config(&config, &fleet.this, None),
        fleet.clone(),
    );
    // Subscribed before the first cycle: an alarm raised at start is stored
    // as raised and would never be sent again.
    let cost_events = costs.subscribe();
    tasks.spawn(costs.clone().run(
        collector.publisher(),
        snapshot.clone(),
        std::time::Duration::from_secs(config.costs.interval_secs.max(1)),
        cancel.child_token(),
    ));

    // Self-healing: the event log, the fleet token, the watcher.
    let data_dir = config.data_dir();
    let events_path = data_dir.join(crate::events::EVENTS_FILE);
    let events = tokio::task::spawn_blocking(move || EventLog::open(&events_path))
        .await
        .map_err(|e| Error::Serve(std::io::Error::other(e)))??;
    let token_path = data_dir.join(crate::token::TOKEN_FILE);
    let token = Arc::new(crate::token::load_or_create(&token_path)?);
    let heal_client = net::client()?;
    let watcher = Watcher::new(
        config.clone(),
        &fleet.this,
        events.clone(),
        snapshot.clone(),
        heal_client.clone(),
    );
    tasks.spawn(watcher.clone().run(
        std::time::Duration::from_secs(config.heal.interval_secs.max(1)),
        cancel.child_token(),
    ));
    let summarizer = config.heal.summary_model.as_ref().map(|model| {
        let mut at = proxy_addr;
        if at.ip().is_unspecified() {
            at.set_ip(match at.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        crate::heal::healer::Summarizer {
            client: heal_client.clone(),
            proxy: format!("http://{at}"),
            model: model.clone(),
        }
    });
    tasks.spawn(crate::heal::healer::run(
        watcher.clone(),
        std::time::Duration::from_secs(config.heal.healer_interval_secs.max(1)),
        summarizer,
        cancel.child_token(),
    ));
    tasks.spawn(forward_cost_events(
        cost_events,
        events.clone(),
        cancel.child_token(),
    ));

    let peers = crate::peers::Peers::new(
        &config,
        fleet.clone(),
        token.clone(),
        collector.publisher(),
        Some(events.clone()),
    )?;
    tasks.spawn(peers.clone().run(cancel.child_token()));

    let allowed = Arc::new(AllowedHosts::new(&config, &fleet, &api_addrs));
    let history = crate::history::History::default();
    tasks.spawn(history.clone().run(snapshot.clone(), cancel.child_token()));
    let info = Arc::new(crate::api::Info {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config: source.to_string(),
        data_dir: data_dir.display().to_string(),
        this_machine: fleet.this.id.clone(),
        token_file: token_path.display().to_string(),
    });
    let state = ApiState {
        history: Some(history),
        info,
        snapshot: snapshot.clone(),
        shutdown: cancel.clone(),
        costs: Some(costs.clone()),
        heal: Some(crate::api::HealState {
            watcher: watcher.clone(),
            token: token.clone(),
            peers: Some(peers.clone()),
            machines: fleet.machines().map(|m| m.id.clone()).collect(),
        }),
    };
    let app = api::router(state, allowed);
    for (listener, addr) in listeners {
        let app = app.clone();
        let stop = cancel.clone();
        tasks.spawn(async move {
            info!(%addr, "fleet API listening on http://{addr}");
            server::serve(listener, app, server::Limits::default(), stop).await;
        });
    }

    let proxy = Arc::new(Proxy::new(
        config.clone(),
        fleet.clone(),
        snapshot.clone(),
        ledger.handle(),
    )?);
    let proxy_allowed = Arc::new(
        AllowedHosts::new(&config, &fleet, &[proxy_addr])
            .only_origins(&config.proxy.allowed_origins),
    );
    let proxy_app = proxy::server::router(proxy.clone(), proxy_allowed);
    let limits = server::Limits {
        header_read_timeout: std::time::Duration::from_secs(config.proxy.header_read_timeout_secs),
        max_header_bytes: config.proxy.max_header_bytes,
        max_connections: config.proxy.max_connections,
        ..server::Limits::default()
    };
    let stop = cancel.clone();
    tasks.spawn(async move {
        info!(addr = %proxy_addr, "{}", proxy::server::describe_listener(proxy_addr));
        server::serve(proxy_listener, proxy_app, limits, stop).await;
    });
    tasks.spawn(publish_proxy_figures(
        collector.publisher(),
        proxy,
        ledger.handle(),
        proxy_addr,
        cancel.clone(),
    ));

    let runtime_file = write_runtime_file(&config.data_dir(), &api_addrs, proxy_addr);
    Ok(Running {
        api_addrs,
        proxy_addr,
        snapshot,
        costs,
        watcher,
        peers,
        token,
        cancel,
        tasks,
        runtime_file,
        ledger: Some(ledger),
    })
}

/// Cost alarms go into the event log with everything else.
async fn forward_cost_events(
    mut rx: tokio::sync::broadcast::Receiver<crate::cost::CostEvent>,
    events: EventLog,
    cancel: CancellationToken,
) {
    use crate::events::{Event, Kind, Severity};
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let e = tokio::select! {
            _ = cancel.cancelled() => return,
            e = rx.recv() => e,
        };
        match e {
            Ok(c) => {
                let event = Event::new(
                    Kind::CostAlarm,
                    c.machine.as_deref().unwrap_or("fleet"),
                    if c.active { Severity::Warning } else { Severity::Info },
                    c.message.clone(),
                )
                .subject(c.alarm.clone())
                .detail(serde_json::json!({"kind": c.kind, "active": c.active, "value": c.value, "threshold": c.threshold}));
                let log = events.clone();
                let _ = tokio::task::spawn_blocking(move || log.note(event)).await;
            }
            Err(RecvError::Lagged(n)) => warn!("{n} cost events were not copied to the event log"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// The ledger file in the data folder (the ledger names it).
pub use crate::ledger::LEDGER_FILE;

/// Every few seconds, the proxy's figures over the last 15 minutes (kept in
/// memory by the ledger, [`LedgerHandle::live_stats`]) and its circuits, into
/// the snapshot.
async fn publish_proxy_figures(
    publisher: Publisher,
    proxy: Arc<Proxy>,
    ledger: LedgerHandle,
    addr: SocketAddr,
    cancel: CancellationToken,
) {
    let mut every = Every::new(std::time::Duration::from_secs(5), &cancel);
    while every.tick().await {
        publisher.publish_proxy(ProxyView {
            listen: addr.to_string(),
            stats: ledger.live_stats(),
            circuits: proxy.circuits(),
        });
    }
}

impl Running {
    /// Stops the probes and the listeners, waits for them, and removes the
    /// runtime file.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        if let Some(ledger) = self.ledger.take() {
            // Commits what is still queued (bounded wait); blocking, so off the runtime.
            match tokio::task::spawn_blocking(move || ledger.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!("closing the ledger: {e}"),
                Err(e) => warn!("closing the ledger: {e}"),
            }
        }
        if let Some(path) = self.runtime_file.take() {
            // Only our own file: a second daemon may have replaced it.
            if RuntimeInfo::read(path.parent().unwrap_or(Path::new(".")))
                .is_some_and(|r| r.pid == std::process::id())
                && let Err(e) = std::fs::remove_file(&path)
            {
                warn!("cannot remove {}: {e}", path.display());
            }
        }
        info!("stopped");
    }
}

/// Writes `daemon.json` atomically. Failing to write it is not fatal: the
/// daemon runs; `clawfleet status` then falls back to the configured address.
fn write_runtime_file(data_dir: &Path, api: &[SocketAddr], proxy: SocketAddr) -> Option<PathBuf> {
    let info = RuntimeInfo {
        pid: std::process::id(),
        api: api.to_vec(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: jiff::Timestamp::now(),
        proxy: Some(proxy),
    };
    let path = data_dir.join(RUNTIME_FILE);
    let tmp = data_dir.join(format!("{RUNTIME_FILE}.{}.tmp", std::process::id()));
    let result = std::fs::create_dir_all(data_dir)
        .and_then(|()| {
            let json = serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, json)
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    match result {
        Ok(()) => Some(path),
        Err(e) => {
            warn!(
                "cannot write {} ({e}); `clawfleet status` will look for the daemon at the configured address",
                path.display()
            );
            let _ = std::fs::remove_file(&tmp);
            None
        }
    }
}

/// Resolves when the process is asked to stop: Ctrl-C / SIGINT, or SIGTERM
/// on Unix.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
                    _ = term.recv() => info!("SIGTERM received, shutting down"),
                }
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM ({e}); stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("Ctrl-C received, shutting down");
    }
}
