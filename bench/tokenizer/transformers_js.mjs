// transformers.js (npm @huggingface/transformers) encode throughput on the corpus that
// bench_tokenizer wrote, loaded offline from the fixture tokenizer files, with its ids
// checked against lmserve's.
//
// node transformers_js.mjs --fixtures DIR --work DIR [--reps 3] [NAME...]
// Prints one JSON line per tokenizer, like bench_tokenizer, plus the id agreement.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';

const args = process.argv.slice(2);
let fixtures = null;
let work = null;
let reps = 3;
const names = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--fixtures') fixtures = args[++i];
  else if (args[i] === '--work') work = args[++i];
  else if (args[i] === '--reps') reps = Math.max(1, parseInt(args[++i], 10));
  else names.push(args[i]);
}
if (!fixtures || !work) {
  console.error('usage: node transformers_js.mjs --fixtures DIR --work DIR [--reps N] [NAME...]');
  process.exit(2);
}
if (names.length === 0) names.push('llama3', 'qwen3');

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = join(fixtures, 'tokenizers') + '/';

const corpus = readFileSync(join(work, 'corpus.txt'));
const ranges = JSON.parse(readFileSync(join(work, 'docs.json'), 'utf8'));
const docs = ranges.map(([b, e]) => corpus.subarray(b, e).toString('utf8'));

function readIds(path) {
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = [];
  for (let off = 0; off < buf.byteLength;) {
    const n = view.getInt32(off, true);
    off += 4;
    const ids = new Int32Array(n);
    for (let k = 0; k < n; ++k, off += 4) ids[k] = view.getInt32(off, true);
    out.push(ids);
  }
  return out;
}

for (const name of names) {
  const tok = await AutoTokenizer.from_pretrained(name);
  const expected = readIds(join(work, `${name}.ids`));
  if (expected.length !== docs.length) throw new Error(`${name}.ids has ${expected.length} documents, corpus ${docs.length}`);
  // Warm-up pass, which is also the one checked against lmserve.
  let tokens = 0;
  let mismatched = 0;
  let firstMismatch = null;
  for (let d = 0; d < docs.length; ++d) {
    const ids = tok.encode(docs[d], { add_special_tokens: false });
    tokens += ids.length;
    const want = expected[d];
    let same = ids.length === want.length;
    for (let k = 0; same && k < ids.length; ++k) same = ids[k] === want[k];
    if (!same) {
      ++mismatched;
      if (firstMismatch === null) firstMismatch = d;
    }
  }
  const seconds = [];
  for (let r = 0; r < reps; ++r) {
    const start = process.hrtime.bigint();
    for (const doc of docs) tok.encode(doc, { add_special_tokens: false });
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  const median = [...seconds].sort((a, b) => a - b)[Math.floor(seconds.length / 2)];
  console.log(JSON.stringify({
    tokenizer: name,
    bytes: corpus.length,
    docs: docs.length,
    tokens,
    seconds: seconds.map((s) => Number(s.toFixed(4))),
    mb_per_s: Number((corpus.length / 1e6 / median).toFixed(2)),
    docs_matching_lmserve: docs.length - mismatched,
    first_mismatch_doc: firstMismatch,
  }));
}
