// `lmserve generate` on stories260K: greedy continuations equal llama2.c's, token for token,
// for every prompt of reference_greedy.json; bad flags exit with code 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { bin, fixturesDir as fixtures } from './helpers.mjs';

const run = promisify(execFile);
const modelDir = path.join(fixtures, 'models', 'stories260K');
const reference = JSON.parse(readFileSync(path.join(modelDir, 'reference_greedy.json'), 'utf8'));

// Under the HF stop rule id 1 (BOS) is an ordinary token, so "bos" cases continue past it.
const expectedIds = (c) => c.output_ids_ignoring_bos_stop ?? c.output_ids;

for (const [i, c] of reference.cases.entries()) {
  test(`generate greedy case ${i}: ${JSON.stringify(c.prompt).slice(0, 40)}`, async () => {
    const { stdout } = await run(bin, [
      'generate', '--model', modelDir, '--prompt', c.prompt,
      '-n', String(reference.max_new_tokens), '--temp', '0', '--json',
    ], { timeout: 60_000 });
    const out = JSON.parse(stdout);
    assert.deepEqual(out.tokens, expectedIds(c));
    assert.equal(out.finish_reason, 'length');
    assert.equal(out.usage.prompt_tokens, c.prompt_ids.length);
    assert.equal(out.usage.completion_tokens, reference.max_new_tokens);
    if (!c.output_ids_ignoring_bos_stop) assert.equal(out.text, c.output_text_hf);
  });
}

test('generate prints the text itself without --json', async () => {
  const c = reference.cases[1];
  const n = 20;
  const { stdout } = await run(bin, [
    'generate', '--model', modelDir, '--prompt', c.prompt, '-n', String(n), '--temp', '0',
  ], { timeout: 60_000 });
  const { stdout: json } = await run(bin, [
    'generate', '--model', modelDir, '--prompt', c.prompt, '-n', String(n), '--temp', '0', '--json',
  ], { timeout: 60_000 });
  assert.equal(stdout, JSON.parse(json).text + '\n');
});

for (const args of [
  ['--no-such-flag'],
  ['--port', 'eighty'],
  ['--port', '70000', '--model', modelDir],
  ['generate', '--model', modelDir],
  ['generate', '--model', modelDir, '--prompt', 'x', '-n', '0'],
  ['generate', '--model', modelDir, '--prompt', 'x', '--temp', '-1'],
]) {
  test(`usage error exits 2: ${args.join(' ')}`, async () => {
    await assert.rejects(run(bin, args, { timeout: 30_000 }), (err) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /^lmserve: /);
      assert.equal(err.stderr.trim().split('\n').length, 1);
      return true;
    });
  });
}

test('--help lists every flag with its default, --version prints the version', async () => {
  const { stdout: help } = await run(bin, ['--help']);
  for (const flag of ['--model', '--host', '--port', '--threads', '--max-tokens', '--temp', '--top-p']) {
    assert.match(help, new RegExp(flag));
  }
  assert.match(help, /127\.0\.0\.1/);
  assert.match(help, /8080/);
  const { stdout: version } = await run(bin, ['--version']);
  assert.match(version, /^\d+\.\d+\.\d+-/);
  assert.match(version, /kernels: (avx512|avx2|scalar) \(cpu: /);
  // LMSERVE_CPU forces a target; one this build does not have is a clear error.
  const { stdout: forced } = await run(bin, ['--version'], { env: { ...process.env, LMSERVE_CPU: 'scalar' } });
  assert.match(forced, /kernels: scalar \(cpu: /);
  await assert.rejects(
    run(bin, ['generate', '--model', modelDir, '--prompt', 'x'], { env: { ...process.env, LMSERVE_CPU: 'sse9' } }),
    (err) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /LMSERVE_CPU=sse9: unknown target/);
      return true;
    });
});

test('a missing model directory is a one-line error, exit 1', async () => {
  await assert.rejects(run(bin, ['generate', '--model', '/nonexistent/model', '--prompt', 'x']), (err) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /nonexistent/);
    return true;
  });
});
