//! `clawfleet openclaw wire` and `unwire`: the agent's Ollama providers
//! pointed at this machine's inference proxy, and back.
//!
//! **What changes.** Every provider whose `baseUrl` is an Ollama of the
//! fleet (a machine's `ollama_url`, or any `:11434`) goes through the proxy
//! and keeps going first to the machine it named:
//! - OpenClaw: the proxy's native Ollama endpoint, `api: "ollama"` and no
//!   `/v1` (its docs: a `/v1` base URL breaks tool calling), so
//!   `http://HOST:11434` for the Mac Mini becomes
//!   `http://127.0.0.1:11435/via/macmini`; a provider still on
//!   `openai-completions` with `/v1` is moved to `api: "ollama"`;
//! - a legacy Clawdbot (no native Ollama API): its `openai-completions`
//!   providers keep `/v1`: `http://127.0.0.1:11435/via/macmini/v1`;
//! - OpenClaw without a `models.providers.ollama` entry, whose models are
//!   `ollama/…` (found by discovery at 127.0.0.1:11434): an explicit
//!   `ollama` provider at the proxy is added; OpenClaw then discovers the
//!   fleet's models through the proxy's `/api/tags` and `/api/show`;
//! - with `anthropic`, its Anthropic provider too, so cloud spend is
//!   metered live (the proxy passes the agent's own key on);
//! - with `machine`, every provider wired goes to that machine first.
//!
//! **How the file is edited.** It is JSON5, often edited by hand: only the
//! bytes of each changed string change, and a member added goes right after
//! its object's `{`; comments, quoting, commas and spacing stay. A
//! symbolic link is followed and the file it names is edited, keeping its
//! owner and mode. The original is kept beside it under a name no other
//! file has (`openclaw.json.clawfleet-<time>`, never overwritten), the
//! record `unwire` needs is written before the file is replaced, and the
//! file is replaced atomically (a temporary file renamed over it). Wiring
//! twice changes nothing the second time; wiring a file changed since keeps
//! the first original, so `unwire` always goes back to before ClawFleet.
//! Unwiring restores that original byte for byte, unless the file changed
//! since it was wired: then it refuses, and says where the original is.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spans;
use crate::fleet::Fleet;
use crate::snapshot::AgentKind;

/// The record of a wiring, in the data folder.
pub const STATE_FILE: &str = "openclaw-wire.json";
/// The record's name before OpenClaw's rename, still read.
const OLD_STATE_FILE: &str = "clawdbot-wire.json";
/// The largest config file edited.
const MAX_CONFIG: u64 = 16 << 20;

/// What went wrong. Every variant names the file, and once the config was
/// changed, where the original is.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// No agent config where it was looked for.
    #[error(
        "no OpenClaw config at {}: set OPENCLAW_CONFIG_PATH (or OPENCLAW_STATE_DIR), or [openclaw] config_path in ClawFleet's config",
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
        "{} changed since `clawfleet openclaw wire` wrote it, so it is left as it is: your edits would be lost. The original is {}; copy it back by hand, or run `clawfleet openclaw unwire --force` to restore it anyway",
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
    #[error("nothing to unwire: `clawfleet openclaw wire` has not changed {} (no {} in {})", path.display(), STATE_FILE, data_dir.display())]
    NotWired {
        /// The config.
        path: PathBuf,
        /// Where the record would be.
        data_dir: PathBuf,
    },
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The provider (`ollama-macmini`).
    pub provider: String,
    /// The key changed or added (`baseUrl`, `api`, or `provider` for a
    /// provider added whole).
    pub key: String,
    /// Its value before, if it had one.
    pub from: Option<String>,
    /// And after.
    pub to: String,
    /// The machine it goes to first, when known.
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

/// What to wire besides the Ollama providers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The agent: OpenClaw gets the native endpoint, a legacy Clawdbot `/v1`.
    pub kind: AgentKind,
    /// Every provider goes to this machine first (a machine id).
    pub machine: Option<String>,
    /// Its Anthropic provider through the proxy too.
    pub anthropic: bool,
    /// How long the proxy waits for a machine's first byte (`[proxy]
    /// first_byte_timeout_secs`): a provider that allows longer (a cold
    /// load of a big model) is named, so the proxy does not cut it first.
    pub first_byte_timeout_secs: Option<u64>,
}

/// What wiring would do to a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The text after.
    pub text: String,
    /// What changes.
    pub changes: Vec<Change>,
    /// The providers left alone.
    pub skipped: Vec<Skipped>,
    /// Things to know about the result.
    pub notes: Vec<String>,
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

