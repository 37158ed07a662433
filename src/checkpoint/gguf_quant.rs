//! ggml tensor types and their dequantisation to f32.
//!
//! GGUF stores tensors in ggml's block formats: `block_size` elements packed into `type_size`
//! bytes. The layouts and the order of the float operations follow ggml's reference
//! `dequantize_row_*` (and the Python `gguf.quants` port), so results match bit for bit.

use half::{bf16, f16};

/// Elements in one super-block of the k-quants.
const QK_K: usize = 256;

/// A ggml tensor type known to the GGUF format (not all can be dequantised by Basin).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// (type, id, name, elements per block, bytes per block), from ggml's type traits.
const TYPE_TABLE: [(GgmlType, u32, &str, u64, u64); 32] = [
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 40),
    (GgmlType::Q2_K, 10, "Q2_K", 256, 84),
    (GgmlType::Q3_K, 11, "Q3_K", 256, 110),
    (GgmlType::Q4_K, 12, "Q4_K", 256, 144),
    (GgmlType::Q5_K, 13, "Q5_K", 256, 176),
    (GgmlType::Q6_K, 14, "Q6_K", 256, 210),
    (GgmlType::Q8_K, 15, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, 19, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, 21, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, 22, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::IQ1_M, 29, "IQ1_M", 256, 56),
    (GgmlType::BF16, 30, "BF16", 1, 2),
    (GgmlType::TQ1_0, 34, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, 35, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, 39, "MXFP4", 32, 17),
];

impl GgmlType {
    /// The type of a GGUF type id; `None` for ids ggml does not define (or removed ones).
    pub fn from_id(id: u32) -> Option<Self> {
        TYPE_TABLE.iter().find(|row| row.1 == id).map(|row| row.0)
    }

    fn row(self) -> (GgmlType, u32, &'static str, u64, u64) {
        // Every variant has exactly one table row; the fallback is never taken.
        TYPE_TABLE
            .iter()
            .copied()
            .find(|row| row.0 == self)
            .unwrap_or((GgmlType::F32, 0, "F32", 1, 4))
    }

    pub fn id(self) -> u32 {
        self.row().1
    }

    /// ggml's name of the type (`Q4_1`, `BF16`, ...).
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        self.row().4
    }

    /// Whether [`dequantize`] handles this type.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K
        )
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why raw bytes could not be dequantised. The caller adds the file and tensor name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error(
        "ggml type {0} cannot be dequantised by Basin (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)"
    )]
    Unsupported(GgmlType),
    #[error(
        "{ty}: {n_bytes} bytes cannot hold {n_elements} elements (blocks of {block_size} elements in {type_size} bytes)"
    )]
    Length {
        ty: GgmlType,
        n_bytes: usize,
        n_elements: usize,
        block_size: u64,
        type_size: u64,
    },
}

/// Dequantises `bytes` (whole blocks of type `ty`) into `out`, whose length is the element count.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), DequantError> {
    if !ty.can_dequantize() {
        return Err(DequantError::Unsupported(ty));
    }
    let block_size = ty.block_size() as usize;
    let type_size = ty.type_size() as usize;
    let length_error = || DequantError::Length {
        ty,
        n_bytes: bytes.len(),
        n_elements: out.len(),
        block_size: ty.block_size(),
        type_size: ty.type_size(),
    };
    if !out.len().is_multiple_of(block_size) {
        return Err(length_error());
    }
    let n_blocks = out.len() / block_size;
    if n_blocks.checked_mul(type_size) != Some(bytes.len()) {
        return Err(length_error());
    }
    let blocks = bytes
        .chunks_exact(type_size)
        .zip(out.chunks_exact_mut(block_size));
    match ty {
        GgmlType::F32 => {
            blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = f16_at(b, 0)),
        GgmlType::BF16 => blocks
            .for_each(|(b, y)| y[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| q8_0(b, y)),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| q4_1(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| q5_0(b, y)),
        GgmlType::Q5_1 => blocks.for_each(|(b, y)| q5_1(b, y)),
        GgmlType::Q2_K => blocks.for_each(|(b, y)| q2_k(b, y)),
        GgmlType::Q3_K => blocks.for_each(|(b, y)| q3_k(b, y)),
        GgmlType::Q4_K => blocks.for_each(|(b, y)| q4_k(b, y)),
        GgmlType::Q5_K => blocks.for_each(|(b, y)| q5_k(b, y)),
        GgmlType::Q6_K => blocks.for_each(|(b, y)| q6_k(b, y)),
        _ => return Err(DequantError::Unsupported(ty)),
    }
    Ok(())
}

