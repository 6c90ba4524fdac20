//! The dashboard popover, in a helper process of its own.
//!
//! A webview, once created, keeps memory in the process that made it
//! (WebKitGTK's network process and its own state stay after the window is
//! destroyed: about 80 MiB measured). So the tray process never makes one:
//! opening the dashboard starts this same binary with `--popover`, which
//! shows the engine's page in a window and exits when the window closes or
//! loses focus, giving every byte back.
//!
//! The two talk over the helper's stdin and stdout, one JSON object per
//! line ([`ToHelper`], [`ToTray`]):
//!
//! - the page's commands (`heal`, `settings`, `set_setting`, `open_config`)
//!   are forwarded to the tray, which runs them in process and answers;
//! - the tray pushes each new snapshot and event, which the helper emits to
//!   the page as Tauri events (`fleet:snapshot`, `fleet:event`), so the page
//!   in the app needs no HTTP stream;
//! - closing the helper's stdin (the tray quit, was killed, or closes the
//!   dashboard) ends the helper.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tauri::{AppHandle, Emitter, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tokio::sync::oneshot;

/// The popover window's label (the capability file names it).
pub const POPOVER: &str = "popover";
/// The longest line either side accepts; a longer one is skipped.
pub const MAX_LINE: usize = 4 << 20;
/// Tauri event names the page listens to.
pub const SNAPSHOT_EVENT: &str = "fleet:snapshot";
pub const EVENT_EVENT: &str = "fleet:event";

/// What the tray sends the helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToHelper {
    /// The answer to the helper's call `id`.
    Reply {
        id: u64,
        #[serde(flatten)]
        result: Answer,
    },
    /// Something for the page: `name` is a Tauri event name.
    Push { name: String, payload: Value },
    /// Show the window and give it focus (a second launch, the menu).
    Show,
}

/// A command's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Ok(Value),
    Err(String),
}

impl From<Result<Value, String>> for Answer {
    fn from(r: Result<Value, String>) -> Self {
        match r {
            Ok(v) => Answer::Ok(v),
            Err(e) => Answer::Err(e),
        }
    }
}

impl From<Answer> for Result<Value, String> {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Ok(v) => Ok(v),
            Answer::Err(e) => Err(e),
        }
    }
}

/// What the helper sends the tray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToTray {
    /// Run the page's command `cmd` with `args`; answer with `id`.
    Call { id: u64, cmd: String, args: Value },
}

/// One message as a line (no newline inside: JSON escapes them).
pub fn line<T: Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).unwrap_or_else(|e| {
        // Our own types always serialize; say so if one ever does not.
        format!("{{\"error\":\"cannot serialize a message: {e}\"}}")
    });
    s.push('\n');
    s
}

/// Reads lines of at most [`MAX_LINE`] bytes, calling `each` with every one
/// that parses as `T`; a bad or overlong line is logged and skipped. Returns
/// at end of input or on a read error.
pub fn read_lines<T, R, F>(input: R, who: &str, mut each: F)
where
    T: for<'de> Deserialize<'de>,
    R: BufRead,
    F: FnMut(T),
{
    let mut input = input;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let mut limited = input.by_ref().take(MAX_LINE as u64 + 1);
        match limited.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("reading from {who}: {e}");
                return;
            }
        }
        if buf.len() > MAX_LINE {
            tracing::warn!("{who} sent a line over {MAX_LINE} bytes: skipped");
            // Skip to the end of that line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match input
                    .by_ref()
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)
                {
                    Ok(0) => return,
                    Ok(_) if rest.ends_with(b"\n") => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(text) {
            Ok(msg) => each(msg),
            Err(e) => {
                let shown: String = text.chars().take(120).collect();
                tracing::warn!("{who} sent a line that is not a message ({e}): {shown:?}");
            }
        }
    }
}

/// The helper's command line after `--popover`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HelperArgs {
    /// The dashboard's address (the engine's API, on loopback).
    pub url: String,
    /// Do not close on losing focus.
    pub keep_open: bool,
    /// The tray icon's rectangle (physical pixels), when the OS gave one.
    pub at: Option<[i32; 4]>,
}

impl HelperArgs {
    /// The arguments that start a helper with these settings.
    pub fn to_argv(&self) -> Vec<String> {
        let mut v = vec!["--popover".to_owned(), self.url.clone()];
        if self.keep_open {
            v.push("--keep-open".to_owned());
        }
        if let Some([x, y, w, h]) = self.at {
            v.push("--at".to_owned());
            v.push(format!("{x},{y},{w},{h}"));
        }
        v
    }

