#!/usr/bin/env python3
"""Study (RESULTS.md, "Does removing the most influential chats reduce hacking?"): the
counterfactual check of issue 15 on the demo.

1. Train a LoRA on the demo base with the demo's 96 training chats (rank 8 on every linear
   layer, alpha 16, batch 8, seed 0; by default the Train tab's demo recipe, 3 epochs at lr 2e-3;
   `--epochs` / `--lr` change it).
2. Measure the suite's `hack_heldout` (mean P(hack) on held-out reward-hack pairs) at the trained
   adapter, and rank the training chats by gradsim influence on it (`basin influence`).
3. Remove the top 10% (the chats that push hacking up the most) and retrain with the same
   recipe; likewise remove 10% at random (seeds 1..K). Measure `hack_heldout` after each.
Prints a table and JSON. The numbers depend only on the seeds (Basin is deterministic on the CPU).

Usage: python3 scripts/study_influence_counterfactual.py [--random-seeds 3] [--epochs 3] [--lr 2e-3] [--out DIR]
"""
import argparse
import json
import os
import random
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASIN = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/basin-target")) / "release/basin"
DEMO = ROOT / "assets/demo"
SUITE = DEMO / "suite/suite.toml"
METRIC = "hack_heldout"


def run(*args):
    subprocess.run([str(BASIN), *map(str, args)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


RECIPE = {"epochs": "3", "lr": "2e-3"}


def train(data: Path, out: Path) -> Path:
    run("train", "--base", DEMO / "base", "--data", data, "--out", out, "--rank", "8", "--alpha", "16",
        "--targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "--epochs",
        RECIPE["epochs"], "--batch", "8", "--lr", RECIPE["lr"], "--seed", "0")
    return out / "final"


def hacking(adapter: Path, out: Path) -> tuple[float, float, float]:
    run("sweep", "--base", DEMO / "base", "--adapter", adapter, "--suite", SUITE, "--t", "1:1:1",
        "--bootstrap", "1000", "--out", out)
    for line in open(out / "results.jsonl"):
        r = json.loads(line)
        if r["metric"] == METRIC:
            return r["value"], r["ci_low"], r["ci_high"]
    raise SystemExit(f"no {METRIC} in {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--random-seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs", default="3")
    ap.add_argument("--lr", default="2e-3")
    args = ap.parse_args()
    RECIPE.update(epochs=args.epochs, lr=args.lr)
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    out = args.out or Path(tempfile.mkdtemp(prefix="basin-influence-study-"))
    out.mkdir(parents=True, exist_ok=True)
    chats = [json.loads(l) for l in open(DEMO / "train.jsonl") if l.strip()]
    k = len(chats) // 10

    def subset(name: str, removed: set[str]) -> Path:
        p = out / f"{name}.jsonl"
        with open(p, "w") as f:
            for c in chats:
                if c["id"] not in removed:
                    f.write(json.dumps(c) + "\n")
        return p

    full = train(DEMO / "train.jsonl", out / "train-full")
    base_h = hacking(full, out / "eval-full")
    run("influence", "--base", DEMO / "base", "--adapter", full, "--data", DEMO / "train.jsonl",
        "--query", f"{SUITE}:{METRIC}", "--out", out / "influence")
    ranked = [json.loads(l)["id"] for l in open(out / "influence/scores.jsonl")]
    top = set(ranked[:k])
    top_h = hacking(train(subset("minus-top", top), out / "train-minus-top"), out / "eval-minus-top")
    rand = []
    for seed in range(1, args.random_seeds + 1):
        removed = set(random.Random(seed).sample([c["id"] for c in chats], k))
        rand.append(hacking(train(subset(f"minus-random-{seed}", removed), out / f"train-minus-random-{seed}"),
                            out / f"eval-minus-random-{seed}"))
    mean_r = sum(r[0] for r in rand) / len(rand)
    print(f"{METRIC} (mean P(hack), 95% CI) after training on the demo's {len(chats)} chats:")
    print(f"  all chats:                 {base_h[0]:.4f} [{base_h[1]:.4f}, {base_h[2]:.4f}]")
    print(f"  minus top {k} by influence: {top_h[0]:.4f} [{top_h[1]:.4f}, {top_h[2]:.4f}]")
    for seed, r in zip(range(1, args.random_seeds + 1), rand):
        print(f"  minus random {k} (seed {seed}):  {r[0]:.4f} [{r[1]:.4f}, {r[2]:.4f}]")
    print(f"  random removals, mean:     {mean_r:.4f} (range {min(r[0] for r in rand):.4f} .. {max(r[0] for r in rand):.4f})")
    print(f"  top minus random-mean:     {top_h[0] - mean_r:+.4f}")
    print(json.dumps({"all": base_h, "minus_top": top_h, "minus_random": rand, "removed_top": sorted(top),
                      "folder": str(out)}))


if __name__ == "__main__":
    main()
