//! Checks that need more than the TOML types: addresses that parse, ids that
//! are unique, routes that name machines that exist.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::{Config, MachineConfig};

/// One segment of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// `machines`
    Key(String),
    /// `[1]`
    Index(usize),
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where, as segments (used to find the line).
    pub path: Vec<Seg>,
    /// Where, as written for people: `machines[1].id`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What would be right.
    pub expected: String,
}

struct Checker {
    issues: Vec<Issue>,
}

impl Checker {
    fn push(&mut self, path: Vec<Seg>, message: String, expected: &str) {
        self.issues.push(Issue {
            key: render(&path),
            path,
            message,
            expected: expected.to_owned(),
        });
    }
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn key(parts: &[&str]) -> Vec<Seg> {
    parts.iter().map(|p| Seg::Key((*p).to_owned())).collect()
}

fn at(table: &str, index: usize, field: &str) -> Vec<Seg> {
    vec![
        Seg::Key(table.to_owned()),
        Seg::Index(index),
        Seg::Key(field.to_owned()),
    ]
}

/// Every problem in `config`; empty when it is good.
pub fn validate(config: &Config) -> Vec<Issue> {
    let mut c = Checker { issues: Vec::new() };

    let listens = config.api.listen.as_strs();
    if listens.is_empty() {
        c.push(
            key(&["api", "listen"]),
            "no address given".to_owned(),
            "at least one address such as \"127.0.0.1:11436\"",
        );
    }
    for (i, addr) in listens.iter().enumerate() {
        if addr.parse::<SocketAddr>().is_err() {
            let mut path = key(&["api", "listen"]);
            if matches!(config.api.listen, super::Listen::Many(_)) {
                path.push(Seg::Index(i));
            }
            c.push(
                path,
                format!("{addr:?} is not an IP address with a port"),
                "an address such as \"127.0.0.1:11436\" or \"[::1]:11436\" (names are not resolved)",
            );
        }
    }
    if config.proxy.listen.parse::<SocketAddr>().is_err() {
        c.push(
            key(&["proxy", "listen"]),
            format!("{:?} is not an IP address with a port", config.proxy.listen),
            "an address such as \"127.0.0.1:11435\"",
        );
    }
    if let Some(socks) = &config.proxy.socks5
        && !is_host_port(socks)
    {
        c.push(
            key(&["proxy", "socks5"]),
            format!("{socks:?} is not host:port"),
            "the SOCKS5 proxy as host:port, such as \"127.0.0.1:1055\"",
        );
    }

    let px = &config.proxy;
    if !(50..=120_000).contains(&px.connect_timeout_ms) {
        c.push(
            key(&["proxy", "connect_timeout_ms"]),
            format!("{} is out of range", px.connect_timeout_ms),
            "milliseconds from 50 to 120000",
        );
    }
    if !(1..=3600).contains(&px.first_byte_timeout_secs) {
        c.push(
            key(&["proxy", "first_byte_timeout_secs"]),
            format!("{} is out of range", px.first_byte_timeout_secs),
            "seconds from 1 to 3600 (a large model can take minutes to load)",
        );
    }
    for (name, value, range, expected) in [
        (
            "hang_check_after_ms",
            px.hang_check_after_ms,
            10..=60_000,
            "milliseconds from 10 to 60000",
        ),
        (
            "hang_check_timeout_ms",
            px.hang_check_timeout_ms,
            50..=60_000,
            "milliseconds from 50 to 60000",
        ),
        (
            "hang_check_every_secs",
            px.hang_check_every_secs,
            1..=3600,
            "seconds from 1 to 3600",
        ),
    ] {
        if !range.contains(&value) {
            c.push(
                key(&["proxy", name]),
                format!("{value} is out of range"),
                expected,
            );
        }
    }
    if !(1024..=1024 * 1024 * 1024).contains(&px.max_body_bytes) {
        c.push(
            key(&["proxy", "max_body_bytes"]),
            format!("{} is out of range", px.max_body_bytes),
            "bytes from 1024 to 1073741824",
        );
    }
    for (name, value, range, words) in [
        (
            "header_read_timeout_secs",
            px.header_read_timeout_secs,
            1..=600,
            "seconds from 1 to 600",
        ),
        (
            "body_idle_timeout_secs",
            px.body_idle_timeout_secs,
            1..=3600,
            "seconds from 1 to 3600",
        ),
        (
            "body_read_timeout_secs",
            px.body_read_timeout_secs,
            1..=3600,
            "seconds from 1 to 3600",
        ),
        (
            "stream_idle_timeout_secs",
            px.stream_idle_timeout_secs,
            1..=3600,
            "seconds from 1 to 3600 (a model may think a while between tokens)",
        ),
    ] {
        if !range.contains(&value) {
            c.push(
                key(&["proxy", name]),
                format!("{value} is out of range"),
                words,
            );
        }
    }
    // hyper's read buffer cannot be smaller than 8 KiB.
    if !(8192..=1024 * 1024).contains(&px.max_header_bytes) {
        c.push(
            key(&["proxy", "max_header_bytes"]),
            format!("{} is out of range", px.max_header_bytes),
            "bytes from 8192 to 1048576",
        );
    }
    if !(1..=65_536).contains(&px.max_connections) {
        c.push(
            key(&["proxy", "max_connections"]),
            format!("{} is out of range", px.max_connections),
            "connections from 1 to 65536",
        );
    }
    if let Err(why) = check_http_url(&px.anthropic_url) {
        c.push(
            key(&["proxy", "anthropic_url"]),
            format!("{:?} is not a usable URL: {why}", px.anthropic_url),
            "an https:// URL such as \"https://api.anthropic.com\"",
        );
    }
    if px.ledger_retention_days == 0 {
        c.push(
            key(&["proxy", "ledger_retention_days"]),
            "0 would keep no history".to_owned(),
            "a number of days, at least 1",
        );
    }

    let p = &config.probes;
    for (name, value) in [
        ("system_interval_secs", p.system_interval_secs),
        ("processes_interval_secs", p.processes_interval_secs),
        ("ollama_interval_secs", p.ollama_interval_secs),
        ("services_interval_secs", p.services_interval_secs),
        ("pm2_interval_secs", p.pm2_interval_secs),
        ("openclaw_interval_secs", p.openclaw_interval_secs),
    ] {
        if value == 0 || value > 86_400 {
            c.push(
                key(&["probes", name]),
                format!("{value} is out of range"),
                "a number of seconds from 1 to 86400",
            );
        }
    }
    for (name, value) in [
        ("timeout_ms", p.timeout_ms),
        ("pm2_timeout_ms", p.pm2_timeout_ms),
    ] {
        if !(50..=120_000).contains(&value) {
            c.push(
                key(&["probes", name]),
                format!("{value} is out of range"),
                "milliseconds from 50 to 120000",
            );
        }
    }
    if p.pm2_program.trim().is_empty() {
        c.push(
            key(&["probes", "pm2_program"]),
            "it is empty".to_owned(),
            "\"pm2\", or the full path of the pm2 program",
        );
    }
    check_heal(&mut c, &config.heal);
    check_fleet(&mut c, &config.fleet);

    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (i, m) in config.machines.iter().enumerate() {
        check_machine(&mut c, i, m);
        if let Some(first) = first_index.get(m.id.as_str()) {
            c.push(
                at("machines", i, "id"),
                format!(
                    "duplicate machine id {:?} (also used by machines[{first}])",
                    m.id
                ),
                "a different id for each [[machines]] entry",
            );
        } else {
            first_index.insert(&m.id, i);
        }
    }
    let known: Vec<&str> = config.machines.iter().map(|m| m.id.as_str()).collect();
    let known_list = if known.is_empty() {
        "(no [[machines]] are defined)".to_owned()
    } else {
        known.join(", ")
    };

    if let Some(this) = &config.this_machine
        && !known.contains(&this.as_str())
    {
        c.push(
            key(&["this_machine"]),
            format!("{this:?} is not the id of any [[machines]] entry"),
            &format!("one of: {known_list}"),
        );
    }

    for (i, route) in config.routes.iter().enumerate() {
        if route.model.trim().is_empty() {
            c.push(
                at("routes", i, "model"),
                "empty model name".to_owned(),
                "a model name such as \"gpt-oss:20b\"",
            );
        }
        if route.machines.is_empty() {
            c.push(
                at("routes", i, "machines"),
                "no machines listed".to_owned(),
                &format!("one or more of: {known_list}"),
            );
        }
        for (j, id) in route.machines.iter().enumerate() {
            if !known.contains(&id.as_str()) {
                let mut path = at("routes", i, "machines");
                path.push(Seg::Index(j));
                c.push(
                    path,
                    format!(
                        "route for {:?} names machine {id:?}, which does not exist",
                        route.model
                    ),
                    &format!("one of: {known_list}"),
                );
            }
        }
    }
    check_costs(&mut c, config);
    c.issues
}

fn check_costs(c: &mut Checker, config: &Config) {
    let costs = &config.costs;
    if costs.interval_secs < 5 {
        c.push(
            key(&["costs", "interval_secs"]),
            format!(
                "{} s would re-read transcripts constantly",
                costs.interval_secs
            ),
            "5 or more seconds (default 60)",
        );
    }
    if let Some(tz) = &costs.time_zone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        c.push(
            key(&["costs", "time_zone"]),
            format!("{tz:?} is not a time zone this machine knows"),
            "an IANA time zone such as \"Europe/Paris\" or \"America/New_York\"",
        );
    }
    if costs.savings_model.trim().is_empty() {
        c.push(
            key(&["costs", "savings_model"]),
            "the model is empty".to_owned(),
            "a priced cloud model such as \"claude-sonnet-5-5\"",
        );
    }
    for (i, p) in costs.local_providers.iter().enumerate() {
        if p.trim().is_empty() || p.trim() == "*" {
            let mut path = key(&["costs", "local_providers"]);
            path.push(Seg::Index(i));
            c.push(
                path,
                format!("{p:?} would make every provider local (and free)"),
                "a provider name such as \"ollama-macmini\" or a prefix such as \"ollama*\"",
            );
        }
    }
    let money = |v: Option<f64>| v.is_some_and(|v| !v.is_finite() || v <= 0.0);
    for (field, value) in [
        ("monthly_budget_usd", costs.monthly_budget_usd),
        ("daily_budget_usd", costs.daily_budget_usd),
    ] {
        if money(value) {
            c.push(
                key(&["costs", field]),
                format!("{} is not a budget", value.unwrap_or_default()),
                "a positive amount in USD, or leave it out for no budget",
            );
        }
    }
    for (i, m) in config.machines.iter().enumerate() {
        if money(m.monthly_budget_usd) {
            c.push(
                at("machines", i, "monthly_budget_usd"),
                format!(
                    "{} is not a budget",
                    m.monthly_budget_usd.unwrap_or_default()
                ),
                "a positive amount in USD, or leave it out for no budget",
            );
        }
    }
    let leak = &costs.leak;
    if !(leak.cloud_share_percent.is_finite() && (0.0..100.0).contains(&leak.cloud_share_percent)) {
        c.push(
            key(&["costs", "leak", "cloud_share_percent"]),
            format!(
                "{} is not a share that can be crossed",
                leak.cloud_share_percent
            ),
            "a percentage from 0 up to (not including) 100, such as 20",
        );
    }
    if leak.window_mins == 0 || leak.window_mins > 7 * 24 * 60 {
        c.push(
            key(&["costs", "leak", "window_mins"]),
            format!("{} minutes is not a usable window", leak.window_mins),
            "1 to 10080 minutes (default 60)",
        );
    }
}

