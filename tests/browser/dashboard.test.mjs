// The dashboard (`ui/`) in a real headless Chromium, against a real
// `clawfleet serve` whose Ollama is a fake speaking Ollama's documented JSON:
// machines render with their figures, a stopped Ollama turns its card red
// live, heal buttons run actions (with the fleet token, and a dry-run preview
// before a clean) and their outcomes reach the event list; light and dark
// screenshots go to target/screenshots/.
// Run by `cargo xtask test` (node --test) after the Rust tests built the binary.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync, utimesSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const bin = process.env.CLAWFLEET_BIN || join(root, "target/debug/clawfleet");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(root, "target/screenshots");

// Ollama's documented shapes (docs/api.md): /api/version, /api/tags, /api/ps.
const model = (name, size, family, params, quant) => ({
  name, model: name, modified_at: "2026-11-01T10:00:00Z", size, digest: "sha256:0",
  details: { parent_model: "", format: "gguf", family, families: [family], parameter_size: params, quantization_level: quant },
});
const TAGS = { models: [model("gpt-oss:20b", 13780173724, "gptoss", "20.9B", "MXFP4"), model("qwen3:8b", 5225376047, "qwen3", "8.2B", "Q4_K_M")] };
const PS = { models: [{ ...model("gpt-oss:20b", 14100000000, "gptoss", "20.9B", "MXFP4"), expires_at: "2099-01-01T00:00:00Z", size_vram: 13900000000 }] };

// Serves until stopped; `start` again listens on the same port. An unload
// (`POST /api/generate` with `keep_alive: 0`, as docs/api.md describes) takes
// the model out of /api/ps.
function startFakeOllama() {
  const sockets = new Set();
  let loaded = PS.models.slice();
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => { raw += c; });
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/api/generate") {
        const body = JSON.parse(raw || "{}");
        if (body.keep_alive === 0) loaded = loaded.filter((m) => m.name !== body.model);
        res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ model: body.model, created_at: new Date().toISOString(), response: "", done: true, done_reason: "unload" }));
        return;
      }
      const answer = { "/api/version": { version: "0.12.6" }, "/api/tags": TAGS, "/api/ps": { models: loaded } }[req.url];
      if (!answer) { res.writeHead(404, { "Content-Type": "application/json" }); res.end('{"error":"not found"}'); return; }
      res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(answer));
    });
  });
  server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  let port = 0;
  const listen = () => new Promise((ok) => server.listen(port, "127.0.0.1", () => { port = server.address().port; ok(); }));
  return listen().then(() => ({
    get port() { return port; },
    start: listen,
    stop: () => new Promise((done) => { server.close(done); for (const s of sockets) s.destroy(); }),
  }));
}

