// A client that stops reading its stream: once its window has stayed shut (or a write has
// waited) for --write-timeout, the server closes the connection and cancels the generation
// (log and /metrics say so), and other clients are answered at once meanwhile. The client is
// a python3 socket with a 4 KiB receive buffer (Node cannot set SO_RCVBUF), so a few tokens
// fill it. The model is synth_model's `tiny` shape (random weights, the llama3 tokenizer):
// its 128k-token head makes a token cost milliseconds, so the generation is still running
// when it is cut off.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
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

// Connects with a small receive buffer, sends `request` (stdin) and never reads.
const STALLED_CLIENT = `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the window
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read())
print("sent", flush=True)
time.sleep(600)
`;

function stalledClient(port, request) {
  const child = spawn('python3', ['-c', STALLED_CLIENT, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(request);
  const sent = new Promise((resolve, reject) => {
    child.stdout.on('data', resolve);
    child.on('exit', (code) => reject(new Error(`the python3 client exited (${code})`)));
  });
  return { child, sent };
}

test('a stream nobody reads is closed and its generation cancelled after --write-timeout', { timeout: 120_000 }, async () => {
  const before = await cancelledGenerations();
  const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: MAX_TOKENS, stream: true, ignore_eos: true, logprobs: 20 });
  const { child, sent } = stalledClient(new URL(server.baseURL).port,
    `POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  try {
    await sent;
    const started = Date.now();
    while (await cancelledGenerations() === before) {
      assert.ok(Date.now() - started < 60_000, 'the generation was not cancelled within 60 s');
      await answeredWithin(1000);
    }
  } finally {
    child.kill();
  }
  const log = server.stderr();
  assert.match(log, /took no response bytes for 1\.0 s \(--write-timeout\); closing/);
  const [, tokens] = log.match(/finish=cancelled prompt_tokens=\d+ cached_tokens=\d+ completion_tokens=(\d+)/);
  assert.ok(Number(tokens) < MAX_TOKENS, `cancelled after ${tokens} tokens`);
  await answeredWithin(1000);
});