fn check_machine(c: &mut Checker, i: usize, m: &MachineConfig) {
    if m.id.is_empty()
        || !m
            .id
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
    {
        c.push(
            at("machines", i, "id"),
            format!("{:?} is not a valid machine id", m.id),
            "lowercase letters, digits, '-' and '_' (it is used in `machine/model` names)",
        );
    }
    if m.name.trim().is_empty() {
        c.push(
            at("machines", i, "name"),
            "empty name".to_owned(),
            "a display name such as \"Mac Mini\"",
        );
    }
    if let Some(ip) = &m.tailnet_ip
        && ip.parse::<IpAddr>().is_err()
    {
        c.push(
            at("machines", i, "tailnet_ip"),
            format!("{ip:?} is not an IP address"),
            "an address such as \"100.115.10.14\"",
        );
    }
    for (field, value) in [("ollama_url", &m.ollama_url), ("fleet_url", &m.fleet_url)] {
        if let Some(url) = value
            && let Err(why) = check_http_url(url)
        {
            c.push(
                at("machines", i, field),
                format!("{url:?} is not a usable URL: {why}"),
                "an http:// or https:// URL such as \"http://127.0.0.1:11434\"",
            );
        }
    }
    let mut seen_models: HashMap<&str, usize> = HashMap::new();
    for (j, model) in m.models.iter().enumerate() {
        let mut path = at("machines", i, "models");
        path.push(Seg::Index(j));
        if model.name.trim().is_empty() {
            path.push(Seg::Key("name".into()));
            c.push(
                path,
                "empty model name".into(),
                "a model name such as \"qwen3:8b\"",
            );
        } else if let Some(first) = seen_models.insert(&model.name, j) {
            path.push(Seg::Key("name".into()));
            c.push(
                path,
                format!(
                    "model {:?} is listed twice (also models[{first}])",
                    model.name
                ),
                "each model once per machine",
            );
        }
    }
    for (j, svc) in m.services.iter().enumerate() {
        let mut path = at("machines", i, "services");
        path.push(Seg::Index(j));
        if svc.name.trim().is_empty() {
            let mut p = path.clone();
            p.push(Seg::Key("name".into()));
            c.push(
                p,
                "empty service name".into(),
                "a name such as \"OpenClaw gateway\"",
            );
        }
        match (&svc.port, &svc.url) {
            (None, None) => c.push(
                path.clone(),
                format!("service {:?} has neither `port` nor `url`", svc.name),
                "exactly one of `port = 18789` or `url = \"http://…\"`",
            ),
            (Some(_), Some(_)) => c.push(
                path.clone(),
                format!("service {:?} has both `port` and `url`", svc.name),
                "exactly one of `port` or `url`",
            ),
            (Some(0), None) => {
                let mut p = path.clone();
                p.push(Seg::Key("port".into()));
                c.push(
                    p,
                    "port 0 cannot be probed".into(),
                    "a port from 1 to 65535",
                );
            }
            (None, Some(url)) => {
                if let Err(why) = check_http_url(url) {
                    let mut p = path.clone();
                    p.push(Seg::Key("url".into()));
                    c.push(
                        p,
                        format!("{url:?} is not a usable URL: {why}"),
                        "an http:// or https:// URL",
                    );
                }
            }
            (Some(_), None) => {}
        }
        if let Some(status) = svc.expect_status
            && !(100..=599).contains(&status)
        {
            let mut p = path.clone();
            p.push(Seg::Key("expect_status".into()));
            c.push(
                p,
                format!("{status} is not an HTTP status"),
                "a status from 100 to 599",
            );
        }
        if svc.expect_status.is_some() && svc.url.is_none() {
            let mut p = path.clone();
            p.push(Seg::Key("expect_status".into()));
            c.push(
                p,
                "`expect_status` only applies to a `url` service".into(),
                "remove it, or give the service a `url`",
            );
        }
    }
    for (j, app) in m.pm2_apps.iter().enumerate() {
        if app.trim().is_empty() {
            let mut path = at("machines", i, "pm2_apps");
            path.push(Seg::Index(j));
            c.push(
                path,
                "empty pm2 app name".into(),
                "the name pm2 lists the app under",
            );
        }
    }
}

