//! `clawfleet-tray`: a thin Tauri v2 shell around the ClawFleet engine, which
//! runs in process (the same `daemon::start` as `clawfleet serve`).
//!
//! - a tray icon (menu bar on macOS, no Dock icon) whose image and tooltip
//!   follow the fleet's state, and a menu with one line per machine, the heal
//!   actions that apply now, the dashboard, pause, start at login and quit;
//! - the dashboard popover: the engine's own page (`ui/`) over loopback, in
//!   a helper process ([`popover`]) started when it opens and gone when it
//!   closes or loses focus, so this process never holds a webview's memory;
//!   the page's commands (`heal`: in process, no token) are forwarded here,
//!   and snapshots and events are pushed to it as Tauri events;
//! - desktop notifications for heal outcomes, "needs human", cost alarms and
//!   diagnoses, coalesced;
//! - one instance only: a second launch opens the first one's dashboard.
//!
//! The state shown is computed by [`model`] (pure, tested without a desktop).

pub mod model;
pub mod notify;
pub mod popover;
pub mod settings;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clawfleet::action::Action;
use clawfleet::daemon::{self, Running};
use clawfleet::heal::watcher::Watcher;
use clawfleet::publish::SnapshotRx;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, RunEvent, Wry};
use tauri_plugin_autostart::ManagerExt as _;

use crate::model::{FleetState, TrayModel};
use crate::notify::{Coalescer, NoticeKind};
use crate::popover::{Helper, HelperArgs, ToHelper};
use crate::settings::Settings;

/// The tray icon's id.
pub const TRAY: &str = "main";

/// What the app's parts share.
pub struct Shared {
    watcher: Arc<Watcher>,
    peers: Arc<clawfleet::peers::Peers>,
    token: Arc<String>,
    snapshot: SnapshotRx,
    dashboard: String,
    data_dir: PathBuf,
    config_file: Option<PathBuf>,
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    menu: Mutex<Option<Menu<Wry>>>,
    /// The dashboard's helper process, while it runs.
    popover: Mutex<Option<Helper>>,
    /// Where the tray icon is (physical x, y, width, height), from its last
    /// click, for placing the popover.
    tray_rect: Mutex<Option<[i32; 4]>>,
    /// Wakes the tray's redraw (the dashboard opened or closed).
    refresh: tokio::sync::Notify,
    /// Keep the popover when it loses focus (`--keep-open`, or no tray).
    keep_open: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- commands (called by the dashboard inside the popover) ------------------

/// Runs one of the page's commands, forwarded by the popover's helper:
/// `heal`, `settings`, `set_setting`, `open_config`.
async fn dispatch(
    app: AppHandle,
    cmd: String,
    args: serde_json::Value,
) -> Result<serde_json::Value, String> {
    fn args_of<T: serde::de::DeserializeOwned>(
        cmd: &str,
        args: serde_json::Value,
    ) -> Result<T, String> {
        serde_json::from_value(args).map_err(|e| format!("{cmd}: {e}"))
    }
    let shared = app.state::<Arc<Shared>>().inner().clone();
    match cmd.as_str() {
        "heal" => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Heal {
                action: String,
                target: Option<String>,
                #[serde(default)]
                dry_run: bool,
                #[serde(default)]
                machine: Option<String>,
            }
            let a: Heal = args_of(&cmd, args)?;
            let action =
                Action::parse(&a.action, a.target.as_deref()).map_err(|e| e.to_string())?;
            match a.machine {
                // A peer's: through its API, under its guards.
                Some(m) if m != shared.watcher.machine() => shared
                    .peers
                    .heal(&m, &action, a.dry_run, "tray")
                    .await
                    .map_err(|e| e.to_string()),
                _ => {
                    let outcome = shared
                        .watcher
                        .heal(action, a.dry_run, "tray")
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::to_value(outcome).map_err(|e| e.to_string())
                }
            }
        }
        // The fleet token, for giving it to the other machines: only here,
        // in the app's own window, never over HTTP.
        "fleet_token" => Ok(serde_json::Value::String(shared.token.as_str().to_owned())),
        "settings" => Ok(settings_json(&app, &shared)),
        "set_setting" => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Set {
                key: String,
                value: bool,
            }
            let a: Set = args_of(&cmd, args)?;
            set_setting(&app, &shared, &a.key, a.value)
        }
        "open_config" => open_config(&shared).map(|()| serde_json::Value::Null),
        other => Err(format!("the app has no command {other:?}")),
    }
}

