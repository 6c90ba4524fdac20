//! The Cleaner: deletes files older than N days inside allow-listed folders
//! — and nothing else. Symlinks are never followed nor deleted, other file
//! systems are not entered, each file is checked again just before it is
//! removed, and a dry run reports what and how many bytes without touching
//! anything.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Entries visited per clean, all roots together.
pub const MAX_ENTRIES: u64 = 1_000_000;
/// How deep a walk goes below a root.
pub const MAX_DEPTH: usize = 64;
/// Lines kept in `skipped` and `errors`.
const MAX_NOTES: usize = 50;
/// Entries kept in `largest`.
const LARGEST: usize = 20;

/// What to clean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanSpec {
    /// Allow-listed folders (absolute). Only files inside them are touched.
    pub roots: Vec<PathBuf>,
    /// Only files whose modification time is at least this many days old.
    pub older_than_days: u32,
}

/// Files and bytes matched under one root.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootReport {
    /// The root.
    pub root: PathBuf,
    /// Files old enough.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// One file and its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// What a clean did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Nothing was removed.
    pub dry_run: bool,
    /// Files old enough (removed, or to be removed).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Actually removed (0 in a dry run).
    pub removed_files: u64,
    /// Bytes actually removed.
    pub removed_bytes: u64,
    /// Per root.
    pub roots: Vec<RootReport>,
    /// The largest matched files, largest first (at most 20).
    pub largest: Vec<FileEntry>,
    /// What was left alone and why (at most 50 lines).
    pub skipped: Vec<String>,
    /// What failed (at most 50 lines).
    pub errors: Vec<String>,
    /// The walk stopped at [`MAX_ENTRIES`].
    pub truncated: bool,
}

struct Notes {
    lines: Vec<String>,
    more: u64,
}

impl Notes {
    fn new() -> Notes {
        Notes {
            lines: Vec::new(),
            more: 0,
        }
    }

    fn push(&mut self, line: String) {
        if self.lines.len() < MAX_NOTES {
            self.lines.push(line);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.lines.push(format!("… and {} more", self.more));
        }
        self.lines
    }
}

pub use crate::config::check_clean_root as check_root;

#[cfg(unix)]
fn device(meta: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.dev())
}

#[cfg(not(unix))]
fn device(_meta: &std::fs::Metadata) -> Option<u64> {
    None
}

/// Cleans (or, with `dry_run`, only measures) `spec`'s roots. Blocking.
pub fn clean(spec: &CleanSpec, dry_run: bool, now: SystemTime) -> CleanReport {
    let mut report = CleanReport {
        dry_run,
        ..CleanReport::default()
    };
    let mut skipped = Notes::new();
    let mut errors = Notes::new();
    let mut visited = 0u64;
    let mut matched: Vec<FileEntry> = Vec::new();
    let min_age = Duration::from_secs(u64::from(spec.older_than_days) * 86_400);
    let home = dirs::home_dir();

    for configured in &spec.roots {
        let root = match check_root(configured, home.as_deref()) {
            Ok(r) => r,
            Err(why) => {
                skipped.push(format!("{}: refused: {why}", configured.display()));
                continue;
            }
        };
        let meta = match std::fs::symlink_metadata(&root) {
            Ok(m) => m,
            Err(e) => {
                skipped.push(format!("{}: refused: {e}", root.display()));
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            skipped.push(format!(
                "{}: refused: it is a symlink (name the real folder)",
                root.display()
            ));
            continue;
        }
        if !meta.is_dir() {
            skipped.push(format!("{}: refused: not a folder", root.display()));
            continue;
        }
        let canonical_root = match std::fs::canonicalize(&root) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("{}: {e}", root.display()));
                continue;
            }
        };
        let dev = device(&meta);
        let mut per_root = RootReport {
            root: root.clone(),
            ..RootReport::default()
        };
        // Depth-first, folders after their contents (so emptied ones can go).
        let mut stack: Vec<(PathBuf, usize, bool)> = vec![(root.clone(), 0, false)];
        let mut emptied: Vec<PathBuf> = Vec::new();
        while let Some((dir, depth, done)) = stack.pop() {
            if done {
                if dir != root {
                    emptied.push(dir);
                }
                continue;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(format!("{}: {e}", dir.display()));
                    continue;
                }
            };
            stack.push((dir.clone(), depth, true));
            for entry in entries {
                if visited >= MAX_ENTRIES {
                    report.truncated = true;
                    break;
                }
                visited += 1;
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        errors.push(format!("{}: {e}", dir.display()));
                        continue;
                    }
                };
                let path = entry.path();
                let meta = match std::fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        errors.push(format!("{}: {e}", path.display()));
                        continue;
                    }
                };
                let kind = meta.file_type();
                if kind.is_symlink() {
                    skipped.push(format!("{}: symlink, not followed", path.display()));
                    continue;
                }
                if dev.is_some() && device(&meta) != dev {
                    skipped.push(format!(
                        "{}: another file system, not entered",
                        path.display()
                    ));
                    continue;
                }
                if kind.is_dir() {
                    if depth + 1 > MAX_DEPTH {
                        skipped.push(format!(
                            "{}: deeper than {MAX_DEPTH} levels",
                            path.display()
                        ));
                    } else {
                        stack.push((path, depth + 1, false));
                    }
                    continue;
                }
                if !kind.is_file() {
                    continue;
                }
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age >= min_age);
                if !old {
                    continue;
                }
                let bytes = meta.len();
                report.files += 1;
                report.bytes += bytes;
                per_root.files += 1;
                per_root.bytes += bytes;
                matched.push(FileEntry {
                    path: path.clone(),
                    bytes,
                });
                if dry_run {
                    continue;
                }
                match still_safe(&path, &canonical_root) {
                    Ok(()) => match std::fs::remove_file(&path) {
                        Ok(()) => {
                            report.removed_files += 1;
                            report.removed_bytes += bytes;
                        }
                        Err(e) => errors.push(format!("{}: {e}", path.display())),
                    },
                    Err(why) => skipped.push(format!("{}: {why}", path.display())),
                }
            }
            if report.truncated {
                break;
            }
        }
        if !dry_run {
            // Deepest first (they were pushed after their contents); only
            // folders that are empty now, never the root.
            for dir in emptied {
                if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none())
                    && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
                {
                    let _ = std::fs::remove_dir(&dir);
                }
            }
        }
        report.roots.push(per_root);
        if report.truncated {
            skipped.push(format!("stopped after {MAX_ENTRIES} entries"));
            break;
        }
    }
    matched.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
    matched.truncate(LARGEST);
    report.largest = matched;
    report.skipped = skipped.finish();
    report.errors = errors.finish();
    tracing::info!(
        files = report.files,
        bytes = report.bytes,
        removed = report.removed_files,
        dry_run,
        "clean"
    );
    report
}

/// Just before removing: the path is still a regular file, and its folder
/// (resolved) is still inside the root (no folder swapped for a symlink
/// since the walk).
fn still_safe(path: &Path, canonical_root: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("no longer a regular file: left alone".into());
    }
    let parent = path.parent().ok_or("no folder")?;
    let real = std::fs::canonicalize(parent).map_err(|e| e.to_string())?;
    if !real.starts_with(canonical_root) {
        return Err("its folder now leads outside the allow-list: left alone".into());
    }
    Ok(())
}
