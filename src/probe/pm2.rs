//! pm2 apps from `pm2 jlist`. No pm2 on the machine is a state, not an error.
//!
//! `pm2 jlist` is a Node program: slow to start, and it prints banners and
//! update notices on stdout around the JSON. So it runs with a time limit, its
//! output is read up to a bound, and the JSON list is looked for rather than
//! assumed to be the whole output.

use std::path::Path;
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
/// When pm2 is not installed the expected apps are all `missing`. When pm2
/// failed the list is empty: the apps' state is unknown, and reporting them
/// `missing` would invite a restart that is not needed.
pub async fn list(expected: &[String], timeout: Duration) -> (Pm2State, Vec<Pm2App>) {
    list_with(Path::new(PM2_PROGRAM), expected, timeout).await
}

/// [`list`] with the pm2 program given: a path, or a name looked up on `PATH`.
pub async fn list_with(
    program: &Path,
    expected: &[String],
    timeout: Duration,
) -> (Pm2State, Vec<Pm2App>) {
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
}
