#!/usr/bin/env bash
# Benchmark (not a test): the known-answer curve fit (tests/fixtures/curve_pair: two tiny llamas,
# a rank-8 LoRA bend on every linear layer, the recipe in its reference.json) with
# `basin curve fit --target` vs the same fit in PyTorch (scripts/make_curve_pair.py's fit_curve),
# back to back, the same number of threads. Compared: the time of the optimizer steps (loading
# left out; Basin: train log's elapsed_s from step 1 to the last, PyTorch: the loop after its
# first step), and the fitted curves' mean NLL on the fit data.
# Usage: bench/curve_pair_vs_torch.sh [--threads N]
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
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
pair=tests/fixtures/curve_pair
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fit() { python3 -c "import json; print(json.load(open('$pair/reference.json'))['fit']['$1'])"; }
RAYON_NUM_THREADS=$threads "$BASIN_BIN" curve fit --base $pair/a --target $pair/b \
  --data $pair/train.jsonl --out "$work/fit" --kind "$(fit kind)" --bend-rank "$(fit bend_rank)" \
  --bend-alpha "$(fit bend_alpha)" --steps "$(fit steps)" --batch "$(fit batch)" --lr "$(fit lr)" \
  --schedule "$(fit schedule)" --max-grad-norm "$(fit max_grad_norm)" --seed "$(fit seed)" 2>/dev/null
python3 - "$work" "$threads" <<'PY'
import json, sys, time
sys.path.insert(0, "scripts")
import make_curve_pair as m
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast
w, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
pair = m.ROOT / "tests" / "fixtures" / "curve_pair"
tok = PreTrainedTokenizerFast.from_pretrained(pair / "a")
def encode(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        _, ids, mask = m.encode_example(tok, r["messages"], "<|im_end|>")
        out.append({"input_ids": ids, "target_mask": mask})
    return out
enc = encode(pair / "train.jsonl")
a = LlamaForCausalLM.from_pretrained(pair / "a")
b = LlamaForCausalLM.from_pretrained(pair / "b")
p0 = {n: p.detach().clone() for n, p in a.named_parameters()}
delta = {n: p.detach() - p0[n] for n, p in b.named_parameters()}
t0 = time.perf_counter()
bend, scale, losses = m.fit_curve(a, p0, delta, enc)
torch_s = time.perf_counter() - t0
steps = [json.loads(l) for l in open(f"{w}/fit/fit.jsonl")]
basin_s = steps[-1]["elapsed_s"]
tokens = sum(s["input_tokens"] for s in steps)
print(f"{len(steps)} steps, {tokens} input tokens, {threads} threads")
print(f"basin: {basin_s:.2f} s ({tokens / basin_s:.0f} tokens/s)")
print(f"torch {torch.__version__}: {torch_s:.2f} s ({tokens / torch_s:.0f} tokens/s)")
print(f"ratio basin/torch throughput: {torch_s / basin_s:.2f}x")
PY
