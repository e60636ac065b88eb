// `n` choices on the real binary through the official OpenAI client: each choice equals the
// request run alone with its seed (seed + index), usage counts the prompt once, streams carry
// every index with one usage chunk and one [DONE], the prompt is evaluated once for all
// choices, a full KV pool makes them wait their turn, and a client that leaves cancels all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientFor, errorOf, parseSse, postJson, serveForTests, startServer } from './helpers.mjs';
import { parsePrometheus, sampleValue } from './prometheus.mjs';

const ctx = serveForTests();

const messages = [{ role: 'user', content: 'Tell me a story about a dog.' }];
const sampled = { max_tokens: 24, temperature: 1, top_p: 1 };

async function metrics(baseURL) {
  const res = await fetch(`${baseURL}/metrics`);
  assert.equal(res.status, 200);
  return parsePrometheus(await res.text());
}

// Scrapes until `ready` holds: the engine updates its counters just after the events it sent.
async function metricsWhen(baseURL, ready, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await metrics(baseURL);
    if (ready(m) || Date.now() > deadline) return m;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// Choice i of a seeded request is the request alone with seed + i.
async function alone(create, request, seed) {
  return create({ ...request, n: 1, seed });
}

test('completions n=3: each choice is the request alone with seed + index; usage sums', { timeout: 60_000 }, async () => {
  const request = { model: 'm', prompt: 'Once upon a time', ...sampled, logprobs: 2 };
  const create = (r) => ctx.client.completions.create(r);
  const whole = await create({ ...request, n: 3, seed: 11 });
  assert.deepEqual(whole.choices.map((c) => c.index), [0, 1, 2]);
  const singles = [];
  for (let i = 0; i < 3; i++) singles.push(await alone(create, request, 11 + i));
  for (let i = 0; i < 3; i++) {
    const choice = whole.choices[i];
    const single = singles[i].choices[0];
    assert.equal(choice.text, single.text, `choice ${i}`);
    assert.equal(choice.finish_reason, single.finish_reason);
    // Logprobs per choice: the choice's own tokens, offsets from its own start.
    assert.deepEqual(choice.logprobs, single.logprobs, `choice ${i} logprobs`);
    assert.equal(choice.logprobs.tokens.join(''), choice.text);
  }
  assert.notEqual(whole.choices[0].text, whole.choices[1].text, 'the seeds differ');
  assert.equal(whole.usage.prompt_tokens, singles[0].usage.prompt_tokens);
  assert.equal(whole.usage.completion_tokens, singles.reduce((s, r) => s + r.usage.completion_tokens, 0));
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);
});

test('chat n=3 streamed: every index once, its own finish, one usage chunk, one [DONE]', { timeout: 60_000 }, async () => {
  const request = { model: 'm', messages, ...sampled, seed: 5 };
  const stream = await ctx.client.chat.completions.create(
    { ...request, n: 3, stream: true, stream_options: { include_usage: true } });
  const content = ['', '', ''];
  const finishes = [[], [], []];
  const usages = [];
  for await (const chunk of stream) {
    if (chunk.usage) {
      usages.push(chunk.usage);
      assert.deepEqual(chunk.choices, []);
      continue;
    }
    assert.equal(chunk.choices.length, 1);
    const { index, delta, finish_reason: finish } = chunk.choices[0];
    assert.ok(index >= 0 && index < 3, `index ${index}`);
    assert.equal(finishes[index].length, 0, `choice ${index} has a chunk after its finish`);
    content[index] += delta.content ?? '';
    if (finish) finishes[index].push(finish);
  }
  assert.deepEqual(finishes.map((f) => f.length), [1, 1, 1]);
  assert.equal(usages.length, 1);

  const singles = [];
  for (let i = 0; i < 3; i++) singles.push(await alone((r) => ctx.client.chat.completions.create(r), request, 5 + i));
  assert.deepEqual(content, singles.map((s) => s.choices[0].message.content));
  assert.deepEqual(finishes.map((f) => f[0]), singles.map((s) => s.choices[0].finish_reason));
  assert.equal(usages[0].prompt_tokens, singles[0].usage.prompt_tokens);
  assert.equal(usages[0].completion_tokens, singles.reduce((s, r) => s + r.usage.completion_tokens, 0));

  // The raw stream: the usage chunk after every choice's finish, then one [DONE], last.
  const res = await postJson(ctx.server.baseURL, '/v1/chat/completions',
    { ...request, n: 3, stream: true, stream_options: { include_usage: true } });
  assert.equal(res.status, 200);
  const sse = parseSse(await res.text());
  assert.ok(sse.doneLast);
  assert.equal(sse.raw.split('data: [DONE]').length - 1, 1);
  const usageAt = sse.data.findIndex((c) => c.usage);
  assert.equal(usageAt, sse.data.length - 1, 'the usage chunk comes last');
  const finishedIndices = sse.data.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0].index);
  assert.deepEqual(finishedIndices.sort(), [0, 1, 2]);
});

