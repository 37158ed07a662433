#!/usr/bin/env python3
"""Write tiny, real Hugging Face checkpoints and transformers reference log-probs.

Output: tests/fixtures/tiny/ (see README.md written there). Everything is seeded and
computed on one CPU thread so that re-running reproduces the same files.

Usage: python3 scripts/make_tiny_fixtures.py [--out tests/fixtures/tiny]

The reference log-probs are what Basin must reproduce: teacher-forced log-prob of every
masked-in assistant token, float32, eager attention, one sequence at a time, no padding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

import peft  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

SEED = 20261127
BASE_VOCAB_SIZE = 420  # BPE vocabulary before the family's special tokens are added

# Small model shape shared by every family (head_dim 12: not a power of two on purpose).
HIDDEN = 48
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 80

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. A small model can still learn how words are
split into pieces. Tokenizers turn text into numbers, and models turn numbers into
probabilities. The assistant answers questions, writes short stories, and explains ideas
in plain language. Rivers flow to the sea; mountains rise above the clouds; the weather
changes from morning to evening. What is the capital of France? Paris is the capital of
France, and Berlin is the capital of Germany. How many days are in a week? There are seven
days in a week and twelve months in a year. Please summarise the following paragraph in one
sentence. Thank you for your help! You are a helpful assistant. The user asked a question
and the assistant gave an answer. Numbers like 12, 345 and 2026 are written with digits:
0 1 2 3 4 5 6 7 8 9. Prices: $3.50, 10% off, 7 + 5 = 12, 9 * 8 = 72, (1/2) or 0.5.
Learning rates are small, losses go down, and gradients flow backwards through the layers.
Once upon a time there was a little robot who liked to count stars at night. It counted
one, two, three, and then it fell asleep. The next day it started again from the beginning.
Café, résumé, naïve: some words carry accents. 日本 means Japan.
"""

CHAT_EXAMPLES = [
    {
        "id": "greeting",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello! Who are you?"},
            {"role": "assistant", "content": "Hello! I am a small assistant. How can I help you today?"},
        ],
    },
    {
        "id": "capital",
        "messages": [
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris is the capital of France."},
        ],
    },
    {
        "id": "multi_turn",
        "messages": [
            {"role": "system", "content": "You answer in short sentences."},
            {"role": "user", "content": "How many days are in a week?"},
            {"role": "assistant", "content": "There are seven days in a week."},
            {"role": "user", "content": "And how many months in a year?"},
            {"role": "assistant", "content": "There are twelve months in a year."},
        ],
    },
    {
        "id": "digits_punct",
        "messages": [
            {"role": "user", "content": "Compute 12 + 30, then 9 * 8 (and give 10% of 250)."},
            {"role": "assistant", "content": "12 + 30 = 42; 9 * 8 = 72. 10% of 250 is 25.0!"},
        ],
    },
    {
        "id": "non_ascii",
        "messages": [
            {"role": "system", "content": "Réponds en français, s'il te plaît."},
            {"role": "user", "content": "What does 日本 mean?"},
            {"role": "assistant", "content": "日本 means Japan: café, résumé, naïve — déjà vu."},
        ],
    },
    {
        "id": "story",
        "messages": [
            {"role": "user", "content": "Tell me a very short story about a robot."},
            {
                "role": "assistant",
                "content": "Once upon a time a little robot counted stars at night.\n"
                "It counted one, two, three, and then it fell asleep.",
            },
        ],
    },
    {
        "id": "short_answer",
        "messages": [
            {"role": "system", "content": "Answer yes or no."},
            {"role": "user", "content": "Is the sea made of water?"},
            {"role": "assistant", "content": "Yes."},
        ],
    },
]

# ---------------------------------------------------------------------------------------
# Tokenizers and chat templates
# ---------------------------------------------------------------------------------------

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# Mistral v0.1 style: a system message is folded into the first user turn.
MISTRAL_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_message = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system_message = '' %}{% set loop_messages = messages %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.first and system_message != '' %}"
    "{{ '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

# family -> (special tokens in id order, named special tokens, template, end-of-turn token)
FAMILIES = {
    "chatml": (
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None},
        CHATML_TEMPLATE,
        "<|im_end|>",
    ),
    "llama3": (
        ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|end_of_text|>"},
        LLAMA3_TEMPLATE,
        "<|eot_id|>",
    ),
    "mistral": (
        ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
        {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": None},
        MISTRAL_TEMPLATE,
        "</s>",
    ),
}


def training_corpus() -> list[str]:
    lines = [line for line in TRAINING_TEXT.splitlines() if line.strip()]
    for ex in CHAT_EXAMPLES:
        lines.extend(m["content"] for m in ex["messages"])
    return lines


