// The built-in status page in a real headless Chromium, against a real
// `clawfleet serve` whose Ollama is a fake speaking Ollama's documented JSON.
// Run by `cargo xtask test` (node --test) after the Rust tests built the binary.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
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

function startFakeOllama() {
  const sockets = new Set();
  const server = createServer((req, res) => {
    const body = { "/api/version": { version: "0.12.6" }, "/api/tags": TAGS, "/api/ps": PS }[req.url];
    if (!body) { res.writeHead(404, { "Content-Type": "application/json" }); res.end('{"error":"not found"}'); return; }
    res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(body));
  });
  server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok({
    port: server.address().port,
    stop: () => new Promise((done) => { server.close(done); for (const s of sockets) s.destroy(); }),
  })));
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
  agents: { defaults: { model: { primary: "ollama/gpt-oss:20b", fallbacks: ["ollama/qwen3:8b", "anthropic/claude-sonnet-4-5",] } } },
}`);
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

for (const scheme of ["light", "dark"]) {
  test(`the page renders the live snapshot (${scheme})`, async () => {
    const page = await browser.newPage({ colorScheme: scheme, viewport: { width: 420, height: 900 } });
    const problems = [];
    page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
    page.on("pageerror", (e) => problems.push(String(e)));
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
    await card.locator(".figure", { hasText: "CPU" }).getByText(/%$/).waitFor();
    await page.screenshot({ path: join(shots, `status-page-${scheme}.png`), fullPage: true });
    assert.deepEqual(problems, [], "no console errors (a CSP violation would show here)");
    await page.close();
  });
}

test("a stopped Ollama turns the card red, live, without a reload", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/");
  const card = page.locator('[data-machine="macmini"]');
  await card.getByText("Primary model, heartbeats").waitFor();
  await ollama.stop();
  await card.getByText(/nothing is listening at 127\.0\.0\.1/).waitFor({ timeout: 15000 });
  const down = card.locator("span.bad", { hasText: "down" });
  assert.equal(await down.count() >= 1, true);
  await page.close();
});

test("the page refuses to be framed and sets a strict CSP", async () => {
  const res = await fetch(base + "/");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^text\/html/);
  assert.match(res.headers.get("content-security-policy"), /script-src 'self'/);
  assert.match(res.headers.get("content-security-policy"), /frame-ancestors 'none'/);
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  const js = await fetch(base + "/assets/status.js");
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
  assert.equal(js.headers.get("x-content-type-options"), "nosniff");
});
