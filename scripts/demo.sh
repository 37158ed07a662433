#!/usr/bin/env bash
# The README's "run" command: builds Basin and opens the desktop app on its built-in demo (a tiny
# llama base and a LoRA reward hacker in assets/demo, made by scripts/make_demo.py). Press
# "Run sweep" to walk the path base → hacker and watch hacking rise with t.
# Without a display, it prints the same sweep as a table instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export BASIN_ASSETS="$PWD/assets"
# Mesa's drivers give wgpu an adapter (software Vulkan) on machines without a GPU driver.
scripts/install-system-deps.sh
cargo build --release --locked --quiet
basin="$CARGO_TARGET_DIR/release/basin"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$basin" --demo "$@"
fi
echo "no display (DISPLAY / WAYLAND_DISPLAY unset): running the demo sweep headless instead" >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$basin" sweep --base assets/demo/base --adapter assets/demo/hacker --suite assets/demo/suite/suite.toml \
  --t 0:1:11 --out "$out" 2>/dev/null
python3 - "$out/summary.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
metrics = [k for k in rows[0] if k != "t" and not k.endswith(("_ci_low", "_ci_high"))]
print("basin sweep of the demo (values with 95% CIs in summary.csv):")
print("t".rjust(5) + "".join(m.rjust(14) for m in metrics))
for r in rows:
    print(f"{float(r['t']):5.2f}" + "".join(f"{float(r[m]):14.4f}" for m in metrics))
PY
