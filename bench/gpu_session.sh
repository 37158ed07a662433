#!/usr/bin/env bash
# The prepared device check of issues 11 / 12 for a lent GPU machine: one call, about 8 minutes,
# everything it measures written under $OUT. That machine reaches nothing outside it and takes a
# working tree of at most 64 MiB, so it gets no SmolLM2 GGUF (98 MB), no `gguf` package and no
# build: it runs a release binary carried compressed, on Qwen3-shaped models written there with
# seeded random weights (bench/make_qwen3_shaped.py; PyTorch loads the same folders).
#
# Here, before the call (the binary is ~117 MB, ~25 MB compressed):
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu
#   xz -T2 -6 -c "$CARGO_TARGET_DIR/release/basin" > .gpu/basin.xz
# The call: run(command="bash bench/gpu_session.sh", carry=[".gpu"], timeout_s=600)
# Issue 11's GPU landscape figure is a second, separate call: bench/gpu_landscape.sh (its header
# says what else to put in .gpu first).
# Dry run here (plumbing only): DEVICE=cpu SIZE=wide-vocab BIG= BASIN_BIN=... bench/gpu_session.sh
#
# Steps (each under its own timeout, so one failure leaves the rest):
#  1. machine facts (nvidia-smi, Vulkan loader, the adapter Basin sees);
#  2. eval throughput side by side on the SIZE-shaped model (1.7b by default): Basin f32 in a
#     fresh process twice (the first pays kernel compilation: cold; the second: warm), PyTorch
#     CUDA f32, then Basin with --dtype f16;
#  3. `basin eval` of the BIG-shaped model (8b by default) with its rank-32 LoRA in f16 and f32
#     under /usr/bin/time (wall, host RSS) with nvidia-smi's peak device memory.
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_common.sh
size=${SIZE:-1.7b}
big=${BIG-8b}
log() { echo "== $*" | tee -a "$out/summary.txt"; }

log "machine"
{ nvidia-smi; ldconfig -p | grep -i libvulkan; python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"; } > "$out/machine.txt" 2>&1
tail -3 "$out/machine.txt" | tee -a "$out/summary.txt"

log "models ($size, ${big:-none})"
python3 bench/make_qwen3_shaped.py "$size" "$BASIN_CACHE/qwen3-$size" >> "$out/summary.txt" 2>&1
model="$BASIN_CACHE/qwen3-$size/model"

log "eval side by side, $size-shaped, $device"
for run in cold warm; do
  timeout 150 "$BASIN_BIN" bench-eval --model "$model" --data bench/data/bench_chat.jsonl \
    --device "$device" --repeats 10 > "$out/basin-f32-$run.json" 2>> "$out/errors.txt"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"basin f32 $run: {r['tokens_per_s']:.0f} tokens/s, load {r['load_s']:.1f} s, first forward {r['warmup_s']:.2f} s, checksum {r['sum_logprob_checksum']:.3f}, {r['device']}\")" "$out/basin-f32-$run.json" | tee -a "$out/summary.txt"
done
torch_device=cpu; [ "$device" = gpu ] && torch_device=cuda
timeout 150 python3 bench/torch_eval.py --model "$model" --device "$torch_device" --repeats 10 \
  > "$out/torch-f32.json" 2>> "$out/errors.txt"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"torch f32: {r['tokens_per_s']:.0f} tokens/s, checksum {r['sum_logprob_checksum']:.3f}, {r['device']}\")" "$out/torch-f32.json" | tee -a "$out/summary.txt"
timeout 150 "$BASIN_BIN" bench-eval --model "$model" --data bench/data/bench_chat.jsonl \
  --device "$device" --dtype f16 --repeats 10 > "$out/basin-f16.json" 2>> "$out/errors.txt"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"basin f16: {r['tokens_per_s']:.0f} tokens/s, first forward {r['warmup_s']:.2f} s, checksum {r['sum_logprob_checksum']:.3f}\")" "$out/basin-f16.json" | tee -a "$out/summary.txt"

if [ -n "$big" ]; then
  log "scale: $big-shaped eval with a rank-32 LoRA"
  python3 bench/make_qwen3_shaped.py "$big" "$BASIN_CACHE/qwen3-$big" >> "$out/summary.txt" 2>&1
  head -n 4 assets/suites/default/instruction.jsonl > /tmp/scale-chats.jsonl
  for dtype in f16 f32; do
    (while sleep 1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null; done) > "$out/gpu-mem-$dtype.txt" &
    sampler=$!
    timeout 200 /usr/bin/time -v "$BASIN_BIN" eval --model "$BASIN_CACHE/qwen3-$big/model" \
      --adapter "$BASIN_CACHE/qwen3-$big/lora-r32" --data /tmp/scale-chats.jsonl --device "$device" \
      --dtype "$dtype" --batch 4 --out "$out/eval-$big-$dtype.json" 2> "$out/eval-$big-$dtype.time"
    kill "$sampler" 2>/dev/null
    peak_gpu=$(sort -n "$out/gpu-mem-$dtype.txt" | tail -1)
    echo "eval $big $dtype: wall $(grep Elapsed "$out/eval-$big-$dtype.time" | awk '{print $NF}'), host peak RSS $(awk '/Maximum resident/ {print int($NF/1024)}' "$out/eval-$big-$dtype.time") MiB, device peak ${peak_gpu:-?} MiB, mean NLL $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mean_nll'])" "$out/eval-$big-$dtype.json" 2>/dev/null)" | tee -a "$out/summary.txt"
  done
fi
log "done"
