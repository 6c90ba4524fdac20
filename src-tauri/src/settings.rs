//! The tray's own settings (which notifications to show), in `tray.json` in
//! the data folder. A missing or unreadable file means the defaults (every
//! kind on); a bad file is reported once and left in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::notify::NoticeKind;

/// The file name, in the data folder.
pub const FILE: &str = "tray.json";

/// What the user chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Notification kinds, on or off (absent: on).
    #[serde(default)]
    pub notify: BTreeMap<String, bool>,
}

impl Settings {
    /// Whether notices of `kind` are shown.
    pub fn notifies(&self, kind: NoticeKind) -> bool {
        self.notify.get(kind.as_str()).copied().unwrap_or(true)
    }
}

/// Where the settings live.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads the settings; the defaults when there are none or they are bad.
pub fn load(path: &Path) -> Settings {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Settings {
                notify: BTreeMap::new(),
            };
        }
        Err(e) => {
            tracing::warn!("cannot read {}: {e}; using the defaults", path.display());
            return Settings {
                notify: BTreeMap::new(),
            };
        }
    };
    serde_json::from_str(&text).unwrap_or_else(|e| {
        tracing::warn!(
            "{} is not valid ({e}); using the defaults until it is fixed or saved again",
            path.display()
        );
        Settings {
            notify: BTreeMap::new(),
        }
    })
}

/// Writes the settings (to a temporary file, then renamed over the old one).
pub fn save(path: &Path, settings: &Settings) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(settings).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_on_and_saved_choices_read_back() {
        let dir =
            std::env::temp_dir().join(format!("clawfleet-tray-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = path(&dir);
        let _ = std::fs::remove_file(&p);
        let s = load(&p);
        assert!(NoticeKind::ALL.iter().all(|k| s.notifies(*k)));
        let mut s = s;
        s.notify.insert("cost".into(), false);
        save(&p, &s).expect("save");
        let back = load(&p);
        assert!(!back.notifies(NoticeKind::Cost));
        assert!(back.notifies(NoticeKind::Heal));
        std::fs::write(&p, "{not json").expect("write");
        assert!(
            load(&p).notifies(NoticeKind::Cost),
            "a bad file: the defaults"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
