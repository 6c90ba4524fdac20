//! pm2 apps from `pm2 jlist`. No pm2 on the machine is a state, not an error,
//! and so is no pm2 daemon running.
//!
//! A probe never starts what it observes: `pm2 jlist` starts a daemon when
//! none answers (pm2's `Client.start`), so before running it the daemon is
//! looked for the way pm2 itself looks, for the `PM2_HOME` the child would
//! get: a connection to its RPC socket (`rpc.sock`, pm2's `pingDaemon`). Only
//! when that cannot tell (no permission, a path too long for a socket
//! address) does the pid file decide. See [`daemon_in`].
//!
//! `pm2 jlist` is a Node program: slow to start, and it prints banners and
//! update notices on stdout around the JSON. So it runs with a time limit, its
//! output is read up to a bound, and the JSON list is looked for rather than
//! assumed to be the whole output.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::snapshot::{Pm2App, Pm2State};

/// The pm2 program, as found on `PATH`. On Windows npm installs a `pm2.cmd`
/// shim, which must be named with its extension.
#[cfg(windows)]
pub const PM2_PROGRAM: &str = "pm2.cmd";
/// The pm2 program, as found on `PATH`.
#[cfg(not(windows))]
pub const PM2_PROGRAM: &str = "pm2";

/// At most this much of `pm2 jlist`'s stdout is read (hundreds of apps with
/// their environments are well under it).
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// At most this much of stderr is kept, for the error message.
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// How many characters of output an error message quotes.
const PREVIEW_CHARS: usize = 160;

/// Why pm2 could not be asked, or its answer not understood.
#[derive(Debug, thiserror::Error)]
pub enum Pm2Error {
    /// The program does not exist.
    #[error("{program} not found")]
    NotInstalled {
        /// The program looked for.
        program: String,
    },
    /// The program exists but could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It did not finish in time; it was killed.
    #[error("pm2 jlist did not finish within {} ms and was stopped", after.as_millis())]
    Timeout {
        /// The time limit.
        after: Duration,
    },
    /// Reading its output or waiting for it failed.
    #[error("cannot read the output of pm2 jlist: {0}")]
    Io(#[source] std::io::Error),
    /// It printed more than [`MAX_OUTPUT_BYTES`].
    #[error("pm2 jlist printed more than {limit} bytes; stopped reading")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// It exited with a failure.
    #[error("pm2 jlist failed ({status}): {preview}")]
    Failed {
        /// The exit status, in words.
        status: String,
        /// The start of what it printed (stderr, else stdout).
        preview: String,
    },
    /// Its output holds no JSON list.
    #[error("pm2 jlist printed no JSON list: {preview}")]
    NoJsonList {
        /// The start of what it printed.
        preview: String,
    },
}

/// Asks pm2 for its apps (within `timeout`) and merges in the `expected`
/// apps from the config that pm2 does not know (status `missing`).
///
/// When pm2 is not installed, or no pm2 daemon runs (pm2 is then not run at
/// all), the expected apps are all `missing`. When pm2 failed the list is
/// empty: the apps' state is unknown, and reporting them `missing` would
/// invite a restart that is not needed.
pub async fn list(expected: &[String], timeout: Duration) -> (Pm2State, Vec<Pm2App>) {
    list_with(Path::new(PM2_PROGRAM), expected, timeout).await
}

/// [`list`] with the pm2 program given: a path, or a name looked up on `PATH`.
/// The daemon is looked for in the `PM2_HOME` of this process's environment,
/// which the pm2 child inherits.
pub async fn list_with(
    program: &Path,
    expected: &[String],
    timeout: Duration,
) -> (Pm2State, Vec<Pm2App>) {
    list_in(&Pm2Home::from_env(), program, expected, timeout).await
}

/// [`list_with`] for the daemon of `home`. The caller makes sure `program`
/// would use that home (it inherits this process's environment).
pub async fn list_in(
    home: &Pm2Home,
    program: &Path,
    expected: &[String],
    timeout: Duration,
) -> (Pm2State, Vec<Pm2App>) {
    let daemon = daemon_in(home).await;
    if let Daemon::NotRunning { why } = daemon {
        if !program_exists(program) {
            return (Pm2State::NotInstalled, merge_expected(Vec::new(), expected));
        }
        tracing::debug!("pm2 not run: no daemon in {}: {why}", home.dir.display());
        return (
            Pm2State::NotRunning {
                pm2_home: Some(home.dir.display().to_string()),
            },
            merge_expected(Vec::new(), expected),
        );
    }
    match jlist(program, timeout).await {
        Ok(apps) => (Pm2State::Ok, merge_expected(apps, expected)),
        Err(Pm2Error::NotInstalled { .. }) => {
            (Pm2State::NotInstalled, merge_expected(Vec::new(), expected))
        }
        Err(e) => {
            tracing::debug!("pm2: {e}");
            (
                Pm2State::Error {
                    message: e.to_string(),
                },
                Vec::new(),
            )
        }
    }
}

/// Where a pm2 keeps its daemon's files, resolved as pm2 resolves them
/// (its `paths.js`): `PM2_HOME` when set and not empty, else `.pm2` in the
/// OS home (else `/etc/.pm2`); the pid file `pm2.pid` and the RPC socket
/// `rpc.sock` in it, unless `PM2_PID_FILE_PATH` or `PM2_DAEMON_RPC_PORT`
/// name others. On Windows the RPC socket is the named pipe
/// `\\.\pipe\rpc.sock`, one for every home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pm2Home {
    /// The folder.
    pub dir: PathBuf,
    /// The daemon's pid file.
    pub pid_file: PathBuf,
    /// The daemon's RPC socket (a named pipe on Windows).
    pub rpc_socket: PathBuf,
}

