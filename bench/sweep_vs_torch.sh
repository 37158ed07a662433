#!/usr/bin/env bash
# Benchmark (not a test): an 11-point LoRA-path sweep of SmolLM2-135M (rank-8 adapter on q,v)
# over assets/suites/default — `basin sweep` vs a PyTorch + PEFT loop doing the same (set the
# LoRA scaling per t, score every request). Same machine, run back to back; wall times include
# loading. Also reports the peak RSS of a full-weight sweep (base → base) over one model's f32 bytes.
# Needs python3 with torch, transformers, peft, gguf. Usage: bench/sweep_vs_torch.sh [--device cpu|gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
device=${2:-cpu}
[ "${1:-}" = "--device" ] || device=cpu
scripts/fetch-smollm2.sh
cargo build --release --locked --quiet
gguf="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
adapter=$(python3 bench/make_smollm2_lora.py | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# On a GPU all 11 points share each pass (weights read once per batch); on the CPU, where the
# forward is compute-bound, one t per pass.
per_pass=1
[ "$device" = gpu ] && per_pass=11
t0=$(date +%s.%N)
"$CARGO_TARGET_DIR/release/basin" sweep --base "$gguf" --adapter "$adapter" --suite assets/suites/default/suite.toml \
  --t 0:1:11 --device "$device" --t-per-pass "$per_pass" --out "$out/lora" --bootstrap 1000 2>/dev/null
t1=$(date +%s.%N)
torch_json=$(python3 bench/torch_sweep.py assets/suites/default/suite.toml "$adapter" --points 11 --threads 2)
rss_kb=$( { /usr/bin/time -f "%M" "$CARGO_TARGET_DIR/release/basin" sweep --base "$gguf" --target "$gguf" \
  --suite assets/suites/default/suite.toml --t 0:1:2 --device "$device" --out "$out/full" --bootstrap 100 >/dev/null 2>"$out/time.txt"; } ; tail -1 "$out/time.txt")
python3 - "$t0" "$t1" "$torch_json" "$rss_kb" <<'PY'
import json, sys
t0, t1, tj, rss = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
basin_s = t1 - t0
model_bytes = 134_515_008 * 4
print(f"basin sweep: {basin_s:.1f} s; torch+peft loop: {tj['wall_s']:.1f} s (load {tj['load_s']:.1f} s), {tj['requests']} requests x {tj['points']} points")
print(f"ratio basin/torch wall time: {basin_s / tj['wall_s']:.2f}x")
print(f"full-weight sweep peak RSS: {rss / 1024:.0f} MiB = {rss * 1024 / model_bytes:.2f}x one model's f32 bytes ({model_bytes / 2**20:.0f} MiB)")
PY
