// The inference proxy driven by the official clients, as real callers would:
// the OpenAI JS SDK 6.x exactly as Clawdbot uses it (baseURL = proxy + "/v1",
// apiKey "ollama", streaming with include_usage, developer role, array
// content, tools), and the official ollama-js client. Behind the proxy, a
// real `clawfleet serve` and a fake Ollama in this file that speaks Ollama's
// documented formats (docs/api.md and docs/openai.md of ollama/ollama; see
// shared/interop/model-apis.md). Run by `cargo xtask test` (node --test).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import OpenAI from "openai";
import { Ollama } from "ollama";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const bin = process.env.CLAWFLEET_BIN || join(root, "target/debug/clawfleet");

// ---------------------------------------------------------------------------
// The fake Ollama.

const CHAT_MODEL = "gpt-oss:20b";
const EMBED_MODEL = "nomic-embed-text:latest";
const REPLY = "Hello from the fleet, said the Mac Mini";
const DIMS = 8;

const details = (family, params, quant) => ({
  parent_model: "", format: "gguf", family, families: [family], parameter_size: params, quantization_level: quant,
});
const INSTALLED = [
  { name: CHAT_MODEL, model: CHAT_MODEL, modified_at: "2026-11-01T10:00:00.123456789-07:00", size: 13780173724,
    digest: "aa4295ac10c3afb60e6d711289fc6896f5aef82258997b9efdaed6d0cc4cd8b8", details: details("gptoss", "20.9B", "MXFP4") },
  { name: EMBED_MODEL, model: EMBED_MODEL, modified_at: "2026-10-02T08:00:00-07:00", size: 274302450,
    digest: "0a109f422b47e3a30ba2b10eca18548e944e8a23073ee3f3e947efcf3c45e59f", details: details("nomic-bert", "137M", "F16") },
];
const LOADED = [{ ...INSTALLED[0], expires_at: "2099-01-01T00:00:00Z", size: 14100000000, size_vram: 13900000000 }];

const canon = (name) => String(name).replace(/:latest$/, "");
const installed = (name) => INSTALLED.find((m) => canon(m.name) === canon(name));

/** A rough tokenizer: about four characters a token, as for English. */
const tokens = (text) => Math.max(1, Math.ceil(text.length / 4));
/** The text of a message's content: a string or an array of parts. */
const textOf = (content) => typeof content === "string" ? content
  : Array.isArray(content) ? content.map((p) => p?.text ?? "").join("") : "";
/** The reply cut into streamed pieces: each word with the space before it. */
const pieces = (reply) => reply.split(" ").map((w, i) => (i === 0 ? w : " " + w));

