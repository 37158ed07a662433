#!/usr/bin/env python3
"""PyTorch + PEFT side of bench/sweep_vs_torch.sh: an N-point LoRA-path sweep of SmolLM2-135M
over a Basin suite, the obvious way: for each t set the LoRA scaling to t·alpha/r, then score
every request of the suite (teacher-forced log-prob of the final assistant message, Basin's mask
rule) in batches. Prints JSON with the wall time (model load included, like `basin sweep`).

Usage: python3 bench/torch_sweep.py SUITE.toml ADAPTER_DIR --points 11 [--batch 8] [--threads 2]
                                     [--device cpu|cuda]
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


def requests(suite_path: Path):
    suite = tomllib.loads(suite_path.read_text())
    out = []
    for m in suite["metric"]:
        for line in (suite_path.parent / m["file"]).read_text().splitlines():
            if not line.strip():
                continue
            it = json.loads(line)
            if m["kind"] == "instruction":
                out.append(it["messages"])
            elif m["kind"] == "paired":
                for r in (it["hack"], it["honest"]):
                    out.append(it["messages"] + [{"role": "assistant", "content": r}])
            else:
                for c in it["choices"]:
                    out.append(it["messages"] + [{"role": "assistant", "content": c}])
    return out


def encode(tok, messages, eot_id):
    full = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    prefix = tok(tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert full[: len(prefix)] == prefix
    end = len(full)
    for i in range(len(prefix), len(full)):
        if full[i] == eot_id:
            end = i + 1
            break
    mask = [False] * len(full)
    for i in range(len(prefix), end):
        mask[i] = True
    return full, mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("suite")
    ap.add_argument("adapter")
    ap.add_argument("--points", type=int, default=11)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache/basin")) / "smollm2"
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(cache, gguf_file=gguf)
    base = AutoModelForCausalLM.from_pretrained(cache, gguf_file=gguf, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.adapter).to(dev)
    model.eval()
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    enc = [encode(tok, m, eot) for m in requests(Path(args.suite))]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i][0]))
    r, alpha = model.peft_config["default"].r, model.peft_config["default"].lora_alpha
    load_s = time.perf_counter() - start
    sums = []
    with torch.inference_mode():
        for p in range(args.points):
            t = p / (args.points - 1) if args.points > 1 else 0.0
            for module in model.modules():
                if hasattr(module, "scaling") and isinstance(module.scaling, dict) and "default" in module.scaling:
                    module.scaling["default"] = t * alpha / r
            total = 0.0
            for b in range(0, len(order), args.batch):
                idx = order[b : b + args.batch]
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
                # One host read per batch: the per-request sums stay on the device until here.
                total += float((logp * mask[:, 1:]).sum(dim=1).sum())
            sums.append(total)
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "load_s": load_s, "points": args.points, "requests": len(enc), "sum_logprob_by_t": sums, "torch": torch.__version__, "threads": args.threads, "device": args.device, "batch": args.batch}))


if __name__ == "__main__":
    main()
