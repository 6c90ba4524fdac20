//! Which machines may serve a model, in the order to try them.
//!
//! 1. `machine/model` pins a machine (only when `machine` is a configured
//!    machine with an Ollama: Ollama's own names may contain `/`).
//! 2. A `[[routes]]` entry gives the machines in order.
//! 3. Otherwise every machine whose Ollama lists the model: this machine
//!    first, then where it is already loaded, then by priority, then by
//!    measured latency.
//!
//! Machines the health poll last saw down are left out while any other can
//! serve, so a dead machine costs no request; when every candidate looks
//! down they are all tried anyway (the poll may be stale).
//!
//! Pure: reads the config, the fleet and the snapshot; does no I/O.

use crate::config::Config;
use crate::fleet::Fleet;
use crate::snapshot::{MachineSnapshot, Snapshot};

/// One machine to try.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Machine id.
    pub machine: String,
    /// Its Ollama base URL.
    pub base_url: String,
    /// Whether it is this machine (no SOCKS5 hop).
    pub is_self: bool,
    /// The model name to send upstream (a pin's prefix removed, and the
    /// spelling that machine lists).
    pub model: String,
    /// Whether the last health poll saw its Ollama up.
    pub healthy: bool,
}

/// Why no machine can be tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The model is on no machine of the fleet.
    #[error(
        "model {model:?} not found on any machine; available: {}",
        list(available)
    )]
    UnknownModel {
        /// What was asked for.
        model: String,
        /// Every model the fleet has, as clients may name them.
        available: Vec<String>,
    },
    /// No Ollama that answered has the model, and some did not answer: it
    /// may be on one of those, which cannot serve it now either.
    #[error(
        "no machine can serve {model:?} now: {} not answering, and no Ollama that answers has it",
        down.join(", ")
    )]
    NoneUp {
        /// What was asked for.
        model: String,
        /// The machines whose Ollama is down or not probed yet.
        down: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none (no Ollama of the fleet has answered yet)".to_owned()
    } else {
        names.join(", ")
    }
}

pub use crate::snapshot::same_model;

/// The machines to try for `model`, best first.
pub fn plan(
    model: &str,
    config: &Config,
    fleet: &Fleet,
    snap: &Snapshot,
) -> Result<Vec<Candidate>, RouteError> {
    let with_ollama = |id: &str| {
        fleet
            .machines()
            .find(|m| m.id == id)
            .and_then(|m| m.ollama_url.as_deref().map(|u| (m, u)))
    };
    let candidate = |id: &str, name: &str| -> Option<Candidate> {
        let (m, url) = with_ollama(id)?;
        let seen = snap.machine(id);
        Some(Candidate {
            machine: m.id.clone(),
            base_url: url.trim_end_matches('/').to_owned(),
            is_self: m.id == fleet.this.id,
            model: listed_name(seen, name).unwrap_or_else(|| name.to_owned()),
            healthy: seen
                .and_then(|s| s.ollama.as_ref())
                .is_some_and(|o| o.reachable),
        })
    };

    // 1. A pin.
    if let Some((machine, rest)) = model.split_once('/')
        && !rest.is_empty()
        && with_ollama(machine).is_some()
    {
        return Ok(candidate(machine, rest).into_iter().collect());
    }

    // 2. A configured route. A machine whose Ollama answered without the
    // model is skipped; one not yet probed is kept. Unless the route is
    // strict, those with the model loaded go first, in the route's order.
    if let Some(route) = config.routes.iter().find(|r| same_model(&r.model, model)) {
        let mut found: Vec<Candidate> = route
            .machines
            .iter()
            .filter(|id| {
                snap.machine(id)
                    .and_then(|s| s.ollama.as_ref())
                    .is_none_or(|o| !o.reachable || listed_name(snap.machine(id), model).is_some())
            })
            .filter_map(|id| candidate(id, model))
            .collect();
        if !route.strict {
            found.sort_by_key(|c| !loaded(snap.machine(&c.machine), model));
        }
        if !found.is_empty() {
            return Ok(healthy_first(found));
        }
    }

    // 3. Everyone who has it.
    let mut found: Vec<(Candidate, bool, i32, f64)> = snap
        .machines
        .iter()
        .filter(|m| listed_name(Some(m), model).is_some())
        .filter_map(|m| {
            let c = candidate(&m.id, model)?;
            let o = m.ollama.as_ref();
            let loaded = loaded(Some(m), model);
            let priority = fleet
                .machines()
                .find(|c| c.id == m.id)
                .map_or(0, |c| c.priority);
            let latency = o.and_then(|o| o.latency_ms).unwrap_or(f64::MAX);
            Some((c, loaded, priority, latency))
        })
        .collect();
    if found.is_empty() {
        let down: Vec<String> = fleet
            .machines()
            .filter(|m| m.ollama_url.is_some())
            .filter(|m| {
                snap.machine(&m.id)
                    .and_then(|s| s.ollama.as_ref())
                    .is_none_or(|o| !o.reachable)
            })
            .map(|m| m.id.clone())
            .collect();
        if !down.is_empty() {
            return Err(RouteError::NoneUp {
                model: model.to_owned(),
                down,
            });
        }
        return Err(RouteError::UnknownModel {
            model: model.to_owned(),
            available: available(fleet, snap),
        });
    }
    // Loaded before self: a cold load costs seconds, the network hop to a
    // peer milliseconds.
    found.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(b.0.is_self.cmp(&a.0.is_self))
            .then(b.2.cmp(&a.2))
            .then(a.3.total_cmp(&b.3))
    });
    Ok(healthy_first(found.into_iter().map(|f| f.0).collect()))
}

