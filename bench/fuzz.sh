#!/usr/bin/env bash
# The fuzz benchmark of issue 13: every parser target of tests/fuzz.rs with ITERS mutated inputs
# (default 1,000,000 per target), reporting per target the inputs run and how many were refused
# with an error; any panic, hang or oversized allocation fails the run and names the input.
# Usage: bench/fuzz.sh [ITERS] [SEED]   (THREADS=n: targets run in parallel, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ITERS="${1:-1000000}"
SEED="${2:-7}"
start=$(date +%s)
BASIN_FUZZ_ITERS="$ITERS" BASIN_FUZZ_SEED="$SEED" \
  cargo test --release --locked --test fuzz -- --nocapture --test-threads "${THREADS:-2}" 2>&1 |
  grep -E "^fuzz: .*inputs, |^test |panicked|test result|hang|allocation"
echo "fuzz: $ITERS inputs per target, seed $SEED, wall $(( $(date +%s) - start )) s on $(nproc) cores"
