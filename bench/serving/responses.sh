#!/usr/bin/env bash
# Responses API benchmark: a conversation's second turn via previous_response_id (prefix
# cache) against the whole conversation sent to a fresh server, on a random-weight checkpoint
# with a real shape (default Llama-3.2-1B, F16, the llama3 tokenizer and template). Writes the
# table in docs/benchmarks.md.
#
#   bench/serving/responses.sh   (BUILD_DIR, SHAPE, MODEL_DIR, CHAT_WORDS)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
fixtures=${LMSERVE_FIXTURES_DIR:-$root/../shared/fixtures}
shape=${SHAPE:-llama-3.2-1b}
model=${MODEL_DIR:-${TMPDIR:-/tmp}/lmserve-bench-$shape-f16}
words=${CHAT_WORDS:-1900}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target lmserve synth_model >/dev/null
if [ ! -f "$model/model.safetensors" ]; then
  "$build/bench/models/synth_model" --shape "$shape" --tokenizer "$fixtures/tokenizers/llama3" --out "$model"
fi
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
node "$root/bench/serving/responses_turns.mjs" --lmserve "$build/lmserve" --model "$model" \
  --words "$words" --machine "$cpu, $(nproc) cores visible, $(uname -sr)" \
  --command "bench/serving/responses.sh (SHAPE=$shape CHAT_WORDS=$words), commit $(git -C "$root" rev-parse --short HEAD)" \
  --model-note "$shape shape F16 (random weights, synth_model, llama3 tokenizer and template)" \
  --doc "$root/docs/benchmarks.md"
