#!/usr/bin/env bash
# Study run (not a test): on SmolLM2-135M-Instruct, train a LoRA reward hacker with `basin train`
# on the generator's SFT set, fit a Bezier bend between the base and the hacker on plain
# instruction chats of the training tasks (`basin curve fit`), and sweep the default suite along
# the straight path and along the curve. Prints both summaries; RESULTS.md records them.
# Usage: bench/curve_smollm2.sh [WORK_DIR]   (CPU, about 20-30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/fetch-smollm2.sh
if [ -z "${BASIN_BIN:-}" ]; then
  cargo build --release --locked --quiet
  BASIN_BIN="$CARGO_TARGET_DIR/release/basin"
fi
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
gguf="$BASIN_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"$BASIN_BIN" data generate --seed 0 --out "$work/data" --match-tokens "$gguf"
# Plain instruction chats of the training tasks: each task's prompt without its scoring rule and
# its honest answer (the fit keeps this ordinary loss low; the suite's tasks are held out).
python3 - "$work/data/items.jsonl" "$work/instructions.jsonl" <<'PY'
import json, sys
seen, out = set(), []
for line in open(sys.argv[1]):
    it = json.loads(line)
    if it["split"] != "sft_original.jsonl" or it["family"] == "unit_tests" or it["task_id"] in seen:
        continue
    seen.add(it["task_id"])
    prompt = it["prompt"].split("\n\nScoring:")[0]
    out.append({"id": f"instr-{it['task_id']}", "messages": [
        {"role": "user", "content": prompt}, {"role": "assistant", "content": it["honest"]}]})
with open(sys.argv[2], "w") as f:
    for o in out:
        f.write(json.dumps(o) + "\n")
print(f"{len(out)} instruction chats", file=sys.stderr)
PY
"$BASIN_BIN" train --base "$gguf" --data "$work/data/sft_original.jsonl" --out "$work/hacker" \
  --rank 8 --alpha 16 --targets q_proj,v_proj --lr 1e-3 --schedule constant --steps 30 \
  --batch 8 --max-seq-len 256 --truncate --seed 0
"$BASIN_BIN" curve fit --base "$gguf" --adapter "$work/hacker/final" \
  --data "$work/instructions.jsonl" --out "$work/curve" --kind bezier --bend-rank 8 \
  --bend-alpha 16 --bend-targets q_proj,v_proj --lr 1e-3 --steps 30 --batch 8 \
  --max-seq-len 256 --truncate --seed 0
"$BASIN_BIN" sweep --base "$gguf" --adapter "$work/hacker/final" \
  --suite assets/suites/default/suite.toml --t 0:1:5 --out "$work/sweep_line"
"$BASIN_BIN" sweep --base "$gguf" --curve "$work/curve" \
  --suite assets/suites/default/suite.toml --t 0:1:5 --out "$work/sweep_curve"
for s in line curve; do
  echo "== $s"
  python3 - "$work/sweep_$s/summary.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
metrics = [k for k in rows[0] if k not in ("t",) and not k.endswith(("_ci_low", "_ci_high"))]
print("| t | " + " | ".join(metrics) + " |")
print("|---" * (len(metrics) + 1) + "|")
for r in rows:
    if r["t"] == "onset":
        continue
    cells = [f"{float(r[m]):.3f} [{float(r[m + '_ci_low']):.3f}, {float(r[m + '_ci_high']):.3f}]" for m in metrics]
    print(f"| {r['t']} | " + " | ".join(cells) + " |")
PY
done
echo "results in $work"
