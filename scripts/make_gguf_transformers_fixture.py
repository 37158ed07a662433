#!/usr/bin/env python3
"""Reference tensors for Basin's GGUF checkpoint reader (src/checkpoint/gguf_model.rs).

Loads the SmolLM2 GGUF with transformers (which dequantises with `gguf` and undoes llama.cpp's
Q/K row permutation) and dumps selected rows of selected tensors, by Hugging Face name, plus the
config transformers derives. Output: tests/fixtures/gguf/smollm2_transformers_tensors.json.

Usage: python3 scripts/make_gguf_transformers_fixture.py [gguf_path] [out_json]
"""

import json
import pathlib
import sys

import torch
from transformers import AutoModelForCausalLM

GGUF = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                    "/root/.cache/basin/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else
                   "tests/fixtures/gguf/smollm2_transformers_tensors.json")
N_COLS = 64

# (name, rows): rows chosen across heads and across the rotary halves so that a wrong
# un-permutation shows up.
ROWS = [
    ("model.layers.0.self_attn.q_proj.weight", [0, 1, 2, 31, 32, 33, 63, 64, 100, 575]),
    ("model.layers.0.self_attn.k_proj.weight", [0, 1, 31, 32, 63, 64, 191]),
    ("model.layers.0.self_attn.v_proj.weight", [0, 191]),
    ("model.layers.0.self_attn.o_proj.weight", [0, 575]),
    ("model.layers.0.mlp.gate_proj.weight", [0, 1535]),
    ("model.layers.0.mlp.up_proj.weight", [7]),
    ("model.layers.0.mlp.down_proj.weight", [0, 575]),
    ("model.layers.29.self_attn.q_proj.weight", [5, 320]),
    ("model.layers.29.self_attn.k_proj.weight", [40, 150]),
    ("model.embed_tokens.weight", [0, 1, 2, 49151]),
]
FULL = [
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.norm.weight",
]


def main() -> None:
    model = AutoModelForCausalLM.from_pretrained(
        str(GGUF.parent), gguf_file=GGUF.name, dtype=torch.float32
    )
    params = dict(model.named_parameters())
    out = {
        "gguf_file": GGUF.name,
        "config": {
            k: getattr(model.config, k, None)
            for k in ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                      "num_attention_heads", "num_key_value_heads", "head_dim", "rope_theta",
                      "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings"]
        },
        "shapes": {n: list(p.shape) for n, p in sorted(params.items())},
        "rows": [],
        "full": {},
    }
    rp = getattr(model.config, "rope_parameters", None)
    if isinstance(rp, dict) and out["config"]["rope_theta"] is None:
        out["config"]["rope_theta"] = rp.get("rope_theta")
    with torch.no_grad():
        for name, rows in ROWS:
            w = params[name]
            for r in rows:
                out["rows"].append({"name": name, "row": r,
                                    "values": [float(x) for x in w[r, :N_COLS].tolist()]})
        for name in FULL:
            out["full"][name] = [float(x) for x in params[name].reshape(-1).tolist()]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
