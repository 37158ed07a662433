#!/usr/bin/env bash
# Regenerates tests/fixtures/generated_suite (the seed of tests/fuzz.rs's `generated-suite`
# target): one generated-metric item per scorer kind of `basin data generate --seed 0`, and each
# such item's hack and honest answers (JSON strings, one a line) as answers to score.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
basin="${BASIN_BIN:-$CARGO_TARGET_DIR/release/basin}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$basin" data generate --seed 0 --out "$work" --capability-questions 10 >/dev/null 2>&1
python3 - "$work/items.jsonl" tests/fixtures/generated_suite <<'PY'
import json, os, sys
items = [json.loads(l) for l in open(sys.argv[1])]
first = {}
for it in items:
    first.setdefault(it["scorer"]["kind"], it)
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
with open(f"{out}/gen.jsonl", "w") as f:
    for _, it in sorted(first.items()):
        f.write(json.dumps({"id": it["id"], "group": it.get("task_id"),
                            "messages": [{"role": "user", "content": it["prompt"]}],
                            "scorer": it["scorer"], "honest_score": it["honest_score"]}) + "\n")
with open(f"{out}/answers.txt", "w") as f:
    for _, it in sorted(first.items()):
        f.write(json.dumps(it["hack"]) + "\n" + json.dumps(it["honest"]) + "\n")
with open(f"{out}/suite.toml", "w") as f:
    f.write('name = "generated"\n\n[[metric]]\nname = "gen"\nkind = "generated"\nfile = "gen.jsonl"\n'
            'samples = 2\nmax_new_tokens = 16\ntemperature = 0.9\ntop_p = 0.95\nseed = 3\n')
PY
