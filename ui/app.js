// The ClawFleet dashboard: the tray's popover and any browser (a phone's
// included). Live from the fleet API's Server-Sent Events (the snapshot and
// the event log); other figures are fetched when an event says they changed,
// never on a timer. Text goes in through textContent only, so nothing a
// peer, a model server or a log line says becomes markup. Charts: uPlot.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ---- formatting ------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m` : `${s}s`;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 2 ? "just now" : `${duration(s)} ago`;
}

const usd = (v) => (v === null || v === undefined ? "–" : `$${v.toFixed(2)}`);
const pct = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(0)}%`);
const count = (n) => (n === null || n === undefined ? "–" : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(n));
const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);
const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function state(ok, yes, no) {
  return el("span", { class: ok ? "ok" : "bad" }, ok ? yes : no);
}

function bar(percent, high = 90) {
  const fill = el("i", { class: percent > high ? "high" : "" });
  // Through the CSSOM: the page's CSP refuses style attributes.
  fill.style.width = `${Math.max(0, Math.min(100, percent)).toFixed(0)}%`;
  return el("div", { class: "bar" }, fill);
}

function figure(label, value, percent) {
  return el("div", { class: "figure" }, el("span", { class: "muted" }, label), el("b", {}, value),
    percent === undefined ? null : bar(percent));
}

function rows(items, cls) {
  return el("table", { class: cls }, items.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))));
}

// ---- state -----------------------------------------------------------------

const S = {
  snap: null,
  heal: null, // GET /fleet/v1/heal
  costs: null, // GET /fleet/v1/costs
  info: null,
  events: [],
  history: {}, // id -> [[t, cpu, mem, disk], ...]
  lastSystem: {}, // id -> probed_at.system already in history
  running: new Map(), // heal key -> label
  results: new Map(), // heal key -> {ok, message}
  charts: new Map(), // id -> {node, plot}
  costsKey: "",
};

// ---- the API ---------------------------------------------------------------

const TOKEN_KEY = "clawfleet.token";
const token = () => localStorage.getItem(TOKEN_KEY) || "";
// A browser cannot put a header on its event streams: from another machine
// they carry the token as a same-site cookie (the API checks Origin too).
function tokenCookie(value) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = value
    ? `clawfleet_token=${encodeURIComponent(value)}; Path=/; SameSite=Strict; Max-Age=31536000${secure}`
    : "clawfleet_token=; Path=/; SameSite=Strict; Max-Age=0";
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const message = (body && body.error) || text || response.statusText;
    const e = new Error(response.status === 401 ? `${message} — set it in Settings` : message);
    e.status = response.status;
    throw e;
  }
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` },
    body: body === undefined ? "" : JSON.stringify(body),
  });
}

// Inside the tray app the shell runs the action in process (no token
// needed); in a browser it goes to the API with the fleet token.
// `machine` (a peer's id) asks that machine, through this one.
function heal(action, target, dryRun, machine) {
  const tauri = window.__TAURI__ && window.__TAURI__.core;
  if (tauri && tauri.invoke) {
    return tauri.invoke("heal", { action, target: target || null, dryRun: !!dryRun, machine: machine || null });
  }
  return post("/fleet/v1/heal", { action, target: target || null, dry_run: !!dryRun, machine: machine || null });
}

// ---- heal buttons ----------------------------------------------------------

const healKey = (action, target, machine) => `${machine || ""}/${action}:${target || ""}`;

async function runHeal(action, target, label, machine) {
  const key = healKey(action, target, machine);
  if (S.running.has(key)) return;
  if (action === "clean") {
    let preview;
    try {
      preview = await heal("clean", null, true, machine);
    } catch (e) {
      S.results.set(key, { ok: false, message: e.message });
      renderAll();
      return;
    }
    if (!(await confirmClean(preview))) return;
  }
  S.running.set(key, label);
  renderAll();
  try {
    const outcome = await heal(action, target, false, machine);
    S.results.set(key, { ok: outcome.success, message: outcome.message });
  } catch (e) {
    S.results.set(key, { ok: false, message: e.message });
  } finally {
    S.running.delete(key);
    renderAll();
  }
}

// The heal keys that have a button on screen: the outcome of an action whose
// button went away with what it healed (an unloaded model) is shown apart.
let shownKeys = new Set();

function healButton(label, action, target, extraClass, machine) {
  const key = healKey(action, target, machine);
  shownKeys.add(key);
  const busy = S.running.has(key);
  const result = S.results.get(key);
  return el("span", { class: "heal" },
    el("button", {
      type: "button", class: `heal-button ${extraClass || ""}${busy ? " busy" : ""}`,
      "data-action": action, "data-target": target || null, disabled: busy || null,
      onclick: () => runHeal(action, target, label, machine),
    }, busy ? `${label}…` : label),
    result ? el("span", { class: `heal-result ${result.ok ? "ok" : "bad"}` }, result.message) : null);
}

