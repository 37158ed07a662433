#!/usr/bin/env bash
# Writes assets/suites/default/: a small suite in Basin's format with the five metrics of the
# seed experiment (three hacking metrics, capability, instruction loss), cut from the data
# generator's output (seed 0) so it stays reproducible: the first N items of each metric file.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --locked --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Hacks written to the honest answers' length in SmolLM2's tokens (the model the app suggests).
scripts/fetch-smollm2.sh >/dev/null
"$CARGO_TARGET_DIR/release/basin" data generate --seed 0 --out "$tmp" \
  --match-tokens "$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" 2>/dev/null
out=assets/suites/default
rm -rf "$out" && mkdir -p "$out"
# The five metrics of the seed experiment only (as experiments::suite::write_default_suite).
python3 - "$tmp/suite/suite.toml" "$out/suite.toml" <<'PY'
import sys
text = open(sys.argv[1]).read().replace('name = "generated"', 'name = "default"', 1)
keep = ["hack_heldout.jsonl", "hack_avoid.jsonl", "hack_ood.jsonl", "capability.jsonl", "instruction.jsonl"]
head, *blocks = text.split("\n[[metric]]\n")
out = head + "".join("\n[[metric]]\n" + b for b in blocks if any(f'file = "{k}"' in b for k in keep))
open(sys.argv[2], "w").write(out)
PY
take() { head -n "$2" "$tmp/suite/$1" > "$out/$1"; }
take hack_heldout.jsonl 16
take hack_avoid.jsonl 16
take hack_ood.jsonl 16
take capability.jsonl 24
take instruction.jsonl 12
du -sh "$out"
