//! The `clawfleet costs` table, shaped like the reference fleet's "Cost
//! Analysis by Machine": machine, local models, API usage, month to date,
//! projection, savings, change against the month before, and a fleet total.

use std::fmt::Write as _;

use super::report::{MonthReport, Tokens};
use super::{CostsView, FleetCosts};

/// `$1,234.56`.
pub fn usd(v: f64) -> String {
    let cents = (v * 100.0).round() as i64;
    let (sign, cents) = if cents < 0 {
        ("-", -cents)
    } else {
        ("", cents)
    };
    format!(
        "{sign}${}.{:02}",
        thousands((cents / 100) as u64),
        cents % 100
    )
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1.2M`, `45.3k`, `812`.
pub fn tokens(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

fn change(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => format!("{:+.0}%", p),
        _ => "-".to_owned(),
    }
}

fn local_cell(t: &Tokens) -> String {
    if t.requests == 0 {
        return "none".to_owned();
    }
    format!(
        "{} req, {} tok (free)",
        thousands(t.requests),
        tokens(t.total)
    )
}

fn api_cell(r: &MonthReport) -> String {
    if r.cloud.requests == 0 {
        return "none".to_owned();
    }
    let mut s = format!(
        "{} req, {}",
        thousands(r.cloud.requests),
        usd(r.month_to_date_usd)
    );
    if !r.unpriced.is_empty() {
        s.push_str(" + unpriced");
    }
    s
}

fn projection_cell(p: Option<[f64; 3]>) -> String {
    match p {
        Some([low, mid, high]) => format!("{} ({}-{})", usd(mid), usd(low), usd(high)),
        None => "-".to_owned(),
    }
}

fn savings_cell(s: Option<f64>) -> String {
    s.map_or_else(|| "unknown".to_owned(), usd)
}

/// The whole text: the table, then details of this machine's month.
pub fn render(view: &CostsView) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "Machine".into(),
        "Local models".into(),
        "API usage".into(),
        "Month to date".into(),
        "Projection".into(),
        "Savings".into(),
        "vs month before".into(),
    ]];
    for m in &view.machines {
        match &m.report {
            Some(r) => rows.push([
                m.name.clone(),
                local_cell(&r.local),
                api_cell(r),
                usd(r.month_to_date_usd),
                projection_cell(
                    r.projection
                        .as_ref()
                        .map(|p| [p.low_usd, p.expected_usd, p.high_usd]),
                ),
                savings_cell(r.savings_usd),
                change(r.change_percent),
            ]),
            None => rows.push([
                m.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
    }
    let f: &FleetCosts = &view.fleet;
    rows.push([
        format!(
            "Fleet total ({} of {})",
            f.machines_reporting, f.machines_total
        ),
        format!("{} tok (free)", tokens(f.local_tokens)),
        format!(
            "{} tok{}",
            tokens(f.cloud_tokens),
            if f.has_unpriced { " + unpriced" } else { "" }
        ),
        usd(f.month_to_date_usd),
        projection_cell(f.projection),
        savings_cell(f.savings_usd),
        change(f.change_percent),
    ]);
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "Costs for {} ({})", view.month, view.time_zone);
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
        }
    }
    if let Some(b) = f.budget_usd {
        let _ = writeln!(
            out,
            "\nFleet budget: {} a month; {} spent ({:.0}%).",
            usd(b),
            usd(f.month_to_date_usd),
            f.month_to_date_usd / b * 100.0
        );
    }
    for m in view.machines.iter().filter(|m| m.report.is_none()) {
        if let Some(note) = &m.note {
            let _ = writeln!(out, "{}: no figures ({note}).", m.name);
        }
    }
    if let Some(r) = view
        .machines
        .iter()
        .find(|m| m.is_self)
        .and_then(|m| m.report.as_ref())
    {
        render_details(&mut out, r);
    }
    if !view.alarms.is_empty() {
        let _ = writeln!(out, "\nAlarms on now:");
        for a in &view.alarms {
            let _ = writeln!(out, "  ! {} (since {})", a.message, a.since);
        }
    }
    out
}

fn render_details(out: &mut String, r: &MonthReport) {
    if let Some(t) = r.today_usd {
        let _ = writeln!(out, "\nToday: {}.", usd(t));
    }
    if let Some(p) = &r.projection {
        let _ = writeln!(out, "Projection: {}.", p.basis);
    }
    if let Some(b) = &r.budget {
        let _ = writeln!(
            out,
            "Budget: {} a month; {:.0}% used{}.",
            usd(b.budget_usd),
            b.percent,
            if b.projected_over {
                ", projected over"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "Savings priced at {}; previous month {}.",
        r.savings_model,
        usd(r.previous_month_usd)
    );
    if !r.by_model.is_empty() {
        let _ = writeln!(out, "\nBy model:");
        for m in &r.by_model {
            let cost = match (m.local, m.usd) {
                (true, _) => "free".to_owned(),
                (false, Some(u)) => usd(u),
                (false, None) => "UNPRICED".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<32} {:<18} {:>7} req {:>8} tok  {}",
                m.model,
                m.provider,
                thousands(m.tokens.requests),
                tokens(m.tokens.total),
                cost
            );
        }
    }
    if !r.by_agent.is_empty() {
        let _ = writeln!(out, "\nBy agent (this machine's transcripts):");
        for a in &r.by_agent {
            let mut cost = usd(a.usd);
            if a.unpriced_requests > 0 {
                cost.push_str(" + unpriced");
            }
            let top = a
                .top_sessions
                .first()
                .map(|s| format!("; top session {} {}", s.session, usd(s.usd)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<24} {:>7} req {:>8} tok  {:<14} {} session(s){top}",
                a.agent,
                thousands(a.local.requests + a.cloud.requests),
                tokens(a.local.total + a.cloud.total),
                cost,
                a.sessions,
            );
        }
    }
    let s = &r.sources;
    let _ = writeln!(
        out,
        "\nCounted: {} proxy request(s), {} transcript turn(s); {} turn(s) also in the proxy's ledger counted once.",
        thousands(s.ledger_requests),
        thousands(s.transcript_turns),
        thousands(s.counted_once)
    );
    for flag in &r.flags {
        let _ = writeln!(out, "  note: {flag}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_tokens() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(1234.565), "$1,234.57");
        assert_eq!(usd(-3.1), "-$3.10");
        assert_eq!(usd(1_000_000.0), "$1,000,000.00");
        assert_eq!(tokens(999), "999");
        assert_eq!(tokens(45_300), "45.3k");
        assert_eq!(tokens(2_100_000), "2.1M");
        assert_eq!(change(Some(-12.4)), "-12%");
        assert_eq!(change(None), "-");
    }
}