function confirmClean(preview) {
  const report = (preview.done && preview.done.detail) || {};
  const dialog = $("confirm");
  $("confirm-title").textContent = "Clean caches?";
  const largest = (report.largest || []).slice(0, 5).map((f) => [f.path, bytes(f.bytes)]);
  $("confirm-body").replaceChildren(
    el("p", {}, `${report.files ?? 0} files, ${bytes(report.bytes ?? 0)}, older than the configured age, would be removed from:`),
    el("ul", {}, (report.roots || []).map((r) => el("li", {}, el("code", {}, r.root || String(r))))),
    largest.length ? rows(largest, "compact") : null,
    (report.skipped || []).length ? el("p", { class: "muted" }, `${report.skipped.length} skipped (symlinks, missing folders)`) : null);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// ---- the fleet -------------------------------------------------------------

function selfFindings() {
  return (S.heal && S.heal.findings) || [];
}

// The engine derives why a machine needs attention (`attention`, most
// serious first); this page only adds this machine's open findings.
function machineState(m) {
  if (!m.online) return "down";
  if (m.ollama && m.ollama.checked_at && !m.ollama.reachable) return "down";
  const degraded = (m.attention || []).length > 0 || (m.is_self && selfFindings().length > 0);
  return degraded ? "degraded" : "ok";
}

// Why `m` is degraded, in one line.
function attentionLine(m) {
  const a = m.attention || [];
  if (a.length) return a.length > 1 ? `${a[0]} (+${a.length - 1} more)` : a[0];
  if (m.is_self && selfFindings().length) return selfFindings()[0].what;
  return "";
}

function fleetState(machines) {
  if (S.running.size > 0) return "healing";
  const open = new Set();
  for (const e of S.events.slice().reverse()) {
    if (e.kind === "action_started") open.add(e.subject);
    if (e.kind === "outcome") open.delete(e.subject);
  }
  if (open.size > 0) return "healing";
  const states = machines.map(machineState);
  if (states.length && states.every((s) => s === "down")) return "down";
  if (states.some((s) => s !== "ok")) return "degraded";
  return "healthy";
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function sparkline(m) {
  if (typeof uPlot === "undefined") return null;
  let chart = S.charts.get(m.id);
  const points = S.history[m.id] || [];
  const data = [points.map((p) => p[0]), points.map((p) => p[1]), points.map((p) => p[2]), points.map((p) => p[3])];
  if (!chart) {
    const node = el("div", { class: "spark", title: "CPU, memory and disk, last minutes" });
    const plot = new uPlot({
      width: 300, height: 44, cursor: { show: false }, legend: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true }, y: { range: [0, 100] } },
      series: [{}, { stroke: cssVar("--cpu"), width: 1.5 }, { stroke: cssVar("--mem"), width: 1.5 }, { stroke: cssVar("--disk"), width: 1 }],
    }, data, node);
    chart = { node, plot };
    S.charts.set(m.id, chart);
  } else {
    chart.plot.setData(data);
  }
  return el("div", { class: "spark-wrap" }, chart.node,
    el("div", { class: "legend muted" }, el("i", { class: "k cpu" }), "CPU ", el("i", { class: "k mem" }), "memory ", el("i", { class: "k disk" }), "disk"));
}

// A peer's polling: its state, when it was last heard from (our clock),
// why the last poll failed, and its clock if it is off.
function peerLine(m) {
  const p = m.peer;
  if (!p) return el("p", { class: "muted peer-line" }, "checked ", ago(m.updated_at));
  const seen = p.last_seen_at ? ["last seen ", ago(p.last_seen_at)] : ["never heard from"];
  const skew = p.clock_skew_secs !== null && p.clock_skew_secs !== undefined && Math.abs(p.clock_skew_secs) >= 5
    ? ` · its clock is ${Math.abs(p.clock_skew_secs).toFixed(0)} s ${p.clock_skew_secs > 0 ? "ahead" : "behind"}` : "";
  return el("p", { class: `peer-line peer-${p.state}`, "data-peer-state": p.state },
    el("span", { class: `pill ${p.state === "fresh" ? "ok" : "bad"}` }, p.state), " ", ...seen, skew,
    p.error ? el("span", { class: "warn" }, ` · ${p.error}`) : null);
}

// pm2 installed, no daemon running: ClawFleet did not start one to look.
function pm2NotRunning(pm2, cls) {
  return el("p", { class: `${cls} pm2-not-running`, title: pm2.pm2_home ? `no pm2 daemon in ${pm2.pm2_home}; none was started` : "" }, "pm2 not running");
}

