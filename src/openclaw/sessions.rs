//! A legacy install's agents and sessions, from its JSONL transcripts (a
//! Clawdbot 2026.1, or an OpenClaw not yet on SQLite): per agent, how many
//! sessions it keeps and its last turn (time, model, provider); and the last
//! heartbeat turn, overdue when older than twice its interval.
//!
//! Transcripts are `<state>/agents/<agent>/sessions/<session>.jsonl`; an
//! assistant line is `{"type": "message", "timestamp", "message": {"role":
//! "assistant", "provider", "model", ..., "timestamp"}}` (interop/clawdbot.md).
//! A heartbeat turn is an assistant turn by the heartbeat model
//! (`agents.defaults.heartbeat.model`, `provider/model`).
//!
//! Bounded work on any folder: at most [`MAX_AGENTS`] agents, the newest
//! [`HEARTBEAT_FILES`] transcripts of each for the heartbeat, and only the
//! last [`TAIL_BYTES`] of a file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use crate::outside::time_of;
use serde::Deserialize;

use crate::snapshot::{AgentStatus, Heartbeat};

/// Agents read at the most.
pub const MAX_AGENTS: usize = 256;
/// Transcripts per agent searched for the last heartbeat.
pub const HEARTBEAT_FILES: usize = 8;
/// The end of a transcript that is read.
pub const TAIL_BYTES: u64 = 256 * 1024;

/// `30m`, `1h`, `45s`, `2h30m`, `1d`: Clawdbot's durations, in seconds.
pub fn parse_every(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut number = String::new();
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
    }
    if !number.is_empty() {
        // A bare number: minutes, as Clawdbot reads it.
        total += number.parse::<u64>().ok()? * 60;
    }
    (total > 0).then_some(total)
}

/// An assistant turn.
#[derive(Debug, Clone, PartialEq)]
struct Turn {
    at: Timestamp,
    model: Option<String>,
    provider: Option<String>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    timestamp: Option<serde_json::Value>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    role: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    timestamp: Option<serde_json::Value>,
}

/// The assistant turns in the last [`TAIL_BYTES`] of `path`, oldest first.
/// A line cut by the tail, or that is not JSON, is skipped.
fn tail_turns(path: &Path) -> Vec<Turn> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if f.take(TAIL_BYTES).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let mut lines = bytes.split(|b| *b == b'\n');
    if start > 0 {
        lines.next(); // cut in the middle
    }
    lines
        .filter(|l| memchr::memmem::find(l, b"\"assistant\"").is_some())
        .filter_map(|l| serde_json::from_slice::<Line>(l).ok())
        .filter(|l| l.kind.as_deref() == Some("message"))
        .filter_map(|l| {
            let m = l.message?;
            if m.role.as_deref() != Some("assistant") {
                return None;
            }
            let at = time_of(m.timestamp.as_ref()).or_else(|| time_of(l.timestamp.as_ref()))?;
            Some(Turn {
                at,
                model: m.model,
                provider: m.provider,
            })
        })
        .collect()
}

/// Whether `turn` is by `heartbeat` (`provider/model`, or a bare model).
fn is_heartbeat(turn: &Turn, heartbeat: &str) -> bool {
    match heartbeat.split_once('/') {
        Some((provider, model)) => {
            turn.model.as_deref() == Some(model)
                && turn.provider.as_deref().is_none_or(|p| p == provider)
        }
        None => turn.model.as_deref() == Some(heartbeat),
    }
}