// The block functions below receive slices of exactly `type_size` bytes and `block_size`
// outputs (guaranteed by `chunks_exact` above), so their constant indices stay in bounds.

fn f16_at(b: &[u8], offset: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[offset], b[offset + 1]])).to_f32()
}

/// Q8_0: f16 scale, 32 × i8.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (yi, &q) in y.iter_mut().zip(&b[2..34]) {
        *yi = (q as i8) as f32 * d;
    }
}

/// Q4_0: f16 scale, 16 bytes of nibbles (low nibbles are elements 0..16, high ones 16..32).
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[2..18].iter().enumerate() {
        lo[j] = d * ((q & 0x0F) as i32 - 8) as f32;
        hi[j] = d * ((q >> 4) as i32 - 8) as f32;
    }
}

/// Q4_1: f16 scale, f16 min, 16 bytes of nibbles.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[4..20].iter().enumerate() {
        lo[j] = d * (q & 0x0F) as f32 + m;
        hi[j] = d * (q >> 4) as f32 + m;
    }
}

/// The 5-bit values of a Q5_0/Q5_1 block: 32 high bits in `qh`, nibbles in `qs`.
fn q5_values(qh_bytes: &[u8], qs: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes([qh_bytes[0], qh_bytes[1], qh_bytes[2], qh_bytes[3]]);
    let mut q = [0u8; 32];
    for (j, &byte) in qs.iter().take(16).enumerate() {
        let h0 = ((qh >> j) & 1) as u8;
        let h1 = ((qh >> (j + 16)) & 1) as u8;
        q[j] = (byte & 0x0F) | (h0 << 4);
        q[j + 16] = (byte >> 4) | (h1 << 4);
    }
    q
}

/// Q5_0: f16 scale, 4 bytes of high bits, 16 bytes of nibbles; value - 16.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let q = q5_values(&b[2..6], &b[6..22]);
    for (yi, &qi) in y.iter_mut().zip(&q) {
        *yi = d * (qi as i32 - 16) as f32;
    }
}

/// Q5_1: f16 scale, f16 min, 4 bytes of high bits, 16 bytes of nibbles.
fn q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let q = q5_values(&b[4..8], &b[8..24]);
    for (yi, &qi) in y.iter_mut().zip(&q) {
        *yi = d * qi as f32 + m;
    }
}

/// Q2_K: 16 bytes of 4-bit scale/min pairs, 64 bytes of 2-bit values, f16 d, f16 dmin.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    for (n, (q, out128)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(128)).enumerate() {
        for (j, out32) in out128.chunks_exact_mut(32).enumerate() {
            let shift = 2 * j;
            for (half, out16) in out32.chunks_exact_mut(16).enumerate() {
                let sc = scales[n * 8 + j * 2 + half];
                let dl = d * (sc & 0x0F) as f32;
                let ml = dmin * (sc >> 4) as f32;
                for (l, yi) in out16.iter_mut().enumerate() {
                    let v = (q[half * 16 + l] >> shift) & 3;
                    *yi = dl * v as f32 - ml;
                }
            }
        }
    }
}

/// Q3_K: 32 bytes of high-bit masks, 64 bytes of 2-bit values, 12 bytes of 6-bit scales, f16 d.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let packed = &b[96..108];
    let d = f16_at(b, 108);
    let mut scales = [0i32; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        let low = if i < 8 {
            packed[i] & 0x0F
        } else {
            packed[i - 8] >> 4
        };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 0x03;
        *s = (low | (high << 4)) as i32 - 32;
    }
    for (n, (q, out128)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(128)).enumerate() {
        for (j, out32) in out128.chunks_exact_mut(32).enumerate() {
            let shift = 2 * j;
            let mask_bit = n * 4 + j;
            for (half, out16) in out32.chunks_exact_mut(16).enumerate() {
                let dl = d * scales[n * 8 + j * 2 + half] as f32;
                for (l, yi) in out16.iter_mut().enumerate() {
                    let idx = half * 16 + l;
                    let low = ((q[idx] >> shift) & 3) as i32;
                    let sub = if (hmask[idx] >> mask_bit) & 1 == 1 {
                        0
                    } else {
                        4
                    };
                    *yi = dl * (low - sub) as f32;
                }
            }
        }
    }
}

