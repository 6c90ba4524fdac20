//! The event log: findings, actions started, outcomes, "needs human",
//! diagnoses and cost alarms, stored in `events.sqlite` in the data folder
//! and broadcast to whoever listens (the API's stream, later the tray).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The file name inside `data_dir`.
pub const EVENTS_FILE: &str = "events.sqlite";

/// `PRAGMA application_id` of the event log (`CFEV`).
const APPLICATION_ID: i64 = 0x4346_4556;

/// The event log, as its messages name it.
const EVENT_LOG: crate::sqlite::OwnFile = crate::sqlite::OwnFile {
    name: "event log",
    aside: "ClawFleet will start a new one (the history of past events is lost)",
};

const MIGRATIONS: &[&str] = &["CREATE TABLE events (
        id           INTEGER PRIMARY KEY,
        at_us        INTEGER NOT NULL,
        kind         TEXT    NOT NULL,
        machine      TEXT    NOT NULL,
        subject      TEXT,
        action       TEXT,
        severity     TEXT    NOT NULL,
        message      TEXT    NOT NULL,
        detail       TEXT,
        requested_by TEXT
    );
    CREATE INDEX events_by_time ON events (at_us);
    PRAGMA application_id = 1128678742;"];

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth a look.
    Warning,
    /// Something is down.
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Severity {
        match s {
            "critical" => Severity::Critical,
            "warning" => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A check found something.
    Finding,
    /// A finding went away.
    Cleared,
    /// An action started.
    ActionStarted,
    /// An action ended (see `detail.success`).
    Outcome,
    /// The guards are spent: a human must look.
    NeedsHuman,
    /// An action is offered (suggest mode, or paused).
    Suggestion,
    /// The Healer's reading of the history.
    Diagnosis,
    /// A budget or credit-leak alarm from the cost engine.
    CostAlarm,
    /// Healing paused, resumed, or its mode changed.
    Mode,
    /// A local model's summary of the last day.
    Summary,
    /// A peer went offline or came back.
    Machine,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Finding => "finding",
            Kind::Cleared => "cleared",
            Kind::ActionStarted => "action_started",
            Kind::Outcome => "outcome",
            Kind::NeedsHuman => "needs_human",
            Kind::Suggestion => "suggestion",
            Kind::Diagnosis => "diagnosis",
            Kind::CostAlarm => "cost_alarm",
            Kind::Mode => "mode",
            Kind::Summary => "summary",
            Kind::Machine => "machine",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "finding" => Kind::Finding,
            "cleared" => Kind::Cleared,
            "action_started" => Kind::ActionStarted,
            "outcome" => Kind::Outcome,
            "needs_human" => Kind::NeedsHuman,
            "suggestion" => Kind::Suggestion,
            "diagnosis" => Kind::Diagnosis,
            "cost_alarm" => Kind::CostAlarm,
            "summary" => Kind::Summary,
            "machine" => Kind::Machine,
            _ => Kind::Mode,
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its number, in order (0 before it is stored).
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What kind.
    pub kind: Kind,
    /// On which machine.
    pub machine: String,
    /// What it is about (`ollama`, `pm2:aphos-server`, `restart-ollama`).
    pub subject: Option<String>,
    /// The action, for action events (`restart-ollama`).
    pub action: Option<String>,
    /// How bad.
    pub severity: Severity,
    /// In words, for a notification.
    pub message: String,
    /// The evidence or the outcome, as JSON.
    pub detail: Option<serde_json::Value>,
    /// Who asked, for an action someone requested (`api 127.0.0.1`, `cli`).
    pub requested_by: Option<String>,
}

impl Event {
    /// A new event at `now`.
    pub fn new(kind: Kind, machine: &str, severity: Severity, message: impl Into<String>) -> Event {
        Event {
            id: 0,
            at: Timestamp::now(),
            kind,
            machine: machine.to_owned(),
            subject: None,
            action: None,
            severity,
            message: message.into(),
            detail: None,
            requested_by: None,
        }
    }

    /// With a subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Event {
        self.subject = Some(subject.into());
        self
    }

    /// With an action.
    pub fn action(mut self, action: impl Into<String>) -> Event {
        self.action = Some(action.into());
        self
    }

    /// With detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Event {
        self.detail = Some(detail);
        self
    }

    /// With who asked.
    pub fn requested_by(mut self, who: Option<String>) -> Event {
        self.requested_by = who;
        self
    }
}

