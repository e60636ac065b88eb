// Serving a .gguf file: the weights and the tokenizer both come from stories260K.gguf, and
// greedy completions of text prompts equal llama2.c's, as with the HF directory.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { modelDir, postJson, readJson, startServer } from './helpers.mjs';

const reference = readJson(path.join(modelDir, 'reference_greedy.json'));
const gguf = path.join(modelDir, 'stories260K.gguf');
let server;

before(async () => { server = await startServer([], { model: gguf }); });
after(async () => { await server?.stop(); });

for (const [i, c] of reference.cases.entries()) {
  test(`gguf greedy case ${i}: ${JSON.stringify(c.prompt).slice(0, 40)}`, async () => {
    const res = await postJson(server.baseURL, '/v1/completions', {
      prompt: c.prompt, temperature: 0, max_tokens: c.output_ids.length,
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.usage.prompt_tokens, c.prompt_ids.length);
    assert.equal(body.choices[0].text, c.output_text_hf);
    assert.equal(body.choices[0].finish_reason, 'length');
  });
}

test('the served id is the .gguf path and chat works without a template', async () => {
  const models = await (await fetch(`${server.baseURL}/v1/models`)).json();
  assert.equal(models.data[0].id, gguf);
  const res = await postJson(server.baseURL, '/v1/chat/completions', {
    messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 8, temperature: 0,
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.usage.completion_tokens, 8);
  assert.equal(typeof body.choices[0].message.content, 'string');
});