function startFakeOllama() {
  const state = {
    counts: new Map(), // path → requests received
    requests: [], // { method, path, body }
    fail: null, // { status, message } for every POST inference path
    cutAfter: null, // streamed answers: cut the connection after this many chunks
    reported: new Map(), // canonical model → { input, output } the fake reported as usage
    lastUsage: null, // { prompt_eval_count, eval_count } of the last answer
    sockets: new Set(),
  };
  const report = (model, input, output) => {
    const key = canon(model);
    const sum = state.reported.get(key) ?? { input: 0, output: 0 };
    sum.input += input;
    sum.output += output;
    state.reported.set(key, sum);
    state.lastUsage = { prompt_eval_count: input, eval_count: output };
  };
  const json = (res, status, body) => {
    res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(body));
  };
  const ollamaError = (res, status, message) => json(res, status, { error: message });
  const openaiError = (res, status, message, type = "api_error") =>
    json(res, status, { error: { message, type, param: null, code: null } });
  // Writes chunks one by one (a real stream, not one buffer), or cuts the
  // connection after `cutAfter` of them, as a crashed runner would.
  const stream = async (res, contentType, chunks) => {
    res.writeHead(200, { "Content-Type": contentType });
    for (const [i, chunk] of chunks.entries()) {
      if (state.cutAfter !== null && i === state.cutAfter) {
        await new Promise((ok) => setTimeout(ok, 20));
        res.socket.destroy();
        return;
      }
      res.write(chunk);
      await new Promise((ok) => setImmediate(ok));
    }
    res.end();
  };
  const durations = (input, output) => ({
    total_duration: 4883583458, load_duration: 1334875,
    prompt_eval_count: input, prompt_eval_duration: 342546000 + input,
    eval_count: output, eval_duration: 4535599000 + output,
  });

  const routes = {
    "GET /": (req, res) => { res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" }); res.end("Ollama is running"); },
    "GET /api/version": (req, res) => json(res, 200, { version: "0.12.6" }),
    "GET /api/tags": (req, res) => json(res, 200, { models: INSTALLED }),
    "GET /api/ps": (req, res) => json(res, 200, { models: LOADED }),
    "GET /v1/models": (req, res) => json(res, 200, {
      object: "list",
      data: INSTALLED.map((m) => ({ id: m.name, object: "model", created: 1762016400, owned_by: "library" })),
    }),

    "POST /api/show": (req, res, body) => {
      const m = installed(body.model ?? body.name ?? "");
      if (!m) return ollamaError(res, 404, `model '${body.model}' not found`);
      json(res, 200, {
        modelfile: `# Modelfile generated by "ollama show"\nFROM ${m.name}\n`,
        parameters: "temperature 1",
        template: "{{ .Prompt }}",
        details: m.details,
        model_info: { "general.architecture": m.details.family, "general.parameter_count": 20914757184 },
        capabilities: m === INSTALLED[0] ? ["completion", "tools", "thinking"] : ["embedding"],
        modified_at: m.modified_at,
      });
    },

    "POST /api/chat": (req, res, body) => native(res, body, "chat"),
    "POST /api/generate": (req, res, body) => native(res, body, "generate"),

    "POST /api/embed": (req, res, body) => {
      if (!installed(body.model ?? "")) return ollamaError(res, 404, `model "${body.model}" not found, try pulling it first`);
      const inputs = Array.isArray(body.input) ? body.input : [body.input ?? ""];
      const input = inputs.reduce((n, s) => n + tokens(String(s)), 0);
      report(body.model, input, 0);
      json(res, 200, {
        model: body.model,
        embeddings: inputs.map((s, i) => vector(String(s), i)),
        total_duration: 14143917, load_duration: 1019500, prompt_eval_count: input,
      });
    },

    "POST /v1/chat/completions": (req, res, body) => {
      if (!installed(body.model ?? "")) return openaiError(res, 404, `model "${body.model}" not found, try pulling it first`, "not_found_error");
      const messages = body.messages ?? [];
      const input = messages.reduce((n, m) => n + tokens(textOf(m.content)), 0);
      const lastUser = textOf([...messages].reverse().find((m) => m.role === "user")?.content);
      const wantsTool = Array.isArray(body.tools) && body.tools.length > 0 && /weather/i.test(lastUser);
      const id = `chatcmpl-${state.requests.length}`;
      const created = Math.floor(Date.now() / 1000);
      const base = { id, created, model: body.model, system_fingerprint: "fp_ollama" };
      const toolCall = { id: "call_k3jd9", index: 0, type: "function",
        function: { name: body.tools?.[0]?.function?.name, arguments: JSON.stringify({ city: "Lisbon" }) } };
      const parts = wantsTool ? [] : pieces(REPLY);
      const output = wantsTool ? 12 : parts.length;
      const usage = { prompt_tokens: input, completion_tokens: output, total_tokens: input + output };
      const finish = wantsTool ? "tool_calls" : "stop";
      if (body.stream !== true) {
        report(body.model, input, output);
        const message = wantsTool
          ? { role: "assistant", content: "", tool_calls: [toolCall] }
          : { role: "assistant", content: parts.join("") };
        return json(res, 200, { ...base, object: "chat.completion", choices: [{ index: 0, message, finish_reason: finish }], usage });
      }
      const chunk = (delta, finishReason) => `data: ${JSON.stringify({
        ...base, object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finishReason }],
      })}\n\n`;
      const events = wantsTool
        ? [chunk({ role: "assistant", content: "", tool_calls: [toolCall] }, null)]
        : parts.map((p) => chunk({ role: "assistant", content: p }, null));
      events.push(chunk({ role: "assistant", content: "" }, finish));
      if (body.stream_options?.include_usage === true) {
        events.push(`data: ${JSON.stringify({ ...base, object: "chat.completion.chunk", choices: [], usage })}\n\n`);
        if (state.cutAfter === null) report(body.model, input, output);
      }
      events.push("data: [DONE]\n\n");
      return stream(res, "text/event-stream", events);
    },

    "POST /v1/embeddings": (req, res, body) => {
      if (!installed(body.model ?? "")) return openaiError(res, 404, `model "${body.model}" not found, try pulling it first`, "not_found_error");
      const inputs = Array.isArray(body.input) ? body.input : [body.input ?? ""];
      const input = inputs.reduce((n, s) => n + tokens(String(s)), 0);
      report(body.model, input, 0);
      json(res, 200, {
        object: "list",
        data: inputs.map((s, index) => {
          const v = vector(String(s), index);
          const embedding = body.encoding_format === "base64"
            ? Buffer.from(new Float32Array(v).buffer).toString("base64")
            : v;
          return { object: "embedding", embedding, index };
        }),
        model: body.model,
        usage: { prompt_tokens: input, total_tokens: input },
      });
    },
  };

  // `/api/chat` and `/api/generate`: NDJSON unless `"stream": false`.
  function native(res, body, kind) {
    if (!installed(body.model ?? "")) return ollamaError(res, 404, `model "${body.model}" not found, try pulling it first`);
    const created_at = () => new Date().toISOString();
    const prompt = kind === "chat" ? (body.messages ?? []).map((m) => textOf(m.content)).join("\n") : String(body.prompt ?? "");
    const parts = pieces(REPLY);
    const input = tokens(prompt);
    const output = parts.length;
    const piece = (content) => kind === "chat"
      ? { model: body.model, created_at: created_at(), message: { role: "assistant", content }, done: false }
      : { model: body.model, created_at: created_at(), response: content, done: false };
    const final = (content) => ({
      ...piece(content), done: true, done_reason: "stop",
      ...(kind === "generate" ? { context: [1, 2, 3] } : {}),
      ...durations(input, output),
    });
    if (body.stream === false) {
      report(body.model, input, output);
      return json(res, 200, final(parts.join("")));
    }
    if (state.cutAfter === null) report(body.model, input, output);
    const lines = parts.map((p) => JSON.stringify(piece(p)) + "\n");
    lines.push(JSON.stringify(final("")) + "\n");
    return stream(res, "application/x-ndjson", lines);
  }

  // A deterministic unit-ish vector per text.
  function vector(text, salt) {
    const v = [];
    for (let i = 0; i < DIMS; i++) v.push(((text.charCodeAt(i % Math.max(1, text.length)) || 1) * (i + 1 + salt)) % 97 / 97);
    return v;
  }

  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const path = new URL(req.url, "http://x").pathname;
      const raw = Buffer.concat(chunks).toString("utf8");
      let body = {};
      if (req.method === "POST") {
        try { body = raw ? JSON.parse(raw) : {}; } catch (e) {
          return path.startsWith("/v1/") ? openaiError(res, 400, `invalid JSON: ${e.message}`, "invalid_request_error")
            : ollamaError(res, 400, `invalid JSON: ${e.message}`);
        }
      }
      state.counts.set(path, (state.counts.get(path) ?? 0) + 1);
      state.requests.push({ method: req.method, path, body, headers: req.headers });
      if (req.method === "POST" && state.fail) {
        return path.startsWith("/v1/") ? openaiError(res, state.fail.status, state.fail.message)
          : ollamaError(res, state.fail.status, state.fail.message);
      }
      const route = routes[`${req.method} ${path}`];
      if (!route) { res.writeHead(404, { "Content-Type": "text/plain" }); res.end("404 page not found"); return; }
      Promise.resolve(route(req, res, body)).catch((e) => { res.destroy(e); });
    });
  });
  server.on("connection", (s) => { state.sockets.add(s); s.on("close", () => state.sockets.delete(s)); });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok({
    port: server.address().port,
    state,
    count: (path) => state.counts.get(path) ?? 0,
    last: (path) => [...state.requests].reverse().find((r) => r.path === path),
    /** POSTs to the inference paths: each proxied request reaches the fake once. */
    inferencePosts: () => state.requests.filter((r) => r.method === "POST").length,
    stop: () => new Promise((done) => { server.close(done); for (const s of state.sockets) s.destroy(); }),
  })));
}

