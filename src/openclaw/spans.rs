//! Where each string value of a JSON5 document is, byte for byte, so that a
//! value can be replaced without touching anything else: comments, key
//! quoting, trailing commas and spacing stay exactly as the user wrote them.
//!
//! A scanner of the whole JSON5 grammar (objects, arrays, single- and
//! double-quoted strings with every escape, unquoted keys, comments,
//! hexadecimal and signed numbers, `Infinity`, `NaN`), keeping only what the
//! editor needs: each string value with its path and span. Errors say where.

use std::ops::Range;

/// A string value in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringValue {
    /// Keys from the root (array items by index).
    pub path: Vec<String>,
    /// The literal's bytes, quotes included.
    pub span: Range<usize>,
    /// The value, unescaped.
    pub value: String,
    /// `"` or `'`.
    pub quote: char,
}

/// An object in the document: where its `{` is, so a member can be added
/// right after it without moving anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectAt {
    /// Keys from the root (array items by index); empty for the root.
    pub path: Vec<String>,
    /// The byte offset of its `{`.
    pub open: usize,
    /// It has no member.
    pub empty: bool,
}

/// Why the text is not JSON5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ScanError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What was wrong.
    pub message: String,
}

/// Every string value of `text`, in document order.
pub fn string_values(text: &str) -> Result<Vec<StringValue>, ScanError> {
    scan(text).map(|(strings, _)| strings)
}

/// Every string value and every object of `text`, in document order.
pub fn scan(text: &str) -> Result<(Vec<StringValue>, Vec<ObjectAt>), ScanError> {
    let mut s = Scanner {
        text,
        pos: 0,
        out: Vec::new(),
        objects: Vec::new(),
        path: Vec::new(),
        depth: 0,
    };
    s.skip_trivia()?;
    s.value()?;
    s.skip_trivia()?;
    if s.pos < text.len() {
        return Err(s.error("unexpected text after the document"));
    }
    Ok((s.out, s.objects))
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    out: Vec<StringValue>,
    objects: Vec<ObjectAt>,
    path: Vec<String>,
    depth: usize,
}

const MAX_DEPTH: usize = 256;