function machineCard(m) {
  const st = machineState(m);
  // Heal buttons for this machine, and for a peer that answers now (its
  // own API runs the action, under its own guards).
  const healable = m.is_self || (m.peer && m.peer.state === "fresh");
  const hb = (label, action, target, cls) => healButton(label, action, target, cls, m.is_self ? null : m.id);
  const card = el("section", { class: `card machine ${st}`, "data-machine": m.id, "data-state": st });
  const costs = m.costs;
  card.append(el("h2", {}, m.name, m.is_self ? el("span", { class: "pill" }, "this machine") : null,
    el("span", { class: "muted" }, m.role),
    el("span", { class: `state ${st}` }, st === "ok" ? (m.online ? "online" : "offline") : st)));
  if (!m.is_self) card.append(peerLine(m));
  const why = st !== "ok" ? attentionLine(m) : "";
  if (why) card.append(el("p", { class: `why ${st}`, title: (m.attention || []).join("\n") }, why));
  const mem = m.memory;
  const root = (m.disks || []).slice().sort((a, b) => a.mount.length - b.mount.length)[0];
  if (m.cpu_percent !== null || mem) {
    card.append(el("div", { class: "figures" },
      figure("CPU", m.cpu_percent === null ? "–" : `${m.cpu_percent.toFixed(0)}%`, m.cpu_percent ?? undefined),
      figure("Memory", mem ? `${bytes(mem.used_bytes)} / ${bytes(mem.total_bytes)}` : "–",
        mem && mem.total_bytes ? (100 * mem.used_bytes) / mem.total_bytes : undefined),
      figure(root ? `Disk ${root.mount}` : "Disk", root ? `${bytes(root.available_bytes)} free` : "–",
        root && root.total_bytes ? (100 * root.used_bytes) / root.total_bytes : undefined),
      figure("Load", m.load ? m.load.one.toFixed(2) : "–"),
      figure("Uptime", duration(m.uptime_secs)),
      figure("Zombies", m.probed_at && m.probed_at.processes ? String(m.zombies.length) : "–")));
    const spark = sparkline(m);
    if (spark) card.append(spark);
    if (healable && (m.zombies || []).length) card.append(el("p", {}, hb("Reap zombies", "reap-zombies")));
  } else if (!m.is_self) {
    card.append(el("p", { class: "muted" }, m.peer
      ? "Its CPU, memory and services arrive with its first answer."
      : "This peer has no fleet_url in the config: only its Ollama is probed from here."));
  }
  if (costs) {
    card.append(el("p", { class: "costs-line" }, el("span", { class: "muted" }, "this month "), usd(costs.month_to_date_usd),
      costs.projection ? el("span", { class: "muted" }, ` · projected ${usd(costs.projection[1])}`) : null,
      costs.savings_usd ? el("span", { class: "ok" }, ` · saved ${usd(costs.savings_usd)}`) : null,
      (costs.alarms || []).length ? el("span", { class: "bad" }, ` · ${costs.alarms.length} alarm${costs.alarms.length > 1 ? "s" : ""}`) : null));
  }
  const o = m.ollama;
  if (o) {
    card.append(el("h3", {}, "Ollama"));
    card.append(el("p", { class: "ollama-state" }, state(o.reachable, "up", o.checked_at ? "down" : "not probed yet"),
      o.version ? ` · ${o.version}` : "", o.latency_ms !== null ? ` · ${o.latency_ms.toFixed(1)} ms` : "",
      healable ? [" ", hb("Restart Ollama", "restart-ollama")] : null));
    if (o.error) card.append(el("p", { class: "warn" }, o.error));
    const loaded = new Map((o.loaded || []).map((l) => [l.name, l]));
    if (o.models && o.models.length) {
      card.append(rows(o.models.map((md) => {
        const l = loaded.get(md.name);
        return [
          el("span", {}, md.name, md.purpose ? el("span", { class: "muted" }, ` · ${md.purpose}`) : null),
          l ? el("span", { class: "ok" }, `loaded ${bytes(l.vram_bytes)} VRAM`,
            l.expires_at ? el("span", { class: "muted" }, ` · until ${time(l.expires_at)}`) : null,
            healable ? [" ", hb("Unload", "unload-model", md.name, "small")] : null)
            : el("span", { class: "muted" }, bytes(md.size_bytes)),
        ];
      }), "models"));
    }
  }
  if (m.services && m.services.length) {
    card.append(el("h3", {}, "Services"));
    card.append(rows(m.services.map((s) => [
      el("span", {}, s.name, el("span", { class: "muted" }, ` ${s.target}`)),
      s.up ? state(true, s.latency_ms !== null ? `up · ${s.latency_ms.toFixed(1)} ms` : "up")
        : el("span", { class: "bad", title: s.error || "" }, s.error || "down"),
    ])));
  }
  const pm2 = m.pm2_state;
  if (m.pm2 && m.pm2.length) {
    card.append(el("h3", {}, "pm2"));
    if (pm2 && pm2.status === "not_installed") card.append(el("p", { class: "bad" }, "pm2 is not installed"));
    if (pm2 && pm2.status === "not_running") card.append(pm2NotRunning(pm2, "warn"));
    card.append(rows(m.pm2.map((a) => [
      a.name,
      el("span", {}, el("span", { class: a.status === "online" ? "ok" : "bad" },
        `${a.status}${a.restarts ? ` · ${a.restarts} restarts` : ""}${a.uptime_secs !== null ? ` · ${duration(a.uptime_secs)}` : ""}`),
      healable && a.status !== "missing" ? [" ", hb("Restart", "restart-pm2-app", a.name, "small")] : null),
    ])));
  } else if (pm2 && pm2.status === "error") {
    card.append(el("h3", {}, "pm2"), el("p", { class: "bad" }, pm2.message));
  } else if (pm2 && pm2.status === "not_running") {
    card.append(el("h3", {}, "pm2"), pm2NotRunning(pm2, "muted"));
  }
  const c = m.openclaw;
  if (c) {
    const inst = c.install || {};
    const legacy = inst.kind === "clawdbot";
    card.append(el("h3", {}, legacy ? "Clawdbot (legacy)" : "OpenClaw",
      inst.version ? el("span", { class: "muted", title: `from ${inst.version_from || "?"}` }, ` ${inst.version}`) : null));
    const gh = c.gateway_health;
    const gwState = c.gateway_listening === false ? el("span", { class: "bad" }, "not listening")
      : gh ? (gh.ok ? state(true, "up") : el("span", { class: gh.failure === "starting" ? "warn" : "bad" }, gh.failure || "failing"))
        : c.gateway_listening ? state(true, "listening") : "";
    card.append(el("p", { class: "gateway-health", "data-ok": gh && gh.ok ? "1" : "0" }, el("span", { class: "muted" }, "gateway "),
      `:${c.gateway_port} `, gwState,
      gh && gh.uptime_secs !== null && gh.uptime_secs !== undefined ? el("span", { class: "muted" }, ` · up ${duration(gh.uptime_secs)}`) : null,
      gh && gh.via === "cli" ? el("span", { class: "muted" }, " · via openclaw health") : null,
      healable && c.config_found ? [" ", hb("Restart gateway", "restart-gateway", null, "small")] : null));
    if (gh && !gh.ok && gh.error) card.append(el("p", { class: "warn gateway-error" }, gh.error));
    if (gh && gh.hint) card.append(el("p", { class: "muted gateway-hint" }, gh.hint));
    if (gh && gh.channels && gh.channels.length) {
      card.append(el("p", { class: "channels" }, el("span", { class: "muted" }, "channels "),
        ...gh.channels.map((ch, i) => [i ? " · " : "", el("span", { class: ch.state === "ok" ? "ok" : ch.state === "disabled" || ch.state === "not configured" ? "muted" : "bad", title: ch.last_error || "" },
          `${ch.label} ${ch.state === "ok" ? (ch.connected === false ? "not connected" : "connected") : ch.state}`)])));
    }
    for (const e of (gh && gh.plugin_errors) || []) card.append(el("p", { class: "bad" }, `plugin ${e}`));
    if (!c.config_found) card.append(el("p", { class: "muted" }, `no config at ${c.config_path || "?"}`));
    else if (inst.found_by) card.append(el("p", { class: "muted install", title: (inst.also_found || []).join("\n") }, `${c.config_path} · found by ${inst.found_by}`));
    if (c.error) card.append(el("p", { class: "warn" }, c.error));
    for (const p of c.state_problems || []) card.append(el("p", { class: "warn" }, p));
    const chain = [c.primary_model, ...(c.fallbacks || [])].filter(Boolean);
    if (chain.length) card.append(el("p", {}, el("span", { class: "muted" }, "models "), chain.join(" → ")));
    // Each model of the chains against what the fleet can serve now.
    const cv = c.chain;
    if (cv && cv.models.length) {
      card.append(rows(cv.models.map((x) => [
        el("span", {}, x.model, el("span", { class: "muted" }, ` · ${x.role}`)),
        !x.local ? el("span", { class: "muted" }, "cloud (paid)")
          : x.servable ? el("span", { class: "ok" }, `servable · ${x.machines.join(", ")}`)
            : el("span", { class: "bad" }, "no machine has it up"),
      ]), "chain"));
      if (cv.local_all_down) {
        card.append(el("p", { class: "bad chain-alarm" }, "Every local model of the chain is down: turns go to the paid fallbacks."));
      }
    }
    const h = c.heartbeat;
    if (h) {
      card.append(el("p", { class: "heartbeat", "data-overdue": h.overdue ? "1" : "0" }, el("span", { class: "muted" }, "heartbeat "),
        h.last_at ? ["last ", ago(h.last_at)] : "none found",
        ` · every ${Math.round(h.every_secs / 60)} min · ${h.model}`,
        h.overdue && h.last_at ? el("span", { class: "bad" }, " · overdue") : null));
    }
    const agents = c.agents || [];
    if (agents.length) {
      const sessions = agents.reduce((n, a) => n + a.sessions, 0);
      card.append(el("p", { class: "agents" }, el("span", { class: "muted" }, "agents "),
        `${agents.length} · ${sessions} session${sessions === 1 ? "" : "s"}`));
      const cls = { working: "ok", idle: "muted", stuck: "bad", waiting: "warn" };
      card.append(rows(agents.slice(0, 8).map((a) => [
        el("span", {}, a.id, a.is_default ? el("span", { class: "muted" }, " (default)") : null),
        el("span", { "data-agent": a.id, "data-activity": a.activity || "" },
          a.activity ? el("span", { class: cls[a.activity] || "", title: a.activity_why || "" }, a.activity) : null,
          ` · ${a.sessions} session${a.sessions === 1 ? "" : "s"}`,
          a.last_turn_at ? [" · ", ago(a.last_turn_at)] : null,
          a.last_model ? el("span", { class: "muted" }, ` · ${[a.last_provider, a.last_model].filter(Boolean).join("/")}`) : null,
          a.on_fallback ? el("span", { class: "warn", title: `selected: ${a.selected_model || "?"}` }, " · on a fallback") : null,
          a.heartbeat && a.heartbeat.overdue ? el("span", { class: "bad" }, " · heartbeat overdue") : null),
      ]), "agents-list"));
    }
  }
  if (healable) {
    card.append(el("p", { class: "card-actions" }, hb("Clean caches…", "clean", null, "danger")));
    // Outcomes of this machine's actions whose button went away.
    const mine = `${m.is_self ? "" : m.id}/`;
    const orphans = [...S.results].filter(([key]) => key.startsWith(mine) && !shownKeys.has(key));
    for (const [, r] of orphans) card.append(el("p", { class: `heal-result ${r.ok ? "ok" : "bad"}` }, r.message));
  }
  card.append(el("p", { class: "muted" }, m.is_self ? "updated " : "checked ", ago(m.updated_at)));
  return card;
}

