// End-to-end cost of constrained decoding (not a test): one streaming client against a running
// lmserve alternates free and schema-constrained /v1/completions at temperature 1 and compares
// the gaps between streamed chunks (decode steps; the first chunk's prefill is left out).
//
//   node bench/grammar/decode.mjs --url http://127.0.0.1:8080 [--rounds 6] [--tokens 48]
const opts = { url: 'http://127.0.0.1:8080', rounds: 6, tokens: 48 };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in opts)) throw new Error(`unknown option ${process.argv[i]}`);
  opts[key] = key === 'url' ? process.argv[i + 1] : Number(process.argv[i + 1]);
}

// The schema bench_grammar walks.
const schema = {
  type: 'object', additionalProperties: false, required: ['name', 'age', 'role'],
  properties: {
    name: { type: 'string', maxLength: 40 }, age: { type: 'integer', minimum: 0 },
    email: { type: ['string', 'null'] }, tags: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 5 },
    role: { enum: ['admin', 'user', 'guest'] }, joined: { type: 'string', format: 'date' },
  },
};

async function gaps(body) {
  const response = await fetch(`${opts.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'A user record:', max_tokens: opts.tokens, temperature: 1, stream: true, ...body }),
  });
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  const times = [];
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    for (const line of decoder.decode(chunk, { stream: true }).split('\n')) {
      if (line.startsWith('data: {') && JSON.parse(line.slice(6)).choices?.[0]?.text) times.push(performance.now());
    }
  }
  return times.slice(1).map((t, i) => t - times[i]);
}

const stats = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, mean: s.reduce((a, b) => a + b, 0) / s.length, p50: at(0.5), p99: at(0.99) };
};

const free = [];
const constrained = [];
for (let round = 0; round < opts.rounds; ++round) {
  free.push(...await gaps({ ignore_eos: true, seed: round }));
  constrained.push(...await gaps({ seed: round, response_format: { type: 'json_schema', json_schema: { name: 'user', schema } } }));
}
const f = stats(free);
const c = stats(constrained);
const fmt = (x) => `n=${x.n} mean ${x.mean.toFixed(1)} ms, p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms`;
console.log(`free:        ${fmt(f)}`);
console.log(`constrained: ${fmt(c)}`);
console.log(`overhead: mean ${((c.mean / f.mean - 1) * 100).toFixed(1)}%, p50 ${((c.p50 / f.p50 - 1) * 100).toFixed(1)}%`);
