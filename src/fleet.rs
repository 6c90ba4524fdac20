//! The fleet as configured, and which member of it this machine is.
//!
//! This machine is the `this_machine` entry when set, else the entry whose
//! `hostname` matches the OS host name. A machine that matches nothing is
//! shown on its own (a single-machine view with loopback defaults) and its
//! configured "peers" are left alone: they are someone else's fleet until the
//! user adds this machine to the config.

use crate::config::{Config, MachineConfig, ServiceConfig};

/// How this machine was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identified {
    /// `this_machine` named it.
    Configured,
    /// Its `hostname` matched the OS host name.
    Hostname,
    /// Nothing matched: a standalone entry was made up from the OS.
    Unknown,
}

/// The fleet from this machine's point of view.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// This machine's entry (made up when [`Identified::Unknown`]).
    pub this: MachineConfig,
    /// How it was found.
    pub identified: Identified,
    /// The other machines, in config order.
    pub peers: Vec<MachineConfig>,
    /// The OS host name.
    pub os_hostname: String,
    /// Things to tell the user about how the view was built.
    pub notices: Vec<String>,
}

impl Fleet {
    /// Resolves this machine within `config`, given the OS host name.
    pub fn resolve(config: &Config, os_hostname: &str) -> Self {
        let by_config = config
            .this_machine
            .as_deref()
            .and_then(|id| config.machine(id));
        let (this, identified) = match by_config {
            Some(m) => (Some(m), Identified::Configured),
            None => (
                config.machines.iter().find(|m| {
                    m.hostname
                        .as_deref()
                        .is_some_and(|h| same_host(h, os_hostname))
                }),
                Identified::Hostname,
            ),
        };
        match this {
            Some(this) => Fleet {
                this: this.clone(),
                identified,
                peers: config
                    .machines
                    .iter()
                    .filter(|m| m.id != this.id)
                    .cloned()
                    .collect(),
                os_hostname: os_hostname.to_owned(),
                notices: Vec::new(),
            },
            None => {
                let mut notices = Vec::new();
                if !config.machines.is_empty() {
                    notices.push(format!(
                        "This machine ({os_hostname}) is not one of the configured machines ({}); \
                         showing it on its own. Set `this_machine` or add a [[machines]] entry \
                         with hostname = {os_hostname:?} to join the fleet.",
                        config
                            .machines
                            .iter()
                            .map(|m| m.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Fleet {
                    this: standalone(os_hostname),
                    identified: Identified::Unknown,
                    peers: Vec::new(),
                    os_hostname: os_hostname.to_owned(),
                    notices,
                }
            }
        }
    }

    /// Every machine, this one first.
    pub fn machines(&self) -> impl Iterator<Item = &MachineConfig> {
        std::iter::once(&self.this).chain(self.peers.iter())
    }
}

/// The entry made up for a machine the config does not know: loopback Ollama
/// and Clawdbot's default gateway port.
fn standalone(os_hostname: &str) -> MachineConfig {
    let id = slug(os_hostname);
    MachineConfig {
        id: if id.is_empty() { "this".to_owned() } else { id },
        name: os_hostname.to_owned(),
        role: "standalone".to_owned(),
        hostname: Some(os_hostname.to_owned()),
        tailnet_ip: None,
        ollama_url: Some("http://127.0.0.1:11434".to_owned()),
        fleet_url: None,
        priority: 0,
        models: Vec::new(),
        services: vec![
            ServiceConfig {
                name: "Ollama".to_owned(),
                port: Some(11434),
                host: None,
                url: None,
                expect_status: None,
            },
            ServiceConfig {
                name: "OpenClaw gateway".to_owned(),
                port: Some(18789),
                host: None,
                url: None,
                expect_status: None,
            },
        ],
        pm2_apps: Vec::new(),
        monthly_budget_usd: None,
    }
}

/// A host name reduced to a valid machine id.
fn slug(name: &str) -> String {
    let short = short_name(name);
    let mut out = String::new();
    for c in short.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The first label of a host name (`felipes-mac-mini` of `felipes-mac-mini.local`).
fn short_name(name: &str) -> &str {
    name.trim_end_matches('.').split('.').next().unwrap_or(name)
}

/// Whether two host names name the same machine: case-insensitive, ignoring a
/// trailing dot, and comparing short names when either side is unqualified or
/// ends in `.local` (macOS reports `Felipes-Mac-mini.local` or
/// `Felipes-Mac-mini` depending on the API).
pub fn same_host(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
    let (a, b) = (norm(a), norm(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let loose = |s: &str| !s.contains('.') || s.ends_with(".local");
    loose(&a) && loose(&b) && short_name(&a) == short_name(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_match_as_macos_reports_them() {
        let cases = [
            ("felipes-mac-mini.local", "Felipes-Mac-Mini.local", true),
            ("felipes-mac-mini.local", "felipes-mac-mini", true),
            ("felipes-mac-mini.local.", "felipes-mac-mini", true),
            (
                "felipes-mac-mini.local",
                "felipes-macbook-pro-2.local",
                false,
            ),
            ("box.example.com", "box", false),
            ("box.example.com", "BOX.example.com", true),
            ("", "", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(same_host(a, b), want, "{a} ~ {b}");
        }
    }

    #[test]
    fn finds_this_machine_by_hostname_then_config() {
        let config = crate::config::embedded();
        let fleet = Fleet::resolve(&config, "Felipes-Mac-Mini");
        assert_eq!(fleet.this.id, "macmini");
        assert_eq!(fleet.identified, Identified::Hostname);
        assert_eq!(
            fleet
                .peers
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            ["macbook", "msi"]
        );

        let mut config = config;
        config.this_machine = Some("msi".to_owned());
        let fleet = Fleet::resolve(&config, "Felipes-Mac-Mini");
        assert_eq!(fleet.this.id, "msi");
        assert_eq!(fleet.identified, Identified::Configured);
    }

    #[test]
    fn an_unknown_machine_is_shown_alone() {
        let fleet = Fleet::resolve(&crate::config::embedded(), "Build_Box.example.org");
        assert_eq!(fleet.identified, Identified::Unknown);
        assert_eq!(fleet.this.id, "build-box");
        assert!(fleet.peers.is_empty());
        assert_eq!(
            fleet.this.ollama_url.as_deref(),
            Some("http://127.0.0.1:11434")
        );
        assert!(fleet.notices[0].contains("Build_Box.example.org"));
        assert!(fleet.notices[0].contains("macbook, macmini, msi"));
    }
}