// ---------------------------------------------------------------------------
// The daemon.

let dir, fake, daemon, api, proxy, openai, ollama;

/** Reads `clawfleet: ... on http://ADDR` lines from the daemon's stdout. */
function addresses(child) {
  return new Promise((ok, fail) => {
    const lines = [];
    const rl = createInterface({ input: child.stdout });
    rl.on("line", (line) => {
      lines.push(line.trim());
      if (lines.length === 2) { rl.close(); ok(lines); }
    });
    child.once("exit", (code) => fail(new Error(`clawfleet exited with ${code} after ${JSON.stringify(lines)}`)));
  });
}

async function waitFor(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) { last = e; }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`${what}: not within ${ms} ms (last: ${last})`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "clawfleet-clients-"));
  fake = await startFakeOllama();
  const config = join(dir, "config.toml");
  writeFileSync(config, `this_machine = "macmini"
data_dir = ${JSON.stringify(join(dir, "data"))}
[api]
listen = "127.0.0.1:0"
[proxy]
listen = "127.0.0.1:0"
connect_timeout_ms = 1000
first_byte_timeout_secs = 10
[probes]
system_interval_secs = 5
ollama_interval_secs = 1
services_interval_secs = 3600
pm2_interval_secs = 3600
openclaw_interval_secs = 3600
timeout_ms = 1000
[clawdbot]
config_path = ${JSON.stringify(join(dir, "no-clawdbot.json"))}
[[machines]]
id = "macmini"
name = "Mac Mini"
role = "central brain"
ollama_url = "http://127.0.0.1:${fake.port}"
`);
  daemon = spawn(bin, ["--config", config, "serve"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, CLAWFLEET_LOG: process.env.CLAWFLEET_LOG ?? "warn" },
  });
  const [apiLine, proxyLine] = await addresses(daemon);
  api = apiLine.replace("clawfleet: fleet API on ", "");
  proxy = proxyLine.replace("clawfleet: inference proxy on ", "");
  assert.match(api, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(proxy, /^http:\/\/127\.0\.0\.1:\d+$/);
  // Routed only once the health poll has seen the model.
  await waitFor("the proxy lists the fake's model", async () => {
    const tags = await (await fetch(proxy + "/api/tags")).json();
    return tags.models?.some((m) => m.name === CHAT_MODEL);
  });
  // Exactly as Clawdbot builds its client for an `openai-completions`
  // provider whose baseUrl is the Ollama host's /v1.
  openai = new OpenAI({ baseURL: proxy + "/v1", apiKey: "ollama" });
  ollama = new Ollama({ host: proxy });
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    await new Promise((ok) => daemon.once("exit", ok));
  }
  await fake?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What Clawdbot 2026.1 sends (shared/interop/clawdbot.md), streamed. */