function renderFindings() {
  const findings = selfFindings();
  const h = S.heal;
  const head = h ? el("p", { class: "muted" }, `self-healing: ${h.mode}${h.paused ? " · paused" : ""}`) : null;
  $("findings").replaceChildren(head || "", ...findings.map((f) => el("div", { class: `finding ${f.severity}`, "data-finding": f.key },
    el("span", {}, f.what),
    f.action ? healButton(actionLabel(f.action), f.action.action, f.action.app || f.action.model) : null)));
}

function actionLabel(a) {
  return {
    "restart-ollama": "Restart Ollama", "restart-pm2-app": `Restart ${a.app || "app"}`, "reap-zombies": "Reap zombies",
    "shutdown-simulators": "Shut down simulators", "clean": "Clean caches…", "unload-model": `Unload ${a.model || "model"}`,
    "restart-gateway": "Restart gateway",
  }[a.action] || a.action;
}

// ---- costs -----------------------------------------------------------------

let costChart = null;

// One machine's row of the cost table: this machine's full report, or a
// peer's summary as its own daemon computed it (fleet polling brings it).
function costRow(m) {
  const r = m.report;
  if (r) {
    return {
      today: r.today_usd, month: r.month_to_date_usd,
      projected: r.projection ? r.projection.expected_usd : null,
      budget: r.budget ? { percent: r.budget.percent, usd: r.budget.budget_usd } : null,
      local: r.local.input + r.local.output, cloud: r.cloud.input + r.cloud.output,
    };
  }
  const s = m.summary;
  if (!s) return null;
  return {
    today: s.today_usd, month: s.month_to_date_usd,
    projected: s.projection ? s.projection[1] : null,
    budget: s.budget_usd ? { percent: (100 * s.month_to_date_usd) / s.budget_usd, usd: s.budget_usd } : null,
    local: s.local_tokens, cloud: s.cloud_tokens,
  };
}

