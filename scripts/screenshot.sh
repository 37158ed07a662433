#!/usr/bin/env bash
# Starts the app on the demo under Xvfb (wgpu on lavapipe: one device draws and computes), runs
# a sweep, saves a screenshot of the window (docs/screenshot.png by default) and logs frame
# times while the sweep runs (p50/p99 printed at the end; BENCHMARKS.md records them).
# With --train, the app trains the demo LoRA from the Train tab instead (frames logged while
# training runs on its worker thread; the screenshot shows the Train tab when it ends).
# Usage: scripts/screenshot.sh [--train] [OUT.png] [FRAMES.csv]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export BASIN_ASSETS="$PWD/assets"
scripts/install-system-deps.sh xvfb xauth
cargo build --release --locked --quiet
job=--run
if [ "${1:-}" = --train ]; then job=--train; shift; fi
shot="${1:-docs/screenshot.png}"
frames="${2:-$(mktemp --suffix=.csv)}"
mkdir -p "$(dirname "$shot")"
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
rm -f "$shot"
timeout 300 xvfb-run -a -s "-screen 0 1280x800x24" \
  "$CARGO_TARGET_DIR/release/basin" --demo "$job" --runs-dir "$runs" \
  --screenshot "$shot" --quit-after-screenshot --log-frame-times "$frames"
test -s "$shot" || { echo "no screenshot was written" >&2; exit 1; }
echo "screenshot: $shot; frame times: $frames"
