#!/usr/bin/env python3
"""A SmolLM2-135M-Instruct-shaped Hugging Face folder with seeded random weights, for benchmarks on
a machine that cannot get the real model (the lent GPU machine: no network, at most 64 MiB carried,
and the Q4_1 GGUF is 98 MB).

Same config as the real model (llama: 30 layers, hidden 576, 9 heads / 3 key-value heads, head 64,
vocabulary 49,152, tied head, rope θ 100,000) and the real tokenizer (its chat template included),
so a suite encodes to exactly the tokens it has with the real model and every matrix product has
the real shape: speed is what is measured, not quality. Weights: bf16 safetensors, normal with std
0.02, norms 1. Also a rank-8 PEFT LoRA on q_proj and v_proj as bench/make_smollm2_lora.py writes
for the real model (random non-zero A and B, seeded).

The tokenizer folder (tokenizer.json, tokenizer_config.json, chat_template.jinja; 3.4 MB) is written
here from the cached GGUF with `--save-tokenizer DIR` (needs transformers + gguf), then carried.

Usage: bench/make_smollm2_shaped.py --save-tokenizer TOKENIZER_DIR
       bench/make_smollm2_shaped.py TOKENIZER_DIR OUT_DIR   (writes OUT_DIR/model and OUT_DIR/lora-r8)
Needs numpy only.
"""
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from make_qwen3_shaped import write_safetensors

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
    "head_dim": 64, "hidden_act": "silu", "hidden_size": 576, "intermediate_size": 1536,
    "max_position_embeddings": 8192, "mlp_bias": False, "num_attention_heads": 9,
    "num_hidden_layers": 30, "num_key_value_heads": 3, "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0, "tie_word_embeddings": True, "vocab_size": 49152, "dtype": "bfloat16",
}
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
RANK = 8


def save_tokenizer(out):
    from transformers import AutoTokenizer

    cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache/basin")) / "smollm2"
    tok = AutoTokenizer.from_pretrained(cache, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.save_pretrained(out)
    print(out)


def model_tensors(c):
    h, f, n = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    q = c["num_attention_heads"] * c["head_dim"]
    kv = c["num_key_value_heads"] * c["head_dim"]
    out = [("model.embed_tokens.weight", (c["vocab_size"], h), "w")]
    for i in range(n):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,), "one"),
            (p + "self_attn.q_proj.weight", (q, h), "w"),
            (p + "self_attn.k_proj.weight", (kv, h), "w"),
            (p + "self_attn.v_proj.weight", (kv, h), "w"),
            (p + "self_attn.o_proj.weight", (h, q), "w"),
            (p + "post_attention_layernorm.weight", (h,), "one"),
            (p + "mlp.gate_proj.weight", (f, h), "w"),
            (p + "mlp.up_proj.weight", (f, h), "w"),
            (p + "mlp.down_proj.weight", (h, f), "w"),
        ]
    out.append(("model.norm.weight", (h,), "one"))
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--save-tokenizer":
        save_tokenizer(sys.argv[2])
        return
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tokenizer, root = Path(sys.argv[1]), Path(sys.argv[2])
    model, lora = root / "model", root / "lora-r8"
    if (model / "model.safetensors").exists() and (lora / "adapter_model.safetensors").exists():
        print(root)
        return
    model.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(0)
    write_safetensors(model / "model.safetensors", model_tensors(CONFIG), "bf16", gen, 0.02)
    (model / "config.json").write_text(json.dumps(CONFIG, indent=2))
    for f in TOKENIZER_FILES:
        shutil.copy(tokenizer / f, model / f)

    lora.mkdir(parents=True, exist_ok=True)
    h = CONFIG["hidden_size"]
    out_dims = {"q_proj": CONFIG["num_attention_heads"] * CONFIG["head_dim"],
                "v_proj": CONFIG["num_key_value_heads"] * CONFIG["head_dim"]}
    adapter = []
    for i in range(CONFIG["num_hidden_layers"]):
        for t, fan_out in out_dims.items():
            p = f"base_model.model.model.layers.{i}.self_attn.{t}."
            adapter += [(p + "lora_A.weight", (RANK, h), "w"), (p + "lora_B.weight", (fan_out, RANK), "w")]
    write_safetensors(lora / "adapter_model.safetensors", adapter, "f32", gen, 0.05)
    (lora / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 2 * RANK,
        "target_modules": list(out_dims), "lora_dropout": 0.0, "bias": "none",
        "fan_in_fan_out": False, "use_rslora": False, "base_model_name_or_path": str(model)}, indent=2))
    print(root)


if __name__ == "__main__":
    main()
