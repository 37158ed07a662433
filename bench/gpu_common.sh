# Sourced by bench/gpu_session.sh and bench/gpu_landscape.sh (from the repository root): the output
# folder, the device, the cache, and the release binary: BASIN_BIN, or the carried .gpu/basin.xz
# unpacked once to /tmp/basin (a second call on the same warm machine reuses it).
out=${OUT:-/tmp/basin-gpu-out}
mkdir -p "$out"
device=${DEVICE:-gpu}
export BASIN_CACHE=${BASIN_CACHE:-/tmp/basin-cache}
if [ -z "${BASIN_BIN:-}" ]; then
  if [ ! -x /tmp/basin ]; then
    { xz -dc .gpu/basin.xz > /tmp/basin.part && chmod +x /tmp/basin.part && mv /tmp/basin.part /tmp/basin; } \
      || { echo "no .gpu/basin.xz carried" | tee -a "$out/error.txt"; exit 2; }
  fi
  export BASIN_BIN=/tmp/basin
fi
