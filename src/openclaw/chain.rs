//! The agent's model chains (primary, fallbacks, heartbeat, sub-agents)
//! against what the fleet can serve now: each local model (one of a
//! provider whose `baseUrl` is an Ollama, or this machine's proxy) is
//! servable when some machine's Ollama that answered lists it. A chain whose
//! every local model is down is flagged: its turns are about to go to the
//! paid fallbacks.
//!
//! Pure: reads a `OpenClawStatus` and the snapshot.

pub use crate::snapshot::{ChainModel, ChainView};
use crate::snapshot::{OpenClawStatus, Snapshot};

/// Whether a provider's `baseUrl` is an Ollama of the fleet: any `:11434`,
/// this machine's proxy (`:11435`, `/via/...`), or the address of a
/// machine's Ollama in the snapshot.
fn is_local_url(url: &str, snap: &Snapshot) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let port = u.port_or_known_default();
    let host_port = |v: &reqwest::Url| {
        (
            v.host_str().map(str::to_ascii_lowercase),
            v.port_or_known_default(),
        )
    };
    port == Some(11434)
        || port == Some(11435)
        || u.path().starts_with("/via/")
        || snap.machines.iter().any(|m| {
            m.ollama
                .as_ref()
                .and_then(|o| reqwest::Url::parse(&o.url).ok())
                .is_some_and(|o| host_port(&o) == host_port(&u))
        })
}

/// Assesses `c`'s chains against `snap`.
pub fn assess(c: &OpenClawStatus, snap: &Snapshot) -> ChainView {
    let mut entries: Vec<(&str, &str)> = Vec::new();
    if let Some(p) = &c.primary_model {
        entries.push(("primary", p));
    }
    for f in &c.fallbacks {
        entries.push(("fallback", f));
    }
    if let Some(h) = &c.heartbeat_model {
        entries.push(("heartbeat", h));
    }
    if let Some(s) = &c.subagent_model {
        entries.push(("subagent", s));
    }
    let models: Vec<ChainModel> = entries
        .into_iter()
        .map(|(role, name)| {
            let (provider, model) = name.split_once('/').unwrap_or(("", name));
            let local = c
                .providers
                .iter()
                .find(|p| p.name == provider)
                .and_then(|p| p.base_url.as_deref())
                .is_some_and(|url| is_local_url(url, snap));
            let machines: Vec<String> = if local {
                snap.machines
                    .iter()
                    .filter(|m| {
                        m.ollama.as_ref().is_some_and(|o| {
                            o.reachable
                                && o.models
                                    .iter()
                                    .any(|x| crate::snapshot::same_model(&x.name, model))
                        })
                    })
                    .map(|m| m.id.clone())
                    .collect()
            } else {
                Vec::new()
            };
            ChainModel {
                role: role.to_owned(),
                model: name.to_owned(),
                local,
                servable: local.then_some(!machines.is_empty()),
                machines,
            }
        })
        .collect();
    let main: Vec<&ChainModel> = models
        .iter()
        .filter(|m| m.role == "primary" || m.role == "fallback")
        .filter(|m| m.local)
        .collect();
    let local_all_down = !main.is_empty() && main.iter().all(|m| m.servable == Some(false));
    ChainView {
        models,
        local_all_down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{MachineSnapshot, OllamaModel, OllamaStatus, OpenClawProvider};

    fn clawdbot() -> OpenClawStatus {
        OpenClawStatus {
            primary_model: Some("ollama-macmini/gpt-oss:20b".into()),
            fallbacks: vec![
                "ollama/qwen3:8b".into(),
                "anthropic/claude-sonnet-4-5".into(),
            ],
            heartbeat_model: Some("ollama-macmini/gpt-oss:20b".into()),
            subagent_model: Some("ollama/qwen3:8b".into()),
            providers: vec![
                OpenClawProvider {
                    name: "ollama-macmini".into(),
                    base_url: Some("http://127.0.0.1:11435/via/macmini/v1".into()),
                    ..OpenClawProvider::default()
                },
                OpenClawProvider {
                    name: "ollama".into(),
                    base_url: Some("http://127.0.0.1:11434/v1".into()),
                    ..OpenClawProvider::default()
                },
                OpenClawProvider {
                    name: "anthropic".into(),
                    base_url: Some("https://api.anthropic.com".into()),
                    ..OpenClawProvider::default()
                },
            ],
            ..OpenClawStatus::default()
        }
    }

    fn machine(id: &str, up: bool, models: &[&str]) -> MachineSnapshot {
        MachineSnapshot {
            id: id.into(),
            ollama: Some(OllamaStatus {
                reachable: up,
                models: models
                    .iter()
                    .map(|n| OllamaModel {
                        name: (*n).into(),
                        ..OllamaModel::default()
                    })
                    .collect(),
                ..OllamaStatus::default()
            }),
            ..MachineSnapshot::default()
        }
    }

    #[test]
    fn each_model_is_judged_and_a_chain_with_every_local_model_down_is_flagged() {
        let up = Snapshot {
            machines: vec![
                machine("macmini", true, &["gpt-oss:20b", "qwen3:8b"]),
                machine("macbook", true, &["qwen3:latest"]),
            ],
            ..Snapshot::default()
        };
        let v = assess(&clawdbot(), &up);
        let roles: Vec<(&str, bool, Option<bool>)> = v
            .models
            .iter()
            .map(|m| (m.role.as_str(), m.local, m.servable))
            .collect();
        assert_eq!(
            roles,
            [
                ("primary", true, Some(true)),
                ("fallback", true, Some(true)),
                ("fallback", false, None),
                ("heartbeat", true, Some(true)),
                ("subagent", true, Some(true)),
            ]
        );
        assert_eq!(v.models[0].machines, ["macmini"]);
        assert!(!v.local_all_down);

        // The Mac Mini's Ollama is down, and the MacBook lacks both models.
        let down = Snapshot {
            machines: vec![
                machine("macmini", false, &["gpt-oss:20b", "qwen3:8b"]),
                machine("macbook", true, &["llama3:8b"]),
            ],
            ..Snapshot::default()
        };
        let v = assess(&clawdbot(), &down);
        assert!(v.local_all_down, "{v:?}");
        assert_eq!(v.models[0].servable, Some(false));

        // No local model at all: nothing to flag.
        let mut cloud = clawdbot();
        cloud.primary_model = Some("anthropic/claude-opus-4-5".into());
        cloud.fallbacks = vec![];
        assert!(!assess(&cloud, &down).local_all_down);
    }
}