fn check_http_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    Ok(())
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

/// The `[fleet]` section: ranges, and a timeout shorter than the interval
/// (a poll must end before the next one is due).
fn check_fleet(c: &mut Checker, f: &crate::config::FleetConfig) {
    let ranges: [(&str, u64, u64, u64, &str); 6] = [
        (
            "poll_interval_secs",
            f.poll_interval_secs,
            1,
            3_600,
            "seconds from 1 to 3600 (default 5)",
        ),
        (
            "poll_timeout_ms",
            f.poll_timeout_ms,
            100,
            600_000,
            "milliseconds from 100 to 600000 (default 4000)",
        ),
        (
            "stale_after_polls",
            u64::from(f.stale_after_polls),
            1,
            1_000,
            "a count from 1 to 1000 (default 2)",
        ),
        (
            "offline_after_secs",
            f.offline_after_secs,
            1,
            86_400,
            "seconds from 1 to 86400 (default 60)",
        ),
        (
            "max_concurrent_polls",
            f.max_concurrent_polls as u64,
            1,
            256,
            "a count from 1 to 256 (default 8)",
        ),
        (
            "max_snapshot_bytes",
            f.max_snapshot_bytes as u64,
            64 * 1024,
            256 * 1024 * 1024,
            "bytes from 65536 to 268435456 (default 8388608)",
        ),
    ];
    for (name, value, low, high, expected) in ranges {
        if value < low || value > high {
            c.push(
                key(&["fleet", name]),
                format!("{value} is out of range"),
                expected,
            );
        }
    }
    if f.poll_interval_secs >= 1 && f.poll_timeout_ms > f.poll_interval_secs * 1000 {
        c.push(
            key(&["fleet", "poll_timeout_ms"]),
            format!(
                "{} ms is longer than the poll interval ({} s)",
                f.poll_timeout_ms, f.poll_interval_secs
            ),
            "a timeout no longer than poll_interval_secs",
        );
    }
}

