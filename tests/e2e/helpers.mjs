// Shared by the end-to-end tests: starts the real lmserve binary on a free port, talks to it
// over loopback, parses SSE. Paths come from the environment (CTest sets them).
import { spawn, spawnSync } from 'node:child_process';
import { after, before } from 'node:test';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const bin = process.env.LMSERVE_BIN ?? path.join(repoRoot, 'build', 'lmserve');
export const fixturesDir = process.env.LMSERVE_FIXTURES_DIR ?? path.join(repoRoot, '..', 'shared', 'fixtures');
export const modelDir = process.env.LMSERVE_MODEL ?? path.join(fixturesDir, 'models', 'stories260K');

// The openai package must be installed (npm ci in tests/e2e): a missing one is a failure.
export async function loadOpenAI() {
  const pkg = path.join(here, 'node_modules', 'openai', 'package.json');
  if (!existsSync(pkg)) {
    throw new Error(`the npm package "openai" is missing: run "npm ci" in ${here}`);
  }
  return (await import('openai')).default;
}

// The official client pointed at a running server (no retries: every answer is checked).
export async function clientFor(server, options = {}) {
  const OpenAI = await loadOpenAI();
  return new OpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'sk-unused', maxRetries: 0, timeout: 60_000, ...options });
}

// The official Anthropic client pointed at a running server (Messages API routes).
export async function anthropicClientFor(server, options = {}) {
  const pkg = path.join(here, 'node_modules', '@anthropic-ai', 'sdk', 'package.json');
  if (!existsSync(pkg)) {
    throw new Error(`the npm package "@anthropic-ai/sdk" is missing: run "npm ci" in ${here}`);
  }
  const Anthropic = (await import('@anthropic-ai/sdk')).default;
  return new Anthropic({ baseURL: server.baseURL, apiKey: 'sk-unused', maxRetries: 0, timeout: 60_000, ...options });
}

// Starts one server (and an official client for it) before a file's tests and stops it after:
// `const ctx = serveForTests(args)`, then `ctx.server` and `ctx.client` inside the tests.
export function serveForTests(extraArgs = [], options = {}) {
  const ctx = {};
  before(async () => {
    ctx.server = await startServer(extraArgs, options);
    ctx.client = await clientFor(ctx.server);
  });
  after(async () => {
    await ctx.server?.stop();
  });
  return ctx;
}

export function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

// The user's Hugging Face cache and Hub stay out of the tests: /v1/models lists the models of
// the HF cache, so a server sees an empty one (a path that does not exist) unless told.
export const hermeticHubEnv = {
  HF_HOME: path.join(os.tmpdir(), 'lmserve-e2e-no-hf-home'),
  HF_HUB_CACHE: path.join(os.tmpdir(), 'lmserve-e2e-no-hf-cache'), HF_ENDPOINT: 'http://127.0.0.1:9',
  HF_TOKEN: '', HF_HUB_OFFLINE: '',
};

// Starts `lmserve --model <model> --port 0` (the model directory unless told: a path, or a
// Hub or Ollama name; `env` adds to the environment) and resolves once it prints its address
// and, unless `ready` is false, once /health says the model is loaded (it listens before
// loading).
export async function startServer(extraArgs = [], { timeoutMs = 60_000, model = modelDir, env = {}, ready = true } = {}) {
  if (!existsSync(bin)) throw new Error(`lmserve binary not found at ${bin} (set LMSERVE_BIN)`);
  if (path.isAbsolute(model) && !existsSync(model)) throw new Error(`model not found: ${model}`);
  const child = spawn(bin, ['--model', model, '--host', '127.0.0.1', '--port', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...hermeticHubEnv, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr += d; });
  child.stdout.setEncoding('utf8');
  const baseURL = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lmserve did not start within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/lmserve: listening on (http:\/\/\S+?:\d+)\s/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`lmserve exited (${code ?? signal}) before listening\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
  child.removeAllListeners('exit');
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  if (ready) await untilLoaded(baseURL, exited, Date.now() + timeoutMs, () => stderr);
  return {
    baseURL,
    child,
    stderr: () => stderr,
    // SIGTERM, then the exit status (a clean shutdown exits 0).
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const status = await exited;
      clearTimeout(killer);
      return status;
    },
  };
}

// Polls /health while it answers 503 model_loading; throws if the server exits, answers
// anything but 200 after loading, or is not loaded by `deadline`.
async function untilLoaded(baseURL, exited, deadline, stderr) {
  let gone = false;
  exited.then(() => { gone = true; });
  for (;;) {
    if (gone) throw new Error(`lmserve exited while loading\nstderr: ${stderr()}`);
    let res;
    try {
      res = await fetch(`${baseURL}/health`, { headers: { Connection: 'close' } });
    } catch (e) {
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
      if (gone) throw new Error(`lmserve exited while loading\nstderr: ${stderr()}`);
      throw e;
    }
    const body = await res.json();
    if (res.status === 200) return;
    if (body?.error?.code !== 'model_loading') throw new Error(`/health ${res.status}: ${JSON.stringify(body)}`);
    if (Date.now() > deadline) throw new Error(`lmserve did not load in time\nstderr: ${stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function postJson(baseURL, route, body, headers = {}) {
  return fetch(baseURL + route, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

// Parses a complete text/event-stream body into { data: [json...], comments, done, doneLast }.
export function parseSse(text) {
  const out = { data: [], comments: [], done: false, doneLast: false, raw: text };
  const events = text.split('\n\n');
  if (events.at(-1) !== '') throw new Error(`stream does not end with a blank line: ${JSON.stringify(text.slice(-80))}`);
  events.pop();
  for (const event of events) {
    out.doneLast = false;
    if (event.startsWith(': ')) {
      out.comments.push(event.slice(2));
    } else if (event === 'data: [DONE]') {
      out.done = true;
      out.doneLast = true;
    } else if (event.startsWith('data: ') && !event.includes('\n')) {
      out.data.push(JSON.parse(event.slice(6)));
    } else {
      throw new Error(`unexpected SSE event: ${JSON.stringify(event)}`);
    }
  }
  return out;
}

// Asserts the OpenAI error object shape and returns it.
export async function errorOf(response) {
  const body = await response.json();
  if (!body || typeof body.error !== 'object') throw new Error(`not an error body: ${JSON.stringify(body)}`);
  for (const key of ['message', 'type', 'param', 'code']) {
    if (!(key in body.error)) throw new Error(`error.${key} missing: ${JSON.stringify(body)}`);
  }
  return body.error;
}

// Python Jinja2's rendering of a chat template, configured as transformers configures it
// (render_chat_template.py): the reference the server's prompts are compared with.
// `request`: {template, messages, tools?, documents?, add_generation_prompt?, variables?}.
export function renderWithJinja2(request) {
  const python = process.env.LMSERVE_PYTHON ?? 'python3';
  const result = spawnSync(python, [path.join(here, 'render_chat_template.py')], {
    input: JSON.stringify(request), maxBuffer: 64 << 20,
  });
  if (result.error) throw new Error(`cannot run ${python}: ${result.error.message} (run scripts/setup)`);
  if (result.status !== 0) throw new Error(`Jinja2 rendering failed: ${result.stderr}`);
  return result.stdout.toString('utf8');
}
