//! `clawfleet clawdbot wire` and `unwire`.
//!
//! Wiring points every Clawdbot provider whose `baseUrl` is an Ollama of the
//! fleet (a machine's `ollama_url`, or any `:11434`) at this machine's
//! inference proxy, keeping the machine it named first:
//! `http://HOST:11434/v1` for the Mac Mini becomes
//! `http://127.0.0.1:11435/via/macmini/v1`, which the proxy serves from the
//! Mac Mini while it can and from the rest of the fleet when it cannot.
//!
//! The file is JSON5 edited by hand: only the bytes of each `baseUrl` string
//! change (comments, quoting, commas and spacing stay), the file is replaced
//! atomically with its permissions, and the original is kept beside it
//! (`clawdbot.json.clawfleet-<time>`). Wiring twice changes nothing the
//! second time. Unwiring restores the original byte for byte, unless the
//! file changed since it was wired: then it refuses, and says where the
//! original is.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spans;
use crate::fleet::Fleet;

/// The record of a wiring, in the data folder.
pub const STATE_FILE: &str = "clawdbot-wire.json";

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// No Clawdbot config where it was looked for.
    #[error(
        "no Clawdbot config at {}: set CLAWDBOT_CONFIG_PATH, or [clawdbot] config_path in ClawFleet's config",
        .0.display()
    )]
    Missing(PathBuf),
    /// It could not be read or written.
    #[error("{}: {why}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// It is not JSON5.
    #[error("{} is not valid JSON5 ({why}); nothing was changed", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what.
        why: String,
    },
    /// Unwire found the file changed since it was wired.
    #[error(
        "{} changed since `clawfleet clawdbot wire` wrote it, so it is left as it is: your edits would be lost. The original is {}; copy it back by hand, or run `clawfleet clawdbot unwire --force` to restore it anyway",
        path.display(),
        backup.display()
    )]
    ChangedSinceWire {
        /// The config.
        path: PathBuf,
        /// The original.
        backup: PathBuf,
    },
    /// Unwire with nothing wired.
    #[error("nothing to unwire: `clawfleet clawdbot wire` has not changed {} (no {} in {})", path.display(), STATE_FILE, data_dir.display())]
    NotWired {
        /// The config.
        path: PathBuf,
        /// Where the record would be.
        data_dir: PathBuf,
    },
}

/// One provider pointed at the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The provider's name (`ollama-macmini`).
    pub provider: String,
    /// Its `baseUrl` before.
    pub from: String,
    /// And after.
    pub to: String,
    /// The machine it keeps going to first, when known.
    pub machine: Option<String>,
    /// 1-based line of the value.
    pub line: usize,
}

/// A provider left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The provider's name.
    pub provider: String,
    /// Why.
    pub why: String,
}

/// What wiring would do to a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The text after.
    pub text: String,
    /// The providers changed.
    pub changes: Vec<Change>,
    /// The providers left alone.
    pub skipped: Vec<Skipped>,
}

/// Which machine of the fleet an Ollama URL is, if any; `Some(None)` for an
/// Ollama (port 11434) that is no machine we know.
fn ollama_of(url: &reqwest::Url, fleet: &Fleet) -> Option<Option<String>> {
    let host = url
        .host_str()?
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    for m in fleet.machines() {
        let Some(theirs) = m
            .ollama_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
        else {
            continue;
        };
        let their_host = theirs
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        if theirs.port_or_known_default() != Some(port) {
            continue;
        }
        let same_host = their_host == host
            || m.hostname
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&host))
            || m.tailnet_ip.as_deref() == Some(host.as_str())
            || (loopback && m.id == fleet.this.id);
        if same_host {
            return Some(Some(m.id.clone()));
        }
    }
    if port == 11434 {
        let known = fleet.machines().find(|m| {
            m.hostname
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&host))
                || m.tailnet_ip.as_deref() == Some(host.as_str())
        });
        return Some(match known {
            Some(m) => Some(m.id.clone()),
            None if loopback => Some(fleet.this.id.clone()),
            None => None,
        });
    }
    None
}

/// The proxy's base address as Clawdbot should use it (`http://127.0.0.1:11435`).
pub fn proxy_base(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => format!("http://127.0.0.1:{}", a.port()),
        Ok(a) => format!("http://{a}"),
        Err(_) => format!("http://{listen}"),
    }
}

