#!/usr/bin/env bash
# lmserve's kernels against llama.cpp's CPU build (node-llama-cpp 3.21.1, npm, installed with
# --ignore-scripts so it uses its prebuilt CPU binary) on the same synthesized GGUF files. This
# VM's memory bandwidth moves from one minute to the next, so the engines take turns: ROUNDS
# rounds per file, each one run of each engine (the first alternating), and every ratio is the
# median of the rounds' ratios. Writes bench/models/results.json and the "Model speed" table of
# docs/benchmarks.md.
#
# Usage: bench/models/compare.sh   (env: SHAPES="llama-3.2-1b",
#        TYPES="q8_0 q4_0 q4_k_m f16 iq4_xs", THREADS="2", PP=512, TG=128, ROUNDS=3,
#        MODELS=/tmp/lmserve-bench-models)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHAPES="${SHAPES:-llama-3.2-1b}"
TYPES="${TYPES:-q8_0 q4_0 q4_k_m f16 iq4_xs}"
THREADS="${THREADS:-2}"
PP="${PP:-512}" TG="${TG:-128}" ROUNDS="${ROUNDS:-3}"
MODELS="${MODELS:-/tmp/lmserve-bench-models}"
FIXTURES="${LMSERVE_FIXTURES_DIR:-$ROOT/../shared/fixtures}"
BUILD="$ROOT/build"
declare -A VOCAB=([llama-3.2-1b]=ggml-vocab-llama-bpe.gguf [qwen2.5-0.5b]=ggml-vocab-qwen2.gguf)

(cd "$ROOT/bench" && npm install --no-audit --no-fund --ignore-scripts >/dev/null)
cmake --build "$BUILD" --target synth_model bench_model >/dev/null
mkdir -p "$MODELS"

run_lmserve() {
  "$BUILD/bench/models/bench_model" --model "$1" --threads "$2" --pp "$PP" --tg "$TG" --reps 1
}
# The peer's ceiling is bracketed by the bandwidth right before and right after its run.
run_llama_cpp() {
  local before after run
  before=$("$BUILD/bench/models/bench_model" --bandwidth --threads "$2")
  run=$(node "$ROOT/bench/models/llama_cpp.mjs" --model "$1" --threads "$2" --pp "$PP" --tg "$TG" \
    --reps 1)
  after=$("$BUILD/bench/models/bench_model" --bandwidth --threads "$2")
  printf '%s\n' "${run%\}},\"bandwidth_around_tg_gb_s\":[$before,$after]}"
}

results="$ROOT/bench/models/results.json"
echo "[" >"$results.tmp"
first=1
for shape in $SHAPES; do
  for type in $TYPES; do
    file="$MODELS/$shape-$type.gguf"
    [ -f "$file" ] || "$BUILD/bench/models/synth_model" --shape "$shape" --gguf "$type" \
      --vocab "$FIXTURES/vocab/${VOCAB[$shape]}" --out "$file" >&2
    for threads in $THREADS; do
      rounds=""
      for round in $(seq 1 "$ROUNDS"); do
        echo "== $shape $type, $threads threads, round $round" >&2
        if [ $((round % 2)) = 1 ]; then
          ours=$(run_lmserve "$file" "$threads"); peer=$(run_llama_cpp "$file" "$threads")
        else
          peer=$(run_llama_cpp "$file" "$threads"); ours=$(run_lmserve "$file" "$threads")
        fi
        rounds="${rounds:+$rounds,}{\"lmserve\":$ours,\"llama_cpp\":$peer}"
      done
      [ $first = 1 ] || echo "," >>"$results.tmp"
      first=0
      printf '{"shape":"%s","type":"%s","bytes":%s,"rounds":[%s]}\n' \
        "$shape" "$type" "$(stat -c %s "$file")" "$rounds" >>"$results.tmp"
    done
  done
done
echo "]" >>"$results.tmp"
mv "$results.tmp" "$results"
node "$ROOT/bench/models/report.mjs" "$results" "$ROOT/docs/benchmarks.md"