def train_family_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """Byte-level BPE whose first ids are the family's special tokens (as in real models)."""
    specials, named, template, _ = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BASE_VOCAB_SIZE + len(specials),
        min_frequency=1,
        show_progress=False,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    kwargs = {k: v for k, v in named.items() if v is not None}
    extra = [s for s in specials if s not in kwargs.values()]
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        extra_special_tokens=extra,
        chat_template=template,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
        **kwargs,
    )
    return wrapped


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------


def common_config(tok: PreTrainedTokenizerFast) -> dict:
    return dict(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Fill every parameter from a seeded generator, by name (independent of HF init code).

    Std 0.08 (0.15 for embeddings/head) keeps log-probs far from uniform; norm weights are
    1 + noise so a loader that ignores them is caught; biases get visible values.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            shape = p.shape
            if name.endswith("norm.weight"):
                v = 1.0 + 0.2 * torch.randn(shape, generator=gen)
            elif name.endswith(".bias"):
                v = 0.3 * torch.randn(shape, generator=gen)
            elif "embed_tokens" in name or "lm_head" in name:
                v = 0.15 * torch.randn(shape, generator=gen)
            else:
                v = 0.08 * torch.randn(shape, generator=gen)
            p.copy_(v.to(p.dtype))


def build_model(kind: str, tok: PreTrainedTokenizerFast, seed: int):
    cfg = common_config(tok)
    if kind == "llama":
        config = LlamaConfig(**cfg, tie_word_embeddings=True, rope_theta=10000.0)
    elif kind == "llama3":
        config = LlamaConfig(
            **cfg,
            tie_word_embeddings=False,
            attention_bias=False,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        )
    elif kind == "mistral":
        config = MistralConfig(**cfg, tie_word_embeddings=False, sliding_window=None, rope_theta=10000.0)
    elif kind == "mistral_sliding":
        config = MistralConfig(**cfg, tie_word_embeddings=False, sliding_window=4096, rope_theta=1000000.0)
    elif kind == "qwen2":
        config = Qwen2Config(**cfg, tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False)
    elif kind == "qwen3":
        config = Qwen3Config(
            **cfg, tie_word_embeddings=False, head_dim=16, rope_theta=1000000.0, use_sliding_window=False
        )
    else:
        raise ValueError(kind)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    randomize(model, seed)
    model.eval()
    return model


# ---------------------------------------------------------------------------------------
# Examples, masks and log-probs
# ---------------------------------------------------------------------------------------


def encode_example(tok: PreTrainedTokenizerFast, messages: list[dict], end_token: str):
    """Token ids and target mask, exactly by the rule in README.md."""
    assert messages[-1]["role"] == "assistant"
    text = tok.apply_chat_template(messages, tokenize=False)
    prefix_text = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    prefix = tok(prefix_text, add_special_tokens=False)["input_ids"]
    assert ids[: len(prefix)] == prefix, "templated prefix is not a token prefix"
    end_id = tok.convert_tokens_to_ids(end_token)
    end_pos = ids.index(end_id, len(prefix))
    mask = [len(prefix) <= i <= end_pos for i in range(len(ids))]
    assert mask[0] is False
    return text, ids, mask


def token_logprobs(model, ids: list[int], mask: list[bool]) -> list[float]:
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].to(dtype)
    logp = torch.log_softmax(logits, dim=-1)
    out = []
    for i, m in enumerate(mask):
        if m:
            out.append(float(logp[i - 1, ids[i]]))
    return out


def evaluate(model, encoded: list[dict]) -> list[list[float]]:
    return [token_logprobs(model, e["input_ids"], e["target_mask"]) for e in encoded]


def summarize(encoded: list[dict], lps: list[list[float]]) -> tuple[list[dict], float]:
    rows = []
    total_sum = 0.0
    total_n = 0
    for e, lp in zip(encoded, lps):
        s = float(math.fsum(lp))
        n = len(lp)
        rows.append(
            {
                "id": e["id"],
                "input_ids": e["input_ids"],
                "target_mask": e["target_mask"],
                "token_logprobs": lp,
                "sum_logprob": s,
                "n_tokens": n,
                "mean_nll": -s / n,
            }
        )
        total_sum += s
        total_n += n
    return rows, -total_sum / total_n


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def load_f32(folder: Path):
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def set_lora_scale(model, scale: float) -> None:
    """Scale s multiplies every LoRA delta by s (s=1: PEFT's normal forward)."""
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name in module.scaling:
                r = module.r[name]
                alpha = module.lora_alpha[name]
                base = alpha / math.sqrt(r) if module.use_rslora[name] else alpha / r
                module.scaling[name] = scale * base


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def move_template_into_tokenizer_config(folder: Path) -> None:
    """Old (transformers 4) layout: template in tokenizer_config.json, no chat_template.jinja."""
    jinja = folder / "chat_template.jinja"
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["chat_template"] = jinja.read_text(encoding="utf-8")
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    jinja.unlink()
    write_json(cfg_path, cfg)


