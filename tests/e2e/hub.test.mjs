// Model sources end to end: `--model org/name` downloads into an empty Hugging Face cache from
// a fake Hub (fake_hub.mjs, real HTTP) in huggingface_hub's layout and serves it; the cache
// is then used with the Hub stopped and with HF_HUB_OFFLINE; interrupted transfers resume
// with Range and are verified; 401/403/404 are one clear message; a GGUF repo of many quants
// gives the one asked for; `ollama:NAME` reads an Ollama store; /v1/models lists the cache.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bin, fixturesDir, hermeticHubEnv, modelDir, postJson, readJson, startServer } from './helpers.mjs';
import { kTestToken, startFakeHub } from './fake_hub.mjs';

const stories = 'lmserve-test/stories260K';
const quants = 'lmserve-test/llama-q-GGUF';
const gated = 'lmserve-test/gated';
const sharded = 'lmserve-test/stories260K-sharded';
const quantDir = path.join(fixturesDir, 'models', 'tiny', 'llama-q');
const reference = readJson(path.join(modelDir, 'reference_greedy.json'));
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

// Every file of a fixture folder (subfolders too) as repo files: the repo holds more than
// lmserve needs (README, references, a .gguf beside the safetensors, original/).
function repoOf(dir, only = () => true) {
  const files = {};
  const walk = (sub) => {
    for (const entry of readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = path.posix.join(sub, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (only(rel)) files[rel] = path.join(dir, rel);
    }
  };
  walk('');
  return files;
}

// Splits a safetensors file into two shards and an index (model.safetensors.index.json) in
// `dir`, as transformers saves large models: the same tensors and bytes, two files.
function shardSafetensors(source, dir) {
  const bytes = readFileSync(source);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
  const data = bytes.subarray(8 + headerLength);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const half = Math.floor(names.length / 2);
  const weightMap = {};
  [names.slice(0, half), names.slice(half)].forEach((group, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const shardHeader = {};
    const parts = [];
    let offset = 0;
    for (const name of group) {
      const { dtype, shape, data_offsets: [begin, end] } = header[name];
      shardHeader[name] = { dtype, shape, data_offsets: [offset, offset + end - begin] };
      parts.push(data.subarray(begin, end));
      offset += end - begin;
      weightMap[name] = file;
    }
    let json = JSON.stringify(shardHeader);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(path.join(dir, file), Buffer.concat([length, Buffer.from(json), ...parts]));
  });
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

let hub;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'lmserve-hub-'));
const shardDir = path.join(scratch, 'sharded');
mkdirSync(shardDir);
shardSafetensors(path.join(modelDir, 'model.safetensors'), shardDir);
before(async () => {
  hub = await startFakeHub({
    [stories]: { files: repoOf(modelDir) },
    [sharded]: { files: { ...repoOf(modelDir, (f) => f !== 'model.safetensors'), ...repoOf(shardDir) } },
    [quants]: { files: repoOf(quantDir, (f) => f.endsWith('.gguf')) },
    [gated]: { files: repoOf(modelDir), gated: true },
  });
});
after(async () => {
  await hub?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

let caches = 0;
const newCache = () => path.join(scratch, `cache${caches++}`);
// The environment of one run: its own cache, the fake Hub, no token or offline switch of ours.
const hubEnv = (cache, extra = {}) => ({
  ...hermeticHubEnv, HF_HOME: path.join(scratch, 'hf-home'), HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, ...extra,
});

// Runs lmserve to its exit: { code, stdout, stderr }.
function run(args, env, { timeoutMs = 120_000, program = bin } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timed out: ${stderr}`)); }, timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}
const generate = (model, env, extra = []) =>
  run(['generate', '--model', model, '--prompt', reference.cases[0].prompt, '-n', '8', '--temp', '0', '--json', ...extra], env);

// huggingface_hub's way of reading a cached file (try_to_load_from_cache): the commit in
// refs/<revision>, then snapshots/<commit>/<file>. Returns the path, or null.
function readLikeHuggingfaceHub(cache, repo, file, revision = 'main') {
  const folder = path.join(cache, `models--${repo.replace('/', '--')}`);
  const ref = path.join(folder, 'refs', revision);
  if (!existsSync(ref)) return null;
  const commit = readFileSync(ref, 'utf8');
  assert.match(commit, /^[0-9a-f]{40}$/);
  const p = path.join(folder, 'snapshots', commit, file);
  return existsSync(p) ? p : null;
}

function snapshotOf(cache, repo) {
  const folder = path.join(cache, `models--${repo.replace('/', '--')}`);
  return path.join(folder, 'snapshots', hub.repo(repo).commit);
}

// Resolves once `predicate()` holds, polling; fails after the deadline.
async function waitFor(predicate, what, deadlineMs = 60_000) {
  const end = Date.now() + deadlineMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const hubRequests = (from = 0) => hub.requests.slice(from);
const downloads = (from = 0) => hubRequests(from).filter((r) => r.method === 'GET' && !r.path.startsWith('/api/'));

const warmCache = newCache();

test('fresh download into an empty cache: huggingface_hub layout, only the needed files, then served', async () => {
  const from = hub.requests.length;
  const server = await startServer([], { model: stories, env: hubEnv(warmCache) });
  try {
    const c = reference.cases[0];
    const res = await postJson(server.baseURL, '/v1/completions', { prompt: c.prompt, temperature: 0, max_tokens: c.output_ids.length });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].text, c.output_text_hf);
    const chat = await postJson(server.baseURL, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
    assert.equal(chat.status, 200);
    assert.equal((await chat.json()).usage.completion_tokens, 4);
    assert.match(server.stderr(), /downloading lmserve-test\/stories260K\/model\.safetensors \(1\.0 MiB\)/);
    assert.match(server.stderr(), /downloaded lmserve-test\/stories260K\/model\.safetensors/);
  } finally {
    assert.deepEqual(await server.stop(), { code: 0, signal: null });
  }

  const needed = ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'];
  const snapshot = snapshotOf(warmCache, stories);
  assert.deepEqual(readdirSync(snapshot).sort(), needed);
  const folder = path.dirname(path.dirname(snapshot));
  assert.deepEqual(readdirSync(folder).sort(), ['blobs', 'refs', 'snapshots']);
  assert.equal(readFileSync(path.join(folder, 'refs', 'main'), 'utf8'), hub.repo(stories).commit);
  for (const file of needed) {
    const link = path.join(snapshot, file);
    assert.ok(lstatSync(link).isSymbolicLink(), file);
    const entry = hub.repo(stories).files[file];
    // LFS files are named by their sha256, the others by git's blob sha1, as the Hub's ETags.
    assert.equal(readlinkSync(link), `../../blobs/${entry.sha256 ?? entry.gitSha}`);
    assert.deepEqual(readFileSync(readLikeHuggingfaceHub(warmCache, stories, file)), readFileSync(path.join(modelDir, file)));
  }
  assert.deepEqual(readdirSync(path.join(folder, 'blobs')).filter((f) => f.endsWith('.incomplete')), []);
  const fetched = downloads(from).map((r) => r.path);
  assert.ok(!fetched.some((p) => /README|reference|original|\.gguf/.test(p)), fetched.join(' '));
});

test('sharded weights: the index first, then the shards it names', async () => {
  const cache = newCache();
  const result = await generate(sharded, hubEnv(cache));
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout).tokens, reference.cases[0].output_ids.slice(0, 8));
  assert.deepEqual(readdirSync(snapshotOf(cache, sharded)).filter((f) => f.includes('safetensors')).sort(),
    ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
});

test('on a terminal the download shows a progress bar', async () => {
  // script(1) gives lmserve a pseudo-terminal for stdout and stderr.
  const command = [bin, 'generate', '--model', stories, '--prompt', 'x', '-n', '1'].join(' ');
  const result = await run(['-qec', command, '/dev/null'], hubEnv(newCache()), { program: 'script' });
  assert.equal(result.code, 0, result.stdout);
  assert.match(result.stdout, /\rlmserve-test\/stories260K\/model\.safetensors \[#{30}\] 100% 1\.0 MiB\/1\.0 MiB [0-9.]+ MiB\/s\x1b\[K\r?\n/);
  assert.doesNotMatch(result.stdout, /downloading lmserve-test/);
});

test('a warm cache asks the Hub for the commit only, and serves with the Hub stopped', async () => {
  const from = hub.requests.length;
  const warm = await generate(stories, hubEnv(warmCache));
  assert.equal(warm.code, 0, warm.stderr);
  assert.deepEqual(JSON.parse(warm.stdout).tokens, reference.cases[0].output_ids.slice(0, 8));
  assert.deepEqual(hubRequests(from).map((r) => r.path), [`/api/models/${stories}/revision/main`]);

  const stopped = await generate(stories, hubEnv(warmCache, { HF_ENDPOINT: 'http://127.0.0.1:9' }));
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.deepEqual(JSON.parse(stopped.stdout).tokens, reference.cases[0].output_ids.slice(0, 8));
  assert.match(stopped.stderr, /\[warning\] the Hub cannot be reached \(http:\/\/127\.0\.0\.1:9\/api\/models\/lmserve-test\/stories260K\/revision\/main: .*\); using the cached \//);
  const cold = await generate(stories, hubEnv(newCache(), { HF_ENDPOINT: 'http://127.0.0.1:9' }));
  assert.equal(cold.code, 1);
  assert.match(cold.stderr, /^lmserve: the Hub cannot be reached \(http:\/\/127\.0\.0\.1:9\/api\/models\/lmserve-test\/stories260K\/revision\/main: [^)]+\), and lmserve-test\/stories260K \(revision main\) is not in the Hugging Face cache at .* \(download it once with the network\)\n$/);
});

test('HF_HUB_OFFLINE=1 never touches the network: a warm cache serves, a cold one is a clear error', async () => {
  const from = hub.requests.length;
  const warm = await generate(stories, hubEnv(warmCache, { HF_HUB_OFFLINE: '1' }));
  assert.equal(warm.code, 0, warm.stderr);
  const cold = newCache();
  const result = await generate(stories, hubEnv(cold, { HF_HUB_OFFLINE: '1' }));
  assert.equal(result.code, 1);
  assert.equal(result.stderr.trim(), `lmserve: HF_HUB_OFFLINE is set, and ${stories} (revision main) is not in the Hugging Face cache at ${cold} (download it once with the network)`);
  assert.equal(hub.requests.length, from, 'no request reached the Hub');
});

test('a transfer cut mid-file is resumed with Range in the same run and verified', async () => {
  const cache = newCache();
  const from = hub.requests.length;
  const size = statSync(path.join(modelDir, 'model.safetensors')).size;
  hub.faults.push({ file: 'model.safetensors', kind: 'cut', after: 300_000, times: 1 });
  const result = await generate(stories, hubEnv(cache));
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /retrying \(2 of 5\)/);
  const lfs = downloads(from).filter((r) => r.path.startsWith('/lfs/'));
  assert.deepEqual(lfs.map((r) => r.range), [undefined, 'bytes=300000-']);
  const blob = readlinkSync(path.join(snapshotOf(cache, stories), 'model.safetensors'));
  const file = path.join(snapshotOf(cache, stories), 'model.safetensors');
  assert.equal(statSync(file).size, size);
  assert.equal(path.basename(blob), sha256(file));
});

test('a download killed mid-file leaves blobs/<sha256>.incomplete; the next run resumes it', async () => {
  const cache = newCache();
  const sha = hub.repo(stories).files['model.safetensors'].sha256;
  const partial = path.join(cache, `models--${stories.replace('/', '--')}`, 'blobs', `${sha}.incomplete`);
  hub.faults.push({ file: 'model.safetensors', kind: 'stall', after: 400_000, times: 1 });
  const child = spawn(bin, ['generate', '--model', stories, '--prompt', 'x', '-n', '1'], { env: { ...process.env, ...hubEnv(cache) }, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await waitFor(() => existsSync(partial) && statSync(partial).size === 400_000, 'the first 400000 bytes on disk');
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  const from = hub.requests.length;
  const result = await generate(stories, hubEnv(cache));
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /resuming at 390\.6 KiB/);
  const lfs = downloads(from).filter((r) => r.path.startsWith('/lfs/'));
  assert.deepEqual(lfs.map((r) => r.range), ['bytes=400000-']);
  assert.ok(!existsSync(partial));
  assert.equal(sha256(path.join(snapshotOf(cache, stories), 'model.safetensors')), sha);
});

test('a complete .incomplete file (a run killed before its check) is checked, not fetched again', async () => {
  const cache = newCache();
  const sha = hub.repo(stories).files['model.safetensors'].sha256;
  const blobs = path.join(cache, `models--${stories.replace('/', '--')}`, 'blobs');
  mkdirSync(blobs, { recursive: true });
  copyFileSync(path.join(modelDir, 'model.safetensors'), path.join(blobs, `${sha}.incomplete`));
  const from = hub.requests.length;
  const result = await generate(stories, hubEnv(cache));
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(downloads(from).filter((r) => r.path.startsWith('/lfs/')), []);
  assert.ok(existsSync(path.join(blobs, sha)));
});

test('bytes that do not match the sha256 ETag are refused and removed', async () => {
  const cache = newCache();
  hub.faults.push({ file: 'model.safetensors', kind: 'corrupt', times: 5 });
  const result = await generate(stories, hubEnv(cache));
  hub.faults.length = 0;
  assert.equal(result.code, 1);
  const sha = hub.repo(stories).files['model.safetensors'].sha256;
  assert.match(result.stderr, new RegExp(`lmserve: downloaded ${stories}/model.safetensors is corrupt \\(sha256 [0-9a-f]{64} where the Hub announced ${sha}\\); it was removed`));
  assert.deepEqual(readdirSync(path.join(cache, `models--${stories.replace('/', '--')}`, 'blobs')).filter((f) => f.startsWith(sha)), []);
});

test('401, 403 and 404 are one clear message and exit code 1', async () => {
  const cases = [
    [gated, {}, `lmserve: ${gated} is gated or private: accept its terms on the Hub, and set HF_TOKEN to a token with access (HTTP 401: Access to model ${gated} is restricted)`],
    [gated, { HF_TOKEN: 'hf_wrong' }, `lmserve: ${gated} is gated or private: accept its terms on the Hub, and the token in HF_TOKEN has no access to it (HTTP 403: Access to model ${gated} is restricted)`],
    ['lmserve-test/missing', {}, 'lmserve: lmserve-test/missing was not found or needs authentication (set HF_TOKEN to a token with access) (HTTP 401: Repository not found)'],
    ['lmserve-test/missing', { HF_TOKEN: kTestToken }, 'lmserve: lmserve-test/missing at revision main: repository not found (HTTP 404: Repository not found)'],
  ];
  for (const [model, env, message] of cases) {
    const result = await generate(model, hubEnv(newCache(), env));
    assert.equal(result.code, 1, model);
    assert.equal(result.stderr.trim(), message);
  }
  const revision = await generate(stories, hubEnv(newCache()), ['--revision', 'v9']);
  assert.equal(revision.code, 1);
  assert.equal(revision.stderr.trim(), `lmserve: ${stories} at revision v9: revision not found (HTTP 404: Invalid rev id: v9)`);

  const from = hub.requests.length;
  const allowed = await generate(gated, hubEnv(newCache(), { HF_TOKEN: kTestToken }));
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.ok(hubRequests(from).filter((r) => !r.path.startsWith('/lfs/')).every((r) => r.authorization === `Bearer ${kTestToken}`));
});

test('a GGUF repo of many quantizations: org/name:QUANT, --hf-file, and Q4_K_M by default', async () => {
  const quantFiles = (cache) => readdirSync(snapshotOf(cache, quants));
  const cases = [
    [`${quants}:Q8_0`, [], 'llama-q-Q8_0.gguf'],
    [`${quants}:q6_k`, [], 'llama-q-Q6_K.gguf'],
    [quants, ['--hf-file', 'llama-q-Q4_K_M-pure.gguf'], 'llama-q-Q4_K_M-pure.gguf'],
    [quants, [], 'llama-q-Q4_K_M.gguf'],
  ];
  for (const [model, extra, file] of cases) {
    const cache = newCache();
    const from = hub.requests.length;
    // Loading may refuse a quantized type this build lacks; the choice of file is what counts.
    const result = await generate(model, hubEnv(cache), extra);
    assert.deepEqual(quantFiles(cache), [file], result.stderr);
    assert.equal(sha256(path.join(snapshotOf(cache, quants), file)), sha256(path.join(quantDir, file)));
    assert.deepEqual(downloads(from).filter((r) => r.path.startsWith('/lfs/')).length, 1);
    if (extra.length === 0 && !model.includes(':')) assert.match(result.stderr, /has 15 GGUF files; using llama-q-Q4_K_M\.gguf/);
  }
  const f16 = await generate(`${quants}:F16`, hubEnv(newCache()));
  assert.equal(f16.code, 0, f16.stderr);
  assert.equal(JSON.parse(f16.stdout).usage.completion_tokens, 8);
  const none = await generate(`${quants}:Q4_K`, hubEnv(newCache()));
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^lmserve: lmserve-test\/llama-q-GGUF has no GGUF file for quantization Q4_K \(GGUF files: llama-q-BF16\.gguf, /);
});

test('ollama:NAME[:TAG] serves the GGUF blob of a local Ollama store', async () => {
  const store = path.join(scratch, 'ollama');
  const gguf = path.join(modelDir, 'stories260K.gguf');
  const digest = sha256(gguf);
  mkdirSync(path.join(store, 'blobs'), { recursive: true });
  copyFileSync(gguf, path.join(store, 'blobs', `sha256-${digest}`));
  const manifestDir = path.join(store, 'manifests', 'registry.ollama.ai', 'library', 'stories');
  mkdirSync(manifestDir, { recursive: true });
  writeFileSync(path.join(manifestDir, 'latest'), JSON.stringify({
    schemaVersion: 2,
    layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}`, size: statSync(gguf).size }],
  }));
  const env = { ...hermeticHubEnv, OLLAMA_MODELS: store };
  const result = await generate('ollama:stories', env);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout).tokens, reference.cases[0].output_ids.slice(0, 8));
  const missing = await generate('ollama:stories:7b', env);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim(), `lmserve: ollama:stories:7b is not in Ollama's store at ${store} (its tags there: latest)`);
});

test('/v1/models lists the served model with its context, then the HF cache models', async () => {
  const server = await startServer(['--ctx-size', '256'], { env: hubEnv(warmCache) });
  try {
    const body = await (await fetch(`${server.baseURL}/v1/models`)).json();
    assert.equal(body.object, 'list');
    assert.equal(body.data[0].id, modelDir);
    assert.equal(body.data[0].context_length, 256);
    assert.equal(body.data[0].owned_by, 'lmserve');
    const cached = body.data.slice(1);
    assert.deepEqual(cached.map((m) => m.id), [stories]);
    assert.equal(cached[0].owned_by, 'lmserve-test');
    assert.equal(cached[0].object, 'model');
    assert.ok(Math.abs(cached[0].created - Date.now() / 1000) < 3600, String(cached[0].created));
    const one = await fetch(`${server.baseURL}/v1/models/${stories}`);
    assert.equal(one.status, 200);
    assert.deepEqual(await one.json(), cached[0]);
    assert.equal((await fetch(`${server.baseURL}/v1/models/lmserve-test/absent`)).status, 404);
  } finally {
    await server.stop();
  }
});
