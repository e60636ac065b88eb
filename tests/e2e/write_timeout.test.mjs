// A client that stops reading its stream: once a write has waited --write-timeout for room in
// its socket buffers the server closes the connection and cancels the generation (log and
// /metrics say so), and other clients are answered at once meanwhile. The model is
// synth_model's `tiny` shape (random weights, the llama3 tokenizer): its 128k-token head
// makes a token cost milliseconds, so the generation is still running when it is cut off.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fixturesDir, startServer } from './helpers.mjs';
import { parsePrometheus, sampleValue } from './prometheus.mjs';

const MAX_TOKENS = 3000;
let dir;
let server;
before(async () => {
  const synth = process.env.LMSERVE_SYNTH_MODEL;
  if (!synth) throw new Error('LMSERVE_SYNTH_MODEL (the synth_model binary) is not set');
  dir = mkdtempSync(path.join(os.tmpdir(), 'lmserve-write-timeout-'));
  execFileSync(synth, ['--shape', 'tiny', '--tokenizer', path.join(fixturesDir, 'tokenizers', 'llama3'), '--out', dir]);
  server = await startServer(['--write-timeout', '1', '--parallel', '2'], { model: dir });
});
after(async () => {
  assert.deepEqual(await server?.stop(), { code: 0, signal: null });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function cancelledGenerations() {
  const text = await (await fetch(`${server.baseURL}/metrics`)).text();
  return sampleValue(parsePrometheus(text), 'lmserve_requests_finished_total', { finish_reason: 'cancelled' }) ?? 0;
}

// A fresh connection's GET /v1/models; rejects unless answered 200 within `ms`.
function answeredWithin(ms) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${server.baseURL}/v1/models`, { agent: false, timeout: ms }, (res) => {
      assert.equal(res.statusCode, 200);
      res.resume();
      res.on('end', resolve);
    });
    req.on('timeout', () => req.destroy(new Error(`not answered within ${ms} ms`)));
    req.on('error', reject);
  });
}

test('a stream nobody reads is closed and its generation cancelled after --write-timeout', { timeout: 120_000 }, async () => {
  const before = await cancelledGenerations();
  const { hostname, port } = new URL(server.baseURL);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => {});
  socket.pause();  // nothing is ever read
  const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: MAX_TOKENS, stream: true, ignore_eos: true, logprobs: 20 });
  socket.write(`POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const started = Date.now();
  try {
    while (await cancelledGenerations() === before) {
      assert.ok(Date.now() - started < 60_000, 'the generation was not cancelled within 60 s');
      await answeredWithin(1000);
    }
  } finally {
    socket.destroy();
  }
  const log = server.stderr();
  assert.match(log, /took no response bytes for 1\.0 s \(--write-timeout\); closing/);
  const [, tokens] = log.match(/finish=cancelled prompt_tokens=\d+ cached_tokens=\d+ completion_tokens=(\d+)/);
  assert.ok(Number(tokens) < MAX_TOKENS, `cancelled after ${tokens} tokens`);
  await answeredWithin(1000);
});
