// What the serving benchmarks share: deterministic prompt text, one measured streaming
// request, percentiles, /proc readings of the server, and the docs/benchmarks.md section
// writer.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

const WORDS = ('the quick brown fox jumps over a lazy dog while seven wizards quietly judge ' +
  'boxing matches near old river banks under grey autumn skies and distant bells').split(' ');

// Deterministic distinct text: word choice driven by a per-client seed.
export function text(seed, words) {
  let x = seed * 2654435761 % 4294967296 || 1;
  const out = [];
  for (let i = 0; i < words; ++i) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.push(WORDS[x % WORDS.length]);
  }
  return out.join(' ');
}

export const percentile = (values, p) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))];
};

// One streaming request; resolves with its timings, or rejects on an HTTP/stream error.
// gaps are per token: a chunk that carries k tokens (text held back until its UTF-8 or a possible
// stop string is complete) after a gap g counts as k gaps of g / k. The tokens of a chunk are
// its logprobs entries, so requests that want exact gaps ask for `logprobs`; without them every
// chunk counts as one token. chunk_gaps are the raw gaps between chunks.
export async function stream(url, route, body, { abortAfterMs } = {}) {
  const controller = new AbortController();
  const started = performance.now();
  if (abortAfterMs !== undefined) setTimeout(() => controller.abort(), abortAfterMs);
  const res = await fetch(url + route, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: controller.signal,
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first = 0;
  let last = 0;
  const gaps = [];
  const chunkGaps = [];
  let usage = null;
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const data = JSON.parse(event.slice(6));
      if (data.error) throw new Error(JSON.stringify(data.error));
      if (data.usage) usage = data.usage;
      const choice = data.choices?.[0];
      const piece = choice?.text ?? choice?.delta?.content ?? '';
      if (piece) {
        const now = performance.now();
        const tokens = choice.logprobs?.tokens?.length ?? choice.logprobs?.content?.length ?? 1;
        if (first === 0) {
          first = now;
          // The first chunk's other tokens arrived with it: gaps of zero.
          for (let i = 1; i < tokens; ++i) gaps.push(0);
        } else {
          chunkGaps.push(now - last);
          for (let i = 0; i < tokens; ++i) gaps.push((now - last) / tokens);
        }
        last = now;
      }
    }
  }
  return { ttft: first - started, gaps, chunk_gaps: chunkGaps, total: performance.now() - started,
    usage };
}

export function rssMiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

// Threads and open descriptors of a process (/proc/PID/status, /proc/PID/fd).
export function threads(pid) {
  return Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/Threads:\s+(\d+)/)[1]);
}
export function openFds(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

// Replaces the section between <!-- NAME:begin --> and <!-- NAME:end --> of the Markdown file
// `doc` with `lines` (markers included), or appends it.
export function writeSection(doc, name, lines) {
  const section = [`<!-- ${name}:begin -->`, ...lines, `<!-- ${name}:end -->`].join('\n');
  const text = readFileSync(doc, 'utf8');
  const re = new RegExp(`<!-- ${name}:begin -->[\\s\\S]*<!-- ${name}:end -->`);
  writeFileSync(doc, re.test(text) ? text.replace(re, () => section) : `${text.trimEnd()}\n\n${section}\n`);
  return section;
}
