#!/usr/bin/env python3
"""PyTorch + PEFT side of bench/landscape_vs_torch.sh: a loss-landscape slice of SmolLM2-135M the
way loss-landscape scripts do it (Li et al.'s `plot_surface`, Garipov's plane plots): dense
directions, one model per cell. θ_H = θ₀ + ΔW of a LoRA adapter (PEFT's merge), a seeded random
third direction on the same layers, Gram–Schmidt (u = ΔW_H, v ⟂ u with ‖v‖ = ‖u‖); for each cell
(α, β) of the grid the changed weights are set to W₀ + α·u + β·v and every chat of the suite is
scored (token-weighted mean NLL under Basin's mask rule) in batches. Prints JSON with the wall
time (model load included, like `basin landscape`).

Usage: python3 bench/torch_landscape.py SUITE.toml ADAPTER_DIR --grid 7 [--batch 8] [--threads 2]
                                        [--device cpu|cuda] [--model HF_DIR]
The base is SmolLM2's cached GGUF unless --model names a Hugging Face folder.
"""
import argparse
import json
import os
import time
import tomllib
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

# The same encoding (Basin's loss mask) as the sweep benchmark.
from torch_sweep import encode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("suite")
    ap.add_argument("adapter")
    ap.add_argument("--grid", type=int, default=7)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", help="a Hugging Face folder instead of SmolLM2's cached GGUF")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.model:
        tok = AutoTokenizer.from_pretrained(args.model)
        base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    else:
        cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache/basin")) / "smollm2"
        gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
        tok = AutoTokenizer.from_pretrained(cache, gguf_file=gguf)
        base = AutoModelForCausalLM.from_pretrained(cache, gguf_file=gguf, dtype=torch.float32)
    w0 = {n: p.detach().clone() for n, p in base.state_dict().items()}
    merged = PeftModel.from_pretrained(base, args.adapter).merge_and_unload()
    u = {n: p.detach() - w0[n] for n, p in merged.state_dict().items()}
    u = {n: d for n, d in u.items() if d.abs().max() > 0}
    model = merged.to(dev).eval()
    gen = torch.Generator().manual_seed(0)
    third = {n: torch.randn(d.shape, generator=gen) for n, d in u.items()}
    dot = lambda x, y: sum(float((x[n].double() * y[n].double()).sum()) for n in x)
    uu = dot(u, u)
    g = dot(third, u) / uu
    v = {n: third[n] - g * u[n] for n in u}
    s = (uu / dot(v, v)) ** 0.5
    v = {n: (s * v[n]).to(dev) for n in v}
    u = {n: d.to(dev) for n, d in u.items()}
    w0 = {n: w0[n].to(dev) for n in u}
    params = dict(model.named_parameters())
    suite_path = Path(args.suite)
    suite = tomllib.loads(suite_path.read_text())
    chats = [json.loads(l)["messages"] for l in (suite_path.parent / suite["metric"][0]["file"]).read_text().splitlines() if l.strip()]
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    enc = [encode(tok, m, eot) for m in chats]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i][0]))
    load_s = time.perf_counter() - start
    axis = [-0.5 + 2.0 * k / (args.grid - 1) for k in range(args.grid)]
    cells = []
    with torch.inference_mode():
        for b in axis:
            for a in axis:
                for n in u:
                    params[n].copy_(w0[n] + a * u[n] + b * v[n])
                total, count = 0.0, 0
                for k in range(0, len(order), args.batch):
                    idx = order[k : k + args.batch]
                    L = max(len(enc[i][0]) for i in idx)
                    ids = torch.zeros((len(idx), L), dtype=torch.long)
                    att = torch.zeros((len(idx), L), dtype=torch.long)
                    mask = torch.zeros((len(idx), L), dtype=torch.bool)
                    for row, i in enumerate(idx):
                        n = len(enc[i][0])
                        ids[row, :n] = torch.tensor(enc[i][0])
                        att[row, :n] = 1
                        mask[row, :n] = torch.tensor(enc[i][1])
                    ids, att, mask = ids.to(dev), att.to(dev), mask.to(dev)
                    logits = model(input_ids=ids, attention_mask=att).logits.float()
                    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
                    m = mask[:, 1:]
                    total -= float((logp * m).sum())
                    count += int(m.sum())
                cells.append(total / count)
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "load_s": load_s, "cells": len(cells), "requests": len(enc), "nll_min": min(cells), "nll_max": max(cells), "torch": torch.__version__, "threads": args.threads, "device": args.device, "batch": args.batch}))


if __name__ == "__main__":
    main()