impl Pm2Home {
    /// The home a pm2 started with this process's environment uses.
    pub fn from_env() -> Pm2Home {
        Pm2Home::resolve(|key| std::env::var_os(key), dirs::home_dir())
    }

    /// The home for an environment (`var`) and OS home folder.
    pub fn resolve(var: impl Fn(&str) -> Option<OsString>, os_home: Option<PathBuf>) -> Pm2Home {
        // pm2 tests these as JavaScript does: an empty value is unset.
        let set = |key: &str| var(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = set("PM2_HOME").unwrap_or_else(|| match os_home {
            Some(home) => home.join(".pm2"),
            None => PathBuf::from("/etc/.pm2"),
        });
        let mut home = Pm2Home::at(dir);
        if let Some(pid_file) = set("PM2_PID_FILE_PATH") {
            home.pid_file = pid_file;
        }
        // On Windows pm2 sets the pipe after reading the environment.
        if cfg!(not(windows))
            && let Some(socket) = set("PM2_DAEMON_RPC_PORT")
        {
            home.rpc_socket = socket;
        }
        home
    }

    /// The home `dir`, with pm2's file names in it.
    pub fn at(dir: impl Into<PathBuf>) -> Pm2Home {
        let dir = dir.into();
        let rpc_socket = if cfg!(windows) {
            PathBuf::from(r"\\.\pipe\rpc.sock")
        } else {
            dir.join("rpc.sock")
        };
        Pm2Home {
            pid_file: dir.join("pm2.pid"),
            rpc_socket,
            dir,
        }
    }
}

/// Whether a pm2 daemon runs for a home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    /// It answers: pm2 can be asked without starting one.
    Running,
    /// None does: `pm2 jlist` would start one.
    NotRunning {
        /// Why it is thought not to, in words (for the log).
        why: String,
    },
}

/// What a pid file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidFile {
    /// There is none.
    Missing,
    /// It could not be read: not a regular file (a FIFO, a folder), a
    /// symbolic link, too large, no permission.
    Unreadable(String),
    /// It holds no pid.
    Garbage,
    /// It names a process that does not exist (left by a daemon that was
    /// killed, or from before a reboot).
    Dead(u32),
    /// It names a process that exists.
    Alive(u32),
}

