#!/usr/bin/env python3
"""transformers' half of bench/generate_vs_torch.sh: greedy generate on SmolLM2-135M (f32, the
Q4_1 GGUF dequantized), the 8 chats of scripts/make_smollm2_reference.py in one left-padded
batch, up to N new tokens, the same stop tokens as Basin. Prints one JSON line."""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--new-tokens", type=int, default=128)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--device", default="cpu")
ap.add_argument("--ignore-eos", action="store_true")
args = ap.parse_args()
torch.set_num_threads(args.threads)

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from make_generation_reference import prompt_ids, stop_ids  # noqa: E402
from make_smollm2_reference import CHATS  # noqa: E402

cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache" / "basin")) / "smollm2"
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
tok = AutoTokenizer.from_pretrained(cache, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(cache, gguf_file=name, dtype=torch.float32).eval().to(args.device)
prompts = [prompt_ids(tok, [{"role": "user", "content": u}]) for u, _ in CHATS]
width = max(len(p) for p in prompts)
pad = tok.pad_token_id if tok.pad_token_id is not None else stop_ids(tok)[0]
ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=args.device)
mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=args.device)
stops = stop_ids(tok)
extra = {"min_new_tokens": args.new_tokens} if args.ignore_eos else {}
times, new = [], 0
for _ in range(args.repeats):
    if args.device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=args.new_tokens, eos_token_id=stops, pad_token_id=pad,
                             **extra)
    if args.device == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
    rows = out[:, width:].tolist()
    # New tokens per row up to and including its stop token (what Basin counts).
    new = sum(len(r) if args.ignore_eos else next((i + 1 for i, t in enumerate(r) if t in stops), len(r))
              for r in rows)
med = statistics.median(times)
print(json.dumps({"torch": torch.__version__, "device": args.device, "threads": args.threads,
                  "median_s": med, "new_tokens": new, "tokens_per_s": new / med}))
