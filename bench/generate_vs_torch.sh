#!/usr/bin/env bash
# Benchmark (not a test): `basin generate` vs transformers' `generate` on SmolLM2-135M f32, greedy,
# the 8 chats of scripts/make_smollm2_reference.py in one batch, up to 128 new tokens, the same
# stop tokens, the same machine, back to back. Reports new tokens per second (generation only,
# model loading excluded on both sides) and the ratio.
# --ignore-eos: every row runs to the limit on both sides (8 × N new tokens: the per-step speed).
# Usage: bench/generate_vs_torch.sh [--device cpu|gpu] [--threads N] [--new-tokens N] [--ignore-eos]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
device=cpu; threads=2; new_tokens=128; repeats=3; ignore_eos=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --new-tokens) new_tokens=$2; shift 2;;
    --ignore-eos) ignore_eos="--ignore-eos"; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
scripts/fetch-smollm2.sh
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
torch_device=cpu
[ "$device" = gpu ] && torch_device=cuda
gguf="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/prompts.jsonl" <<'PY'
import json, sys
sys.path.insert(0, "scripts")
from make_smollm2_reference import CHATS
with open(sys.argv[1], "w") as f:
    for i, (u, _) in enumerate(CHATS):
        f.write(json.dumps({"id": f"chat{i}", "messages": [{"role": "user", "content": u}]}) + "\n")
PY
basin_rates=()
for _ in $(seq $repeats); do
  line=$(RAYON_NUM_THREADS=$threads "$BASIN_BIN" generate --model "$gguf" --data "$work/prompts.jsonl" \
    --greedy --max-new-tokens "$new_tokens" --batch 8 --device "$device" $ignore_eos --out "$work/out.jsonl" 2>&1 | grep "tokens/s")
  basin_rates+=("$line")
done
torch_json=$(python3 bench/torch_generate.py --threads "$threads" --new-tokens "$new_tokens" --device "$torch_device" --repeats $repeats $ignore_eos)
python3 - "$torch_json" "${basin_rates[@]}" <<'PY'
import json, re, statistics, sys, platform, os
t = json.loads(sys.argv[1])
lines = sys.argv[2:]
rates = [float(re.search(r"\(([\d.]+) tokens/s\)", l).group(1)) for l in lines]
tokens = [int(re.search(r"(\d+) new tokens", l).group(1)) for l in lines]
b = statistics.median(rates)
print(f"machine: {platform.machine()}, {os.cpu_count()} cpus")
print(f"basin: {b:.1f} new tokens/s (median of {len(rates)}; {tokens[0]} new tokens) -- {lines[0]}")
print(f"torch {t['torch']} ({t['device']}, {t['threads']} threads): {t['tokens_per_s']:.1f} new tokens/s ({t['new_tokens']} new tokens, median {t['median_s']:.2f} s)")
print(f"ratio basin/torch throughput: {b / t['tokens_per_s']:.2f}x")
PY