let dir, ollama, daemon, base, browser;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "clawfleet-browser-"));
  mkdirSync(shots, { recursive: true });
  ollama = await startFakeOllama();
  const config = join(dir, "config.toml");
  writeFileSync(config, `this_machine = "macmini"
data_dir = ${JSON.stringify(join(dir, "data"))}
[api]
listen = "127.0.0.1:0"
[proxy]
listen = "127.0.0.1:0"
[probes]
system_interval_secs = 1
ollama_interval_secs = 1
services_interval_secs = 1
timeout_ms = 500
[clawdbot]
config_path = ${JSON.stringify(join(dir, "clawdbot.json"))}
[costs]
read_transcripts = false
[heal]
mode = "suggest"
interval_secs = 1
verify_secs = 10
[heal.clean]
roots = [${JSON.stringify(join(dir, "cache"))}]
older_than_days = 7
[[machines]]
id = "macmini"
name = "Mac Mini"
role = "central brain"
ollama_url = "http://127.0.0.1:${ollama.port}"
models = [ { name = "gpt-oss:20b", purpose = "Primary model, heartbeats" } ]
services = [ { name = "Ollama port", port = ${ollama.port} } ]
`);
  writeFileSync(join(dir, "clawdbot.json"), `{
  // JSON5, as Clawdbot writes it
  agents: { defaults: { model: { primary: "ollama/gpt-oss:20b", fallbacks: ["ollama/qwen3:8b", "anthropic/claude-sonnet-4-5",] },
    heartbeat: { model: "ollama/gpt-oss:20b", every: "30m" } } },
  models: { providers: { ollama: { baseUrl: "http://127.0.0.1:${ollama.port}/v1", api: "openai-completions", models: [] } } },
}`);
  // Its state folder: one agent, two sessions; the last heartbeat 2 h ago.
  const turn = (model, provider, at) => JSON.stringify({ type: "message", timestamp: at,
    message: { role: "assistant", provider, model, api: "openai-completions", usage: { input: 10, output: 5 }, timestamp: at } }) + "\n";
  const hour = 3600 * 1000;
  mkdirSync(join(dir, "agents", "main", "sessions"), { recursive: true });
  writeFileSync(join(dir, "agents", "main", "sessions", "a.jsonl"), turn("gpt-oss:20b", "ollama", new Date(Date.now() - 2 * hour).toISOString()));
  writeFileSync(join(dir, "agents", "main", "sessions", "b.jsonl"), turn("qwen3:8b", "ollama", new Date(Date.now() - hour / 2).toISOString()));
  // Two old files (4000 bytes) and a young one for the Cleaner.
  const old = (Date.now() - 30 * 86400 * 1000) / 1000;
  for (const [name, size, when] of [["a.bin", 1000, old], ["sub/b.bin", 3000, old], ["young.bin", 500, Date.now() / 1000]]) {
    const path = join(dir, "cache", name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, Buffer.alloc(size));
    utimesSync(path, when, when);
  }
  daemon = spawn(bin, ["--config", config, "serve"], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise((ok, fail) => {
    createInterface({ input: daemon.stdout }).once("line", ok);
    daemon.once("exit", (code) => fail(new Error(`clawfleet exited with ${code}`)));
  });
  base = line.trim().replace("clawfleet: fleet API on ", "");
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  if (daemon && daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    await new Promise((ok) => daemon.once("exit", ok));
  }
  await ollama?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const openPage = async (opts) => {
  const page = await browser.newPage({ viewport: { width: 420, height: 900 }, ...opts });
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
  page.problems = problems;
  return page;
};

for (const scheme of ["light", "dark"]) {
  test(`the dashboard renders the live snapshot (${scheme})`, async () => {
    const page = await openPage({ colorScheme: scheme });
    await page.goto(base + "/");
    const card = page.locator('[data-machine="macmini"]');
    await card.getByText("Primary model, heartbeats").waitFor();
    await page.locator("#conn", { hasText: "live" }).waitFor();
    const text = await card.innerText();
    assert.match(text, /Mac Mini/);
    assert.match(text, /this machine/);
    assert.match(text, /Primary model, heartbeats/);
    assert.match(text, /loaded 12\.9 GiB VRAM/);
    assert.match(text, /up · 0\.12\.6/);
    assert.match(text, /ollama\/gpt-oss:20b → ollama\/qwen3:8b → anthropic\/claude-sonnet-4-5/);
    // A legacy Clawdbot's card: its agents and heartbeat, from its JSONL.
    assert.match(text, /Clawdbot \(legacy\)/);
    assert.match(text, /agents 1 · 2 sessions/);
    // The chain against what the fleet serves now.
    assert.match(text, /ollama\/qwen3:8b · fallback\s*servable · macmini/);
    assert.match(text, /anthropic\/claude-sonnet-4-5 · fallback\s*cloud \(paid\)/);
    assert.match(text, /heartbeat last .* · every 30 min · ollama\/gpt-oss:20b · overdue/);
    await card.locator(".figure", { hasText: "CPU" }).getByText(/%$/).waitFor();
    // The sparkline is a uPlot canvas, fed by /fleet/v1/history and the stream.
    await card.locator(".spark canvas").waitFor();
    // Heal buttons sit next to what they heal.
    await card.locator('button[data-action="restart-ollama"]').waitFor();
    await card.locator('button[data-action="unload-model"][data-target="gpt-oss:20b"]').waitFor();
    await page.screenshot({ path: join(shots, `dashboard-fleet-${scheme}.png`), fullPage: true });
    const shown = { costs: ["#costs", "Month to date"], proxy: ["#proxy", "Requests/min"],
      events: ["#events", "\\S"], settings: ["#about", "macmini"] };
    for (const [tab, [where, what]] of Object.entries(shown)) {
      await page.locator(`#tabs a[data-tab="${tab}"]`).click();
      await page.locator(where, { hasText: new RegExp(what) }).waitFor();
      assert.equal(await page.locator("#tab-fleet").isHidden(), true);
      await page.screenshot({ path: join(shots, `dashboard-${tab}-${scheme}.png`), fullPage: true });
    }
    assert.deepEqual(page.problems, [], "no console errors (a CSP violation would show here)");
    await page.close();
  });
}

test("a heal button needs the token, then runs the action and its outcome reaches the events", async () => {
  const page = await openPage();
  await page.goto(base + "/");
  const card = page.locator('[data-machine="macmini"]');
  const unload = card.locator('button[data-action="unload-model"][data-target="gpt-oss:20b"]');
  await unload.click();
  await card.locator(".heal-result.bad", { hasText: "fleet token" }).waitFor();

  const secret = readFileSync(join(dir, "data", "fleet.token"), "utf8").trim();
  await page.goto(base + "/#settings");
  await page.locator("#token").fill(secret);
  await page.locator("#token-form button[type=submit]").click();
  await page.locator("#token-state", { hasText: "saved" }).waitFor();
  await page.goto(base + "/#fleet");
  const again = page.locator('[data-machine="macmini"] button[data-action="unload-model"][data-target="gpt-oss:20b"]');
  // A press held for 600 ms, across a live update as often as not: the
  // cards are rebuilt on every snapshot, and the rebuild waits for the
  // release, so the click is not lost. A row that comes and goes with this
  // machine's real state (zombies, reaped or not) can still move the button
  // between Playwright's aim and its press: then the press went elsewhere,
  // and it is made again.
  const started = page.locator('[data-machine="macmini"] :is(.heal-result.ok, button.busy)').first();
  for (let attempt = 1; ; attempt++) {
    await again.click({ delay: 600 });
    try {
      await started.waitFor({ timeout: 3000 });
      break;
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
  const result = page.locator('[data-machine="macmini"] .heal-result.ok', { hasText: "Unloaded gpt-oss:20b on Mac Mini" });
  await result.waitFor({ timeout: 20000 });
  // The probe saw it gone: no model is loaded any more.
  await page.locator('[data-machine="macmini"]', { hasText: "loaded 12.9 GiB VRAM" }).waitFor({ state: "detached", timeout: 15000 });
  await page.locator('#tabs a[data-tab="events"]').click();
  const outcome = page.locator("#events li.outcome.ok", { hasText: "Unloaded gpt-oss:20b" });
  await outcome.waitFor();
  assert.match(await outcome.innerText(), /by api 127\.0\.0\.1/);
  await page.locator("#events li", { hasText: "Unload gpt-oss:20b" }).first().waitFor();
  assert.deepEqual(page.problems.filter((p) => !/401/.test(p)), []);
  await page.close();
});

test("clean shows a dry-run preview and asks first; cancel removes nothing, confirm cleans", async () => {
  const page = await openPage();
  await page.addInitScript((t) => localStorage.setItem("clawfleet.token", t),
    readFileSync(join(dir, "data", "fleet.token"), "utf8").trim());
  await page.goto(base + "/");
  const button = page.locator('[data-machine="macmini"] button[data-action="clean"]');
  await button.click();
  const dialog = page.locator("#confirm");
  await dialog.locator("#confirm-body", { hasText: "2 files, 3.9 KiB" }).waitFor();
  await dialog.locator("button[value=cancel]").click();
  assert.equal(existsSync(join(dir, "cache", "a.bin")), true, "cancelled: nothing removed");
  await button.click();
  await dialog.locator("#confirm-body", { hasText: "2 files" }).waitFor();
  await dialog.locator("#confirm-ok").click();
  await page.locator('[data-machine="macmini"] .heal-result.ok', { hasText: "Cleaned" }).waitFor({ timeout: 20000 });
  assert.equal(existsSync(join(dir, "cache", "a.bin")), false);
  assert.equal(existsSync(join(dir, "cache", "young.bin")), true, "young files stay");
  await page.close();
});

test("settings change the healing mode at runtime", async () => {
  const page = await openPage();
  await page.addInitScript((t) => localStorage.setItem("clawfleet.token", t),
    readFileSync(join(dir, "data", "fleet.token"), "utf8").trim());
  await page.goto(base + "/#settings");
  await page.locator("#mode").selectOption("off");
  await page.locator("#mode-result", { hasText: "saved" }).waitFor();
  const status = await (await fetch(base + "/fleet/v1/heal")).json();
  assert.equal(status.mode, "off");
  await page.locator("#mode").selectOption("suggest");
  await page.locator("#mode-result", { hasText: "saved" }).waitFor();
  await page.locator('#tabs a[data-tab="fleet"]').click();
  await page.locator("#findings", { hasText: "self-healing: suggest" }).waitFor();
  await page.close();
});

test("a stopped Ollama turns the card red, live, without a reload, and back", async () => {
  const page = await openPage();
  await page.goto(base + "/");
  const card = page.locator('[data-machine="macmini"]');
  await card.getByText("Primary model, heartbeats").waitFor();
  await ollama.stop();
  await page.locator('[data-machine="macmini"][data-state="down"]').waitFor({ timeout: 15000 });
  await card.getByText(/nothing is listening at 127\.0\.0\.1/).waitFor({ timeout: 15000 });
  // Cards are rebuilt on every snapshot, so a handle to one can be detached
  // (and computes no style) by the time it is read: find the card and read
  // its edge in one synchronous run of the page's script.
  const { border, red } = await page.evaluate(() => {
    const node = document.querySelector('[data-machine="macmini"]');
    const probe = document.createElement("i");
    probe.className = "bad";
    document.body.append(probe);
    const colors = { border: getComputedStyle(node).borderLeftColor, red: getComputedStyle(probe).color };
    probe.remove();
    return colors;
  });
  assert.equal(border, red, "the card's edge is the page's red");
  await page.locator("#fleet-state[data-state=down]").waitFor();
  // Why, in one line: on the card and in the header.
  await card.locator("p.why", { hasText: "Ollama is down" }).waitFor();
  await page.locator("#fleet-why", { hasText: "Mac Mini: Ollama is down" }).waitFor();
  await ollama.start();
  await page.locator('[data-machine="macmini"]:not([data-state="down"])').waitFor({ timeout: 15000 });
  await page.close();
});

test("the page refuses to be framed and sets a strict CSP", async () => {
  const res = await fetch(base + "/");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^text\/html/);
  assert.match(res.headers.get("content-security-policy"), /script-src 'self'/);
  assert.match(res.headers.get("content-security-policy"), /frame-ancestors 'none'/);
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  const js = await fetch(base + "/assets/app.js");
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
  assert.equal(js.headers.get("x-content-type-options"), "nosniff");
});
