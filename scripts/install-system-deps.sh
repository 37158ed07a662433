#!/usr/bin/env bash
# Debian packages the tests need: Mesa's software Vulkan (lavapipe) so wgpu has an adapter on
# machines without a GPU; Xvfb and xdotool for tests/gui_xvfb.rs (the real app in an X server,
# driven by synthetic key presses). Extra arguments name more packages (scripts/screenshot.sh
# adds xauth for xvfb-run).
# Skips apt when everything is already there.
set -euo pipefail
need=()
for p in mesa-vulkan-drivers xvfb xdotool "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
