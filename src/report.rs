//! Plain-text rendering of a [`Snapshot`] for `clawfleet status`.

use std::fmt::Write;

use crate::snapshot::{MachineSnapshot, Pm2State, Snapshot};

/// A table with a header row and left-aligned columns.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|s| (*s).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c].saturating_sub(cell.chars().count());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

pub use crate::units::{bytes, duration};

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.0} ms"),
        None => "-".to_owned(),
    }
}

fn dash() -> String {
    "-".to_owned()
}

/// The readable status: machines, Ollama, services, pm2 and OpenClaw.
/// `source` says where the data came from (the daemon, or probed now).
pub fn status(snap: &Snapshot, source: &str) -> String {
    let mut out = String::new();
    let this = snap.local();
    let _ = writeln!(
        out,
        "ClawFleet {} · this machine: {} · {source}",
        snap.clawfleet_version,
        this.map_or_else(
            || snap.this_machine.clone(),
            |m| format!("{} ({})", m.name, m.id)
        ),
    );
    for notice in &snap.notices {
        let _ = writeln!(out, "note: {notice}");
    }

    out.push('\n');
    let mut t = Table::new(&[
        "MACHINE", "ROLE", "ONLINE", "CPU", "MEMORY", "DISK", "LOAD", "UPTIME", "PROCS", "ZOMBIES",
    ]);
    for m in &snap.machines {
        t.row(machine_row(m));
    }
    t.render(&mut out);
    // Why a machine is degraded, in one line.
    for m in &snap.machines {
        if let Some((first, rest)) = m.attention.split_first() {
            let more = if rest.is_empty() {
                String::new()
            } else {
                format!(" (and {} more: {})", rest.len(), rest.join("; "))
            };
            let _ = writeln!(out, "  {}: {first}{more}", m.name);
        }
    }

    out.push('\n');
    let mut t = Table::new(&[
        "OLLAMA", "URL", "STATE", "VERSION", "LATENCY", "MODELS", "LOADED",
    ]);
    let mut any = false;
    for m in &snap.machines {
        let Some(o) = &m.ollama else { continue };
        any = true;
        let state = if o.reachable {
            "up".to_owned()
        } else if o.checked_at.is_none() {
            "not probed yet".to_owned()
        } else {
            "DOWN".to_owned()
        };
        let loaded = if o.loaded.is_empty() {
            "none".to_owned()
        } else {
            o.loaded
                .iter()
                .map(|l| {
                    format!(
                        "{} ({}, {} VRAM)",
                        l.name,
                        bytes(l.size_bytes),
                        bytes(l.vram_bytes)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.row(vec![
            m.name.clone(),
            o.url.clone(),
            state,
            o.version.clone().unwrap_or_else(dash),
            ms(o.latency_ms),
            o.models.len().to_string(),
            loaded,
        ]);
    }
    if any {
        t.render(&mut out);
        for m in &snap.machines {
            if let Some(o) = &m.ollama {
                if let Some(err) = &o.error {
                    let _ = writeln!(out, "  {}: {err}", m.name);
                }
                for model in &o.models {
                    let _ = writeln!(
                        out,
                        "  {} · {} · {}{}{}",
                        m.name,
                        model.name,
                        bytes(model.size_bytes),
                        model
                            .quantization
                            .as_deref()
                            .map(|q| format!(" · {q}"))
                            .unwrap_or_default(),
                        model
                            .purpose
                            .as_deref()
                            .map(|p| format!(" · {p}"))
                            .unwrap_or_default(),
                    );
                }
            }
        }
    } else {
        out.push_str("OLLAMA  none configured\n");
    }

    if let Some(p) = &snap.proxy {
        out.push('\n');
        out.push_str(&proxy_line(p));
    }
    if let Some(c) = this.and_then(|m| m.costs.as_ref()) {
        out.push('\n');
        out.push_str(&costs_line(c));
    }

    if let Some(m) = this {
        out.push('\n');
        let mut t = Table::new(&["SERVICE", "TARGET", "STATE", "LATENCY", "DETAIL"]);
        for s in &m.services {
            t.row(vec![
                s.name.clone(),
                s.target.clone(),
                if s.up { "up" } else { "DOWN" }.to_owned(),
                ms(s.latency_ms),
                match (&s.error, s.http_status) {
                    (Some(e), _) => e.clone(),
                    (None, Some(code)) => format!("HTTP {code}"),
                    (None, None) => String::new(),
                },
            ]);
        }
        if m.services.is_empty() {
            out.push_str("SERVICE  none configured\n");
        } else {
            t.render(&mut out);
        }

        out.push('\n');
        match &m.pm2_state {
            None => out.push_str("PM2  not probed yet\n"),
            Some(Pm2State::NotInstalled) => out.push_str("PM2  not installed\n"),
            Some(Pm2State::NotRunning { pm2_home }) => {
                out.push_str("PM2  not running");
                if let Some(home) = pm2_home {
                    let _ = write!(out, " (no daemon in {home}; none was started)");
                }
                out.push('\n');
            }
            Some(Pm2State::Unknown) => {
                out.push_str("PM2  state unknown (from a newer ClawFleet)\n")
            }
            Some(Pm2State::Error { message }) => {
                let _ = writeln!(out, "PM2  error: {message}");
            }
            Some(Pm2State::Ok) if m.pm2.is_empty() => out.push_str("PM2  no apps\n"),
            Some(Pm2State::Ok) => {}
        }
        if !m.pm2.is_empty() {
            let mut t = Table::new(&["PM2 APP", "STATUS", "RESTARTS", "UPTIME", "CPU", "MEMORY"]);
            for a in &m.pm2 {
                t.row(vec![
                    a.name.clone(),
                    a.status.clone(),
                    a.restarts.to_string(),
                    a.uptime_secs.map_or_else(dash, duration),
                    a.cpu_percent.map_or_else(dash, |c| format!("{c:.0}%")),
                    a.memory_bytes.map_or_else(dash, bytes),
                ]);
            }
            t.render(&mut out);
        }

        out.push('\n');
        out.push_str(&openclaw_lines(m));
        if !m.zombies.is_empty() {
            out.push('\n');
            let mut t = Table::new(&["ZOMBIE", "NAME", "PARENT"]);
            for z in &m.zombies {
                t.row(vec![
                    z.pid.to_string(),
                    z.name.clone(),
                    match (z.parent_pid, &z.parent_name) {
                        (Some(p), Some(n)) => format!("{p} ({n})"),
                        (Some(p), None) => p.to_string(),
                        _ => dash(),
                    },
                ]);
            }
            t.render(&mut out);
        }
    }
    out
}

/// `COSTS  2026-11 · $41.20 so far · projected $52.10 ($47.00-$60.00) · saved $12.30 …`
fn costs_line(c: &crate::cost::service::CostSummary) -> String {
    use crate::cost::table::usd;
    if let Some(e) = &c.error {
        return format!("COSTS  unavailable: {e}\n");
    }
    let mut line = format!("COSTS  {} · {} so far", c.month, usd(c.month_to_date_usd));
    if let Some(t) = c.today_usd {
        let _ = write!(line, " ({} today)", usd(t));
    }
    if let Some([low, mid, high]) = c.projection {
        let _ = write!(
            line,
            " · projected {} ({}-{})",
            usd(mid),
            usd(low),
            usd(high)
        );
    }
    if let Some(b) = c.budget_usd {
        let _ = write!(line, " · budget {}", usd(b));
    }
    if let Some(s) = c.savings_usd {
        let _ = write!(line, " · local models saved {}", usd(s));
    }
    if !c.unpriced_models.is_empty() {
        let _ = write!(line, " · unpriced: {}", c.unpriced_models.join(", "));
    }
    line.push('\n');
    for alarm in &c.alarms {
        let _ = writeln!(line, "  ! {alarm}");
    }
    line
}

/// `PROXY  127.0.0.1:11435 · 12 requests in the last 15 min …`
fn proxy_line(p: &crate::snapshot::ProxyView) -> String {
    let st = &p.stats;
    let mut line = format!(
        "PROXY  {} · {} request{} in the last 15 min ({:.1}/min) · {} fallback{} · {} error{}",
        p.listen,
        st.requests,
        if st.requests == 1 { "" } else { "s" },
        st.requests_per_minute,
        st.fallbacks,
        if st.fallbacks == 1 { "" } else { "s" },
        st.errors,
        if st.errors == 1 { "" } else { "s" },
    );
    if let Some(d) = st.duration_ms {
        let _ = write!(line, " · p50 {}", ms(Some(d.p50)));
    }
    let shares: Vec<String> = st
        .machines
        .iter()
        .map(|m| {
            format!(
                "{} {:.0}%",
                m.machine.as_deref().unwrap_or("none"),
                m.share * 100.0
            )
        })
        .collect();
    if !shares.is_empty() {
        let _ = write!(line, " · {}", shares.join(", "));
    }
    line.push('\n');
    for c in &p.circuits {
        if !matches!(c.state, crate::proxy::circuit::CircuitState::Closed { .. }) {
            let _ = writeln!(
                line,
                "  circuit of {} is open: requests skip it for now",
                c.machine
            );
        }
    }
    line
}

fn machine_row(m: &MachineSnapshot) -> Vec<String> {
    let disk = m
        .disks
        .iter()
        .min_by_key(|d| d.mount.len())
        .map_or_else(dash, |d| {
            format!(
                "{} {:.0}% of {}",
                d.mount,
                d.used_percent(),
                bytes(d.total_bytes)
            )
        });
    vec![
        format!("{}{}", m.name, if m.is_self { " *" } else { "" }),
        m.role.clone(),
        if m.online { "yes" } else { "no" }.to_owned(),
        m.cpu_percent.map_or_else(dash, |c| format!("{c:.0}%")),
        m.memory.map_or_else(dash, |mem| {
            format!("{} / {}", bytes(mem.used_bytes), bytes(mem.total_bytes))
        }),
        disk,
        m.load.map_or_else(dash, |l| format!("{:.2}", l.one)),
        m.uptime_secs.map_or_else(dash, duration),
        m.process_count.map_or_else(dash, |n| n.to_string()),
        if m.probed_at.processes.is_some() {
            m.zombies.len().to_string()
        } else {
            dash()
        },
    ]
}

/// Seconds from `at` to now, as "3m ago".
fn ago(at: jiff::Timestamp) -> String {
    let secs = jiff::Timestamp::now().duration_since(at).as_secs();
    match u64::try_from(secs) {
        Ok(s) => format!("{} ago", duration(s)),
        Err(_) => format!("in {}", duration(secs.unsigned_abs())),
    }
}

fn openclaw_lines(m: &MachineSnapshot) -> String {
    let Some(c) = &m.openclaw else {
        return "OPENCLAW  not probed yet\n".to_owned();
    };
    let mut out = String::new();
    let path = c.config_path.as_deref().unwrap_or("(no config path)");
    let label = c.install.as_ref().map_or("OPENCLAW", |i| match i.kind {
        crate::snapshot::AgentKind::OpenClaw => "OPENCLAW",
        crate::snapshot::AgentKind::Clawdbot => "CLAWDBOT (legacy)",
    });
    if !c.config_found {
        let _ = writeln!(out, "{label}  no config at {path}");
        if let Some(i) = &c.install {
            let _ = writeln!(out, "  looked for: {}", i.found_by);
        }
        return out;
    }
    let version = c
        .install
        .as_ref()
        .and_then(|i| {
            i.version
                .as_ref()
                .map(|v| format!("{v} (from {}) · ", i.version_from.as_deref().unwrap_or("?")))
        })
        .unwrap_or_default();
    let _ = writeln!(out, "{label}  {version}{path}");
    if let Some(i) = &c.install {
        let _ = writeln!(out, "  found by:   {}", i.found_by);
        for other in &i.also_found {
            let _ = writeln!(out, "  note:       {other}");
        }
    }
    let port = format!(
        ":{} ({})",
        c.gateway_port,
        c.gateway_port_from.as_deref().unwrap_or("?")
    );
    let gateway = match (c.gateway_listening, &c.gateway_health) {
        (Some(false), _) => format!(
            "{port} NOT LISTENING{}",
            c.gateway_down_since
                .map(|t| format!(" since {}", ago(t)))
                .unwrap_or_default()
        ),
        (Some(true), Some(h)) if h.ok => format!(
            "{port} healthy · {}protocol {} · up {}{}",
            h.server_version
                .as_deref()
                .map(|v| format!("{v} · "))
                .unwrap_or_default(),
            h.protocol.map_or_else(dash, |p| p.to_string()),
            h.uptime_secs.map_or_else(dash, duration),
            if h.via.as_deref() == Some("cli") {
                " (via `openclaw health`)"
            } else {
                ""
            }
        ),
        (Some(true), Some(h)) => format!(
            "{port} listening, {}: {}",
            h.failure.as_deref().unwrap_or("failing").to_uppercase(),
            h.error.as_deref().unwrap_or("no reason given")
        ),
        (Some(true), None) => format!("{port} listening"),
        (None, _) => port,
    };
    let _ = writeln!(out, "  gateway:    {gateway}");
    if let Some(h) = &c.gateway_health {
        if let Some(hint) = &h.hint {
            let _ = writeln!(out, "              → {hint}");
        }
        if !h.channels.is_empty() {
            let channels: Vec<String> = h
                .channels
                .iter()
                .map(|ch| match &ch.last_error {
                    Some(e) if ch.state != "ok" => format!("{} {} ({e})", ch.label, ch.state),
                    _ => format!("{} {}", ch.label, ch.state),
                })
                .collect();
            let _ = writeln!(out, "  channels:   {}", channels.join(" · "));
        }
        for e in &h.plugin_errors {
            let _ = writeln!(out, "  plugin:     {e} (`openclaw doctor`)");
        }
        for d in &h.degraded {
            let _ = writeln!(out, "  note:       {d}");
        }
    }
    if let Some(a) = &c.gateway_auth {
        let _ = writeln!(out, "  auth:       {a}");
    }
    if let Some(e) = &c.error {
        let _ = writeln!(out, "  problem:    {e}");
    }
    for p in &c.state_problems {
        let _ = writeln!(out, "  problem:    {p}");
    }
    let chain = c
        .primary_model
        .iter()
        .chain(c.fallbacks.iter())
        .cloned()
        .collect::<Vec<_>>();
    if !chain.is_empty() {
        let _ = writeln!(out, "  models:     {}", chain.join(" → "));
    }
    if let Some(h) = &c.heartbeat_model {
        let _ = writeln!(
            out,
            "  heartbeat:  {h}{}",
            c.heartbeat_every
                .as_deref()
                .map(|e| format!(" every {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(s) = &c.subagent_model {
        let _ = writeln!(out, "  sub-agents: {s}");
    }
    if !c.agents.is_empty() {
        let mut t = Table::new(&[
            "AGENT",
            "STATE",
            "SESSIONS",
            "LAST TURN",
            "MODEL",
            "HEARTBEAT",
        ]);
        for a in &c.agents {
            let state = match (a.activity, &a.activity_why) {
                (Some(act), Some(why)) if act != crate::snapshot::Activity::Idle => {
                    format!("{} ({why})", activity_word(act))
                }
                (Some(act), _) => activity_word(act).to_owned(),
                (None, _) => dash(),
            };
            let model = match (&a.last_provider, &a.last_model) {
                (Some(p), Some(m)) => format!("{p}/{m}"),
                (None, Some(m)) => m.clone(),
                _ => dash(),
            };
            let model = if a.on_fallback {
                format!(
                    "{model} (FALLBACK from {})",
                    a.selected_model.as_deref().unwrap_or("its primary")
                )
            } else {
                model
            };
            let heartbeat = a.heartbeat.as_ref().map_or_else(dash, |h| {
                if let Some(why) = &h.off_why {
                    return format!("off: {why}");
                }
                let every = h
                    .every_secs
                    .map_or_else(dash, |e| format!("every {}", duration(e)));
                let next = h
                    .next_at
                    .map(|t| format!(", due {}", ago(t)))
                    .unwrap_or_default();
                let overdue = if h.overdue { " OVERDUE" } else { "" };
                format!("{every}{next}{overdue}")
            });
            t.row(vec![
                format!("{}{}", a.id, if a.is_default { " *" } else { "" }),
                state,
                a.sessions.to_string(),
                a.last_turn_at.map_or_else(dash, ago),
                model,
                heartbeat,
            ]);
        }
        t.render(&mut out);
    }
    if let Some(h) = &c.heartbeat {
        let _ = writeln!(
            out,
            "  last heartbeat: {}{}",
            h.last_at.map_or_else(|| "none seen".to_owned(), ago),
            if h.overdue { " OVERDUE" } else { "" }
        );
    }
    out
}

fn activity_word(a: crate::snapshot::Activity) -> &'static str {
    match a {
        crate::snapshot::Activity::Working => "working",
        crate::snapshot::Activity::Idle => "idle",
        crate::snapshot::Activity::Stuck => "STUCK",
        crate::snapshot::Activity::Waiting => "waiting",
    }
}
