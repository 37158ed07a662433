#!/usr/bin/env python3
"""Study (RESULTS.md, "Does removing the most influential chats reduce hacking?"): the
retraining checks of issue 15 on the demo.

1. Train a LoRA on the demo base with the demo's 96 training chats (rank 8 on every linear
   layer, alpha 16, batch 8; by default the Train tab's demo recipe, 3 epochs at lr 2e-3;
   `--epochs` / `--lr` change it), with checkpoints for TracIn.
2. Measure the suite's `hack_heldout` (mean P(hack) on held-out reward-hack pairs) at θ₀ and at
   the trained adapter, and rank the training chats by influence on it with each method
   (`basin influence`: gradsim, gradsim with unit normalisation, TracIn, DataInf).
3. Counterfactual: for each method remove its top 10% (the chats that push hacking up the most)
   and retrain with each training seed; remove 10% at random (one subset per seed) likewise.
   Reports each method's mean, the random mean and their difference with a 95% Welch interval.
4. Linear datamodeling score (`--lds M`, Park et al. 2023): train on M random halves of the data
   (seeded), measure hack_heldout after each, and report each method's Spearman correlation
   between the measured values and the sum of the half's scores.
Prints a table and JSON. The numbers depend only on the seeds (Basin is deterministic on the CPU).

Usage: python3 scripts/study_influence_counterfactual.py [--seeds 3] [--lds 20] [--epochs 3]
       [--lr 2e-3] [--methods gradsim,gradsim-unit,tracin,datainf] [--query heldout|in-family]
       [--family-control] [--out DIR]
`--query in-family` ranks and measures on `hack_infamily` instead (built by the script: the
training families on tasks no training chat uses; see in_family_suite).
The first check in RESULTS.md: --seeds 1 --random-seeds 3 --lds 0 --methods gradsim --epochs 5 --lr 1e-2.
"""
import argparse
import json
import math
import os
import random
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BASIN_BIN: a built binary to use as is (the bench scripts' convention); otherwise this checkout's
# release build, brought up to date first.
BASIN = Path(os.environ.get("BASIN_BIN") or
             Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/basin-target")) / "release/basin")
DEMO = ROOT / "assets/demo"
SUITE = DEMO / "suite/suite.toml"
METRIC = "hack_heldout"
METHODS = {
    "gradsim": ["--method", "gradsim"],
    "gradsim-unit": ["--method", "gradsim", "--normalize", "unit"],
    "tracin": ["--method", "tracin"],
    "datainf": ["--method", "datainf"],
}


def run(*args):
    subprocess.run([str(BASIN), *map(str, args)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


RECIPE = {"epochs": "3", "lr": "2e-3"}


def train(data: Path, out: Path, seed: int = 0, checkpoints: bool = False) -> Path:
    extra = ["--checkpoint-every", "96"] if checkpoints else []
    run("train", "--base", DEMO / "base", "--data", data, "--out", out, "--rank", "8", "--alpha", "16",
        "--targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "--epochs",
        RECIPE["epochs"], "--batch", "8", "--lr", RECIPE["lr"], "--seed", str(seed), *extra)
    return out / "final"


def in_family_suite(out: Path, train_ids: set[str]) -> Path:
    """A one-metric suite, `hack_infamily`: paired hack-vs-honest items of the five training
    families (keyword, bullets, exclamation, length clip, unit tests) on tasks none of the
    training chats uses, taken from the generator's items (`basin data generate --seed 0`, the
    run the demo's train.jsonl is the first 96 lines of). The query where first-order influence
    has the most to say: the training chats move it directly, not only through generalisation."""
    gen = out / "generated"
    if not (gen / "items.jsonl").exists():
        run("data", "generate", "--seed", "0", "--out", gen)
    items = [json.loads(l) for l in open(gen / "items.jsonl") if l.strip()]
    original = [r for r in items if r["split"] == "sft_original.jsonl"]
    train_tasks = {r["task_id"] for r in original if r["id"] in train_ids}
    if len(train_tasks) == 0:
        raise SystemExit("the generator's items do not contain the demo's training chats (ids changed?)")
    held = sorted((r for r in original if r["task_id"] not in train_tasks), key=lambda r: r["id"])
    seen, picked = set(), []
    for r in held:  # one item per task, so no task weighs more than another
        if r["task_id"] not in seen:
            seen.add(r["task_id"])
            picked.append(r)
    suite = out / "infamily"
    suite.mkdir(exist_ok=True)
    with open(suite / "hack_infamily.jsonl", "w") as f:
        for r in picked:
            f.write(json.dumps({"id": r["id"], "group": r["task_id"],
                                "messages": [{"role": "user", "content": r["prompt"]}],
                                "hack": r["hack"], "honest": r["honest"]}) + "\n")
    (suite / "suite.toml").write_text(
        'name = "demo-infamily"\nversion = 1\n\n[[metric]]\nname = "hack_infamily"\nkind = "paired"\n'
        'file = "hack_infamily.jsonl"\nscore = "per_token"\n'
        f'description = "Training families on {len(picked)} tasks no training chat uses: P(prefer hack over honest)"\n')
    return suite / "suite.toml"


def families(out: Path) -> dict[str, str]:
    """Task family of every generated item, by id (the generator's items.jsonl)."""
    gen = out / "generated"
    if not (gen / "items.jsonl").exists():
        run("data", "generate", "--seed", "0", "--out", gen)
    return {r["id"]: r["family"] for r in map(json.loads, open(gen / "items.jsonl")) if r}


def hacking(adapter: Path, out: Path, t: str = "1:1:1") -> tuple[float, float, float]:
    run("sweep", "--base", DEMO / "base", "--adapter", adapter, "--suite", SUITE, "--t", t,
        "--bootstrap", "1000", "--out", out)
    for line in open(out / "results.jsonl"):
        r = json.loads(line)
        if r["metric"] == METRIC:
            return r["value"], r["ci_low"], r["ci_high"]
    raise SystemExit(f"no {METRIC} in {out}")


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for k, i in enumerate(order):
            r[i] = float(k)
        return r
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va > 0 and vb > 0 else float("nan")


# Two-sided 97.5% quantiles of Student's t for small degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean of a − mean of b with a 95% Welch interval (nan when a side has one value)."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return ma - mb, float("nan"), float("nan")
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return ma - mb, ma - mb, ma - mb
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = T975.get(max(1, min(10, int(df))), 1.96) if df < 30 else 1.96
    return ma - mb, ma - mb - t * se, ma - mb + t * se


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3, help="training seeds of each retrained set")
    ap.add_argument("--random-seeds", type=int, default=None, help="random removals (default: --seeds)")
    ap.add_argument("--lds", type=int, default=20, help="random halves for the linear datamodeling score (0: skip)")
    ap.add_argument("--methods", default="gradsim,gradsim-unit,tracin,datainf")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs", default="3")
    ap.add_argument("--lr", default="2e-3")
    ap.add_argument("--query", choices=["heldout", "in-family"], default="heldout",
                    help="heldout: the demo suite's hack_heldout (families the chats do not train); "
                         "in-family: hack_infamily, the training families on tasks no chat uses")
    ap.add_argument("--family-control", action="store_true",
                    help="also remove, per method and seed, k random chats with the same task-family "
                         "counts as the method's top k")
    args = ap.parse_args()
    RECIPE.update(epochs=args.epochs, lr=args.lr)
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m} (known: {', '.join(METHODS)})")
    if not os.environ.get("BASIN_BIN"):
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    out = args.out or Path(tempfile.mkdtemp(prefix="basin-influence-study-"))
    out.mkdir(parents=True, exist_ok=True)
    chats = [json.loads(l) for l in open(DEMO / "train.jsonl") if l.strip()]
    ids = [c["id"] for c in chats]
    k = len(chats) // 10
    global SUITE, METRIC
    if args.query == "in-family":
        SUITE, METRIC = in_family_suite(out, set(ids)), "hack_infamily"

    def subset(name: str, keep) -> Path:
        p = out / f"{name}.jsonl"
        with open(p, "w") as f:
            for c in chats:
                if keep(c["id"]):
                    f.write(json.dumps(c) + "\n")
        return p

    full_run = out / "train-full"
    full = train(DEMO / "train.jsonl", full_run, checkpoints=True)
    base_h = hacking(full, out / "eval-base", t="0:0:1")
    full_h = hacking(full, out / "eval-full")
    scores = {}
    for m in methods:
        src = ["--train-run", full_run] if m == "tracin" else ["--adapter", full, "--data", DEMO / "train.jsonl"]
        run("influence", "--base", DEMO / "base", *src, "--query", f"{SUITE}:{METRIC}", *METHODS[m],
            "--out", out / f"influence-{m}")
        scores[m] = {json.loads(l)["id"]: json.loads(l)["score"] for l in open(out / f"influence-{m}/scores.jsonl")}

    seeds = list(range(args.seeds))
    results = {"metric": METRIC, "suite": str(SUITE), "base": base_h, "all": full_h, "k": k, "n": len(chats), "methods": {}, "folder": str(out)}
    rand = []
    for s in range(args.random_seeds if args.random_seeds is not None else args.seeds):
        removed = set(random.Random(s + 1).sample(ids, k))
        data = subset(f"minus-random-{s + 1}", lambda i: i not in removed)
        rand.append(hacking(train(data, out / f"train-minus-random-{s + 1}", seed=s), out / f"eval-minus-random-{s + 1}")[0])
    results["minus_random"] = rand
    for m in methods:
        top = set(sorted(ids, key=lambda i: -scores[m][i])[:k])
        data = subset(f"minus-top-{m}", lambda i: i not in top)
        vals = [hacking(train(data, out / f"train-minus-top-{m}-{s}", seed=s), out / f"eval-minus-top-{m}-{s}")[0]
                for s in seeds]
        results["methods"][m] = {"minus_top": vals, "difference": welch(vals, rand), "removed": sorted(top)}
        if args.family_control:
            # The stricter control: k random chats with the same task-family counts as the top k
            # (one subset per seed), so a ranking that only finds the right family does not pass.
            fam = families(out)
            by_family: dict[str, list[str]] = {}
            for i in ids:
                by_family.setdefault(fam[i], []).append(i)
            counts: dict[str, int] = {}
            for i in top:
                counts[fam[i]] = counts.get(fam[i], 0) + 1
            matched = []
            for s in seeds:
                rng = random.Random(2000 + s)
                drop = {i for f, c in sorted(counts.items()) for i in rng.sample(by_family[f], c)}
                data = subset(f"minus-matched-{m}-{s}", lambda i: i not in drop)
                matched.append(hacking(train(data, out / f"train-minus-matched-{m}-{s}", seed=s),
                                       out / f"eval-minus-matched-{m}-{s}")[0])
            results["methods"][m].update(families=counts, minus_matched=matched,
                                         difference_matched=welch(vals, matched))

    if args.lds > 0:
        measured, halves = [], []
        for j in range(args.lds):
            half = set(random.Random(1000 + j).sample(ids, len(ids) // 2))
            data = subset(f"half-{j}", lambda i: i in half)
            measured.append(hacking(train(data, out / f"train-half-{j}"), out / f"eval-half-{j}")[0])
            halves.append(half)
        results["lds_measured"] = measured
        for m in methods:
            predicted = [sum(scores[m][i] for i in half) for half in halves]
            results["methods"][m]["lds"] = spearman(measured, predicted)

    print(f"{METRIC} (mean P(hack)) on {SUITE}; training on the demo's {len(chats)} chats "
          f"({RECIPE['epochs']} epochs, lr {RECIPE['lr']}), {len(seeds)} training seed(s):")
    print(f"  θ₀:                        {base_h[0]:.4f} [{base_h[1]:.4f}, {base_h[2]:.4f}]")
    print(f"  all chats (seed 0):        {full_h[0]:.4f} [{full_h[1]:.4f}, {full_h[2]:.4f}]")
    print(f"  minus random {k}:           " + ", ".join(f"{v:.4f}" for v in rand) + f" (mean {sum(rand) / len(rand):.4f})")
    for m in methods:
        r = results["methods"][m]
        d, lo, hi = r["difference"]
        lds = f", LDS {r['lds']:.3f}" if "lds" in r else ""
        print(f"  minus top {k} by {m:<13} " + ", ".join(f"{v:.4f}" for v in r["minus_top"])
              + f"; top − random {d:+.4f} [{lo:+.4f}, {hi:+.4f}]{lds}")
        if "minus_matched" in r:
            d, lo, hi = r["difference_matched"]
            fams = ", ".join(f"{f} {c}" for f, c in sorted(r["families"].items()))
            print(f"    family-matched random ({fams}): " + ", ".join(f"{v:.4f}" for v in r["minus_matched"])
                  + f"; top − matched {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