/// What can go wrong with the event log.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// SQLite refused.
    #[error("event log {}: cannot {action}: {}", path.display(), crate::sqlite::explain(source))]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What we were doing.
        action: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file could not be opened, or was refused and left untouched: not
    /// a ClawFleet event log, or from a newer ClawFleet.
    #[error(transparent)]
    Open(#[from] crate::sqlite::OpenError),
    /// The folder could not be created.
    #[error("cannot create the folder for the event log {}: {source}", path.display())]
    CreateDir {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How many events wait for a slow listener before it skips ahead.
const BROADCAST: usize = 256;

/// The event log. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
    tx: broadcast::Sender<Event>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Opens (or creates) the log at `path`. Blocking.
    pub fn open(path: &Path) -> Result<EventLog, EventsError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| EventsError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let sqlite = |action| {
            move |source| EventsError::Sqlite {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let opened = crate::sqlite::open_checked(
            &EVENT_LOG,
            path,
            APPLICATION_ID,
            MIGRATIONS.len() as i64,
            Duration::from_secs(5),
        )?;
        let (conn, version) = (opened.conn, opened.version);
        for (v, step) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= version) {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {step}; PRAGMA user_version = {v}; COMMIT;"
            ))
            .map_err(sqlite("migrate"))?;
        }
        Ok(EventLog {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                tx: broadcast::channel(BROADCAST).0,
            }),
        })
    }

    /// Every event as it is stored.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.tx.subscribe()
    }

    fn err(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> EventsError + '_ {
        move |source| EventsError::Sqlite {
            path: self.inner.path.clone(),
            action,
            source,
        }
    }

    /// Stores `event`, broadcasts it, and returns it with its id. Blocking
    /// (a single small insert).
    pub fn record(&self, mut event: Event) -> Result<Event, EventsError> {
        // Stored to the microsecond: what is broadcast equals what is listed.
        event.at = Timestamp::from_microsecond(event.at.as_microsecond()).unwrap_or(event.at);
        {
            let conn = self
                .inner
                .conn
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            conn.execute(
                "INSERT INTO events (at_us, kind, machine, subject, action, severity, message, detail, requested_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    event.at.as_microsecond(),
                    event.kind.as_str(),
                    event.machine,
                    event.subject,
                    event.action,
                    event.severity.as_str(),
                    event.message,
                    event.detail.as_ref().map(|d| d.to_string()),
                    event.requested_by,
                ],
            )
            .map_err(self.err("store an event"))?;
            event.id = conn.last_insert_rowid();
        }
        match event.severity {
            Severity::Info => {
                tracing::info!(kind = event.kind.as_str(), subject = ?event.subject, "{}", event.message)
            }
            _ => {
                tracing::warn!(kind = event.kind.as_str(), subject = ?event.subject, "{}", event.message)
            }
        }
        let _ = self.inner.tx.send(event.clone());
        Ok(event)
    }

    /// Stores `event`, logging instead of failing (the engine keeps going
    /// when the disk does not).
    pub fn note(&self, event: Event) -> Option<Event> {
        match self.record(event) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        }
    }

    /// Up to `limit` events, newest first; with `before`, only older ids.
    pub fn list(&self, limit: usize, before: Option<i64>) -> Result<Vec<Event>, EventsError> {
        let conn = self
            .inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, at_us, kind, machine, subject, action, severity, message, detail, requested_by \
                 FROM events WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.err("list events"))?;
        let rows = stmt
            .query_map(
                params![
                    before.unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(Event {
                        id: r.get(0)?,
                        at: Timestamp::from_microsecond(r.get(1)?).unwrap_or(Timestamp::UNIX_EPOCH),
                        kind: Kind::parse(&r.get::<_, String>(2)?),
                        machine: r.get(3)?,
                        subject: r.get(4)?,
                        action: r.get(5)?,
                        severity: Severity::parse(&r.get::<_, String>(6)?),
                        message: r.get(7)?,
                        detail: r
                            .get::<_, Option<String>>(8)?
                            .and_then(|d| serde_json::from_str(&d).ok()),
                        requested_by: r.get(9)?,
                    })
                },
            )
            .map_err(self.err("list events"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("list events"))
    }

    /// Events since `since` (oldest first), for the Healer.
    pub fn since(&self, since: Timestamp) -> Result<Vec<Event>, EventsError> {
        let mut all = self.list(10_000, None)?;
        all.retain(|e| e.at >= since);
        all.reverse();
        Ok(all)
    }
}

impl From<EventsError> for crate::Error {
    fn from(e: EventsError) -> Self {
        crate::Error::Service(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_reopens_with_its_events_and_refuses_a_foreign_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(EVENTS_FILE);
        let log = EventLog::open(&path).expect("create");
        let stored = log
            .record(
                Event::new(Kind::Finding, "m", Severity::Warning, "disk / has 4% free")
                    .subject("disk:/")
                    .detail(serde_json::json!({"free": 4})),
            )
            .expect("record");
        // A second reader while the first is open (the CLI beside the
        // daemon), then a restart.
        let reader = EventLog::open(&path).expect("a second opener");
        assert_eq!(reader.list(10, None).expect("list"), vec![stored.clone()]);
        drop((log, reader));
        let again = EventLog::open(&path).expect("reopen");
        assert_eq!(again.list(10, None).expect("list"), vec![stored]);

        let foreign = dir.path().join("other.sqlite");
        let conn = Connection::open(&foreign).expect("sqlite");
        conn.execute_batch("CREATE TABLE t (x); PRAGMA application_id = 7;")
            .expect("foreign");
        drop(conn);
        let err = EventLog::open(&foreign).expect_err("not ours");
        assert!(
            err.to_string().contains("not a ClawFleet event log"),
            "{err}"
        );
        assert_eq!(
            Connection::open(&foreign)
                .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
                .expect("left untouched"),
            0
        );
    }
}