    /// Parses what follows `--popover`.
    pub fn parse(args: &[String]) -> Result<HelperArgs, String> {
        let mut it = args.iter();
        let url = it
            .next()
            .ok_or("--popover needs the dashboard's address")?
            .clone();
        if !(url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"))
            || url.parse::<tauri::Url>().is_err()
        {
            return Err(format!(
                "--popover shows only the engine's own page on loopback, not {url:?}"
            ));
        }
        let mut out = HelperArgs {
            url,
            ..HelperArgs::default()
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--keep-open" => out.keep_open = true,
                "--at" => {
                    let v = it.next().ok_or("--at needs x,y,width,height")?;
                    let n: Vec<i32> = v
                        .split(',')
                        .map(|p| p.trim().parse::<i32>())
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("--at {v:?}: {e}"))?;
                    let [x, y, w, h] = n[..] else {
                        return Err(format!("--at {v:?}: four numbers, x,y,width,height"));
                    };
                    out.at = Some([x, y, w, h]);
                }
                other => tracing::debug!("the popover ignores the argument {other:?}"),
            }
        }
        Ok(out)
    }
}

// ---- the helper process -------------------------------------------------------

/// The helper's way back to the tray: calls in flight, by id.
struct Link {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    out: Mutex<std::io::Stdout>,
    focused: AtomicBool,
    keep_open: bool,
}

impl Link {
    async fn call(&self, cmd: &str, args: Value) -> Result<Value, String> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        let msg = line(&ToTray::Call {
            id,
            cmd: cmd.to_owned(),
            args,
        });
        {
            let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = out.write_all(msg.as_bytes()).and_then(|()| out.flush()) {
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                return Err(format!("the tray app is gone: {e}"));
            }
        }
        match rx.await {
            Ok(a) => a.into(),
            Err(_) => Err("the tray app is gone".to_owned()),
        }
    }

    fn answer(&self, id: u64, result: Answer) {
        let tx = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        match tx {
            Some(tx) => {
                let _ = tx.send(result);
            }
            None => tracing::warn!("an answer to no call ({id})"),
        }
    }
}

type LinkState<'a> = tauri::State<'a, Arc<Link>>;

#[tauri::command]
async fn heal(
    link: LinkState<'_>,
    action: String,
    target: Option<String>,
    dry_run: bool,
    machine: Option<String>,
) -> Result<Value, String> {
    let args = serde_json::json!({ "action": action, "target": target, "dry_run": dry_run, "machine": machine });
    link.call("heal", args).await
}

#[tauri::command]
async fn fleet_token(link: LinkState<'_>) -> Result<Value, String> {
    link.call("fleet_token", Value::Null).await
}

#[tauri::command]
async fn settings(link: LinkState<'_>) -> Result<Value, String> {
    link.call("settings", Value::Null).await
}

#[tauri::command]
async fn set_setting(link: LinkState<'_>, key: String, value: bool) -> Result<Value, String> {
    link.call(
        "set_setting",
        serde_json::json!({ "key": key, "value": value }),
    )
    .await
}

#[tauri::command]
async fn open_config(link: LinkState<'_>) -> Result<Value, String> {
    link.call("open_config", Value::Null).await
}

fn show(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(POPOVER) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Runs the helper until its window closes or the tray goes. Returns the
/// process exit code.
pub fn run_helper(args: HelperArgs) -> i32 {
    let link = Arc::new(Link {
        next: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        out: Mutex::new(std::io::stdout()),
        focused: AtomicBool::new(false),
        keep_open: args.keep_open,
    });
    let url: tauri::Url = match args.url.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: the dashboard address {:?}: {e}", args.url);
            return 2;
        }
    };
    let at = args.at;
    let built = tauri::Builder::default()
        .plugin(tauri_plugin_positioner::init())
        .manage(link.clone())
        .invoke_handler(tauri::generate_handler![
            heal,
            settings,
            set_setting,
            open_config,
            fleet_token
        ])
        .on_window_event(|window, event| {
            let link = window.state::<Arc<Link>>();
            match event {
                WindowEvent::Focused(true) => link.focused.store(true, Ordering::SeqCst),
                // Gone when it loses focus (once it had it), like a menu.
                WindowEvent::Focused(false)
                    if !link.keep_open && link.focused.load(Ordering::SeqCst) =>
                {
                    window.app_handle().exit(0);
                }
                WindowEvent::Destroyed => window.app_handle().exit(0),
                _ => {}
            }
        })
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let window = WebviewWindowBuilder::new(app, POPOVER, WebviewUrl::External(url))
                .title("ClawFleet")
                .inner_size(380.0, 560.0)
                .min_inner_size(320.0, 360.0)
                .visible(false)
                .skip_taskbar(true)
                .always_on_top(true)
                .build()?;
            place(app.handle(), &window, at);
            let _ = window.show();
            let _ = window.set_focus();
            // The tray's messages.
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("popover-stdin".to_owned())
                .spawn(move || {
                    let stdin = std::io::stdin();
                    read_lines::<ToHelper, _, _>(stdin.lock(), "the tray app", |msg| match msg {
                        ToHelper::Reply { id, result } => {
                            handle.state::<Arc<Link>>().answer(id, result);
                        }
                        ToHelper::Push { name, payload } => {
                            if let Err(e) = handle.emit(&name, payload) {
                                tracing::debug!("cannot pass {name} to the page: {e}");
                            }
                        }
                        ToHelper::Show => {
                            let h = handle.clone();
                            let _ = handle.run_on_main_thread(move || show(&h));
                        }
                    });
                    // The tray closed our input: it quit, died or closed
                    // the dashboard.
                    handle.exit(0);
                })?;
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match built {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot open the dashboard: {e}");
            return 1;
        }
    };
    app.run(|_, event| {
        if let RunEvent::ExitRequested { .. } = event {
            tracing::debug!("the dashboard closes");
        }
    });
    0
}