function renderCosts() {
  const c = S.costs;
  if (!c) return;
  const f = c.fleet;
  const self = c.machines.find((m) => m.is_self) || c.machines[0];
  const budget = f.budget_usd;
  const parts = [
    el("div", { class: "card" },
      el("h2", {}, `Fleet · ${c.month}`),
      el("div", { class: "figures" },
        figure("Month to date", usd(f.month_to_date_usd)),
        figure("Projected", f.projection ? usd(f.projection[1]) : "–"),
        figure("Range", f.projection ? `${usd(f.projection[0])}–${usd(f.projection[2])}` : "–"),
        figure("Today", usd(f.today_usd)),
        figure("Saved by local", usd(f.savings_usd)),
        figure("Budget", budget ? `${usd(budget)}` : "none", budget ? (100 * f.month_to_date_usd) / budget : undefined)),
      el("p", { class: "muted" }, `previous month ${usd(f.previous_month_usd)}`,
        f.change_percent !== null && f.change_percent !== undefined ? ` (${f.change_percent >= 0 ? "+" : ""}${f.change_percent.toFixed(0)}%)` : "",
        ` · ${f.machines_reporting} of ${f.machines_total} machines reporting`)),
  ];
  if ((c.alarms || []).length) {
    parts.push(el("div", { class: "card alarms" }, el("h2", {}, "Alarms"),
      el("ul", {}, c.alarms.map((a) => el("li", { class: "bad" }, a.message, el("span", { class: "muted" }, ` · since ${ago(a.since)}`))))));
  }
  parts.push(el("div", { class: "card" }, el("h2", {}, "Per machine"),
    el("table", { class: "cost-table" },
      el("tr", {}, ["Machine", "Today", "Month", "Projected", "Budget", "Local"].map((h) => el("th", {}, h))),
      c.machines.map((m) => {
        const f = costRow(m);
        return el("tr", { "data-cost-machine": m.machine, title: m.note || "" },
          el("td", {}, m.name),
          el("td", {}, f ? usd(f.today) : "–"),
          el("td", {}, f ? usd(f.month) : "–"),
          el("td", {}, f && f.projected !== null ? usd(f.projected) : "–"),
          el("td", {}, f && f.budget ? `${f.budget.percent.toFixed(0)}% of ${usd(f.budget.usd)}` : "–"),
          el("td", {}, f && f.local + f.cloud ? pct((100 * f.local) / (f.local + f.cloud)) : (f ? "–" : el("span", { class: "muted", title: m.note || "" }, "peer"))));
      }))));
  const daily = self && self.report ? self.report.daily || [] : [];
  const chartCard = el("div", { class: "card" }, el("h2", {}, "Daily cost (this machine)"));
  parts.push(chartCard);
  if (self && self.report && (self.report.by_model || []).length) {
    parts.push(el("div", { class: "card" }, el("h2", {}, "By model"),
      rows(self.report.by_model.slice(0, 8).map((b) => [
        el("span", {}, b.model, el("span", { class: "muted" }, ` · ${b.provider}`)),
        b.local ? el("span", { class: "ok" }, "local") : usd(b.usd),
      ]))));
  }
  $("costs").replaceChildren(...parts);
  if (typeof uPlot !== "undefined" && daily.length) {
    const data = [daily.map((d) => Date.parse(d.date + "T12:00:00Z") / 1000), daily.map((d) => d.usd)];
    const node = el("div", { class: "daily" });
    chartCard.append(node);
    costChart = new uPlot({
      width: Math.min(560, Math.max(300, chartCard.clientWidth - 24)), height: 120, legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: true } },
      axes: [{ stroke: cssVar("--muted"), grid: { show: false }, size: 24 }, { stroke: cssVar("--muted"), size: 44, values: (u, v) => v.map((x) => `$${x}`) }],
      series: [{}, { fill: cssVar("--cpu"), stroke: cssVar("--cpu"), paths: uPlot.paths.bars({ size: [0.6, 40] }) }],
    }, data, node);
  } else {
    chartCard.append(el("p", { class: "muted" }, "No spending recorded this month."));
  }
}