/// The agents under `agents_dir`, and the last heartbeat by `heartbeat`
/// (`provider/model`) every `every_secs`, judged at `now`.
pub fn read(
    agents_dir: &Path,
    heartbeat: Option<(&str, u64)>,
    now: Timestamp,
) -> (Vec<AgentStatus>, Option<Heartbeat>) {
    let mut agents = Vec::new();
    let mut last_heartbeat: Option<(Timestamp, String)> = None;
    let Ok(dirs) = std::fs::read_dir(agents_dir) else {
        return (
            agents,
            heartbeat.map(|(model, every)| judge(model, every, None, now)),
        );
    };
    let mut names: Vec<String> = dirs
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names.truncate(MAX_AGENTS);
    for id in names {
        let sessions_dir = agents_dir.join(&id).join("sessions");
        let mut files: Vec<(SystemTime, std::path::PathBuf)> = std::fs::read_dir(&sessions_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                    .filter_map(|p| {
                        let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
                        Some((modified, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut agent = AgentStatus {
            id: id.clone(),
            sessions: files.len(),
            ..AgentStatus::default()
        };
        if let Some(turn) = files.first().and_then(|(_, p)| tail_turns(p).pop()) {
            agent.last_turn_at = Some(turn.at);
            agent.last_model = turn.model;
            agent.last_provider = turn.provider;
        }
        if let Some((model, _)) = heartbeat {
            for (_, path) in files.iter().take(HEARTBEAT_FILES) {
                if let Some(turn) = tail_turns(path)
                    .into_iter()
                    .rev()
                    .find(|t| is_heartbeat(t, model))
                    && last_heartbeat.as_ref().is_none_or(|(at, _)| turn.at > *at)
                {
                    last_heartbeat = Some((turn.at, id.clone()));
                }
            }
        }
        agents.push(agent);
    }
    let heartbeat = heartbeat.map(|(model, every)| {
        let mut h = judge(
            model,
            every,
            last_heartbeat.as_ref().map(|(at, _)| *at),
            now,
        );
        h.agent = last_heartbeat.map(|(_, a)| a);
        h
    });
    (agents, heartbeat)
}

fn judge(model: &str, every_secs: u64, last: Option<Timestamp>, now: Timestamp) -> Heartbeat {
    let limit = Duration::from_secs(every_secs.saturating_mul(2));
    // None found says nothing: a heartbeat skipped on purpose (an empty
    // HEARTBEAT.md) leaves no turn either.
    let overdue = last.is_some_and(|at| {
        let age_ms = now.as_millisecond() - at.as_millisecond();
        age_ms > 0 && age_ms as u128 > limit.as_millis()
    });
    Heartbeat {
        model: model.to_owned(),
        every_secs,
        last_at: last,
        agent: None,
        overdue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(model: &str, provider: &str, at: &str) -> String {
        format!(
            "{{\"type\":\"message\",\"timestamp\":\"{at}\",\"message\":{{\"role\":\"assistant\",\"provider\":\"{provider}\",\"model\":\"{model}\",\"api\":\"openai-completions\",\"usage\":{{\"input\":10,\"output\":5}},\"timestamp\":\"{at}\"}}}}\n"
        )
    }

    fn write(dir: &Path, agent: &str, session: &str, text: &str, age_secs: u64) {
        let d = dir.join(agent).join("sessions");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(format!("{session}.jsonl"));
        std::fs::write(&p, text).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn durations_as_clawdbot_writes_them() {
        assert_eq!(parse_every("30m"), Some(1800));
        assert_eq!(parse_every("1h"), Some(3600));
        assert_eq!(parse_every("2h30m"), Some(9000));
        assert_eq!(parse_every("45s"), Some(45));
        assert_eq!(parse_every("15"), Some(900));
        assert_eq!(parse_every(""), None);
        assert_eq!(parse_every("soon"), None);
        assert_eq!(parse_every("0m"), None);
    }

    #[test]
    fn many_agents_their_sessions_and_a_stale_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let now: Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        // 64 sessions for "main", like the seed's fleet; its newest has a
        // Claude turn last.
        for i in 0..63 {
            write(
                dir.path(),
                "main",
                &format!("s{i:02}"),
                &line("gpt-oss:20b", "ollama", "2026-11-29T08:00:00Z"),
                3600 + i,
            );
        }
        let newest = line("qwen3:8b", "ollama", "2026-11-30T11:00:00Z")
            + "{\"type\":\"message\",\"message\":{\"role\":\"user\",\"content\":\"hi\"}}\n"
            + &line("claude-opus-4-5", "anthropic", "2026-11-30T11:58:00Z");
        write(dir.path(), "main", "s99", &newest, 10);
        // The heartbeat agent: its last heartbeat 2 h ago, every 30 min.
        let hb = line("gpt-oss:20b", "ollama-macmini", "2026-11-30T10:00:00Z")
            + "not json at all\n{\"type\":\"message\",\"message\":{\"role\":\"assistant\"";
        write(dir.path(), "heartbeat", "h1", &hb, 7200);
        for i in 0..30 {
            write(
                dir.path(),
                &format!("agent{i:02}"),
                "only",
                &line("qwen3:8b", "ollama", "2026-11-30T09:00:00Z"),
                100,
            );
        }
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("not-an-agent.txt"), "x").unwrap();

        let (agents, heartbeat) = read(dir.path(), Some(("ollama-macmini/gpt-oss:20b", 1800)), now);
        assert_eq!(agents.len(), 33, "every agent folder, files ignored");
        let main = agents.iter().find(|a| a.id == "main").unwrap();
        assert_eq!(main.sessions, 64);
        assert_eq!(main.last_model.as_deref(), Some("claude-opus-4-5"));
        assert_eq!(main.last_provider.as_deref(), Some("anthropic"));
        assert_eq!(
            main.last_turn_at,
            Some("2026-11-30T11:58:00Z".parse().unwrap())
        );
        let empty = agents.iter().find(|a| a.id == "empty").unwrap();
        assert_eq!((empty.sessions, empty.last_turn_at), (0, None));
        let h = heartbeat.unwrap();
        assert_eq!(h.last_at, Some("2026-11-30T10:00:00Z".parse().unwrap()));
        assert_eq!(h.agent.as_deref(), Some("heartbeat"));
        assert!(h.overdue, "2 h since, every 30 min: overdue");

        // A fresh one is not overdue.
        let (_, h) = read(
            dir.path(),
            Some(("ollama-macmini/gpt-oss:20b", 1800)),
            "2026-11-30T10:45:00Z".parse().unwrap(),
        );
        assert!(!h.unwrap().overdue);
        // None at all says nothing (a heartbeat may be skipped on purpose);
        // no agents folder: no agents.
        let (_, h) = read(dir.path(), Some(("ollama/nope:1b", 1800)), now);
        assert!(!h.as_ref().unwrap().overdue && h.unwrap().last_at.is_none());
        let (agents, _) = read(&dir.path().join("missing"), None, now);
        assert!(agents.is_empty());
    }

    #[test]
    fn only_the_tail_of_a_huge_transcript_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        while text.len() < 2 * TAIL_BYTES as usize {
            text.push_str(&line("old:1b", "ollama", "2026-11-01T00:00:00Z"));
        }
        text.push_str(&line("new:1b", "ollama", "2026-11-30T00:00:00Z"));
        write(dir.path(), "big", "s", &text, 0);
        let (agents, _) = read(dir.path(), None, Timestamp::now());
        assert_eq!(agents[0].last_model.as_deref(), Some("new:1b"));
    }
}
