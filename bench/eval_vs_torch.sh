#!/usr/bin/env bash
# Benchmark (not a test): `basin eval`'s forward vs transformers on SmolLM2-135M f32, the same
# 8 × 256 tokens (bench/data/bench_chat.jsonl), the same machine, run back to back.
# Needs python3 with torch + transformers + gguf (pip install torch transformers gguf).
# Usage: bench/eval_vs_torch.sh [--device cpu|gpu] [--dtype f32|f16|bf16] [--threads N] [--repeats N] [--model DIR]
# --model: a Hugging Face folder for both sides instead of SmolLM2's GGUF (a machine without it).
# --dtype: what Basin stores the weights in (PyTorch stays f32: the f32 reference).
# On gpu, PyTorch runs on CUDA. BASIN_BIN=path skips the build (a prebuilt binary).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
device=cpu; threads=2; repeats=5; dtype=f32; model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2;;
    --dtype) dtype=$2; shift 2;;
    --model) model=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --repeats) repeats=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -n "$model" ] || scripts/fetch-smollm2.sh
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
torch_device=cpu
[ "$device" = gpu ] && torch_device=cuda
gguf="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
basin_json=$(RAYON_NUM_THREADS=$threads "$BASIN_BIN" bench-eval --model "${model:-$gguf}" \
  --data bench/data/bench_chat.jsonl --device "$device" --dtype "$dtype" --repeats "$repeats")
torch_json=$(python3 bench/torch_eval.py --threads "$threads" --repeats "$repeats" --device "$torch_device" ${model:+--model "$model"})
python3 - "$basin_json" "$torch_json" <<'PY'
import json, sys, platform, os
b, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"basin": b, "torch": t}, indent=1))
print(f"machine: {platform.machine()}, {os.cpu_count()} cpus")
print(f"basin ({b['device']}): {b['tokens_per_s']:.1f} tokens/s (median {b['median_s']:.3f} s; load {b['load_s']:.1f} s, first forward {b['warmup_s']:.1f} s)")
print(f"torch {t['torch']} ({t['device']}, {t['threads']} threads): {t['tokens_per_s']:.1f} tokens/s (median {t['median_s']:.3f} s)")
print(f"ratio basin/torch throughput: {b['tokens_per_s'] / t['tokens_per_s']:.2f}x")
print(f"checksums (sum of log-probs): basin {b['sum_logprob_checksum']:.3f}, torch {t['sum_logprob_checksum']:.3f}")
PY
