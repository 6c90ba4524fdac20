//! Configuration errors: each says what happened, where (file, line,
//! column, key), and what to do.

use std::fmt;
use std::path::PathBuf;

use super::Issue;

/// A configuration problem: unreadable file, bad TOML, or values that do not
/// make sense together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error, wrong type, unknown key or missing key.
    #[error("{source_name}:{line}:{column}: {}{message}\n{snippet}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Syntax {
        /// File path or `<embedded default>`.
        source_name: String,
        /// The key at that place, when the file parses far enough to tell.
        key: Option<String>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (names the key and what it expected).
        message: String,
        /// The offending line, with a caret.
        snippet: String,
    },
    /// The file parsed but some values are wrong.
    #[error("{}", render_issues(source_name, issues))]
    Invalid {
        /// File path or `<embedded default>`.
        source_name: String,
        /// Every problem found, located.
        issues: Vec<LocatedIssue>,
    },
}

/// A validation [`Issue`] with its place in the file.
#[derive(Debug, Clone)]
pub struct LocatedIssue {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The offending line, with a caret.
    pub snippet: String,
    /// What is wrong.
    pub issue: Issue,
}

impl fmt::Display for LocatedIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}\n  expected: {}\n{}",
            self.line,
            self.column,
            self.issue.key,
            self.issue.message,
            self.issue.expected,
            self.snippet
        )
    }
}

fn render_issues(source_name: &str, issues: &[LocatedIssue]) -> String {
    let mut out = format!(
        "{} problem{} in {source_name}:",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for issue in issues {
        out.push_str(&format!("\n{source_name}:{issue}"));
    }
    out
}
