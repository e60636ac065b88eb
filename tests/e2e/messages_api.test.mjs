// Anthropic's Messages API end to end with the official @anthropic-ai/sdk client, against the
// real binary on scripted models (scripted_model.mjs): messages.create, messages.stream, a
// tool_use/tool_result round trip, thinking (and its budget), stop sequences, countTokens,
// x-api-key, and errors in Anthropic's shape.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { anthropicClientFor, postJson } from './helpers.mjs';
import { serveScripted } from './scripted_model.mjs';

const key = 'sk-ant-local-test';
const tools = [{
  name: 'get_weather',
  description: 'Current weather of a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}];
const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];

async function serveWithAnthropic(output) {
  const s = await serveScripted(output, ['--api-key', key]);
  s.anthropic = await anthropicClientFor(s.server, { apiKey: key });
  return s;
}

// The SSE events of a raw streamed request: [{event, data}].
async function rawEvents(baseURL, body) {
  const res = await postJson(baseURL, '/v1/messages', { ...body, stream: true }, { 'x-api-key': key });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const text = await res.text();
  return text.split('\n\n').filter(Boolean).map((block) => {
    const [event, data] = block.split('\n');
    assert.match(event, /^event: /);
    assert.match(data, /^data: /);
    const parsed = JSON.parse(data.slice(6));
    assert.equal(parsed.type, event.slice(7));
    return parsed;
  });
}

describe('a model that answers in text', () => {
  let s;
  before(async () => { s = await serveWithAnthropic('The weather is sunny today.<|im_end|>'); });
  after(async () => s?.stop());

  test('messages.create gives a text block, end_turn and usage', async () => {
    const message = await s.anthropic.messages.create({
      model: 'scripted', max_tokens: 64, system: 'Be brief.', messages: ask,
    });
    assert.match(message.id, /^msg_/);
    assert.equal(message.type, 'message');
    assert.equal(message.role, 'assistant');
    assert.deepEqual(message.content, [{ type: 'text', text: 'The weather is sunny today.' }]);
    assert.equal(message.stop_reason, 'end_turn');
    assert.equal(message.stop_sequence, null);
    assert.ok(message.usage.input_tokens > 0);
    assert.equal(message.usage.output_tokens, 7);
  });

  test('messages.stream: the event sequence adds up to the same message', async () => {
    const params = { model: 'scripted', max_tokens: 64, messages: ask };
    const stream = s.anthropic.messages.stream(params);
    let text = '';
    stream.on('text', (delta) => { text += delta; });
    const final = await stream.finalMessage();
    assert.equal(text, 'The weather is sunny today.');
    assert.deepEqual(final.content, [{ type: 'text', text: 'The weather is sunny today.' }]);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.output_tokens, 7);

    const events = await rawEvents(s.server.baseURL, params);
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'message_start');
    assert.ok(types.includes('ping'));
    assert.deepEqual(types.filter((t) => t !== 'ping' && t !== 'content_block_delta'),
      ['message_start', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop']);
    const delta = events.find((e) => e.type === 'message_delta');
    assert.deepEqual(delta.delta, { stop_reason: 'end_turn', stop_sequence: null });
  });

  test('stop_sequences: stop_reason stop_sequence names the one that matched', async () => {
    const message = await s.anthropic.messages.create({
      model: 'scripted', max_tokens: 64, messages: ask, stop_sequences: ['never', ' sunny'],
    });
    assert.deepEqual(message.content, [{ type: 'text', text: 'The weather is' }]);
    assert.equal(message.stop_reason, 'stop_sequence');
    assert.equal(message.stop_sequence, ' sunny');
    const cut = await s.anthropic.messages.create({ model: 'scripted', max_tokens: 2, messages: ask });
    assert.equal(cut.stop_reason, 'max_tokens');
  });

  test('countTokens counts the prompt a request would have', async () => {
    const body = { model: 'scripted', system: 'Be brief.', messages: ask };
    const { input_tokens: counted } = await s.anthropic.messages.countTokens(body);
    const message = await s.anthropic.messages.create({ ...body, max_tokens: 4 });
    assert.equal(counted, message.usage.input_tokens + message.usage.cache_read_input_tokens);
  });

  test('errors come in Anthropic\'s shape with the matching status', async () => {
    await assert.rejects(s.anthropic.messages.create({ model: 'scripted', messages: ask }),
      (e) => e.status === 400 && e.error?.type === 'error' &&
        e.error.error.type === 'invalid_request_error' && /max_tokens/.test(e.error.error.message));
    const wrongKey = await anthropicClientFor(s.server, { apiKey: 'sk-wrong' });
    await assert.rejects(wrongKey.messages.create({ model: 'scripted', max_tokens: 8, messages: ask }),
      (e) => e.status === 401 && e.error?.error?.type === 'authentication_error');
    const res = await postJson(s.server.baseURL, '/v1/messages', {
      model: 'scripted', max_tokens: 8,
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', data: '' } }] }],
    }, { 'x-api-key': key, 'anthropic-version': '2023-06-01' });
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'invalid_request_error');
    assert.match(body.error.message, /'image'/);
    const tool = await postJson(s.server.baseURL, '/v1/messages', {
      model: 'scripted', max_tokens: 8, messages: ask, tools: [{ type: 'web_search_20250305', name: 'web_search' }],
    }, { 'x-api-key': key });
    assert.equal(tool.status, 400);
    assert.match((await tool.json()).error.message, /web_search_20250305/);
  });
});

