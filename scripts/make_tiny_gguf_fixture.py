#!/usr/bin/env python3
"""Writes tests/fixtures/tiny_gguf/llama3.gguf: the tiny Llama-3 checkpoint of
tests/fixtures/tiny/llama3 (Llama 3 RoPE scaling, GQA, untied head) converted to GGUF the way
llama.cpp's convert_hf_to_gguf.py does it, so Basin's GGUF path can be checked against the
transformers reference of the same weights (tests/fixtures/tiny/reference.json, entry `llama3`):

- tensor names blk.N.attn_q / ffn_gate / ... ; F32 data;
- attn_q / attn_k rows permuted for llama.cpp's adjacent-pair RoPE;
- Llama 3 RoPE scaling stored as `rope_freqs.weight` (one divisor per frequency);
- the tokenizer as tokenizer.ggml.* (gpt2 BPE, pre `smollm`: digits split, byte-level), and the
  chat template as tokenizer.chat_template.

Uses the `gguf` package's GGUFWriter (pip install gguf safetensors numpy). Deterministic.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests/fixtures/tiny/llama3"
OUT = ROOT / "tests/fixtures/tiny_gguf/llama3.gguf"


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_factors(cfg: dict) -> np.ndarray:
    sc = cfg["rope_scaling"]
    base = cfg["rope_theta"]
    dim = cfg["head_dim"]
    factor, low, high = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
    old_ctx = sc["original_max_position_embeddings"]
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def main() -> None:
    cfg = json.loads((SRC / "config.json").read_text())
    tok = json.loads((SRC / "tokenizer.json").read_text())
    tok_cfg = json.loads((SRC / "tokenizer_config.json").read_text())
    template = (SRC / "chat_template.jinja").read_text()
    weights = load_file(SRC / "model.safetensors")

    w = GGUFWriter(str(OUT), "llama")
    w.add_name("basin-tiny-llama3")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])

    vocab = tok["model"]["vocab"]
    added = {t["id"]: t for t in tok["added_tokens"]}
    size = max(max(vocab.values()), max(added)) + 1
    tokens = [""] * size
    types = [TokenType.NORMAL] * size
    for piece, i in vocab.items():
        tokens[i] = piece
    for i, t in added.items():
        tokens[i] = t["content"]
        types[i] = TokenType.CONTROL if t["special"] else TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["<|begin_of_text|>"])
    w.add_eos_token_id(ids["<|eot_id|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(template)

    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w.add_tensor("rope_freqs.weight", rope_factors(cfg))
    w.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", weights["model.norm.weight"])
    w.add_tensor("output.weight", weights["lm_head.weight"])
    names = {
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
        "input_layernorm.weight": "attn_norm.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
    }
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            t = weights[f"model.layers.{i}.{hf}"]
            if hf.startswith("self_attn.q_proj"):
                t = permute(t, n_head)
            elif hf.startswith("self_attn.k_proj"):
                t = permute(t, n_kv)
            w.add_tensor(f"blk.{i}.{gg}", np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
