//! Running one command (a heal action's, or another program's report such as
//! `openclaw health --json`): no shell, stdin closed, a time limit (the whole
//! process group is killed when it is reached), and at most a set number of
//! bytes of each output kept ([`MAX_OUTPUT`] unless said) — the rest is read
//! and dropped, so a chatty command can neither block on a full pipe nor
//! fill memory.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes kept of each of stdout and stderr.
pub const MAX_OUTPUT: usize = 16 * 1024;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ran {
    /// The argv run.
    pub argv: Vec<String>,
    /// Exit code, when it exited by itself.
    pub code: Option<i32>,
    /// It exited with code 0.
    pub success: bool,
    /// It was killed at the time limit.
    pub timed_out: bool,
    /// Could not be started (not installed, not executable): why.
    pub spawn_error: Option<String>,
    /// The start of its stdout (lossy UTF-8).
    pub stdout: String,
    /// The start of its stderr.
    pub stderr: String,
    /// Some output was dropped past [`MAX_OUTPUT`].
    pub truncated: bool,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
}

impl Ran {
    /// `argv`, not (yet) run: no exit code, no output, not a success.
    pub fn not_run(argv: &[String]) -> Ran {
        Ran {
            argv: argv.to_vec(),
            code: None,
            success: false,
            timed_out: false,
            spawn_error: None,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            duration_ms: 0.0,
        }
    }

    /// One line saying how it went.
    pub fn summary(&self) -> String {
        let cmd = self.argv.join(" ");
        if let Some(e) = &self.spawn_error {
            return format!("`{cmd}` could not start: {e}");
        }
        if self.timed_out {
            return format!("`{cmd}` did not finish in time and was killed");
        }
        let tail = |s: &str| {
            let line = s.trim().lines().last().unwrap_or("").trim().to_owned();
            let short: String = line.chars().take(200).collect();
            short
        };
        let why = if !self.stderr.trim().is_empty() {
            tail(&self.stderr)
        } else {
            tail(&self.stdout)
        };
        match (self.success, self.code) {
            (true, _) => format!("`{cmd}` succeeded"),
            (false, Some(c)) if why.is_empty() => format!("`{cmd}` failed with exit code {c}"),
            (false, Some(c)) => format!("`{cmd}` failed with exit code {c}: {why}"),
            (false, None) => format!("`{cmd}` was killed by a signal"),
        }
    }
}

async fn drain(mut from: impl AsyncRead + Unpin, max: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, truncated),
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
}

/// Runs `argv` and waits for it, at most `limit`. Never panics; every way
/// of failing is in the result.
pub async fn run(argv: &[String], limit: Duration) -> Ran {
    run_with(argv, &[], limit, MAX_OUTPUT).await
}

/// [`run`] with variables added to the environment, and `max_output` bytes
/// kept of each output.
pub async fn run_with(
    argv: &[String],
    envs: &[(&str, &std::ffi::OsStr)],
    limit: Duration,
    max_output: usize,
) -> Ran {
    let started = Instant::now();
    let mut ran = Ran::not_run(argv);
    let Some((program, args)) = argv.split_first() else {
        ran.spawn_error = Some("empty command".to_owned());
        return ran;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    #[cfg(windows)]
    {
        // CREATE_NO_WINDOW: a tray app must not flash a console.
        cmd.creation_flags(0x0800_0000);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            ran.spawn_error = Some(e.to_string());
            return ran;
        }
    };
    let pid = child.id();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let out = tokio::spawn(async move {
        match out {
            Some(o) => drain(o, max_output).await,
            None => (Vec::new(), false),
        }
    });
    let err = tokio::spawn(async move {
        match err {
            Some(e) => drain(e, max_output).await,
            None => (Vec::new(), false),
        }
    });
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) => {
            ran.code = status.code();
            ran.success = status.success();
        }
        Ok(Err(e)) => ran.spawn_error = Some(format!("cannot wait for it: {e}")),
        Err(_) => {
            ran.timed_out = true;
            kill_group(pid);
            let _ = child.kill().await;
        }
    }
    // The pipes close when the process (group) is gone; a grandchild that
    // escaped the group could hold them open, so do not wait forever.
    let grace = Duration::from_secs(2);
    if let Ok(Ok((bytes, t))) = tokio::time::timeout(grace, out).await {
        ran.stdout = String::from_utf8_lossy(&bytes).into_owned();
        ran.truncated |= t;
    }
    if let Ok(Ok((bytes, t))) = tokio::time::timeout(grace, err).await {
        ran.stderr = String::from_utf8_lossy(&bytes).into_owned();
        ran.truncated |= t;
    }
    ran.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    ran
}

/// Starts `argv` detached (an app that keeps running) and returns at once.
pub fn spawn_detached(argv: &[String]) -> Ran {
    let mut ran = Ran::not_run(argv);
    let Some((program, args)) = argv.split_first() else {
        ran.spawn_error = Some("empty command".to_owned());
        return ran;
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    match cmd.spawn() {
        Ok(mut child) => {
            ran.success = true;
            // Reaped when it ends, so it never lingers as our zombie.
            let _ = std::thread::Builder::new()
                .name("clawfleet-detached".into())
                .spawn(move || child.wait());
        }
        Err(e) => ran.spawn_error = Some(e.to_string()),
    }
    ran
}

#[cfg(unix)]
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill has no memory preconditions; a negative pid names
        // the process group the child leads (process_group(0) above).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: Option<u32>) {}