/// The proxy's base address as the agent should use it
/// (`http://127.0.0.1:11435`).
pub fn proxy_base(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => format!("http://127.0.0.1:{}", a.port()),
        Ok(a) => format!("http://{a}"),
        Err(_) => format!("http://{listen}"),
    }
}

/// One edit of the text: a byte range and what replaces it.
type Edit = (std::ops::Range<usize>, String);

/// A JSON string literal (double-quoted, escaped as JSON).
fn literal(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// Plans the wiring of `text` (pure). `proxy` is [`proxy_base`].
pub fn plan(text: &str, fleet: &Fleet, proxy: &str, opts: &Options) -> Result<Planned, String> {
    // A full parser first: the file must be JSON5, and the scanner must see
    // the same values it does.
    let parsed = crate::outside::parse_json5(text)?;
    let (strings, objects) = spans::scan(text).map_err(|e| e.to_string())?;
    let providers = parsed["models"]["providers"].as_object();
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    let mut notes = Vec::new();
    let mut edits: Vec<Edit> = Vec::new();
    let string_at = |provider: &str, key: &str| {
        strings.iter().find(|s| {
            matches!(s.path.as_slice(), [a, b, p, k] if a == "models" && b == "providers" && p == provider && k == key)
        })
    };
    let replace = |s: &spans::StringValue, to: &str| -> Result<Edit, String> {
        if to.contains(s.quote) || to.contains('\\') {
            return Err(format!(
                "the new value {to:?} cannot be written in {} quotes",
                s.quote
            ));
        }
        Ok((s.span.clone(), format!("{q}{to}{q}", q = s.quote)))
    };
    let via = |machine: Option<&str>| {
        opts.machine
            .as_deref()
            .or(machine)
            .map(|m| format!("/via/{m}"))
            .unwrap_or_default()
    };

    // In the file's order (the parsed map is sorted by name).
    let in_order = objects.iter().filter_map(|o| match o.path.as_slice() {
        [a, b, name] if a == "models" && b == "providers" => {
            providers.and_then(|p| p.get_key_value(name.as_str()))
        }
        _ => None,
    });
    for (name, provider) in in_order {
        if name == "anthropic" && opts.anthropic {
            continue;
        }
        let Some(base) = string_at(name, "baseUrl") else {
            continue;
        };
        if parsed["models"]["providers"][name.as_str()]["baseUrl"].as_str()
            != Some(base.value.as_str())
        {
            return Err(format!(
                "the provider {name:?}'s baseUrl could not be located safely in the text; nothing was changed"
            ));
        }
        let Ok(url) = reqwest::Url::parse(&base.value) else {
            skipped.push(Skipped {
                provider: name.clone(),
                why: format!("its baseUrl {:?} is not a URL", base.value),
            });
            continue;
        };
        if base.value.starts_with(proxy) {
            skipped.push(Skipped {
                provider: name.clone(),
                why: "already goes through this machine's proxy".to_owned(),
            });
            continue;
        }
        let Some(machine) = ollama_of(&url, fleet) else {
            skipped.push(Skipped {
                provider: name.clone(),
                why: format!("{} is not an Ollama of the fleet", base.value),
            });
            continue;
        };
        let machine = opts.machine.clone().or(machine);
        if let (Some(ours), Some(theirs)) = (
            opts.first_byte_timeout_secs,
            provider["timeoutSeconds"].as_u64(),
        ) && theirs > ours
        {
            notes.push(format!(
                "{name} allows {theirs} s (timeoutSeconds) for a model to answer, the proxy {ours} s before it tries another machine: set [proxy] first_byte_timeout_secs = {theirs} so a slow cold load is not cut by the proxy first"
            ));
        }
        let api = provider["api"].as_str();
        let native = opts.kind == AgentKind::OpenClaw;
        let to = if native {
            format!("{proxy}{}", via(machine.as_deref()))
        } else {
            let path = url.path().trim_end_matches('/');
            format!("{proxy}{}{path}", via(machine.as_deref()))
        };
        edits.push(replace(base, &to)?);
        changes.push(Change {
            provider: name.clone(),
            key: "baseUrl".to_owned(),
            from: Some(base.value.clone()),
            to,
            machine: machine.clone(),
            line: line_of(base.span.start),
        });
        if native && api.is_some_and(|a| a != "ollama") {
            // OpenClaw speaks Ollama's own API: tool calls need it.
            let Some(api_at) = string_at(name, "api") else {
                continue;
            };
            edits.push(replace(api_at, "ollama")?);
            changes.push(Change {
                provider: name.clone(),
                key: "api".to_owned(),
                from: api.map(str::to_owned),
                to: "ollama".to_owned(),
                machine,
                line: line_of(api_at.span.start),
            });
        }
    }

    // OpenClaw finding its Ollama by discovery: an explicit provider at the
    // proxy, which OpenClaw then discovers the fleet's models through.
    let uses_ollama = uses_provider(&parsed, "ollama");
    if opts.kind == AgentKind::OpenClaw
        && uses_ollama
        && providers.is_none_or(|p| !p.contains_key("ollama"))
    {
        let to = format!("{proxy}{}", via(Some(&fleet.this.id)));
        let member = format!(
            "\"ollama\": {{\"baseUrl\": {}, \"apiKey\": \"ollama-local\", \"api\": \"ollama\"}}",
            literal(&to)
        );
        let (edit, line) = add_member(text, &objects, &["models", "providers"], member, line_of)?;
        edits.push(edit);
        changes.push(Change {
            provider: "ollama".to_owned(),
            key: "provider".to_owned(),
            from: None,
            to,
            machine: Some(
                opts.machine
                    .clone()
                    .unwrap_or_else(|| fleet.this.id.clone()),
            ),
            line,
        });
    }

    if opts.anthropic {
        if opts.kind != AgentKind::OpenClaw {
            return Err("routing Anthropic through the proxy is for OpenClaw; a legacy Clawdbot keeps its own".to_owned());
        }
        let current = parsed["models"]["providers"]["anthropic"]["baseUrl"].as_str();
        match (current, string_at("anthropic", "baseUrl")) {
            (Some(v), _) if v.starts_with(proxy) => skipped.push(Skipped {
                provider: "anthropic".to_owned(),
                why: "already goes through this machine's proxy".to_owned(),
            }),
            (Some(v), Some(s)) => {
                edits.push(replace(s, proxy)?);
                changes.push(Change {
                    provider: "anthropic".to_owned(),
                    key: "baseUrl".to_owned(),
                    from: Some(v.to_owned()),
                    to: proxy.to_owned(),
                    machine: None,
                    line: line_of(s.span.start),
                });
            }
            (Some(_), None) => {
                return Err("the anthropic provider's baseUrl could not be located safely in the text; nothing was changed".to_owned());
            }
            (None, _) => {
                let exists = parsed["models"]["providers"]["anthropic"].is_object();
                let (path, member, key): (&[&str], String, &str) = if exists {
                    (
                        &["models", "providers", "anthropic"],
                        format!("\"baseUrl\": {}", literal(proxy)),
                        "baseUrl",
                    )
                } else {
                    (
                        &["models", "providers"],
                        format!(
                            "\"anthropic\": {{\"baseUrl\": {}, \"api\": \"anthropic-messages\", \"models\": []}}",
                            literal(proxy)
                        ),
                        "provider",
                    )
                };
                let (edit, line) = add_member(text, &objects, path, member, line_of)?;
                edits.push(edit);
                changes.push(Change {
                    provider: "anthropic".to_owned(),
                    key: key.to_owned(),
                    from: None,
                    to: proxy.to_owned(),
                    machine: None,
                    line,
                });
            }
        }
    }

    edits.sort_by_key(|(span, _)| span.start);
    let mut out = text.to_owned();
    for (span, with) in edits.into_iter().rev() {
        out.replace_range(span, &with);
    }
    // What was written must read back as what was meant.
    crate::outside::parse_json5(&out).map_err(|e| {
        format!("the wired file would not be valid JSON5 ({e}); nothing was changed")
    })?;
    Ok(Planned {
        text: out,
        changes,
        skipped,
        notes,
    })
}

/// Whether any model reference of the config names `provider`
/// (`provider/model` in the defaults, the fallbacks, the heartbeat, the
/// sub-agents or an agent's own).
fn uses_provider(config: &serde_json::Value, provider: &str) -> bool {
    let prefix = format!("{provider}/");
    let agents = &config["agents"];
    let models = [
        &agents["defaults"]["model"],
        &agents["defaults"]["heartbeat"]["model"],
        &agents["defaults"]["subagents"]["model"],
    ]
    .into_iter()
    .chain(
        agents["entries"]
            .as_object()
            .into_iter()
            .flat_map(|e| e.values())
            .map(|e| &e["model"]),
    )
    .chain(
        agents["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["model"]),
    );
    models
        .flat_map(|m| {
            [m, &m["primary"]]
                .into_iter()
                .chain(m["fallbacks"].as_array().into_iter().flatten())
        })
        .filter_map(serde_json::Value::as_str)
        .any(|r| r.starts_with(&prefix))
}

/// An edit adding `member` to the object at `path`, creating the objects
/// on the way (`models`, `providers`) as needed; and its line.
fn add_member(
    text: &str,
    objects: &[spans::ObjectAt],
    path: &[&str],
    member: String,
    line_of: impl Fn(usize) -> usize,
) -> Result<(Edit, usize), String> {
    // The deepest existing object on the path, and what to nest in it.
    for depth in (0..=path.len()).rev() {
        let Some(obj) = objects.iter().find(|o| o.path == path[..depth]) else {
            continue;
        };
        let mut value = member.clone();
        for key in path[depth..].iter().rev() {
            value = format!("{}: {{{value}}}", literal(key));
        }
        let indent = indentation(text, obj.open) + "  ";
        let comma = if obj.empty { "" } else { "," };
        let insert = format!("\n{indent}{value}{comma}");
        let at = obj.open + 1;
        return Ok(((at..at, insert), line_of(at) + 1));
    }
    Err("the config's top level is not an object".to_owned())
}

/// The leading spaces of the line `at` is on.
fn indentation(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[start..at]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// The lines that differ, as a unified diff with one line of context.
pub fn diff(path: &Path, before: &str, after: &str) -> String {
    let p = path.display().to_string();
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(1)
        .header(&p, &format!("{p} (wired)"))
        .to_string()
}

/// What `wire` did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config file (the file a link names, when it is a link).
    pub path: PathBuf,
    /// What changed (or would, in a dry run).
    pub changes: Vec<Change>,
    /// Providers left alone.
    pub skipped: Vec<Skipped>,
    /// Things to know about the result.
    pub notes: Vec<String>,
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
    /// The file edited (a link's target).
    config: PathBuf,
    /// The original, from before the first wiring.
    backup: PathBuf,
    /// The file exactly as the last `wire` wrote it.
    wired: String,
    at: String,
    /// Copies of the file as it was before each later wiring (edits made
    /// between two wirings).
    #[serde(default)]
    between: Vec<PathBuf>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WireError + '_ {
    move |e| WireError::Io {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// The file to edit: `path`, or the file it links to.
fn target_of(path: &Path) -> Result<PathBuf, WireError> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(WireError::Missing(path.to_path_buf()))
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// Reads the agent's config (at most 16 MiB, a regular file).
fn read(path: &Path) -> Result<String, WireError> {
    crate::outside::read_text(path, MAX_CONFIG).map_err(|e| {
        if e.is_missing() {
            WireError::Missing(path.to_path_buf())
        } else {
            WireError::Io {
                path: path.to_path_buf(),
                why: e.to_string(),
            }
        }
    })
}

/// Creates a new file next to `path` named `<name><suffix>`, then
/// `<name><suffix>-2`, … : never an existing one. Returns it open.
fn create_unique(path: &Path, suffix: &str) -> Result<(PathBuf, std::fs::File), WireError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "openclaw.json".to_owned());
    for n in 1..1000 {
        let candidate = path.with_file_name(if n == 1 {
            format!("{name}{suffix}")
        } else {
            format!("{name}{suffix}-{n}")
        });
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Private until its mode is set: it may hold keys.
            options.mode(0o600);
        }
        match options.open(&candidate) {
            Ok(f) => return Ok((candidate, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&candidate)(e)),
        }
    }
    Err(WireError::Io {
        path: path.to_path_buf(),
        why: "no free name for a copy beside it".to_owned(),
    })
}

/// Writes `text` into `file` (at `path`) with `path`'s original's
/// permissions and owner, and syncs it.
fn fill(
    file: &mut std::fs::File,
    at: &Path,
    text: &str,
    like: &std::fs::Metadata,
) -> Result<(), WireError> {
    file.set_permissions(like.permissions()).map_err(io(at))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if like.uid() != current_uid() || like.gid() != current_gid() {
            // Only root may give a file away; as anyone else the copy
            // stays ours, with the same mode.
            let _ = std::os::unix::fs::fchown(&*file, Some(like.uid()), Some(like.gid()));
        }
    }
    file.write_all(text.as_bytes()).map_err(io(at))?;
    file.sync_all().map_err(io(at))
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(unix)]
fn current_gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

