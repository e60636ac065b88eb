// The peer side of bench/models/compare.sh: llama.cpp's CPU build through node-llama-cpp, measured
// like bench_model and llama-bench (pp = one evaluation of N prompt tokens, tg = M greedy tokens
// from an empty context; medians of --reps runs after a warm-up), JSON on stdout.
//
// Usage: node llama_cpp.mjs --model FILE [--threads 2] [--pp 512] [--tg 128] [--reps 3]
import { parseArgs } from 'node:util';
import { getLlama } from 'node-llama-cpp';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '2' },
    pp: { type: 'string', default: '512' },
    tg: { type: 'string', default: '128' },
    reps: { type: 'string', default: '3' },
  },
});
const threads = Number(args.threads), pp = Number(args.pp), tg = Number(args.tg);
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const t0 = performance.now();
const llama = await getLlama({ gpu: false, build: 'never' });
const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
const loadS = (performance.now() - t0) / 1000;
const context = await model.createContext({
  contextSize: pp + tg + 16, batchSize: pp, threads, sequences: 1, flashAttention: false,
});
const prompt = Array.from({ length: pp }, (_, i) => 1000 + ((i * 7919) % 20000));
// A warm-up evaluation, as llama-bench does: the first one touches the mapped weights.
{
  const sequence = context.getSequence();
  await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, Math.min(pp, 16)));
  sequence.dispose();
}
const ppRate = [], tgRate = [];
for (let r = 0; r < Number(args.reps); ++r) {
  let sequence = context.getSequence();
  let start = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(prompt);
  ppRate.push(pp / ((performance.now() - start) / 1000));
  sequence.dispose();
  sequence = context.getSequence();
  start = performance.now();
  let n = 0;
  for await (const token of sequence.evaluate([prompt[0]], { temperature: 0 })) {
    void token;
    if (++n >= tg) break;
  }
  tgRate.push(tg / ((performance.now() - start) / 1000));
  sequence.dispose();
}
console.log(JSON.stringify({
  engine: 'llama.cpp (node-llama-cpp 3.21.1)', threads, load_s: loadS, pp, tg,
  pp_tok_s: median(ppRate), tg_tok_s: median(tgRate),
}));
await context.dispose();
await model.dispose();
await llama.dispose();
