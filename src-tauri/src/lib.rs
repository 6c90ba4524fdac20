//! `clawfleet-tray`: a thin Tauri v2 shell around the ClawFleet engine, which
//! runs in process (the same `daemon::start` as `clawfleet serve`).
//!
//! - a tray icon (menu bar on macOS, no Dock icon) whose image and tooltip
//!   follow the fleet's state, and a menu with one line per machine, the heal
//!   actions that apply now, the dashboard, pause, start at login and quit;
//! - the dashboard popover: the engine's own page (`ui/`) over loopback,
//!   created when opened and destroyed when it loses focus or is closed, so
//!   its web process gives its memory back; heals from it go through the
//!   `heal` command (in process, no token);
//! - desktop notifications for heal outcomes, "needs human", cost alarms and
//!   diagnoses, coalesced;
//! - one instance only: a second launch opens the first one's dashboard.
//!
//! The state shown is computed by [`model`] (pure, tested without a desktop).

pub mod model;
pub mod notify;
pub mod settings;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clawfleet::daemon::{self, Running};
use clawfleet::heal::action::Action;
use clawfleet::heal::watcher::{Outcome, Watcher};
use clawfleet::probe::SnapshotRx;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent, Wry};
use tauri_plugin_autostart::ManagerExt as _;

use crate::model::{FleetState, TrayModel};
use crate::notify::{Coalescer, NoticeKind};
use crate::settings::Settings;

/// The popover window's label (the capability file names it).
pub const POPOVER: &str = "popover";
/// The tray icon's id.
pub const TRAY: &str = "main";

/// What the app's parts share.
pub struct Shared {
    watcher: Arc<Watcher>,
    snapshot: SnapshotRx,
    dashboard: String,
    data_dir: PathBuf,
    config_file: Option<PathBuf>,
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    menu: Mutex<Option<Menu<Wry>>>,
    popover_focused: AtomicBool,
    keep_open: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- commands (called by the dashboard inside the popover) ------------------

/// Runs one action of the closed set, in process: the watcher's guards,
/// verification and event log apply as for any heal.
#[tauri::command]
async fn heal(
    state: tauri::State<'_, Arc<Shared>>,
    action: String,
    target: Option<String>,
    dry_run: bool,
) -> Result<Outcome, String> {
    let action = Action::parse(&action, target.as_deref()).map_err(|e| e.to_string())?;
    state
        .watcher
        .heal(action, dry_run, "tray")
        .await
        .map_err(|e| e.to_string())
}

/// The tray's settings for the dashboard: notification kinds and start at
/// login.
#[tauri::command]
fn settings(app: AppHandle, state: tauri::State<'_, Arc<Shared>>) -> serde_json::Value {
    let s = lock(&state.settings).clone();
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
#[tauri::command]
fn set_setting(
    app: AppHandle,
    state: tauri::State<'_, Arc<Shared>>,
    key: String,
    value: bool,
) -> Result<serde_json::Value, String> {
    if key == "autostart" {
        set_autostart(&app, value)?;
    } else if let Some(kind) = key.strip_prefix("notify.") {
        if !NoticeKind::ALL.iter().any(|k| k.as_str() == kind) {
            return Err(format!("no notification kind {kind:?}"));
        }
        let mut s = lock(&state.settings);
        s.notify.insert(kind.to_owned(), value);
        settings::save(&settings::path(&state.data_dir), &s)
            .map_err(|e| format!("cannot save the settings: {e}"))?;
    } else {
        return Err(format!("no setting {key:?}"));
    }
    Ok(settings(app.clone(), state))
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
#[tauri::command]
fn open_config(state: tauri::State<'_, Arc<Shared>>) -> Result<(), String> {
    let Some(path) = &state.config_file else {
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

/// Shows the dashboard, creating its window (and web process) if needed.
pub fn open_popover(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(POPOVER) {
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let shared = app.state::<Arc<Shared>>();
    let url = match shared.dashboard.parse() {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(
                "the dashboard address {} is not a URL: {e}",
                shared.dashboard
            );
            return;
        }
    };
    shared.popover_focused.store(false, Ordering::SeqCst);
    let built = WebviewWindowBuilder::new(app, POPOVER, WebviewUrl::External(url))
        .title("ClawFleet")
        .inner_size(380.0, 560.0)
        .min_inner_size(320.0, 360.0)
        .visible(false)
        .skip_taskbar(true)
        .always_on_top(true)
        .build();
    let window = match built {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot open the dashboard window: {e}");
            return;
        }
    };
    #[cfg(any(target_os = "macos", windows))]
    {
        use tauri_plugin_positioner::{Position, WindowExt};
        if let Err(e) = window.as_ref().window().move_window(Position::TrayCenter) {
            tracing::debug!("cannot place the popover at the tray: {e}");
        }
    }
    let _ = window.show();
    let _ = window.set_focus();
}

/// Closes the dashboard and its web process.
fn close_popover(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(POPOVER) {
        let _ = w.destroy();
    }
}

fn toggle_popover(app: &AppHandle) {
    match app.get_webview_window(POPOVER) {
        Some(w) if w.is_visible().unwrap_or(false) => close_popover(app),
        _ => open_popover(app),
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

fn build_tray(app: &AppHandle) -> tauri::Result<TrayIcon> {
    let menu = Menu::new(app)?;
    let mut builder = TrayIconBuilder::with_id(TRAY)
        .menu(&menu)
        .tooltip("ClawFleet")
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .on_tray_icon_event(|tray, event| {
            tauri_plugin_positioner::on_tray_event(tray.app_handle(), &event);
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                toggle_popover(tray.app_handle());
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
                app.get_webview_window(POPOVER).is_some(),
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
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the tray app until Quit. Returns the process exit code.
pub fn run() -> i32 {
    init_tracing();
    let args = parse_args(std::env::args().skip(1));
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
        .plugin(tauri_plugin_positioner::init())
        .invoke_handler(tauri::generate_handler![
            heal,
            settings,
            set_setting,
            open_config
        ])
        .on_window_event(|window, event| {
            if window.label() != POPOVER {
                return;
            }
            let shared = window.state::<Arc<Shared>>();
            match event {
                WindowEvent::Focused(true) => shared.popover_focused.store(true, Ordering::SeqCst),
                // Hidden when it loses focus (once it had it): destroyed, so
                // the web process goes with it.
                WindowEvent::Focused(false)
                    if !shared.keep_open && shared.popover_focused.load(Ordering::SeqCst) =>
                {
                    let _ = window.destroy();
                }
                _ => {}
            }
        })
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let config = loaded.config.clone();
            let data_dir = config.data_dir();
            let running =
                tauri::async_runtime::block_on(daemon::start_from(config, &loaded.source))
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
            let api = running
                .api_addrs
                .first()
                .copied()
                .ok_or("the fleet API has no address")?;
            let dashboard = format!("http://{api}/");
            println!("clawfleet-tray: fleet API on http://{api}");
            println!(
                "clawfleet-tray: inference proxy on http://{}",
                running.proxy_addr
            );
            let shared = Arc::new(Shared {
                watcher: running.watcher.clone(),
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
                popover_focused: AtomicBool::new(false),
                keep_open,
            });
            app.manage(shared.clone());
            let handle = app.handle().clone();
            match build_tray(&handle) {
                Ok(_) => tracing::info!("tray icon created"),
                Err(e) => {
                    tracing::warn!("no tray icon ({e}): the dashboard window stays reachable");
                    open_popover(&handle);
                }
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