test('completions streamed with n=2 equal the whole response', { timeout: 60_000 }, async () => {
  const request = { model: 'm', prompt: 'The little cat', ...sampled, n: 2, seed: 21 };
  const whole = await ctx.client.completions.create(request);
  const stream = await ctx.client.completions.create({ ...request, stream: true });
  const text = ['', ''];
  const finish = [null, null];
  for await (const chunk of stream) {
    const { index, text: t, finish_reason: f } = chunk.choices[0];
    text[index] += t;
    if (f) finish[index] = f;
  }
  assert.deepEqual(text, whole.choices.map((c) => c.text));
  assert.deepEqual(finish, whole.choices.map((c) => c.finish_reason));
});

test('greedy n=2 gives two identical choices; seeded n=2 reproduces across calls', { timeout: 60_000 }, async () => {
  const greedy = await ctx.client.chat.completions.create({ model: 'm', messages, max_tokens: 16, temperature: 0, n: 2 });
  assert.equal(greedy.choices.length, 2);
  assert.equal(greedy.choices[0].message.content, greedy.choices[1].message.content);
  assert.ok(greedy.choices[0].message.content.length > 0);

  const seeded = { model: 'm', messages, ...sampled, n: 2, seed: 1234 };
  const a = await ctx.client.chat.completions.create(seeded);
  const b = await ctx.client.chat.completions.create(seeded);
  assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
  assert.notEqual(a.choices[0].message.content, a.choices[1].message.content);
});

test('chat logprobs per choice', { timeout: 60_000 }, async () => {
  const request = { model: 'm', messages, ...sampled, seed: 9, logprobs: true, top_logprobs: 2 };
  const whole = await ctx.client.chat.completions.create({ ...request, n: 2 });
  for (let i = 0; i < 2; i++) {
    const single = await ctx.client.chat.completions.create({ ...request, seed: 9 + i });
    assert.deepEqual(whole.choices[i].logprobs, single.choices[0].logprobs, `choice ${i}`);
  }
  assert.notDeepEqual(whole.choices[0].logprobs, whole.choices[1].logprobs);
});

test('n out of range or not an integer is 400 with param n', { timeout: 30_000 }, async () => {
  for (const n of [0, 17, 1.5, '2']) {
    for (const [route, body] of [['/v1/chat/completions', { messages }], ['/v1/completions', { prompt: 'Once' }]]) {
      const res = await postJson(ctx.server.baseURL, route, { ...body, n });
      assert.equal(res.status, 400, `${route} n=${n}`);
      const error = await errorOf(res);
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(error.param, 'n');
    }
  }
  const res = await postJson(ctx.server.baseURL, '/v1/completions', { prompt: 'Once', n: 2, best_of: 3 });
  assert.equal(res.status, 400);
  assert.equal((await errorOf(res)).param, 'best_of');
});

