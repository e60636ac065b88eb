// Chat output end to end with the official openai client: a scripted model (weights built
// so that greedy decoding writes a fixed text, scripted_model.mjs) with the real Qwen3
// tokenizer and chat template. Its tool call arrives as message.tool_calls and its thinking
// as reasoning_content, the same through create() and through stream() +
// finalChatCompletion(); /apply-template matches Python's rendering.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fixturesDir, postJson, readJson } from './helpers.mjs';
import { serveScripted } from './scripted_model.mjs';

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];

// The message a stream's chunks add up to (reasoning_content concatenated, which the SDK's
// snapshot does not do for fields it does not know).
function reasoningOf(chunks) {
  return chunks.map((c) => c.choices[0]?.delta?.reasoning_content ?? '').join('');
}

describe('a model whose answer is a tool call', () => {
  let s;
  before(async () => {
    s = await serveScripted(
      '<think>Use the weather tool.</think><tool_call>{"name":"get_weather","arguments":{"city": "Paris"}}</tool_call><|im_end|>');
  });
  after(async () => s?.stop());
  const params = () => ({ model: 'scripted', messages, tools, temperature: 0, max_tokens: 64 });

  test('create() gives message.tool_calls, reasoning_content and finish_reason tool_calls', async () => {
    const completion = await s.client.chat.completions.create(params());
    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.reasoning_content, 'Use the weather tool.');
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.match(call.id, /^call_[A-Za-z0-9]{24}$/);
    assert.equal(call.type, 'function');
    assert.deepEqual(call.function, { name: 'get_weather', arguments: '{"city":"Paris"}' });
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    assert.equal(completion.usage.completion_tokens, 23);
    assert.equal(completion.usage.completion_tokens_details.reasoning_tokens, 5);
  });

  test('stream() + finalChatCompletion() and the tool-call events give the same', async () => {
    const whole = (await s.client.chat.completions.create(params())).choices[0].message;
    const stream = s.client.chat.completions.stream({ ...params(), stream_options: { include_usage: true } });
    const chunks = [];
    const argumentsDone = [];
    stream.on('chunk', (chunk) => chunks.push(chunk));
    stream.on('tool_calls.function.arguments.done', (event) => argumentsDone.push(event));
    const final = await stream.finalChatCompletion();
    const message = final.choices[0].message;
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.equal(message.content ?? null, null, 'no markup leaks into content');
    assert.equal(message.tool_calls.length, 1);
    assert.match(message.tool_calls[0].id, /^call_[A-Za-z0-9]{24}$/);
    assert.equal(message.tool_calls[0].type, 'function');
    assert.deepEqual(message.tool_calls[0].function, whole.tool_calls[0].function);
    assert.deepEqual(argumentsDone.map(({ name, index, arguments: a }) => ({ name, index, a })),
      [{ name: 'get_weather', index: 0, a: '{"city":"Paris"}' }]);
    assert.equal(reasoningOf(chunks), whole.reasoning_content);
    // OpenAI's streamed form: the first piece names the call, later pieces carry arguments.
    const pieces = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.equal(pieces[0].id, message.tool_calls[0].id);
    assert.equal(pieces[0].function.name, 'get_weather');
    assert.equal(pieces.slice(1).map((p) => p.function.arguments).join(''), '{"city":"Paris"}');
    assert.equal(chunks.at(-1).usage.completion_tokens_details.reasoning_tokens, 5);
  });

  test('without tools (or tool_choice none) the call is plain content', async () => {
    for (const extra of [{ tools: undefined }, { tool_choice: 'none' }]) {
      const completion = await s.client.chat.completions.create({ ...params(), ...extra });
      const choice = completion.choices[0];
      assert.equal(choice.finish_reason, 'stop');
      assert.equal(choice.message.tool_calls, undefined);
      assert.equal(choice.message.content,
        '<tool_call>{"name":"get_weather","arguments":{"city": "Paris"}}</tool_call>');
    }
  });

  test('a stop string in the thinking or the call does not cut them', async () => {
    const completion = await s.client.chat.completions.create({ ...params(), stop: ['weather'] });
    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.reasoning_content, 'Use the weather tool.');
    assert.deepEqual(choice.message.tool_calls[0].function, { name: 'get_weather', arguments: '{"city":"Paris"}' });
  });

  test('n=2: each choice parses its own call and reasoning, whole and streamed', async () => {
    const completion = await s.client.chat.completions.create({ ...params(), n: 2 });
    assert.deepEqual(completion.choices.map((c) => c.index), [0, 1]);
    for (const choice of completion.choices) {
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.content, null);
      assert.equal(choice.message.reasoning_content, 'Use the weather tool.');
      assert.equal(choice.message.tool_calls.length, 1);
      assert.deepEqual(choice.message.tool_calls[0].function, { name: 'get_weather', arguments: '{"city":"Paris"}' });
    }
    assert.notEqual(completion.choices[0].message.tool_calls[0].id, completion.choices[1].message.tool_calls[0].id);
    assert.equal(completion.usage.completion_tokens, 2 * 23);
    assert.equal(completion.usage.completion_tokens_details.reasoning_tokens, 2 * 5);

    const stream = await s.client.chat.completions.create({ ...params(), n: 2, stream: true });
    const pieces = [[], []];
    const reasoning = ['', ''];
    const finish = [null, null];
    for await (const chunk of stream) {
      const { index, delta, finish_reason: f } = chunk.choices[0];
      pieces[index].push(...(delta.tool_calls ?? []));
      reasoning[index] += delta.reasoning_content ?? '';
      if (f) finish[index] = f;
    }
    assert.deepEqual(finish, ['tool_calls', 'tool_calls']);
    assert.deepEqual(reasoning, ['Use the weather tool.', 'Use the weather tool.']);
    for (const p of pieces) {
      assert.equal(p[0].function.name, 'get_weather');
      assert.equal(p.slice(1).map((x) => x.function.arguments).join(''), '{"city":"Paris"}');
    }
  });

  test('a call cut by max_tokens comes back as content, never dropped', async () => {
    const completion = await s.client.chat.completions.create({ ...params(), max_tokens: 12 });
    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, 'length');
    assert.equal(choice.message.tool_calls, undefined);
    assert.equal(choice.message.content, '<tool_call>{"name":"get');
  });
});

