// Sampling controls through the official OpenAI client: logprobs in the chat and legacy
// completions shapes (streamed chunks concatenate to the whole response's list), logit_bias,
// penalties, stop_token_ids / min_tokens / ignore_eos, and 429 when the queue is full.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postJson, serveForTests, startServer } from './helpers.mjs';

const ctx = serveForTests();

const messages = [{ role: 'user', content: 'Tell me a story about a cat.' }];

test('chat logprobs: sampled token, sorted alternatives, bytes; stream == whole', { timeout: 60_000 }, async () => {
  const request = { model: 'm', messages, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 3 };
  const whole = await ctx.client.chat.completions.create(request);
  const content = whole.choices[0].logprobs.content;
  assert.equal(content.length, whole.usage.completion_tokens);
  for (const entry of content) {
    assert.equal(typeof entry.token, 'string');
    assert.ok(entry.logprob <= 0);
    assert.ok(Array.isArray(entry.bytes) && entry.bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256));
    assert.equal(entry.top_logprobs.length, 3);
    // Greedy: the sampled token is the best alternative; alternatives are sorted.
    assert.equal(entry.top_logprobs[0].token, entry.token);
    assert.equal(entry.top_logprobs[0].logprob, entry.logprob);
    for (let i = 1; i < 3; ++i) assert.ok(entry.top_logprobs[i - 1].logprob >= entry.top_logprobs[i].logprob);
  }
  // The tokens' bytes spell the content (SentencePiece's leading space aside, which decoding
  // drops at the start of a text).
  const spelled = Buffer.concat(content.map((e) => Buffer.from(e.bytes))).toString('utf8');
  assert.equal(spelled.trimStart(), whole.choices[0].message.content.trimStart());

  const stream = await ctx.client.chat.completions.create({ ...request, stream: true });
  const streamed = [];
  for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
  assert.deepEqual(streamed, content);
});

test('completions logprobs: the legacy object, integer form', { timeout: 60_000 }, async () => {
  const request = { model: 'm', prompt: 'Once upon a time', max_tokens: 10, temperature: 0, logprobs: 2 };
  const whole = await ctx.client.completions.create(request);
  const lp = whole.choices[0].logprobs;
  assert.equal(lp.tokens.length, 10);
  assert.equal(lp.token_logprobs.length, 10);
  assert.equal(lp.top_logprobs.length, 10);
  assert.equal(lp.tokens.join(''), whole.choices[0].text);
  assert.equal(lp.text_offset[0], 0);
  for (let i = 1; i < 10; ++i) assert.equal(lp.text_offset[i], lp.text_offset[i - 1] + [...lp.tokens[i - 1]].length);
  for (const top of lp.top_logprobs) assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 2);

  const stream = await ctx.client.completions.create({ ...request, stream: true });
  const tokens = [];
  const offsets = [];
  for await (const chunk of stream) {
    tokens.push(...(chunk.choices[0]?.logprobs?.tokens ?? []));
    offsets.push(...(chunk.choices[0]?.logprobs?.text_offset ?? []));
  }
  assert.deepEqual(tokens, lp.tokens);
  assert.deepEqual(offsets, lp.text_offset);

  const none = await ctx.client.completions.create({ ...request, logprobs: 0 });
  assert.equal(none.choices[0].logprobs.top_logprobs, null);
});

test('logit_bias forces a token; penalties and stop controls are accepted and applied', { timeout: 60_000 }, async () => {
  const forced = await postJson(ctx.server.baseURL, '/v1/completions', {
    prompt: 'Once upon a time', max_tokens: 5, temperature: 0, logit_bias: { 300: 100 }, logprobs: 0,
  });
  assert.equal(forced.status, 200);
  const body = await forced.json();
  assert.ok(body.choices[0].logprobs.tokens.every((t) => t === body.choices[0].logprobs.tokens[0]));

  const penalised = await postJson(ctx.server.baseURL, '/v1/completions', {
    prompt: 'Once upon a time', max_tokens: 40, temperature: 0, presence_penalty: 1.5, frequency_penalty: 0.5,
  });
  assert.equal(penalised.status, 200);
  const plain = await (await postJson(ctx.server.baseURL, '/v1/completions', {
    prompt: 'Once upon a time', max_tokens: 40, temperature: 0,
  })).json();
  assert.notEqual((await penalised.json()).choices[0].text, plain.choices[0].text);

  const bad = await postJson(ctx.server.baseURL, '/v1/completions', { prompt: 'x', logit_bias: { 99999999: 1 } });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.param, 'logit_bias');
});

test('a full queue answers 429 with Retry-After', { timeout: 120_000 }, async () => {
  // One slot and one queue place: of eight simultaneous long requests, at least one finds
  // both taken (a 400-token answer takes far longer than eight requests take to arrive).
  const busy = await startServer(['--parallel', '1', '--max-queue', '1']);
  try {
    const long = { prompt: 'Once upon a time', max_tokens: 400, temperature: 0, ignore_eos: true };
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => postJson(busy.baseURL, '/v1/completions', long)));
    const refused = responses.filter((r) => r.status === 429);
    const served = responses.filter((r) => r.status === 200);
    assert.ok(refused.length >= 1, 'no request was refused');
    assert.ok(served.length >= 1, 'no request was served');
    assert.equal(refused.length + served.length, 8);
    for (const r of refused) {
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal((await r.json()).error.type, 'rate_limit_error');
    }
    for (const r of served) assert.equal((await r.json()).usage.completion_tokens, 400);
  } finally {
    await busy.stop();
  }
});