/// The tray's settings for the dashboard: notification kinds and start at
/// login.
fn settings_json(app: &AppHandle, shared: &Shared) -> serde_json::Value {
    let s = lock(&shared.settings).clone();
    let notify: serde_json::Map<String, serde_json::Value> = NoticeKind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_owned(),
                serde_json::Value::Bool(s.notifies(*k)),
            )
        })
        .collect();
    serde_json::json!({
        "autostart": app.autolaunch().is_enabled().unwrap_or(false),
        "notify": notify,
    })
}

/// Changes one tray setting: `autostart`, or `notify.<kind>`.
fn set_setting(
    app: &AppHandle,
    shared: &Shared,
    key: &str,
    value: bool,
) -> Result<serde_json::Value, String> {
    if key == "autostart" {
        set_autostart(app, value)?;
    } else if let Some(kind) = key.strip_prefix("notify.") {
        if !NoticeKind::ALL.iter().any(|k| k.as_str() == kind) {
            return Err(format!("no notification kind {kind:?}"));
        }
        let mut s = lock(&shared.settings);
        s.notify.insert(kind.to_owned(), value);
        settings::save(&settings::path(&shared.data_dir), &s)
            .map_err(|e| format!("cannot save the settings: {e}"))?;
    } else {
        return Err(format!("no setting {key:?}"));
    }
    Ok(settings_json(app, shared))
}

/// The program that opens a text file for editing, per OS (no shell).
pub fn opener(os: &str) -> &'static [&'static str] {
    match os {
        "macos" => &["open", "-t"],
        "windows" => &["notepad.exe"],
        _ => &["xdg-open"],
    }
}

/// Opens the config file in the user's editor.
fn open_config(shared: &Shared) -> Result<(), String> {
    let Some(path) = &shared.config_file else {
        return Err(
            "there is no config file: the embedded default is in use; `clawfleet config init` writes one"
                .to_owned(),
        );
    };
    let argv = opener(std::env::consts::OS);
    std::process::Command::new(argv[0])
        .args(&argv[1..])
        .arg(path)
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

fn set_autostart(app: &AppHandle, on: bool) -> Result<(), String> {
    let launcher = app.autolaunch();
    let done = if on {
        launcher.enable()
    } else {
        launcher.disable()
    };
    done.map_err(|e| format!("cannot change start at login: {e}"))
}

// ---- the popover --------------------------------------------------------------

/// The tray's side of the popover helper.
struct TrayHost(AppHandle);

impl popover::Host for TrayHost {
    fn call(
        self: Arc<Self>,
        cmd: String,
        args: serde_json::Value,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send>,
    > {
        Box::pin(dispatch(self.0.clone(), cmd, args))
    }

    fn gone(&self, pid: u32) {
        let shared = self.0.state::<Arc<Shared>>();
        let mut current = lock(&shared.popover);
        if current.as_ref().is_some_and(|h| h.pid == pid) {
            *current = None;
        }
        drop(current);
        shared.refresh.notify_one();
    }
}

/// Shows the dashboard, starting its helper process if needed.
pub fn open_popover(app: &AppHandle) {
    let shared = app.state::<Arc<Shared>>().inner().clone();
    let mut current = lock(&shared.popover);
    if let Some(h) = current.as_ref() {
        if h.try_send(&ToHelper::Show) {
            return;
        }
        // Gone or stuck: start another.
        h.close();
    }
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot find this program to open the dashboard: {e}");
            return;
        }
    };
    let args = HelperArgs {
        url: shared.dashboard.clone(),
        keep_open: shared.keep_open.load(Ordering::SeqCst),
        at: *lock(&shared.tray_rect),
    };
    match popover::spawn(&program, &args, Arc::new(TrayHost(app.clone()))) {
        Ok(helper) => {
            tracing::info!(pid = helper.pid, "the dashboard opens");
            tauri::async_runtime::spawn(feed(shared.clone(), helper.sender()));
            *current = Some(helper);
        }
        Err(e) => tracing::error!("cannot open the dashboard: {e}"),
    }
    drop(current);
    shared.refresh.notify_one();
}

