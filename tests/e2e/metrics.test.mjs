// GET /metrics on the real binary: a valid Prometheus exposition whose counters follow the
// requests served (usage reported to clients and token counters agree).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { postJson, startServer } from './helpers.mjs';
import { parsePrometheus, sampleValue } from './prometheus.mjs';

let server;
let base;
before(async () => {
  server = await startServer();
  base = server.baseURL;
});
after(async () => {
  assert.deepEqual(await server?.stop(), { code: 0, signal: null });
});

async function scrape() {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheus(await res.text());
}

// Scrapes until `ready` holds (a request is counted just after its response is written).
async function scrapeUntil(ready, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape();
    if (ready(m) || Date.now() > deadline) return m;
  }
}

const requests = (m, endpoint, status) =>
  sampleValue(m, 'lmserve_requests_total', { endpoint, status: String(status) }) ?? 0;

test('the parser used here rejects broken expositions', () => {
  for (const text of [
    'a 1\n',
    '# TYPE a counter\na 1',
    '# TYPE a counter\na{x="1",x="2"} 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 0\nh_count 1\n',
  ]) {
    assert.throws(() => parsePrometheus(text), undefined, text);
  }
});

test('an idle server reports its KV pool and no generations', { timeout: 30_000 }, async () => {
  const m = await scrape();
  const total = sampleValue(m, 'lmserve_kv_blocks_total');
  assert.ok(total > 0);
  assert.equal(sampleValue(m, 'lmserve_kv_blocks_free'), total);
  assert.equal(sampleValue(m, 'lmserve_sequences_running'), 0);
  assert.equal(sampleValue(m, 'lmserve_sequences_queued'), 0);
  assert.equal(sampleValue(m, 'lmserve_e2e_request_latency_seconds_count'), 0);
});

test('counters follow the requests served', { timeout: 60_000 }, async () => {
  const before = await scrape();
  const prompt = 'Once upon a time there was a little girl named Lily. '.repeat(4);
  const bodies = [];
  for (let i = 0; i < 2; i++) {
    const res = await postJson(base, '/v1/completions', { prompt, max_tokens: 6, temperature: 0 });
    assert.equal(res.status, 200);
    bodies.push(await res.json());
  }
  assert.equal((await postJson(base, '/v1/completions', { prompt: 5 })).status, 400);
  // The engine retires a finished sequence at the end of the step that sent its last token, so
  // the running gauge may lag the answer by a step.
  const m = await scrapeUntil((x) => requests(x, '/v1/completions', 400) === 1
    && requests(x, '/v1/completions', 200) === 2 && sampleValue(x, 'lmserve_sequences_running') === 0);
  assert.equal(requests(m, '/v1/completions', 200), 2);
  assert.equal(requests(m, '/v1/completions', 400), 1);
  assert.ok(requests(m, '/metrics', 200) >= 2);

  const grew = (name) => sampleValue(m, name) - sampleValue(before, name);
  const sum = (key) => bodies.reduce((s, b) => s + (key(b.usage) ?? 0), 0);
  assert.equal(grew('lmserve_prompt_tokens_total'), sum((u) => u.prompt_tokens));
  assert.equal(grew('lmserve_generated_tokens_total'), sum((u) => u.completion_tokens));
  assert.equal(grew('lmserve_cached_prompt_tokens_total'), sum((u) => u.prompt_tokens_details?.cached_tokens));
  assert.ok(bodies[1].usage.prompt_tokens_details.cached_tokens > 0, 'the second prompt reuses the first');
  assert.equal(grew('lmserve_prefix_cache_hits_total'), 1);
  const finished = ['stop', 'length'].reduce(
    (s, r) => s + (sampleValue(m, 'lmserve_requests_finished_total', { finish_reason: r }) ?? 0), 0);
  assert.equal(finished, 2);
  for (const h of ['lmserve_e2e_request_latency_seconds', 'lmserve_queue_time_seconds',
    'lmserve_time_to_first_token_seconds']) {
    assert.equal(sampleValue(m, `${h}_count`), 2, h);
  }
  assert.ok(sampleValue(m, 'lmserve_e2e_request_latency_seconds_sum') > 0);
  assert.equal(sampleValue(m, 'lmserve_sequences_running'), 0);
  assert.ok(sampleValue(m, 'lmserve_kv_blocks_cached') > 0, 'the prompt stays cached');
});
