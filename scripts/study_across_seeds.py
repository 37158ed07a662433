#!/usr/bin/env python3
"""Every metric at t = 1 across training seeds, from a study's report and its replicate folders.

The same statistics as the report's "Across training seeds" table (study/report.rs: each set's
mean over seeds with a 95% t-interval, n − 1 degrees of freedom; the difference original −
symmetrized paired by seed), computed independently in Python. Two uses:
- a check of the Rust numbers on a finished study (with replicates, its report.json holds them):
  `--check` compares and exits non-zero on a mismatch;
- a study whose report was written before replicates existed (docs/study-smollm2): the study's
  own hacker (seed `train.seed`) is read from the report's line at t = 1, the replicates from
  `STUDY_DIR/<set>/replicates/seed-S/end/results.jsonl`.

Usage: scripts/study_across_seeds.py REPORT.json STUDY_DIR [--check]
Prints a Markdown table.
"""
import json
import math
import sys
from pathlib import Path

# Two-sided 95% factors of Student's t (any statistics table), by degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228}
ARMS = ["original", "symmetrized"]


def spread(seeds, values):
    n = len(values)
    if n < 2 or n - 1 not in T975:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return {"seeds": seeds, "values": values, "mean": mean, "ci_low": mean - half, "ci_high": mean + half}


def line_at_one(report, arm, metric):
    a = next(a for a in report["arms"] if a["arm"] == arm)
    s = next((s for s in a["line"] if s["metric"] == metric), None)
    if s is None:
        return None
    p = next((p for p in s["points"] if abs(p["x"] - 1.0) < 1e-9), None)
    return None if p is None else p["value"]


def replicate_at_one(study_dir, arm, seed, metric):
    path = Path(study_dir) / arm / "replicates" / f"seed-{seed}" / "end" / "results.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("metric") == metric and abs(r.get("t", 0.0) - 1.0) < 1e-9:
            return r["value"]
    return None


def show(s):
    return "—" if s is None else f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    report = json.loads(Path(args[0]).read_text())
    study_dir = args[1]
    primary = report["settings"]["train"]["seed"]
    listed = set()
    for arm in ARMS:
        root = Path(study_dir) / arm / "replicates"
        if root.exists():
            listed |= {int(p.name.removeprefix("seed-")) for p in root.glob("seed-*")}
    replicate_seeds = sorted(listed - {primary})
    metrics = [c["metric"] for c in report["comparison"]]
    bad = []
    print("| metric | original | symmetrized | original − symmetrized | per seed (original / symmetrized) |")
    print("|---|---|---|---|---|")
    for m in metrics:
        per_arm = {}
        for arm in ARMS:
            seeds, values = [], []
            v = line_at_one(report, arm, m)
            if v is not None:
                seeds.append(primary)
                values.append(v)
            for s in replicate_seeds:
                v = replicate_at_one(study_dir, arm, s, m)
                if v is not None:
                    seeds.append(s)
                    values.append(v)
            per_arm[arm] = (seeds, values)
        so, vo = per_arm["original"]
        ss, vs = per_arm["symmetrized"]
        paired = [(s, vo[i] - vs[ss.index(s)]) for i, s in enumerate(so) if s in ss]
        o, s_, d = spread(so, vo), spread(ss, vs), spread([p[0] for p in paired], [p[1] for p in paired])
        per_seed = lambda seeds, values: ", ".join(f"{k}: {v:.3f}" for k, v in zip(seeds, values))
        print(f"| {m} | {show(o)} | {show(s_)} | {show(d)} | {per_seed(so, vo)} / {per_seed(ss, vs)} |")
        if "--check" in sys.argv:
            got = next((a for a in report.get("across_seeds", []) if a["metric"] == m), None)
            for key, want in [("original", o), ("symmetrized", s_), ("difference", d)]:
                have = None if got is None else got.get(key)
                if (want is None) != (have is None) or (
                    want is not None
                    and any(abs(want[k] - have[k]) > 2e-3 * max(1.0, abs(want[k])) for k in ("mean", "ci_low", "ci_high"))
                ):
                    bad.append(f"{m} {key}: report {have} vs {want}")
    if bad:
        print("\n".join(["MISMATCH:"] + bad), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
