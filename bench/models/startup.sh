#!/usr/bin/env bash
# Start-up to first served token: starts `lmserve` serving a model file, sends one streamed
# completion as soon as the port accepts it (the server answers 503 model_loading until it has
# loaded, and this retries), and prints the seconds from the process start to the first streamed
# token. Run it twice: the first run also reads the file into the page cache.
#
# Usage: bench/models/startup.sh MODEL.gguf [PORT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL="$1" PORT="${2:-18431}"
start=$(date +%s.%N)
"$ROOT/build/lmserve" --model "$MODEL" --port "$PORT" --max-tokens 8 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
body='{"prompt":"Once upon a time","max_tokens":1,"stream":true}'
while kill -0 $pid 2>/dev/null; do
  # -N: print the stream as it arrives; the first data line carries the first token.
  if first=$(curl -sfN -H 'Content-Type: application/json' -d "$body" \
      "http://127.0.0.1:$PORT/v1/completions" 2>/dev/null | grep -m1 '^data: {'); then
    break
  fi
  sleep 0.01
done
kill -0 $pid 2>/dev/null || { echo "lmserve exited before serving" >&2; exit 1; }
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v m="$(basename "$MODEL")" 'BEGIN { printf "{\"model\":\"%s\",\"first_token_s\":%.3f}\n", m, e - s }'
