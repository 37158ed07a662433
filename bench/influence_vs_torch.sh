#!/usr/bin/env bash
# Benchmark (not a test): gradsim influence of 32 training chats (bench/data/landscape_chat.jsonl)
# on 8 query chats (bench/data/bench_chat.jsonl) for SmolLM2-135M with a rank-8 LoRA on q,v
# (bench/make_smollm2_lora.py): `basin influence` (per-sample LoRA gradients through the training
# engine) vs a torch.func per-sample-gradient loop on the PEFT model (bench/torch_influence.py).
# Same machine, back to back; wall times include loading; peak RSS from /usr/bin/time; the two
# rankings' Spearman correlation and largest score difference are printed as a check.
# Needs python3 with torch, transformers, peft, gguf.
# Usage: bench/influence_vs_torch.sh [--threads N]   (BASIN_BIN=path skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
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
t0=$(date +%s.%N)
RAYON_NUM_THREADS=$threads /usr/bin/time -f "%M" -o "$out/basin_rss" "$BASIN_BIN" influence --base "$gguf" \
  --adapter "$adapter" --data bench/data/landscape_chat.jsonl --query-data bench/data/bench_chat.jsonl \
  --out "$out/basin" 2>/dev/null
t1=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$out/torch_rss" python3 bench/torch_influence.py "$adapter" \
  bench/data/landscape_chat.jsonl bench/data/bench_chat.jsonl --threads "$threads" > "$out/torch.json" 2>/dev/null
python3 - "$t0" "$t1" "$out" <<'PY'
import json, sys
t0, t1, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
tj = json.load(open(f"{out}/torch.json"))
basin = {json.loads(l)["id"]: json.loads(l)["score"] for l in open(f"{out}/basin/scores.jsonl")}
torch_s = tj["scores"]
ids = sorted(basin)
rank = lambda d: {k: r for r, k in enumerate(sorted(ids, key=lambda k: d[k]))}
rb, rt = rank(basin), rank(torch_s)
n = len(ids)
rho = 1 - 6 * sum((rb[k] - rt[k]) ** 2 for k in ids) / (n * (n * n - 1))
scale = max(abs(v) for v in torch_s.values())
diff = max(abs(basin[k] - torch_s[k]) for k in ids) / scale
rss_b = int(open(f"{out}/basin_rss").read().split()[-1]) / 1024
rss_t = int(open(f"{out}/torch_rss").read().split()[-1]) / 1024
basin_s = t1 - t0
print(f"basin influence: {basin_s:.1f} s, peak RSS {rss_b:.0f} MiB, {n} samples")
print(f"torch.func loop: {tj['wall_s']:.1f} s (load {tj['load_s']:.1f} s, {tj['per_sample_s']:.2f} s per sample), peak RSS {rss_t:.0f} MiB")
print(f"ratio torch/basin wall time (throughput, higher is faster): {tj['wall_s'] / basin_s:.2f}x; memory basin/torch {rss_b / rss_t:.2f}x")
print(f"agreement: Spearman {rho:.4f}, largest score difference {diff:.2e} of the largest score")
PY
