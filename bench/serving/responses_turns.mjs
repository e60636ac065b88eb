// Responses API benchmark (not a test): the second turn of a long conversation sent with
// previous_response_id, against the same conversation sent whole to a fresh server, in one
// run. The first is served from the prefix cache (the server kept the conversation and its KV),
// the second has to prefill everything. Measures time to first output event with the official
// openai client, and writes the result into docs/benchmarks.md.
//
//   node bench/serving/responses_turns.mjs --lmserve build/lmserve --model DIR
//        [--words 1900] [--machine TEXT] [--command TEXT] [--model-note TEXT] [--doc docs/benchmarks.md]
import { readFileSync, writeFileSync } from 'node:fs';
import { clientFor, startServer } from '../../tests/e2e/helpers.mjs';

function args() {
  const out = { lmserve: '', model: '', words: 1900, machine: '', command: '', modelNote: '', doc: '' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (!(key in out)) throw new Error(`unknown option ${argv[i]}`);
    out[key] = typeof out[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!out.lmserve || !out.model) throw new Error('--lmserve and --model are required');
  return out;
}

const WORDS = ('the quick brown fox jumps over a lazy dog while seven wizards quietly judge ' +
  'boxing matches near old river banks under grey autumn skies and distant bells').split(' ');

function text(seed, words) {
  let x = seed * 2654435761 % 4294967296 || 1;
  const out = [];
  for (let i = 0; i < words; ++i) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.push(WORDS[x % WORDS.length]);
  }
  return out.join(' ');
}

// One streamed response: time to its first output event, and the completed response.
async function timed(client, params) {
  const started = performance.now();
  let first = 0;
  let response = null;
  for await (const event of await client.responses.create({ ...params, stream: true, temperature: 0 })) {
    if (!first && event.type === 'response.output_item.added') first = performance.now();
    if (event.type === 'response.completed' || event.type === 'response.incomplete') response = event.response;
  }
  if (!response) throw new Error('the stream ended without a response');
  return { ttft_ms: first - started, response };
}

async function serve(o) {
  process.env.LMSERVE_BIN = o.lmserve;
  const server = await startServer(['--ctx-size', '4096', '--parallel', '2'], { model: o.model, timeoutMs: 600_000 });
  const client = await clientFor(server, { timeout: 900_000 });
  await client.responses.create({ input: 'Hi', max_output_tokens: 1, store: false });  // page in the weights
  return { server, client };
}

const o = args();
const instructions = `You are a helpful assistant. ${text(7, 60)}`;
const history = [];
for (let i = 0; i < 6; ++i) {
  history.push({ role: 'user', content: text(100 + i, Math.floor(o.words / 12)) });
  history.push({ role: 'assistant', content: text(200 + i, Math.floor(o.words / 12)) });
}
history.push({ role: 'user', content: 'Summarise the conversation.' });
const next = 'And what came first?';

const a = await serve(o);
const turn1 = await timed(a.client, { instructions, input: history, max_output_tokens: 16 });
const turn2 = await timed(a.client, {
  instructions, input: next, previous_response_id: turn1.response.id, max_output_tokens: 16,
});
await a.server.stop();

const b = await serve(o);
const whole = await timed(b.client, {
  instructions, store: false, max_output_tokens: 16,
  input: [...history, ...turn1.response.output, { role: 'user', content: next }],
});
await b.server.stop();

const u1 = turn1.response.usage;
const u2 = turn2.response.usage;
const uw = whole.response.usage;
if (uw.input_tokens !== u2.input_tokens) {
  throw new Error(`the whole conversation is ${uw.input_tokens} tokens, turn 2 ${u2.input_tokens}`);
}
const result = {
  turn1: { input_tokens: u1.input_tokens, output_tokens: u1.output_tokens, ttft_ms: turn1.ttft_ms },
  turn2: { input_tokens: u2.input_tokens, cached_tokens: u2.input_tokens_details.cached_tokens, ttft_ms: turn2.ttft_ms },
  whole_fresh: { input_tokens: uw.input_tokens, cached_tokens: uw.input_tokens_details.cached_tokens, ttft_ms: whole.ttft_ms },
};
result.previous_conversation_tokens = u1.input_tokens + u1.output_tokens;
result.ttft_ratio = whole.ttft_ms / turn2.ttft_ms;
console.log(JSON.stringify(result, null, 2));

if (o.doc) {
  const f = (x) => Math.round(x).toLocaleString('en-US');
  const section = `<!-- responses-bench:begin -->
## Responses API: a conversation continued by previous_response_id

- machine: ${o.machine}
- date: ${new Date().toISOString().slice(0, 16)}Z
- command: \`${o.command}\`
- model: ${o.modelNote}
- one run: a ${f(u1.input_tokens)}-token conversation (instructions + 12 messages + a question) answered
  with 16 tokens at temperature 0, then its next turn sent with \`previous_response_id\` to the same
  server; then the same second-turn conversation sent whole (\`store: false\`) to a fresh server
  (after a one-token warm-up request on each server). TTFT = request sent to the first
  \`response.output_item.added\` event, measured by the official openai client.

| request | input tokens | cached tokens | TTFT ms | |
|---|---:|---:|---:|---|
| turn 1 (cold) | ${f(u1.input_tokens)} | ${f(u1.input_tokens_details.cached_tokens)} | ${f(turn1.ttft_ms)} | |
| turn 2, \`previous_response_id\` | ${f(u2.input_tokens)} | ${f(u2.input_tokens_details.cached_tokens)} (turn 1: ${f(u1.input_tokens)} in + ${f(u1.output_tokens)} out) | ${f(turn2.ttft_ms)} | **${result.ttft_ratio.toFixed(1)}x** lower |
| the same conversation sent whole to a fresh server | ${f(uw.input_tokens)} | ${f(uw.input_tokens_details.cached_tokens)} | ${f(whole.ttft_ms)} | |

Turn 2 reused ${f(u2.input_tokens_details.cached_tokens)} of the ${f(result.previous_conversation_tokens)} tokens of turn 1's
conversation (all but the last sampled token, whose KV is never computed); cached tokens of the
cold requests are the warm-up request's prompt head.
<!-- responses-bench:end -->`;
  let doc = readFileSync(o.doc, 'utf8');
  const re = /<!-- responses-bench:begin -->[\s\S]*<!-- responses-bench:end -->/;
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(o.doc, doc);
}
