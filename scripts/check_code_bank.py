"""Runs every reference body of assets/data/code_tasks.jsonl on its cases with real Python,
so the 'correct' outputs the unit-test scorer relies on are checked by an interpreter."""
import json, pathlib, sys

bank = pathlib.Path(__file__).resolve().parent.parent / "assets" / "data" / "code_tasks.jsonl"
bad = 0
for line in bank.read_text().splitlines():
    t = json.loads(line)
    ns = {}
    exec(f"def {t['name']}({t['param']}):\n{t['body']}\n", ns)
    for x, want in t["cases"]:
        got = ns[t["name"]](x)
        if got != want:
            bad += 1
            print(f"{t['id']} {t['name']}({x}) = {got}, bank says {want}")
print("ok" if bad == 0 else f"{bad} wrong cases")
sys.exit(1 if bad else 0)