const clawdbotTurn = (text, extra = {}) => ({
  model: CHAT_MODEL,
  messages: [
    { role: "developer", content: "You are Clawd, a helpful assistant." },
    { role: "user", content: [{ type: "text", text }] },
  ],
  stream: true,
  stream_options: { include_usage: true },
  store: false,
  max_completion_tokens: 512,
  tools: [{
    type: "function",
    function: {
      name: "get_weather", description: "Current weather for a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  }],
  ...extra,
});

// ---------------------------------------------------------------------------
// OpenAI SDK, as Clawdbot.

test("openai: a Clawdbot turn streams the reply and ends with the usage chunk", async () => {
  const stream = await openai.chat.completions.create(clawdbotTurn("hi there, who are you?"));
  let content = "";
  const usages = [];
  let finish = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usages.push(chunk);
    for (const choice of chunk.choices) {
      content += choice.delta?.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.equal(content, REPLY);
  assert.equal(finish, "stop");
  assert.ok(chunks > pieces(REPLY).length, "streamed piece by piece");
  assert.equal(usages.length, 1, "exactly one usage chunk");
  assert.deepEqual(usages[0].choices, [], "the usage chunk has choices: []");
  const sent = fake.last("/v1/chat/completions");
  assert.equal(usages[0].usage.prompt_tokens, fake.state.lastUsage.prompt_eval_count);
  assert.equal(usages[0].usage.completion_tokens, fake.state.lastUsage.eval_count);
  assert.equal(usages[0].usage.total_tokens, fake.state.lastUsage.prompt_eval_count + fake.state.lastUsage.eval_count);
  // The body reached Ollama as Clawdbot wrote it.
  assert.equal(sent.body.messages[0].role, "developer");
  assert.deepEqual(sent.body.messages[1].content, [{ type: "text", text: "hi there, who are you?" }]);
  assert.equal(sent.body.max_completion_tokens, 512);
  assert.equal(sent.body.store, false);
  assert.equal(sent.body.tools[0].function.name, "get_weather");
  assert.deepEqual(sent.body.stream_options, { include_usage: true });
  // The SDK's own headers went through the proxy's Host/Origin guard.
  assert.match(sent.headers["content-type"], /^application\/json/);
});

test("openai: a streamed tool call reaches the SDK as delta.tool_calls", async () => {
  const stream = await openai.chat.completions.create(clawdbotTurn("what's the weather in Lisbon?"));
  const calls = [];
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    usage = chunk.usage ?? usage;
    for (const choice of chunk.choices) {
      calls.push(...(choice.delta?.tool_calls ?? []));
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.equal(finish, "tool_calls");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, "get_weather");
  assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: "Lisbon" });
  assert.equal(usage.completion_tokens, 12);
});

test("openai: the tool result round trip reaches Ollama as Clawdbot sent it", async () => {
  const turn = clawdbotTurn("thanks; and what should I wear?");
  turn.messages.splice(1, 0,
    { role: "user", content: [{ type: "text", text: "what's the weather in Lisbon?" }] },
    { role: "assistant", content: null, tool_calls: [{ id: "call_k3jd9", type: "function",
      function: { name: "get_weather", arguments: "{\"city\":\"Lisbon\"}" } }] },
    { role: "tool", tool_call_id: "call_k3jd9", content: "18 °C, light rain" },
  );
  let content = "";
  for await (const chunk of await openai.chat.completions.create(turn)) content += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(content, REPLY);
  const sent = fake.last("/v1/chat/completions").body;
  assert.deepEqual(sent.messages, turn.messages, "history passed through unchanged, null content and all");
});

test("openai: a Clawdbot-sized turn (a 24 KB system prompt, 20 tools, long history) passes whole", async () => {
  const system = "You are Clawd. " + "Follow the house rules carefully. ".repeat(720);
  const tools = Array.from({ length: 20 }, (_, i) => ({
    type: "function",
    function: { name: `tool_${i}`, description: "Does one thing well. ".repeat(20),
      parameters: { type: "object", properties: { arg: { type: "string", description: "é 日本 🦀" } } } },
  }));
  const history = Array.from({ length: 40 }, (_, i) => ({
    role: i % 2 ? "assistant" : "user",
    content: i % 2 ? `Answer ${i}: ` + "words ".repeat(60) : [{ type: "text", text: `Question ${i}: ` + "why ".repeat(60) }],
  }));
  const turn = clawdbotTurn("and finally?", { tools });
  turn.messages = [{ role: "developer", content: system }, ...history, { role: "user", content: [{ type: "text", text: "and finally?" }] }];
  assert.ok(JSON.stringify(turn).length > 45000, `${JSON.stringify(turn).length} bytes`);
  let content = "";
  let usage;
  for await (const chunk of await openai.chat.completions.create(turn)) {
    content += chunk.choices[0]?.delta?.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.equal(content, REPLY);
  const sent = fake.last("/v1/chat/completions").body;
  assert.deepEqual(sent.messages, turn.messages);
  assert.deepEqual(sent.tools, tools);
  assert.equal(usage.prompt_tokens, fake.state.lastUsage.prompt_eval_count);
  assert.ok(usage.prompt_tokens > 5000);
});

test("openai: streaming without include_usage shows no usage chunk, yet the proxy asked for one", async () => {
  const stream = await openai.chat.completions.create({
    model: CHAT_MODEL,
    messages: [{ role: "user", content: "count to three" }],
    stream: true,
  });
  let content = "";
  const seen = [];
  for await (const chunk of stream) {
    seen.push(chunk);
    content += chunk.choices[0]?.delta?.content ?? "";
  }
  assert.equal(content, REPLY);
  assert.ok(seen.every((c) => c.usage === undefined || c.usage === null), "no chunk carries usage");
  assert.ok(seen.every((c) => c.choices.length === 1), "no chunk has choices: []");
  // Upstream was asked, so the ledger gets the tokens (checked at the end).
  assert.equal(fake.last("/v1/chat/completions").body.stream_options?.include_usage, true);
});

test("openai: a non-streaming completion returns the message and usage", async () => {
  const completion = await openai.chat.completions.create({
    model: CHAT_MODEL,
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "say hello" }],
    max_completion_tokens: 64,
  });
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.choices[0].message.content, REPLY);
  assert.equal(completion.choices[0].finish_reason, "stop");
  assert.equal(completion.usage.prompt_tokens, fake.state.lastUsage.prompt_eval_count);
  assert.equal(completion.usage.completion_tokens, fake.state.lastUsage.eval_count);
  assert.equal(fake.last("/v1/chat/completions").body.stream, undefined, "stream not added by the proxy");
});

