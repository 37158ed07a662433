#!/usr/bin/env python3
"""PyTorch + PEFT baseline for `basin curve fit`'s speed (Garipov-style bend training): SmolLM2-135M-
Instruct (Q4_1 GGUF, dequantized to f32 by transformers), the endpoint a rank-8 LoRA on q/v
(bench/make_smollm2_lora.py) at coefficient t, a new rank-8 bend LoRA (alpha 16) on all seven
linear modules at coefficient φ(t) = 2t(1−t) (quadratic Bezier), only the bend trainable. Each
step: one batch of the 8 chats of bench/data/bench_train.jsonl truncated to 256 tokens, Basin's
loss mask, t drawn per step (PEFT's scaling is per adapter, so one t per batch; Basin draws one
per sequence, which costs the same), backward, clipping to norm 1 and an AdamW step.

Usage: python3 bench/torch_curve_fit.py ADAPTER_DIR [--steps 6] [--threads 2] [--device cpu|cuda]
Prints one JSON object; tokens_per_s = real tokens per step / median step time over steps 2..N.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from make_tiny_fixtures import encode_example  # noqa: E402

MODEL_DIR = os.path.join(os.environ.get("BASIN_CACHE", os.path.expanduser("~/.cache/basin")), "smollm2")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA = Path(__file__).resolve().parent / "data" / "bench_train.jsonl"
SEQ_LEN = 256
BEND_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    t_load = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=GGUF_FILE)
    base = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=GGUF_FILE, dtype=torch.float32,
                                                attn_implementation="sdpa")
    torch.manual_seed(0)
    model = PeftModel.from_pretrained(base, args.adapter, adapter_name="endpoint")
    model.add_adapter("bend", LoraConfig(r=8, lora_alpha=16, target_modules=BEND_TARGETS, lora_dropout=0.0))
    model.base_model.set_adapter(["endpoint", "bend"])
    for n, p in model.named_parameters():
        p.requires_grad = ".bend." in n
    model = model.to(dev)
    model.train()
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    end_scale = {id(m): m.scaling.get("endpoint") for m in layers}
    bend_scale = {id(m): m.scaling.get("bend") for m in layers}
    ids, masks = [], []
    real_tokens = 0
    for line in DATA.read_text().splitlines():
        if not line.strip():
            continue
        ex = json.loads(line)
        _, i, m = encode_example(tok, ex["messages"], "<|im_end|>")
        pad = SEQ_LEN - min(len(i), SEQ_LEN)
        real_tokens += SEQ_LEN - pad
        ids.append(i[:SEQ_LEN] + [tok.pad_token_id or 0] * pad)
        masks.append(m[:SEQ_LEN] + [False] * pad)
    ids_t = torch.tensor(ids, device=dev)
    mask_t = torch.tensor(masks, device=dev)[:, 1:]
    n_targets = int(mask_t.sum())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    load_s = time.perf_counter() - t_load
    rng = random.Random(0)
    seconds, losses, ts = [], [], []
    for _ in range(args.steps):
        sync()
        t0 = time.perf_counter()
        t = rng.random()
        phi = 2 * t * (1 - t)
        for m in layers:
            if end_scale[id(m)] is not None:
                m.scaling["endpoint"] = t * end_scale[id(m)]
            if bend_scale[id(m)] is not None:
                m.scaling["bend"] = phi * bend_scale[id(m)]
        logits = model(input_ids=ids_t).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids_t[:, 1:].unsqueeze(-1)).squeeze(-1)
        loss = -(logp * mask_t).sum() / n_targets
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        seconds.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
        ts.append(t)
    median_s = statistics.median(seconds[1:])
    print(json.dumps({
        "tokens_per_s": real_tokens / median_s,
        "input_tokens": real_tokens,
        "median_step_s": median_s,
        "seconds": seconds,
        "losses": losses,
        "t": ts,
        "trainable_params": sum(p.numel() for p in params),
        "load_s": load_s,
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