/// Whether the machine's Ollama has `model` loaded (in memory, no cold load).
fn loaded(machine: Option<&MachineSnapshot>, model: &str) -> bool {
    machine
        .and_then(|m| m.ollama.as_ref())
        .is_some_and(|o| o.loaded.iter().any(|l| same_model(&l.name, model)))
}

/// Drops machines seen down while any healthy one remains.
/// Puts `machine` first when it can serve and its Ollama looks up: a
/// `/via/<machine>/` address (what `clawfleet clawdbot wire` writes) keeps
/// a provider going to the machine it named, with the rest of the plan as
/// its failover.
pub fn prefer(candidates: &mut Vec<Candidate>, machine: &str) {
    if let Some(i) = candidates
        .iter()
        .position(|c| c.machine == machine && c.healthy)
    {
        let c = candidates.remove(i);
        candidates.insert(0, c);
    }
}

fn healthy_first(candidates: Vec<Candidate>) -> Vec<Candidate> {
    if candidates.iter().any(|c| c.healthy) {
        candidates.into_iter().filter(|c| c.healthy).collect()
    } else {
        candidates
    }
}

/// The machine's own spelling of `model`, if its Ollama lists it.
fn listed_name(machine: Option<&MachineSnapshot>, model: &str) -> Option<String> {
    machine?
        .ollama
        .as_ref()?
        .models
        .iter()
        .find(|m| same_model(&m.name, model))
        .map(|m| m.name.clone())
}

