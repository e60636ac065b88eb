// Turns bench/models/compare.sh's results.json into the "Model speed" section of
// docs/benchmarks.md (between the model-bench markers), replacing the previous one.
//   node report.mjs results.json docs/benchmarks.md
import { execSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const [file, doc] = process.argv.slice(2);
const rows = JSON.parse(readFileSync(file, 'utf8'));
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const commit = execSync('git rev-parse --short HEAD').toString().trim();
const first = rows[0];
const bandwidths = rows.flatMap((r) => [...r.lmserve.bandwidth_around_tg_gb_s, ...r.llama_cpp_bandwidth_gb_s]);
const lines = [
  '<!-- model-bench:begin -->',
  '## Model speed: lmserve vs llama.cpp on the same files',
  '',
  `- date: ${new Date().toISOString().slice(0, 16)}Z, commit ${commit}; lmserve kernels: ${first.lmserve.cpu}`,
  `- peer: ${first.llama_cpp.engine}, CPU build, same GGUF files, run right after lmserve on each file`,
  '- files: `bench/models/synth_model --gguf TYPE` (random weights, llama.cpp\'s per-tensor type recipe); ' +
    `pp${first.lmserve.pp} = one forward over ${first.lmserve.pp} prompt tokens, tg${first.lmserve.tg} = ` +
    `${first.lmserve.tg} greedy tokens after it; medians; F16 KV cache on both`,
  `- decode ceiling = read bandwidth / weight bytes read per token. This VM's two-thread read bandwidth ` +
    'moves from minute to minute, so bench_model measures it right before and right after each tg run ' +
    '(their mean is that run\'s ceiling; tg / ceiling is the median over runs), and for llama.cpp right ' +
    'before and after its whole run: ' +
    `${Math.min(...bandwidths).toFixed(1)}-${Math.max(...bandwidths).toFixed(1)} GB/s in this run`,
  '- command: `bench/models/compare.sh`',
  '',
  '| model | type | threads | pp lmserve t/s | pp llama.cpp t/s | pp ratio | tg lmserve t/s | tg llama.cpp t/s | tg ratio | tg / ceiling lmserve | tg / ceiling llama.cpp | peak RSS MiB / file MiB |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => {
    const a = r.lmserve, b = r.llama_cpp;
    const [before, after] = r.llama_cpp_bandwidth_gb_s;
    const peerCeiling = ((before + after) / 2) * 1e9 / a.weight_bytes;
    return `| ${r.shape} | ${r.type} | ${a.threads} | ${f(a.pp_tok_s)} | ${f(b.pp_tok_s)} | ` +
      `**${f(a.pp_tok_s / b.pp_tok_s, 2)}x** | ${f(a.tg_tok_s)} | ${f(b.tg_tok_s)} | ` +
      `**${f(a.tg_tok_s / b.tg_tok_s, 2)}x** | ${f(100 * a.tg_ceiling_fraction, 0)}% | ` +
      `${f((100 * b.tg_tok_s) / peerCeiling, 0)}% | ` +
      `${a.peak_rss_mib} / ${Math.round(r.bytes / 2 ** 20)} |`;
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
