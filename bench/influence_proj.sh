#!/usr/bin/env bash
# `basin influence --proj-dim`: what the sketch costs in agreement and what it saves in memory
# and in time for a second query (the cache), on SmolLM2-135M with the bench's rank-8 q/v LoRA.
# Runs exact gradsim, then --proj-dim K for each K with a fresh cache, then a second query (other
# chats) on the cache; prints wall time, peak RSS, and the Spearman correlation of each ranking
# with the exact one. Usage: bench/influence_proj.sh [K ...]   (default: 4096 65536)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/fetch-smollm2.sh
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
dims=("$@")
[ ${#dims[@]} -eq 0 ] && dims=(4096 65536)
gguf="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
adapter=$(python3 bench/make_smollm2_lora.py | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # name, query file, extra args...
  local name=$1 query=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$out/$name.rss" "$BASIN_BIN" influence --base "$gguf" --adapter "$adapter" \
    --data bench/data/landscape_chat.jsonl --query-data "$query" --grad-cache "$out/cache" \
    --out "$out/$name" "$@" 2>/dev/null
  t1=$(date +%s.%N)
  echo "$t0 $t1" > "$out/$name.time"
}
run exact bench/data/bench_chat.jsonl
for k in "${dims[@]}"; do
  run "k$k" bench/data/bench_chat.jsonl --proj-dim "$k"
  run "k$k-second" bench/data/landscape_chat.jsonl --proj-dim "$k"
done
python3 - "$out" "${dims[@]}" <<'PY'
import json, sys
out, dims = sys.argv[1], sys.argv[2:]
def scores(name):
    return {json.loads(l)["id"]: json.loads(l)["score"] for l in open(f"{out}/{name}/scores.jsonl")}
def info(name):
    t0, t1 = map(float, open(f"{out}/{name}.time").read().split())
    rss = int(open(f"{out}/{name}.rss").read().split()[-1]) / 1024
    s = json.load(open(f"{out}/{name}/summary.json"))
    return t1 - t0, rss, s.get("cached_points", 0)
def spearman(a, b):
    ids = sorted(a)
    rank = lambda d: {k: r for r, k in enumerate(sorted(ids, key=lambda k: d[k]))}
    ra, rb = rank(a), rank(b)
    n = len(ids)
    return 1 - 6 * sum((ra[k] - rb[k]) ** 2 for k in ids) / (n * (n * n - 1))
exact = scores("exact")
t, rss, _ = info("exact")
print(f"exact gradsim: {t:.1f} s, peak RSS {rss:.0f} MiB, {len(exact)} samples")
for k in dims:
    t, rss, _ = info(f"k{k}")
    t2, rss2, cached = info(f"k{k}-second")
    print(f"--proj-dim {k}: {t:.1f} s, peak RSS {rss:.0f} MiB, Spearman with exact {spearman(exact, scores(f'k{k}')):.4f}; "
          f"second query on the cache: {t2:.1f} s ({cached} point cached), peak RSS {rss2:.0f} MiB")
PY
