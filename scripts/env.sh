# Sourced by the scripts: one build profile, build outputs and caches kept outside the clone so
# later runs (and CI on the same machine) reuse them.
export BASIN_CACHE="${BASIN_CACHE:-$HOME/.cache/basin}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/basin-target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
