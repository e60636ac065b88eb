// serve's sampling flags become the defaults of a request that leaves the field out: each
// flag below makes generation greedy on its own, so a request without sampling fields must
// return exactly the greedy text, which a seeded sample at the built-in defaults does not.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { postJson, startServer } from './helpers.mjs';

const servers = [];
after(async () => {
  for (const server of servers) {
    const status = await server.stop();
    assert.deepEqual(status, { code: 0, signal: null }, server.stderr());
  }
});

async function completion(server, fields) {
  const res = await postJson(server.baseURL, '/v1/completions', { prompt: 'Once upon a time', seed: 7, ...fields });
  assert.equal(res.status, 200);
  return res.json();
}

for (const flags of [['--temp', '0'], ['--top-k', '1'], ['--top-p', '0'], ['--min-p', '1']]) {
  test(`${flags.join(' ')} reaches the request defaults`, { timeout: 60_000 }, async () => {
    const server = await startServer(flags);
    servers.push(server);
    const greedy = (await completion(server, { max_tokens: 30, temperature: 0 })).choices[0].text;
    const sampledAtBuiltInDefaults = (await completion(server,
      { max_tokens: 30, temperature: 1, top_p: 1, top_k: 0, min_p: 0 })).choices[0].text;
    assert.notEqual(sampledAtBuiltInDefaults, greedy, 'the seed must tell the two apart');
    assert.equal((await completion(server, { max_tokens: 30 })).choices[0].text, greedy);
  });
}

test('--max-tokens reaches the request defaults', { timeout: 60_000 }, async () => {
  const server = await startServer(['--max-tokens', '3', '--temp', '0']);
  servers.push(server);
  const body = await completion(server, {});
  assert.equal(body.usage.completion_tokens, 3);
  assert.equal(body.choices[0].finish_reason, 'length');
});