/// The `[heal]` section: ranges, the command overrides (only actions that run
/// commands, each alternative a program with arguments) and the Cleaner's
/// folders (absolute, plain, never `/` or the home folder).
fn check_heal(c: &mut Checker, h: &crate::config::HealConfig) {
    for (name, value, low, high, expected) in [
        (
            "interval_secs",
            h.interval_secs,
            1,
            86_400,
            "seconds from 1 to 86400 (default 60)",
        ),
        (
            "cooldown_secs",
            h.cooldown_secs,
            0,
            86_400,
            "seconds from 0 to 86400 (default 300)",
        ),
        (
            "backoff_max_secs",
            h.backoff_max_secs,
            0,
            7 * 86_400,
            "seconds from 0 to 604800 (default 3600)",
        ),
        (
            "window_secs",
            h.window_secs,
            60,
            7 * 86_400,
            "seconds from 60 to 604800 (default 3600)",
        ),
        (
            "verify_secs",
            h.verify_secs,
            1,
            3_600,
            "seconds from 1 to 3600 (default 60)",
        ),
        (
            "command_timeout_secs",
            h.command_timeout_secs,
            1,
            3_600,
            "seconds from 1 to 3600 (default 60)",
        ),
        (
            "simulator_idle_mins",
            h.simulator_idle_mins,
            1,
            7 * 1_440,
            "minutes from 1 to 10080 (default 30)",
        ),
        (
            "pm2_restart_loop",
            h.pm2_restart_loop,
            2,
            1_000,
            "a count from 2 to 1000 (default 5)",
        ),
        (
            "healer_interval_secs",
            h.healer_interval_secs,
            1,
            86_400,
            "seconds from 1 to 86400 (default 3600)",
        ),
    ] {
        if value < low || value > high {
            c.push(
                key(&["heal", name]),
                format!("{value} is out of range"),
                expected,
            );
        }
    }
    for (name, value, expected) in [
        (
            "ollama_down_probes",
            h.ollama_down_probes,
            "a count from 1 to 1000 (default 3)",
        ),
        (
            "zombie_cycles",
            h.zombie_cycles,
            "a count from 1 to 1000 (default 2)",
        ),
        (
            "max_attempts",
            h.max_attempts,
            "a count from 1 to 1000 (default 3)",
        ),
    ] {
        if !(1..=1_000).contains(&value) {
            c.push(
                key(&["heal", name]),
                format!("{value} is out of range"),
                expected,
            );
        }
    }
    for (name, value) in [
        ("disk_free_percent", h.disk_free_percent),
        ("memory_percent", h.memory_percent),
    ] {
        if !(value > 0.0 && value < 100.0) {
            c.push(
                key(&["heal", name]),
                format!("{value} is out of range"),
                "a percentage between 0 and 100",
            );
        }
    }
    const WITH_COMMANDS: &[&str] = &[
        "restart-ollama",
        "restart-pm2-app",
        "restart-gateway",
        "shutdown-simulators",
    ];
    for (action, alternatives) in &h.commands {
        if !WITH_COMMANDS.contains(&action.as_str()) {
            let what = if crate::action::NAMES.contains(&action.as_str()) {
                format!("{action:?} is done inside ClawFleet and has no command to replace")
            } else {
                format!("{action:?} is not an action")
            };
            c.push(
                key(&["heal", "commands", action]),
                what,
                "one of restart-ollama, restart-pm2-app, restart-gateway, shutdown-simulators",
            );
            continue;
        }
        if alternatives.is_empty() {
            c.push(
                key(&["heal", "commands", action]),
                "no command given".to_owned(),
                "a list of commands, each a list of program and arguments: [[\"brew\", \"services\", \"restart\", \"ollama\"]]",
            );
        }
        for (i, argv) in alternatives.iter().enumerate() {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                c.push(
                    vec![
                        Seg::Key("heal".into()),
                        Seg::Key("commands".into()),
                        Seg::Key(action.clone()),
                        Seg::Index(i),
                    ],
                    "the command has no program".to_owned(),
                    "a list of program and arguments, run without a shell",
                );
            }
        }
    }
    if let Some(model) = &h.summary_model
        && let Err(e) = crate::action::check_model(model)
    {
        c.push(
            key(&["heal", "summary_model"]),
            e.to_string(),
            "a model name as Ollama writes it, e.g. \"qwen3:8b\"",
        );
    }
    let home = dirs::home_dir();
    for (i, root) in h.clean.roots.iter().enumerate() {
        if let Err(e) = check_clean_root(root, home.as_deref()) {
            c.push(
                vec![
                    Seg::Key("heal".into()),
                    Seg::Key("clean".into()),
                    Seg::Key("roots".into()),
                    Seg::Index(i),
                ],
                e,
                "an absolute folder of caches or temporary files (or ~/…), never / or the home folder",
            );
        }
    }
    if h.clean.older_than_days == 0 {
        c.push(
            key(&["heal", "clean", "older_than_days"]),
            "0 would clean files in use".to_owned(),
            "days, at least 1 (default 7)",
        );
    }
}

