#!/usr/bin/env python3
"""The arithmetic behind `bench/landscape_vs_torch.sh` (issue 11's CPU target): how many matrix
FLOPs one cell costs Basin and the PyTorch loop, and what the machine's f32 matrix product
(PyTorch's own MKL sgemm, 2 threads, the forward's largest shape) delivers. With the two wall
times of a landscape run it prints each side's achieved GFLOP/s, and the rate Basin would need
for a given ratio.

Counts (SmolLM2-135M: 30 blocks, hidden 576, MLP 1,536, 9 query / 3 key-value heads of 64,
vocabulary 49,152), per token: the block's projections 2·(576·576 + 2·576·192 + 576·576 +
3·576·1536); attention 2·2·(keys seen)·576 per block; the output head 2·576·49,152. PyTorch
forms the head's logits at every position; Basin only at the positions that predict a target.
The rank-8 LoRA terms (< 0.5%) are left out.

Usage: python3 bench/landscape_flops.py [--basin-s S --torch-s S --cells N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from make_tiny_fixtures import encode_example  # noqa: E402

LAYERS, HIDDEN, MLP, KV, VOCAB = 30, 576, 1536, 192, 49152
BLOCK = 2 * (HIDDEN * HIDDEN + 2 * HIDDEN * KV + HIDDEN * HIDDEN + 3 * HIDDEN * MLP)
HEAD = 2 * HIDDEN * VOCAB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--basin-s", type=float)
    ap.add_argument("--torch-s", type=float, help="the PyTorch loop's wall time less its load time")
    ap.add_argument("--cells", type=int, default=25)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache" / "basin")) / "smollm2"
    tok = AutoTokenizer.from_pretrained(cache, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tokens = targets = attention = 0
    for line in (ROOT / "bench/data/landscape_chat.jsonl").read_text().splitlines():
        _, ids, mask = encode_example(tok, json.loads(line)["messages"], "<|im_end|>")
        n = len(ids)
        tokens += n
        targets += sum(mask)
        attention += LAYERS * 2 * 2 * HIDDEN * (n * (n + 1) // 2)
    body = tokens * LAYERS * BLOCK + attention
    basin_cell = body + targets * HEAD
    torch_cell = body + tokens * HEAD
    torch.set_num_threads(2)
    a, b = torch.randn(2048, HIDDEN), torch.randn(HIDDEN, MLP)
    for _ in range(3):
        a @ b
    runs = []
    for _ in range(20):
        t0 = time.perf_counter()
        a @ b
        runs.append(time.perf_counter() - t0)
    runs.sort()
    sgemm = 2 * 2048 * HIDDEN * MLP / runs[len(runs) // 2] / 1e9
    print(f"per cell: {tokens} tokens, {targets} targets; matrix GFLOP: Basin {basin_cell / 1e9:.3f}, "
          f"PyTorch {torch_cell / 1e9:.3f} (head at every position)")
    print(f"PyTorch sgemm here (2048x576 @ 576x1536, 2 threads, median of 20): {sgemm:.1f} GFLOP/s")
    if args.basin_s and args.torch_s:
        basin_rate = basin_cell * args.cells / args.basin_s / 1e9
        torch_rate = torch_cell * args.cells / args.torch_s / 1e9
        print(f"achieved: Basin {basin_rate:.1f} GFLOP/s ({basin_rate / sgemm:.2f}x the sgemm rate), "
              f"PyTorch loop {torch_rate:.1f} GFLOP/s ({torch_rate / sgemm:.2f}x)")
        need = basin_cell * args.cells / (0.5 * (args.torch_s)) / 1e9
        print(f"Basin at 0.5x the PyTorch loop's compute time needs {need:.1f} GFLOP/s "
              f"({need / sgemm:.2f}x the sgemm rate)")


if __name__ == "__main__":
    main()
