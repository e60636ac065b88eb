// Clients that hold a connection without completing it: one sending its request head a byte
// a second, one that never reads its stream. Others are still answered at once; the slow
// head is cut off after --idle-timeout. And the start-up warning for an open address.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { bin, modelDir, startServer } from './helpers.mjs';

let server;
let base;
before(async () => {
  server = await startServer(['--idle-timeout', '2']);
  base = server.baseURL;
});
after(async () => {
  assert.deepEqual(await server?.stop(), { code: 0, signal: null });
});

function connect() {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => resolve(socket));
    socket.on('error', reject);
  });
}

// A fresh connection each time (agent: false): with --idle-timeout 2 a pooled keep-alive
// connection could be closed by the server just as it is reused.
function answeredWithin(ms) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}/v1/models`, { agent: false, timeout: ms }, (res) => {
      assert.equal(res.statusCode, 200);
      res.resume();
      res.on('end', () => {
        assert.ok(Date.now() - started < ms);
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error(`not answered within ${ms} ms`)));
    req.on('error', reject);
  });
}

test('a head sent a byte a second does not delay others and is cut off', { timeout: 30_000 }, async () => {
  const socket = await connect();
  const head = 'GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n';
  let sent = 0;
  const closed = new Promise((resolve) => socket.on('close', resolve));
  socket.on('error', () => {});
  const drip = setInterval(() => {
    if (sent < head.length && !socket.destroyed) socket.write(head[sent++]);
  }, 1000);
  try {
    for (let i = 0; i < 3; i++) await answeredWithin(1000);
    const started = Date.now();
    await closed;  // --idle-timeout 2: well before the 45 bytes are in
    assert.ok(sent < head.length, `closed after ${sent} bytes`);
    assert.ok(Date.now() - started < 10_000);
  } finally {
    clearInterval(drip);
    socket.destroy();
  }
});

test('a client that never reads its stream does not delay others', { timeout: 30_000 }, async () => {
  const socket = await connect();
  socket.on('error', () => {});
  socket.pause();  // nothing is read
  const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 200, stream: true, ignore_eos: true });
  socket.write(`POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  try {
    for (let i = 0; i < 3; i++) await answeredWithin(1000);
  } finally {
    socket.destroy();
  }
  await answeredWithin(1000);
});

// Starts lmserve on `host` and resolves with its stderr once it listens, then stops it.
async function startupLog(args) {
  const child = spawn(bin, ['--model', modelDir, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${stderr}`)), 30_000);
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d;
      if (stdout.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.kill('SIGTERM');
  await exited;  // stderr is complete once the process is gone
  return stderr;
}

test('serving a non-loopback address without a key warns at start', { timeout: 60_000 }, async () => {
  assert.match(await startupLog(['--host', '0.0.0.0']), /without an API key/);
  assert.doesNotMatch(await startupLog(['--host', '0.0.0.0', '--api-key', 'k']), /without an API key/);
  assert.doesNotMatch(await startupLog(['--host', '127.0.0.1']), /without an API key/);
});