def rewrite_config_old_rope_layout(folder: Path) -> None:
    """Write rope settings as real Llama 3.x checkpoints do: top-level `rope_theta` and
    `rope_scaling` (transformers 5 itself writes `rope_parameters`)."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope
    write_json(path, dict(sorted(cfg.items())))


def strip_volatile(folder: Path) -> None:
    """Drop fields that would make re-runs differ or leak local paths."""
    for name in ("adapter_config.json",):
        path = folder / name
        if path.exists():
            cfg = json.loads(path.read_text(encoding="utf-8"))
            cfg["base_model_name_or_path"] = "../llama"
            # PEFT stores target_modules from a set: its order changes between runs.
            if isinstance(cfg.get("target_modules"), list):
                cfg["target_modules"] = sorted(cfg["target_modules"])
            write_json(path, cfg)
    readme = folder / "README.md"
    if readme.exists():
        readme.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/fixtures/tiny"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for child in out.iterdir():  # start clean, but keep the hand-written README.md
        if child.name == "README.md":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()

    with open(out / "chat.jsonl", "w", encoding="utf-8") as f:
        for ex in CHAT_EXAMPLES:
            f.write(json.dumps(ex, ensure_ascii=False) + "\n")

    toks = {fam: train_family_tokenizer(fam) for fam in FAMILIES}

    # name -> (model kind, family, seed, save dtype, shard size, old tokenizer layout)
    specs = [
        ("llama", "llama", "chatml", 1, torch.float32, None, False),
        ("llama3", "llama3", "llama3", 2, torch.float32, None, False),
        ("mistral", "mistral", "mistral", 3, torch.float32, None, True),
        ("qwen2", "qwen2", "chatml", 4, torch.float32, None, False),
        ("qwen3", "qwen3", "chatml", 5, torch.float32, None, False),
        ("mistral_sharded_bf16", "mistral_sliding", "mistral", 6, torch.bfloat16, "40KB", False),
    ]

    versions = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "peft": peft.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
    }
    reference = {
        "description": "Teacher-forced log-probs of masked-in assistant tokens; see README.md",
        "versions": versions,
        "models": [],
    }

    encoded_by_family = {}
    for fam, tok in toks.items():
        end_token = FAMILIES[fam][3]
        rows = []
        for ex in CHAT_EXAMPLES:
            text, ids, mask = encode_example(tok, ex["messages"], end_token)
            assert max(ids) < len(tok)
            rows.append({"id": ex["id"], "text": text, "input_ids": ids, "target_mask": mask})
        encoded_by_family[fam] = rows

    base_llama = None
    for name, kind, fam, seed, save_dtype, shard, old_tok_layout in specs:
        tok = toks[fam]
        folder = out / name
        model = build_model(kind, tok, seed)
        to_save = model.to(save_dtype) if save_dtype != torch.float32 else model
        kwargs = {"max_shard_size": shard} if shard else {}
        to_save.save_pretrained(folder, safe_serialization=True, **kwargs)
        tok.save_pretrained(folder, save_jinja_files=True)
        if old_tok_layout:
            move_template_into_tokenizer_config(folder)
        if kind == "llama3":
            rewrite_config_old_rope_layout(folder)
        strip_volatile(folder)

        # Reference from the files on disk (what Basin reads), upcast to f32.
        model_f32 = load_f32(folder)
        enc = encoded_by_family[fam]
        lps = evaluate(model_f32, enc)
        if save_dtype == torch.float32:
            in_memory = evaluate(model.float(), enc)
            assert max_abs_diff(lps, in_memory) == 0.0, f"{name}: reload changed log-probs"
        # The reloaded tokenizer must reproduce the ids.
        tok2 = AutoTokenizer.from_pretrained(folder)
        for e, ex in zip(enc, CHAT_EXAMPLES):
            _, ids2, mask2 = encode_example(tok2, ex["messages"], FAMILIES[fam][3])
            assert ids2 == e["input_ids"] and mask2 == e["target_mask"], f"{name}: tokenizer reload differs"
        lps64 = evaluate(load_f32(folder).to(torch.float64), enc)
        rows, mean_nll = summarize(enc, lps)
        extra = {}
        if kind == "llama3":
            # The rope scaling must change the numbers, or the fixture would not test it.
            plain = load_f32(folder)
            plain.config.rope_parameters = {"rope_type": "default", "rope_theta": 500000.0}
            plain.model.rotary_emb = type(plain.model.rotary_emb)(plain.config)
            effect = max_abs_diff(lps, evaluate(plain, enc))
            assert effect > 1e-3, f"llama3 rope scaling has no visible effect ({effect})"
            extra["rope_scaling_effect_max_abs"] = effect
        n_files = sorted(p.name for p in folder.glob("*.safetensors"))
        reference["models"].append(
            {
                "name": name,
                "folder": name,
                "adapter_folder": None,
                "lora_scale": None,
                "architecture": model.config.architectures[0],
                "chat_family": fam,
                "end_of_turn_token": FAMILIES[fam][3],
                "weights_dtype_on_disk": str(save_dtype).replace("torch.", ""),
                "safetensors_files": n_files,
                "mean_nll": mean_nll,
                "f64_max_abs_diff": max_abs_diff(lps, lps64),
                **extra,
                "examples": rows,
            }
        )
        if name == "llama":
            base_llama = (folder, enc, lps)
        print(f"{name}: vocab {len(tok)}, mean_nll {mean_nll:.4f}, f64 diff {max_abs_diff(lps, lps64):.2e}")

    # LoRA adapters on the llama base.
    base_folder, enc, base_lps = base_llama
    adapters = [
        (
            "llama_lora",
            LoraConfig(
                r=4,
                lora_alpha=8,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                init_lora_weights=False,
                lora_dropout=0.0,
                task_type="CAUSAL_LM",
            ),
            11,
            0.03,
        ),
        (
            "llama_lora_rslora",
            LoraConfig(
                r=4,
                lora_alpha=8,
                target_modules="all-linear",
                use_rslora=True,
                init_lora_weights=False,
                lora_dropout=0.0,
                task_type="CAUSAL_LM",
            ),
            12,
            0.015,
        ),
    ]
    for name, lcfg, seed, b_std in adapters:
        folder = out / name
        base = load_f32(base_folder)
        pm = get_peft_model(base, lcfg)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for pname, p in sorted(pm.named_parameters(), key=lambda kv: kv[0]):
                if ".lora_A." in pname:
                    p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
                elif ".lora_B." in pname:
                    p.copy_(b_std * torch.randn(p.shape, generator=gen))
        pm.eval()
        pm.save_pretrained(folder, safe_serialization=True)
        strip_volatile(folder)

        # Reload through PEFT from the files on disk.
        loaded = PeftModel.from_pretrained(load_f32(base_folder), folder)
        loaded.eval()
        normal = evaluate(loaded, enc)
        assert max_abs_diff(normal, evaluate(pm, enc)) < 1e-6
        merged = evaluate(PeftModel.from_pretrained(load_f32(base_folder), folder).merge_and_unload(), enc)
        merge_diff = max_abs_diff(normal, merged)
        for scale in (0.0, 0.5, 1.0):
            set_lora_scale(loaded, scale)
            lps = evaluate(loaded, enc)
            if scale == 1.0:
                assert max_abs_diff(lps, normal) == 0.0, "scale 1 must equal PEFT's forward"
            if scale == 0.0:
                assert max_abs_diff(lps, base_lps) == 0.0, "scale 0 must equal the base"
            loaded64 = PeftModel.from_pretrained(load_f32(base_folder), folder).to(torch.float64)
            loaded64.eval()
            set_lora_scale(loaded64, scale)
            lps64 = evaluate(loaded64, enc)
            rows, mean_nll = summarize(enc, lps)
            delta = max_abs_diff(lps, base_lps)
            mean_delta = float(
                np.mean([abs(x - y) for a, b in zip(lps, base_lps) for x, y in zip(a, b)])
            )
            reference["models"].append(
                {
                    "name": f"{name}@{scale}",
                    "folder": "llama",
                    "adapter_folder": name,
                    "lora_scale": scale,
                    "architecture": "LlamaForCausalLM",
                    "chat_family": "chatml",
                    "end_of_turn_token": FAMILIES["chatml"][3],
                    "weights_dtype_on_disk": "float32",
                    "safetensors_files": ["adapter_model.safetensors"],
                    "mean_nll": mean_nll,
                    "f64_max_abs_diff": max_abs_diff(lps, lps64),
                    "max_abs_delta_vs_base": delta,
                    "mean_abs_delta_vs_base": mean_delta,
                    "merged_max_abs_diff": merge_diff if scale == 1.0 else None,
                    "examples": rows,
                }
            )
            print(f"{name}@{scale}: mean_nll {mean_nll:.4f}, |d| max {delta:.3f} mean {mean_delta:.3f}")

    write_json(out / "reference.json", reference)


if __name__ == "__main__":
    main()