/// Closes the dashboard: its helper, and with it the web process, ends.
fn close_popover(app: &AppHandle) {
    let shared = app.state::<Arc<Shared>>();
    if let Some(h) = lock(&shared.popover).take() {
        h.close();
    }
    shared.refresh.notify_one();
}

fn toggle_popover(app: &AppHandle) {
    let open = lock(&app.state::<Arc<Shared>>().popover).is_some();
    if open {
        close_popover(app);
    } else {
        open_popover(app);
    }
}

/// Pushes each new snapshot and event to the page while the helper runs.
/// A helper that falls behind misses snapshots (the next one replaces
/// them), never stalls the tray.
async fn feed(shared: Arc<Shared>, to: popover::Sender) {
    let mut rx = shared.snapshot.clone();
    let mut events = shared.watcher.events().subscribe();
    let mut snapshot_due = true;
    let mut pushed: Option<tokio::time::Instant> = None;
    loop {
        if snapshot_due {
            // As the browser's stream: at most one snapshot per gap, the
            // newest (the page re-renders on each).
            if let Some(at) = pushed {
                tokio::time::sleep_until(at + clawfleet::api::STREAM_MIN_GAP).await;
            }
            pushed = Some(tokio::time::Instant::now());
            let snap = rx.borrow_and_update().clone();
            match serde_json::to_value(&*snap) {
                Ok(v) => {
                    if !to.push(popover::SNAPSHOT_EVENT, v) {
                        return;
                    }
                }
                Err(e) => tracing::warn!("cannot pass the snapshot to the dashboard: {e}"),
            }
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() { return }
                snapshot_due = true;
            }
            got = events.recv() => {
                snapshot_due = false;
                match got {
                    Ok(e) => match serde_json::to_value(&e) {
                        Ok(v) => if !to.push(popover::EVENT_EVENT, v) { return },
                        Err(err) => tracing::warn!("cannot pass an event to the dashboard: {err}"),
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

// ---- the tray -------------------------------------------------------------------

fn icon(state: FleetState) -> Option<Image<'static>> {
    let bytes: &'static [u8] = if cfg!(target_os = "macos") {
        include_bytes!("../../icons/tray-template.png")
    } else {
        match state {
            FleetState::Healthy => include_bytes!("../../icons/tray-healthy.png"),
            FleetState::Degraded => include_bytes!("../../icons/tray-degraded.png"),
            FleetState::Down => include_bytes!("../../icons/tray-down.png"),
            FleetState::Healing => include_bytes!("../../icons/tray-healing.png"),
        }
    };
    Image::from_bytes(bytes)
        .map_err(|e| tracing::error!("a tray icon does not load: {e}"))
        .ok()
}

/// Fills `menu` with the model's items (on Linux a tray's menu cannot be
/// replaced, only its content).
fn fill_menu(
    app: &AppHandle,
    menu: &Menu<Wry>,
    m: &TrayModel,
    autostart: bool,
) -> tauri::Result<()> {
    while !menu.items()?.is_empty() {
        menu.remove_at(0)?;
    }
    for (i, line) in m.machines.iter().enumerate() {
        menu.append(&MenuItem::with_id(
            app,
            format!("machine|{i}"),
            line,
            false,
            None::<&str>,
        )?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    let heal = Submenu::with_id(app, "heal", "Heal", !m.heal.is_empty())?;
    for item in &m.heal {
        heal.append(&MenuItem::with_id(
            app,
            item.id(),
            &item.label,
            true,
            None::<&str>,
        )?)?;
    }
    menu.append(&heal)?;
    let open = if m.dashboard_open {
        "Close dashboard"
    } else {
        "Open dashboard"
    };
    menu.append(&MenuItem::with_id(app, "open", open, true, None::<&str>)?)?;
    menu.append(&CheckMenuItem::with_id(
        app,
        "pause",
        "Pause self-healing",
        true,
        m.paused,
        None::<&str>,
    )?)?;
    menu.append(&CheckMenuItem::with_id(
        app,
        "autostart",
        "Start at login",
        true,
        autostart,
        None::<&str>,
    )?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        "quit",
        "Quit ClawFleet",
        true,
        None::<&str>,
    )?)?;
    Ok(())
}

fn on_menu(app: &AppHandle, id: &str) {
    let shared = app.state::<Arc<Shared>>().inner().clone();
    match id {
        "open" => toggle_popover(app),
        "pause" => {
            let paused = shared.watcher.paused();
            shared.watcher.set_paused(!paused, "tray menu");
        }
        "autostart" => {
            let on = app.autolaunch().is_enabled().unwrap_or(false);
            if let Err(e) = set_autostart(app, !on) {
                tracing::warn!("{e}");
            }
        }
        "quit" => quit(app),
        other => {
            if let Some(action) = model::parse_heal_id(other) {
                tauri::async_runtime::spawn(async move {
                    if let Err(e) = shared.watcher.heal(action, false, "tray menu").await {
                        tracing::warn!("heal from the tray menu refused: {e}");
                    }
                });
            }
        }
    }
}

fn quit(app: &AppHandle) {
    let shared = app.state::<Arc<Shared>>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let running = lock(&shared.running).take();
        if let Some(r) = running {
            r.shutdown().await;
        }
        app.exit(0);
    });
}

/// A tray icon's rectangle in physical pixels: x, y, width, height.
fn physical(rect: tauri::Rect) -> [i32; 4] {
    let p = rect.position.to_physical::<i32>(1.0);
    let s = rect.size.to_physical::<i32>(1.0);
    [p.x, p.y, s.width, s.height]
}

fn build_tray(app: &AppHandle) -> tauri::Result<TrayIcon> {
    let menu = Menu::new(app)?;
    let mut builder = TrayIconBuilder::with_id(TRAY)
        .menu(&menu)
        .tooltip("ClawFleet")
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                rect,
                ..
            } = event
            {
                let app = tray.app_handle();
                *lock(&app.state::<Arc<Shared>>().tray_rect) = Some(physical(rect));
                toggle_popover(app);
            }
        });
    if let Some(i) = icon(FleetState::Healthy) {
        builder = builder.icon(i);
    }
    #[cfg(target_os = "macos")]
    {
        builder = builder.icon_as_template(true);
    }
    let tray = builder.build(app)?;
    *lock(&app.state::<Arc<Shared>>().menu) = Some(menu);
    Ok(tray)
}

