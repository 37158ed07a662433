#!/usr/bin/env python3
"""PyTorch + PEFT side of bench/influence_vs_torch.sh: gradsim influence of each training chat on
a query, the torch.func way: SmolLM2-135M (GGUF, f32) with a PEFT LoRA adapter, per-sample
gradients of each chat's mean target NLL with respect to the LoRA weights (`torch.func.grad` of
a `functional_call`, one sample at a time: chats differ in length), the query's gradient
(token-weighted mean NLL), and scores −⟨∇f, ∇ℓ(z)⟩. Prints JSON with the wall time (load
included, as `basin influence`) and the scores.

Usage: python3 bench/torch_influence.py ADAPTER TRAIN.jsonl QUERY.jsonl [--threads 2]
"""
import argparse
import json
import os
import time
from pathlib import Path

import torch
from peft import PeftModel
from torch.func import functional_call, grad
from transformers import AutoModelForCausalLM, AutoTokenizer

# The same encoding (Basin's loss mask) as the sweep benchmark.
from torch_sweep import encode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("train")
    ap.add_argument("query")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache/basin")) / "smollm2"
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(cache, gguf_file=gguf)
    base = AutoModelForCausalLM.from_pretrained(cache, gguf_file=gguf, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    load = lambda p: [json.loads(l) for l in open(p) if l.strip()]
    train = [(c["id"], *encode(tok, c["messages"], eot)) for c in load(args.train)]
    query = [encode(tok, c["messages"], eot) for c in load(args.query)]
    lora = {n: p.detach() for n, p in model.named_parameters() if "lora_" in n}
    names = sorted(lora)
    load_s = time.perf_counter() - start

    def nll_sum(params, ids, mask):
        logits = functional_call(model, params, (torch.tensor([ids]),)).logits[0]
        logp = torch.log_softmax(logits[:-1].float(), dim=-1)
        picked = logp.gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
        return -(picked * torch.tensor(mask[1:], dtype=torch.float32)).sum()

    g_sum = grad(nll_sum)
    flat = lambda g: torch.cat([g[n].reshape(-1) for n in names])
    total = sum(sum(m[1:]) for _, m in query)
    q = sum(flat(g_sum(lora, ids, mask)) for ids, mask in query) / total
    t0 = time.perf_counter()
    scores = {}
    for cid, ids, mask in train:
        g = flat(g_sum(lora, ids, mask)) / max(1, sum(mask[1:]))
        scores[cid] = -float(q.double() @ g.double())
    per_sample_s = (time.perf_counter() - t0) / len(train)
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "load_s": load_s, "per_sample_s": per_sample_s,
                      "samples": len(train), "scores": scores, "torch": torch.__version__,
                      "threads": args.threads}))


if __name__ == "__main__":
    main()
