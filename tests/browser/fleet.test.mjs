// The fleet in the dashboard, in a real headless Chromium: two real
// `clawfleet serve` instances with the same fleet token, "macbook" (whose
// page we open) polling "macmini" (whose Ollama is a fake speaking Ollama's
// documented JSON). The peer's card shows its figures and that it is fresh;
// a heal button on it runs the action on the peer, and its outcome shows
// next to the button and in this machine's events; stopping the peer turns
// its card stale, then offline, live. Screenshot in target/screenshots/.
// Run by `cargo xtask test` (node --test) after the Rust tests built the binary.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
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
const TOKEN = "browser-fleet-token-0123456789abcdef";

const model = { name: "gpt-oss:20b", model: "gpt-oss:20b", modified_at: "2026-11-01T10:00:00Z", size: 13780173724,
  digest: "sha256:0", details: { parent_model: "", format: "gguf", family: "gptoss", families: ["gptoss"],
    parameter_size: "20.9B", quantization_level: "MXFP4" } };

function fakeOllama() {
  const server = createServer((req, res) => {
    const answer = { "/api/version": { version: "0.12.6" }, "/api/tags": { models: [model] },
      "/api/ps": { models: [] } }[req.url];
    res.writeHead(answer ? 200 : 404, { "Content-Type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(answer || { error: "not found" }));
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

const freePort = () => new Promise((ok) => {
  const s = createNetServer();
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
});

let dir, ollama, browser, macbookPort, macminiPort;
let ollamaClosed = false;
async function closeOllama() {
  if (!ollama || ollamaClosed) return;
  ollamaClosed = true;
  await new Promise((ok) => { ollama.close(ok); ollama.closeAllConnections(); });
}
const daemons = {};

function config(me) {
  const port = me === "macbook" ? macbookPort : macminiPort;
  return `this_machine = "${me}"
data_dir = ${JSON.stringify(join(dir, me))}
[api]
listen = "127.0.0.1:${port}"
[proxy]
listen = "127.0.0.1:0"
[probes]
system_interval_secs = 1
ollama_interval_secs = 1
timeout_ms = 500
[clawdbot]
config_path = ${JSON.stringify(join(dir, "none.json"))}
[costs]
read_transcripts = false
[heal]
mode = "off"
verify_secs = 10
[heal.commands]
"restart-ollama" = [["true"]]
[fleet]
poll_interval_secs = 1
poll_timeout_ms = 800
offline_after_secs = 4
[[machines]]
id = "macbook"
name = "MacBook Pro"
fleet_url = "http://127.0.0.1:${macbookPort}"
[[machines]]
id = "macmini"
name = "Mac Mini"
ollama_url = "http://127.0.0.1:${ollama.address().port}"
fleet_url = "http://127.0.0.1:${macminiPort}"
`;
}

async function startDaemon(me) {
  mkdirSync(join(dir, me), { recursive: true });
  writeFileSync(join(dir, me, "fleet.token"), TOKEN + "\n", { mode: 0o600 });
  const file = join(dir, `${me}.toml`);
  writeFileSync(file, config(me));
  const d = spawn(bin, ["--config", file, "serve"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((ok, fail) => {
    createInterface({ input: d.stdout }).once("line", ok);
    d.once("exit", (code) => fail(new Error(`clawfleet (${me}) exited with ${code}`)));
  });
  daemons[me] = d;
}

async function stopDaemon(me) {
  const d = daemons[me];
  if (d && d.exitCode === null) {
    d.kill("SIGTERM");
    await new Promise((ok) => d.once("exit", ok));
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "clawfleet-browser-fleet-"));
  mkdirSync(shots, { recursive: true });
  ollama = await fakeOllama();
  macbookPort = await freePort();
  macminiPort = await freePort();
  await startDaemon("macmini");
  await startDaemon("macbook");
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  await stopDaemon("macbook");
  await stopDaemon("macmini");
  await closeOllama();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the Costs tab adds the peer's own figures to the fleet's, live", async () => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  // Opened before the peer's figures may have arrived: the tab fetches the
  // costs again when they do, without a reload.
  await page.goto(`http://127.0.0.1:${macbookPort}/#costs`);
  await page.locator("#costs", { hasText: "2 of 2 machines reporting" }).waitFor({ timeout: 20000 });
  const row = page.locator('[data-cost-machine="macmini"]');
  await row.waitFor();
  const cells = await row.locator("td").allTextContents();
  assert.equal(cells[0], "Mac Mini");
  assert.match(cells[2], /^\$0\.00$/, `the peer's month to date: ${cells}`);
  assert.match(await row.getAttribute("title"), /^as Mac Mini computed it at /);
  await page.close();
});

test("a peer's card: its figures, fresh; a heal runs on it; stopped, it goes stale then offline", async () => {
  const page = await browser.newPage({ viewport: { width: 420, height: 1000 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.goto(`http://127.0.0.1:${macbookPort}/`);
  // The token, saved once in this browser (and as the cookie its streams carry).
  await page.locator('#tabs a[data-tab="settings"]').click();
  await page.fill("#token", TOKEN);
  await Promise.all([page.waitForEvent("load"), page.click('#token-form button[type="submit"]')]);
  assert.match(await page.evaluate(() => document.cookie), /clawfleet_token=/);
  await page.locator('#tabs a[data-tab="fleet"]').click();

  const card = page.locator('[data-machine="macmini"]');
  await card.locator('.peer-line[data-peer-state="fresh"]').waitFor({ timeout: 30000 });
  const text = await card.innerText();
  assert.match(text, /Mac Mini/);
  assert.match(text, /last seen/);
  await card.locator(".figure", { hasText: "CPU" }).getByText(/%$/).waitFor();
  // Heal on the peer: its own API runs it, and says so here.
  await page.evaluate(() => {
    const b = document.querySelector('[data-machine="macmini"] button[data-action="restart-ollama"]');
    b.click();
  });
  const result = card.locator(".heal-result.ok");
  await result.waitFor({ timeout: 60000 });
  assert.match(await result.innerText(), /Ollama/);
  await page.locator('#tabs a[data-tab="events"]').click();
  await page.locator("#events .event.outcome.ok", { hasText: /Ollama/ }).waitFor();
  await page.locator("#events .event.action_started", { hasText: "Asked Mac Mini to restart Ollama" }).waitFor();
  await page.locator('#tabs a[data-tab="fleet"]').click();
  await page.screenshot({ path: join(shots, "dashboard-fleet-peer.png"), fullPage: true });

  // The machine goes away (ClawFleet and its Ollama): stale (its last data
  // still shown), then offline and down.
  await stopDaemon("macmini");
  await closeOllama();
  await card.locator('.peer-line[data-peer-state="stale"]').waitFor({ timeout: 20000 });
  assert.match(await card.innerText(), /%/, "the last figures stay while stale");
  await card.locator('.peer-line[data-peer-state="offline"]').waitFor({ timeout: 20000 });
  assert.equal(await card.getAttribute("data-state"), "down");
  assert.deepEqual(problems, []);
});
