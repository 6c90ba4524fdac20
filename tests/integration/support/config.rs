//! [`TestConfig`]: the daemon's TOML for a test, written once.
//!
//! Every test config starts from the same base: this machine by id, the
//! data folder, both listeners on port 0 of loopback, Ollama polled every
//! second with a 1 s limit, pm2 and the agent probed as good as never, and
//! the agent's config at a file that does not exist (so the user's own
//! OpenClaw stays out of the test). A test changes what it needs: any
//! `key = value` under any section (replacing the base's value, never
//! adding a second one: TOML refuses a key twice), `[[machines]]` entries,
//! and raw TOML tables at the end where nothing else fits.

use std::path::{Path, PathBuf};

use clawfleet::config::{self, Config, Source};
use clawfleet::daemon;

/// A value as TOML writes it: strings and paths quoted, numbers and
/// booleans bare, [`Toml`] as given.
pub trait TomlValue {
    /// The TOML text of the value.
    fn toml(&self) -> String;
}

/// TOML text used as it is: an array, an inline table, a list of listen
/// addresses.
#[derive(Debug, Clone)]
pub struct Toml(pub String);

impl Toml {
    /// `text` as a raw value.
    pub fn new(text: impl Into<String>) -> Toml {
        Toml(text.into())
    }
}

impl TomlValue for Toml {
    fn toml(&self) -> String {
        self.0.clone()
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl TomlValue for str {
    fn toml(&self) -> String {
        quoted(self)
    }
}

impl TomlValue for String {
    fn toml(&self) -> String {
        quoted(self)
    }
}

impl TomlValue for Path {
    fn toml(&self) -> String {
        quoted(&self.to_string_lossy())
    }
}

impl TomlValue for PathBuf {
    fn toml(&self) -> String {
        self.as_path().toml()
    }
}

impl TomlValue for bool {
    fn toml(&self) -> String {
        self.to_string()
    }
}

macro_rules! bare {
    ($($t:ty),*) => {$(
        impl TomlValue for $t {
            fn toml(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
bare!(u16, u32, u64, usize, i32, i64, f64);

impl<T: TomlValue + ?Sized> TomlValue for &T {
    fn toml(&self) -> String {
        (**self).toml()
    }
}

/// One table: its header (`""` for the top level) and its lines in order.
#[derive(Debug, Clone)]
struct Table {
    name: String,
    keys: Vec<(String, String)>,
}

/// The daemon's config for a test; see the module documentation.
#[derive(Debug, Clone)]
pub struct TestConfig {
    data_dir: PathBuf,
    tables: Vec<Table>,
    machines: Vec<String>,
    raw: String,
}

impl TestConfig {
    /// The base for machine `this_machine`, with `data_dir` as its data
    /// folder (`data_dir/none.json`, never created, is the agent's config).
    /// The machine itself is not listed yet: add it with [`Self::machine`].
    pub fn new(this_machine: &str, data_dir: &Path) -> TestConfig {
        TestConfig {
            data_dir: data_dir.to_path_buf(),
            tables: Vec::new(),
            machines: Vec::new(),
            raw: String::new(),
        }
        .set("", "this_machine", this_machine)
        .set("", "data_dir", data_dir)
        .set("api", "listen", "127.0.0.1:0")
        .set("proxy", "listen", "127.0.0.1:0")
        .set("probes", "ollama_interval_secs", 1)
        .set("probes", "timeout_ms", 1000)
        .set("probes", "pm2_interval_secs", 3600)
        .set("probes", "openclaw_interval_secs", 3600)
        .set("openclaw", "config_path", data_dir.join("none.json"))
    }

    /// The base with one machine, `local` (named "Local"), whose Ollama is
    /// at `ollama`.
    pub fn one_machine(data_dir: &Path, ollama: &str) -> TestConfig {
        TestConfig::new("local", data_dir).ollama_machine("local", "Local", ollama)
    }

    /// `key = value` under `[section]` (`""`: the top level; a dotted name
    /// such as `heal.commands` is a table of its own), replacing the
    /// value the key had.
    pub fn set(mut self, section: &str, key: &str, value: impl TomlValue) -> TestConfig {
        let value = value.toml();
        let table = match self.tables.iter().position(|t| t.name == section) {
            Some(i) => &mut self.tables[i],
            None => {
                self.tables.push(Table {
                    name: section.to_owned(),
                    keys: Vec::new(),
                });
                self.tables.last_mut().expect("just pushed")
            }
        };
        match table.keys.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => table.keys.push((key.to_owned(), value)),
        }
        self
    }

    /// Takes `key` out of `[section]`, so the daemon's default applies.
    pub fn unset(mut self, section: &str, key: &str) -> TestConfig {
        if let Some(table) = self.tables.iter_mut().find(|t| t.name == section) {
            table.keys.retain(|(k, _)| k != key);
        }
        self
    }

    /// A `[[machines]]` entry: `id`, `name`, then `lines` (more `key =
    /// value` lines of TOML, or nothing).
    pub fn machine(mut self, id: &str, name: &str, lines: &str) -> TestConfig {
        let mut entry = format!(
            "[[machines]]\nid = {}\nname = {}\n",
            quoted(id),
            quoted(name)
        );
        for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            entry.push_str(line);
            entry.push('\n');
        }
        self.machines.push(entry);
        self
    }

    /// A `[[machines]]` entry whose Ollama is at `url`.
    pub fn ollama_machine(self, id: &str, name: &str, url: &str) -> TestConfig {
        self.machine(id, name, &format!("ollama_url = {}", quoted(url)))
    }

    /// A `[heal.commands]` entry: `action` runs `argv` (its one
    /// alternative), instead of the built-in table's commands.
    pub fn heal_command(self, action: &str, argv: &[&str]) -> TestConfig {
        let argv: Vec<String> = argv.iter().map(|a| quoted(a)).collect();
        self.set(
            "heal.commands",
            &quoted(action),
            Toml(format!("[[{}]]", argv.join(", "))),
        )
    }

    /// Raw TOML added at the end: whole tables (`[[routes]]`, `[heal.clean]`,
    /// …), so it must begin with a table header.
    pub fn raw(mut self, toml: &str) -> TestConfig {
        assert!(
            toml.trim_start().is_empty() || toml.trim_start().starts_with('['),
            "raw TOML goes at the end, after the machines: begin it with a table header, not {toml:?}"
        );
        self.raw.push_str(toml);
        if !self.raw.ends_with('\n') {
            self.raw.push('\n');
        }
        self
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // The top level first: keys after a table header would be the table's.
        for table in self.tables.iter().filter(|t| t.name.is_empty()) {
            for (k, v) in &table.keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for table in self.tables.iter().filter(|t| !t.name.is_empty()) {
            out.push_str(&format!("[{}]\n", table.name));
            for (k, v) in &table.keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for m in &self.machines {
            out.push_str(m);
        }
        out.push_str(&self.raw);
        out
    }

    /// The text parsed and validated, as the daemon reads it.
    pub fn config(&self) -> Config {
        config::parse(&self.text(), &Source::Embedded)
            .unwrap_or_else(|e| panic!("the test config is valid: {e}\n{}", self.text()))
    }

    /// Writes the text to `path` and returns the path.
    pub fn write(&self, path: &Path) -> PathBuf {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the config's folder");
        }
        std::fs::write(path, self.text()).expect("write the test config");
        path.to_path_buf()
    }

    /// The daemon, started in this process on this config.
    pub async fn start(&self) -> daemon::Running {
        daemon::start(self.config()).await.expect("daemon starts")
    }
}
