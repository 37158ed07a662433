#!/usr/bin/env bash
# Study (RESULTS.md, "A loss landscape of the known barrier"): fit the curve of tests/curve.rs's
# known answer (the curve pair, PyTorch's recipe from its reference.json), then slice the
# endpoints plane through θ₀ = a, θ_H = b and the fitted bend on a 21 × 21 grid, and print what
# the picture shows: the loss at θ₀, θ_H, the straight segment's worst cell, and the best cells
# along the projected curve. Usage: scripts/study_barrier_landscape.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
out=${1:-$(mktemp -d)}
mkdir -p "$out"
cargo build --release --locked --quiet
basin="$CARGO_TARGET_DIR/release/basin"
pair=tests/fixtures/curve_pair
fit() { python3 -c "import json,sys; f=json.load(open('$pair/reference.json'))['fit']; print(f[sys.argv[1]] if not isinstance(f[sys.argv[1]], list) else ','.join(f[sys.argv[1]]))" "$1"; }
"$basin" curve fit --base "$pair/a" --target "$pair/b" --data "$pair/train.jsonl" --out "$out/fit" \
  --kind "$(fit kind)" --bend-rank "$(fit bend_rank)" --bend-alpha "$(fit bend_alpha)" \
  --bend-targets "$(fit bend_targets)" --steps "$(fit steps)" --batch "$(fit batch)" --lr "$(fit lr)" \
  --schedule "$(fit schedule)" --max-grad-norm "$(fit max_grad_norm)" --seed "$(fit seed)" 2>/dev/null
"$basin" landscape --base "$pair/a" --curve "$out/fit" --suite "$pair/suite.toml" \
  --grid 21x21 --range -0.5:1.5,-1:1 --bootstrap 200 --out "$out/landscape" 2>/dev/null
python3 - "$out/landscape" <<'PY'
import json, sys
d = sys.argv[1]
cells = {}
for line in open(f"{d}/grid.jsonl"):
    r = json.loads(line)
    if r["metric"] == "instruction":
        cells[(round(r["alpha"], 6), round(r["beta"], 6))] = r["value"]
plane = json.load(open(f"{d}/plane.json"))
pts = {p["name"]: (p["alpha"], p["beta"]) for p in plane["points"]}
print(f"‖u‖ = {plane['norm_u']:.3f}; bend control point at α = {pts['bend'][0]:.3f}, β = {pts['bend'][1]:.3f}")
print(f"held-out NLL at θ₀ (0, 0): {cells[(0.0, 0.0)]:.3f}; at θ_H (1, 0): {cells[(1.0, 0.0)]:.3f}")
seg = [(a, cells[(a, 0.0)]) for (a, b) in sorted(cells) if b == 0.0 and 0.0 <= a <= 1.0]
worst = max(seg, key=lambda x: x[1])
print(f"straight segment: worst cell α = {worst[0]:.2f}: {worst[1]:.3f}")
print("along the projected curve (nearest cell to each t):")
keys = list(cells)
for p in plane["curve"]:
    if abs(p["t"] * 4 - round(p["t"] * 4)) > 1e-9:
        continue
    k = min(keys, key=lambda k: (k[0] - p["alpha"]) ** 2 + (k[1] - p["beta"]) ** 2)
    print(f"  t = {p['t']:.2f} at ({p['alpha']:.3f}, {p['beta']:.3f}): cell {k} = {cells[k]:.3f}")
lo = min(cells.values()); hi = max(cells.values())
print(f"grid range: {lo:.3f} .. {hi:.3f} over {len(cells)} cells")
PY
echo "folder: $out (open it in the app: File > Open result folder > $out/landscape)"
