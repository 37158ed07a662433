#!/usr/bin/env python3
"""Reference outputs for Basin's GGUF dequantisation (src/checkpoint/gguf_quant.rs).

For each supported ggml type: random raw blocks (scale fields forced to finite f16 values so the
reference is comparable), dequantised by the Python `gguf` package (`gguf.quants.dequantize`).
Writes `<TYPE>.bin` (raw blocks), `<TYPE>.f32` (expected little-endian f32) and `manifest.json`
to tests/fixtures/gguf_quant/.

Usage: python3 scripts/make_gguf_quant_fixtures.py [out_dir]
"""

import json
import pathlib
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/gguf_quant")
rng = np.random.default_rng(20261127)

# Byte offsets of the f16 scale fields inside one block, per type (ggml block layouts).
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}


def random_f16(n: int) -> np.ndarray:
    """Finite f16 scales over many magnitudes (normal and some subnormal), both signs."""
    mag = np.exp2(rng.uniform(-18, 4, size=n))
    sign = rng.choice([-1.0, 1.0], size=n)
    return (mag * sign).astype(np.float16)


def quant_blocks(qtype: T, n_blocks: int) -> np.ndarray:
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        raw[:, off : off + 2] = random_f16(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def float_data(qtype: T, n: int) -> np.ndarray:
    if qtype == T.F32:
        return (rng.standard_normal(n) * np.exp2(rng.uniform(-20, 20, n))).astype(np.float32).view(np.uint8)
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    if qtype == T.F16:
        nan = (bits & 0x7C00) == 0x7C00
        bits[nan] &= 0xBBFF  # clear one exponent bit: finite
    else:  # BF16
        nan = ((bits & 0x7F80) == 0x7F80) & ((bits & 0x007F) != 0)
        bits[nan] &= 0xBF7F
    return bits.view(np.uint8)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for qtype in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1,
                  T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        block_size, _ = GGML_QUANT_SIZES[qtype]
        if block_size == 1:
            n_elements = 512
            raw = float_data(qtype, n_elements)
        else:
            n_blocks = 4 if block_size == 256 else 16
            n_elements = n_blocks * block_size
            raw = quant_blocks(qtype, n_blocks)
        expected = dequantize(raw, qtype).astype(np.float32).reshape(-1)
        assert expected.size == n_elements, (qtype, expected.size)
        assert np.all(np.isfinite(expected)), qtype
        (OUT / f"{qtype.name}.bin").write_bytes(raw.tobytes())
        (OUT / f"{qtype.name}.f32").write_bytes(expected.astype("<f4").tobytes())
        manifest[qtype.name] = {"type_id": int(qtype.value), "n_elements": n_elements}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(manifest)} types to {OUT}")


if __name__ == "__main__":
    main()
