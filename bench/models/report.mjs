// Turns bench/models/compare.sh's results.json into the "Model speed" section of
// docs/benchmarks.md (between the model-bench markers), replacing the previous one.
//   node report.mjs results.json docs/benchmarks.md
import { execSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const [file, doc] = process.argv.slice(2);
const median = (v) => {
  const s = [...v].sort((a, b) => a - b), mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
// A row's figures from its rounds: each engine's median, and each ratio the median of the
// rounds' ratios (the two runs of a round saw nearly the same machine).
const summary = (row) => {
  const ours = row.rounds.map((r) => r.lmserve), peer = row.rounds.map((r) => r.llama_cpp);
  const ceiling = (run) => {
    const [before, after] = run.bandwidth_around_tg_gb_s;
    return ((before + after) / 2) * 1e9 / ours[0].weight_bytes;
  };
  return {
    threads: ours[0].threads,
    pp: [median(ours.map((a) => a.pp_tok_s)), median(peer.map((b) => b.pp_tok_s))],
    tg: [median(ours.map((a) => a.tg_tok_s)), median(peer.map((b) => b.tg_tok_s))],
    ppRatio: median(row.rounds.map((r) => r.lmserve.pp_tok_s / r.llama_cpp.pp_tok_s)),
    tgRatio: median(row.rounds.map((r) => r.lmserve.tg_tok_s / r.llama_cpp.tg_tok_s)),
    ceiling: [median(ours.map((a) => a.tg_ceiling_fraction)),
      median(peer.map((b) => b.tg_tok_s / ceiling(b)))],
    rss: Math.max(...ours.map((a) => a.peak_rss_mib)),
  };
};
const rows = JSON.parse(readFileSync(file, 'utf8'));
const commit = execSync('git rev-parse --short HEAD').toString().trim();
const first = rows[0].rounds[0];
const bandwidths = rows.flatMap((row) => row.rounds.flatMap((r) =>
  [...r.lmserve.bandwidth_around_tg_gb_s, ...r.llama_cpp.bandwidth_around_tg_gb_s]));
const lines = [
  '<!-- model-bench:begin -->',
  '## Model speed: lmserve vs llama.cpp on the same files',
  '',
  `- date: ${new Date().toISOString().slice(0, 16)}Z, commit ${commit}; ` +
    `lmserve kernels: ${first.lmserve.cpu}`,
  `- peer: ${first.llama_cpp.engine}, CPU build, same GGUF files; the engines take turns, ` +
    `${rows[0].rounds.length} rounds per file of one run each (who goes first alternates); ` +
    'each engine\'s figure is its median, each ratio the median of the rounds\' ratios',
  '- files: `bench/models/synth_model --gguf TYPE` (random weights, llama.cpp\'s per-tensor ' +
    `type recipe); pp${first.lmserve.pp} = one forward over ${first.lmserve.pp} prompt tokens, ` +
    `tg${first.lmserve.tg} = ${first.lmserve.tg} greedy tokens from an empty context (as ` +
    'llama-bench runs them, each a test of its own), both after a warm-up forward; F16 KV cache ' +
    'on both',
  '- decode ceiling = read bandwidth / weight bytes read per token. This VM\'s two-thread read ' +
    'bandwidth moves from one second to the next, so lmserve\'s tg run is timed in four parts ' +
    'with the bandwidth measured between them (a part\'s ceiling is the mean of the bandwidths ' +
    'right before and after it; tg / ceiling is the median over the parts, then over rounds), ' +
    'and llama.cpp\'s ceiling is measured right before and right after its whole process ' +
    '(median over rounds): ' +
    `${Math.min(...bandwidths).toFixed(1)}-${Math.max(...bandwidths).toFixed(1)} GB/s in this run`,
  '- command: `bench/models/compare.sh`',
  '',
  '| model | type | threads | pp lmserve t/s | pp llama.cpp t/s | pp ratio | tg lmserve t/s | tg llama.cpp t/s | tg ratio | tg / ceiling lmserve | tg / ceiling llama.cpp | peak RSS MiB / file MiB |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((row) => {
    const s = summary(row);
    return `| ${row.shape} | ${row.type} | ${s.threads} | ${f(s.pp[0])} | ${f(s.pp[1])} | ` +
      `**${f(s.ppRatio, 2)}x** | ${f(s.tg[0])} | ${f(s.tg[1])} | **${f(s.tgRatio, 2)}x** | ` +
      `${f(100 * s.ceiling[0], 0)}% | ${f(100 * s.ceiling[1], 0)}% | ` +
      `${s.rss} / ${Math.round(row.bytes / 2 ** 20)} |`;
  }),
  '<!-- model-bench:end -->',
];
let text = readFileSync(doc, 'utf8');
const begin = text.indexOf('<!-- model-bench:begin -->');
const end = text.indexOf('<!-- model-bench:end -->');
const section = lines.join('\n');
text = begin >= 0 && end > begin
  ? text.slice(0, begin) + section + text.slice(end + '<!-- model-bench:end -->'.length)
  : `${text.trimEnd()}\n\n${section}\n`;
writeFileSync(doc, text);
console.log(section);