/// A pid file is a number: anything longer is not one.
const MAX_PID_FILE_BYTES: u64 = 64;

/// How long connecting to the RPC socket may take. A local socket either
/// accepts or refuses at once; this only bounds a daemon too busy to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a pm2 daemon runs for `home`, decided as pm2 decides before it
/// starts one: its RPC socket accepts a connection (pm2's `pingDaemon`, which
/// also only connects and closes). That is the one thing that tells whether
/// `pm2 jlist` would start a daemon: a pid file can outlive its daemon (a
/// `kill -9`, a reboot) and then name a process that reuses the pid, and a
/// socket file left behind refuses connections. Nothing listening (no
/// socket, or refused) is not running, whatever the pid file says. When the
/// socket cannot tell (no permission, a path too long for a socket address,
/// a daemon too busy to accept), the pid file decides: a live process means
/// running, and pm2 is run to say what is wrong.
pub async fn daemon_in(home: &Pm2Home) -> Daemon {
    let refused = match connect(&home.rpc_socket).await {
        Connect::Accepted => return Daemon::Running,
        Connect::Refused(e) => e,
        Connect::Unknown(e) => match read_pid_file(&home.pid_file) {
            PidFile::Alive(_) => return Daemon::Running,
            pid => {
                return Daemon::NotRunning {
                    why: format!(
                        "cannot connect to {} ({e}), and the pid file {} is {}",
                        home.rpc_socket.display(),
                        home.pid_file.display(),
                        pid_words(&pid)
                    ),
                };
            }
        },
    };
    Daemon::NotRunning {
        why: format!(
            "nothing listens on {} ({refused})",
            home.rpc_socket.display()
        ),
    }
}

fn pid_words(pid: &PidFile) -> String {
    match pid {
        PidFile::Missing => "missing".to_owned(),
        PidFile::Unreadable(e) => format!("unreadable: {e}"),
        PidFile::Garbage => "not a pid".to_owned(),
        PidFile::Dead(pid) => format!("of process {pid}, which has exited"),
        PidFile::Alive(pid) => format!("of live process {pid}"),
    }
}

/// What connecting to the RPC socket said.
enum Connect {
    /// A daemon accepted.
    Accepted,
    /// Nothing listens: no such socket, or refused.
    Refused(std::io::Error),
    /// It cannot tell.
    Unknown(std::io::Error),
}

#[cfg(unix)]
async fn connect(socket: &Path) -> Connect {
    use std::io::ErrorKind;
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(socket)).await {
        // Dropped at once: closed, as pm2's own ping does.
        Ok(Ok(_stream)) => Connect::Accepted,
        Ok(Err(e)) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            Connect::Refused(e)
        }
        Ok(Err(e)) => Connect::Unknown(e),
        Err(_) => Connect::Unknown(std::io::Error::new(
            ErrorKind::TimedOut,
            format!("no answer within {} ms", CONNECT_TIMEOUT.as_millis()),
        )),
    }
}

#[cfg(windows)]
async fn connect(pipe: &Path) -> Connect {
    /// Every instance of the pipe is in use: a server is there.
    const ERROR_PIPE_BUSY: i32 = 231;
    // Opening a named pipe is connecting to it; it does not wait.
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pipe)
    {
        Ok(_pipe) => Connect::Accepted,
        Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) => Connect::Accepted,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Connect::Refused(e),
        Err(e) => Connect::Unknown(e),
    }
}

#[cfg(not(any(unix, windows)))]
async fn connect(_socket: &Path) -> Connect {
    Connect::Unknown(std::io::Error::other("no local sockets here"))
}