/// The 6-bit (scale, min) pair `j` of the 12 packed bytes of a Q4_K/Q5_K block.
fn k4_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: f16 d, f16 dmin, 12 bytes of scales/mins, 128 bytes of nibbles (8 groups of 32).
fn q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let packed = &b[4..16];
    let qs = &b[16..144];
    for (c, (q, out64)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = k4_scale_min(2 * c, packed);
        let (sc2, m2) = k4_scale_min(2 * c + 1, packed);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (lo, hi) = out64.split_at_mut(32);
        for (l, &byte) in q.iter().enumerate() {
            lo[l] = d1 * (byte & 0x0F) as f32 - min1;
            hi[l] = d2 * (byte >> 4) as f32 - min2;
        }
    }
}

/// Q5_K: f16 d, f16 dmin, 12 bytes of scales/mins, 32 bytes of high bits, 128 bytes of nibbles.
fn q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let packed = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for (c, (q, out64)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = k4_scale_min(2 * c, packed);
        let (sc2, m2) = k4_scale_min(2 * c + 1, packed);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (lo, hi) = out64.split_at_mut(32);
        for (l, &byte) in q.iter().enumerate() {
            let h1 = (qh[l] >> (2 * c)) & 1;
            let h2 = (qh[l] >> (2 * c + 1)) & 1;
            lo[l] = d1 * ((byte & 0x0F) | (h1 << 4)) as f32 - min1;
            hi[l] = d2 * ((byte >> 4) | (h2 << 4)) as f32 - min2;
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 i8 scales, f16 d.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let ql_all = &b[0..128];
    let qh_all = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    for (n, out128) in y.chunks_exact_mut(QK_K / 2).enumerate() {
        let ql = &ql_all[n * 64..n * 64 + 64];
        let qh = &qh_all[n * 32..n * 32 + 32];
        let sc = &scales[n * 8..n * 8 + 8];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            out128[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            out128[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            out128[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            out128[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_quant")
    }

    /// Every supported type against `gguf.quants.dequantize` on random blocks
    /// (fixtures from scripts/make_gguf_quant_fixtures.py): bit-exact.
    #[test]
    fn matches_python_gguf_dequantize() {
        let dir = fixture_dir();
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        let manifest = manifest.as_object().unwrap();
        let mut checked = Vec::new();
        for (name, entry) in manifest {
            let id = entry["type_id"].as_u64().unwrap() as u32;
            let n = entry["n_elements"].as_u64().unwrap() as usize;
            let ty = GgmlType::from_id(id).unwrap();
            assert_eq!(ty.name(), name);
            let raw = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
            let expected: Vec<f32> = std::fs::read(dir.join(format!("{name}.f32")))
                .unwrap()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(expected.len(), n);
            let mut out = vec![f32::NAN; n];
            dequantize(ty, &raw, &mut out).unwrap();
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || a == b,
                    "{name} element {i}: got {a}, python {b}"
                );
            }
            checked.push(ty);
        }
        for ty in TYPE_TABLE
            .iter()
            .map(|r| r.0)
            .filter(|t| t.can_dequantize())
        {
            assert!(checked.contains(&ty), "no fixture for {ty}");
        }
    }

    #[test]
    fn type_table_is_consistent() {
        for (ty, id, name, bs, ts) in TYPE_TABLE {
            assert_eq!(GgmlType::from_id(id), Some(ty));
            assert_eq!(
                (ty.id(), ty.name(), ty.block_size(), ty.type_size()),
                (id, name, bs, ts)
            );
        }
        assert_eq!(GgmlType::from_id(4), None); // removed Q4_2
        assert_eq!(GgmlType::from_id(1000), None);
    }

    #[test]
    fn unsupported_and_bad_lengths_error() {
        let mut out = vec![0.0; 256];
        let err = dequantize(GgmlType::IQ2_XXS, &[0; 66], &mut out).unwrap_err();
        assert!(err.to_string().contains("IQ2_XXS"), "{err}");
        // One byte short of a Q4_1 block, and an element count that is not a block multiple.
        let mut out = vec![0.0; 32];
        assert!(matches!(
            dequantize(GgmlType::Q4_1, &[0; 19], &mut out),
            Err(DequantError::Length { .. })
        ));
        let mut out = vec![0.0; 31];
        assert!(matches!(
            dequantize(GgmlType::Q4_1, &[0; 20], &mut out),
            Err(DequantError::Length { .. })
        ));
    }
}
