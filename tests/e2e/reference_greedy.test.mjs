// Acceptance: greedy /v1/completions on stories260K reproduces llama2.c's continuations for
// every case of reference_greedy.json, streamed and not.
//
// Why these requests (see the fixture README, "Stop rule" and "Leading space"):
// - prompt = prompt_ids (BOS included) as an int-array prompt, used verbatim;
// - max_tokens = len(output_ids): for "length" cases that is 200; for "bos" cases llama2.c
//   stopped *before* its BOS, and an HF-style server (EOS = id 2) continues past it, so
//   the first len(output_ids) greedy tokens are exactly output_ids either way;
// - every answer thus ends with finish_reason "length" and its text is the HF decode of
//   output_ids alone, i.e. output_text_hf (one leading space stripped by the decoder).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { modelDir, parseSse, postJson, readJson, startServer } from './helpers.mjs';

const reference = readJson(path.join(modelDir, 'reference_greedy.json'));
assert.ok(reference.cases.length === 18, 'reference_greedy.json has its 18 cases');

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const label = (c) => JSON.stringify(c.prompt).slice(0, 40);

for (const [i, c] of reference.cases.entries()) {
  test(`greedy case ${i} ${label(c)}: token-id prompt`, { timeout: 60_000 }, async () => {
    const request = { prompt: c.prompt_ids, temperature: 0, max_tokens: c.output_ids.length };
    const res = await postJson(server.baseURL, '/v1/completions', request);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.choices[0].text, c.output_text_hf);
    assert.equal(body.choices[0].finish_reason, 'length');
    assert.equal(body.usage.prompt_tokens, c.prompt_ids.length);
    assert.equal(body.usage.completion_tokens, c.output_ids.length);

    const streamed = await postJson(server.baseURL, '/v1/completions', {
      ...request, stream: true, stream_options: { include_usage: true },
    });
    assert.equal(streamed.status, 200);
    const sse = parseSse(await streamed.text());
    assert.ok(sse.doneLast);
    const text = sse.data.map((chunk) => chunk.choices[0]?.text ?? '').join('');
    assert.equal(text, c.output_text_hf);
    assert.equal(sse.data.at(-2).choices[0].finish_reason, 'length');
    // The repeat finds the whole prompt in the prefix cache (all but the last token, whose
    // logits must be computed); otherwise the usage is the same.
    const { prompt_tokens_details: cached, ...rest } = sse.data.at(-1).usage;
    const { prompt_tokens_details: _, ...expected } = body.usage;
    assert.deepEqual(rest, expected);
    assert.equal(cached.cached_tokens, c.prompt_ids.length - 1);
  });
}

// The same through the tokenizer: a text prompt gets BOS from the tokenizer and must encode
// exactly as llama2.c did.
for (const [i, c] of reference.cases.entries()) {
  test(`greedy case ${i} ${label(c)}: text prompt`, { timeout: 60_000 }, async () => {
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
