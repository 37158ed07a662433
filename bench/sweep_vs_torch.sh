#!/usr/bin/env bash
# Benchmark (not a test): an 11-point LoRA-path sweep of SmolLM2-135M (rank-8 adapter on q,v)
# over assets/suites/default — `basin sweep` vs a PyTorch + PEFT loop doing the same (set the
# LoRA scaling per t, score every request). Same machine, run back to back; wall times include
# loading. Also reports the peak RSS of a full-weight sweep (base → base) over one model's f32 bytes.
# Needs python3 with torch, transformers, peft, gguf.
# Usage: bench/sweep_vs_torch.sh [--device cpu|gpu] [--batch N] [--torch-batch N] [--threads N]
# On gpu, PyTorch runs on CUDA. BASIN_BIN=path skips the build (a prebuilt binary);
# KEEP_RESULTS=dir keeps the LoRA sweep's results.jsonl and run.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
device=cpu; batch=""; torch_batch=8; threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2;;
    --batch) batch=$2; shift 2;;
    --torch-batch) torch_batch=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
scripts/fetch-smollm2.sh
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
gguf="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
adapter=$(python3 bench/make_smollm2_lora.py | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# On a GPU all 11 points share each pass (weights read once per batch) in big batches; on the
# CPU, where the forward is compute-bound, one t per pass in batches of 8.
per_pass=1; torch_device=cpu
if [ "$device" = gpu ]; then per_pass=11; torch_device=cuda; fi
[ -n "$batch" ] || { [ "$device" = gpu ] && batch=64 || batch=8; }
t0=$(date +%s.%N)
RAYON_NUM_THREADS=$threads "$BASIN_BIN" sweep --base "$gguf" --adapter "$adapter" --suite assets/suites/default/suite.toml \
  --t 0:1:11 --device "$device" --batch "$batch" --t-per-pass "$per_pass" --out "$out/lora" --bootstrap 1000 2>/dev/null
t1=$(date +%s.%N)
echo "basin sweep wall: $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$t0" "$t1") s"
if [ -n "${KEEP_RESULTS:-}" ]; then mkdir -p "$KEEP_RESULTS" && cp "$out/lora/results.jsonl" "$out/lora/run.json" "$KEEP_RESULTS/"; fi
torch_json=$(python3 bench/torch_sweep.py assets/suites/default/suite.toml "$adapter" --points 11 \
  --threads "$threads" --device "$torch_device" --batch "$torch_batch")
echo "torch: $torch_json"
rss_kb=0
if [ -x /usr/bin/time ]; then
  rss_kb=$( { RAYON_NUM_THREADS=$threads /usr/bin/time -f "%M" "$BASIN_BIN" sweep --base "$gguf" --target "$gguf" \
    --suite assets/suites/default/suite.toml --t 0:1:2 --device "$device" --out "$out/full" --bootstrap 100 >/dev/null 2>"$out/time.txt"; } ; tail -1 "$out/time.txt")
fi
python3 - "$t0" "$t1" "$torch_json" "$rss_kb" "$device" "$batch" "$per_pass" <<'PY'
import json, sys
t0, t1, tj, rss = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
device, batch, per_pass = sys.argv[5], sys.argv[6], sys.argv[7]
basin_s = t1 - t0
model_bytes = 134_515_008 * 4
print(f"basin sweep ({device}, batch {batch}, {per_pass} t per pass): {basin_s:.1f} s; torch+peft loop ({tj['device']}, batch {tj['batch']}): {tj['wall_s']:.1f} s (load {tj['load_s']:.1f} s), {tj['requests']} requests x {tj['points']} points")
print(f"ratio basin/torch wall time: {basin_s / tj['wall_s']:.2f}x")
if rss: print(f"full-weight sweep peak RSS ({device}): {rss / 1024:.0f} MiB = {rss * 1024 / model_bytes:.2f}x one model's f32 bytes ({model_bytes / 2**20:.0f} MiB)")
PY
