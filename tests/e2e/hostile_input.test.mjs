// Hostile input: seeded random mutations of valid requests (bytes flipped, JSON values
// swapped for other types, huge and deep values, raw HTTP garbage). Every request must get
// a well-formed answer (2xx, or 4xx with an OpenAI error object), never a crash or a hang,
// and the server must keep serving. LMSERVE_HOSTILE_ROUNDS raises the count (e.g. under ASan).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { postJson, startServer } from './helpers.mjs';

const rounds = Number(process.env.LMSERVE_HOSTILE_ROUNDS ?? 500);
let server;
before(async () => { server = await startServer(['--max-tokens', '4']); });
after(async () => {
  const status = await server?.stop();
  assert.deepEqual(status, { code: 0, signal: null }, server?.stderr());
});

// xorshift32: the same sequence on every run, so a failure reproduces.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

const valid = [
  ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0.5, top_p: 0.9, stop: ['\n'], stream: false }],
  ['/v1/chat/completions', { messages: [{ role: 'system', content: 'x' }, { role: 'user', content: [{ type: 'text', text: 'a' }] }], stream: true, stream_options: { include_usage: true }, max_tokens: 2 }],
  ['/v1/completions', { prompt: 'Once upon', max_tokens: 3, seed: 7, repetition_penalty: 1.2, repetition_context_size: 5 }],
  ['/v1/completions', { prompt: [1, 403, 407], max_tokens: 2, stream: true }],
  ['/tokenize', { content: 'Once upon a time', with_pieces: true }],
  ['/detokenize', { tokens: [1, 403, 407] }],
];

const weird = () => [null, true, -1, 0, 1e308, -1e-308, 2 ** 53, '', 'x'.repeat(5000), [], {}, [[[[]]]],
  { a: { b: { c: 1 } } }, '\u0000\uffff\ud83d', 3.5, '<s></s>', Array(50).fill(1)];

function mutateValue(value, r) {
  const options = weird();
  if (value !== null && typeof value === 'object' && r() < 0.6) {
    const keys = Object.keys(value);
    if (keys.length > 0) {
      const copy = Array.isArray(value) ? [...value] : { ...value };
      const k = keys[Math.floor(r() * keys.length)];
      copy[k] = mutateValue(copy[k], r);
      return copy;
    }
  }
  return options[Math.floor(r() * options.length)];
}

function mutateText(text, r) {
  const bytes = Buffer.from(text);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n && bytes.length > 0; ++i) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
  return r() < 0.3 ? bytes.subarray(0, Math.floor(r() * bytes.length)) : bytes;
}

async function checkAnswer(res, what) {
  const text = await res.text();
  assert.ok(res.status < 500, `${what}: status ${res.status} ${text.slice(0, 200)}`);
  if (res.status >= 400) {
    const body = JSON.parse(text);
    for (const key of ['message', 'type', 'param', 'code']) assert.ok(key in body.error, `${what}: ${text}`);
  }
}

test('mutated JSON requests all get well-formed answers', { timeout: 600_000 }, async () => {
  const r = rng(20261125);
  for (let i = 0; i < rounds; ++i) {
    const [route, body] = valid[Math.floor(r() * valid.length)];
    const mutated = r() < 0.5 ? JSON.stringify(mutateValue(body, r)) : mutateText(JSON.stringify(body), r);
    const res = await fetch(server.baseURL + route, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: mutated,
    });
    await checkAnswer(res, `round ${i} ${route} ${String(mutated).slice(0, 120)}`);
  }
});

test('deep nesting and large bodies are refused cleanly', async () => {
  const deep = '['.repeat(200000) + ']'.repeat(200000);
  await checkAnswer(await postJson(server.baseURL, '/v1/completions', deep), 'deep');
  const big = JSON.stringify({ prompt: 'a'.repeat(17 << 20) });
  const res = await postJson(server.baseURL, '/v1/completions', big);
  assert.equal(res.status, 413);
  await checkAnswer(res, 'big');
});

// Raw HTTP garbage on a socket: the server answers 4xx or closes; it never hangs or dies.
function rawExchange(payload) {
  const { hostname, port } = new URL(server.baseURL);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); resolve(data); }, 5000);
    socket.on('data', (d) => { data += d; });
    socket.on('close', () => { clearTimeout(timer); resolve(data); });
    socket.on('error', () => {});
    socket.end(payload);
  });
}

test('raw HTTP garbage gets a 4xx or a close', { timeout: 120_000 }, async () => {
  const r = rng(7);
  const base = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"prompt": "Once"}  ';
  const payloads = [
    'GET / HTTP/9.9\r\n\r\n', '\r\n\r\n', 'POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n',
    'POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n',
    'POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n',
    `GET /${'a'.repeat(100000)} HTTP/1.1\r\n\r\n`, `GET / HTTP/1.1\r\nX: ${'b'.repeat(100000)}\r\n\r\n`,
  ];
  for (let i = 0; i < 40; ++i) payloads.push(mutateText(base, r));
  for (const p of payloads) {
    const answer = await rawExchange(p);
    if (answer.length > 0) assert.match(answer, /^HTTP\/1\.[01] [1-5]\d\d /, JSON.stringify(String(p).slice(0, 80)));
    assert.ok(!/^HTTP\/1\.[01] 5/.test(answer), answer.slice(0, 200));
  }
  const health = await fetch(`${server.baseURL}/health`);
  assert.equal(health.status, 200);
});
