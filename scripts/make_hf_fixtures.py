#!/usr/bin/env python3
"""Write small Hugging Face / safetensors / PEFT fixtures for Basin's checkpoint readers.

Output: tests/fixtures/hf_small/ (well under 300 KB):
  dtypes/      dtypes.safetensors (F32, F16, BF16) + reference.json (numpy's f32 view of each value)
  sharded/     two shards + model.safetensors.index.json, written with safetensors directly
  llama/       a tiny LlamaForCausalLM (hidden 16) saved by transformers 5, with a tiny BPE tokenizer
               and a chat template (chat_template.jinja)
  lora/        a PEFT LoRA adapter for llama/ (r=2, q_proj+v_proj, init_lora_weights=False)
  lora_rslora/ same with use_rslora, rank_pattern and alpha_pattern
  */reference.json for the adapters: A, B and scaling of every module as PEFT reports them

Usage: python3 scripts/make_hf_fixtures.py [--out tests/fixtures/hf_small]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

torch.manual_seed(0)
torch.set_num_threads(1)

import peft  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402


def write_dtypes(out: Path) -> None:
    out.mkdir(parents=True)
    values = torch.tensor(
        [[0.0, -0.0, 1.0, -2.5, 3.14159265, 1e-3], [65504.0, -1e-7, 0.333333, 123.456, -7.75, 2.0**-14]],
        dtype=torch.float32,
    )
    tensors = {
        "w_f32": values.clone(),
        "w_f16": values.to(torch.float16),
        "w_bf16": values.t().contiguous().to(torch.bfloat16),
    }
    save_torch(tensors, str(out / "dtypes.safetensors"))
    ref = {}
    for name, t in tensors.items():
        ref[name] = {
            "dtype": {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype],
            "shape": list(t.shape),
            # numpy's view of the stored value, widened to f32 (exact), then to Python float.
            "values": [float(v) for v in t.to(torch.float32).numpy().reshape(-1)],
        }
    (out / "reference.json").write_text(json.dumps(ref, indent=1))


def write_sharded(out: Path) -> None:
    out.mkdir(parents=True)
    save_numpy({"a": np.arange(4, dtype=np.float32).reshape(2, 2)}, str(out / "model-00001-of-00002.safetensors"))
    save_numpy(
        {"b": np.ones((1,), dtype=np.float16), "c": np.array([5, 6, 7], dtype=np.float32)},
        str(out / "model-00002-of-00002.safetensors"),
    )
    index = {
        "metadata": {"total_size": 16 + 2 + 12},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
            "c": "model-00002-of-00002.safetensors",
        },
    }
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer() -> transformers.PreTrainedTokenizerFast:
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = ["the quick brown fox jumps over the lazy dog. hello world, basin reads checkpoints."] * 20
    tok.train_from_iterator(text, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def write_llama(out: Path) -> transformers.PreTrainedModel:
    tok = make_tokenizer()
    vocab = len(tok)
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "generation_config.json").unlink(missing_ok=True)
    return model


def write_lora(base_dir: Path, out: Path, **lora_kwargs) -> None:
    torch.manual_seed(1)
    model = transformers.LlamaForCausalLM.from_pretrained(base_dir).eval()
    cfg = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, **lora_kwargs)
    pm = peft.get_peft_model(model, cfg)
    pm.save_pretrained(out)
    ref = {}
    for name, module in pm.named_modules():
        if isinstance(module, peft.tuners.lora.LoraLayer) and "default" in module.lora_A:
            key = name.removeprefix("base_model.model.")
            ref[key] = {
                "scale": float(module.scaling["default"]),
                "a_shape": list(module.lora_A["default"].weight.shape),
                "b_shape": list(module.lora_B["default"].weight.shape),
                "a": module.lora_A["default"].weight.detach().reshape(-1).tolist(),
                "b": module.lora_B["default"].weight.detach().reshape(-1).tolist(),
            }
    (out / "reference.json").write_text(json.dumps(ref, indent=1))
    (out / "README.md").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/hf_small")
    out = Path(ap.parse_args().out)
    if out.exists():
        shutil.rmtree(out)
    write_dtypes(out / "dtypes")
    write_sharded(out / "sharded")
    write_llama(out / "llama")
    write_lora(out / "llama", out / "lora")
    write_lora(
        out / "llama",
        out / "lora_rslora",
        use_rslora=True,
        rank_pattern={"model.layers.0.self_attn.q_proj": 4},
        alpha_pattern={"v_proj": 8},
    )
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()