/// Plans the wiring of `text` (pure). `proxy` is [`proxy_base`].
pub fn plan(text: &str, fleet: &Fleet, proxy: &str) -> Result<Planned, String> {
    // A full parser first: the file must be JSON5, and the scanner must see
    // the same values it does.
    let parsed: serde_json::Value = json5::from_str(text).map_err(|e| e.to_string())?;
    let strings = spans::string_values(text).map_err(|e| e.to_string())?;
    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for s in &strings {
        let [a, b, provider, key] = s.path.as_slice() else {
            continue;
        };
        if a != "models" || b != "providers" || key != "baseUrl" {
            continue;
        }
        if parsed["models"]["providers"][provider.as_str()]["baseUrl"].as_str()
            != Some(s.value.as_str())
        {
            return Err(format!(
                "the provider {provider:?}'s baseUrl could not be located safely in the text; nothing was changed"
            ));
        }
        let Ok(url) = reqwest::Url::parse(&s.value) else {
            skipped.push(Skipped {
                provider: provider.clone(),
                why: format!("its baseUrl {:?} is not a URL", s.value),
            });
            continue;
        };
        if s.value.starts_with(proxy) {
            skipped.push(Skipped {
                provider: provider.clone(),
                why: "already goes through this machine's proxy".to_owned(),
            });
            continue;
        }
        let Some(machine) = ollama_of(&url, fleet) else {
            skipped.push(Skipped {
                provider: provider.clone(),
                why: format!("{} is not an Ollama of the fleet", s.value),
            });
            continue;
        };
        let via = machine
            .as_deref()
            .map(|m| format!("/via/{m}"))
            .unwrap_or_default();
        let path = url.path().trim_end_matches('/');
        let to = format!("{proxy}{via}{path}");
        if to.contains(s.quote) || to.contains('\\') {
            return Err(format!(
                "the new baseUrl {to:?} cannot be written in {} quotes",
                s.quote
            ));
        }
        let line = text[..s.span.start].matches('\n').count() + 1;
        edits.push((s.span.clone(), format!("{q}{to}{q}", q = s.quote)));
        changes.push(Change {
            provider: provider.clone(),
            from: s.value.clone(),
            to,
            machine,
            line,
        });
    }
    let mut out = text.to_owned();
    for (span, with) in edits.into_iter().rev() {
        out.replace_range(span, &with);
    }
    Ok(Planned {
        text: out,
        changes,
        skipped,
    })
}

/// The lines that differ, as a unified diff with one line of context.
pub fn diff(path: &Path, before: &str, after: &str) -> String {
    let a: Vec<&str> = before.split_inclusive('\n').collect();
    let b: Vec<&str> = after.split_inclusive('\n').collect();
    let mut out = format!("--- {p}\n+++ {p} (wired)\n", p = path.display());
    if a.len() != b.len() {
        // Only values within lines change; a different line count means a
        // change we did not make.
        out.push_str("(the line count differs)\n");
        return out;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] == b[i] {
            i += 1;
            continue;
        }
        let start = i.saturating_sub(1);
        let mut end = i;
        while end < a.len() && a[end] != b[end] {
            end += 1;
        }
        let stop = (end + 1).min(a.len());
        out.push_str(&format!(
            "@@ -{0},{1} +{0},{1} @@\n",
            start + 1,
            stop - start
        ));
        for (j, line) in a.iter().enumerate().take(stop).skip(start) {
            let nl = |l: &str| {
                if l.ends_with('\n') {
                    l.to_owned()
                } else {
                    format!("{l}\n")
                }
            };
            if j >= i && j < end {
                out.push_str(&format!("-{}", nl(line)));
                out.push_str(&format!("+{}", nl(b[j])));
            } else {
                out.push_str(&format!(" {}", nl(line)));
            }
        }
        i = end;
    }
    out
}

/// What `wire` did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config file.
    pub path: PathBuf,
    /// Providers changed (or to change, in a dry run).
    pub changes: Vec<Change>,
    /// Providers left alone.
    pub skipped: Vec<Skipped>,
    /// The exact diff.
    pub diff: String,
    /// The original, kept beside the file (not in a dry run or when
    /// nothing changed).
    pub backup: Option<PathBuf>,
    /// Only said what it would do.
    pub dry_run: bool,
}