test('n=4 evaluates a long prompt once: the other choices take its blocks from the cache', { timeout: 60_000 }, async (t) => {
  const blockSize = 16;  // the engine's KV block (EngineOptions::block_size)
  // A prompt of its own (nothing cached yet), about 400 of the model's 512 positions.
  const prompt = 'Tom had a red ball and a blue kite. '.repeat(22) + 'One day';
  const before = await metrics(ctx.server.baseURL);
  const res = await ctx.client.completions.create({ model: 'm', prompt, max_tokens: 4, temperature: 0, n: 4 });
  const grown = (m, name) => sampleValue(m, name) - sampleValue(before, name);
  const after = await metricsWhen(ctx.server.baseURL,
    (m) => grown(m, 'lmserve_generated_tokens_total') >= res.usage.completion_tokens);
  const grew = (name) => grown(after, name);
  const P = res.usage.prompt_tokens;
  assert.ok(P > 300 && P < 500, `prompt of ${P} tokens`);
  // What was cached before this request: at most the start that earlier prompts shared (BOS).
  assert.ok(res.usage.prompt_tokens_details.cached_tokens < blockSize);
  const fullBlocks = Math.floor((P - 1) / blockSize) * blockSize;
  assert.equal(grew('lmserve_prompt_tokens_total'), 4 * P, 'four sequences admitted');
  assert.ok(grew('lmserve_cached_prompt_tokens_total') >= 3 * fullBlocks,
    `cached ${grew('lmserve_cached_prompt_tokens_total')}, want >= ${3 * fullBlocks}`);
  const evaluated = grew('lmserve_prompt_tokens_total') - grew('lmserve_cached_prompt_tokens_total');
  t.diagnostic(`prompt ${P} tokens, n=4: admitted ${grew('lmserve_prompt_tokens_total')}, `
    + `cached ${grew('lmserve_cached_prompt_tokens_total')}, evaluated ${evaluated}`);
  assert.ok(evaluated <= P + 3 * blockSize, `${evaluated} prompt tokens evaluated for a prompt of ${P}`);
  assert.equal(grew('lmserve_generated_tokens_total'), res.usage.completion_tokens);
  assert.equal(res.usage.completion_tokens, 16);
});

test('choices that cannot share the KV pool run one after another', { timeout: 120_000 }, async () => {
  // Room for one context (512 positions, 32 blocks of 10 KiB at f16) and a little more: the
  // second choice waits until the first one's blocks are free.
  const small = await startServer(['--kv-memory', String(40 * 10240)]);
  try {
    const client = await clientFor(small);
    const request = { model: 'm', prompt: 'Once upon a time', max_tokens: 400, ignore_eos: true, temperature: 1, seed: 3 };
    const whole = await client.completions.create({ ...request, n: 3 });
    assert.equal(whole.choices.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.equal(whole.choices[i].finish_reason, 'length');
      const single = await client.completions.create({ ...request, seed: 3 + i });
      assert.equal(whole.choices[i].text, single.choices[0].text, `choice ${i}`);
    }
    assert.equal(whole.usage.completion_tokens, 1200);
  } finally {
    assert.deepEqual(await small.stop(), { code: 0, signal: null });
  }
});

test('a client that leaves an n=3 stream cancels all three', { timeout: 60_000 }, async () => {
  // The first engine step stalls, so the generations are certainly still running when the
  // client leaves.
  const server = await startServer([], { env: { LMSERVE_TEST_STALL_STEP_MS: '1500' } });
  try {
    const res = await postJson(server.baseURL, '/v1/completions',
      { prompt: 'Once upon a time', max_tokens: 400, ignore_eos: true, n: 3, stream: true });
    assert.equal(res.status, 200);
    await res.body.cancel();  // closes the connection
    const cancelled = (m) => sampleValue(m, 'lmserve_requests_finished_total', { finish_reason: 'cancelled' }) ?? 0;
    const m = await metricsWhen(server.baseURL,
      (x) => cancelled(x) >= 3 && sampleValue(x, 'lmserve_sequences_running') === 0, 20_000);
    assert.equal(cancelled(m), 3);
    assert.equal(sampleValue(m, 'lmserve_sequences_running'), 0);
    assert.equal(sampleValue(m, 'lmserve_sequences_queued'), 0);
    // No sequence holds a block: every block is free or kept by the prefix cache.
    assert.equal(sampleValue(m, 'lmserve_kv_blocks_free') + sampleValue(m, 'lmserve_kv_blocks_cached'),
      sampleValue(m, 'lmserve_kv_blocks_total'));
    assert.equal(sampleValue(m, 'lmserve_generated_tokens_total') < 3 * 400, true);
  } finally {
    assert.deepEqual(await server.stop(), { code: 0, signal: null });
  }
});