test("openai: withResponse shows which machine served", async () => {
  const { data, response } = await openai.chat.completions
    .create({ model: CHAT_MODEL, messages: [{ role: "user", content: "hi" }] })
    .withResponse();
  assert.equal(data.choices[0].message.content, REPLY);
  assert.equal(response.headers.get("x-clawfleet-machine"), "macmini");
});

test("openai: models.list() is the fleet's models, plain and pinned", async () => {
  const ids = [];
  for await (const model of openai.models.list()) ids.push(model.id);
  assert.ok(ids.includes(CHAT_MODEL), ids.join(", "));
  assert.ok(ids.includes(EMBED_MODEL), ids.join(", "));
  assert.ok(ids.includes(`macmini/${CHAT_MODEL}`), ids.join(", "));
  const one = await openai.models.retrieve(CHAT_MODEL);
  assert.equal(one.id, CHAT_MODEL);
  assert.equal(one.owned_by, "macmini");
});

test("openai: embeddings, in the SDK's default base64 and as floats", async () => {
  const input = ["The sky is blue", "because of Rayleigh scattering"];
  const b64 = await openai.embeddings.create({ model: "nomic-embed-text", input });
  assert.equal(fake.last("/v1/embeddings").body.encoding_format, "base64", "the SDK asks for base64");
  assert.equal(b64.data.length, 2);
  assert.equal(b64.data[0].embedding.length, DIMS, "decoded to floats by the SDK");
  assert.equal(b64.usage.prompt_tokens, fake.state.lastUsage.prompt_eval_count);
  const floats = await openai.embeddings.create({ model: "nomic-embed-text", input, encoding_format: "float" });
  assert.equal(floats.data.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.equal(floats.data[i].index, i);
    // Float32 round trip: the same vector both ways.
    floats.data[i].embedding.forEach((x, j) => assert.ok(Math.abs(x - b64.data[i].embedding[j]) < 1e-6));
  }
});

