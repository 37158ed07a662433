#!/usr/bin/env python3
"""Reference values of a loss-landscape slice, computed with dense weights in PyTorch.

The plane is the `endpoints` plane of `basin landscape`: θ₀ = tests/fixtures/tiny/llama,
θ_H = θ₀ + ΔW of the PEFT adapter tiny/llama_lora, and a third point from a "bend" adapter
(tiny/llama_lora_rslora, used as the bend of a Bezier curve whose endpoint is llama_lora).
Everything here is dense and independent of Basin's low-rank algebra:
  - each ΔW is PEFT's own merge (`merge_and_unload`) minus the base weights;
  - u = ΔW_H, v = ΔW_bend − (⟨ΔW_bend, u⟩ / ⟨u, u⟩)·u, rescaled to ‖u‖ (Frobenius inner product
    over every parameter), as Garipov et al.'s plane plots;
  - each cell (α, β) of a 3 × 3 grid over [-0.5, 1.5]² loads θ₀ + α·u + β·v into the model and
    computes the token-weighted mean NLL of tests/fixtures/tiny/chat.jsonl under Basin's loss
    mask (the suite's `instruction` metric);
  - the bend's control point θ_b = θ₀ + ½·ΔW_H + ΔW_bend and the curve θ₀ + t·ΔW_H +
    2t(1−t)·ΔW_bend are projected onto the plane.

A second plane goes through full checkpoints (dense directions): θ₀ = tests/fixtures/curve_pair/a,
θ_H = curve_pair/b (every parameter differs, embeddings and norms included), and a bend written
here (`pair_bend/`: a seeded rank-2 PEFT LoRA on curve_pair/a, `init_lora_weights=False`), as a
curve whose endpoint is a checkpoint; its cells are scored on curve_pair/heldout.jsonl
(`pair_suite.toml`). Reference key `pair`.

Output: tests/fixtures/landscape/reference.json, suite.toml, pair_suite.toml, pair_bend/.
Runtime: a few seconds.
Usage: python3 scripts/make_landscape_reference.py
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

from peft import PeftModel  # noqa: E402
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_fixtures import encode_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "tiny"
OUT = ROOT / "tests" / "fixtures" / "landscape"
GRID = [-0.5, 0.5, 1.5]
CURVE_TS = [0.0, 0.25, 0.5, 0.75, 1.0]


def delta_of(base: LlamaForCausalLM, adapter: Path) -> dict[str, torch.Tensor]:
    merged = PeftModel.from_pretrained(copy.deepcopy(base), adapter).merge_and_unload()
    b = base.state_dict()
    return {n: (p.double() - b[n].double()) for n, p in merged.state_dict().items()}


# Names of the distinct parameters (a tied head shares the embedding: state_dict lists the
# tensor twice, a parameter vector holds it once). Set from each base model before use.
PARAMS: set[str] = set()


def inner(x: dict, y: dict) -> float:
    return float(sum((x[n] * y[n]).sum() for n in x if n in PARAMS))


def mean_nll(model: LlamaForCausalLM, encoded: list[dict]) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for e in encoded:
            ids = torch.tensor([e["input_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
            for i, m in enumerate(e["target_mask"]):
                if m:
                    total -= float(logp[i - 1, e["input_ids"][i]])
                    n += 1
    return total / n


def encode_file(tok, path: Path) -> list[dict]:
    out = []
    for line in open(path):
        c = json.loads(line)
        _, ids, mask = encode_example(tok, c["messages"], "<|im_end|>")
        out.append({"input_ids": ids, "target_mask": mask})
    return out


def plane_reference(base, d_h: dict, d_b: dict, encoded: list[dict]) -> dict:
    """Gram entries, ‖u‖, 3 × 3 cells, the projected bend point and curve of the endpoints plane
    through θ₀, θ₀ + d_h and the Bezier bend d_b (all dense)."""
    uu, ub, bb = inner(d_h, d_h), inner(d_h, d_b), inner(d_b, d_b)
    gamma = ub / uu
    v_raw = {n: d_b[n] - gamma * d_h[n] for n in d_h}
    s = (uu / inner(v_raw, v_raw)) ** 0.5
    v = {n: s * v_raw[n] for n in v_raw}
    u = d_h
    base_sd = {n: p.double() for n, p in base.state_dict().items()}

    def at(alpha: float, beta: float) -> float:
        m = copy.deepcopy(base)
        m.load_state_dict({n: (base_sd[n] + alpha * u[n] + beta * v[n]).float() for n in base_sd})
        return mean_nll(m.eval(), encoded)

    def project(w: dict) -> dict:
        # u ⟂ v and ‖u‖ = ‖v‖: the coordinates are plain inner products.
        a, b = inner(w, u) / uu, inner(w, v) / uu
        res = {n: w[n] - a * u[n] - b * v[n] for n in w}
        return {"alpha": a, "beta": b, "off_plane": inner(res, res) ** 0.5}

    return {
        "gram": {"uu": uu, "ub": ub, "bb": bb},
        "norm_u": uu ** 0.5,
        "grid": {"values": GRID, "range": "-0.5:1.5,-0.5:1.5", "grid": "3x3"},
        "cells": [{"alpha": a, "beta": b, "instruction": at(a, b)} for b in GRID for a in GRID],
        "bend_point": project({n: 0.5 * d_h[n] + d_b[n] for n in d_h}),
        "curve": [
            {"t": t, **project({n: t * d_h[n] + 2 * t * (1 - t) * d_b[n] for n in d_h})}
            for t in CURVE_TS
        ],
        "base_nll": mean_nll(base, encoded),
    }


def pair_reference() -> dict:
    from peft import LoraConfig, get_peft_model

    pair = ROOT / "tests" / "fixtures" / "curve_pair"
    a = LlamaForCausalLM.from_pretrained(pair / "a", torch_dtype=torch.float32).eval()
    PARAMS.clear()
    PARAMS.update(n for n, _ in a.named_parameters())
    b = LlamaForCausalLM.from_pretrained(pair / "b", torch_dtype=torch.float32).eval()
    tok = PreTrainedTokenizerFast.from_pretrained(pair / "a")
    encoded = encode_file(tok, pair / "heldout.jsonl")
    torch.manual_seed(3)
    cfg = LoraConfig(r=2, lora_alpha=4, init_lora_weights=False,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    bend_model = get_peft_model(copy.deepcopy(a), cfg)
    with torch.no_grad():
        for name, p in bend_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.5)
    bend_dir = OUT / "pair_bend"
    bend_model.save_pretrained(bend_dir)
    cfg_path = bend_dir / "adapter_config.json"
    c = json.loads(cfg_path.read_text())
    c["base_model_name_or_path"] = "../../curve_pair/a"
    c["target_modules"] = sorted(c["target_modules"])
    cfg_path.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")
    (bend_dir / "README.md").unlink(missing_ok=True)
    a_sd = {n: p.double() for n, p in a.state_dict().items()}
    d_h = {n: p.double() - a_sd[n] for n, p in b.state_dict().items()}
    d_b = delta_of(a, bend_dir)
    (OUT / "pair_suite.toml").write_text(
        'name = "landscape_pair"\nversion = 1\n\n[[metric]]\nname = "instruction"\n'
        'kind = "instruction"\nfile = "../curve_pair/heldout.jsonl"\n'
        'description = "The curve pair\'s held-out chats: mean NLL of the assistant turn"\n'
    )
    return plane_reference(a, d_h, d_b, encoded)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    base = LlamaForCausalLM.from_pretrained(TINY / "llama", torch_dtype=torch.float32).eval()
    PARAMS.clear()
    PARAMS.update(n for n, _ in base.named_parameters())
    tok = PreTrainedTokenizerFast.from_pretrained(TINY / "llama")
    encoded = encode_file(tok, TINY / "chat.jsonl")

    d_h = delta_of(base, TINY / "llama_lora")
    d_b = delta_of(base, TINY / "llama_lora_rslora")
    plane = plane_reference(base, d_h, d_b, encoded)

    import peft
    import transformers

    ref = {
        "about": "scripts/make_landscape_reference.py: the endpoints plane through tiny/llama, "
        "+llama_lora and a Bezier bend llama_lora_rslora; dense PyTorch weights per cell",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        **plane,
        "pair": pair_reference(),
    }
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    (OUT / "suite.toml").write_text(
        'name = "landscape_tiny"\nversion = 1\n\n[[metric]]\nname = "instruction"\n'
        'kind = "instruction"\nfile = "../tiny/chat.jsonl"\n'
        'description = "The tiny chats: mean NLL of the assistant turn"\n'
    )
    print(json.dumps(ref["cells"], indent=1))


if __name__ == "__main__":
    main()
