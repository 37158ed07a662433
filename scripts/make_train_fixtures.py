#!/usr/bin/env python3
"""References for `basin train`: LoRA gradients and a short AdamW run, computed with PEFT + torch.

Output: tests/fixtures/train/ (reference.json, grads.safetensors, final_adapter/). Seeded, one CPU
thread, float32. Usage (from the repository root):

    python3 scripts/make_train_fixtures.py [--model tests/fixtures/tiny/llama]
        [--adapter tests/fixtures/tiny/llama_lora] [--data tests/fixtures/tiny/chat.jsonl]
        [--out tests/fixtures/train]

What Basin must reproduce (the rules of `basin train`):
- The loss mask of `basin eval` (assistant turn up to and including its end-of-turn token).
- Loss of an optimizer step = sum of the masked target NLL over the step's examples / number of
  masked targets in the step; a step holds `grad_accum` batches of `batch` examples.
- Order without shuffling: file order, epoch after epoch; each epoch's last partial batch kept;
  steps take consecutive batches of that stream.
- torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay on every LoRA tensor),
  torch.nn.utils.clip_grad_norm_ (the norm before clipping is reported), transformers'
  get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup / constant (with warmup).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

import peft  # noqa: E402
import transformers  # noqa: E402
from peft import PeftModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_fixtures import encode_example  # noqa: E402

# The run Basin repeats in tests/train.rs (keep the two in sync).
RUN = {
    "batch": 2,
    "grad_accum": 2,
    "steps": 8,
    "lr": 1e-2,
    "schedule": "linear",
    "warmup_steps": 2,
    "weight_decay": 0.1,
    "max_grad_norm": 0.5,
    "shuffle": False,
}


def load(model_dir: Path, adapter_dir: Path):
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    model.train()  # dropout is 0 in the fixtures' adapters, so train mode changes nothing else
    for n, p in model.named_parameters():
        assert p.requires_grad == ("lora_" in n), n
    return model


def nll_sum(model, example) -> tuple[torch.Tensor, int]:
    ids = example["input_ids"]
    mask = example["target_mask"]
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    pos = [i for i, m in enumerate(mask) if m and i > 0]
    picked = logp[torch.tensor([i - 1 for i in pos]), torch.tensor([ids[i] for i in pos])]
    return -picked.sum(), len(pos)


def lora_params(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def peft_key(name: str) -> str:
    # `base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight` -> PEFT's file key.
    return name.replace(".default.weight", ".weight")


def schedule_factor(kind: str, step: int, warmup: int, total: int) -> float:
    """The lr multiplier of update `step` (0-based), as transformers' LambdaLR schedules."""
    if kind == "constant":
        return step / max(1, warmup) if step < warmup else 1.0
    if step < warmup:
        return step / max(1, warmup)
    if kind == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def real_schedule_factors(kind: str, warmup: int, total: int) -> list[float]:
    """The same factors read off transformers' own schedulers (checked against the formula)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    if kind == "linear":
        sched = transformers.get_linear_schedule_with_warmup(opt, warmup, total)
    elif kind == "cosine":
        sched = transformers.get_cosine_schedule_with_warmup(opt, warmup, total)
    else:
        sched = transformers.get_constant_schedule_with_warmup(opt, warmup)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


SMOLLM2_RUN = {
    "batch": 2,
    "grad_accum": 1,
    "steps": 8,
    "lr": 1e-3,
    "schedule": "linear",
    "warmup_steps": 2,
    "weight_decay": 0.1,
    "max_grad_norm": 1.0,
    "shuffle": False,
}


def run_loop(model, encoded, run):
    """The loop Basin repeats: per step, sum NLL / targets of the step, backward per example."""
    params = [p for _, p in lora_params(model)]
    opt = torch.optim.AdamW(params, lr=run["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=run["weight_decay"])
    sched = transformers.get_linear_schedule_with_warmup(opt, run["warmup_steps"], run["steps"])
    b = run["batch"]
    epoch_batches = [encoded[i:i + b] for i in range(0, len(encoded), b)]
    stream = []
    while len(stream) < run["steps"] * run["grad_accum"]:
        stream.extend(epoch_batches)
    steps = []
    samples = 0
    for s in range(run["steps"]):
        batches = stream[s * run["grad_accum"]:(s + 1) * run["grad_accum"]]
        items = [e for batch in batches for e in batch]
        n_step = sum(sum(1 for i, m in enumerate(e["target_mask"]) if m and i > 0) for e in items)
        opt.zero_grad()
        loss_sum = 0.0
        for e in items:
            nll, _ = nll_sum(model, e)
            (nll / n_step).backward()
            loss_sum += float(nll.detach())
        norm = torch.nn.utils.clip_grad_norm_(params, run["max_grad_norm"])
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        samples += len(items)
        steps.append({
            "step": s + 1,
            "samples_seen": samples,
            "tokens": n_step,
            "loss": loss_sum / n_step,
            "lr": lr,
            "grad_norm": float(norm),
            "ids": [e["id"] for e in items],
        })
    return steps


def mean_nll(model, encoded) -> float:
    model.eval()
    with torch.no_grad():
        tot, n = 0.0, 0
        for e in encoded:
            s_, k = nll_sum(model, e)
            tot += float(s_)
            n += k
    return tot / n


def smollm2(gguf: Path, data: Path, out: Path) -> None:
    """SmolLM2-135M-Instruct (the GGUF the tests fetch, dequantised to f32 by transformers):
    continue a seeded rank-4 q/v adapter for 8 steps; write the adapter, the encoded ids, the
    per-step log and the final mean NLL to out/."""
    from peft import LoraConfig, get_peft_model

    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    examples = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    encoded = []
    for ex in examples:
        _, ids, mask = encode_example(tok, ex["messages"], "<|im_end|>")
        encoded.append({"id": ex["id"], "input_ids": ids, "target_mask": mask})
    base = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                attn_implementation="eager")
    torch.manual_seed(2)
    init = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           lora_dropout=0.0, init_lora_weights=False))
    with torch.no_grad():
        for n, p in init.named_parameters():
            if "lora_B" in n:
                p.mul_(0.02)
    adapter_dir = out / "init_adapter"
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    init.save_pretrained(adapter_dir, safe_serialization=True)
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "SmolLM2-135M-Instruct.Q4_1.gguf"
    cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (adapter_dir / "README.md").unlink(missing_ok=True)

    base = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                attn_implementation="eager")
    model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    model.train()
    steps = run_loop(model, encoded, SMOLLM2_RUN)
    ref = {
        "description": "SmolLM2-135M-Instruct: PEFT + torch reference for basin train",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "data": str(data),
        "encoded": encoded,
        "run": SMOLLM2_RUN,
        "steps": steps,
        "final_mean_nll": mean_nll(model, encoded),
    }
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {out}: final mean NLL {ref['final_mean_nll']:.6f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tests/fixtures/tiny/llama")
    ap.add_argument("--adapter", default="tests/fixtures/tiny/llama_lora")
    ap.add_argument("--data", default="tests/fixtures/tiny/chat.jsonl")
    ap.add_argument("--end-token", default="<|im_end|>")
    ap.add_argument("--out", default="tests/fixtures/train")
    ap.add_argument("--smollm2", help="the SmolLM2 GGUF: write the SmolLM2 reference instead")
    args = ap.parse_args()
    if args.smollm2:
        smollm2(Path(args.smollm2), Path(args.data), Path(args.out) / "smollm2")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tok = AutoTokenizer.from_pretrained(args.model)
    examples = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    encoded = []
    for ex in examples:
        _, ids, mask = encode_example(tok, ex["messages"], args.end_token)
        encoded.append({"id": ex["id"], "input_ids": ids, "target_mask": mask})

    # 1. Gradients of one step over every example (loss = sum NLL / targets).
    torch.manual_seed(0)
    model = load(Path(args.model), Path(args.adapter))
    total = torch.zeros(())
    n_total = sum(sum(1 for i, m in enumerate(e["target_mask"]) if m and i > 0) for e in encoded)
    for e in encoded:
        s, _ = nll_sum(model, e)
        total = total + s
    loss = total / n_total
    loss.backward()
    grads = {peft_key(n): p.grad.detach().clone().contiguous() for n, p in lora_params(model)}
    save_file(grads, str(out / "grads.safetensors"))
    one_step = {"loss": float(loss.detach()), "n_targets": n_total, "n_tensors": len(grads)}

    # 2. A short run: AdamW + warmup + linear decay + clipping + weight decay.
    model = load(Path(args.model), Path(args.adapter))
    steps = run_loop(model, encoded, RUN)
    final_dir = out / "final_adapter"
    if final_dir.exists():
        shutil.rmtree(final_dir)
    model.save_pretrained(final_dir, safe_serialization=True)
    cfg_path = final_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "../../tiny/llama"
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (final_dir / "README.md").unlink(missing_ok=True)

    # The final adapter's token-weighted mean NLL over the data (what `basin eval` reports).
    final_nll = mean_nll(model, encoded)

    # 3. PEFT's initialisation of a fresh adapter (default init_lora_weights=True).
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(1)
    fresh = get_peft_model(
        AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32),
        LoraConfig(r=64, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    a_vals = torch.cat([p.detach().flatten() for n, p in fresh.named_parameters() if "lora_A" in n])
    b_vals = torch.cat([p.detach().flatten() for n, p in fresh.named_parameters() if "lora_B" in n])
    in_features = fresh.base_model.model.model.layers[0].self_attn.q_proj.in_features
    fresh_init = {
        "rank": 64,
        "in_features": in_features,
        "n": int(a_vals.numel()),
        "a_max_abs": float(a_vals.abs().max()),
        "a_mean": float(a_vals.mean()),
        "a_var": float(a_vals.var()),
        "b_max_abs": float(b_vals.abs().max()),
    }

    schedules = []
    for kind in ["constant", "linear", "cosine"]:
        for warmup, total_steps in [(0, 5), (3, 10), (2, 7)]:
            real = real_schedule_factors(kind, warmup, total_steps)
            formula = [schedule_factor(kind, k, warmup, total_steps) for k in range(total_steps)]
            assert max(abs(a - b) for a, b in zip(real, formula)) < 1e-12, (kind, real, formula)
            schedules.append({"kind": kind, "warmup": warmup, "total": total_steps, "factors": real})

    reference = {
        "description": "PEFT + torch references for basin train; see scripts/make_train_fixtures.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "model": args.model,
        "adapter": args.adapter,
        "data": args.data,
        "one_step": one_step,
        "run": RUN,
        "steps": steps,
        "final_mean_nll": final_nll,
        "fresh_init": fresh_init,
        "schedules": schedules,
    }
    (out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {out}: one-step loss {one_step['loss']:.6f}, final mean NLL {final_nll:.6f}")


if __name__ == "__main__":
    main()
