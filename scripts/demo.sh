#!/usr/bin/env bash
# The README's "run" command: builds Basin and runs it on the built-in demo — a tiny llama and a
# LoRA adapter (tests/fixtures/tiny) — evaluating the chat set along the LoRA path t = 0, 0.5, 1.
# (The desktop app replaces this once it lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --locked --quiet
basin="$CARGO_TARGET_DIR/release/basin"
demo=tests/fixtures/tiny
for t in 0 0.5 1; do
  "$basin" eval --model "$demo/llama" --adapter "$demo/llama_lora" --scale "$t" --data "$demo/chat.jsonl" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); print(f't = {r[\"scale\"]:>4}: mean NLL {r[\"mean_nll\"]:.4f} over {r[\"n_tokens\"]} assistant tokens ({r[\"device\"]})')"
done