describe('a model that thinks, then calls a tool', () => {
  let s;
  before(async () => {
    s = await serveWithAnthropic(
      '<think>Use the weather tool.</think><tool_call>{"name":"get_weather","arguments":{"city": "Paris"}}</tool_call><|im_end|>');
  });
  after(async () => s?.stop());

  test('thinking and tool_use blocks, stop_reason tool_use, streamed and not', async () => {
    const params = { model: 'scripted', max_tokens: 64, messages: ask, tools };
    const message = await s.anthropic.messages.create(params);
    assert.equal(message.stop_reason, 'tool_use');
    assert.deepEqual(message.content.map((b) => b.type), ['thinking', 'tool_use']);
    assert.equal(message.content[0].thinking, 'Use the weather tool.');
    const use = message.content[1];
    assert.match(use.id, /^call_/);
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { city: 'Paris' });

    const final = await s.anthropic.messages.stream(params).finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    assert.deepEqual(final.content.map((b) => b.type), ['thinking', 'tool_use']);
    assert.equal(final.content[0].thinking, 'Use the weather tool.');
    assert.deepEqual(final.content[1].input, { city: 'Paris' });
    const events = await rawEvents(s.server.baseURL, params);
    const deltas = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.type);
    assert.ok(deltas.includes('thinking_delta') && deltas.includes('input_json_delta'));
  });

  test('a tool_use / tool_result round trip', async () => {
    const first = await s.anthropic.messages.create({ model: 'scripted', max_tokens: 64, messages: ask, tools });
    const use = first.content.find((b) => b.type === 'tool_use');
    const messages = [...ask, { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny, 24 C' }] }];
    const second = await s.anthropic.messages.create({ model: 'scripted', max_tokens: 64, messages, tools });
    assert.equal(second.stop_reason, 'tool_use');
    // The tool result is in the prompt, and the first turn came from the prefix cache.
    const total = second.usage.input_tokens + second.usage.cache_read_input_tokens;
    const { input_tokens: counted } = await s.anthropic.messages.countTokens({ model: 'scripted', messages, tools });
    assert.equal(total, counted);
    const withoutResult = await s.anthropic.messages.countTokens({
      model: 'scripted', tools,
      messages: [...messages.slice(0, 2), { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '' }] }],
    });
    assert.ok(counted > withoutResult.input_tokens);
    assert.ok(second.usage.cache_read_input_tokens > 0);
  });

  test('thinking.budget_tokens ends the think block at the budget', async () => {
    const message = await s.anthropic.messages.create({
      model: 'scripted', max_tokens: 64, messages: ask, tools,
      thinking: { type: 'enabled', budget_tokens: 2 },
    });
    assert.equal(message.content[0].type, 'thinking');
    assert.equal(message.content[0].thinking, 'Use the');
    assert.equal(message.content[1].type, 'tool_use');
    await assert.rejects(s.anthropic.messages.create({
      model: 'scripted', max_tokens: 64, messages: ask, thinking: { type: 'enabled', budget_tokens: 64 },
    }), (e) => e.status === 400 && /budget_tokens/.test(e.error.error.message));
  });
});

describe('a model whose answer is a tool call', () => {
  let s;
  before(async () => {
    s = await serveWithAnthropic('<tool_call>{"name":"get_weather","arguments":{"city": "Paris"}}</tool_call><|im_end|>');
  });
  after(async () => s?.stop());

  test('tool_choice any forces a call; none leaves the call in text', async () => {
    const forced = await s.anthropic.messages.create({
      model: 'scripted', max_tokens: 64, messages: ask, tools, tool_choice: { type: 'any' },
    });
    assert.equal(forced.stop_reason, 'tool_use');
    const none = await s.anthropic.messages.create({
      model: 'scripted', max_tokens: 64, messages: ask, tools, tool_choice: { type: 'none' },
    });
    assert.equal(none.stop_reason, 'end_turn');
    assert.match(none.content.find((b) => b.type === 'text').text, /^<tool_call>/);
  });
});
