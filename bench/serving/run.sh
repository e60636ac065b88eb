#!/usr/bin/env bash
# Serving load benchmark: synthesizes a random-weight checkpoint with a real shape (default
# Llama-3.2-1B in F16, the llama3 tokenizer and chat template from the fixtures), serves it
# and drives bench/serving/load.mjs against it: 1/4/16 concurrent streaming clients, a
# 2,000-token conversation's second turn and a shared system prompt (prefix reuse), and
# optionally a soak with random disconnects. Writes JSON and the table in docs/benchmarks.md.
# WEIGHTS=q8_0 (or another synth_model GGUF type) serves a GGUF of the same shape instead, with
# the llama3 vocabulary and the Llama 3.2 chat template from the fixtures.
#
#   bench/serving/run.sh   (BUILD_DIR, SHAPE, WEIGHTS, MODEL_DIR, CLIENTS, TOKENS, SOAK_SECONDS,
#                           PARALLEL)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
fixtures=${LMSERVE_FIXTURES_DIR:-$root/../shared/fixtures}
shape=${SHAPE:-llama-3.2-1b}
weights=${WEIGHTS:-f16}
clients=${CLIENTS:-1,4,16}
tokens=${TOKENS:-64}
soak=${SOAK_SECONDS:-0}
chat_words=${CHAT_WORDS:-1900}
parallel=${PARALLEL:-16}
port=${PORT:-18931}
out=$(mktemp -d)

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target lmserve synth_model >/dev/null
serve_args=()
if [ "$weights" = f16 ]; then
  model=${MODEL_DIR:-${TMPDIR:-/tmp}/lmserve-bench-$shape-f16}
  if [ ! -f "$model/model.safetensors" ]; then
    "$build/bench/models/synth_model" --shape "$shape" --tokenizer "$fixtures/tokenizers/llama3" --out "$model"
  fi
else
  model=${MODEL_DIR:-${TMPDIR:-/tmp}/lmserve-bench-models}/$shape-$weights.gguf
  if [ ! -f "$model" ]; then
    mkdir -p "$(dirname "$model")"
    "$build/bench/models/synth_model" --shape "$shape" --gguf "$weights" \
      --vocab "$fixtures/vocab/ggml-vocab-llama-bpe.gguf" --out "$model"
  fi
  serve_args=(--chat-template "$fixtures/templates/meta-llama-Llama-3.2-3B-Instruct.jinja")
fi

"$build/lmserve" --model "$model" --port "$port" --parallel "$parallel" --ctx-size 3072 \
  --max-queue 1024 "${serve_args[@]}" >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$out"' EXIT
# It listens first and answers /health 200 once the model is loaded.
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 0.1
done
# Until the weights are in the CPU target's layout (the server copies them in the background),
# a step reads the file's layout and the copy takes a core: measure after it.
for _ in $(seq 1 1200); do
  curl -sf "http://127.0.0.1:$port/metrics" | grep -q '^lmserve_weights_repacking 0' && break
  sleep 0.1
done
memory_line=$(grep -m1 "memory:" "$out/server.log" | sed 's/.*memory: //')

node "$root/bench/serving/load.mjs" --url "http://127.0.0.1:$port" --clients "$clients" \
  --tokens "$tokens" --chat-words "$chat_words" --soak-seconds "$soak" --pid "$server" --json "$out/load.json" >/dev/null

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
node "$root/bench/serving/report.mjs" "$out/load.json" \
  --machine "$cpu, $(nproc) cores visible, $(uname -sr)" \
  --commit "$(git -C "$root" rev-parse --short HEAD)" \
  --command "bench/serving/run.sh (SHAPE=$shape WEIGHTS=$weights CLIENTS=$clients TOKENS=$tokens PARALLEL=$parallel SOAK_SECONDS=$soak)" \
  --model "$shape ${weights^^} (random weights, synth_model); $memory_line" \
  --doc "$root/docs/benchmarks.md" --section "serving-bench$([ "$weights" = f16 ] || echo "-$weights")"
cp "$out/load.json" "${RESULT_JSON:-$build/serving.json}"
