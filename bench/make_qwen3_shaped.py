#!/usr/bin/env python3
"""A Qwen3-shaped Hugging Face folder with seeded random weights, for the scale benchmarks (issue 12).

Writes the real Qwen3-1.7B or Qwen3-8B config (hidden sizes, layers, heads, vocabulary) with bf16
safetensors shards of seeded random weights (normal, std 0.02; norms 1), the tiny test
tokenizer (its ids all lie inside the 151,936-token vocabulary), and a rank-32 PEFT LoRA adapter
on every linear layer (random non-zero A and B, seeded). Nothing is downloaded; nothing is
trained: the benchmark measures memory and speed, not quality.

Usage: bench/make_qwen3_shaped.py 1.7b|8b|wide-vocab OUT_DIR   (writes OUT_DIR/model and OUT_DIR/lora-r32)
Tensors are generated and written one at a time, so the script needs little memory.
"""
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

SHAPES = {
    # From the published config.json of Qwen/Qwen3-1.7B and Qwen/Qwen3-8B.
    "1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                 num_attention_heads=16, num_key_value_heads=8, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
               num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    # Not a real model: one small layer under Qwen3's vocabulary, whose embedding alone (148 MiB
    # in f32) is over lavapipe's 128 MiB storage-binding limit.
    "wide-vocab": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False),
}
HEAD_DIM = 128
VOCAB = 151936
SHARD_BYTES = 2 << 30
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK = 32
TINY = Path(__file__).resolve().parent.parent / "tests/fixtures/tiny/qwen3"


def model_tensors(s):
    """(name, shape, kind) in file order."""
    h, f, heads, kv = s["hidden_size"], s["intermediate_size"], s["num_attention_heads"], s["num_key_value_heads"]
    out = [("model.embed_tokens.weight", (VOCAB, h), "w")]
    for i in range(s["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,), "one"),
            (p + "self_attn.q_proj.weight", (heads * HEAD_DIM, h), "w"),
            (p + "self_attn.k_proj.weight", (kv * HEAD_DIM, h), "w"),
            (p + "self_attn.v_proj.weight", (kv * HEAD_DIM, h), "w"),
            (p + "self_attn.o_proj.weight", (h, heads * HEAD_DIM), "w"),
            (p + "self_attn.q_norm.weight", (HEAD_DIM,), "one"),
            (p + "self_attn.k_norm.weight", (HEAD_DIM,), "one"),
            (p + "post_attention_layernorm.weight", (h,), "one"),
            (p + "mlp.gate_proj.weight", (f, h), "w"),
            (p + "mlp.up_proj.weight", (f, h), "w"),
            (p + "mlp.down_proj.weight", (h, f), "w"),
        ]
    out.append(("model.norm.weight", (h,), "one"))
    if not s["tie_word_embeddings"]:
        out.append(("lm_head.weight", (VOCAB, h), "w"))
    return out


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def make(kind, shape, gen, std):
    if kind == "one":
        return np.ones(shape, dtype=np.float32)
    return (gen.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def to_bf16_bits(x):
    """f32 → bf16 bit patterns, rounded to nearest even (as torch's .to(bfloat16))."""
    bits = x.view(np.uint32)
    return ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def write_safetensors(path, entries, dtype, gen, std):
    """entries: (name, shape, kind); tensors made and written one at a time."""
    size = 2 if dtype == "bf16" else 4
    tag = "BF16" if dtype == "bf16" else "F32"
    header, offset = {}, 0
    for name, shape, _ in entries:
        n = numel(shape) * size
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for _, shape, kind in entries:
            t = make(kind, shape, gen, std)
            raw = to_bf16_bits(t).astype("<u2") if dtype == "bf16" else t.astype("<f4")
            out.write(raw.tobytes())
    return offset


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    s = SHAPES[sys.argv[1]]
    root = Path(sys.argv[2])
    model = root / "model"
    lora = root / "lora-r32"
    if (model / "model.safetensors.index.json").exists() and (lora / "adapter_model.safetensors").exists():
        print(root)
        return
    model.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(0)
    entries = model_tensors(s)
    # Shards of about SHARD_BYTES (bf16), in order, with the index transformers writes.
    shards, cur, cur_bytes = [], [], 0
    for e in entries:
        b = numel(e[1]) * 2
        if cur and cur_bytes + b > SHARD_BYTES:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(e)
        cur_bytes += b
    shards.append(cur)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_safetensors(model / name, shard, "bf16", gen, 0.02)
        for e in shard:
            weight_map[e[0]] = name
    (model / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    config = json.loads((TINY / "config.json").read_text())
    config.update(s)
    config.update(head_dim=HEAD_DIM, vocab_size=VOCAB, max_position_embeddings=40960,
                  rms_norm_eps=1e-6, dtype="bfloat16",
                  layer_types=["full_attention"] * s["num_hidden_layers"])
    (model / "config.json").write_text(json.dumps(config, indent=2))
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]:
        shutil.copy(TINY / f, model / f)

    # The adapter: PEFT's names and layout (lora_A [r, in], lora_B [out, r]), f32.
    lora.mkdir(parents=True, exist_ok=True)
    h, f = s["hidden_size"], s["intermediate_size"]
    q, kv = s["num_attention_heads"] * HEAD_DIM, s["num_key_value_heads"] * HEAD_DIM
    dims = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, f), "up_proj": (h, f), "down_proj": (f, h)}
    parts = {t: ("self_attn" if t in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp") for t in TARGETS}
    adapter = []
    for i in range(s["num_hidden_layers"]):
        for t in TARGETS:
            fan_in, fan_out = dims[t]
            p = f"base_model.model.model.layers.{i}.{parts[t]}.{t}."
            adapter += [(p + "lora_A.weight", (RANK, fan_in), "w"), (p + "lora_B.weight", (fan_out, RANK), "w")]
    write_safetensors(lora / "adapter_model.safetensors", adapter, "f32", gen, 0.02)
    (lora / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 2 * RANK,
        "target_modules": TARGETS, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
        "use_rslora": False, "base_model_name_or_path": str(model)}, indent=2))
    print(root)


if __name__ == "__main__":
    main()
