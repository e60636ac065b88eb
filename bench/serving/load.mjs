// Load benchmark (not a test): N concurrent streaming clients with distinct prompts against a
// running lmserve, then a multi-turn chat for prefix reuse and two clients sharing a system
// prompt; optionally a soak with random disconnects while sampling the server's RSS.
//
//   node bench/serving/load.mjs --url http://127.0.0.1:8080 [--clients 1,4,16] [--tokens 64]
//        [--prompt-words 60] [--chat-words 1400] [--soak-seconds 0] [--pid PID] [--json out.json]
//
// Every figure is measured from the client side: time to first token (TTFT) is the time from
// sending the request to the first text chunk; inter-token latency (ITL) the gaps between tokens
// (the rounds ask for `logprobs: 0`, so each chunk says how many tokens it carries; see
// common.mjs); aggregate throughput = completion tokens of all clients / wall time of the round.
import { writeFileSync } from 'node:fs';
import { percentile, rssMiB, stream, text } from './common.mjs';

function args() {
  const out = { url: 'http://127.0.0.1:8080', clients: '1,4,16', tokens: 64, promptWords: 60,
    chatWords: 1400, soakSeconds: 0, pid: 0, json: '' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (!(key in out)) throw new Error(`unknown option ${argv[i]}`);
    out[key] = typeof out[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  out.clients = String(out.clients).split(',').map(Number);
  return out;
}

async function concurrencyRound(o, n, round) {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: n }, (_, i) => stream(o.url, '/v1/completions', {
    prompt: text(1000 * round + i + 1, o.promptWords), max_tokens: o.tokens, temperature: 0,
    ignore_eos: true, logprobs: 0,
  })));
  const wall = (performance.now() - started) / 1000;
  const tokens = results.reduce((s, r) => s + r.usage.completion_tokens, 0);
  const gaps = results.flatMap((r) => r.gaps);
  return {
    clients: n, tokens, wall_s: wall, tokens_per_s: tokens / wall,
    ttft_ms_p50: percentile(results.map((r) => r.ttft), 50),
    ttft_ms_p99: percentile(results.map((r) => r.ttft), 99),
    itl_ms_p50: percentile(gaps, 50), itl_ms_p99: percentile(gaps, 99),
    chunk_gap_ms_p99: percentile(results.flatMap((r) => r.chunk_gaps), 99),
  };
}

// A long conversation, then its next turn: the second turn's prompt starts with the first's.
async function multiTurn(o) {
  const system = { role: 'system', content: `You are a helpful assistant. ${text(7, 60)}` };
  const history = [system];
  for (let i = 0; i < 6; ++i) {
    history.push({ role: 'user', content: text(100 + i, Math.floor(o.chatWords / 12)) });
    history.push({ role: 'assistant', content: text(200 + i, Math.floor(o.chatWords / 12)) });
  }
  history.push({ role: 'user', content: 'Summarise the conversation.' });
  const cold = await stream(o.url, '/v1/chat/completions', { messages: history, max_tokens: 16, temperature: 0 });
  const next = [...history, { role: 'assistant', content: 'It was about many things.' },
    { role: 'user', content: 'And what came first?' }];
  const warm = await stream(o.url, '/v1/chat/completions', { messages: next, max_tokens: 16, temperature: 0 });
  // Two clients with the same system prompt and different questions.
  const shared = { role: 'system', content: `You answer briefly. ${text(9, Math.floor(o.chatWords / 2))}` };
  const a = await stream(o.url, '/v1/chat/completions', { messages: [shared, { role: 'user', content: 'First question?' }], max_tokens: 8, temperature: 0 });
  const b = await stream(o.url, '/v1/chat/completions', { messages: [shared, { role: 'user', content: 'A different one?' }], max_tokens: 8, temperature: 0 });
  const ratio = (x, y) => x / y;
  return {
    turn1_prompt_tokens: cold.usage.prompt_tokens, turn1_cached: cold.usage.prompt_tokens_details.cached_tokens,
    turn1_ttft_ms: cold.ttft,
    turn2_prompt_tokens: warm.usage.prompt_tokens, turn2_cached: warm.usage.prompt_tokens_details.cached_tokens,
    turn2_ttft_ms: warm.ttft,
    shared_prefix_reused: warm.usage.prompt_tokens_details.cached_tokens / cold.usage.prompt_tokens,
    ttft_speedup: ratio(cold.ttft, warm.ttft),
    system_prompt_tokens_a: a.usage.prompt_tokens, system_cached_b: b.usage.prompt_tokens_details.cached_tokens,
    system_ttft_a_ms: a.ttft, system_ttft_b_ms: b.ttft, system_ttft_speedup: ratio(a.ttft, b.ttft),
  };
}

// 16 clients for `seconds`: random prompts and lengths, ~20% abandoned mid-stream.
async function soak(o) {
  const deadline = performance.now() + o.soakSeconds * 1000;
  const counts = { ok: 0, aborted: 0, errors: 0 };
  const rss = [];
  const sampler = setInterval(() => { if (o.pid) rss.push([Math.round((performance.now() - start) / 1000), rssMiB(o.pid)]); }, 10_000);
  const start = performance.now();
  let seed = 1;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (performance.now() < deadline) {
      const abort = Math.random() < 0.2;
      try {
        await stream(o.url, '/v1/completions', { prompt: text(seed++, 20 + (seed % 80)), max_tokens: 8 + (seed % 120), temperature: 0.8 },
          abort ? { abortAfterMs: 50 + Math.random() * 500 } : {});
        counts.ok += 1;
      } catch (e) {
        if (e.name === 'AbortError') counts.aborted += 1; else { counts.errors += 1; console.error(e.message); }
      }
    }
  }));
  clearInterval(sampler);
  return { seconds: o.soakSeconds, ...counts, rss_mib: rss };
}

const o = args();
const report = { url: o.url, tokens_per_client: o.tokens, rounds: [] };
await concurrencyRound(o, 1, 0);  // warm-up: page in the weights
for (const n of o.clients) {
  const r = await concurrencyRound(o, n, n);
  report.rounds.push(r);
  console.error(`N=${n}: ${r.tokens_per_s.toFixed(1)} tok/s, TTFT p50 ${r.ttft_ms_p50.toFixed(0)} ms, ITL p50 ${r.itl_ms_p50.toFixed(1)} / p99 ${r.itl_ms_p99.toFixed(1)} ms`);
}
const base = report.rounds.find((r) => r.clients === 1);
if (base) {
  for (const r of report.rounds) {
    r.throughput_vs_1 = r.tokens_per_s / base.tokens_per_s;
    r.itl_p99_vs_1 = r.itl_ms_p99 / base.itl_ms_p99;
  }
}
report.multi_turn = await multiTurn(o);
console.error(JSON.stringify(report.multi_turn));
if (o.soakSeconds > 0) report.soak = await soak(o);
const out = JSON.stringify(report, null, 2);
if (o.json) writeFileSync(o.json, out + '\n');
console.log(out);
