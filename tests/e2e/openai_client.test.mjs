// The official OpenAI JS client against lmserve: chat and completions, streamed and not;
// greedy stream/non-stream equivalence; stop strings (never leaked, even partially).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOpenAI, modelDir, serveForTests } from './helpers.mjs';

const OpenAI = await loadOpenAI();

const ctx = serveForTests();

const messages = [{ role: 'user', content: 'Tell me a story about a cat.' }];

test('chat completion (non-streaming)', { timeout: 60_000 }, async () => {
  const completion = await ctx.client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 30 });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, 'gpt-4o-mini', 'the request model string is echoed');
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(completion.choices[0].finish_reason));
  assert.ok(completion.usage.completion_tokens <= 30);
});

test('chat completion streamed with for await', { timeout: 60_000 }, async () => {
  const stream = await ctx.client.chat.completions.create({
    model: modelDir, messages, max_tokens: 30, stream: true, stream_options: { include_usage: true },
  });
  const ids = new Set();
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    ids.add(chunk.id);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.equal(ids.size, 1);
  assert.ok(chunks >= 3);
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage && usage.completion_tokens >= 1 && usage.completion_tokens <= 30);
  assert.equal(typeof text, 'string');
});

test('chat.completions.stream() and finalChatCompletion()', { timeout: 60_000 }, async () => {
  const stream = ctx.client.chat.completions.stream({ model: modelDir, messages, max_tokens: 25, temperature: 0 });
  let deltas = '';
  stream.on('content', (delta) => { deltas += delta; });
  const final = await stream.finalChatCompletion();
  assert.equal(final.choices[0].message.role, 'assistant');
  assert.equal(final.choices[0].message.content ?? '', deltas);
  const direct = await ctx.client.chat.completions.create({ model: modelDir, messages, max_tokens: 25, temperature: 0 });
  assert.equal(final.choices[0].message.content, direct.choices[0].message.content);
  assert.equal(final.choices[0].finish_reason, direct.choices[0].finish_reason);
});

test('text completion, streamed and not', { timeout: 60_000 }, async () => {
  const completion = await ctx.client.completions.create({ model: modelDir, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices[0].finish_reason, 'length');
  assert.equal(completion.usage.completion_tokens, 20);
  assert.ok(completion.choices[0].text.length > 0);

  const stream = await ctx.client.completions.create({
    model: modelDir, prompt: 'Once upon a time', max_tokens: 20, temperature: 0, stream: true,
  });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'text_completion');
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, completion.choices[0].text);
  assert.equal(finish, 'length');
});

// Collects a streamed chat or completion into { text, finish, usage }.
async function collect(stream, chat) {
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += (chat ? choice.delta.content : choice.text) ?? '';
      finish = choice.finish_reason ?? finish;
    }
  }
  return { text, finish, usage };
}

// A repeated request has the same usage, except that its whole prompt but the last token
// (whose logits must be computed) now comes from the prefix cache.
function assertSameUsageAfterRepeat(repeat, first) {
  const { prompt_tokens_details: cached, ...rest } = repeat;
  const { prompt_tokens_details: _, ...expected } = first;
  assert.deepEqual(rest, expected);
  assert.equal(cached.cached_tokens, first.prompt_tokens - 1);
}

test('greedy stream and non-stream agree byte for byte (chat and completions)', { timeout: 120_000 }, async () => {
  for (const max_tokens of [1, 7, 64]) {
    const chatReq = { model: modelDir, messages, max_tokens, temperature: 0 };
    const full = await ctx.client.chat.completions.create(chatReq);
    const streamed = await collect(await ctx.client.chat.completions.create({
      ...chatReq, stream: true, stream_options: { include_usage: true } }), true);
    assert.equal(streamed.text, full.choices[0].message.content ?? '');
    assert.equal(streamed.finish, full.choices[0].finish_reason);
    assertSameUsageAfterRepeat(streamed.usage, full.usage);

    const textReq = { model: modelDir, prompt: 'Lily and Tom went to the park', max_tokens, temperature: 0 };
    const fullText = await ctx.client.completions.create(textReq);
    const streamedText = await collect(await ctx.client.completions.create({
      ...textReq, stream: true, stream_options: { include_usage: true } }), false);
    assert.equal(streamedText.text, fullText.choices[0].text);
    assert.equal(streamedText.finish, fullText.choices[0].finish_reason);
    assertSameUsageAfterRepeat(streamedText.usage, fullText.usage);
  }
});

