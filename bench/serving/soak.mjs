// Operations soak and fault bench (not a test): starts the real binary on stories260K and
// drives it for --seconds with mixed traffic (streamed and whole completions and chats,
// invalid requests, clients that disconnect mid-stream, read slowly or not at all, oversized
// bodies, idle connections) while sampling the server's RSS, threads and open descriptors
// from /proc, from the end of a 30 s warm-up with the same traffic. After the traffic it
// waits for the server to go idle: threads and descriptors must be back to their start
// counts. Writes the "Operations soak" section of docs/benchmarks.md.
//
//   node bench/serving/soak.mjs [--seconds 600] [--clients 12] [--doc docs/benchmarks.md]
//   (LMSERVE_BIN, LMSERVE_MODEL as for the e2e tests: build/lmserve, ../shared/fixtures/models/stories260K)
import net from 'node:net';
import os from 'node:os';
import { execSync } from 'node:child_process';
import { startServer, modelDir, postJson } from '../../tests/e2e/helpers.mjs';
import { openFds, rssMiB, stream, text, threads, writeSection } from './common.mjs';

function args() {
  const out = { seconds: 600, clients: 12, doc: '' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in out)) throw new Error(`unknown option ${argv[i]}`);
    out[key] = typeof out[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return out;
}

const o = args();
const MAX_BODY = 64 * 1024;
const WRITE_TIMEOUT_S = 2;
const server = await startServer(['--max-body', String(MAX_BODY), '--write-timeout', String(WRITE_TIMEOUT_S),
  '--idle-timeout', '5', '--parallel', '4', '--watchdog', '10']);
const url = server.baseURL;
const { port } = new URL(url);
const pid = server.child.pid;
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const random = (n) => Math.floor(Math.random() * n);

class Unexpected extends Error {}
async function expectStatus(res, status) {
  const body = await res.text();
  if (res.status !== status) throw new Unexpected(`HTTP ${res.status} (wanted ${status}): ${body.slice(0, 200)}`);
  return body;
}

// A raw connection that sends `request`, then reads its answer slowly (a pause after each
// piece) or, for `stallMs`, not at all; resolves with what it read and whether the server
// ended the connection within `holdMs`.
function rawClient(request, { readDelayMs = 0, stallMs = 0, holdMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = '';
    const finish = (closedByServer) => { clearTimeout(giveUp); socket.destroy(); resolve({ received, closedByServer }); };
    const giveUp = setTimeout(() => finish(false), holdMs);
    socket.on('error', (e) => (e.code === 'ECONNRESET' ? finish(true) : reject(e)));
    socket.on('end', () => finish(true));
    socket.on('connect', () => {
      if (request) socket.write(request);
      if (stallMs) {
        socket.pause();
        setTimeout(() => socket.resume(), stallMs);
      }
    });
    socket.on('data', (d) => {
      received += d;
      if (readDelayMs) { socket.pause(); setTimeout(() => socket.resume(), readDelayMs); }
    });
  });
}