test("openai: an unknown model is a 404 NotFoundError naming what exists, not retried", async () => {
  const before = fake.inferencePosts();
  await assert.rejects(
    openai.chat.completions.create({ model: "llama9:70b", messages: [{ role: "user", content: "hi" }] }),
    (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.status, 404);
      assert.match(err.message, /llama9:70b/);
      assert.match(err.message, /gpt-oss:20b/);
      return true;
    },
  );
  assert.equal(fake.inferencePosts(), before, "no machine was asked");
});

test("openai: a stream cut mid-way reaches the SDK as an error, not a short answer", async () => {
  fake.state.cutAfter = 3;
  try {
    const stream = await openai.chat.completions.create(clawdbotTurn("tell me a story"));
    let content = "";
    await assert.rejects(
      (async () => { for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? ""; })(),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, String(err));
        assert.match(err.message, /broke off/);
        return true;
      },
    );
    assert.equal(content, pieces(REPLY).slice(0, 3).join(""), "what came before the cut was delivered");
  } finally {
    fake.state.cutAfter = null;
  }
});

// ---------------------------------------------------------------------------
// The official Ollama client.

test("ollama: chat streams NDJSON to the client, the last chunk with the counts", async () => {
  const parts = await ollama.chat({
    model: CHAT_MODEL,
    messages: [{ role: "user", content: "Why is the sky blue?" }],
    stream: true,
  });
  let content = "";
  let last;
  let n = 0;
  for await (const part of parts) {
    content += part.message.content;
    last = part;
    n++;
  }
  assert.equal(content, REPLY);
  assert.equal(n, pieces(REPLY).length + 1);
  assert.equal(last.done, true);
  assert.equal(last.done_reason, "stop");
  assert.equal(last.prompt_eval_count, fake.state.lastUsage.prompt_eval_count);
  assert.equal(last.eval_count, fake.state.lastUsage.eval_count);
  assert.equal(last.total_duration, 4883583458);
  assert.ok(last.eval_duration > 0 && last.prompt_eval_duration > 0 && last.load_duration > 0);
});

