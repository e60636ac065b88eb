#!/usr/bin/env bash
# lmserve's kernels against llama.cpp's CPU build (node-llama-cpp 3.21.1, npm, installed with
# --ignore-scripts so it uses its prebuilt CPU binary) on the same synthesized GGUF files,
# interleaved per file so both see the same machine state. Writes bench/models/results.json and
# the "Model speed" table of docs/benchmarks.md.
#
# Usage: bench/models/compare.sh   (env: SHAPES="llama-3.2-1b", TYPES="q8_0 q4_0 q4_k_m f16",
#        THREADS="2", PP=512, TG=128, REPS=3, MODELS=/tmp/lmserve-bench-models)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHAPES="${SHAPES:-llama-3.2-1b}"
TYPES="${TYPES:-q8_0 q4_0 q4_k_m f16}"
THREADS="${THREADS:-2}"
PP="${PP:-512}" TG="${TG:-128}" REPS="${REPS:-3}"
MODELS="${MODELS:-/tmp/lmserve-bench-models}"
FIXTURES="${LMSERVE_FIXTURES_DIR:-$ROOT/../shared/fixtures}"
BUILD="$ROOT/build"
declare -A VOCAB=([llama-3.2-1b]=ggml-vocab-llama-bpe.gguf [qwen2.5-0.5b]=ggml-vocab-qwen2.gguf)

(cd "$ROOT/bench" && npm install --no-audit --no-fund --ignore-scripts >/dev/null)
cmake --build "$BUILD" --target synth_model bench_model >/dev/null
mkdir -p "$MODELS"
results="$ROOT/bench/models/results.json"
echo "[" >"$results.tmp"
first=1
for shape in $SHAPES; do
  for type in $TYPES; do
    file="$MODELS/$shape-$type.gguf"
    [ -f "$file" ] || "$BUILD/bench/models/synth_model" --shape "$shape" --gguf "$type" \
      --vocab "$FIXTURES/vocab/${VOCAB[$shape]}" --out "$file" >&2
    for threads in $THREADS; do
      echo "== $shape $type, $threads threads" >&2
      ours=$("$BUILD/bench/models/bench_model" --model "$file" --threads "$threads" --pp "$PP" --tg "$TG" --reps "$REPS")
      # The peer's ceiling is bracketed by the bandwidth before and after its whole run.
      peer_bw_before=$("$BUILD/bench/models/bench_model" --bandwidth --threads "$threads")
      peer=$(node "$ROOT/bench/models/llama_cpp.mjs" --model "$file" --threads "$threads" --pp "$PP" --tg "$TG" --reps "$REPS")
      peer_bw_after=$("$BUILD/bench/models/bench_model" --bandwidth --threads "$threads")
      [ $first = 1 ] || echo "," >>"$results.tmp"
      first=0
      printf '{"shape":"%s","type":"%s","bytes":%s,"lmserve":%s,"llama_cpp":%s,"llama_cpp_bandwidth_gb_s":[%s,%s]}\n' \
        "$shape" "$type" "$(stat -c %s "$file")" "$ours" "$peer" "$peer_bw_before" "$peer_bw_after" >>"$results.tmp"
    done
  done
done
echo "]" >>"$results.tmp"
mv "$results.tmp" "$results"
node "$ROOT/bench/models/report.mjs" "$results" "$ROOT/docs/benchmarks.md"
