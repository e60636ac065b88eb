// API keys on the real binary: keys from --api-key, --api-key-file and LMSERVE_API_KEY are
// all accepted, as a bearer token (the openai client's api_key) or X-Api-Key; anything else
// is 401 invalid_api_key, except /health.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorOf, loadOpenAI, startServer } from './helpers.mjs';

let server;
let base;
let dir;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lmserve-keys-'));
  const file = path.join(dir, 'keys');
  writeFileSync(file, '# keys of the test\n\n  from-file  \n#not-a-key\n');
  server = await startServer(['--api-key', 'from-flag', '--api-key', 'second-flag', '--api-key-file', file],
    { env: { LMSERVE_API_KEY: 'from-env' } });
  base = server.baseURL;
});
after(async () => {
  assert.deepEqual(await server?.stop(), { code: 0, signal: null });
  rmSync(dir, { recursive: true, force: true });
});

const get = (route, headers = {}) => fetch(base + route, { headers });

async function assertRefused(res) {
  assert.equal(res.status, 401);
  assert.equal(res.headers.get('www-authenticate'), 'Bearer');
  const error = await errorOf(res);
  assert.equal(error.type, 'authentication_error');
  assert.equal(error.code, 'invalid_api_key');
}

test('every source of keys works, in both header forms', async () => {
  for (const key of ['from-flag', 'second-flag', 'from-file', 'from-env']) {
    assert.equal((await get('/v1/models', { Authorization: `Bearer ${key}` })).status, 200, key);
    assert.equal((await get('/v1/models', { 'X-Api-Key': key })).status, 200, key);
  }
});

test('a missing or wrong key is refused; /health stays open', async () => {
  await assertRefused(await get('/v1/models'));
  await assertRefused(await get('/metrics', { Authorization: 'Bearer not-a-key' }));
  await assertRefused(await get('/v1/models', { Authorization: 'Bearer #not-a-key' }));
  await assertRefused(await get('/v1/models', { 'X-Api-Key': 'from-fil' }));
  await assertRefused(await fetch(`${base}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":"Hi"}',
  }));
  assert.equal((await get('/health')).status, 200);
  assert.equal((await fetch(`${base}/v1/chat/completions`, { method: 'OPTIONS' })).status, 204);
});

test('the openai client sends its api_key as a bearer token', { timeout: 60_000 }, async () => {
  const OpenAI = await loadOpenAI();
  const good = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'from-env', maxRetries: 0 });
  const completion = await good.completions.create({ model: 'm', prompt: 'Once', max_tokens: 3 });
  assert.equal(completion.object, 'text_completion');
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});