test("ollama: chat without streaming", async () => {
  const r = await ollama.chat({ model: CHAT_MODEL, messages: [{ role: "user", content: "hello" }], stream: false });
  assert.equal(r.message.role, "assistant");
  assert.equal(r.message.content, REPLY);
  assert.equal(r.done, true);
  assert.equal(r.eval_count, pieces(REPLY).length);
  assert.equal(fake.last("/api/chat").body.stream, false);
});

test("ollama: generate, streamed and not", async () => {
  const r = await ollama.generate({ model: CHAT_MODEL, prompt: "Why is the sky blue?" });
  assert.equal(r.response, REPLY);
  assert.equal(r.done, true);
  assert.deepEqual(r.context, [1, 2, 3]);
  assert.equal(r.prompt_eval_count, fake.state.lastUsage.prompt_eval_count);
  let text = "";
  let last;
  for await (const part of await ollama.generate({ model: CHAT_MODEL, prompt: "again", stream: true })) {
    text += part.response;
    last = part;
  }
  assert.equal(text, REPLY);
  assert.equal(last.eval_count, pieces(REPLY).length);
});

test("ollama: embed, routed by the model's short name", async () => {
  const r = await ollama.embed({ model: "nomic-embed-text", input: ["first text", "second text"] });
  assert.equal(r.embeddings.length, 2);
  assert.equal(r.embeddings[0].length, DIMS);
  assert.equal(r.prompt_eval_count, fake.state.lastUsage.prompt_eval_count);
  assert.equal(fake.last("/api/embed").body.model, EMBED_MODEL, "sent upstream as the machine spells it");
});

test("ollama: list is the merged tags, each model with its machines", async () => {
  const { models } = await ollama.list();
  const plain = models.find((m) => m.name === CHAT_MODEL);
  assert.ok(plain, JSON.stringify(models));
  assert.deepEqual(plain.machines, ["macmini"]);
  assert.equal(plain.size, INSTALLED[0].size);
  assert.equal(plain.details.family, "gptoss");
  assert.equal(plain.details.parameter_size, "20.9B");
  assert.equal(plain.details.quantization_level, "MXFP4");
  const pinned = models.find((m) => m.name === `macmini/${CHAT_MODEL}`);
  assert.equal(pinned?.machine, "macmini");
  assert.ok(models.some((m) => m.name === EMBED_MODEL));
});

test("ollama: ps lists what is loaded, with its machine", async () => {
  const { models } = await ollama.ps();
  assert.equal(models.length, 1, JSON.stringify(models));
  assert.equal(models[0].name, CHAT_MODEL);
  assert.equal(models[0].machine, "macmini");
  assert.equal(models[0].size_vram, LOADED[0].size_vram);
  assert.equal(models[0].expires_at, LOADED[0].expires_at);
  // ollama-js types each entry with `details`, as Ollama documents it.
  assert.equal(models[0].details?.family, "gptoss");
  assert.equal(models[0].details?.parameter_size, "20.9B");
  assert.equal(models[0].details?.quantization_level, "MXFP4");
});

test("ollama: show is routed to the machine that has the model", async () => {
  const r = await ollama.show({ model: CHAT_MODEL });
  assert.deepEqual(r.capabilities, ["completion", "tools", "thinking"]);
  assert.equal(r.details.family, "gptoss");
  assert.match(r.modelfile, /FROM gpt-oss:20b/);
  await assert.rejects(ollama.show({ model: "nope:1b" }), (err) => {
    assert.equal(err.status_code, 404);
    assert.match(err.error, /nope:1b/);
    return true;
  });
});

