#!/usr/bin/env python3
"""Re-derives a `basin landscape` folder's plane with dense PyTorch weights and checks it.

Reads DIR/run.json (base, adapter / target / curve) and DIR/plane.json, rebuilds every direction
densely (PEFT's `merge_and_unload` minus the base for adapters, the bend and the random directions
Basin saved in DIR/directions/; target − base for a full checkpoint), and checks:
  - the Gram matrix of the directions (Frobenius, each distinct parameter once) against plane.json;
  - filter normalisation of random directions (`--plane random`, `filter_norm`): every output row
    of every perturbed weight has the norm of the base weight's row;
  - the basis: ⟨u, v⟩ = 0 and ‖v‖ = ‖u‖ for an endpoints plane, and the named points' projections.
Prints the largest relative error of each check and exits non-zero when one exceeds --tol.

Usage: python3 scripts/check_landscape_plane.py DIR [--tol 1e-4]
"""
import argparse
import copy
import json
import os
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

torch.set_num_threads(max(1, os.cpu_count() or 1))


def load(path: Path):
    if path.suffix == ".gguf":
        return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    run = json.load(open(args.dir / "run.json"))["spec"]
    plane = json.load(open(args.dir / "plane.json"))
    base = load(Path(run["base"])).eval()
    names = {n for n, _ in base.named_parameters()}
    b_sd = {n: p.detach().double() for n, p in base.state_dict().items() if n in names}

    def adapter_delta(path: Path) -> dict:
        merged = PeftModel.from_pretrained(copy.deepcopy(base), path).merge_and_unload()
        return {n: p.detach().double() - b_sd[n] for n, p in merged.state_dict().items() if n in names}

    dirs = []
    for slot in plane["slots"]:
        src = Path(slot["source"])
        if not src.is_absolute() and not src.exists():
            src = args.dir / src
        if (src / "adapter_config.json").exists():
            dirs.append(adapter_delta(src))
        else:
            target = load(src)
            dirs.append({n: p.detach().double() - b_sd[n] for n, p in target.state_dict().items() if n in names})
    inner = lambda x, y: float(sum((x[n] * y[n]).sum() for n in x))
    g = [[inner(x, y) for y in dirs] for x in dirs]
    report = {}
    want = plane["plane"]["gram"]
    scale = max(abs(v) for row in g for v in row)
    report["gram"] = max(abs(g[i][j] - want[i][j]) / scale for i in range(len(g)) for j in range(len(g)))
    if plane["kind"] == "random" and run.get("filter_norm", True):
        worst = 0.0
        for slot, d in zip(plane["slots"], dirs):
            if slot["role"] not in ("u", "v"):
                continue
            for n, t in d.items():
                if t.dim() != 2 or t.abs().max() == 0:
                    continue
                got, ref = t.norm(dim=1), b_sd[n].norm(dim=1)
                worst = max(worst, float(((got - ref).abs() / ref.clamp_min(1e-12)).max()))
        report["filter_norm_rows"] = worst
    coeff = lambda c: {n: sum(c[k] * dirs[k][n] for k in range(len(dirs))) for n in dirs[0]}
    u, v = coeff(plane["plane"]["u"]), coeff(plane["plane"]["v"])
    uu, vv, uv = inner(u, u), inner(v, v), inner(u, v)
    report["norm_u"] = abs(uu ** 0.5 - plane["norm_u"]) / plane["norm_u"]
    if plane["kind"] == "endpoints":
        report["u_dot_v"] = abs(uv) / uu
        report["norm_v_equals_norm_u"] = abs(vv ** 0.5 - uu ** 0.5) / uu ** 0.5
        # Named points: θ₀ + p, projected by least squares on (u, v) (orthogonal, equal norms).
        n_dirs = len(dirs)
        paths = {"base": [0.0] * n_dirs, "end": [1.0] + [0.0] * (n_dirs - 1)}
        if any(p["name"] == "bend" for p in plane["points"]):
            paths["bend"] = [0.5, 1.0] + [0.0] * (n_dirs - 2)
        worst = 0.0
        for p in plane["points"]:
            if p["name"] not in paths:
                continue
            w = coeff(paths[p["name"]])
            a, b = inner(w, u) / uu, inner(w, v) / vv
            worst = max(worst, abs(a - p["alpha"]), abs(b - p["beta"]))
        report["named_points_abs"] = worst
    print(json.dumps(report, indent=1))
    bad = {k: v for k, v in report.items() if v > args.tol}
    if bad:
        print(f"FAILED: {bad}", file=sys.stderr)
        sys.exit(1)
    print("plane.json agrees with dense PyTorch weights")


if __name__ == "__main__":
    main()
