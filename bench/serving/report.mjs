// Turns bench/serving/load.mjs's JSON into a serving section of docs/benchmarks.md (between the
// markers of --section, default serving-bench), replacing the previous one.
//   node report.mjs load.json --machine M --commit C --command CMD --model DESC --doc docs/benchmarks.md
//                   [--section NAME]
import { readFileSync } from 'node:fs';
import { writeSection } from './common.mjs';

const [file, ...rest] = process.argv.slice(2);
const opt = {};
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const r = JSON.parse(readFileSync(file, 'utf8'));
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
// Steady-state decode rate of a round: every client gets a token per step of ITL p50.
const decode = (round) => round.clients / (round.itl_ms_p50 / 1000);

const lines = [
  `## Serving: concurrent clients and prefix reuse${opt.section && opt.section !== 'serving-bench' ? ` (${opt.section.replace('serving-bench-', '').toUpperCase()})` : ''}`,
  '',
  `- machine: ${opt.machine}`,
  `- date: ${new Date().toISOString().slice(0, 16)}Z, commit ${opt.commit}`,
  `- command: \`${opt.command}\``,
  `- model: ${opt.model}`,
  `- each client streams one /v1/completions request with a distinct prompt, ${r.tokens_per_client} tokens, ` +
    'greedy, `ignore_eos`; aggregate = all completion tokens / wall time of the round (prefill included); ' +
    'TTFT and inter-token latency (ITL) measured by the client, ITL per token (a chunk of k tokens, ' +
    'text held back until its UTF-8 is complete, is k gaps of 1/k; the requests ask for `logprobs: 0` ' +
    'to count them); the first round is 1 client',
  '',
  '| clients | aggregate tok/s (prefill incl.) | vs 1 client | decode tok/s (clients / ITL p50) | vs 1 client | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | ITL p99 vs 1 client |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...r.rounds.map((x) => `| ${x.clients} | ${f(x.tokens_per_s)} | ${f(x.throughput_vs_1, 2)}x | ` +
    `${f(decode(x))} | **${f(decode(x) / decode(r.rounds[0]), 2)}x** | ` +
    `${f(x.ttft_ms_p50, 0)} | ${f(x.ttft_ms_p99, 0)} | ${f(x.itl_ms_p50)} | ${f(x.itl_ms_p99)} | ${f(x.itl_p99_vs_1, 2)}x |`),
  '',
];
const m = r.multi_turn;
if (m) {
  lines.push(
    '| prefix reuse | prompt tokens | cached tokens | TTFT ms | speed-up |',
    '|---|---:|---:|---:|---:|',
    `| conversation, turn 1 (cold) | ${m.turn1_prompt_tokens} | ${m.turn1_cached} | ${f(m.turn1_ttft_ms, 0)} | |`,
    `| conversation, turn 2 | ${m.turn2_prompt_tokens} | ${m.turn2_cached} (${f(100 * m.turn2_cached / m.turn1_prompt_tokens)}% of turn 1) | ${f(m.turn2_ttft_ms, 0)} | **${f(m.ttft_speedup)}x** |`,
    `| shared system prompt, client A | ${m.system_prompt_tokens_a} | | ${f(m.system_ttft_a_ms, 0)} | |`,
    `| shared system prompt, client B | | ${m.system_cached_b} | ${f(m.system_ttft_b_ms, 0)} | **${f(m.system_ttft_speedup)}x** |`,
    '');
}
if (r.soak) {
  // One sample a minute is enough to see a trend.
  const rss = r.soak.rss_mib.filter(([t]) => t % 60 === 0).map(([t, v]) => `${t}s ${f(v, 0)}`).join(', ');
  lines.push(`Soak: ${r.soak.seconds} s, 16 clients, ~20% disconnecting mid-stream: ${r.soak.ok} completed, ` +
    `${r.soak.aborted} abandoned by the client, ${r.soak.errors} errors; server RSS MiB: ${rss}.`, '');
}
console.log(writeSection(opt.doc, opt.section ?? 'serving-bench', lines));
