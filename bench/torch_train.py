#!/usr/bin/env python3
"""PyTorch + PEFT baseline for `basin train`'s speed: SmolLM2-135M-Instruct (Q4_1 GGUF,
dequantized to f32 by transformers), a new rank-8 LoRA on q_proj/v_proj (alpha 16), one batch of
the 8 single-turn chat examples of bench/data/bench_train.jsonl truncated to 256 tokens, Basin's loss mask
(the assistant turn; the loss = summed masked NLL / masked targets), then backward, clipping to
norm 1 and an AdamW step: the loop `basin train` runs.

Usage: python3 bench/torch_train.py [--steps 6] [--threads 2] [--device cpu|cuda]
Prints one JSON object; tokens_per_s = 8 * 256 / median step time over steps 2..N.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from make_tiny_fixtures import encode_example  # noqa: E402

MODEL_DIR = os.path.join(os.environ.get("BASIN_CACHE", os.path.expanduser("~/.cache/basin")), "smollm2")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA = Path(__file__).resolve().parent / "data" / "bench_train.jsonl"
SEQ_LEN = 256


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    t_load = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=GGUF_FILE)
    base = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=GGUF_FILE, dtype=torch.float32,
                                                attn_implementation=args.attn)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            lora_dropout=0.0)).to(dev)
    model.train()
    ids, masks = [], []
    real_tokens = 0
    for line in DATA.read_text().splitlines():
        if not line.strip():
            continue
        ex = json.loads(line)
        _, i, m = encode_example(tok, ex["messages"], "<|im_end|>")
        # Right padding (an example may be shorter than SEQ_LEN); padded positions are not targets
        # and, with a causal mask, never seen by real tokens. Basin pads the same way.
        pad = SEQ_LEN - min(len(i), SEQ_LEN)
        real_tokens += SEQ_LEN - pad
        ids.append(i[:SEQ_LEN] + [tok.pad_token_id or 0] * pad)
        masks.append(m[:SEQ_LEN] + [False] * pad)
    ids_t = torch.tensor(ids, device=dev)
    mask_t = torch.tensor(masks, device=dev)[:, 1:]
    n_targets = int(mask_t.sum())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    load_s = time.perf_counter() - t_load
    seconds, losses = [], []
    for _ in range(args.steps):
        sync()
        t0 = time.perf_counter()
        logits = model(input_ids=ids_t).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids_t[:, 1:].unsqueeze(-1)).squeeze(-1)
        loss = -(logp * mask_t).sum() / n_targets
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        seconds.append(time.perf_counter() - t0)
        losses.append(float(loss))
    median_s = statistics.median(seconds[1:])
    print(json.dumps({
        "tokens_per_s": real_tokens / median_s,
        "input_tokens": real_tokens,
        "median_step_s": median_s,
        "seconds": seconds,
        "losses": losses,
        "load_s": load_s,
        "batch": len(ids),
        "seq_len": SEQ_LEN,
        "targets_per_step": n_targets,
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
