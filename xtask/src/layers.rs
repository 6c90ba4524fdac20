//! `cargo xtask check-layers`: the engine's modules form layers, and every
//! dependency points down or sideways without a cycle.
//!
//! Layers, bottom up (ARCHITECTURE.md draws them):
//! 0. domain types, configuration and shared plumbing;
//! 1. services (probe, proxy, ledger, cost, heal, peers, the agent);
//! 2. the fleet API, the interface the daemon serves in process;
//! 3. the daemon, which wires the services and serves the API;
//! 4. the command line's report (the CLI and the tray are crates of their
//!    own, on top of all of it).
//!
//! A module's dependencies are the `crate::<module>` paths in its code
//! (comments, strings and `#[cfg(test)]` items left out: tests may reach
//! anywhere). An edge to a higher layer, or a cycle between modules, is an
//! error naming the files that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the engine with its layer. A module missing
/// here is an error: a new module says where it belongs.
const LAYERS: &[(&str, u8)] = &[
    // 0: types, configuration, plumbing.
    ("snapshot", 0),
    ("config", 0),
    ("error", 0),
    ("outside", 0),
    ("every", 0),
    ("command", 0),
    ("sqlite", 0),
    ("net", 0),
    ("usage", 0),
    ("fleet", 0),
    ("server", 0),
    ("publish", 0),
    ("action", 0),
    ("units", 0),
    ("events", 0),
    ("token", 0),
    // 1: services.
    ("probe", 1),
    ("proxy", 1),
    ("ledger", 1),
    ("cost", 1),
    ("heal", 1),
    ("peers", 1),
    ("openclaw", 1),
    ("secret", 1),
    ("history", 1),
    // 2: the fleet API.
    ("api", 2),
    // 3: the daemon.
    ("daemon", 3),
    // 4: the command line's report.
    ("report", 4),
];

/// One dependency and where it is written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `file:line` of its first use.
    pub at: String,
}

/// The dependencies between modules of one layer (services on services),
/// `from -> to, to, …` per module: allowed while they close no cycle, and
/// printed by `check-layers` so a reader sees them.
pub fn sideways(src: &Path) -> Result<Vec<String>, String> {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut by_module: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in edges(src)? {
        if layer
            .get(e.from.as_str())
            .is_some_and(|a| layer.get(e.to.as_str()) == Some(a))
        {
            by_module.entry(e.from).or_default().insert(e.to);
        }
    }
    Ok(by_module
        .into_iter()
        .map(|(from, to)| {
            format!(
                "{from} -> {}",
                to.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
        .collect())
}

/// The problems found; empty when the layers hold.
pub fn check(src: &Path) -> Result<Vec<String>, String> {
    let edges = edges(src)?;
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    for e in &edges {
        modules.insert(e.from.clone());
        modules.insert(e.to.clone());
    }
    for m in &modules {
        if !layer.contains_key(m.as_str()) {
            problems.push(format!(
                "module `{m}` has no layer: add it to LAYERS in xtask/src/layers.rs"
            ));
        }
    }
    for e in &edges {
        if let (Some(a), Some(b)) = (layer.get(e.from.as_str()), layer.get(e.to.as_str()))
            && b > a
        {
            problems.push(format!(
                "{} (layer {a}) depends on {} (layer {b}), which is above it: {}",
                e.from, e.to, e.at
            ));
        }
    }
    for cycle in cycles(&edges) {
        let at: Vec<String> = cycle
            .windows(2)
            .filter_map(|w| {
                edges
                    .iter()
                    .find(|e| e.from == w[0] && e.to == w[1])
                    .map(|e| format!("{} -> {} ({})", e.from, e.to, e.at))
            })
            .collect();
        problems.push(format!("a cycle: {}", at.join(", ")));
    }
    Ok(problems)
}

/// The module-level dependencies of the crate at `src`.
pub fn edges(src: &Path) -> Result<Vec<Edge>, String> {
    let mut files = Vec::new();
    walk(src, &mut files)?;
    files.sort();
    // Items the crate root re-exports (`pub use error::Error;`), by name.
    let root = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let reexports: BTreeMap<String, String> = root
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub use "))
        .filter_map(|l| l.trim_end_matches(';').split_once("::"))
        .flat_map(|(module, items)| {
            items
                .trim_matches(['{', '}', ' '])
                .split(',')
                .map(|i| (i.trim().to_owned(), module.trim().to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut out: BTreeMap<(String, String), String> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        // A module's tests in a file of their own (`mod tests;` under
        // `#[cfg(test)]`) may reach anywhere, as inline tests may.
        if file.file_stem().is_some_and(|s| s == "tests")
            || file.components().any(|c| c.as_os_str() == "tests")
                && file.starts_with(src.join(&module))
        {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let code = without_tests(&strip(&text));
        for (line, target) in references(&code) {
            let target = reexports.get(&target).cloned().unwrap_or(target);
            if target == module {
                continue;
            }
            let rel = file
                .strip_prefix(src.parent().unwrap_or(src))
                .unwrap_or(&file);
            out.entry((module.clone(), target))
                .or_insert_with(|| format!("{}:{line}", rel.display()));
        }
    }
    Ok(out
        .into_iter()
        .map(|((from, to), at)| Edge { from, to, at })
        .collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `src/x.rs`, `src/x/…` → `x`; the crate root and binaries → none.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
}

/// The code with comments and string literals blanked (lines kept).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_before(b, i) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&b'"') {
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    if b[j] == b'\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
                continue;
            }
        }
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                } else if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
            continue;
        }
        if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime.
            let end = b[i + 1..]
                .iter()
                .take(12)
                .position(|&x| x == b'\'')
                .map(|p| i + 1 + p);
            if let Some(end) = end
                && (b.get(i + 1) == Some(&b'\\') || end == i + 2 || text.is_char_boundary(i + 1))
                && end <= i + 11
                && !b[i + 1..end].contains(&b' ')
            {
                i = end + 1;
                out.push_str("' '");
                continue;
            }
        }
        out.push(char::from(c));
        i += 1;
    }
    // Bytes pushed one by one: keep only what is valid (the code that
    // matters here is ASCII).
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The code without the items under `#[cfg(test)]`.
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item: up to its matching `}` (a `mod tests { … }` or a fn),
        // or the `;` of a one-line item, whichever ends it.
        let open = after.find('{');
        let semi = after.find(';');
        let end = match (open, semi) {
            (Some(o), Some(s)) if s < o => s + 1,
            (Some(o), _) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (k, ch) in after[o..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(s)) => s + 1,
            (None, None) => after.len(),
        };
        out.extend(after[..end].chars().filter(|c| *c == '\n'));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every `crate::<module>` named in `code`, with its line: in paths and in
/// `use crate::{a, b::c}` groups.
fn references(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            let after = &rest[at + "crate::".len()..];
            rest = after;
            if before
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue; // `$crate::`, `mycrate::`
            }
            if let Some(group) = after.strip_prefix('{') {
                // Only the first level of the group, on this line or the
                // next ones.
                let end = matching(code, line, group);
                for item in end.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != "self" {
                        out.push((n + 1, name));
                    }
                }
                continue;
            }
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
        }
    }
    out
}