test("ollama: a stream cut mid-way ends in an error the client throws", async () => {
  fake.state.cutAfter = 2;
  try {
    let content = "";
    await assert.rejects(
      (async () => {
        for await (const part of await ollama.chat({ model: CHAT_MODEL, messages: [{ role: "user", content: "go" }], stream: true })) {
          content += part.message.content;
        }
      })(),
      /broke off/,
    );
    assert.equal(content, pieces(REPLY).slice(0, 2).join(""));
  } finally {
    fake.state.cutAfter = null;
  }
});

test("ollama: version comes from the machine's Ollama", async () => {
  const { version } = await ollama.version();
  assert.equal(version, "0.12.6");
});

// ---------------------------------------------------------------------------
// Nothing can serve: Clawdbot must fall back to its next model at once.

test("openai: when no machine can serve, the SDK gets one 503 'overloaded' and does not retry", async () => {
  fake.state.fail = { status: 500, message: "llama runner process has terminated: signal: killed" };
  try {
    const before = fake.count("/v1/chat/completions");
    // maxRetries left at the SDK default (2): only x-should-retry stops it.
    assert.equal(openai.maxRetries, 2);
    await assert.rejects(openai.chat.completions.create(clawdbotTurn("hi")), (err) => {
      assert.ok(err instanceof OpenAI.APIError, String(err));
      assert.equal(err.status, 503);
      assert.match(err.message, /overloaded/);
      assert.match(err.message, /macmini/, "names what was tried");
      assert.match(err.message, /signal: killed/, "and why it failed");
      assert.equal(err.headers.get("x-should-retry"), "false");
      return true;
    });
    assert.equal(fake.count("/v1/chat/completions") - before, 1, "the SDK called the proxy exactly once");
  } finally {
    fake.state.fail = null;
  }
});

test("ollama: when no machine can serve, the client gets a 503 saying overloaded", async () => {
  fake.state.fail = { status: 500, message: "llama runner process has terminated: signal: killed" };
  try {
    await assert.rejects(ollama.generate({ model: CHAT_MODEL, prompt: "hi" }), (err) => {
      assert.equal(err.status_code, 503);
      assert.match(err.error, /overloaded/);
      return true;
    });
  } finally {
    fake.state.fail = null;
  }
});

// ---------------------------------------------------------------------------
// Last: the ledger counted every call, with the tokens the fake reported.

test("the ledger counted every proxied request and its tokens (fleet API snapshot)", async () => {
  const expected = fake.inferencePosts();
  assert.ok(expected >= 15, `${expected} requests made`);
  // Two unknown models (OpenAI chat, ollama show) were refused by the proxy
  // itself (404): recorded, but they never reached a machine.
  const refused = 2;
  // The daemon publishes its proxy figures every 5 s.
  const stats = await waitFor("proxy figures in the snapshot", async () => {
    const snap = await (await fetch(api + "/fleet/v1/snapshot")).json();
    const s = snap.proxy?.stats;
    return s && s.requests === expected + refused ? s : false;
  }, 20000);
  const byModel = new Map();
  for (const m of stats.models) {
    const key = canon(m.model);
    const sum = byModel.get(key) ?? { requests: 0, input: 0, output: 0 };
    sum.requests += m.requests;
    sum.input += m.tokens.input_tokens;
    sum.output += m.tokens.output_tokens;
    byModel.set(key, sum);
  }
  for (const [model, reported] of fake.state.reported) {
    const seen = byModel.get(model);
    assert.ok(seen, `${model} in the ledger: ${JSON.stringify(stats.models)}`);
    assert.equal(seen.input, reported.input, `${model} input tokens`);
    assert.equal(seen.output, reported.output, `${model} output tokens`);
  }
  // Two cut streams, two overloaded answers and the refused unknown models.
  assert.equal(stats.errors, 4 + refused, JSON.stringify(stats));
  const machine = stats.machines.find((m) => m.machine === "macmini");
  assert.equal(machine?.requests, expected - 2, JSON.stringify(stats.machines));
});
