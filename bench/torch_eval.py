#!/usr/bin/env python3
"""PyTorch baseline for Basin's evaluation speed: SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized
to f32 by transformers), a fixed batch of 8 chat sequences x 256 tokens, forward without grad
plus log_softmax and the gather of each next token's log-prob (what an evaluation needs).

Usage: python3 bench/torch_eval.py [--repeats 5] [--threads 2] [--attn sdpa|eager] [--device cpu|cuda] [--model DIR]
--model: a Hugging Face folder instead of SmolLM2's GGUF (e.g. bench/make_qwen3_shaped.py's, on a
machine where the GGUF or the `gguf` package is not available), loaded in f32.
Prints one JSON object: {"tokens_per_s", "seconds", "torch", "threads", ...}.
tokens_per_s = batch * seq_len / median(seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

import os
MODEL_DIR = os.path.join(os.environ.get("BASIN_CACHE", os.path.expanduser("~/.cache/basin")), "smollm2")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA = Path(__file__).resolve().parent / "data" / "bench_chat.jsonl"
BATCH = 8
SEQ_LEN = 256


def build_batch(tok) -> torch.Tensor:
    """Templated ids of each example, truncated to SEQ_LEN (all examples are long enough)."""
    rows = []
    with open(DATA, encoding="utf-8") as f:
        examples = [json.loads(line) for line in f if line.strip()]
    if len(examples) != BATCH:
        raise SystemExit(f"{DATA}: expected {BATCH} examples, found {len(examples)}")
    for ex in examples:
        text = tok.apply_chat_template(ex["messages"], tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) < SEQ_LEN:
            raise SystemExit(f"{DATA}: example {ex['id']} has {len(ids)} tokens < {SEQ_LEN}")
        rows.append(ids[:SEQ_LEN])
    return torch.tensor(rows, dtype=torch.long)


def step(model, ids: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", type=Path)
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    torch.set_num_threads(args.threads)

    source = {"pretrained_model_name_or_path": args.model} if args.model else {
        "pretrained_model_name_or_path": MODEL_DIR, "gguf_file": GGUF_FILE}
    tok = AutoTokenizer.from_pretrained(**source)
    model = AutoModelForCausalLM.from_pretrained(
        **source, dtype=torch.float32, attn_implementation=args.attn
    )
    model = model.to(dev)
    model.eval()
    ids = build_batch(tok).to(dev)

    seconds = []
    with torch.inference_mode():
        checksum = float(step(model, ids).sum())  # warm-up
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            step(model, ids)
            sync()
            seconds.append(time.perf_counter() - t0)
    median_s = statistics.median(seconds)
    print(
        json.dumps(
            {
                "tokens_per_s": BATCH * SEQ_LEN / median_s,
                "seconds": seconds,
                "median_s": median_s,
                "batch": BATCH,
                "seq_len": SEQ_LEN,
                "threads": args.threads,
                "device": args.device,
                "attn_implementation": args.attn,
                "sum_logprob_checksum": checksum,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
