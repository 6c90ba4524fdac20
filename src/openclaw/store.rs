//! What OpenClaw 2026.9 keeps in its SQLite databases about its agents,
//! read without ever getting in its way: sessions, the run in progress,
//! the model that served it, approvals waiting, the heartbeat schedule.
//!
//! - `<state>/agents/<id>/agent/openclaw-agent.sqlite` (schema 23), one per
//!   agent: `session_nodes` (one row per session key, `status` `running`
//!   while a gateway turn runs), `trajectory_runtime_events` (each run's
//!   trace, for `openclaw agent --local` runs too: `session.started` per
//!   attempt with its `provider`/`modelId`, then `prompt.submitted`,
//!   `model.completed`, …, `session.ended` when the run is over).
//! - `<state>/state/openclaw.sqlite` (schema 18): `schema_meta.app_version`
//!   (the OpenClaw that last opened it), `cron_jobs` with `payload_kind =
//!   'heartbeat'` (each agent's heartbeat schedule: `everyMs`,
//!   `nextRunAtMs`, `lastRunAtMs`, `lastRunStatus`, `runningAtMs`), and
//!   `operator_approvals` (`status = 'pending'` until a human answers).
//!
//! OpenClaw writes these while we read. A database is opened read-only
//! (`mode=ro`, never `immutable`: the WAL holds the newest rows), with a
//! short busy timeout and `query_only`, each read in a few short statements
//! (a read left open would keep OpenClaw from checkpointing its WAL); the
//! `-wal` and `-shm` files are never touched (OpenClaw stops itself when
//! they are replaced). A database from a newer OpenClaw is not read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use crate::net::preview;
use crate::snapshot::{Activity, AgentHeartbeat};
use crate::sqlite::{explain, newer_schema};

/// The agent database schema this build reads.
pub const AGENT_SCHEMA: i64 = 23;
/// The state database schema this build reads.
pub const STATE_SCHEMA: i64 = 18;
/// Agents read at the most.
pub const MAX_AGENTS: usize = 256;
/// Trace rows of the newest session looked at for its last run.
const TRACE_ROWS: i64 = 64;

/// How long a read waits for a lock (only OpenClaw's offline compaction
/// takes one that blocks readers).
const BUSY: Duration = Duration::from_millis(500);

/// Opens one of OpenClaw's databases read-only, as described in the module
/// doc, refusing a schema newer than `known` and a file that is not SQLite.
pub fn open_read_only(path: &Path, known: i64) -> Result<Connection, String> {
    let conn = crate::outside::open_sqlite_read_only(path, BUSY)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| {
            format!(
                "{} is not a database OpenClaw wrote: {}",
                path.display(),
                explain(&e)
            )
        })?;
    if version > known {
        return Err(format!(
            "{} is from a newer OpenClaw: {}; update ClawFleet",
            path.display(),
            newer_schema(version, known)
        ));
    }
    Ok(conn)
}

/// The agent databases under `<state>/agents`, by agent id, sorted.
pub fn agent_databases(state_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("agents")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let db = e.path().join("agent").join("openclaw-agent.sqlite");
            let id = e.file_name().to_str()?.to_owned();
            db.is_file().then_some((id, db))
        })
        .collect();
    out.sort();
    out.truncate(MAX_AGENTS);
    out
}

/// What one agent database says now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentRead {
    /// Sessions, counted as OpenClaw's `health` counts them: every session
    /// key of this agent (`agent:<id>:…`) but its internal effects.
    pub sessions: usize,
    /// Sessions a gateway run has marked running.
    pub running: usize,
    /// The newest session's last run, from its trace.
    pub run: Option<Run>,
    /// The newest change to any session.
    pub last_update: Option<Timestamp>,
}

/// One run (a turn) from its trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    /// The model of its first attempt (`provider/model`).
    pub first_model: Option<String>,
    /// The model of its last attempt: the one serving it.
    pub last_model: Option<String>,
    /// Its trace has `session.ended`.
    pub ended: bool,
    /// Its newest trace row.
    pub last_at: Option<Timestamp>,
    /// When its first attempt began.
    pub started_at: Option<Timestamp>,
}

fn ms(v: Option<i64>) -> Option<Timestamp> {
    v.and_then(|ms| Timestamp::from_millisecond(ms).ok())
}

fn model_of(provider: Option<String>, model: Option<String>) -> Option<String> {
    let model = model?;
    Some(match provider {
        Some(p) if !p.is_empty() => format!(
            "{}/{}",
            preview(p.as_bytes(), 60),
            preview(model.as_bytes(), 120)
        ),
        _ => preview(model.as_bytes(), 120),
    })
}

