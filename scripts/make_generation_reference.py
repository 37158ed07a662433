#!/usr/bin/env python3
"""Greedy generation references for `basin generate` (tests/generate.rs):
transformers' `generate(do_sample=False)` token ids on the tiny fixtures of every architecture
(llama, llama3, mistral, qwen2, qwen3, a mistral with a 6-token sliding window), the tiny llama
with its PEFT LoRA at scale 0.5, and SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to f32).

Conventions (the ones Basin uses, written into the file):
- prompt = the chat without its final assistant message, through the tokenizer's chat template
  with add_generation_prompt=True, tokenized without extra special tokens;
- stop ids = the end-of-turn token (<|im_end|> or <|eot_id|> when the template uses it, else the
  eos token) and the tokenizer's eos token; a stop token is kept in the output;
- one prompt at a time, no padding, eager attention, f32, the model's KV cache;
- margins[i] = top-1 minus top-2 logit at new token i (a near tie can flip under a different
  but equally valid summation order; the test only compares up to the first margin < 1e-4).

Usage: python3 scripts/make_generation_reference.py [--smollm2-gguf PATH]
Writes tests/fixtures/generate/reference.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

import transformers  # noqa: E402
from peft import PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_fixtures import set_lora_scale  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
TINY_NEW_TOKENS = 20
SMOLLM2_NEW_TOKENS = 40


def stop_ids(tok) -> list[int]:
    template = tok.chat_template or ""
    eot = None
    for name in ["<|im_end|>", "<|eot_id|>"]:
        t = tok.convert_tokens_to_ids(name)
        if t is not None and t != tok.unk_token_id and name in template:
            eot = t
            break
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    if eot is not None:
        ids.add(eot)
    return sorted(ids)


def prompt_ids(tok, messages: list[dict]) -> list[int]:
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def greedy(model, ids: list[int], stops: list[int], new_tokens: int) -> dict:
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=new_tokens,
            eos_token_id=stops,
            pad_token_id=stops[0],
            output_scores=True,
            return_dict_in_generate=True,
            use_cache=True,
        )
    new = [int(t) for t in out.sequences[0, len(ids):]]
    margins = []
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        margins.append(float(top[0] - top[1]))
    return {"token_ids": new, "margins": margins}


def chats(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load(folder: Path):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                attn_implementation="eager").eval()


def case(name: str, lm, tok, examples: list[dict], new_tokens: int, **extra) -> dict:
    stops = stop_ids(tok)
    rows = []
    for ex in examples:
        ids = prompt_ids(tok, ex["messages"])
        rows.append({"id": ex["id"], "prompt_ids": ids, **greedy(lm, ids, stops, new_tokens)})
    return {"name": name, "stop_ids": stops, "max_new_tokens": new_tokens, "prompts": rows, **extra}


def main() -> None:
    cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache" / "basin")) / "smollm2"
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2-gguf", type=Path, default=cache / "SmolLM2-135M-Instruct.Q4_1.gguf")
    args = ap.parse_args()
    tiny = chats(FIX / "tiny" / "chat.jsonl")
    cases = []
    for arch in ["llama", "llama3", "mistral", "qwen2", "qwen3"]:
        folder = FIX / "tiny" / arch
        tok = AutoTokenizer.from_pretrained(folder)
        cases.append(case(arch, load(folder), tok, tiny, TINY_NEW_TOKENS, model=f"tiny/{arch}"))
    folder = FIX / "tiny_sliding" / "mistral_window6"
    tok = AutoTokenizer.from_pretrained(folder)
    cases.append(case("mistral_window6", load(folder), tok, tiny, TINY_NEW_TOKENS,
                      model="tiny_sliding/mistral_window6"))
    folder = FIX / "tiny" / "llama"
    tok = AutoTokenizer.from_pretrained(folder)
    peft = PeftModel.from_pretrained(load(folder), FIX / "tiny" / "llama_lora").eval()
    set_lora_scale(peft, 0.5)
    cases.append(case("llama_lora_0.5", peft, tok, tiny, TINY_NEW_TOKENS, model="tiny/llama",
                      adapter="tiny/llama_lora", scale=0.5))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_smollm2_reference import CHATS  # noqa: E402
    folder, name = args.smollm2_gguf.parent, args.smollm2_gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    smol = [{"id": f"chat{i}", "messages": [{"role": "user", "content": u}]}
            for i, (u, _) in enumerate(CHATS)]
    cases.append(case("smollm2", model, tok, smol, SMOLLM2_NEW_TOKENS,
                      model="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    out = {
        "description": "transformers generate(do_sample=False) token ids, one prompt at a time",
        "generator": "scripts/make_generation_reference.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cases": cases,
    }
    path = FIX / "generate" / "reference.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    for c in cases:
        finished = sum(1 for p in c["prompts"] if p["token_ids"] and p["token_ids"][-1] in c["stop_ids"])
        low = min(min(p["margins"]) for p in c["prompts"])
        print(f"{c['name']}: {len(c['prompts'])} prompts, {finished} stopped, smallest margin {low:.2e}")
    print(path)


if __name__ == "__main__":
    main()