/// Checks a configured clean root (`[heal.clean] roots`): `~/` is expanded with `home`; relative paths,
/// `..`, the file system root and the home folder itself are refused.
pub fn check_clean_root(
    path: &std::path::Path,
    home: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, String> {
    use std::path::Component;
    let text = path.to_string_lossy();
    let expanded = if let Some(rest) = text.strip_prefix("~/") {
        match home {
            Some(h) => h.join(rest),
            None => return Err(format!("{text:?}: no home folder to expand ~ with")),
        }
    } else if text == "~" {
        return Err("the home folder itself is never cleaned: name a folder inside it".into());
    } else {
        path.to_path_buf()
    };
    if !expanded.is_absolute() {
        return Err(format!(
            "{:?} is relative: give an absolute folder (or ~/…)",
            expanded.display().to_string()
        ));
    }
    let raw = expanded.to_string_lossy();
    if expanded
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || raw.split(['/', '\\']).any(|seg| seg == "." || seg == "..")
    {
        return Err(format!(
            "{:?} contains '..' or '.': write the folder plainly",
            expanded.display().to_string()
        ));
    }
    if expanded.parent().is_none() {
        return Err("the file system root is never cleaned".into());
    }
    if home.is_some_and(|h| h == expanded) {
        return Err("the home folder itself is never cleaned: name a folder inside it".into());
    }
    Ok(expanded)
}