// ---- proxy -----------------------------------------------------------------

function renderProxy() {
  const p = S.snap && S.snap.proxy;
  if (!p) return;
  const s = p.stats;
  const parts = [el("div", { class: "card" }, el("h2", {}, "Inference proxy"),
    el("p", { class: "muted" }, `on ${p.listen} · last ${duration((Date.parse(s.until) - Date.parse(s.since)) / 1000)}`),
    el("div", { class: "figures" },
      figure("Requests/min", s.requests_per_minute.toFixed(1)),
      figure("Requests", count(s.requests)),
      figure("Fallbacks", count(s.fallbacks)),
      figure("Errors", count(s.errors)),
      figure("p50", s.duration_ms ? ms(s.duration_ms.p50) : "–"),
      figure("p95 / p99", s.duration_ms ? `${ms(s.duration_ms.p95)} / ${ms(s.duration_ms.p99)}` : "–"),
      figure("First byte p50", s.ttfb_ms ? ms(s.ttfb_ms.p50) : "–")))];
  if ((s.machines || []).length) {
    parts.push(el("div", { class: "card" }, el("h2", {}, "Share per machine"),
      el("table", {}, s.machines.map((m) => el("tr", {},
        el("td", {}, m.machine || "(none)"),
        el("td", { class: "wide" }, bar(100 * m.share, 101)),
        el("td", {}, `${pct(100 * m.share)} · ${count(m.requests)}`))))));
  }
  if ((p.circuits || []).length) {
    parts.push(el("div", { class: "card" }, el("h2", {}, "Backends"),
      rows(p.circuits.map((c) => [c.machine, el("span", { class: c.state === "closed" ? "ok" : "bad" }, c.state)]))));
  }
  if ((s.models || []).length) {
    parts.push(el("div", { class: "card" }, el("h2", {}, "Models"),
      rows(s.models.slice(0, 10).map((m) => [m.model, count(m.requests)]))));
  }
  $("proxy").replaceChildren(...parts);
}

// ---- events ----------------------------------------------------------------

function eventItem(e) {
  const ok = e.kind === "outcome" ? (e.detail && e.detail.success ? "ok" : "bad") : "";
  return el("li", { class: `event ${e.severity} ${e.kind} ${ok}`, "data-kind": e.kind },
    el("time", { datetime: e.at, class: "muted" }, time(e.at)),
    el("span", { class: "kind" }, e.kind.replace("_", " ")),
    el("span", { class: "message" }, e.message),
    e.requested_by ? el("span", { class: "muted" }, ` · by ${e.requested_by}`) : null);
}

function renderEvents() {
  $("events").replaceChildren(...(S.events.length ? S.events.map(eventItem) : [el("li", { class: "muted" }, "No events yet.")]));
}

// ---- settings --------------------------------------------------------------