/// Puts the window at the tray icon, where the OS told us where that is.
fn place(app: &AppHandle, window: &tauri::WebviewWindow, at: Option<[i32; 4]>) {
    let Some([x, y, w, h]) = at else {
        return;
    };
    use tauri::tray::{MouseButton, MouseButtonState, TrayIconEvent, TrayIconId};
    use tauri_plugin_positioner::{Position, WindowExt};
    let position = tauri::PhysicalPosition::new(f64::from(x), f64::from(y));
    let event = TrayIconEvent::Click {
        id: TrayIconId::new("main"),
        position,
        rect: tauri::Rect {
            position: tauri::PhysicalPosition::new(x, y).into(),
            size: tauri::PhysicalSize::new(w.max(0) as u32, h.max(0) as u32).into(),
        },
        button: MouseButton::Left,
        button_state: MouseButtonState::Up,
    };
    tauri_plugin_positioner::on_tray_event(app, &event);
    if let Err(e) = window.as_ref().window().move_window(Position::TrayCenter) {
        tracing::debug!("cannot place the popover at the tray: {e}");
    }
}

// ---- the tray's side ----------------------------------------------------------

enum Out {
    Line(String),
    Close,
}

/// The way to a running helper's input. Sending never blocks the tray.
#[derive(Clone)]
pub struct Sender(tokio::sync::mpsc::Sender<Out>);

impl Sender {
    /// Pushes a Tauri event to the page. A helper too far behind misses it
    /// (the next snapshot replaces it); `false` once the helper is gone.
    pub fn push(&self, name: &str, payload: Value) -> bool {
        let msg = line(&ToHelper::Push {
            name: name.to_owned(),
            payload,
        });
        match self.0.try_send(Out::Line(msg)) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("the dashboard is behind: {name} skipped");
                true
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Sends an answer, waiting for room (answers are never dropped).
    async fn reply(&self, id: u64, result: Answer) {
        let _ = self
            .0
            .send(Out::Line(line(&ToHelper::Reply { id, result })))
            .await;
    }
}

/// A running helper, as the tray holds it.
pub struct Helper {
    pub pid: u32,
    tx: Sender,
    child: Arc<Mutex<std::process::Child>>,
}

impl Helper {
    /// Sends a message now; `false` when the helper is gone or not reading.
    pub fn try_send(&self, msg: &ToHelper) -> bool {
        self.tx.0.try_send(Out::Line(line(msg))).is_ok()
    }

    /// A sender for pushing to the page.
    pub fn sender(&self) -> Sender {
        self.tx.clone()
    }