/// The record kept in the data folder between `wire` and `unwire`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    config: PathBuf,
    backup: PathBuf,
    /// The file exactly as `wire` wrote it.
    wired: String,
    at: String,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WireError + '_ {
    move |e| WireError::Io {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// Reads the Clawdbot config (at most 16 MiB).
fn read(path: &Path) -> Result<String, WireError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            WireError::Missing(path.to_path_buf())
        } else {
            io(path)(e)
        }
    })?;
    if meta.len() > 16 << 20 {
        return Err(WireError::Io {
            path: path.to_path_buf(),
            why: format!("{} bytes: too large for a Clawdbot config", meta.len()),
        });
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    String::from_utf8(bytes).map_err(|_| WireError::Io {
        path: path.to_path_buf(),
        why: "not UTF-8 text".to_owned(),
    })
}

/// Replaces `path` with `text` atomically, keeping its permissions.
fn write_atomic(path: &Path, text: &str) -> Result<(), WireError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("clawdbot.json");
    let tmp = dir.join(format!(".{name}.clawfleet-{}", std::process::id()));
    let perms = std::fs::metadata(path).map(|m| m.permissions()).ok();
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Some(p) = &perms {
            f.set_permissions(p.clone())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(())
}

/// Wires the Clawdbot config at `path`. `data_dir` keeps the record that
/// `unwire` needs.
pub fn wire(
    path: &Path,
    data_dir: &Path,
    fleet: &Fleet,
    proxy: &str,
    dry_run: bool,
) -> Result<Report, WireError> {
    let text = read(path)?;
    let planned = plan(&text, fleet, proxy).map_err(|why| WireError::Syntax {
        path: path.to_path_buf(),
        why,
    })?;
    let mut report = Report {
        path: path.to_path_buf(),
        diff: if planned.changes.is_empty() {
            String::new()
        } else {
            diff(path, &text, &planned.text)
        },
        changes: planned.changes,
        skipped: planned.skipped,
        backup: None,
        dry_run,
    };
    if dry_run || report.changes.is_empty() {
        return Ok(report);
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("clawdbot.json");
    let backup = path.with_file_name(format!("{name}.clawfleet-{stamp}"));
    // The original, first: with the same permissions (it holds API keys).
    std::fs::copy(path, &backup).map_err(io(&backup))?;
    write_atomic(path, &planned.text)?;
    let state = State {
        config: path.to_path_buf(),
        backup: backup.clone(),
        wired: planned.text,
        at: stamp,
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let state_path = data_dir.join(STATE_FILE);
    let json = serde_json::to_string_pretty(&state).map_err(|e| WireError::Io {
        path: state_path.clone(),
        why: e.to_string(),
    })?;
    std::fs::write(&state_path, json).map_err(io(&state_path))?;
    report.backup = Some(backup);
    Ok(report)
}

/// Restores the original saved by `wire`, byte for byte. Refuses when the
/// file changed since, unless `force`.
pub fn unwire(path: &Path, data_dir: &Path, force: bool) -> Result<PathBuf, WireError> {
    let state_path = data_dir.join(STATE_FILE);
    let state: State = match std::fs::read_to_string(&state_path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| WireError::Io {
            path: state_path.clone(),
            why: format!("unreadable ({e}); the original is beside the Clawdbot config, named *.clawfleet-<time>"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WireError::NotWired {
                path: path.to_path_buf(),
                data_dir: data_dir.to_path_buf(),
            });
        }
        Err(e) => return Err(io(&state_path)(e)),
    };
    let target = &state.config;
    let now = read(target)?;
    if now != state.wired && !force {
        return Err(WireError::ChangedSinceWire {
            path: target.clone(),
            backup: state.backup.clone(),
        });
    }
    let original = std::fs::read(&state.backup).map_err(io(&state.backup))?;
    let original = String::from_utf8(original).map_err(|_| WireError::Io {
        path: state.backup.clone(),
        why: "not UTF-8 text".to_owned(),
    })?;
    write_atomic(target, &original)?;
    std::fs::remove_file(&state_path).map_err(io(&state_path))?;
    Ok(state.backup)
}