/// Reads a pm2 pid file without being led astray: opened without blocking
/// (a FIFO does not hang the probe) and without following a symbolic link
/// (pm2 writes a plain file), checked through the handle to be a regular
/// file, at most [`MAX_PID_FILE_BYTES`] read; a decimal pid, blanks around
/// it allowed (pm2 writes none).
pub fn read_pid_file(path: &Path) -> PidFile {
    use std::io::Read;

    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return PidFile::Missing,
        Err(e) => return PidFile::Unreadable(e.to_string()),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return PidFile::Unreadable("not a regular file".to_owned()),
        Err(e) => return PidFile::Unreadable(e.to_string()),
    }
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_PID_FILE_BYTES + 1).read_to_end(&mut bytes) {
        return PidFile::Unreadable(e.to_string());
    }
    if bytes.len() as u64 > MAX_PID_FILE_BYTES {
        return PidFile::Unreadable(format!("larger than {MAX_PID_FILE_BYTES} bytes"));
    }
    let Some(pid) = parse_pid(&bytes) else {
        return PidFile::Garbage;
    };
    if crate::outside::process_alive(pid) {
        PidFile::Alive(pid)
    } else {
        PidFile::Dead(pid)
    }
}

/// A positive decimal process id that fits the OS's (`i32`).
fn parse_pid(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: i32 = text.parse().ok()?;
    u32::try_from(pid).ok().filter(|&pid| pid > 0)
}

/// Whether `program` names a file: a path as given, or a name found in a
/// folder of `PATH`, as it would be looked up to start it. When `PATH` is
/// not set this cannot be told, and it is said to exist.
fn program_exists(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    match std::env::var_os("PATH") {
        Some(path) => std::env::split_paths(&path).any(|dir| dir.join(program).is_file()),
        None => true,
    }
}

/// Runs `program jlist` and parses what it prints.
pub async fn jlist(program: &Path, timeout: Duration) -> Result<Vec<Pm2App>, Pm2Error> {
    let mut command = Command::new(program);
    command
        .arg("jlist")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Also covers the caller's future being dropped mid-run.
        .kill_on_drop(true);
    #[cfg(windows)]
    {
        // CREATE_NO_WINDOW: a tray app must not flash a console every poll.
        command.creation_flags(0x0800_0000);
    }
    let program_name = program.display().to_string();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Pm2Error::NotInstalled {
                program: program_name,
            });
        }
        Err(source) => {
            return Err(Pm2Error::Spawn {
                program: program_name,
                source,
            });
        }
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Pm2Error::Io(std::io::Error::other(
            "pipes to pm2 were not set up",
        )));
    };

    let run = async {
        tokio::try_join!(
            read_stdout(stdout),
            async {
                read_capped(stderr, MAX_STDERR_BYTES)
                    .await
                    .map_err(Pm2Error::Io)
            },
            async { child.wait().await.map_err(Pm2Error::Io) },
        )
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    let (out, err, status) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            stop(&mut child).await;
            return Err(e);
        }
        Err(_) => {
            stop(&mut child).await;
            return Err(Pm2Error::Timeout { after: timeout });
        }
    };

    let out = String::from_utf8_lossy(&out);
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let shown = if err.trim().is_empty() { &out } else { &err };
        return Err(Pm2Error::Failed {
            status: status.to_string(),
            preview: preview(shown),
        });
    }
    parse_jlist(&out)
}

/// Kills the child and waits for it, so no zombie is left behind.
async fn stop(child: &mut tokio::process::Child) {
    if let Err(e) = child.kill().await {
        tracing::debug!("cannot stop pm2 jlist: {e}");
    }
}

