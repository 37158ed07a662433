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
# A path sweep over the default suite (three hacking metrics, capability, instruction loss).
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$basin" sweep --base "$demo/llama" --adapter "$demo/llama_lora" --suite assets/suites/default/suite.toml \
  --t 0:1:5 --out "$out" --bootstrap 200 2>/dev/null
python3 - "$out/summary.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
metrics = [k for k in rows[0] if k != "t" and not k.endswith(("_ci_low", "_ci_high"))]
print("\nbasin sweep (tiny demo model; values with 95% CIs in summary.csv):")
print("t".rjust(5) + "".join(m.rjust(14) for m in metrics))
for r in rows:
    print(f"{float(r['t']):5.2f}" + "".join(f"{float(r[m]):14.4f}" for m in metrics))
PY
