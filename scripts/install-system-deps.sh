#!/usr/bin/env bash
# Debian packages the tests need: Mesa's software Vulkan (lavapipe) so wgpu has an adapter on
# machines without a GPU. Extra arguments name more packages (scripts/screenshot.sh adds Xvfb).
# Skips apt when everything is already there.
set -euo pipefail
need=()
for p in mesa-vulkan-drivers "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