/// Reads agent `id`'s database at `path`.
pub fn read_agent(path: &Path, id: &str) -> Result<AgentRead, String> {
    let conn = open_read_only(path, AGENT_SCHEMA)?;
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: rusqlite::Error| format!("{}: cannot read {what}: {}", path.display(), explain(&e))
    };
    let prefix = format!("agent:{id}:");
    let internal = format!("agent:{id}:internal-session-effects:");
    let (sessions, running, last_update): (i64, i64, Option<i64>) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(status = 'running'), 0), max(updated_at) FROM session_nodes \
             WHERE substr(session_key, 1, length(?1)) = ?1 AND substr(session_key, 1, length(?2)) <> ?2",
            [&prefix, &internal],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(err("its sessions"))?;
    let newest: Option<String> = conn
        .query_row(
            "SELECT current_session_id FROM session_nodes \
             WHERE substr(session_key, 1, length(?1)) = ?1 ORDER BY updated_at DESC, session_key LIMIT 1",
            [&prefix],
            |r| r.get(0),
        )
        .optional()
        .map_err(err("its newest session"))?;
    let run = match newest {
        Some(session) => last_run(&conn, &session).map_err(err("its last run"))?,
        None => None,
    };
    Ok(AgentRead {
        sessions: usize::try_from(sessions).unwrap_or(0),
        running: usize::try_from(running).unwrap_or(0),
        run,
        last_update: ms(last_update),
    })
}

/// The last run in `session`'s trace: its newest rows, newest first, only
/// the small fields (a row can hold a 32 KB system prompt).
fn last_run(conn: &Connection, session: &str) -> rusqlite::Result<Option<Run>> {
    let mut stmt = conn.prepare(
        "SELECT run_id, json_extract(event_json, '$.type'), json_extract(event_json, '$.provider'), \
         json_extract(event_json, '$.modelId'), created_at FROM trajectory_runtime_events \
         WHERE session_id = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![session, TRACE_ROWS], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<i64>>(4)?,
        ))
    })?;
    let mut run: Option<Run> = None;
    let mut run_id: Option<String> = None;
    for row in rows {
        let (id, kind, provider, model, at) = row?;
        let at = ms(at);
        match &mut run {
            None => {
                run_id = id;
                run = Some(Run {
                    last_model: model_of(provider.clone(), model.clone()),
                    first_model: model_of(provider, model),
                    ended: kind.as_deref() == Some("session.ended"),
                    last_at: at,
                    started_at: at,
                });
            }
            Some(r) if id == run_id => {
                if let Some(m) = model_of(provider, model) {
                    r.first_model = Some(m);
                }
                r.started_at = at.or(r.started_at);
            }
            Some(_) => break,
        }
    }
    Ok(run)
}

/// What the state database says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateRead {
    /// The OpenClaw that last opened it (`schema_meta.app_version`).
    pub version: Option<String>,
    /// Each agent's heartbeat schedule.
    pub heartbeats: HashMap<String, Schedule>,
    /// Approvals waiting for a human, by agent.
    pub approvals: HashMap<String, usize>,
}

/// A heartbeat's schedule and last run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    /// The job is enabled.
    pub enabled: bool,
    /// Its interval.
    pub every_ms: Option<u64>,
    /// When it runs next.
    pub next_at: Option<Timestamp>,
    /// When it last ran.
    pub last_at: Option<Timestamp>,
    /// How that run ended.
    pub last_status: Option<String>,
    /// Running now.
    pub running: bool,
}