/// Redraws the tray whenever what it shows changes: a new snapshot, a new
/// event, or (every 2 s) an action starting or ending.
async fn keep_tray_current(app: AppHandle, shared: Arc<Shared>) {
    let mut rx = shared.snapshot.clone();
    let mut events = shared.watcher.events().subscribe();
    let mut last: Option<(TrayModel, bool)> = None;
    loop {
        let model = {
            let snap = rx.borrow_and_update().clone();
            model::tray_model(
                &snap,
                Some(&shared.watcher.status()),
                shared.watcher.acting(),
                lock(&shared.popover).is_some(),
            )
        };
        let autostart = app.autolaunch().is_enabled().unwrap_or(false);
        let now = (model, autostart);
        if last.as_ref() != Some(&now) {
            apply(
                &app,
                &shared,
                &now.0,
                now.1,
                last.as_ref().map(|l| l.0.state),
            );
            last = Some(now);
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = events.recv() => {}
            () = shared.refresh.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn apply(
    app: &AppHandle,
    shared: &Shared,
    m: &TrayModel,
    autostart: bool,
    before: Option<FleetState>,
) {
    let Some(tray) = app.tray_by_id(TRAY) else {
        return;
    };
    if before != Some(m.state) {
        if let Some(i) = icon(m.state) {
            let _ = tray.set_icon(Some(i));
        }
        #[cfg(target_os = "macos")]
        {
            let _ = tray.set_icon_as_template(true);
            let _ = tray.set_title(match m.state {
                FleetState::Healthy => None,
                FleetState::Degraded => Some("!"),
                FleetState::Down => Some("✕"),
                FleetState::Healing => Some("…"),
            });
        }
        tracing::info!(state = m.state.as_str(), "fleet state");
    }
    let _ = tray.set_tooltip(Some(&m.tooltip));
    if let Some(menu) = lock(&shared.menu).as_ref()
        && let Err(e) = fill_menu(app, menu, m, autostart)
    {
        tracing::warn!("cannot update the tray menu: {e}");
    }
}

/// Shows a notification for each event that makes one, coalesced, unless
/// the user turned that kind off.
async fn notify_events(shared: Arc<Shared>) {
    let mut rx = shared.watcher.events().subscribe();
    let mut coalescer = Coalescer::default();
    loop {
        let wait = coalescer
            .next_due()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            got = rx.recv() => match got {
                Ok(event) => {
                    let Some(kind) = NoticeKind::of(&event) else { continue };
                    if !lock(&shared.settings).notifies(kind) {
                        continue;
                    }
                    if let Some(n) = coalescer.offer(kind, notify::notice_for(&event), Instant::now()) {
                        tokio::task::spawn_blocking(move || notify::show(&n));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} events were not considered for notifications");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(wait) => {
                for n in coalescer.due(Instant::now()) {
                    tokio::task::spawn_blocking(move || notify::show(&n));
                }
            }
        }
    }
}

// ---- start ------------------------------------------------------------------------

/// The command line: `--config PATH` (else `CLAWFLEET_CONFIG`, else the
/// platform's file, else the embedded default), `--open` (show the
/// dashboard at start), `--keep-open` (do not hide it when it loses focus).
#[derive(Debug, Default, PartialEq)]
struct Args {
    config: Option<PathBuf>,
    open: bool,
    keep_open: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Args {
    let mut out = Args::default();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => out.config = args.next().map(PathBuf::from),
            "--open" => out.open = true,
            "--keep-open" => out.keep_open = true,
            other => {
                if let Some(p) = other.strip_prefix("--config=") {
                    out.config = Some(PathBuf::from(p));
                } else {
                    // Autostart and the OS may pass their own arguments.
                    tracing::debug!("ignoring the argument {other:?}");
                }
            }
        }
    }
    out
}

/// Whether a tray host will show our icon: on Linux, whether the session bus
/// has a StatusNotifierWatcher (AppIndicator's host). Unknown counts as yes.
fn tray_host_present() -> bool {
    #[cfg(target_os = "linux")]
    {
        let ask = async {
            let conn = zbus::Connection::session()
                .await
                .map_err(|e| e.to_string())?;
            let bus = zbus::fdo::DBusProxy::new(&conn)
                .await
                .map_err(|e| e.to_string())?;
            let name = zbus::names::BusName::try_from("org.kde.StatusNotifierWatcher")
                .map_err(|e| e.to_string())?;
            bus.name_has_owner(name).await.map_err(|e| e.to_string())
        };
        let asked = tauri::async_runtime::block_on(async {
            tokio::time::timeout(Duration::from_secs(3), ask).await
        });
        match asked {
            Ok(Ok(has)) => has,
            Ok(Err(e)) => {
                tracing::warn!(
                    "cannot ask the session bus for a tray host ({e}); assuming there is one"
                );
                true
            }
            Err(_) => {
                tracing::warn!(
                    "the session bus did not say in 3 s whether there is a tray host; assuming there is one"
                );
                true
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// Where the popover reads the fleet API: its IPv4 loopback address (an
/// unspecified address listens there too).
fn dashboard_addr(addrs: &[std::net::SocketAddr]) -> Option<std::net::SocketAddr> {
    addrs.iter().find_map(|a| match a.ip() {
        std::net::IpAddr::V4(ip) if ip.is_loopback() => Some(*a),
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], a.port())))
        }
        _ => None,
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Environment the tray app sets for itself on Linux, first thing in `main`,
/// where the user has not set it.
///
/// `GDK_GL=disable`: the app's own process never draws with GL (it makes no
/// webview; the popover's helper does), but GTK 3 on X11 opens GLX when it
/// starts, to choose its visuals, and that loads Mesa's driver and with it
/// LLVM: 17 to 25 MiB of PSS for nothing, measured with `cargo xtask bench
/// tray`. The helper inherits it, which changes nothing there: WebKit draws
/// through EGL, not GDK.
pub const TRAY_ENV: &[(&str, &str)] = &[("GDK_GL", "disable")];

/// Runs the tray app until Quit. Returns the process exit code.
pub fn run() -> i32 {
    init_tracing();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--popover") {
        return match HelperArgs::parse(&argv[1..]) {
            Ok(a) => popover::run_helper(a),
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        };
    }
    let args = parse_args(argv);
    let open_at_start = args.open || std::env::var_os("CLAWFLEET_TRAY_OPEN").is_some();
    let keep_open = args.keep_open || std::env::var_os("CLAWFLEET_TRAY_KEEP_OPEN").is_some();
    let loaded = match clawfleet::config::load(args.config.as_deref()) {
        Ok(l) => l.with_default_prices(),
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let built = tauri::Builder::default()
        // First, so a second launch is stopped before it starts anything.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tracing::info!("a second launch: showing this one's dashboard");
            open_popover(app);
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let config = loaded.config.clone();
            let data_dir = config.data_dir();
            let running =
                tauri::async_runtime::block_on(daemon::start_from(config, &loaded.source))
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
            let api = dashboard_addr(&running.api_addrs).ok_or(
                "the fleet API does not listen on 127.0.0.1, where the dashboard reads it: add a loopback address to [api] listen",
            )?;
            let dashboard = format!("http://{api}/");
            println!("clawfleet-tray: fleet API on http://{api}");
            println!(
                "clawfleet-tray: inference proxy on http://{}",
                running.proxy_addr
            );
            let shared = Arc::new(Shared {
                watcher: running.watcher.clone(),
                peers: running.peers.clone(),
                token: running.token.clone(),
                snapshot: running.snapshot.clone(),
                dashboard,
                settings: Mutex::new(settings::load(&settings::path(&data_dir))),
                data_dir,
                config_file: match &loaded.source {
                    clawfleet::config::Source::File(p) => Some(p.clone()),
                    clawfleet::config::Source::Embedded => None,
                },
                running: Mutex::new(Some(running)),
                menu: Mutex::new(None),
                popover: Mutex::new(None),
                tray_rect: Mutex::new(None),
                refresh: tokio::sync::Notify::new(),
                keep_open: AtomicBool::new(keep_open),
            });
            app.manage(shared.clone());
            let handle = app.handle().clone();
            let no_tray = match build_tray(&handle) {
                Ok(_) if tray_host_present() => {
                    tracing::info!("tray icon created");
                    None
                }
                Ok(_) => Some(
                    "there is no StatusNotifier tray host (org.kde.StatusNotifierWatcher) on the session bus, so the icon may not show"
                        .to_owned(),
                ),
                Err(e) => Some(format!("the tray icon cannot be made ({e})")),
            };
            if let Some(why) = no_tray {
                tracing::warn!(
                    "{why}: the dashboard opens and stays open; launching clawfleet-tray again brings it back"
                );
                shared.keep_open.store(true, Ordering::SeqCst);
                open_popover(&handle);
            }
            tauri::async_runtime::spawn(keep_tray_current(handle.clone(), shared.clone()));
            tauri::async_runtime::spawn(notify_events(shared));
            if open_at_start {
                open_popover(&handle);
            }
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match built {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    app.run(|app, event| {
        if let RunEvent::ExitRequested { api, code, .. } = &event {
            // Closing the last window keeps the app in the tray; only Quit
            // (an explicit exit code) ends it.
            if code.is_none() {
                api.prevent_exit();
            }
        }
        if let RunEvent::Exit = event {
            let shared = app.state::<Arc<Shared>>();
            if let Some(h) = lock(&shared.popover).take() {
                h.close();
            }
            if let Some(r) = lock(&shared.running).take() {
                tauri::async_runtime::block_on(r.shutdown());
            }
        }
    });
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line() {
        let a = |v: &[&str]| parse_args(v.iter().map(|s| (*s).to_owned()));
        assert_eq!(a(&[]), Args::default());
        assert_eq!(
            a(&[
                "--config",
                "/x.toml",
                "--open",
                "--keep-open",
                "--autostart-flag"
            ]),
            Args {
                config: Some(PathBuf::from("/x.toml")),
                open: true,
                keep_open: true,
            }
        );
        assert_eq!(
            a(&["--config=/y.toml"]).config,
            Some(PathBuf::from("/y.toml"))
        );
    }

    #[test]
    fn the_config_opens_in_an_editor_without_a_shell() {
        assert_eq!(opener("macos"), ["open", "-t"]);
        assert_eq!(opener("windows"), ["notepad.exe"]);
        assert_eq!(opener("linux"), ["xdg-open"]);
        for os in ["macos", "windows", "linux"] {
            assert!(!["sh", "cmd", "cmd.exe", "powershell"].contains(&opener(os)[0]));
        }
    }
}
