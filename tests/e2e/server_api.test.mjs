// The seed document's examples over raw HTTP (what curl does), the SSE sequence, routes, and
// bad input: every failure is an OpenAI error object and the next request still works.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { errorOf, modelDir, parseSse, postJson, startServer } from './helpers.mjs';

let server;
let base;
before(async () => {
  server = await startServer();
  base = server.baseURL;
});
after(async () => {
  const status = await server?.stop();
  assert.deepEqual(status, { code: 0, signal: null }, 'SIGTERM shuts down cleanly');
});

// The request from the seed document, verbatim.
const seedExample = {
  messages: [{ role: 'user', content: 'Say this is a test!' }],
  temperature: 0.7,
};

test('seed curl example: chat completion', { timeout: 60_000 }, async () => {
  const res = await postJson(base, '/v1/chat/completions', seedExample);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const body = await res.json();
  assert.match(body.id, /^chatcmpl-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(body.object, 'chat.completion');
  assert.equal(body.model, modelDir, 'no model in the request: the served id (--model as given)');
  assert.ok(Number.isInteger(body.created) && Math.abs(body.created - Date.now() / 1000) < 120);
  assert.match(body.system_fingerprint, /^fp_lmserve-/);
  assert.equal(body.choices.length, 1);
  const [choice] = body.choices;
  assert.equal(choice.index, 0);
  assert.equal(choice.message.role, 'assistant');
  assert.ok('content' in choice.message);
  assert.ok(choice.message.content === null || typeof choice.message.content === 'string');
  assert.equal(choice.message.refusal, null);
  assert.equal(choice.logprobs, null);
  assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
  const u = body.usage;
  assert.ok(u.prompt_tokens > 0);
  assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= 100, 'default max_tokens is 100');
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.equal(u.prompt_tokens_details.cached_tokens, 0);
  if (choice.finish_reason === 'length') assert.equal(u.completion_tokens, 100);
});

test('seed curl example, streamed with include_usage', { timeout: 60_000 }, async () => {
  const res = await postJson(base, '/v1/chat/completions', {
    ...seedExample, stream: true, stream_options: { include_usage: true }, max_tokens: 40,
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  const sse = parseSse(await res.text());
  assert.ok(sse.data.length >= 3, sse.raw);
  const id = sse.data[0].id;
  assert.match(id, /^chatcmpl-/);
  for (const chunk of sse.data) {
    assert.equal(chunk.id, id, 'same id on every chunk');
    assert.equal(chunk.created, sse.data[0].created);
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.ok('usage' in chunk);
  }
  assert.deepEqual(sse.data[0].choices[0].delta, { role: 'assistant', content: '' }, 'role first');
  const usageChunk = sse.data.at(-1);
  const finishChunk = sse.data.at(-2);
  assert.deepEqual(usageChunk.choices, []);
  assert.equal(usageChunk.usage.total_tokens, usageChunk.usage.prompt_tokens + usageChunk.usage.completion_tokens);
  assert.ok(usageChunk.usage.completion_tokens >= 1 && usageChunk.usage.completion_tokens <= 40);
  assert.deepEqual(finishChunk.choices[0].delta, {});
  assert.ok(['stop', 'length'].includes(finishChunk.choices[0].finish_reason));
  for (const chunk of sse.data.slice(0, -2)) {
    assert.equal(chunk.usage, null);
    assert.equal(chunk.choices[0].finish_reason, null);
  }
  for (const chunk of sse.data.slice(1, -2)) {
    assert.deepEqual(Object.keys(chunk.choices[0].delta), ['content']);
    assert.ok(chunk.choices[0].delta.content.length > 0);
  }
  assert.ok(sse.doneLast, 'data: [DONE] ends the stream');
  assert.ok(sse.comments.every((c) => /^keepalive \d+\/\d+$/.test(c)), sse.comments.join('|'));
});

test('models and health', async () => {
  for (const route of ['/v1/models', '/models', '/v1/models/?limit=3']) {
    const res = await fetch(base + route);
    assert.equal(res.status, 200, route);
    const body = await res.json();
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((m) => [m.id, m.object, m.owned_by]), [[modelDir, 'model', 'lmserve']]);
  }
  const one = await fetch(`${base}/v1/models/${encodeURIComponent(modelDir)}`);
  assert.equal(one.status, 200);
  assert.equal((await one.json()).id, modelDir);
  const miss = await fetch(`${base}/v1/models/gpt-4o`);
  assert.equal(miss.status, 404);
  assert.equal((await errorOf(miss)).code, 'model_not_found');
  for (const route of ['/health', '/v1/health']) {
    const res = await fetch(base + route);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  }
});

test('props: how the server was started', async () => {
  const res = await fetch(`${base}/props`);
  assert.equal(res.status, 200);
  const props = await res.json();
  assert.equal(props.model_path, modelDir);
  assert.equal(props.model_alias, modelDir);
  assert.ok(Number.isInteger(props.total_slots) && props.total_slots >= 1);
  assert.ok(props.default_generation_settings.n_ctx > 0);
  assert.equal(props.kv_cache_type, 'f16');
  assert.ok(['model', 'none'].includes(props.chat_template_source));
  assert.equal(props.chat_template === '', props.chat_template_source === 'none');
  assert.match(props.build_info, /^\S+-\S+$/);
  assert.match(props.cpu, /^(avx512|avx2|scalar) \(cpu: .+\)$/);
});

test('CORS: preflight and loopback origins only by default', async () => {
  const pre = await fetch(`${base}/v1/chat/completions`, {
    method: 'OPTIONS', headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'http://localhost:3000');
  assert.equal(pre.headers.get('access-control-allow-methods'), '*');
  assert.equal(pre.headers.get('access-control-allow-headers'), '*, Authorization');
  const foreign = await fetch(`${base}/v1/models`, { headers: { Origin: 'https://evil.example' } });
  assert.equal(foreign.status, 200);
  assert.equal(foreign.headers.get('access-control-allow-origin'), null);
});

const good = { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 };

async function expectGoodRequestWorks() {
  const res = await postJson(base, '/v1/chat/completions', good);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).object, 'chat.completion');
}

