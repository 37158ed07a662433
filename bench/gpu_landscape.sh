#!/usr/bin/env bash
# The landscape part of the prepared device check (issue 11's GPU figure), a second call after
# bench/gpu_session.sh or alone: bench/landscape_vs_torch.sh on the GPU, Basin vs a PyTorch + PEFT
# loop, on a SmolLM2-135M-shaped model with seeded random weights and the real tokenizer
# (bench/make_smollm2_shaped.py), since the real GGUF cannot travel to the device machine.
#
# Here, before the call, besides gpu_session.sh's .gpu/basin.xz:
#   python3 bench/make_smollm2_shaped.py --save-tokenizer .gpu/smollm2-tokenizer
# The call: run(command="bash bench/gpu_landscape.sh", carry=[".gpu"], timeout_s=...)
# GRID (default 11; the issue's figure is 21) sets the grid; each side runs under its own timeout.
# Dry run here: DEVICE=cpu GRID=3 BASIN_BIN=... bash bench/gpu_landscape.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_common.sh
grid=${GRID:-11}
[ -f .gpu/smollm2-tokenizer/tokenizer.json ] || { echo "no .gpu/smollm2-tokenizer carried" | tee -a "$out/error.txt"; exit 2; }
echo "== landscape side by side, SmolLM2-shaped, ${grid}x${grid}, $device" | tee -a "$out/summary.txt"
root=$(python3 bench/make_smollm2_shaped.py .gpu/smollm2-tokenizer "$BASIN_CACHE/smollm2-shaped" | tail -1)
timeout 540 bash bench/landscape_vs_torch.sh --grid "$grid" --device "$device" \
  --model "$root/model" --adapter "$root/lora-r8" > "$out/landscape.txt" 2>> "$out/errors.txt"
echo "exit $?" >> "$out/landscape.txt"
tee -a "$out/summary.txt" < "$out/landscape.txt"
