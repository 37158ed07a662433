#!/usr/bin/env python3
"""Known-answer fixture for curve fitting: two tiny llamas trained independently, the loss barrier
on the straight line between them, and a Garipov-style curve fitted in PyTorch.

Output: tests/fixtures/curve_pair/
  a/, b/          two LlamaForCausalLM folders (float32 safetensors, the demo's byte-level BPE and
                  ChatML template), trained from different seeds and data orders on train.jsonl
  train.jsonl     the chats both endpoints and both curve fits train on
  heldout.jsonl   chats none of them trains on
  suite.toml      instruction metrics on heldout.jsonl and train.jsonl (what `basin sweep` reports)
  reference.json  held-out mean NLL (token-weighted, Basin's loss mask) at t = 0, 0.1, ..., 1 on
                  the straight line and on the curve fitted here, the fit's recipe (which
                  tests/curve.rs repeats with `basin curve fit`), and the barriers

The curve is Basin's parameterisation: θ(t) = θ_a + t·(θ_b − θ_a) + φ(t)·Δ_bend with the quadratic
Bezier φ(t) = 2t(1−t), Δ_bend a LoRA (PEFT's init: A Kaiming-uniform, B zero; rank and alpha
below) on every linear layer; one t per batch, drawn uniformly; AdamW on the bend only, gradients
clipped to norm 1 (as `basin curve fit`'s default); the loss
is the masked NLL of the batch at θ(t) divided by its masked targets. Only the bend's random
init and the t draws differ from Basin's fit, so the two fitted curves should agree in held-out
loss, not value for value.

Runtime: about a minute on one CPU thread. Usage: python3 scripts/make_curve_pair.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

from torch.func import functional_call  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_fixtures import encode_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo"
N_HELDOUT = 24
ENDPOINT = {"steps": 300, "batch": 8, "lr": 1e-2}
# The fit tests/curve.rs repeats with `basin curve fit` (keep the two in sync through reference.json).
FIT = {
    "kind": "bezier",
    "bend_rank": 8,
    "bend_alpha": 16.0,
    "bend_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "steps": 300,
    "batch": 8,
    "lr": 1e-2,
    "schedule": "linear",
    "max_grad_norm": 1.0,
    "seed": 0,
}
# `--full-bend`: the same fit with a dense bend (`basin curve fit --bend full`): Δ_bend is a dense
# delta of every target linear weight, initialised at zero.
FULL_FIT = {**FIT, "bend": "full", "lr": 3e-3}
TS = [i / 10 for i in range(11)]


def config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=768,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def batch_nll(model, params, batch) -> tuple[torch.Tensor, int]:
    """Summed masked NLL of `batch` (right-padded) under `params`, and its target count."""
    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    tmask = torch.zeros((len(batch), width), dtype=torch.bool)
    for r, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[r, :n] = torch.tensor(e["input_ids"])
        attn[r, :n] = 1
        tmask[r, :n] = torch.tensor(e["target_mask"])
    tmask[:, 0] = False
    logits = functional_call(model, params, (ids,), {"attention_mask": attn}).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    m = tmask[:, 1:]
    return -(picked * m).sum(), int(m.sum())


def mean_nll(model, params, encoded) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(encoded), 8):
            s, k = batch_nll(model, params, encoded[i : i + 8])
            total += float(s)
            n += k
    return total / n


def train_endpoint(seed: int, encoded) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config())
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=ENDPOINT["lr"], weight_decay=0.0)
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(ENDPOINT["steps"]):
        if len(order) < ENDPOINT["batch"]:
            perm = list(range(len(encoded)))
            rng.shuffle(perm)
            order += perm
        batch = [encoded[i] for i in order[: ENDPOINT["batch"]]]
        del order[: ENDPOINT["batch"]]
        s, n = batch_nll(model, params, batch)
        opt.zero_grad()
        (s / n).backward()
        opt.step()
    return model


def linear_names(model) -> list[str]:
    return [
        n[: -len(".weight")]
        for n, _ in model.named_parameters()
        if n.endswith(".weight") and n.split(".")[-2] in FIT["bend_targets"]
    ]


def curve_params(p0, delta, bend, scale: float, t: float):
    """θ(t) of every parameter; `bend` maps a linear module to its (A [r, in], B [out, r])."""
    phi = 2 * t * (1 - t)
    out = {}
    for name, w0 in p0.items():
        w = w0 + t * delta[name]
        module = name[: -len(".weight")]
        if module in bend:
            a, b = bend[module]
            w = w + phi * scale * (b @ a)
        out[name] = w
    return out


def fit_curve(model, p0, delta, encoded):
    torch.manual_seed(FIT["seed"])
    scale = FIT["bend_alpha"] / FIT["bend_rank"]
    bend = {}
    for module in linear_names(model):
        w = p0[module + ".weight"]
        a = torch.empty(FIT["bend_rank"], w.shape[1])
        torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT's lora_A init
        bend[module] = (a.requires_grad_(), torch.zeros(w.shape[0], FIT["bend_rank"], requires_grad=True))
    leaves = [x for ab in bend.values() for x in ab]
    opt = torch.optim.AdamW(leaves, lr=FIT["lr"], weight_decay=0.0)
    # transformers' get_linear_schedule_with_warmup(0 warmup): update s uses (total - s) / total.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (FIT["steps"] - s) / FIT["steps"]))
    rng = random.Random(FIT["seed"])
    order: list[int] = []
    losses = []
    for _ in range(FIT["steps"]):
        if len(order) < FIT["batch"]:
            perm = list(range(len(encoded)))
            rng.shuffle(perm)
            order += perm
        batch = [encoded[i] for i in order[: FIT["batch"]]]
        del order[: FIT["batch"]]
        t = rng.random()
        s, n = batch_nll(model, curve_params(p0, delta, bend, scale, t), batch)
        opt.zero_grad()
        (s / n).backward()
        torch.nn.utils.clip_grad_norm_(leaves, FIT["max_grad_norm"])
        opt.step()
        sched.step()
        losses.append(float(s.detach()) / n)
    return bend, scale, losses


def fit_full_curve(model, p0, delta, encoded):
    """FIT's loop with a dense bend: θ(t) = θ₀ + t·Δ + φ(t)·D, D zero at the start."""
    bend = {
        module + ".weight": torch.zeros_like(p0[module + ".weight"], requires_grad=True)
        for module in linear_names(model)
    }
    leaves = list(bend.values())
    opt = torch.optim.AdamW(leaves, lr=FULL_FIT["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: max(0.0, (FULL_FIT["steps"] - s) / FULL_FIT["steps"])
    )
    rng = random.Random(FULL_FIT["seed"])
    order: list[int] = []
    for _ in range(FULL_FIT["steps"]):
        if len(order) < FULL_FIT["batch"]:
            perm = list(range(len(encoded)))
            rng.shuffle(perm)
            order += perm
        batch = [encoded[i] for i in order[: FULL_FIT["batch"]]]
        del order[: FULL_FIT["batch"]]
        t = rng.random()
        s, n = batch_nll(model, full_params(p0, delta, bend, t), batch)
        opt.zero_grad()
        (s / n).backward()
        torch.nn.utils.clip_grad_norm_(leaves, FULL_FIT["max_grad_norm"])
        opt.step()
        sched.step()
    return bend


def full_params(p0, delta, bend, t: float):
    phi = 2 * t * (1 - t)
    return {n: w0 + t * delta[n] + (phi * bend[n] if n in bend else 0.0) for n, w0 in p0.items()}


def add_full_bend(out: Path) -> None:
    """Fits the dense bend on the fixture's existing pair and adds `full_bend` to reference.json."""
    tok = PreTrainedTokenizerFast.from_pretrained(out / "a")
    train = [json.loads(line) for line in open(out / "train.jsonl")]
    heldout = [json.loads(line) for line in open(out / "heldout.jsonl")]

    def encode(rows):
        enc = []
        for r in rows:
            _, ids, mask = encode_example(tok, r["messages"], "<|im_end|>")
            enc.append({"input_ids": ids, "target_mask": mask})
        return enc

    enc_train, enc_heldout = encode(train), encode(heldout)
    model = LlamaForCausalLM.from_pretrained(out / "a", dtype=torch.float32)
    other = LlamaForCausalLM.from_pretrained(out / "b", dtype=torch.float32)
    p0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    p1 = {n: p.detach().clone() for n, p in other.named_parameters()}
    delta = {n: p1[n] - p0[n] for n in p0}
    torch.manual_seed(FULL_FIT["seed"])
    bend = fit_full_curve(model, p0, delta, enc_train)
    with torch.no_grad():
        curve = [mean_nll(model, full_params(p0, delta, bend, t), enc_heldout) for t in TS]
        curve_train = [mean_nll(model, full_params(p0, delta, bend, t), enc_train) for t in TS]
    ref = json.loads((out / "reference.json").read_text())
    ref["full_bend"] = {
        "fit": FULL_FIT,
        "curve_heldout_nll": curve,
        "curve_train_nll": curve_train,
        "curve_barrier": barrier(curve),
        "bend_norm": math.sqrt(sum(float((b.detach() ** 2).sum()) for b in bend.values())),
    }
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(json.dumps({k: ref["full_bend"][k] for k in ("curve_heldout_nll", "curve_barrier")}, indent=1))


def barrier(losses: list[float]) -> float:
    return max(losses) - (losses[0] + losses[-1]) / 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "curve_pair")
    ap.add_argument(
        "--full-bend",
        action="store_true",
        help="only add the dense-bend fit (full_bend in reference.json) to an existing pair",
    )
    args = ap.parse_args()
    out: Path = args.out
    if args.full_bend:
        add_full_bend(out)
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    tok = PreTrainedTokenizerFast.from_pretrained(DEMO / "base")
    chats = [json.loads(line) for line in open(DEMO / "train.jsonl")]
    train, heldout = chats[:-N_HELDOUT], chats[-N_HELDOUT:]
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", heldout)):
        with open(out / name, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    def encode(rows):
        enc = []
        for r in rows:
            _, ids, mask = encode_example(tok, r["messages"], "<|im_end|>")
            enc.append({"input_ids": ids, "target_mask": mask})
        return enc

    enc_train, enc_heldout = encode(train), encode(heldout)

    models = {}
    for name, seed in (("a", 1), ("b", 2)):
        m = train_endpoint(seed, enc_train)
        m.save_pretrained(out / name, safe_serialization=True)
        tok.save_pretrained(out / name)
        models[name] = m
    for d in ("a", "b"):
        (out / d / "generation_config.json").unlink(missing_ok=True)

    model = models["a"]
    p0 = {n: p.detach().clone() for n, p in models["a"].named_parameters()}
    p1 = {n: p.detach().clone() for n, p in models["b"].named_parameters()}
    delta = {n: p1[n] - p0[n] for n in p0}
    line = [mean_nll(model, curve_params(p0, delta, {}, 0.0, t), enc_heldout) for t in TS]
    line_train = [mean_nll(model, curve_params(p0, delta, {}, 0.0, t), enc_train) for t in TS]
    bend, scale, fit_losses = fit_curve(model, p0, delta, enc_train)
    with torch.no_grad():
        curve = [mean_nll(model, curve_params(p0, delta, bend, scale, t), enc_heldout) for t in TS]
        curve_train = [mean_nll(model, curve_params(p0, delta, bend, scale, t), enc_train) for t in TS]

    (out / "suite.toml").write_text(
        'name = "curve_pair"\nversion = 1\n\n[[metric]]\nname = "instruction"\nkind = "instruction"\n'
        'file = "heldout.jsonl"\ndescription = "Held-out chats: mean NLL of the assistant turn"\n\n'
        '[[metric]]\nname = "fit_data"\nkind = "instruction"\nfile = "train.jsonl"\n'
        'description = "The chats the endpoints and the curve were trained on: mean NLL"\n'
    )
    ref = {
        "endpoint_training": ENDPOINT,
        "fit": FIT,
        "t": TS,
        "line_heldout_nll": line,
        "curve_heldout_nll": curve,
        "line_train_nll": line_train,
        "curve_train_nll": curve_train,
        "line_barrier": barrier(line),
        "curve_barrier": barrier(curve),
        "fit_loss_first_last": [fit_losses[0], fit_losses[-1]],
        "torch": torch.__version__,
    }
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    add_full_bend(out)
    print(json.dumps({k: ref[k] for k in ("line_heldout_nll", "curve_heldout_nll", "curve_train_nll", "line_barrier", "curve_barrier")}, indent=1))


if __name__ == "__main__":
    main()
