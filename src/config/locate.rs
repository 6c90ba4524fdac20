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
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("é=1\nab", 5), (2, 1));
        assert_eq!(line_col("é=1", 2), (1, 2));
    }
}
