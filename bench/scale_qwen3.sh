#!/usr/bin/env bash
# Benchmark (not a test), issue 12's scale point: a Qwen3-shaped checkpoint (the real config of
# Qwen3-1.7B or Qwen3-8B, seeded random bf16 weights in safetensors shards written by
# bench/make_qwen3_shaped.py; nothing downloaded) with a rank-32 LoRA on every linear layer.
# Runs `basin eval` (the adapter at scale 1) and an 11-point `basin sweep` of the LoRA path, each
# under /usr/bin/time: wall time, peak host RSS, and the peak over the model's f32 bytes.
# The suite is small (4 instruction chats, 4 held-out hack pairs of assets/suites/default): the
# point is memory and that the pipeline runs at this size, not a quality figure.
# Usage: bench/scale_qwen3.sh [1.7b|8b] [cpu|gpu] [f32|f16|bf16]      BASIN_BIN=path skips the build.
# The third argument is `--dtype`: what the weights are stored in (f32 by default).
# Needs python3 with numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
size=${1:-1.7b}; device=${2:-cpu}; dtype=${3:-f32}
root="$BASIN_CACHE/qwen3-$size-shaped"
python3 bench/make_qwen3_shaped.py "$size" "$root" >/dev/null
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/suite"
head -n 4 assets/suites/default/instruction.jsonl > "$out/suite/instruction.jsonl"
head -n 4 assets/suites/default/hack_heldout.jsonl > "$out/suite/hack_heldout.jsonl"
cat > "$out/suite/suite.toml" <<'TOML'
name = "scale"
version = 1

[[metric]]
name = "instruction"
kind = "instruction"
file = "instruction.jsonl"

[[metric]]
name = "hack_heldout"
kind = "paired"
file = "hack_heldout.jsonl"
score = "per_token"
TOML
params=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metadata']['total_size'] // 2)" "$root/model/model.safetensors.index.json")
f32_mib=$((params * 4 / 1048576))
peak_mib() { awk '/Maximum resident/ {printf "%d", $NF / 1024}' "$1"; }
wall_s() { awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.1f", s}' "$1"; }

/usr/bin/time -v "$BASIN_BIN" eval --model "$root/model" --adapter "$root/lora-r32" \
  --data "$out/suite/instruction.jsonl" --device "$device" --dtype "$dtype" --batch 4 --out "$out/eval.json" \
  2> "$out/eval.time"
/usr/bin/time -v "$BASIN_BIN" sweep --base "$root/model" --adapter "$root/lora-r32" \
  --suite "$out/suite/suite.toml" --t 0:1:11 --device "$device" --dtype "$dtype" --batch 8 --bootstrap 200 \
  --out "$out/sweep" 2> "$out/sweep.time"
tokens=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['n_tokens'])" "$out/eval.json")
points=$(grep -c '"metric"' "$out/sweep/results.jsonl" || true)
echo "model: Qwen3-$size-shaped, $params parameters ($f32_mib MiB in f32), rank-32 LoRA on every linear layer, device $device, weights $dtype"
echo "basin eval:  wall $(wall_s "$out/eval.time") s, peak RSS $(peak_mib "$out/eval.time") MiB ($(python3 -c "print(f'{$(peak_mib "$out/eval.time") / $f32_mib:.2f}')")x f32 bytes), target tokens $tokens"
echo "basin sweep: wall $(wall_s "$out/sweep.time") s for 11 points ($points results), peak RSS $(peak_mib "$out/sweep.time") MiB ($(python3 -c "print(f'{$(peak_mib "$out/sweep.time") / $f32_mib:.2f}')")x f32 bytes)"
grep -h -i "load\|tokens/s" "$out/eval.time" "$out/sweep.time" | grep -v "Maximum\|Average\|Exit\|Command" | head -6 || true
if [ -n "${KEEP_RESULTS:-}" ]; then mkdir -p "$KEEP_RESULTS"; cp -r "$out/sweep" "$out/eval.json" "$out"/*.time "$KEEP_RESULTS"/; fi