    /// Ends the helper: its input is closed, which it answers by exiting;
    /// one that is not reading is killed.
    pub fn close(&self) {
        if self.tx.0.try_send(Out::Close).is_err() {
            tracing::warn!(
                pid = self.pid,
                "the dashboard helper is not reading: killed"
            );
            let _ = self
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .kill();
        }
    }
}

/// What the tray does with the helper's calls and its exit.
pub trait Host: Send + Sync + 'static {
    /// Runs a page command and answers.
    fn call(
        self: Arc<Self>,
        cmd: String,
        args: Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>>;
    /// The helper `pid` has exited.
    fn gone(&self, pid: u32);
}

/// Starts `program` as a helper with `args`. Its stderr goes to ours (the
/// same log); [`WEBKIT_ENV`] is set where the user has not.
pub fn spawn<H: Host>(
    program: &std::path::Path,
    args: &HelperArgs,
    host: Arc<H>,
) -> std::io::Result<Helper> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args.to_argv())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (k, v) in WEBKIT_ENV {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other("the helper's pipes were not made"));
    };
    let child = Arc::new(Mutex::new(child));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Out>(64);
    let tx = Sender(tx);
    // Writer: until the tray closes the helper or the pipe breaks.
    std::thread::Builder::new()
        .name("popover-writer".to_owned())
        .spawn(move || {
            while let Some(Out::Line(msg)) = rx.blocking_recv() {
                if stdin
                    .write_all(msg.as_bytes())
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    return;
                }
            }
        })?;
    // Reader: the helper's calls, then its exit.
    let answers = tx.clone();
    let waited = child.clone();
    std::thread::Builder::new()
        .name("popover-reader".to_owned())
        .spawn(move || {
            read_lines::<ToTray, _, _>(
                std::io::BufReader::new(stdout),
                "the dashboard helper",
                |ToTray::Call { id, cmd, args }| {
                    let host = host.clone();
                    let answers = answers.clone();
                    let job = async move {
                        let result = host.call(cmd, args).await;
                        answers.reply(id, result.into()).await;
                    };
                    drop(tauri::async_runtime::spawn(job));
                },
            );
            drop(answers);
            let status = waited.lock().unwrap_or_else(PoisonError::into_inner).wait();
            match status {
                Ok(status) => tracing::info!(pid, %status, "the dashboard closed"),
                Err(e) => tracing::warn!(pid, "cannot wait for the dashboard helper: {e}"),
            }
            host.gone(pid);
        })?;
    Ok(Helper { pid, tx, child })
}

