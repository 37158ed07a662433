#!/usr/bin/env bash
# The test command of the README: installs what the tests need on a fresh Debian machine
# (software Vulkan for wgpu, the SmolLM2 fixture), then runs the whole suite in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/install-system-deps.sh
scripts/fetch-smollm2.sh
cargo test --release --locked "$@"
