#!/usr/bin/env bash
# Benchmark (not a test): `basin curve fit` vs a Garipov-style bend fit in PyTorch + PEFT
# (bench/torch_curve_fit.py) on SmolLM2-135M f32: the endpoint a rank-8 LoRA on q/v
# (bench/make_smollm2_lora.py, seeded), a new rank-8 bend on all seven linear modules at φ(t) of a
# quadratic Bezier, one batch of the 8 chats of bench/data/bench_train.jsonl × 256 tokens per step,
# AdamW (lr 1e-3) + clipping, run back to back on one machine.
# Throughput: real tokens per step / median step time, the first step left out; peak RSS of each
# whole process (loading included) from /usr/bin/time.
# Needs python3 with torch + transformers + peft + gguf, and GNU time.
# Usage: bench/curve_fit_vs_torch.sh [--device cpu|gpu] [--threads N] [--steps N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
device=cpu; threads=2; steps=6
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --steps) steps=$2; shift 2;;
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
adapter=$(python3 bench/make_smollm2_lora.py | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RAYON_NUM_THREADS=$threads /usr/bin/time -f '%M' -o "$work/basin.rss" "$BASIN_BIN" curve fit \
  --base "$gguf" --adapter "$adapter" --data bench/data/bench_train.jsonl --out "$work/fit" \
  --kind bezier --bend-rank 8 --bend-alpha 16 --lr 1e-3 --batch 8 --steps "$steps" \
  --max-seq-len 256 --truncate --device "$device" 2>"$work/basin.log"
/usr/bin/time -f '%M' -o "$work/torch.rss" python3 bench/torch_curve_fit.py "$adapter" --steps "$steps" \
  --threads "$threads" --device "$torch_device" > "$work/torch.json"
python3 - "$work" <<'PY'
import json, sys, statistics, platform, os
w = sys.argv[1]
steps = [json.loads(l) for l in open(f"{w}/fit/fit.jsonl")]
times = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(steps, steps[1:])]
med = statistics.median(times)
basin_tps = steps[0]["input_tokens"] / med
t = json.load(open(f"{w}/torch.json"))
b_rss = int(open(f"{w}/basin.rss").read().split()[-1]) / 1024
t_rss = int(open(f"{w}/torch.rss").read().split()[-1]) / 1024
print(f"machine: {platform.machine()}, {os.cpu_count()} cpus")
print(f"basin: {basin_tps:.1f} tokens/s (median step {med:.3f} s), losses {[round(s['loss'], 4) for s in steps]}")
print(f"torch {t['torch']} ({t['device']}, {t['threads']} threads): {t['tokens_per_s']:.1f} tokens/s (median step {t['median_step_s']:.3f} s), losses {[round(l, 4) for l in t['losses']]}, {t['trainable_params']} trainable")
print(f"ratio basin/torch throughput: {basin_tps / t['tokens_per_s']:.2f}x")
print(f"peak RSS: basin {b_rss:.0f} MiB, torch {t_rss:.0f} MiB, ratio {b_rss / t_rss:.2f}x")
PY