/// Reads stdout up to [`MAX_OUTPUT_BYTES`]; more is an error, so a runaway
/// pm2 cannot make the daemon hold an unbounded buffer.
async fn read_stdout(stdout: impl AsyncRead + Unpin) -> Result<Vec<u8>, Pm2Error> {
    let mut buf = Vec::new();
    stdout
        .take(MAX_OUTPUT_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(Pm2Error::Io)?;
    if buf.len() > MAX_OUTPUT_BYTES {
        return Err(Pm2Error::TooLarge {
            limit: MAX_OUTPUT_BYTES,
        });
    }
    Ok(buf)
}

/// Keeps the first `limit` bytes and drains the rest, so the child never
/// blocks on a full pipe.
async fn read_capped(mut reader: impl AsyncRead + Unpin, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut reader)
        .take(limit as u64)
        .read_to_end(&mut buf)
        .await?;
    tokio::io::copy(&mut reader, &mut tokio::io::sink()).await?;
    Ok(buf)
}

/// Parses `pm2 jlist` output, tolerating banners and notices printed before
/// or after the JSON list. Uptimes are counted to now.
pub fn parse_jlist(output: &str) -> Result<Vec<Pm2App>, Pm2Error> {
    parse_jlist_at(output, Timestamp::now())
}

/// [`parse_jlist`], counting uptimes to `now`.
///
/// Each entry is read field by field: a field missing or of an unexpected
/// type is left unset rather than failing the list; an entry that is not an
/// object is skipped. `expected` is false in the result.
pub fn parse_jlist_at(output: &str, now: Timestamp) -> Result<Vec<Pm2App>, Pm2Error> {
    let entries = find_json_list(output).ok_or_else(|| Pm2Error::NoJsonList {
        preview: preview(output),
    })?;
    let now_ms = now.as_millisecond();
    Ok(entries.iter().filter_map(|e| app_from(e, now_ms)).collect())
}

/// The first JSON array that starts a line (after blanks). The banners pm2
/// prints are plain text lines, some starting with `[PM2]`, which are tried
/// and fail to parse; the list itself is printed without a trailing newline,
/// so a notice may follow it.
fn find_json_list(output: &str) -> Option<Vec<Value>> {
    let mut line_start = 0;
    for line in output.split_inclusive('\n') {
        let start = line_start + (line.len() - line.trim_start().len());
        line_start += line.len();
        let Some(rest) = output.get(start..) else {
            continue;
        };
        if !rest.starts_with('[') {
            continue;
        }
        // A stream deserializer stops after the first value, so text after
        // the list does not matter.
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        if let Some(Ok(Value::Array(items))) = values.next() {
            return Some(items);
        }
    }
    None
}

/// One `jlist` entry as a [`Pm2App`]; `None` when it is not an object.
fn app_from(entry: &Value, now_ms: i64) -> Option<Pm2App> {
    let entry = entry.as_object()?;
    let env = entry.get("pm2_env").and_then(Value::as_object);
    let env_field = |key: &str| env.and_then(|e| e.get(key));
    let monit = entry.get("monit").and_then(Value::as_object);
    let monit_field = |key: &str| monit.and_then(|m| m.get(key));

    let name = entry
        .get("name")
        .or_else(|| env_field("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let status = env_field("status")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let uptime_secs = if status == "online" {
        env_field("pm_uptime")
            .and_then(as_i64)
            // A start time ahead of our clock (skew) counts as just started.
            .map(|started_ms| u64::try_from(now_ms.saturating_sub(started_ms) / 1000).unwrap_or(0))
    } else {
        None
    };
    Some(Pm2App {
        name,
        pm_id: entry
            .get("pm_id")
            .or_else(|| env_field("pm_id"))
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok()),
        status,
        restarts: env_field("restart_time")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        uptime_secs,
        cpu_percent: monit_field("cpu").and_then(Value::as_f64).map(|c| c as f32),
        memory_bytes: monit_field("memory").and_then(as_u64),
        // pm2 says 0 for an app that is not running.
        pid: entry
            .get("pid")
            .and_then(Value::as_u64)
            .filter(|&pid| pid != 0)
            .and_then(|pid| u32::try_from(pid).ok()),
        expected: false,
    })
}