test('stop strings: a string and a list, absent from the output, streamed or not', { timeout: 120_000 }, async () => {
  const prompt = 'Once upon a time';
  const base = await ctx.client.completions.create({ model: modelDir, prompt, max_tokens: 80, temperature: 0 });
  const reference = base.choices[0].text;
  // Stop strings that really occur in the greedy continuation, several tokens long so that
  // a streaming implementation without hold-back would leak their beginning.
  const words = reference.split(/(?=[ .,])/).filter((w) => w.trim().length >= 3);
  assert.ok(words.length >= 4, `continuation too short to pick stop strings: ${JSON.stringify(reference)}`);
  const single = words[2] + words[3];
  const list = [words[3], 'zzzz-not-there', words[1]];

  const cases = [
    [single, reference.slice(0, reference.indexOf(single))],
    [list, reference.slice(0, Math.min(...list.map((s) => reference.indexOf(s)).filter((i) => i >= 0)))],
  ];
  for (const [stop, expected] of cases) {
    const full = await ctx.client.completions.create({ model: modelDir, prompt, max_tokens: 80, temperature: 0, stop });
    assert.equal(full.choices[0].text, expected, `stop ${JSON.stringify(stop)}`);
    assert.equal(full.choices[0].finish_reason, 'stop');
    const streamed = await collect(await ctx.client.completions.create({
      model: modelDir, prompt, max_tokens: 80, temperature: 0, stop, stream: true }), false);
    assert.equal(streamed.text, expected, `streamed, stop ${JSON.stringify(stop)}`);
    assert.equal(streamed.finish, 'stop');
  }

  // Chat, streamed: the same rule on the assistant's text.
  const chatFull = await ctx.client.chat.completions.create({ model: modelDir, messages, max_tokens: 60, temperature: 0 });
  const chatText = chatFull.choices[0].message.content ?? '';
  const chatWords = chatText.split(/(?=[ .,])/).filter((w) => w.trim().length >= 3);
  assert.ok(chatWords.length >= 2, `chat answer too short to pick a stop string: ${JSON.stringify(chatText)}`);
  const chatStop = chatWords[1];
  const chatExpected = chatText.slice(0, chatText.indexOf(chatStop));
  const chatStreamed = await collect(await ctx.client.chat.completions.create({
    model: modelDir, messages, max_tokens: 60, temperature: 0, stop: [chatStop], stream: true }), true);
  assert.equal(chatStreamed.text, chatExpected);
  assert.equal(chatStreamed.finish, 'stop');
});

test('the client surfaces 400s as BadRequestError with the param', async () => {
  await assert.rejects(
    ctx.client.chat.completions.create({ model: modelDir, messages, temperature: -3 }),
    (err) => err instanceof OpenAI.BadRequestError && err.status === 400 && err.param === 'temperature'
      && err.code === 'invalid_value',
  );
  await assert.rejects(
    ctx.client.chat.completions.create({ model: modelDir, messages: [] }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === 'messages',
  );
  const ok = await ctx.client.chat.completions.create({ model: modelDir, messages, max_tokens: 2 });
  assert.equal(ok.object, 'chat.completion');
});

test('models.list() through the client', async () => {
  const page = await ctx.client.models.list();
  assert.deepEqual(page.data.map((m) => m.id), [modelDir]);
  const model = await ctx.client.models.retrieve(modelDir);
  assert.equal(model.owned_by, 'lmserve');
});