/// The first-level text of a `{…}` group that starts at `group` (within
/// `line` of `code`), nested groups left out.
fn matching(code: &str, line: &str, group: &str) -> String {
    let start = line.as_ptr() as usize - code.as_ptr() as usize + (line.len() - group.len());
    let mut depth = 1usize;
    let mut out = String::new();
    for ch in code[start..].chars() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ if depth == 1 => out.push(ch),
            _ => {}
        }
    }
    out
}

/// The cycles of the graph (one per strongly connected component of more
/// than one module), each as a closed path `a, b, …, a`.
fn cycles(edges: &[Edge]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
        graph.entry(&e.to).or_default();
    }
    let nodes: Vec<&str> = graph.keys().copied().collect();
    // Tarjan's algorithm.
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for &w in &g[v] {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(v, &graph, &mut s);
        }
    }
    // Each component as one closed path through its edges.
    s.out
        .into_iter()
        .map(|comp| {
            let set: BTreeSet<&str> = comp.iter().copied().collect();
            let start = *set.iter().next().expect("a component has a node");
            let mut path = vec![start.to_owned()];
            let mut seen = BTreeSet::from([start]);
            let mut at = start;
            loop {
                let next = graph[at]
                    .iter()
                    .copied()
                    .filter(|n| set.contains(n))
                    .find(|n| !seen.contains(n) || *n == start);
                match next {
                    Some(n) if n == start => {
                        path.push(n.to_owned());
                        break;
                    }
                    Some(n) => {
                        seen.insert(n);
                        path.push(n.to_owned());
                        at = n;
                    }
                    None => {
                        // Back to the start through any member.
                        path.push(start.to_owned());
                        break;
                    }
                }
            }
            path
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_in_paths_and_groups_not_in_comments_strings_or_tests() {
        let code = strip(
            "use crate::config::Config;\n\
             use crate::{fleet::Fleet, snapshot::{A, B}, self};\n\
             // crate::cost is only mentioned\n\
             let s = \"crate::heal\";\n\
             fn f() { crate::proxy::x(); }\n\
             #[cfg(test)]\nmod tests {\n use crate::api::X;\n}\n\
             fn g() { crate::ledger::y() }\n",
        );
        let code = without_tests(&code);
        let names: Vec<String> = references(&code).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["config", "fleet", "snapshot", "proxy", "ledger"]);
    }

    #[test]
    fn cycles_are_found() {
        let e = |a: &str, b: &str| Edge {
            from: a.into(),
            to: b.into(),
            at: "x".into(),
        };
        let c = cycles(&[e("a", "b"), e("b", "c"), e("c", "a"), e("c", "d")]);
        assert_eq!(c, vec![vec!["a", "b", "c", "a"]]);
        assert!(cycles(&[e("a", "b"), e("b", "c")]).is_empty());
    }
}