impl Scanner<'_> {
    fn error(&self, message: &str) -> ScanError {
        let before = &self.text[..self.pos.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ScanError {
            line,
            column,
            message: message.to_owned(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_trivia(&mut self) -> Result<(), ScanError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == '\u{feff}' => {
                    self.bump();
                }
                Some('/') => {
                    let rest = &self.text[self.pos..];
                    if rest.starts_with("//") {
                        let end = rest
                            .find(['\n', '\r', '\u{2028}', '\u{2029}'])
                            .unwrap_or(rest.len());
                        self.pos += end;
                    } else if let Some(body) = rest.strip_prefix("/*") {
                        let Some(end) = body.find("*/") else {
                            return Err(self.error("a /* comment is never closed"));
                        };
                        self.pos += end + 4;
                    } else {
                        return Err(self.error("a lone '/'"));
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some(q @ ('"' | '\'')) => {
                let start = self.pos;
                let value = self.string()?;
                self.out.push(StringValue {
                    path: self.path.clone(),
                    span: start..self.pos,
                    value,
                    quote: q,
                });
                Ok(())
            }
            Some(_) => self.scalar(),
            None => Err(self.error("a value is missing")),
        }
    }

    fn enter(&mut self) -> Result<(), ScanError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested more than 256 levels deep"));
        }
        self.bump();
        self.skip_trivia()
    }

    fn object(&mut self) -> Result<(), ScanError> {
        let open = self.pos;
        self.enter()?;
        self.objects.push(ObjectAt {
            path: self.path.clone(),
            open,
            empty: self.peek() == Some('}'),
        });
        loop {
            if self.peek() == Some('}') {
                self.bump();
                self.depth -= 1;
                return Ok(());
            }
            let key = match self.peek() {
                Some('"' | '\'') => self.string()?,
                Some(_) => self.identifier()?,
                None => return Err(self.error("an object is never closed")),
            };
            self.skip_trivia()?;
            if self.bump() != Some(':') {
                return Err(self.error("expected ':' after a key"));
            }
            self.skip_trivia()?;
            self.path.push(key);
            self.value()?;
            self.path.pop();
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                    self.skip_trivia()?;
                }
                Some('}') => {}
                None => return Err(self.error("an object is never closed")),
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self) -> Result<(), ScanError> {
        self.enter()?;
        let mut index = 0usize;
        loop {
            if self.peek() == Some(']') {
                self.bump();
                self.depth -= 1;
                return Ok(());
            }
            if self.peek().is_none() {
                return Err(self.error("an array is never closed"));
            }
            self.path.push(index.to_string());
            self.value()?;
            self.path.pop();
            index += 1;
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                    self.skip_trivia()?;
                }
                Some(']') => {}
                None => return Err(self.error("an array is never closed")),
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    fn identifier(&mut self) -> Result<String, ScanError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '$' {
                self.bump();
            } else {
                break;
            }
        }
        let name = &self.text[start..self.pos];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self.error("expected a key"));
        }
        Ok(name.to_owned())
    }

    /// A number or a literal: scanned as one word, then checked.
    fn scalar(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '+' | '-' | '.' | '_') {
                self.bump();
            } else {
                break;
            }
        }
        let word = &self.text[start..self.pos];
        let unsigned = word.trim_start_matches(['+', '-']);
        let ok = matches!(word, "true" | "false" | "null")
            || matches!(unsigned, "Infinity" | "NaN")
            || (unsigned.len() > 2
                && (unsigned.starts_with("0x") || unsigned.starts_with("0X"))
                && unsigned[2..].chars().all(|c| c.is_ascii_hexdigit()))
            || is_decimal(unsigned);
        if ok {
            Ok(())
        } else {
            self.pos = start;
            Err(self
                .error("expected a value (a string, number, object, array, true, false or null)"))
        }
    }

    fn string(&mut self) -> Result<String, ScanError> {
        let Some(quote) = self.bump() else {
            return Err(self.error("expected a string"));
        };
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error("a string is never closed"));
            };
            match c {
                c if c == quote => return Ok(out),
                '\n' | '\r' => return Err(self.error("a line break inside a string")),
                '\\' => {
                    let Some(e) = self.bump() else {
                        return Err(self.error("a string is never closed"));
                    };
                    match e {
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\u{b}'),
                        '0' => out.push('\0'),
                        'x' => out.push(self.hex(2)?),
                        'u' => {
                            let first = self.hex(4)? as u32;
                            if (0xD800..0xDC00).contains(&first)
                                && self.text[self.pos..].starts_with("\\u")
                            {
                                self.pos += 2;
                                let second = self.hex(4)? as u32;
                                let code = 0x10000
                                    + ((first - 0xD800) << 10)
                                    + (second.wrapping_sub(0xDC00) & 0x3FF);
                                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            } else {
                                out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
                            }
                        }
                        // A line continuation.
                        '\n' | '\u{2028}' | '\u{2029}' => {}
                        '\r' => {
                            if self.peek() == Some('\n') {
                                self.bump();
                            }
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex(&mut self, n: usize) -> Result<char, ScanError> {
        let digits = self.text.get(self.pos..self.pos + n).unwrap_or("");
        let code = u32::from_str_radix(digits, 16)
            .ok()
            .filter(|_| digits.len() == n && digits.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("a bad \\x or \\u escape"))?;
        self.pos += n;
        Ok(char::from_u32(code).unwrap_or('\u{fffd}'))
    }
}

/// `12`, `1.5`, `.5`, `5.`, each with an optional exponent (`1e-3`).
fn is_decimal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"// Clawdbot's config, by hand
{
  /* providers */
  models: {
    providers: {
      'ollama-macmini': {
        baseUrl: 'http://100.115.10.14:11434/v1', // the Mac Mini
        api: "openai-completions",
        models: [ { id: "gpt-oss:20b", cost: { input: 0, output: +0.5e-1, }, }, ],
      },
      "weird \"name\"": { baseUrl: "http://h:1/\u0076\x31", n: [0x1F, -Infinity, NaN, .5, 5.,], },
    },
  },
  ok: true, nothing: null,
}
"#;

    #[test]
    fn every_string_with_its_path_and_exact_span() {
        let found = string_values(DOC).unwrap();
        let base = found
            .iter()
            .find(|s| s.path == ["models", "providers", "ollama-macmini", "baseUrl"])
            .unwrap();
        assert_eq!(base.value, "http://100.115.10.14:11434/v1");
        assert_eq!(&DOC[base.span.clone()], "'http://100.115.10.14:11434/v1'");
        assert_eq!(base.quote, '\'');
        let id = found
            .iter()
            .find(|s| s.path == ["models", "providers", "ollama-macmini", "models", "0", "id"])
            .unwrap();
        assert_eq!(id.value, "gpt-oss:20b");
        let weird = found
            .iter()
            .find(|s| s.path == ["models", "providers", "weird \"name\"", "baseUrl"])
            .unwrap();
        assert_eq!(weird.value, "http://h:1/v1", "escapes are decoded");
        // The same values as a full JSON5 parser reads.
        let parsed: serde_json::Value = json5::from_str(DOC).unwrap();
        assert_eq!(
            parsed["models"]["providers"]["weird \"name\""]["baseUrl"],
            "http://h:1/v1"
        );
    }

    #[test]
    fn objects_and_where_they_open() {
        let (_, objects) = scan(DOC).unwrap();
        let providers = objects
            .iter()
            .find(|o| o.path == ["models", "providers"])
            .unwrap();
        assert_eq!(&DOC[providers.open..providers.open + 1], "{");
        assert!(!providers.empty);
        assert_eq!(objects[0].path, Vec::<String>::new(), "the root first");
        let (_, objects) = scan("{a: {}, b: [{ }]}").unwrap();
        assert!(objects.iter().any(|o| o.path == ["a"] && o.empty));
        assert!(objects.iter().any(|o| o.path == ["b", "0"] && o.empty));
    }

    #[test]
    fn errors_say_where() {
        for (bad, what) in [
            ("{ a: 1 ", "never closed"),
            ("{ a 1 }", "expected ':'"),
            ("{ a: 'x }", "never closed"),
            ("{ a: /* x }", "never closed"),
            ("{ a: nope }", "expected a value"),
            ("[1 2]", "expected ','"),
            ("{} {}", "after the document"),
        ] {
            let e = string_values(bad).unwrap_err();
            assert!(e.message.contains(what), "{bad}: {e}");
            assert_eq!(e.line, 1);
        }
        let deep = "[".repeat(300) + &"]".repeat(300);
        assert!(string_values(&deep).unwrap_err().message.contains("256"));
    }
}
