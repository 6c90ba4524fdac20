// The built-in status page: renders the live snapshot from the fleet API's
// Server-Sent Events stream. No framework, no polling. Text goes in through
// textContent only, so nothing a peer or a model server says becomes markup.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m` : `${s}s`;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 2 ? "just now" : `${duration(s)} ago`;
}

function state(ok, yes, no) {
  return el("span", { class: ok ? "ok" : "bad" }, ok ? yes : no);
}

function figure(label, value, percent) {
  let bar = null;
  if (percent !== undefined) {
    const fill = el("i", { class: percent > 90 ? "high" : "" });
    // Through the CSSOM: the page's CSP refuses style attributes.
    fill.style.width = `${Math.min(100, percent).toFixed(0)}%`;
    bar = el("div", { class: "bar" }, fill);
  }
  return el("div", { class: "figure" }, el("span", { class: "muted" }, label), el("b", {}, value), bar);
}

function rows(items) {
  return el("table", {}, items.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))));
}

function machineCard(m) {
  const card = el("section", { class: "card" + (m.online ? "" : " offline"), "data-machine": m.id });
  card.append(el("h2", {}, m.name, m.is_self ? el("span", { class: "pill" }, "this machine") : null,
    el("span", { class: "muted" }, m.role), state(m.online, "online", "offline")));
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
  } else if (!m.is_self) {
    card.append(el("p", { class: "muted" }, "CPU, memory and services of peers arrive once peers are polled."));
  }
  const o = m.ollama;
  if (o) {
    card.append(el("h3", {}, "Ollama"));
    card.append(el("p", {}, state(o.reachable, "up", o.checked_at ? "down" : "not probed yet"),
      o.version ? ` · ${o.version}` : "", o.latency_ms !== null ? ` · ${o.latency_ms.toFixed(1)} ms` : "",
      el("span", { class: "muted" }, ` · ${o.url}`)));
    if (o.error) card.append(el("p", { class: "warn" }, o.error));
    const loaded = new Map((o.loaded || []).map((l) => [l.name, l]));
    if (o.models && o.models.length) {
      card.append(rows(o.models.map((md) => {
        const l = loaded.get(md.name);
        return [
          el("span", {}, md.name, md.purpose ? el("span", { class: "muted" }, ` · ${md.purpose}`) : null),
          l ? el("span", { class: "ok" }, `loaded ${bytes(l.vram_bytes)} VRAM`) : el("span", { class: "muted" }, bytes(md.size_bytes)),
        ];
      })));
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
    card.append(rows(m.pm2.map((a) => [
      a.name,
      el("span", { class: a.status === "online" ? "ok" : "bad" },
        `${a.status}${a.restarts ? ` · ${a.restarts} restarts` : ""}${a.uptime_secs !== null ? ` · ${duration(a.uptime_secs)}` : ""}`),
    ])));
  } else if (pm2 && pm2.status === "error") {
    card.append(el("h3", {}, "pm2"), el("p", { class: "bad" }, pm2.message));
  } else if (pm2 && pm2.status === "not_installed" && m.is_self) {
    card.append(el("h3", {}, "pm2"), el("p", { class: "muted" }, "not installed"));
  }
  const c = m.clawdbot;
  if (c) {
    card.append(el("h3", {}, "Clawdbot"));
    card.append(el("p", {}, "gateway :", String(c.gateway_port), " ",
      c.gateway_listening === null ? "" : state(c.gateway_listening, "listening", "closed")));
    if (!c.config_found) card.append(el("p", { class: "muted" }, `no config at ${c.config_path || "?"}`));
    if (c.error) card.append(el("p", { class: "warn" }, c.error));
    const chain = [c.primary_model, ...(c.fallbacks || [])].filter(Boolean);
    if (chain.length) card.append(el("p", {}, el("span", { class: "muted" }, "models "), chain.join(" → ")));
    if (c.heartbeat_model) card.append(el("p", {}, el("span", { class: "muted" }, "heartbeat "), c.heartbeat_model,
      c.heartbeat_every ? ` every ${c.heartbeat_every}` : ""));
  }
  card.append(el("p", { class: "muted" }, m.is_self ? "updated " : "checked ", ago(m.updated_at)));
  return card;
}

function render(snap) {
  $("version").textContent = `ClawFleet ${snap.clawfleet_version}`;
  $("notices").replaceChildren(...(snap.notices || []).map((n) => el("div", { class: "notice" }, n)));
  $("machines").replaceChildren(...snap.machines.map(machineCard));
}

function connect() {
  const source = new EventSource("/fleet/v1/stream");
  source.addEventListener("snapshot", (e) => {
    $("conn").textContent = "live";
    $("conn").className = "pill ok";
    try { render(JSON.parse(e.data)); } catch (err) { console.error("bad snapshot", err); }
  });
  source.onerror = () => {
    // EventSource reconnects by itself; say so meanwhile.
    $("conn").textContent = "reconnecting…";
    $("conn").className = "pill bad";
  };
}

connect();
