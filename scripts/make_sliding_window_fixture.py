#!/usr/bin/env python3
"""Sliding-window attention checked against transformers (issue 13): the tiny mistral of
tests/fixtures/tiny with `sliding_window` set to 6 tokens, far shorter than its chats, so every
layer's mask cuts keys off. Writes tests/fixtures/tiny_sliding/mistral_window6/ (the same weights,
config with the window) and reference.json there: each chat's token ids, loss mask and
teacher-forced log-probs of the masked-in tokens from transformers (eager attention, f32), plus
how much the window changes them (it must, or the fixture would not test it).

Usage: python3 scripts/make_sliding_window_fixture.py   (a few seconds)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_fixtures import FAMILIES, encode_example, evaluate, load_f32, max_abs_diff, summarize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "fixtures" / "tiny" / "mistral"
OUT = ROOT / "tests" / "fixtures" / "tiny_sliding" / "mistral_window6"
WINDOW = 6


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.copytree(SRC, OUT)
    cfg = json.loads((OUT / "config.json").read_text())
    cfg["sliding_window"] = WINDOW
    (OUT / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    tok = AutoTokenizer.from_pretrained(OUT)
    end = FAMILIES["mistral"][3]
    chats = [json.loads(line) for line in open(ROOT / "tests" / "fixtures" / "tiny" / "chat.jsonl")]
    enc = []
    for ex in chats:
        _, ids, mask = encode_example(tok, ex["messages"], end)
        enc.append({"id": ex["id"], "input_ids": ids, "target_mask": mask})
    assert min(len(e["input_ids"]) for e in enc) > 3 * WINDOW, "chats must be longer than the window"

    windowed = evaluate(load_f32(OUT), enc)
    full = evaluate(load_f32(SRC), enc)
    effect = max_abs_diff(windowed, full)
    assert effect > 1e-2, f"the window changes nothing ({effect})"
    rows, mean_nll = summarize(enc, windowed)
    ref = {
        "description": "Teacher-forced log-probs of masked-in assistant tokens under a 6-token sliding window",
        "sliding_window": WINDOW,
        "window_effect_max_abs": effect,
        "mean_nll": mean_nll,
        "examples": rows,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
    }
    (OUT.parent / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"window {WINDOW}: effect {effect:.3f} nats, mean NLL {mean_nll:.4f}")


if __name__ == "__main__":
    main()