/// Replaces `path` with `text` atomically, with `like`'s permissions and
/// owner.
fn replace_atomic(path: &Path, text: &str, like: &std::fs::Metadata) -> Result<(), WireError> {
    let (tmp, mut file) = create_unique(path, &format!(".clawfleet-tmp-{}", std::process::id()))?;
    let written = fill(&mut file, &tmp, text, like)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn read_state(data_dir: &Path) -> Result<Option<(PathBuf, State)>, WireError> {
    for name in [STATE_FILE, OLD_STATE_FILE] {
        let path = data_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                let state = serde_json::from_str(&t).map_err(|e| WireError::Io {
                    path: path.clone(),
                    why: format!("unreadable ({e}); the original is beside the agent's config, named *.clawfleet-<time>"),
                })?;
                return Ok(Some((path, state)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(None)
}

fn write_state(data_dir: &Path, state: &State) -> Result<PathBuf, WireError> {
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let path = data_dir.join(STATE_FILE);
    let json = serde_json::to_string_pretty(state).map_err(|e| WireError::Io {
        path: path.clone(),
        why: e.to_string(),
    })?;
    let tmp = data_dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
    let done = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(json.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&path)(e));
    }
    let _ = std::fs::remove_file(data_dir.join(OLD_STATE_FILE));
    Ok(path)
}

/// Wires the agent's config at `path`. `data_dir` keeps the record that
/// `unwire` needs.
pub fn wire(
    path: &Path,
    data_dir: &Path,
    fleet: &Fleet,
    proxy: &str,
    opts: &Options,
    dry_run: bool,
) -> Result<Report, WireError> {
    let target = target_of(path)?;
    let text = read(&target)?;
    let planned = plan(&text, fleet, proxy, opts).map_err(|why| WireError::Syntax {
        path: target.clone(),
        why,
    })?;
    let mut report = Report {
        path: target.clone(),
        diff: if planned.changes.is_empty() {
            String::new()
        } else {
            diff(&target, &text, &planned.text)
        },
        changes: planned.changes,
        skipped: planned.skipped,
        notes: planned.notes,
        backup: None,
        dry_run,
    };
    if dry_run || report.changes.is_empty() {
        return Ok(report);
    }
    let meta = std::fs::metadata(&target).map_err(io(&target))?;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S%.3fZ")
        .to_string();
    // The file as it is now, under a name no file has: never overwritten.
    let (copy, mut file) = create_unique(&target, &format!(".clawfleet-{stamp}"))?;
    if let Err(e) = fill(&mut file, &copy, &text, &meta) {
        let _ = std::fs::remove_file(&copy);
        return Err(e);
    }
    drop(file);
    // A wiring before this one that was never undone keeps its original:
    // unwire goes back to before ClawFleet touched the file. The record is
    // written first: if the replace is interrupted, unwire still knows.
    let recorded = read_state(data_dir).and_then(|earlier| {
        let state = match earlier.filter(|(_, s)| s.config == target) {
            Some((_, mut s)) => {
                s.between.push(copy.clone());
                s.wired = planned.text.clone();
                s.at = stamp;
                s
            }
            None => State {
                config: target.clone(),
                backup: copy.clone(),
                wired: planned.text.clone(),
                at: stamp,
                between: Vec::new(),
            },
        };
        write_state(data_dir, &state).map(|_| state)
    });
    let state = recorded.map_err(|e| WireError::Io {
        path: target.clone(),
        why: format!(
            "not changed: the record of the wiring could not be written ({e}); a copy of the file is at {}",
            copy.display()
        ),
    })?;
    replace_atomic(&target, &planned.text, &meta).map_err(|e| WireError::Io {
        path: target.clone(),
        why: format!("not changed ({e}); a copy of it is at {}", copy.display()),
    })?;
    report.backup = Some(state.backup);
    Ok(report)
}

/// Restores the original saved by `wire`, byte for byte. Refuses when the
/// file changed since, unless `force`. Returns the original's path and the
/// copies of later edits.
pub fn unwire(
    path: &Path,
    data_dir: &Path,
    force: bool,
) -> Result<(PathBuf, Vec<PathBuf>), WireError> {
    let Some((state_path, state)) = read_state(data_dir)? else {
        return Err(WireError::NotWired {
            path: path.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
        });
    };
    let target = &state.config;
    let now = read(target)?;
    if now != state.wired && !force {
        return Err(WireError::ChangedSinceWire {
            path: target.clone(),
            backup: state.backup.clone(),
        });
    }
    let original = read(&state.backup)?;
    let meta = std::fs::metadata(target).map_err(io(target))?;
    replace_atomic(target, &original, &meta)?;
    std::fs::remove_file(&state_path).map_err(io(&state_path))?;
    Ok((state.backup, state.between))
}