function renderSettings() {
  const h = S.heal;
  if (h) {
    $("mode").value = h.mode;
    $("paused").checked = h.paused;
  }
  $("token-state").textContent = token() ? "A token is saved in this browser." : "No token saved: heal buttons will be refused.";
  // In the app: the token can be shown here to give it to another machine.
  $("token-reveal").hidden = !(tauriCore() && tauriCore().invoke);
  const i = S.info;
  if (i) {
    $("token-file").textContent = i.token_file;
    const core = tauriCore();
    const open = core && core.invoke && i.config.startsWith("/") || (core && /^[A-Za-z]:\\/.test(i.config))
      ? el("button", { type: "button", id: "open-config", onclick: () => core.invoke("open_config").catch((e) => {
        $("tray-result").textContent = String(e);
        $("tray-result").className = "bad";
      }) }, "Open")
      : null;
    $("about").replaceChildren(...[["Version", i.version], ["Config", i.config, open], ["Data folder", i.data_dir], ["This machine", i.this_machine]]
      .map(([k, v, extra]) => el("tr", {}, el("td", { class: "muted" }, k), el("td", {}, el("code", {}, v), extra ? [" ", extra] : null))));
  }
}

// Inside the tray app: its own settings (start at login, which
// notifications), through its commands.
const tauriCore = () => window.__TAURI__ && window.__TAURI__.core;
const NOTICE_LABELS = { heal: "Heal actions and their outcome", needs_human: "Needs a human",
  cost: "Budget and credit-leak alarms", diagnosis: "The Healer's diagnoses",
  machine: "A machine going offline or coming back" };

function renderTray(t) {
  $("tray-card").hidden = false;
  $("autostart").checked = !!t.autostart;
  $("notify-kinds").replaceChildren(...Object.entries(t.notify || {}).map(([kind, on]) =>
    el("label", { class: "check" },
      el("input", { type: "checkbox", "data-notify": kind, checked: on || null,
        onchange: (e) => setTray(`notify.${kind}`, e.target.checked) }),
      NOTICE_LABELS[kind] || kind)));
}

async function setTray(key, value) {
  try {
    renderTray(await tauriCore().invoke("set_setting", { key, value }));
    $("tray-result").textContent = "saved";
    $("tray-result").className = "ok";
  } catch (e) {
    $("tray-result").textContent = String(e);
    $("tray-result").className = "bad";
  }
}

async function loadTray() {
  const core = tauriCore();
  if (!core || !core.invoke) return;
  try { renderTray(await core.invoke("settings")); } catch (e) { console.warn("tray settings", e); }
  $("autostart").addEventListener("change", () => setTray("autostart", $("autostart").checked));
}

async function setMode(body, path) {
  try {
    S.heal = await post(path, body);
    $("mode-result").textContent = "saved";
    $("mode-result").className = "ok";
  } catch (e) {
    $("mode-result").textContent = e.message;
    $("mode-result").className = "bad";
  }
  renderAll();
}

// ---- rendering and live updates -------------------------------------------

function renderAll() {
  const snap = S.snap;
  shownKeys = new Set();
  renderFindings();
  if (snap) {
    $("version").textContent = `ClawFleet ${snap.clawfleet_version}`;
    $("notices").replaceChildren(...(snap.notices || []).map((n) => el("div", { class: "notice" }, n)));
    renderMachines(snap);
    const fs = fleetState(snap.machines);
    $("fleet-state").textContent = fs;
    $("fleet-state").dataset.state = fs;
    // Why, in one line: the first machine that is not fine, and its reason.
    const worst = snap.machines.find((m) => machineState(m) === "down") || snap.machines.find((m) => machineState(m) !== "ok");
    $("fleet-why").textContent = worst ? `${worst.name}: ${attentionLine(worst) || machineState(worst)}` : "";
    renderProxy();
  }
  renderSettings();
}

// A click is a press and a release on the same button. The machine cards
// are rebuilt on every snapshot, and a rebuild between the two swallows the
// click: while a pointer is pressed on them, the rebuild waits for the
// release (the window losing focus counts as one), or PRESS_MAX_MS should
// neither ever come.
const press = { held: false, pending: false, timer: null };
const PRESS_MAX_MS = 10000;

function renderMachines(snap) {
  if (press.held) {
    press.pending = true;
    return;
  }
  $("machines").replaceChildren(...snap.machines.map(machineCard));
}

function pressed() {
  press.held = true;
  clearTimeout(press.timer);
  press.timer = setTimeout(released, PRESS_MAX_MS);
}

function released() {
  if (!press.held) return;
  press.held = false;
  clearTimeout(press.timer);
  if (!press.pending) return;
  press.pending = false;
  // After the click this release completes: it is dispatched in the same
  // task, before any timer.
  setTimeout(renderAll, 0);
}

function addHistory(snap) {
  for (const m of snap.machines) {
    const at = m.probed_at && m.probed_at.system;
    if (!at || S.lastSystem[m.id] === at) continue;
    S.lastSystem[m.id] = at;
    const mem = m.memory && m.memory.total_bytes ? (100 * m.memory.used_bytes) / m.memory.total_bytes : null;
    const disks = (m.disks || []).filter((d) => d.total_bytes).map((d) => (100 * d.used_bytes) / d.total_bytes);
    const points = (S.history[m.id] = S.history[m.id] || []);
    const t = Math.floor(Date.parse(at) / 1000);
    if (points.length && points[points.length - 1][0] >= t) continue;
    points.push([t, m.cpu_percent, mem, disks.length ? Math.max(...disks) : null]);
    while (points.length > 240) points.shift();
  }
}

