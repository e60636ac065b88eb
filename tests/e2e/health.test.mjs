// /health tells the truth: the server listens before it loads the model and answers 503
// model_loading (every route) until it is loaded, then 200; a load failure exits non-zero
// with its message; SIGTERM during the load stops it at once; an engine step running past --watchdog makes /health 503
// worker_unavailable until the step completes; an engine thread that dies makes /health 503 and
// fails every request fast with 503. Test hooks (docs/architecture.md) delay the load, stall
// one engine step and make one throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bin, errorOf, postJson, startServer } from './helpers.mjs';

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// GET /health until `done(status, body)` holds; returns when (ms after `since`) and the body.
async function healthUntil(baseURL, done, { since = Date.now(), deadlineMs = 30_000 } = {}) {
  for (;;) {
    const res = await fetch(`${baseURL}/health`);
    const body = await res.json();
    if (done(res.status, body)) return { afterMs: Date.now() - since, status: res.status, body };
    if (Date.now() - since > deadlineMs) throw new Error(`/health still ${res.status}: ${JSON.stringify(body)}`);
    await pause(20);
  }
}

test('while the model loads every route is 503 model_loading, then /health is 200', { timeout: 60_000 }, async () => {
  const server = await startServer([], { ready: false, env: { LMSERVE_TEST_LOAD_DELAY_MS: '1500' } });
  try {
    const loading = { message: 'Loading model', type: 'server_error', param: null, code: 'model_loading' };
    const health = await fetch(`${server.baseURL}/health`);
    assert.equal(health.status, 503);
    assert.deepEqual(await errorOf(health), loading);
    const models = await fetch(`${server.baseURL}/v1/models`);
    assert.equal(models.status, 503);
    assert.deepEqual(await errorOf(models), loading);
    const completion = await postJson(server.baseURL, '/v1/completions', { prompt: 'Once', max_tokens: 2 });
    assert.equal(completion.status, 503);
    assert.deepEqual(await errorOf(completion), loading);

    const statuses = [];
    await healthUntil(server.baseURL, (status) => {
      if (statuses.at(-1) !== status) statuses.push(status);
      return status === 200;
    });
    assert.deepEqual(statuses, [503, 200]);
    const after = await postJson(server.baseURL, '/v1/completions', { prompt: 'Once', max_tokens: 2 });
    assert.equal(after.status, 200);
  } finally {
    assert.deepEqual(await server.stop(), { code: 0, signal: null });
  }
});

test('SIGTERM during the load stops the server at once, not after the load', { timeout: 60_000 }, async () => {
  const server = await startServer([], { ready: false, env: { LMSERVE_TEST_LOAD_DELAY_MS: '30000' } });
  const since = Date.now();
  assert.deepEqual(await server.stop(), { code: 0, signal: null });  // stop() kills after 10 s
  assert.ok(Date.now() - since < 5000, `stopped after ${Date.now() - since} ms`);
  assert.match(server.stderr(), /stopped while loading the model/);
});

test('a model that fails to load ends the process non-zero with the message', { timeout: 60_000 }, async () => {
  const empty = mkdtempSync(path.join(tmpdir(), 'lmserve-no-model-'));
  try {
    const child = spawn(bin, ['--model', empty, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(stdout, /listening on/);  // it listened first
    assert.match(stderr, new RegExp(`lmserve: .*${empty.replaceAll('/', '\\/')}`));
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('a step running past --watchdog makes /health 503 until it completes', { timeout: 60_000 }, async () => {
  const stallMs = 4000;
  const server = await startServer(['--watchdog', '1'], { env: { LMSERVE_TEST_STALL_STEP_MS: String(stallMs) } });
  try {
    assert.equal((await fetch(`${server.baseURL}/health`)).status, 200);
    const since = Date.now();
    const completion = postJson(server.baseURL, '/v1/completions', { prompt: 'Once upon a time', max_tokens: 4, ignore_eos: true });
    const stuck = await healthUntil(server.baseURL, (status) => status !== 200, { since });
    assert.equal(stuck.status, 503);
    assert.equal(stuck.body.error.code, 'worker_unavailable');
    assert.match(stuck.body.error.message, /^The engine step has been running for \d+\.\d s \(over --watchdog 1 s\)$/);
    assert.ok(stuck.afterMs >= 1000, `503 after ${stuck.afterMs} ms, before the interval`);
    assert.ok(stuck.afterMs < 1000 + 1500, `503 only after ${stuck.afterMs} ms`);

    const resumed = await healthUntil(server.baseURL, (status) => status === 200, { since });
    assert.ok(resumed.afterMs >= stallMs, `200 again after ${resumed.afterMs} ms, inside the stall`);
    const answer = await completion;
    assert.equal(answer.status, 200);
    assert.equal((await answer.json()).usage.completion_tokens, 4);
  } finally {
    assert.deepEqual(await server.stop(), { code: 0, signal: null });
  }
});

test('an engine thread that dies makes /health 503 and fails requests fast with 503', { timeout: 60_000 }, async () => {
  const server = await startServer(['--parallel', '1'], { env: { LMSERVE_TEST_FAIL_STEP: '1' } });
  try {
    assert.equal((await fetch(`${server.baseURL}/health`)).status, 200);
    // One request running into the failing step and one queued behind it: both end with 503.
    const body = { prompt: 'Once upon a time', max_tokens: 8, ignore_eos: true };
    const [running, queued] = await Promise.all([
      postJson(server.baseURL, '/v1/completions', body),
      postJson(server.baseURL, '/v1/completions', body),
    ]);
    for (const res of [running, queued]) {
      assert.equal(res.status, 503);
      assert.equal((await errorOf(res)).code, 'worker_unavailable');
    }
    const health = await fetch(`${server.baseURL}/health`);
    assert.equal(health.status, 503);
    assert.equal((await health.json()).error.code, 'worker_unavailable');
    // Later requests fail at once, streaming or not, instead of waiting for a dead engine.
    for (const stream of [false, true]) {
      const since = Date.now();
      const res = await postJson(server.baseURL, '/v1/chat/completions', {
        messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream,
      });
      assert.equal(res.status, 503);
      assert.equal((await errorOf(res)).code, 'worker_unavailable');
      assert.ok(Date.now() - since < 1000, `answered after ${Date.now() - since} ms`);
    }
  } finally {
    await server.stop();
  }
});