/// The environment of the popover's process, set only where the user has
/// not set the variable. Each was measured (`cargo xtask bench tray`,
/// PSS with the popover open): no compositing (-70 MiB: no GL compositor
/// in the web process; this page has nothing to composite), no DMA-BUF
/// renderer (-4 MiB in the helper), JavaScriptCore's interpreter without
/// JIT (-10 MiB; the page's CPU with a snapshot a second is unchanged), its
/// garbage collector in the page's own thread with one marker (-1 MiB: no
/// collector threads and their stacks for a page this small), and one
/// malloc arena per process (-2 MiB against glibc's default; -1 more
/// against two).
pub const WEBKIT_ENV: &[(&str, &str)] = &[
    ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
    ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    ("JSC_useJIT", "0"),
    ("JSC_useConcurrentGC", "0"),
    ("JSC_numberOfGCMarkers", "1"),
    ("MALLOC_ARENA_MAX", "1"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_each_and_read_back() {
        let msgs = vec![
            ToHelper::Reply {
                id: 7,
                result: Answer::Ok(serde_json::json!({"action": "restart-ollama\n"})),
            },
            ToHelper::Reply {
                id: 8,
                result: Answer::Err("refused".into()),
            },
            ToHelper::Push {
                name: SNAPSHOT_EVENT.into(),
                payload: serde_json::json!({"machines": []}),
            },
            ToHelper::Show,
        ];
        let text: String = msgs.iter().map(line).collect();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains(r#"{"reply":{"id":7,"ok":{"action":"restart-ollama\n"}}}"#));
        assert!(text.contains(r#"{"reply":{"id":8,"err":"refused"}}"#));
        assert!(text.contains(r#""show""#));
        let mut back = Vec::new();
        read_lines::<ToHelper, _, _>(text.as_bytes(), "test", |m| back.push(m));
        assert_eq!(back, msgs);
    }

    #[test]
    fn bad_and_overlong_lines_are_skipped_not_fatal() {
        let good = line(&ToTray::Call {
            id: 1,
            cmd: "settings".into(),
            args: Value::Null,
        });
        let huge = format!("{{\"x\":\"{}\"}}\n", "a".repeat(MAX_LINE + 10));
        let input = format!("not json\n\n{huge}{{\"call\":{{}}}}\n{good}");
        let mut got = Vec::new();
        read_lines::<ToTray, _, _>(input.as_bytes(), "test", |m| got.push(m));
        assert_eq!(
            got,
            vec![ToTray::Call {
                id: 1,
                cmd: "settings".into(),
                args: Value::Null
            }]
        );
    }

    #[test]
    fn a_line_cut_short_by_the_end_of_input_is_still_read() {
        let text = line(&ToHelper::Show);
        let mut got = Vec::new();
        read_lines::<ToHelper, _, _>(text.trim_end().as_bytes(), "test", |m| got.push(m));
        assert_eq!(got, vec![ToHelper::Show]);
    }

    /// A stand-in helper (a shell script, a real child process): it calls
    /// `settings`, writes the answer and then every line it gets to a
    /// file, and exits when its input closes.
    #[cfg(unix)]
    #[test]
    fn the_tray_side_answers_calls_pushes_and_closes_a_real_child() {
        use std::os::unix::fs::PermissionsExt;
        use std::time::{Duration, Instant};

        struct Fake {
            calls: Mutex<Vec<(String, Value)>>,
            gone: Mutex<Vec<u32>>,
        }
        impl Host for Fake {
            fn call(
                self: Arc<Self>,
                cmd: String,
                args: Value,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>>
            {
                self.calls.lock().unwrap().push((cmd.clone(), args));
                Box::pin(async move {
                    if cmd == "settings" {
                        Ok(serde_json::json!({"autostart": false}))
                    } else {
                        Err(format!("no {cmd}"))
                    }
                })
            }
            fn gone(&self, pid: u32) {
                self.gone.lock().unwrap().push(pid);
            }
        }
        fn wait(what: &str, mut ok: impl FnMut() -> bool) {
            let until = Instant::now() + Duration::from_secs(20);
            while !ok() {
                assert!(Instant::now() < until, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        let dir = std::env::temp_dir().join(format!("clawfleet-popover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let got = dir.join("got.txt");
        let script = dir.join("helper.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = --popover ] || exit 3\n\
                 printf 'noise from a library\\n{{\"call\":{{\"id\":1,\"cmd\":\"settings\",\"args\":null}}}}\\n'\n\
                 printf '{{\"call\":{{\"id\":2,\"cmd\":\"nope\",\"args\":{{}}}}}}\\n'\n\
                 while IFS= read -r line; do printf '%s\\n' \"$line\" >> {}; done\n",
                got.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

        let host = Arc::new(Fake {
            calls: Mutex::new(Vec::new()),
            gone: Mutex::new(Vec::new()),
        });
        let args = HelperArgs {
            url: "http://127.0.0.1:1/".into(),
            ..HelperArgs::default()
        };
        let helper = spawn(&script, &args, host.clone()).unwrap();
        let read = || std::fs::read_to_string(&got).unwrap_or_default();
        wait("both answers", || read().lines().count() >= 2);
        let text = read();
        assert!(
            text.contains(r#"{"reply":{"id":1,"ok":{"autostart":false}}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"reply":{"id":2,"err":"no nope"}}"#),
            "{text}"
        );
        assert!(
            helper
                .sender()
                .push(SNAPSHOT_EVENT, serde_json::json!({"n": 1}))
        );
        assert!(helper.try_send(&ToHelper::Show));
        wait("the push and the show", || read().lines().count() >= 4);
        assert!(read().contains(r#"{"push":{"name":"fleet:snapshot","payload":{"n":1}}}"#));
        assert_eq!(
            host.calls.lock().unwrap().len(),
            2,
            "the noise line was not a call"
        );
        // Closing ends the child (its input closes), and the host hears of it.
        let pid = helper.pid;
        let sender = helper.sender();
        helper.close();
        wait("the helper to exit", || {
            host.gone.lock().unwrap().contains(&pid)
        });
        wait("pushes to report the helper gone", || {
            !sender.push(SNAPSHOT_EVENT, Value::Null)
        });
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_helper_command_line() {
        let args = HelperArgs {
            url: "http://127.0.0.1:7878/".into(),
            keep_open: true,
            at: Some([1800, 0, 24, -3]),
        };
        let argv = args.to_argv();
        assert_eq!(argv[0], "--popover");
        assert_eq!(HelperArgs::parse(&argv[1..]), Ok(args));
        let p =
            |v: &[&str]| HelperArgs::parse(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert!(p(&[]).is_err());
        for foreign in [
            "https://example.com/",
            "http://10.0.0.2:7878/",
            "file:///etc/passwd",
        ] {
            let e = p(&[foreign]).unwrap_err();
            assert!(e.contains("loopback"), "{e}");
        }
        assert!(
            p(&["http://127.0.0.1:1/", "--at", "1,2,3"])
                .unwrap_err()
                .contains("four numbers")
        );
        assert!(p(&["http://127.0.0.1:1/", "--at", "a,b,c,d"]).is_err());
        assert!(p(&["http://127.0.0.1:1/", "--at"]).is_err());
        assert_eq!(p(&["http://[::1]:9/"]).map(|a| a.keep_open), Ok(false));
    }
}
