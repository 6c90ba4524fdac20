//! Finding where a key path stands in TOML text, for error messages.

use toml_edit::{Document, Item};

use super::validate::Seg;

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before
        .get(line_start..)
        .map_or(1, |s| s.chars().count() + 1);
    (line, column)
}

/// The text of a 1-based line, indented, for showing under an error.
pub fn snippet(text: &str, line: usize) -> String {
    let content = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let content: String = content.chars().take(200).collect();
    format!("  {line:>4} | {content}")
}

/// The line and column where `path` is written: the key itself when present,
/// else the deepest enclosing table or array element that exists (a missing
/// key is reported at the table that lacks it).
pub fn find(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let doc = Document::parse(text).ok()?;
    let mut item: &Item = doc.as_item();
    let mut best: Option<usize> = None;
    for seg in path {
        match seg {
            Seg::Key(k) => {
                let table = item.as_table_like()?;
                let Some((key, value)) = table.get_key_value(k) else {
                    break;
                };
                if let Some(span) = key.span().or_else(|| value.span()) {
                    best = Some(span.start);
                }
                item = value;
            }
            Seg::Index(i) => {
                let Some(next) = item.get(*i) else {
                    break;
                };
                if let Some(span) = next.span() {
                    best = Some(span.start);
                }
                item = next;
            }
        }
    }
    best.map(|offset| line_col(text, offset))
}

/// The key path (`machines[1].services[0].port`) of the innermost item
/// written at byte `offset`, for errors the parser reports by position only.
pub fn path_at(text: &str, offset: usize) -> Option<String> {
    let doc = Document::parse(text).ok()?;
    let mut path = String::new();
    let mut item: &Item = doc.as_item();
    'descend: loop {
        if let Some(table) = item.as_table_like() {
            for (key, value) in table.iter() {
                let key_span = table.key(key).and_then(|k| k.span());
                let hit = |r: Option<std::ops::Range<usize>>| {
                    r.is_some_and(|r| r.start <= offset && offset <= r.end)
                };
                if hit(value.span()) || hit(key_span) || contains(value, offset) {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    item = value;
                    continue 'descend;
                }
            }
        }
        let len = match item {
            Item::ArrayOfTables(a) => a.len(),
            Item::Value(v) => v.as_array().map_or(0, |a| a.len()),
            _ => 0,
        };
        for i in 0..len {
            if let Some(next) = item.get(i)
                && (next
                    .span()
                    .is_some_and(|r| r.start <= offset && offset <= r.end)
                    || contains(next, offset))
            {
                path.push_str(&format!("[{i}]"));
                item = next;
                continue 'descend;
            }
        }
        break;
    }
    (!path.is_empty()).then_some(path)
}

/// Whether any key or value inside `item` spans `offset` (a table's own
/// span covers only its header, so look inside).
fn contains(item: &Item, offset: usize) -> bool {
    let within =
        |r: Option<std::ops::Range<usize>>| r.is_some_and(|r| r.start <= offset && offset <= r.end);
    match item {
        Item::Table(t) => t.iter().any(|(k, v)| {
            within(t.key(k).and_then(|k| k.span())) || within(v.span()) || contains(v, offset)
        }),
        Item::ArrayOfTables(a) => a.iter().any(|t| {
            t.iter().any(|(k, v)| {
                within(t.key(k).and_then(|k| k.span())) || within(v.span()) || contains(v, offset)
            })
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Seg {
        Seg::Key(s.to_owned())
    }

    #[test]
    fn finds_keys_in_arrays_of_tables_and_inline_arrays() {
        let text = "this_machine = \"a\"\n\n[[machines]]\nid = \"a\"\n\n[[machines]]\nid = \"b\"\nservices = [ { name = \"x\", port = 1 } ]\n\n[[routes]]\nmodel = \"m\"\nmachines = [\"a\", \"zz\"]\n";
        assert_eq!(find(text, &[k("this_machine")]), Some((1, 1)));
        assert_eq!(
            find(text, &[k("machines"), Seg::Index(1), k("id")]),
            Some((7, 1))
        );
        assert_eq!(
            find(
                text,
                &[
                    k("machines"),
                    Seg::Index(1),
                    k("services"),
                    Seg::Index(0),
                    k("port")
                ]
            ),
            Some((8, 28))
        );
        assert_eq!(
            find(
                text,
                &[k("routes"), Seg::Index(0), k("machines"), Seg::Index(1)]
            ),
            Some((12, 18))
        );
    }

    #[test]
    fn missing_key_points_at_its_table() {
        let text = "[api]\nallowed_hosts = []\n";
        assert_eq!(find(text, &[k("api"), k("listen")]), Some((1, 2)));
        assert_eq!(find(text, &[k("proxy"), k("listen")]), None);
    }

    #[test]
    fn path_at_names_the_key_under_an_offset() {
        let text = "[probes]\nsystem_interval_secs = \"fast\"\n\n[[machines]]\nid = \"a\"\n\n[[machines]]\nid = \"b\"\nservices = [ { name = \"x\", port = \"no\" } ]\n";
        let at = |needle: &str| path_at(text, text.find(needle).unwrap());
        assert_eq!(
            at("\"fast\"").as_deref(),
            Some("probes.system_interval_secs")
        );
        assert_eq!(at("\"b\"").as_deref(), Some("machines[1].id"));
        assert_eq!(
            at("\"no\"").as_deref(),
            Some("machines[1].services[0].port")
        );
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("é=1\nab", 5), (2, 1));
        assert_eq!(line_col("é=1", 2), (1, 2));
    }
}
