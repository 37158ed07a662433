#!/usr/bin/env bash
# Benchmark (not a test): an N × N endpoints-plane slice of SmolLM2-135M (θ_H = a rank-8 LoRA on
# q,v; a seeded random third direction) over 32 chats (bench/data/landscape_suite.toml):
# `basin landscape` (low-rank directions, several cells per pass) vs a PyTorch + PEFT loop doing
# the same evaluation loss-landscape style (dense directions, the weights rewritten per cell).
# Same machine, run back to back; wall times include loading.
# Needs python3 with torch, transformers, peft, gguf.
# Usage: bench/landscape_vs_torch.sh [--grid N] [--device cpu|gpu] [--batch N] [--cells-per-pass K] [--threads N]
#                                    [--model HF_DIR --adapter PEFT_DIR]
# --model / --adapter replace SmolLM2's GGUF and bench/make_smollm2_lora.py's adapter (on a machine
# without them: bench/make_smollm2_shaped.py writes a same-shaped pair; then no gguf package needed).
# BASIN_BIN=path skips the build (a prebuilt binary).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
grid=7; device=cpu; batch=8; per_pass=""; threads=2; model=""; adapter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --grid) grid=$2; shift 2;;
    --device) device=$2; shift 2;;
    --batch) batch=$2; shift 2;;
    --cells-per-pass) per_pass=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --model) model=$2; shift 2;;
    --adapter) adapter=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
if { [ -n "$model" ] && [ -z "$adapter" ]; } || { [ -z "$model" ] && [ -n "$adapter" ]; }; then echo "--model and --adapter go together" >&2; exit 2; fi
if [ -z "$model" ]; then
  scripts/fetch-smollm2.sh
  model="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  adapter=$(python3 bench/make_smollm2_lora.py | tail -1)
  torch_model=()
else
  torch_model=(--model "$model")
fi
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
torch_device=cpu
[ "$device" = gpu ] && torch_device=cuda
# Default: `basin landscape`'s own default on the CPU (4 cells per pass), 16 on a GPU.
[ -n "$per_pass" ] || { [ "$device" = gpu ] && per_pass=16 || per_pass=4; }
t0=$(date +%s.%N)
RAYON_NUM_THREADS=$threads "$BASIN_BIN" landscape --base "$model" --adapter "$adapter" \
  --suite bench/data/landscape_suite.toml --grid "${grid}x${grid}" --device "$device" --batch "$batch" \
  --cells-per-pass "$per_pass" --bootstrap 100 --out "$out/basin" 2>/dev/null
t1=$(date +%s.%N)
torch_json=$(python3 bench/torch_landscape.py bench/data/landscape_suite.toml "$adapter" --grid "$grid" \
  --threads "$threads" --device "$torch_device" --batch "$batch" "${torch_model[@]}")
python3 - "$t0" "$t1" "$torch_json" "$device" "$grid" "$per_pass" "$out/basin/grid.csv" <<'PY'
import json, sys
t0, t1, tj = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
device, grid, per_pass, csv = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
rows = open(csv).read().splitlines()[1:]
vals = [float(r.split(",")[2]) for r in rows]
basin_s = t1 - t0
print(f"basin landscape ({device}, {grid}x{grid}, {per_pass} cells per pass): {basin_s:.1f} s, {len(vals)} cells, NLL {min(vals):.3f}..{max(vals):.3f}")
print(f"torch loop ({tj['device']}, batch {tj['batch']}): {tj['wall_s']:.1f} s (load {tj['load_s']:.1f} s), {tj['cells']} cells x {tj['requests']} chats, NLL {tj['nll_min']:.3f}..{tj['nll_max']:.3f}")
print(f"ratio basin/torch wall time: {basin_s / tj['wall_s']:.2f}x")
PY