function rawPost(route, body) {
  return `POST ${route} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

// Each kind of traffic: a weight and one exchange that throws Unexpected when the server
// answers otherwise than it must. `seed` varies prompts.
const kinds = {
  stream_completion: [4, async (seed) => {
    const r = await stream(url, '/v1/completions', { prompt: text(seed, 5 + seed % 40), max_tokens: 16 + seed % 100, temperature: 0.8 });
    if (!r.usage) throw new Unexpected('stream without usage');
  }],
  whole_chat: [3, async (seed) => {
    const res = await postJson(url, '/v1/chat/completions', { messages: [{ role: 'user', content: text(seed, 8) }], max_tokens: 24, temperature: 0.7 });
    const body = JSON.parse(await expectStatus(res, 200));
    if (!body.choices?.[0]?.message) throw new Unexpected(`no message: ${JSON.stringify(body)}`);
  }],
  stream_chat: [2, async (seed) => {
    await stream(url, '/v1/chat/completions', { messages: [{ role: 'user', content: text(seed, 12) }], max_tokens: 32 });
  }],
  invalid_json: [1, async () => { await expectStatus(await postJson(url, '/v1/completions', '{"prompt": "x", '), 400); }],
  invalid_param: [1, async (seed) => {
    await expectStatus(await postJson(url, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], temperature: -1 - seed % 5 }), 400);
  }],
  unknown_route: [1, async () => { await expectStatus(await fetch(`${url}/v1/nothing`), 404); }],
  oversized_body: [1, async () => {
    const res = await postJson(url, '/v1/completions', { prompt: 'x'.repeat(MAX_BODY + 1000) });
    await expectStatus(res, 413);
  }],
  disconnect_mid_stream: [2, async (seed) => {
    try {
      await stream(url, '/v1/completions', { prompt: text(seed, 20), max_tokens: 200, ignore_eos: true }, { abortAfterMs: 20 + random(300) });
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
    }
  }],
  slow_reader: [1, async (seed) => {
    const body = JSON.stringify({ prompt: text(seed, 10), max_tokens: 40, stream: true });
    const { received } = await rawClient(rawPost('/v1/completions', body), { readDelayMs: 50 });
    if (!received.startsWith('HTTP/1.1 200') || !received.includes('data: [DONE]')) throw new Unexpected(`slow reader got: ${received.slice(0, 200)}`);
  }],
  stops_reading: [1, async (seed) => {
    // More output than the socket buffers hold: the server gives up on the stream after
    // --write-timeout, so what the client reads when it comes back ends without [DONE].
    const body = JSON.stringify({ prompt: text(seed, 10), max_tokens: 400, stream: true, ignore_eos: true, logprobs: 20 });
    const { received, closedByServer } = await rawClient(rawPost('/v1/completions', body), { stallMs: (WRITE_TIMEOUT_S + 3) * 1000 });
    if (!closedByServer || received.includes('data: [DONE]')) throw new Unexpected('a client that stopped reading was not cut off');
  }],
  idle_connection: [1, async () => {
    const { closedByServer } = await rawClient('', { holdMs: 15_000 });
    if (!closedByServer) throw new Unexpected('an idle connection was not closed after --idle-timeout');
  }],
  health_and_metrics: [1, async () => {
    await expectStatus(await fetch(`${url}/health`), 200);
    await expectStatus(await fetch(`${url}/metrics`), 200);
    await expectStatus(await fetch(`${url}/v1/models`), 200);
  }],
};
const table = Object.entries(kinds).flatMap(([name, [weight]]) => Array(weight).fill(name));

const sample = () => ({ rss_mib: rssMiB(pid), threads: threads(pid), fds: openFds(pid) });
// Idle: no connection left (lingering closes take up to 2 s), so descriptors can be compared.
async function settle(target) {
  const deadline = Date.now() + 30_000;
  let s = sample();
  while (Date.now() < deadline && (s.fds !== target.fds || s.threads !== target.threads)) {
    await pause(500);
    s = sample();
  }
  return s;
}

// Runs `clients` clients, each picking exchanges at random until `until()` says stop; counts
// every exchange by kind in `counts` and keeps the first unexpected answers in `unexpected`.
const newCounts = () => Object.fromEntries(Object.keys(kinds).map((k) => [k, { ok: 0, unexpected: 0 }]));
let seed = 1;
async function drive(until, counts, unexpected) {
  await Promise.all(Array.from({ length: o.clients }, async () => {
    while (!until()) {
      const kind = table[random(table.length)];
      try {
        await kinds[kind][1](seed++);
        counts[kind].ok += 1;
      } catch (e) {
        counts[kind].unexpected += 1;
        if (unexpected.length < 20) unexpected.push(`${kind}: ${e.message}`);
      }
    }
  }));
}
const sum = (counts, key) => Object.values(counts).reduce((s, c) => s + c[key], 0);

// Warm-up: WARM_S seconds of the soak's own traffic, so that thread pools, per-thread caches,
// allocator arenas and the KV pool reach their working size (the pool is committed as blocks
// are first written, and the prefix cache keeps written blocks until no block is free; the
// most blocks it held is reported: at least that much of the pool was written). Then idle.
const WARM_S = 30;
const gauge = (text, name) => Number(text.match(new RegExp(`^${name} (\\d+)`, 'm'))[1]);
const pool = { total: 0, mostCached: 0 };
const poller = setInterval(() => fetch(`${url}/metrics`).then((r) => r.text()).then((text) => {
  pool.total = gauge(text, 'lmserve_kv_blocks_total');
  pool.mostCached = Math.max(pool.mostCached, gauge(text, 'lmserve_kv_blocks_cached'));
}, () => {}), 250);
const warmCounts = newCounts();
const unexpected = [];
const warmUntil = Date.now() + WARM_S * 1000;
await drive(() => Date.now() >= warmUntil, warmCounts, unexpected);
clearInterval(poller);
const warm = { exchanges: sum(warmCounts, 'ok'), unexpected: sum(warmCounts, 'unexpected'), ...pool };
console.error(`warm-up: ${JSON.stringify(warm)}`);
// Idle: the clients' pooled keep-alive connections are closed by --idle-timeout (5 s), and
// the server lingers up to 2 s on a close; slow clients cut off by --write-timeout are gone.
await pause(8000);
const start = sample();
const loadAtStart = os.loadavg()[0].toFixed(1);
console.error(`start: ${JSON.stringify(start)}`);

const counts = newCounts();
const samples = [];
const began = Date.now();
const sampler = setInterval(() => samples.push({ t: Math.round((Date.now() - began) / 1000), ...sample() }), 5000);
const deadline = began + o.seconds * 1000;
await drive(() => Date.now() >= deadline, counts, unexpected);
clearInterval(sampler);
const busy = samples.reduce((m, s) => ({ rss_mib: Math.max(m.rss_mib, s.rss_mib), threads: Math.max(m.threads, s.threads), fds: Math.max(m.fds, s.fds) }), start);
const end = await settle(start);
console.error(`end: ${JSON.stringify(end)}`);
const status = await server.stop();

const errors = sum(counts, 'unexpected');
const f = (x) => x.toFixed(0);
const rssTrend = samples.filter((s) => s.t % 60 === 0).map((s) => `${s.t}s ${s.rss_mib.toFixed(1)}`).join(', ');
const lines = [
  '## Operations soak',
  '',
  `- machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores visible, ${os.type()} ${os.release()}; ` +
    `shared with other work (load average ${loadAtStart} when the soak began)`,
  `- date: ${new Date().toISOString().slice(0, 16)}Z, commit ${execSync('git rev-parse --short HEAD').toString().trim()}`,
  `- command: \`node bench/serving/soak.mjs --seconds ${o.seconds} --clients ${o.clients}\` (model ${modelDir.split('/').slice(-1)[0]}; ` +
    `server flags --max-body ${MAX_BODY} --write-timeout ${WRITE_TIMEOUT_S} --idle-timeout 5 --parallel 4 --watchdog 10)`,
  `- warm-up: the same traffic for ${WARM_S} s (${warm.exchanges} exchanges, ${warm.unexpected} unexpected; the prefix ` +
    `cache held up to ${warm.mostCached} of the ${warm.total} KV blocks), then 8 s idle; "start" is sampled after it`,
  `- ${o.clients} clients, each picking its next exchange at random (weights in soak.mjs); every answer is checked ` +
    '(status, body shape, the server closing connections it must close)',
  '',
  '| exchange | done | unexpected |',
  '|---|---:|---:|',
  ...Object.entries(counts).map(([k, c]) => `| ${k.replaceAll('_', ' ')} | ${c.ok} | ${c.unexpected} |`),
  `| **all** | **${sum(counts, 'ok')}** | **${errors}** |`,
  '',
  '| server | start (idle, after warm-up) | busiest sample | end (idle again) |',
  '|---|---:|---:|---:|',
  `| RSS MiB | ${f(start.rss_mib)} | ${f(busy.rss_mib)} | ${f(end.rss_mib)} |`,
  `| threads | ${start.threads} | ${busy.threads} | ${end.threads} |`,
  `| open descriptors | ${start.fds} | ${busy.fds} | ${end.fds} |`,
  '',
  `RSS MiB each minute: ${rssTrend}. Exit status after SIGTERM: ${status.code ?? status.signal}.`,
  ...(unexpected.length ? ['', 'Unexpected answers (first 20):', '', ...unexpected.map((u) => `- ${u}`)] : []),
  '',
];
console.log(lines.join('\n'));
if (o.doc) writeSection(o.doc, 'ops-soak', lines);
process.exitCode = errors + warm.unexpected === 0 && end.fds === start.fds && end.threads === start.threads && status.code === 0 ? 0 : 1;
