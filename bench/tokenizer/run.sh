#!/usr/bin/env bash
# Tokenizer encode throughput, lmserve vs transformers.js, on the same 10 MB mixed corpus in
# the same run; writes the table into docs/benchmarks.md (between the tokenizer markers).
#
#   bench/tokenizer/run.sh            (BUILD_DIR, LMSERVE_FIXTURES_DIR, REPS, MB override)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
fixtures=${LMSERVE_FIXTURES_DIR:-$root/../shared/fixtures}
reps=${REPS:-3}
mb=${MB:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bench_tokenizer >/dev/null
if [ ! -d "$root/bench/node_modules/@huggingface/transformers" ]; then
  # onnxruntime's install script downloads native binaries; tokenizers need none of them.
  (cd "$root/bench" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
fi

echo "lmserve (bench_tokenizer) ..." >&2
"$build/bench/tokenizer/bench_tokenizer" --fixtures "$fixtures" --work "$work" --mb "$mb" \
  --reps "$reps" llama3 qwen3 | tee "$work/lmserve.jsonl" >&2
echo "transformers.js ..." >&2
(cd "$root/bench" && node tokenizer/transformers_js.mjs --fixtures "$fixtures" --work "$work" \
  --reps "$reps" llama3 qwen3) | tee "$work/transformers_js.jsonl" >&2

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
node "$root/bench/tokenizer/report.mjs" \
  --lmserve "$work/lmserve.jsonl" --peer "$work/transformers_js.jsonl" \
  --machine "${cpu:-unknown CPU}, $(nproc) cores visible, $(uname -sr)" \
  --date "$(date -u +%Y-%m-%dT%H:%MZ)" \
  --commit "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --command "bench/tokenizer/run.sh (REPS=$reps MB=$mb)" \
  --node "$(node --version)" \
  --transformers "$(node -p "require('$root/bench/node_modules/@huggingface/transformers/package.json').version")" \
  --out "$root/docs/benchmarks.md"
echo "wrote $root/docs/benchmarks.md" >&2
