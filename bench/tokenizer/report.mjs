// Turns the JSON lines of bench_tokenizer and transformers_js.mjs into the tokenizer section
// of docs/benchmarks.md, replacing an earlier one (other sections are left as they are).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const lines = (path) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const ours = lines(args.lmserve);
const peer = new Map(lines(args.peer).map((r) => [r.tokenizer, r]));

const begin = '<!-- tokenizer-bench:begin -->';
const end = '<!-- tokenizer-bench:end -->';
const rows = ours.map((r) => {
  const p = peer.get(r.tokenizer);
  if (!p) throw new Error(`no transformers.js result for ${r.tokenizer}`);
  const ids = p.docs_matching_lmserve === p.docs ? 'identical' : `${p.docs_matching_lmserve}/${p.docs} documents identical`;
  return `| ${r.tokenizer} | ${(r.bytes / 1e6).toFixed(2)} | ${r.tokens.toLocaleString('en-US')} | ` +
    `**${r.mb_per_s.toFixed(1)}** | ${p.mb_per_s.toFixed(2)} | **${(r.mb_per_s / p.mb_per_s).toFixed(1)}x** | ${ids} |`;
});
const section = [
  begin,
  '## Tokenizer encode throughput',
  '',
  `- machine: ${args.machine}`,
  `- date: ${args.date}, commit ${args.commit}`,
  `- command: \`${args.command}\``,
  `- peer: transformers.js (npm \`@huggingface/transformers\` ${args.transformers}) on Node ${args.node}, tokenizer loaded offline from the same fixture files`,
  '- corpus: `shared/fixtures/tokenizers/corpus.txt` lines shuffled with a fixed seed and repeated to 10 MiB, cut into ~4 KiB documents; each document encoded with `add_special_tokens=false`, one thread',
  '- MB/s = corpus bytes / 10^6 / median of the timed passes (after one untimed warm-up pass, whose ids are compared document by document)',
  '',
  '| tokenizer | MB | tokens | lmserve MB/s | transformers.js MB/s | ratio | ids vs transformers.js |',
  '|---|---:|---:|---:|---:|---:|---|',
  ...rows,
  end,
].join('\n');

let doc = existsSync(args.out) ? readFileSync(args.out, 'utf8') : '# lmserve benchmarks\n\nResults written by the drivers in `bench/`; each measures lmserve against a peer in the same run.\n';
const a = doc.indexOf(begin);
const b = doc.indexOf(end);
if (a >= 0 && b > a) {
  doc = doc.slice(0, a) + section + doc.slice(b + end.length);
} else {
  doc = doc.replace(/\n*$/, '\n\n') + section + '\n';
}
writeFileSync(args.out, doc);