let healTimer = null;
function refreshHeal() {
  clearTimeout(healTimer);
  healTimer = setTimeout(async () => {
    try { S.heal = await api("/fleet/v1/heal"); } catch { /* no healing in this process */ }
    renderAll();
  }, 150);
}

async function refreshCosts() {
  try {
    S.costs = await api("/fleet/v1/costs");
    renderCosts();
  } catch (e) {
    $("costs").replaceChildren(el("p", { class: "muted" }, `Costs are not available: ${e.message}`));
  }
}

function onSnapshot(snap) {
  $("conn").textContent = "live";
  $("conn").className = "pill ok";
  $("conn").dataset.updates = String(Number($("conn").dataset.updates || 0) + 1);
  S.snap = snap;
  addHistory(snap);
  renderAll();
  // The Costs tab is fetched again when any machine's figures change: this
  // machine's cycle, or a peer's arriving with fleet polling.
  const key = snap.machines.filter((m) => m.costs).map((m) => `${m.id}@${m.costs.updated_at}`).join(",");
  if (key && key !== S.costsKey) {
    S.costsKey = key;
    refreshCosts();
  }
}

function onEvent(ev) {
  if (S.events.some((x) => x.id === ev.id)) return;
  S.events.unshift(ev);
  S.events.length = Math.min(S.events.length, 200);
  renderEvents();
  refreshHeal();
  if (ev.kind === "cost_alarm") refreshCosts();
}

// Live updates: in the app, the engine pushes Tauri events; in a browser,
// Server-Sent Events. Either way, no polling.
function connect() {
  const events = window.__TAURI__ && window.__TAURI__.event;
  if (events && events.listen) {
    document.documentElement.dataset.live = "app";
    events.listen("fleet:snapshot", (e) => onSnapshot(e.payload));
    events.listen("fleet:event", (e) => onEvent(e.payload));
    // The app pushes on change; the first one may come before we listen.
    api("/fleet/v1/snapshot").then((snap) => { if (!S.snap) onSnapshot(snap); }).catch(() => {});
    return;
  }
  document.documentElement.dataset.live = "sse";
  const source = new EventSource("/fleet/v1/stream");
  source.addEventListener("snapshot", (e) => {
    let snap;
    try { snap = JSON.parse(e.data); } catch (err) { console.error("bad snapshot", err); return; }
    onSnapshot(snap);
  });
  source.onerror = () => {
    // EventSource reconnects by itself; say so meanwhile.
    $("conn").textContent = "reconnecting…";
    $("conn").className = "pill bad";
  };
  const stream = new EventSource("/fleet/v1/events/stream");
  stream.addEventListener("event", (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    onEvent(ev);
  });
}

function showTab() {
  const tab = (location.hash || "#fleet").slice(1);
  const known = ["fleet", "costs", "proxy", "events", "settings"].includes(tab) ? tab : "fleet";
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${known}`;
  for (const a of document.querySelectorAll("#tabs a")) {
    if (a.dataset.tab === known) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (known === "costs") renderCosts();
}

async function start() {
  window.addEventListener("hashchange", showTab);
  $("machines").addEventListener("pointerdown", pressed);
  window.addEventListener("pointerup", released, true);
  window.addEventListener("pointercancel", released, true);
  window.addEventListener("blur", released);
  showTab();
  $("mode").addEventListener("change", () => setMode({ mode: $("mode").value }, "/fleet/v1/heal/mode"));
  $("paused").addEventListener("change", () => setMode(undefined, $("paused").checked ? "/fleet/v1/heal/pause" : "/fleet/v1/heal/resume"));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    if (v) { localStorage.setItem(TOKEN_KEY, v); tokenCookie(v); location.reload(); }
    $("token").value = "";
    renderSettings();
  });
  $("token-clear").addEventListener("click", () => { localStorage.removeItem(TOKEN_KEY); tokenCookie(""); renderSettings(); });
  $("token-show").addEventListener("click", async () => {
    try {
      const t = await tauriCore().invoke("fleet_token");
      $("token-value").textContent = t;
      if (navigator.clipboard) await navigator.clipboard.writeText(t).catch(() => {});
    } catch (e) { $("token-value").textContent = String(e); }
  });
  if (token() && !document.cookie.includes("clawfleet_token=")) tokenCookie(token());
  connect();
  loadTray();
  const [history, events, info] = await Promise.allSettled([
    api("/fleet/v1/history"), api("/fleet/v1/events?limit=100"), api("/fleet/v1/info")]);
  if (history.status === "fulfilled") {
    for (const [id, points] of Object.entries(history.value.machines || {})) {
      const mine = S.history[id] || [];
      const first = mine.length ? mine[0][0] : Infinity;
      S.history[id] = points.filter((p) => p[0] < first).concat(mine);
      if (points.length) S.lastSystem[id] = S.lastSystem[id] || null;
    }
  }
  if (events.status === "fulfilled") {
    const seen = new Set(S.events.map((e) => e.id));
    S.events = S.events.concat(events.value.filter((e) => !seen.has(e.id)));
    renderEvents();
  }
  if (info.status === "fulfilled") S.info = info.value;
  refreshHeal();
  refreshCosts();
  renderAll();
}

start();