/// An integer, also when written as a float (`1.7e12`).
fn as_i64(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// A non-negative integer, also when written as a float.
fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// Marks the apps the config expects and adds those pm2 does not know.
fn merge_expected(mut apps: Vec<Pm2App>, expected: &[String]) -> Vec<Pm2App> {
    for app in &mut apps {
        app.expected = expected.contains(&app.name);
    }
    for name in expected {
        if !apps.iter().any(|a| &a.name == name) {
            apps.push(Pm2App {
                name: name.clone(),
                status: "missing".to_owned(),
                expected: true,
                ..Pm2App::default()
            });
        }
    }
    apps
}

/// The start of some output, on one line, for an error message: colour
/// codes removed, control characters and runs of blanks shown as one space.
fn preview(output: &str) -> String {
    let mut plain = String::new();
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-letter: a colour or cursor code.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(if c.is_control() { ' ' } else { c });
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.is_empty() {
        return "(no output)".to_owned();
    }
    match joined.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_is_one_short_plain_line() {
        assert_eq!(preview(""), "(no output)");
        assert_eq!(preview(" \n\t "), "(no output)");
        assert_eq!(
            preview("\u{1b}[31m\u{1b}[1m>>>> In-memory PM2 is out-of-date\u{1b}[22m\n\n  do: x"),
            ">>>> In-memory PM2 is out-of-date do: x"
        );
        let long = "é".repeat(500);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
    }

    #[test]
    fn json_list_is_found_among_banners() {
        assert_eq!(find_json_list("[]"), Some(vec![]));
        assert_eq!(
            find_json_list("[PM2] Spawning daemon\n[PM2] ok\n[]"),
            Some(vec![])
        );
        assert_eq!(
            find_json_list("notice\n  [{\"name\":\"a\"}]\n>>>> after"),
            Some(vec![serde_json::json!({"name": "a"})])
        );
        // Pretty-printed over several lines.
        assert_eq!(
            find_json_list("x\n[\n  1,\n  2\n]\n").map(|v| v.len()),
            Some(2)
        );
        assert_eq!(find_json_list("[PM2] no list here\n"), None);
        assert_eq!(find_json_list("{\"not\": \"a list\"}"), None);
        assert_eq!(find_json_list(""), None);
    }

    #[test]
    fn odd_entries_do_not_fail_the_list() {
        let now = Timestamp::from_millisecond(10_000).unwrap();
        let apps = parse_jlist_at(
            r#"[
                42,
                {"name": "bare"},
                {"name": "odd", "pm_id": "x", "pid": -1, "monit": [],
                 "pm2_env": {"status": "online", "restart_time": "many", "pm_uptime": 4000.0}},
                {"name": "future", "pm_id": 9, "pid": 77, "monit": {"cpu": 1.5, "memory": 2048.0},
                 "pm2_env": {"status": "online", "restart_time": 3, "pm_uptime": 20000}}
            ]"#,
            now,
        )
        .unwrap();
        assert_eq!(apps.len(), 3);
        assert_eq!(
            apps[0],
            Pm2App {
                name: "bare".into(),
                status: "unknown".into(),
                ..Pm2App::default()
            }
        );
        assert_eq!(apps[1].name, "odd");
        assert_eq!(apps[1].pm_id, None);
        assert_eq!(apps[1].pid, None);
        assert_eq!(apps[1].restarts, 0);
        assert_eq!(apps[1].uptime_secs, Some(6));
        assert_eq!(apps[1].cpu_percent, None);
        assert_eq!(
            apps[2],
            Pm2App {
                name: "future".into(),
                pm_id: Some(9),
                status: "online".into(),
                restarts: 3,
                uptime_secs: Some(0),
                cpu_percent: Some(1.5),
                memory_bytes: Some(2048),
                pid: Some(77),
                expected: false,
            }
        );
    }

    #[test]
    fn expected_apps_are_marked_and_missing_ones_added() {
        let apps = vec![Pm2App {
            name: "a".into(),
            status: "online".into(),
            ..Pm2App::default()
        }];
        let merged = merge_expected(apps, &["a".into(), "b".into(), "b".into()]);
        assert_eq!(merged.len(), 2);
        assert!(merged[0].expected);
        assert_eq!(merged[0].status, "online");
        assert_eq!(
            (merged[1].name.as_str(), merged[1].status.as_str()),
            ("b", "missing")
        );
        assert!(merged[1].expected);
        assert_eq!(merged[1].pm_id, None);
    }

    #[test]
    fn pm2_home_is_resolved_as_pm2_does() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let home = Some(PathBuf::from("/home/u"));
        let h = Pm2Home::resolve(vars(&[]), home.clone());
        assert_eq!(h.dir, Path::new("/home/u/.pm2"));
        assert_eq!(h.pid_file, Path::new("/home/u/.pm2/pm2.pid"));
        // An empty PM2_HOME is unset, as in JavaScript.
        assert_eq!(Pm2Home::resolve(vars(&[("PM2_HOME", "")]), home.clone()), h);
        let h = Pm2Home::resolve(vars(&[("PM2_HOME", "/srv/pm2")]), home.clone());
        assert_eq!(h.dir, Path::new("/srv/pm2"));
        assert_eq!(h.pid_file, Path::new("/srv/pm2/pm2.pid"));
        assert_eq!(
            Pm2Home::resolve(vars(&[]), None).dir,
            Path::new("/etc/.pm2")
        );
        let h = Pm2Home::resolve(
            vars(&[
                ("PM2_PID_FILE_PATH", "/run/pm2.pid"),
                ("PM2_DAEMON_RPC_PORT", "/run/rpc.sock"),
            ]),
            home,
        );
        assert_eq!(h.pid_file, Path::new("/run/pm2.pid"));
        if cfg!(windows) {
            assert_eq!(h.rpc_socket, Path::new(r"\\.\pipe\rpc.sock"));
        } else {
            assert_eq!(h.rpc_socket, Path::new("/run/rpc.sock"));
            assert_eq!(
                Pm2Home::at("/srv/pm2").rpc_socket,
                Path::new("/srv/pm2/rpc.sock")
            );
        }
    }

    #[test]
    fn pids_are_positive_decimal_numbers() {
        assert_eq!(parse_pid(b"14665"), Some(14665));
        assert_eq!(parse_pid(b" 42\n"), Some(42));
        for garbage in [
            &b""[..],
            b"\n",
            b"abc",
            b"12abc",
            b"1 2",
            b"-3",
            b"+3",
            b"0",
            b"2147483648",
            b"99999999999999999999",
            b"\xff\xfe1",
        ] {
            assert_eq!(parse_pid(garbage), None, "{garbage:?}");
        }
    }

    /// A pid that was just in use and is no longer: a child that exited and
    /// was reaped.
    #[cfg(unix)]
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[cfg(unix)]
    #[test]
    fn pid_files_live_dead_garbage_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pm2.pid");
        assert_eq!(read_pid_file(&path), PidFile::Missing);

        let me = std::process::id();
        std::fs::write(&path, me.to_string()).unwrap();
        assert_eq!(read_pid_file(&path), PidFile::Alive(me));

        let dead = dead_pid();
        std::fs::write(&path, dead.to_string()).unwrap();
        assert_eq!(read_pid_file(&path), PidFile::Dead(dead));

        std::fs::write(&path, "not a pid").unwrap();
        assert_eq!(read_pid_file(&path), PidFile::Garbage);
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_pid_file(&path), PidFile::Garbage);

        // Digits, but far more than a pid: not read past the bound.
        std::fs::write(&path, "1".repeat(1 << 20)).unwrap();
        assert!(matches!(read_pid_file(&path), PidFile::Unreadable(_)));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_a_folder_or_a_link_is_not_read() {
        use std::os::unix::ffi::OsStrExt;

        let dir = tempfile::tempdir().unwrap();
        // A FIFO with no writer: opening it to read would block forever.
        let fifo = dir.path().join("pm2.pid");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(read_pid_file(&fifo)));
        let read = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reading a FIFO pid file must not block");
        assert_eq!(read, PidFile::Unreadable("not a regular file".into()));

        assert!(matches!(read_pid_file(dir.path()), PidFile::Unreadable(_)));

        // A link to a file naming a live process is not followed.
        let real = dir.path().join("real.pid");
        std::fs::write(&real, std::process::id().to_string()).unwrap();
        let link = dir.path().join("link.pid");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(read_pid_file(&link), PidFile::Unreadable(_)));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_daemon_is_running_when_its_socket_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let home = Pm2Home::at(dir.path());
        // Nothing at all.
        assert!(matches!(daemon_in(&home).await, Daemon::NotRunning { .. }));

        // A listener (never accepting: the kernel queues the connection).
        let listener = std::os::unix::net::UnixListener::bind(&home.rpc_socket).unwrap();
        assert_eq!(daemon_in(&home).await, Daemon::Running);

        // Killed without cleaning up: the socket file and a pid file stay.
        // Even with the pid reused by a live process, nothing listens.
        drop(listener);
        assert!(home.rpc_socket.exists());
        std::fs::write(&home.pid_file, std::process::id().to_string()).unwrap();
        let Daemon::NotRunning { why } = daemon_in(&home).await else {
            panic!("a socket nobody listens on is not a daemon");
        };
        assert!(why.starts_with("nothing listens on"), "{why}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn when_the_socket_cannot_tell_the_pid_file_decides() {
        let dir = tempfile::tempdir().unwrap();
        // Longer than a socket address holds: connecting fails without
        // saying whether anything listens.
        let long = dir.path().join("h".repeat(120));
        std::fs::create_dir(&long).unwrap();
        let home = Pm2Home::at(&long);
        assert!(matches!(
            connect(&home.rpc_socket).await,
            Connect::Unknown(_)
        ));
        let Daemon::NotRunning { why } = daemon_in(&home).await else {
            panic!("no pid file: not running");
        };
        assert!(why.ends_with("is missing"), "{why}");
        std::fs::write(&home.pid_file, dead_pid().to_string()).unwrap();
        assert!(matches!(daemon_in(&home).await, Daemon::NotRunning { .. }));
        std::fs::write(&home.pid_file, std::process::id().to_string()).unwrap();
        assert_eq!(daemon_in(&home).await, Daemon::Running);
    }

    #[test]
    fn pm2_states_on_the_wire_and_one_from_a_newer_peer() {
        let state = Pm2State::NotRunning {
            pm2_home: Some("/home/u/.pm2".into()),
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "not_running", "pm2_home": "/home/u/.pm2"})
        );
        assert_eq!(serde_json::from_value::<Pm2State>(json).unwrap(), state);
        assert_eq!(
            serde_json::from_str::<Pm2State>(r#"{"status": "not_running"}"#).unwrap(),
            Pm2State::NotRunning { pm2_home: None }
        );
        assert_eq!(
            serde_json::from_str::<Pm2State>(r#"{"status": "not_installed"}"#).unwrap(),
            Pm2State::NotInstalled
        );
        // A state added later, with fields of its own: unknown, not a failure.
        assert_eq!(
            serde_json::from_str::<Pm2State>(r#"{"status": "sleeping", "since": 3}"#).unwrap(),
            Pm2State::Unknown
        );
    }

    #[test]
    fn a_program_is_looked_for_as_it_would_be_started() {
        let dir = tempfile::tempdir().unwrap();
        let pm2 = dir.path().join("pm2");
        assert!(!program_exists(&pm2));
        std::fs::write(&pm2, "").unwrap();
        assert!(program_exists(&pm2));
        assert!(!program_exists(Path::new("clawfleet-no-such-program")));
    }
}