/// Reads `<state>/state/openclaw.sqlite`, at `now` (approvals that expired
/// are not waiting).
pub fn read_state(path: &Path, now: Timestamp) -> Result<StateRead, String> {
    let conn = open_read_only(path, STATE_SCHEMA)?;
    let err = |what: &'static str| {
        move |e: rusqlite::Error| format!("{}: cannot read {what}: {}", path.display(), explain(&e))
    };
    let mut out = StateRead {
        version: conn
            .query_row(
                "SELECT app_version FROM schema_meta WHERE meta_key = 'primary'",
                [],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(err("its version"))?
            .flatten()
            .map(|v| preview(v.as_bytes(), 40)),
        ..StateRead::default()
    };
    let mut stmt = conn
        .prepare(
            "SELECT agent_id, enabled, json_extract(job_json, '$.schedule.everyMs'), state_json \
             FROM cron_jobs WHERE payload_kind = 'heartbeat' AND agent_id IS NOT NULL LIMIT 1024",
        )
        .map_err(err("the heartbeat schedule"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(err("the heartbeat schedule"))?;
    for row in rows {
        let (agent, enabled, every, state) = row.map_err(err("the heartbeat schedule"))?;
        let state: Value = serde_json::from_str(&state).unwrap_or(Value::Null);
        let at = |k: &str| ms(state[k].as_i64());
        out.heartbeats.insert(
            agent,
            Schedule {
                enabled: enabled != 0,
                every_ms: every.and_then(|e| u64::try_from(e).ok()).filter(|&e| e > 0),
                next_at: at("nextRunAtMs"),
                last_at: at("lastRunAtMs"),
                last_status: state["lastRunStatus"]
                    .as_str()
                    .or_else(|| state["lastStatus"].as_str())
                    .map(|s| preview(s.as_bytes(), 40)),
                running: state["runningAtMs"].as_i64().is_some(),
            },
        );
    }
    drop(stmt);
    let mut stmt = conn
        .prepare(
            "SELECT source_agent_id, count(*) FROM operator_approvals \
             WHERE status = 'pending' AND expires_at_ms > ?1 AND source_agent_id IS NOT NULL \
             GROUP BY source_agent_id",
        )
        .map_err(err("the approvals"))?;
    let rows = stmt
        .query_map([now.as_millisecond()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(err("the approvals"))?;
    for row in rows {
        let (agent, n) = row.map_err(err("the approvals"))?;
        out.approvals.insert(agent, usize::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

/// What an agent is doing, judged at `now`: waiting on an approval, a run
/// in progress (stuck once nothing new happened for `stuck_after`), or idle.
pub fn activity(
    read: &AgentRead,
    approvals: usize,
    now: Timestamp,
    stuck_after: Duration,
) -> (Activity, String) {
    if approvals > 0 {
        return (
            Activity::Waiting,
            format!(
                "{approvals} approval{} waiting for a human (`openclaw approvals`)",
                if approvals == 1 { "" } else { "s" }
            ),
        );
    }
    let open = read.run.as_ref().is_some_and(|r| !r.ended) || read.running > 0;
    if !open {
        return (Activity::Idle, "no turn is running".to_owned());
    }
    let last = [read.run.as_ref().and_then(|r| r.last_at), read.last_update]
        .into_iter()
        .flatten()
        .max();
    let quiet = last.map(|at| now.duration_since(at).as_secs().max(0));
    match quiet {
        Some(secs) if u64::try_from(secs).unwrap_or(0) > stuck_after.as_secs() => (
            Activity::Stuck,
            format!(
                "a turn has been open with nothing new for {} min",
                secs / 60
            ),
        ),
        _ => (Activity::Working, "a turn is running".to_owned()),
    }
}

/// An agent's heartbeat from its schedule, judged at `now`: overdue when
/// due more than a grace period ago (half its interval, at least 5 min)
/// and not running.
pub fn heartbeat(s: &Schedule, now: Timestamp) -> AgentHeartbeat {
    let every_secs = s.every_ms.map(|ms| ms / 1000).filter(|_| s.enabled);
    let grace = every_secs.map_or(300, |e| (e / 2).max(300));
    let overdue = every_secs.is_some()
        && !s.running
        && s.next_at.is_some_and(|next| {
            u64::try_from(now.duration_since(next).as_secs()).is_ok_and(|late| late > grace)
        });
    AgentHeartbeat {
        every_secs,
        last_at: s.last_at,
        last_status: s.last_status.clone(),
        next_at: s.next_at,
        running: s.running,
        overdue,
        off_why: (!s.enabled).then(|| "its heartbeat job is disabled".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap()
    }

    #[test]
    fn activity_from_runs_and_approvals() {
        let now = at(1_000_000_000);
        let stuck = Duration::from_secs(600);
        let idle = AgentRead {
            run: Some(Run {
                ended: true,
                last_at: Some(at(999_000_000)),
                ..Run::default()
            }),
            ..AgentRead::default()
        };
        assert_eq!(activity(&idle, 0, now, stuck).0, Activity::Idle);
        assert_eq!(activity(&idle, 2, now, stuck).0, Activity::Waiting);
        let open = AgentRead {
            run: Some(Run {
                ended: false,
                last_at: Some(at(999_990_000)),
                ..Run::default()
            }),
            ..AgentRead::default()
        };
        assert_eq!(activity(&open, 0, now, stuck).0, Activity::Working);
        let old = AgentRead {
            run: Some(Run {
                ended: false,
                last_at: Some(at(1_000_000_000 - 1_200_000)),
                ..Run::default()
            }),
            ..AgentRead::default()
        };
        let (a, why) = activity(&old, 0, now, stuck);
        assert_eq!(a, Activity::Stuck);
        assert_eq!(why, "a turn has been open with nothing new for 20 min");
        // A gateway run marked running, with a trace that ended earlier.
        let marked = AgentRead {
            running: 1,
            last_update: Some(at(999_999_000)),
            ..idle.clone()
        };
        assert_eq!(activity(&marked, 0, now, stuck).0, Activity::Working);
    }

    #[test]
    fn heartbeat_overdue_after_a_grace() {
        let s = Schedule {
            enabled: true,
            every_ms: Some(1_800_000),
            next_at: Some(at(1_000_000_000)),
            ..Schedule::default()
        };
        // 15 min grace for a 30 min interval.
        assert!(!heartbeat(&s, at(1_000_000_000 + 800_000)).overdue);
        assert!(heartbeat(&s, at(1_000_000_000 + 1_000_000)).overdue);
        let running = Schedule {
            running: true,
            ..s.clone()
        };
        assert!(!heartbeat(&running, at(1_000_000_000 + 1_000_000)).overdue);
        let off = Schedule {
            enabled: false,
            ..s
        };
        let h = heartbeat(&off, at(2_000_000_000));
        assert!(!h.overdue);
        assert_eq!(h.every_secs, None);
        assert!(h.off_why.is_some());
    }

    /// The real databases OpenClaw 2026.9.6 wrote, in a test (`rows` run
    /// against the real DDL).
    fn agent_db(dir: &Path) -> PathBuf {
        let path = dir.join("openclaw-agent.sqlite");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE session_nodes (session_key TEXT NOT NULL PRIMARY KEY, current_session_id TEXT NOT NULL,
               entry_json TEXT NOT NULL, updated_at INTEGER NOT NULL, status TEXT) STRICT;
             CREATE TABLE trajectory_runtime_events (session_id TEXT NOT NULL, seq INTEGER NOT NULL, run_id TEXT,
               event_json TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq)) STRICT;
             PRAGMA user_version = 23;",
        )
        .unwrap();
        let ev = |seq: i64, kind: &str, model: &str, at: i64| {
            c.execute(
                "INSERT INTO trajectory_runtime_events VALUES ('s1', ?1, 'r1', ?2, ?3)",
                rusqlite::params![
                    seq,
                    format!(r#"{{"type":"{kind}","provider":"ollama","modelId":"{model}","data":{{"systemPrompt":"…"}}}}"#),
                    at
                ],
            )
            .unwrap();
        };
        c.execute_batch(
            "INSERT INTO session_nodes VALUES ('agent:main:main', 's0', '{}', 100, 'done');
             INSERT INTO session_nodes VALUES ('agent:main:fb-1', 's1', '{}', 200, NULL);
             INSERT INTO session_nodes VALUES ('agent:main:internal-session-effects:x', 's2', '{}', 50, NULL);
             INSERT INTO session_nodes VALUES ('agent:other:main', 's3', '{}', 900, 'running');",
        )
        .unwrap();
        ev(1, "session.started", "broken:1b", 1000);
        ev(2, "model.completed", "broken:1b", 1100);
        ev(3, "session.started", "qwen3:8b", 1200);
        ev(4, "prompt.submitted", "qwen3:8b", 1300);
        path
    }

    #[test]
    fn reads_an_agent_database_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = agent_db(dir.path());
        let r = read_agent(&path, "main").unwrap();
        assert_eq!(
            r.sessions, 2,
            "internal effects and other agents' keys are not counted"
        );
        assert_eq!(r.running, 0);
        let run = r.run.unwrap();
        assert_eq!(run.first_model.as_deref(), Some("ollama/broken:1b"));
        assert_eq!(run.last_model.as_deref(), Some("ollama/qwen3:8b"));
        assert!(!run.ended);
        assert_eq!(run.last_at, Some(at(1300)));
        assert_eq!(run.started_at, Some(at(1000)));
        // Nothing was written: no journal of ours, and a write is refused.
        let conn = open_read_only(&path, AGENT_SCHEMA).unwrap();
        assert!(conn.execute("DELETE FROM session_nodes", []).is_err());
        // A newer schema is refused with words.
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 24).unwrap();
        let e = read_agent(&path, "main").unwrap_err();
        assert!(
            e.contains("from a newer OpenClaw: schema version 24 is newer than this ClawFleet reads (up to 23)"),
            "{e}"
        );
        // Not a database.
        std::fs::write(
            dir.path().join("x.sqlite"),
            "hello, this is not sqlite at all......",
        )
        .unwrap();
        assert!(read_agent(&dir.path().join("x.sqlite"), "main").is_err());
    }
}
