// POST /tokenize and /detokenize (llama-server's shapes) on the real stories260K tokenizer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { errorOf, modelDir, postJson, readJson, startServer } from './helpers.mjs';

const reference = readJson(path.join(modelDir, 'reference_greedy.json'));
let server;

before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

const call = async (route, body) => {
  const res = await postJson(server.baseURL, route, body);
  return { status: res.status, body: await res.json() };
};

test('tokenize with add_special gives llama2.c ids for every reference prompt', async () => {
  for (const c of reference.cases) {
    const { status, body } = await call('/tokenize', { content: c.prompt, add_special: true });
    assert.equal(status, 200);
    assert.deepEqual(body, { tokens: c.prompt_ids }, JSON.stringify(c.prompt));
  }
});

test('tokenize defaults: no BOS, special text parsed', async () => {
  const plain = await call('/tokenize', { content: 'Once upon a time' });
  assert.deepEqual(plain.body.tokens, reference.cases[1].prompt_ids.slice(1));
  const special = await call('/tokenize', { content: 'x</s>y' });
  assert.ok(special.body.tokens.includes(2));
  const literal = await call('/tokenize', { content: 'x</s>y', parse_special: false });
  assert.ok(!literal.body.tokens.includes(2));
});

test('with_pieces gives text pieces, and bytes for pieces that are not UTF-8 alone', async () => {
  const { body } = await call('/tokenize', { content: 'a 🐶', with_pieces: true });
  const dog = [...Buffer.from('🐶')];
  const byteTokens = body.tokens.filter((t) => Array.isArray(t.piece));
  assert.deepEqual(byteTokens.map((t) => t.piece[0]), dog);
  assert.deepEqual(byteTokens.map((t) => t.id), dog.map((b) => b + 3));
  for (const t of body.tokens) assert.ok(Number.isInteger(t.id));
  assert.equal(body.tokens[0].piece, ' a');
});

test('detokenize returns the streamed text of the ids', async () => {
  const c = reference.cases[2];
  const { status, body } = await call('/detokenize', { tokens: c.output_ids });
  assert.equal(status, 200);
  assert.deepEqual(body, { content: c.output_text_hf });
  const half = await call('/detokenize', { tokens: [...Buffer.from('🐶')].slice(0, 2).map((b) => b + 3) });
  assert.equal(half.body.content, '\uFFFD\uFFFD');
});

test('bad input gets an OpenAI error and the server keeps serving', async () => {
  const cases = [
    ['/tokenize', {}, 'missing_required_parameter', 'content'],
    ['/tokenize', { content: ['x'] }, 'invalid_type', 'content'],
    ['/detokenize', { tokens: [1, 512] }, 'invalid_value', 'tokens[1]'],
    ['/detokenize', { tokens: [1.5] }, 'invalid_type', 'tokens[0]'],
    ['/detokenize', '{"tokens": [1,', 'invalid_json', null],
  ];
  for (const [route, body, code, param] of cases) {
    const res = await postJson(server.baseURL, route, body);
    assert.equal(res.status, 400);
    const error = await errorOf(res);
    assert.equal(error.code, code);
    assert.equal(error.param, param);
  }
  assert.equal((await call('/tokenize', { content: 'ok' })).status, 200);
});