/// Every model the fleet has, plain and pinned (`macmini/gpt-oss:20b`),
/// sorted, for "unknown model" answers.
pub fn available(fleet: &Fleet, snap: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in &snap.machines {
        let has_ollama = fleet
            .machines()
            .any(|c| c.id == m.id && c.ollama_url.is_some());
        if !has_ollama {
            continue;
        }
        for model in m.ollama.iter().flat_map(|o| o.models.iter()) {
            names.push(model.name.clone());
            names.push(format!("{}/{}", m.id, model.name));
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Source};
    use crate::snapshot::{LoadedModel, OllamaModel, OllamaStatus};

    /// Three machines: `a` (this one), `b` (priority 10), `c` (priority 20).
    fn setup(routes: &str) -> (Config, Fleet, Snapshot) {
        let text = format!(
            r#"this_machine = "a"
[[machines]]
id = "a"
name = "A"
ollama_url = "http://a:11434"
[[machines]]
id = "b"
name = "B"
priority = 10
ollama_url = "http://b:11434"
[[machines]]
id = "c"
name = "C"
priority = 20
ollama_url = "http://c:11434/"
[[machines]]
id = "w"
name = "Windows"
{routes}"#
        );
        let config = config::parse(&text, &Source::Embedded).unwrap();
        let fleet = Fleet::resolve(&config, "elsewhere");
        let snap = crate::publish::initial_snapshot(&fleet);
        (config, fleet, snap)
    }

    fn has(
        snap: &mut Snapshot,
        id: &str,
        up: bool,
        models: &[&str],
        loaded: &[&str],
        latency: f64,
    ) {
        let m = snap.machines.iter_mut().find(|m| m.id == id).unwrap();
        m.ollama = Some(OllamaStatus {
            reachable: up,
            latency_ms: Some(latency),
            models: models
                .iter()
                .map(|n| OllamaModel {
                    name: (*n).to_owned(),
                    ..OllamaModel::default()
                })
                .collect(),
            loaded: loaded
                .iter()
                .map(|n| LoadedModel {
                    name: (*n).to_owned(),
                    ..LoadedModel::default()
                })
                .collect(),
            ..OllamaStatus::default()
        });
    }

    fn order(r: Result<Vec<Candidate>, RouteError>) -> Vec<String> {
        r.unwrap().into_iter().map(|c| c.machine).collect()
    }

    #[test]
    fn default_order_is_loaded_then_self_then_priority_then_latency() {
        let (config, fleet, mut snap) = setup("");
        has(&mut snap, "a", true, &["qwen3:8b"], &[], 5.0);
        has(
            &mut snap,
            "b",
            true,
            &["qwen3:8b", "gpt-oss:20b"],
            &["gpt-oss:20b"],
            9.0,
        );
        has(&mut snap, "c", true, &["qwen3:8b", "gpt-oss:20b"], &[], 1.0);
        assert_eq!(
            order(plan("qwen3:8b", &config, &fleet, &snap)),
            ["a", "c", "b"]
        );
        assert_eq!(
            order(plan("gpt-oss:20b", &config, &fleet, &snap)),
            ["b", "c"]
        );
        // Loaded elsewhere beats this machine's cold copy.
        has(
            &mut snap,
            "b",
            true,
            &["qwen3:8b", "gpt-oss:20b"],
            &["qwen3:8b"],
            9.0,
        );
        assert_eq!(
            order(plan("qwen3:8b", &config, &fleet, &snap)),
            ["b", "a", "c"]
        );
        // Nothing loaded and the same priority: the faster one first.
        has(&mut snap, "b", true, &["qwen3:8b", "gpt-oss:20b"], &[], 9.0);
        let mut fleet = fleet;
        fleet.peers.iter_mut().for_each(|p| p.priority = 20);
        assert_eq!(
            order(plan("gpt-oss:20b", &config, &fleet, &snap)),
            ["c", "b"]
        );
    }

    #[test]
    fn latest_is_implied_and_the_machines_spelling_is_sent() {
        let (config, fleet, mut snap) = setup("");
        has(&mut snap, "b", true, &["qwen3:latest"], &[], 1.0);
        let c = plan("qwen3", &config, &fleet, &snap).unwrap();
        assert_eq!(c[0].machine, "b");
        assert_eq!(c[0].model, "qwen3:latest");
        assert_eq!(c[0].base_url, "http://b:11434");
    }

    #[test]
    fn a_pin_names_one_machine_and_strips_the_prefix() {
        let (config, fleet, mut snap) = setup("");
        has(&mut snap, "c", true, &["gpt-oss:20b"], &[], 1.0);
        let c = plan("c/gpt-oss:20b", &config, &fleet, &snap).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].machine.as_str(), c[0].model.as_str()),
            ("c", "gpt-oss:20b")
        );
        assert_eq!(c[0].base_url, "http://c:11434", "trailing slash trimmed");
        // Not a machine id: an Ollama name with a slash.
        has(&mut snap, "a", true, &["hf.co/org/model:q4"], &[], 1.0);
        let c = plan("hf.co/org/model:q4", &config, &fleet, &snap).unwrap();
        assert_eq!(c[0].machine, "a");
        assert_eq!(c[0].model, "hf.co/org/model:q4");
        // A machine without Ollama cannot be pinned.
        assert!(plan("w/gpt-oss:20b", &config, &fleet, &snap).is_err());
    }

    #[test]
    fn a_route_orders_machines_and_skips_those_that_lack_the_model() {
        let (config, fleet, mut snap) =
            setup("[[routes]]\nmodel = \"gpt-oss:20b\"\nmachines = [\"c\", \"b\", \"a\"]\n");
        has(&mut snap, "a", true, &["gpt-oss:20b"], &[], 1.0);
        has(&mut snap, "b", true, &["qwen3:8b"], &[], 1.0);
        // c not probed yet: kept, in route order.
        assert_eq!(order(plan("gpt-oss:20b", &config, &fleet, &snap)), ["a"]);
        has(&mut snap, "c", true, &["gpt-oss:20b"], &[], 1.0);
        assert_eq!(
            order(plan("gpt-oss:20b", &config, &fleet, &snap)),
            ["c", "a"]
        );
    }

    #[test]
    fn a_route_puts_a_machine_with_the_model_loaded_first_unless_strict() {
        let route = "[[routes]]\nmodel = \"gpt-oss:20b\"\nmachines = [\"c\", \"b\", \"a\"]\n";
        for strict in [false, true] {
            let routes = if strict {
                format!("{route}strict = true\n")
            } else {
                route.to_owned()
            };
            let (config, fleet, mut snap) = setup(&routes);
            has(
                &mut snap,
                "a",
                true,
                &["gpt-oss:20b"],
                &["gpt-oss:20b"],
                1.0,
            );
            has(&mut snap, "b", true, &["gpt-oss:20b"], &[], 1.0);
            has(&mut snap, "c", true, &["gpt-oss:20b"], &[], 1.0);
            let expected = if strict {
                ["c", "b", "a"]
            } else {
                ["a", "c", "b"]
            };
            assert_eq!(
                order(plan("gpt-oss:20b", &config, &fleet, &snap)),
                expected,
                "strict = {strict}"
            );
        }
    }

    #[test]
    fn machines_seen_down_are_left_out_unless_all_are() {
        let (config, fleet, mut snap) = setup("");
        has(&mut snap, "a", false, &["qwen3:8b"], &[], 1.0);
        has(&mut snap, "b", true, &["qwen3:8b"], &[], 1.0);
        assert_eq!(order(plan("qwen3:8b", &config, &fleet, &snap)), ["b"]);
        has(&mut snap, "b", false, &["qwen3:8b"], &[], 1.0);
        assert_eq!(order(plan("qwen3:8b", &config, &fleet, &snap)), ["a", "b"]);
    }

    #[test]
    fn an_unknown_model_lists_what_exists() {
        let (config, fleet, mut snap) = setup("");
        has(&mut snap, "a", true, &["qwen3:8b"], &[], 1.0);
        has(&mut snap, "c", true, &["gpt-oss:20b", "qwen3:8b"], &[], 1.0);
        // b has not answered: the model may be there.
        let err = plan("llama9", &config, &fleet, &snap).unwrap_err();
        assert_eq!(
            err,
            RouteError::NoneUp {
                model: "llama9".into(),
                down: vec!["b".into()]
            }
        );
        has(&mut snap, "b", true, &[], &[], 1.0);
        let err = plan("llama9", &config, &fleet, &snap).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model \"llama9\" not found on any machine; available: a/qwen3:8b, c/gpt-oss:20b, c/qwen3:8b, gpt-oss:20b, qwen3:8b"
        );
    }
}