const badRequests = [
  ['invalid JSON', '/v1/chat/completions', '{"messages": [', 400, 'invalid_json', null],
  ['non-object JSON', '/v1/chat/completions', '[1, 2, 3]', 400, 'invalid_request', null],
  ['missing messages', '/v1/chat/completions', {}, 400, 'missing_required_parameter', 'messages'],
  ['missing prompt', '/v1/completions', { max_tokens: 3 }, 400, 'missing_required_parameter', 'prompt'],
  ['messages of the wrong type', '/v1/chat/completions', { messages: 'hello' }, 400, 'invalid_type', 'messages'],
  ['content of the wrong type', '/v1/chat/completions', { messages: [{ role: 'user', content: 7 }] }, 400,
    'invalid_type', 'messages[0].content'],
  ['image content part', '/v1/chat/completions',
    { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }, 400,
    'unsupported_parameter', 'messages[0].content'],
  ['max_tokens true', '/v1/chat/completions', { ...good, max_tokens: true }, 400, 'invalid_type', 'max_tokens'],
  ['max_tokens 0', '/v1/chat/completions', { ...good, max_tokens: 0 }, 400, 'invalid_value', 'max_tokens'],
  ['negative temperature', '/v1/chat/completions', { ...good, temperature: -1 }, 400, 'invalid_value', 'temperature'],
  ['top_p above 1', '/v1/completions', { prompt: 'x', top_p: 2 }, 400, 'invalid_value', 'top_p'],
  ['negative top_k', '/v1/completions', { prompt: 'x', top_k: -2 }, 400, 'invalid_value', 'top_k'],
  ['stop of the wrong type', '/v1/completions', { prompt: 'x', stop: 5 }, 400, 'invalid_type', 'stop'],
  ['n = 17', '/v1/chat/completions', { ...good, n: 17 }, 400, 'invalid_value', 'n'],
  ['token id out of range', '/v1/completions', { prompt: [1, 512] }, 400, 'invalid_value', 'prompt[1]'],
  ['empty prompt array', '/v1/completions', { prompt: [] }, 400, 'invalid_value', 'prompt'],
  ['prompt longer than the context', '/v1/completions', { prompt: Array(600).fill(300) }, 400,
    'context_length_exceeded', 'prompt'],
];

for (const [name, route, body, status, code, param] of badRequests) {
  test(`bad input: ${name} → ${status} ${code}, then a good request works`, { timeout: 60_000 }, async () => {
    const res = await postJson(base, route, body);
    assert.equal(res.status, status);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const error = await errorOf(res);
    assert.equal(error.code, code);
    assert.equal(error.param, param);
    assert.equal(error.type, 'invalid_request_error');
    assert.ok(error.message.length > 0);
    await expectGoodRequestWorks();
  });
}

test('bad input: unknown route and wrong method', async () => {
  const unknown = await fetch(`${base}/v1/embeddings`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
  assert.equal(unknown.status, 404);
  assert.equal((await errorOf(unknown)).code, 'not_found');
  await expectGoodRequestWorks();
  const wrong = await fetch(`${base}/v1/chat/completions`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'POST, OPTIONS');
  assert.equal((await errorOf(wrong)).code, 'method_not_allowed');
  await expectGoodRequestWorks();
  const form = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', body: JSON.stringify(good), headers: { 'Content-Type': 'text/plain' },
  });
  assert.equal(form.status, 415);
  await errorOf(form);
  await expectGoodRequestWorks();
});

test('a client that disconnects mid-stream does not disturb the server', { timeout: 60_000 }, async () => {
  const res = await postJson(base, '/v1/completions', { prompt: 'Once upon a time', max_tokens: 400, stream: true });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  await reader.read();  // the first bytes arrived: the request is generating
  await reader.cancel();  // closes the connection
  await expectGoodRequestWorks();
  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200);
});
