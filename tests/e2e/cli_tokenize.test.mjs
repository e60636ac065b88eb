// `lmserve tokenize` / `lmserve detokenize` on every accepted tokenizer path form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, copyFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { bin, fixturesDir as fixtures } from './helpers.mjs';

const run = promisify(execFile);
const storiesDir = path.join(fixtures, 'models', 'stories260K');
const reference = JSON.parse(readFileSync(path.join(storiesDir, 'reference_greedy.json'), 'utf8'));

const tokenize = async (model, ...args) =>
  (await run(bin, ['tokenize', '--model', model, ...args], { timeout: 30_000 })).stdout;

test('tokenize prints the ids llama2.c computed, for every path form', async (t) => {
  const tokDir = mkdtempSync(path.join(tmpdir(), 'lmserve-tok-'));
  t.after(() => rmSync(tokDir, { recursive: true, force: true }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(path.join(storiesDir, f), path.join(tokDir, f));
  }
  const forms = [
    storiesDir,                                   // a model directory
    path.join(storiesDir, 'tokenizer.json'),      // a bare tokenizer.json
    tokDir,                                       // tokenizer files only
    path.join(storiesDir, 'stories260K.gguf'),    // a GGUF
  ];
  for (const form of forms) {
    for (const c of reference.cases.slice(0, 6)) {
      const ids = JSON.parse(await tokenize(form, '--', c.prompt));
      assert.deepEqual(ids, c.prompt_ids, `${form}: ${JSON.stringify(c.prompt)}`);
    }
  }
});

test('tokenize --json gives ids and pieces; --no-special drops BOS', async () => {
  const out = JSON.parse(await tokenize(storiesDir, '--json', 'Once upon a time'));
  assert.deepEqual(out.ids, reference.cases[1].prompt_ids);
  assert.equal(out.pieces.length, out.ids.length);
  assert.equal(out.pieces[0], '<s>');
  assert.ok(out.pieces.slice(1).join('').replaceAll('\u2581', ' ').trim() === 'Once upon a time');
  const plain = JSON.parse(await tokenize(storiesDir, '--no-special', 'Once upon a time'));
  assert.deepEqual(plain, out.ids.slice(1));
});

test('special-token text is parsed unless --no-parse-special', async () => {
  const parsed = JSON.parse(await tokenize(storiesDir, 'x</s>y'));
  assert.deepEqual(parsed, [1, 410, 444, 2, 348]);
  const literal = JSON.parse(await tokenize(storiesDir, '--no-parse-special', 'x</s>y'));
  assert.ok(!literal.includes(2));
});

test('detokenize inverts tokenize', async () => {
  const c = reference.cases[2];
  const ids = [...c.prompt_ids, ...c.output_ids].map(String);
  const { stdout } = await run(bin, ['detokenize', '--model', storiesDir, '--skip-special', ...ids]);
  assert.equal(stdout, c.prompt + c.output_text + '\n');
});

test('detokenize rejects ids outside the vocabulary with exit code 2', async () => {
  await assert.rejects(run(bin, ['detokenize', '--model', storiesDir, '5', '512']), (err) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /512/);
    return true;
  });
});

test('tokenize reads a vocab-only GGUF (llama.cpp test vectors, no special tokens)', async () => {
  const vocab = path.join(fixtures, 'vocab', 'ggml-vocab-llama-bpe.gguf');
  const inputs = readFileSync(`${vocab}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  const outputs = readFileSync(`${vocab}.out`, 'utf8').split('\n');
  for (const i of [0, 1, 5]) {
    const ids = JSON.parse(await tokenize(vocab, '--no-special', '--', inputs[i]));
    assert.deepEqual(ids, outputs[i].trim().split(/\s+/).filter(Boolean).map(Number), JSON.stringify(inputs[i]));
  }
});

