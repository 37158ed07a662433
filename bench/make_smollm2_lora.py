#!/usr/bin/env python3
"""A rank-8 PEFT LoRA adapter for SmolLM2-135M-Instruct (q_proj, v_proj; random non-zero A and B,
seeded) written to $BASIN_CACHE/smollm2/lora-r8, for the sweep benchmark. Not a trained hacker:
the benchmark measures speed, and both sides evaluate the same weights."""
import os
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

cache = Path(os.environ.get("BASIN_CACHE", Path.home() / ".cache/basin")) / "smollm2"
out = cache / "lora-r8"
if (out / "adapter_model.safetensors").exists():
    print(out)
    raise SystemExit(0)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(cache, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32)
cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
peft_model = get_peft_model(model, cfg)
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.mul_(0.05)
peft_model.save_pretrained(out)
print(out)