describe('--tool-call-format llama3_json: a bare JSON answer is the call', () => {
  let s;
  before(async () => {
    s = await serveScripted('{"name":"get_weather","parameters":{"city": "Paris"}}<|im_end|>',
      ['--tool-call-format', 'llama3_json']);
  });
  after(async () => s?.stop());

  test('create() and stream() agree', async () => {
    const params = { model: 'scripted', messages, tools, temperature: 0, max_tokens: 64 };
    const whole = (await s.client.chat.completions.create(params)).choices[0];
    assert.equal(whole.finish_reason, 'tool_calls');
    assert.equal(whole.message.content, null);
    assert.deepEqual(whole.message.tool_calls[0].function, { name: 'get_weather', arguments: '{"city":"Paris"}' });
    const final = await s.client.chat.completions.stream(params).finalChatCompletion();
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(final.choices[0].message.tool_calls[0].function, whole.message.tool_calls[0].function);
  });
});

describe('a model that thinks, then answers', () => {
  let s;
  before(async () => {
    s = await serveScripted('<think>Recall geography facts.</think>It is Paris!<|im_end|>');
  });
  after(async () => s?.stop());
  const params = () => ({ model: 'scripted', messages, temperature: 0, max_tokens: 64 });

  test('reasoning_content and content split the same streamed or not', async () => {
    const whole = await s.client.chat.completions.create(params());
    assert.equal(whole.choices[0].message.reasoning_content, 'Recall geography facts.');
    assert.equal(whole.choices[0].message.content, 'It is Paris!');
    assert.equal(whole.choices[0].finish_reason, 'stop');
    assert.equal(whole.usage.completion_tokens_details.reasoning_tokens, 5);

    const stream = s.client.chat.completions.stream(params());
    const chunks = [];
    let content = '';
    stream.on('chunk', (chunk) => chunks.push(chunk));
    stream.on('content', (delta) => { content += delta; });
    const final = await stream.finalChatCompletion();
    assert.equal(final.choices[0].message.content, 'It is Paris!');
    assert.equal(content, 'It is Paris!');
    assert.equal(reasoningOf(chunks), 'Recall geography facts.');
    assert.ok(!chunks.some((c) => (c.choices[0]?.delta?.content ?? '').includes('<think')));
  });

  test('stop strings end the answer, not the thinking (OpenAI: stop applies to the content)', async () => {
    const whole = await s.client.chat.completions.create({ ...params(), stop: ['a'] });
    assert.equal(whole.choices[0].message.reasoning_content, 'Recall geography facts.');
    assert.equal(whole.choices[0].message.content, 'It is P');
    assert.equal(whole.choices[0].finish_reason, 'stop');
    const chunks = [];
    const stream = s.client.chat.completions.stream({ ...params(), stop: ['a'] });
    stream.on('chunk', (chunk) => chunks.push(chunk));
    const final = await stream.finalChatCompletion();
    assert.equal(final.choices[0].message.content, 'It is P');
    assert.equal(final.choices[0].finish_reason, 'stop');
    assert.equal(reasoningOf(chunks), 'Recall geography facts.');
  });

  test('/apply-template renders the Qwen3 template exactly as Python does', async () => {
    const conversations = readJson(path.join(fixturesDir, 'templates', 'conversations.json'));
    const manifest = readJson(path.join(fixturesDir, 'templates', 'manifest.json'));
    const results = manifest.templates['Qwen-Qwen3-0.6B'].results;
    let checked = 0;
    for (const [n, conversation] of conversations.entries()) {
      // Tool-call arguments in the wire form, a JSON string, as the openai client sends them.
      const wire = conversation.messages.map((m) => (m.tool_calls ? {
        ...m,
        tool_calls: m.tool_calls.map((c) => ({ ...c, function: { ...c.function, arguments: JSON.stringify(c.function.arguments) } })),
      } : m));
      const body = { messages: wire, add_generation_prompt: conversation.add_generation_prompt };
      if (conversation.tools) body.tools = conversation.tools;
      if (conversation.documents) body.documents = conversation.documents;
      if (conversation.kwargs) body.chat_template_kwargs = conversation.kwargs;
      const response = await postJson(s.server.baseURL, '/apply-template', body);
      if (results[n] === 'ok') {
        assert.equal(response.status, 200, conversation.name);
        const expected = readFileSync(
          path.join(fixturesDir, 'templates', `Qwen-Qwen3-0.6B.expected.${n}.txt`), 'utf8');
        assert.equal((await response.json()).prompt, expected, conversation.name);
      } else {
        assert.equal(response.status, 400, conversation.name);
        assert.equal((await response.json()).error.code, 'template_error');
      }
      checked += 1;
    }
    assert.equal(checked, conversations.length);
  });
});

describe('--reasoning-format none: the thinking is content, and stop strings apply to it', () => {
  let s;
  before(async () => {
    s = await serveScripted('<think>Recall geography facts.</think>It is Paris!<|im_end|>',
      ['--reasoning-format', 'none']);
  });
  after(async () => s?.stop());

  test('the stop string ends the text where it first appears', async () => {
    const completion = await s.client.chat.completions.create({
      model: 'scripted', messages, temperature: 0, max_tokens: 64, stop: ['a'],
    });
    assert.equal(completion.choices[0].message.content, '<think>Rec');
    assert.equal(completion.choices[0].finish_reason, 'stop');
  });
});
