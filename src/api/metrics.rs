//! `GET /metrics`: the snapshot in Prometheus text format (version 0.0.4),
//! so a fleet that outgrows the tray can be scraped by Prometheus/Grafana.

use std::fmt::Write;

use crate::snapshot::Snapshot;

/// The content type Prometheus expects.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds one metric family at a time: HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_into(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(self.out, value);
        self.out.push('\n');
    }
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Renders the snapshot.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let ms = &snap.machines;

    let mut f = Family::new(
        &mut out,
        "clawfleet_machine_online",
        "gauge",
        "1 when the machine answered recently.",
    );
    for m in ms {
        f.sample(
            "clawfleet_machine_online",
            &[("machine", &m.id), ("name", &m.name), ("role", &m.role)],
            flag(m.online),
        );
    }

    // The fleet view: how polling each peer goes (this machine's clock).
    let polled: Vec<_> = ms
        .iter()
        .filter_map(|m| m.peer.as_ref().map(|p| (m, p)))
        .collect();
    let mut f = Family::new(
        &mut out,
        "clawfleet_peer_up",
        "gauge",
        "1 when the peer's last poll brought its snapshot.",
    );
    for (m, p) in &polled {
        f.sample(
            "clawfleet_peer_up",
            &[("machine", &m.id)],
            flag(p.state == crate::snapshot::PeerState::Fresh),
        );
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_peer_state",
        "gauge",
        "1 for the peer's current state: waiting, fresh, stale, offline or faulty.",
    );
    for (m, p) in &polled {
        f.sample(
            "clawfleet_peer_state",
            &[("machine", &m.id), ("state", p.state.as_str())],
            1.0,
        );
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_peer_last_seen_timestamp_seconds",
        "gauge",
        "When the peer's last good snapshot arrived (Unix time, this machine's clock).",
    );
    for (m, p) in &polled {
        if let Some(at) = p.last_seen_at {
            f.sample(
                "clawfleet_peer_last_seen_timestamp_seconds",
                &[("machine", &m.id)],
                at.as_millisecond() as f64 / 1000.0,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_peer_poll_failures",
        "gauge",
        "Polls of the peer in a row that failed.",
    );
    for (m, p) in &polled {
        f.sample(
            "clawfleet_peer_poll_failures",
            &[("machine", &m.id)],
            f64::from(p.failures_in_row),
        );
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_peer_latency_seconds",
        "gauge",
        "Round trip of the peer's last good poll.",
    );
    for (m, p) in &polled {
        if let Some(ms) = p.latency_ms {
            f.sample(
                "clawfleet_peer_latency_seconds",
                &[("machine", &m.id)],
                ms / 1000.0,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_peer_clock_skew_seconds",
        "gauge",
        "The peer's clock minus this machine's.",
    );
    for (m, p) in &polled {
        if let Some(s) = p.clock_skew_secs {
            f.sample(
                "clawfleet_peer_clock_skew_seconds",
                &[("machine", &m.id)],
                s,
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_cpu_percent",
        "gauge",
        "Total CPU use in percent.",
    );
    for m in ms {
        if let Some(cpu) = m.cpu_percent {
            f.sample(
                "clawfleet_cpu_percent",
                &[("machine", &m.id)],
                f64::from(cpu),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_cpu_core_percent",
        "gauge",
        "CPU use of one core in percent.",
    );
    for m in ms {
        for (i, cpu) in m.cpu_cores.iter().enumerate() {
            f.sample(
                "clawfleet_cpu_core_percent",
                &[("machine", &m.id), ("core", &i.to_string())],
                f64::from(*cpu),
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_memory_bytes",
        "gauge",
        "Memory by kind (total, used, available).",
    );
    for m in ms {
        if let Some(mem) = &m.memory {
            for (kind, v) in [
                ("total", mem.total_bytes),
                ("used", mem.used_bytes),
                ("available", mem.available_bytes),
            ] {
                f.sample(
                    "clawfleet_memory_bytes",
                    &[("machine", &m.id), ("kind", kind)],
                    v as f64,
                );
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_swap_bytes",
        "gauge",
        "Swap by kind (total, used).",
    );
    for m in ms {
        if let Some(mem) = &m.memory {
            for (kind, v) in [
                ("total", mem.swap_total_bytes),
                ("used", mem.swap_used_bytes),
            ] {
                f.sample(
                    "clawfleet_swap_bytes",
                    &[("machine", &m.id), ("kind", kind)],
                    v as f64,
                );
            }
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_disk_bytes",
        "gauge",
        "Disk space by mount and kind (total, used, available).",
    );
    for m in ms {
        for d in &m.disks {
            for (kind, v) in [
                ("total", d.total_bytes),
                ("used", d.used_bytes),
                ("available", d.available_bytes),
            ] {
                f.sample(
                    "clawfleet_disk_bytes",
                    &[("machine", &m.id), ("mount", &d.mount), ("kind", kind)],
                    v as f64,
                );
            }
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_load_average",
        "gauge",
        "Load average by period.",
    );
    for m in ms {
        if let Some(l) = &m.load {
            for (period, v) in [("1m", l.one), ("5m", l.five), ("15m", l.fifteen)] {
                f.sample(
                    "clawfleet_load_average",
                    &[("machine", &m.id), ("period", period)],
                    v,
                );
            }
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_uptime_seconds",
        "gauge",
        "Seconds since boot.",
    );
    for m in ms {
        if let Some(u) = m.uptime_secs {
            f.sample("clawfleet_uptime_seconds", &[("machine", &m.id)], u as f64);
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_temperature_celsius",
        "gauge",
        "Temperature sensors.",
    );
    for m in ms {
        for t in &m.temperatures {
            f.sample(
                "clawfleet_temperature_celsius",
                &[("machine", &m.id), ("sensor", &t.label)],
                f64::from(t.celsius),
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_processes",
        "gauge",
        "Number of processes.",
    );
    for m in ms {
        if let Some(n) = m.process_count {
            f.sample("clawfleet_processes", &[("machine", &m.id)], n as f64);
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_zombie_processes",
        "gauge",
        "Number of zombie processes.",
    );
    for m in ms {
        if m.probed_at.processes.is_some() {
            f.sample(
                "clawfleet_zombie_processes",
                &[("machine", &m.id)],
                m.zombies.len() as f64,
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_ollama_up",
        "gauge",
        "1 when the machine's Ollama answers its API.",
    );
    for m in ms {
        if let Some(o) = &m.ollama {
            f.sample(
                "clawfleet_ollama_up",
                &[("machine", &m.id)],
                flag(o.reachable),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_ollama_latency_seconds",
        "gauge",
        "Round trip of /api/version.",
    );
    for m in ms {
        if let Some(latency) = m.ollama.as_ref().and_then(|o| o.latency_ms) {
            f.sample(
                "clawfleet_ollama_latency_seconds",
                &[("machine", &m.id)],
                latency / 1000.0,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_ollama_models_installed",
        "gauge",
        "Models installed (/api/tags).",
    );
    for m in ms {
        if let Some(o) = m.ollama.as_ref().filter(|o| o.reachable) {
            f.sample(
                "clawfleet_ollama_models_installed",
                &[("machine", &m.id)],
                o.models.len() as f64,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_ollama_models_loaded",
        "gauge",
        "Models loaded in memory (/api/ps).",
    );
    for m in ms {
        if let Some(o) = m.ollama.as_ref().filter(|o| o.reachable) {
            f.sample(
                "clawfleet_ollama_models_loaded",
                &[("machine", &m.id)],
                o.loaded.len() as f64,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_ollama_loaded_model_bytes",
        "gauge",
        "Memory held by a loaded model, by kind (total, vram).",
    );
    for m in ms {
        if let Some(o) = &m.ollama {
            for l in &o.loaded {
                for (kind, v) in [("total", l.size_bytes), ("vram", l.vram_bytes)] {
                    f.sample(
                        "clawfleet_ollama_loaded_model_bytes",
                        &[("machine", &m.id), ("model", &l.name), ("kind", kind)],
                        v as f64,
                    );
                }
            }
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_service_up",
        "gauge",
        "1 when a configured service answers.",
    );
    for m in ms {
        for s in &m.services {
            f.sample(
                "clawfleet_service_up",
                &[("machine", &m.id), ("service", &s.name), ("kind", &s.kind)],
                flag(s.up),
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_pm2_app_online",
        "gauge",
        "1 when a pm2 app is online.",
    );
    for m in ms {
        for a in &m.pm2 {
            f.sample(
                "clawfleet_pm2_app_online",
                &[("machine", &m.id), ("app", &a.name), ("status", &a.status)],
                flag(a.status == "online"),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_pm2_app_restarts",
        "gauge",
        "Restart count pm2 reports for an app.",
    );
    for m in ms {
        for a in m.pm2.iter().filter(|a| a.pm_id.is_some()) {
            f.sample(
                "clawfleet_pm2_app_restarts",
                &[("machine", &m.id), ("app", &a.name)],
                a.restarts as f64,
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_gateway_up",
        "gauge",
        "1 when the OpenClaw gateway's port accepts connections.",
    );
    for m in ms {
        if let Some(listening) = m.openclaw.as_ref().and_then(|c| c.gateway_listening) {
            f.sample(
                "clawfleet_openclaw_gateway_up",
                &[("machine", &m.id)],
                flag(listening),
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_gateway_healthy",
        "gauge",
        "1 when the OpenClaw gateway completed the handshake and its health shows no channel, plugin or loop in trouble.",
    );
    for m in ms {
        if let Some(h) = m.openclaw.as_ref().and_then(|c| c.gateway_health.as_ref()) {
            f.sample(
                "clawfleet_openclaw_gateway_healthy",
                &[("machine", &m.id)],
                flag(h.ok),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_channel_ok",
        "gauge",
        "1 when an OpenClaw channel (Telegram, WhatsApp, …) is well, as its gateway judges it.",
    );
    for m in ms {
        for ch in m
            .openclaw
            .iter()
            .filter_map(|c| c.gateway_health.as_ref())
            .flat_map(|h| &h.channels)
        {
            f.sample(
                "clawfleet_openclaw_channel_ok",
                &[("machine", &m.id), ("channel", &ch.id)],
                flag(ch.state == "ok"),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_sessions",
        "gauge",
        "Sessions each OpenClaw agent keeps.",
    );
    for m in ms {
        for a in m.openclaw.iter().flat_map(|c| &c.agents) {
            f.sample(
                "clawfleet_openclaw_sessions",
                &[("machine", &m.id), ("agent", &a.id)],
                a.sessions as f64,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_agent_activity",
        "gauge",
        "1 for each OpenClaw agent's current activity (working, idle, stuck, waiting).",
    );
    for m in ms {
        for a in m.openclaw.iter().flat_map(|c| &c.agents) {
            if let Some(act) = a.activity {
                let name = match act {
                    crate::snapshot::Activity::Working => "working",
                    crate::snapshot::Activity::Idle => "idle",
                    crate::snapshot::Activity::Stuck => "stuck",
                    crate::snapshot::Activity::Waiting => "waiting",
                };
                f.sample(
                    "clawfleet_openclaw_agent_activity",
                    &[("machine", &m.id), ("agent", &a.id), ("activity", name)],
                    1.0,
                );
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_last_turn_timestamp_seconds",
        "gauge",
        "When each OpenClaw agent's last turn was (Unix time).",
    );
    for m in ms {
        for a in m.openclaw.iter().flat_map(|c| &c.agents) {
            if let Some(at) = a.last_turn_at {
                f.sample(
                    "clawfleet_openclaw_last_turn_timestamp_seconds",
                    &[("machine", &m.id), ("agent", &a.id)],
                    at.as_millisecond() as f64 / 1000.0,
                );
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_heartbeat_overdue",
        "gauge",
        "1 when an OpenClaw agent's heartbeat (or a legacy Clawdbot's, agent \"\") is overdue.",
    );
    for m in ms {
        for a in m.openclaw.iter().flat_map(|c| &c.agents) {
            if let Some(h) = &a.heartbeat {
                f.sample(
                    "clawfleet_openclaw_heartbeat_overdue",
                    &[("machine", &m.id), ("agent", &a.id)],
                    flag(h.overdue),
                );
            }
        }
        if let Some(h) = m.openclaw.as_ref().and_then(|c| c.heartbeat.as_ref()) {
            f.sample(
                "clawfleet_openclaw_heartbeat_overdue",
                &[("machine", &m.id), ("agent", "")],
                flag(h.overdue),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "clawfleet_openclaw_heartbeat_timestamp_seconds",
        "gauge",
        "When each OpenClaw agent's heartbeat last ran (Unix time).",
    );
    for m in ms {
        let legacy = m
            .openclaw
            .iter()
            .filter_map(|c| c.heartbeat.as_ref().and_then(|h| h.last_at))
            .map(|at| (String::new(), at));
        let agents = m.openclaw.iter().flat_map(|c| &c.agents).filter_map(|a| {
            a.heartbeat
                .as_ref()
                .and_then(|h| h.last_at)
                .map(|at| (a.id.clone(), at))
        });
        for (agent, at) in agents.chain(legacy) {
            f.sample(
                "clawfleet_openclaw_heartbeat_timestamp_seconds",
                &[("machine", &m.id), ("agent", &agent)],
                at.as_millisecond() as f64 / 1000.0,
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "clawfleet_snapshot_age_seconds",
        "gauge",
        "Seconds since the machine's data was last refreshed.",
    );
    let now = jiff::Timestamp::now();
    for m in ms {
        if let Some(at) = m.updated_at {
            let age = now.duration_since(at).as_secs_f64().max(0.0);
            f.sample("clawfleet_snapshot_age_seconds", &[("machine", &m.id)], age);
        }
    }

    if let Some(proxy) = &snap.proxy {
        render_proxy(&mut out, proxy);
    }

    let _ = Family::new(
        &mut out,
        "clawfleet_build_info",
        "gauge",
        "ClawFleet version.",
    );
    render_costs(&mut out, snap);
    let mut f = Family { out: &mut out };
    f.sample(
        "clawfleet_build_info",
        &[
            ("version", &snap.clawfleet_version),
            ("this_machine", &snap.this_machine),
        ],
        1.0,
    );
    out
}

/// Each machine's cost figures for the current month (gauges: they restart
/// at each month).
fn render_costs(out: &mut String, snap: &Snapshot) {
    let with: Vec<(&str, &crate::cost::service::CostSummary)> = snap
        .machines
        .iter()
        .filter_map(|m| {
            m.costs
                .as_ref()
                .filter(|c| c.error.is_none())
                .map(|c| (m.id.as_str(), c))
        })
        .collect();
    if with.is_empty() {
        return;
    }
    type Pick = fn(&crate::cost::service::CostSummary) -> Option<f64>;
    let gauges: [(&str, &str, Pick); 6] = [
        (
            "clawfleet_cost_month_to_date_usd",
            "Cloud spend of the current month so far, USD (priced usage only).",
            |c| Some(c.month_to_date_usd),
        ),
        ("clawfleet_cost_today_usd", "Cloud spend today, USD.", |c| {
            c.today_usd
        }),
        (
            "clawfleet_cost_savings_usd",
            "What this month's local tokens would have cost on the savings model, USD.",
            |c| c.savings_usd,
        ),
        (
            "clawfleet_cost_budget_usd",
            "The machine's monthly budget, USD.",
            |c| c.budget_usd,
        ),
        (
            "clawfleet_cost_previous_month_usd",
            "Cloud spend of the previous month, USD.",
            |c| Some(c.previous_month_usd),
        ),
        (
            "clawfleet_cost_cloud_share_percent",
            "Share of tokens sent to the cloud over the credit-leak window, percent.",
            |c| c.share.cloud_percent,
        ),
    ];
    for (name, help, pick) in gauges {
        let mut f = Family::new(out, name, "gauge", help);
        for (id, c) in &with {
            if let Some(v) = pick(c) {
                f.sample(name, &[("machine", id)], v);
            }
        }
    }
    let name = "clawfleet_cost_projected_usd";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "Projected cloud spend at month end, USD, by bound.",
    );
    for (id, c) in &with {
        if let Some([low, expected, high]) = c.projection {
            for (bound, v) in [("low", low), ("expected", expected), ("high", high)] {
                f.sample(name, &[("machine", id), ("bound", bound)], v);
            }
        }
    }
    let name = "clawfleet_cost_month_tokens";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "Tokens this month, by where they were served.",
    );
    for (id, c) in &with {
        f.sample(
            name,
            &[("machine", id), ("where", "local")],
            c.local_tokens as f64,
        );
        f.sample(
            name,
            &[("machine", id), ("where", "cloud")],
            c.cloud_tokens as f64,
        );
    }
    let name = "clawfleet_cost_unpriced_models";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "Models used this month that have no price (not in the USD figures).",
    );
    for (id, c) in &with {
        f.sample(name, &[("machine", id)], c.unpriced_models.len() as f64);
    }
    let name = "clawfleet_cost_alarms_active";
    let mut f = Family::new(
        out,
        name,
        "gauge",
        "Cost alarms (budgets, credit leak) on now.",
    );
    for (id, c) in &with {
        f.sample(name, &[("machine", id)], c.alarms.len() as f64);
    }
}

/// The inference proxy's figures over the snapshot's window (15 minutes).
fn render_proxy(out: &mut String, proxy: &crate::snapshot::ProxyView) {
    use crate::proxy::circuit::CircuitState;
    let st = &proxy.stats;
    for (name, help, value) in [
        (
            "clawfleet_proxy_requests",
            "Requests through the proxy in the window.",
            st.requests as f64,
        ),
        (
            "clawfleet_proxy_requests_per_minute",
            "Request rate over the window.",
            st.requests_per_minute,
        ),
        (
            "clawfleet_proxy_fallbacks",
            "Requests served by a fallback machine in the window.",
            st.fallbacks as f64,
        ),
        (
            "clawfleet_proxy_errors",
            "Requests that did not end ok in the window.",
            st.errors as f64,
        ),
    ] {
        let mut f = Family::new(out, name, "gauge", help);
        f.sample(name, &[], value);
    }
    let mut f = Family::new(
        out,
        "clawfleet_proxy_latency_ms",
        "gauge",
        "Latency percentiles over the window (kind: duration, ttfb).",
    );
    for (kind, p) in [("duration", st.duration_ms), ("ttfb", st.ttfb_ms)] {
        if let Some(p) = p {
            for (q, v) in [("0.5", p.p50), ("0.95", p.p95), ("0.99", p.p99)] {
                f.sample(
                    "clawfleet_proxy_latency_ms",
                    &[("kind", kind), ("quantile", q)],
                    v,
                );
            }
        }
    }
    let mut f = Family::new(
        out,
        "clawfleet_proxy_machine_share",
        "gauge",
        "Share of the window's requests each machine served (0-1).",
    );
    for m in &st.machines {
        let id = m.machine.as_deref().unwrap_or("none");
        f.sample("clawfleet_proxy_machine_share", &[("machine", id)], m.share);
    }
    let mut f = Family::new(
        out,
        "clawfleet_proxy_tokens",
        "gauge",
        "Tokens in the window by machine and kind.",
    );
    for m in &st.machines {
        let id = m.machine.as_deref().unwrap_or("none");
        let t = &m.tokens;
        for (kind, v) in [
            ("input", t.input_tokens),
            ("output", t.output_tokens),
            ("cache_read", t.cache_read_tokens),
            ("cache_write", t.cache_write_tokens),
        ] {
            f.sample(
                "clawfleet_proxy_tokens",
                &[("machine", id), ("kind", kind)],
                v as f64,
            );
        }
    }
    let mut f = Family::new(
        out,
        "clawfleet_proxy_circuit_open",
        "gauge",
        "1 while a backend's circuit keeps requests away from it.",
    );
    for c in &proxy.circuits {
        let open = !matches!(c.state, CircuitState::Closed { .. });
        f.sample(
            "clawfleet_proxy_circuit_open",
            &[("machine", &c.machine)],
            flag(open),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_labels_are_escaped_as_the_format_requires() {
        let mut out = String::new();
        let mut f = Family::new(&mut out, "x", "gauge", "help");
        f.sample("x", &[("a", "q\"u\\o\nte")], 1.5);
        f.sample("x", &[], f64::NAN);
        f.sample("x", &[], 3.0);
        assert_eq!(
            out,
            "# HELP x help\n# TYPE x gauge\nx{a=\"q\\\"u\\\\o\\nte\"} 1.5\nx NaN\nx 3\n"
        );
    }
}
