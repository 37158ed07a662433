//! Scaled dot-product attention (causal or masked) on the host CPU for untracked f32 tensors, with grouped
//! key/value heads read in place (never repeated), a vectorised softmax over only the keys a
//! query may see, and the output written straight into `[batch, seq, heads · head_dim]` (the
//! layout the output projection reads). Each block of queries scores only the keys one of its
//! queries may see: up to the last one, and under a mask (a packed row's prefix tree) only
//! those, gathered, so a branch never pays for the other branches' keys.
//!
//! Its tensor-op twin is burn's `module::attention` with `is_causal` (the path of tracked
//! tensors, of masks and of the GPU); a test checks they agree. burn-flex's own kernel scores
//! every key of every query (masked ones too), runs its softmax element by element with libm's
//! scalar `expf`, and needs the grouped heads repeated first.

use rayon::prelude::*;

use super::host_softmax::{exp_f32, row_max};

/// Queries per block: a block's scores are one `[QUERY_BLOCK, visible keys]` matrix product and
/// the keys after the block's last query are never scored.
const QUERY_BLOCK: usize = 64;

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub seq_q: usize,
    pub seq_k: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    fn valid(&self) -> bool {
        self.kv_heads > 0 && self.heads.is_multiple_of(self.kv_heads) && self.head_dim > 0
    }
}

/// Which keys each query may see.
#[derive(Debug, Clone, Copy)]
pub enum Visibility<'a> {
    /// Key `j` is visible to query `i` when `j ≤ i + seq_k − seq_q` (queries aligned at the last
    /// key, as with a key/value cache).
    Causal,
    /// `masked[b · batch_stride + i · seq_k + j]`: query `i` of batch row `b` may not see key
    /// `j` (a `batch_stride` of 0 shares one `[seq_q, seq_k]` mask across the batch). Replaces
    /// causality.
    Masked {
        masked: &'a [bool],
        batch_stride: usize,
    },
}

/// `softmax(q·kᵀ / √d, visible) · v` per (batch, head): `q` `[batch, heads, seq_q, d]`, `k` and
/// `v` `[batch, kv_heads, seq_k, d]` (query head `h` reads key/value head `h / (heads /
/// kv_heads)`), all contiguous. Returns `[batch, seq_q, heads, d]` contiguous; a query that sees
/// no key gets zeros. `None` when the slices do not have the shape's lengths.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    visibility: Visibility<'_>,
) -> Option<Vec<f32>> {
    let AttentionShape {
        batch,
        heads,
        kv_heads,
        seq_q,
        seq_k,
        head_dim: d,
    } = shape;
    if !shape.valid()
        || q.len() != batch * heads * seq_q * d
        || k.len() != batch * kv_heads * seq_k * d
        || v.len() != k.len()
    {
        return None;
    }
    if let Visibility::Masked {
        masked,
        batch_stride,
    } = visibility
        && masked.len() < (batch - 1) * batch_stride + seq_q * seq_k
    {
        return None;
    }
    let mut out = vec![0f32; batch * seq_q * heads * d];
    if out.is_empty() || seq_k == 0 {
        return Some(out);
    }
    let offset = seq_k as isize - seq_q as isize;
    let scale = 1.0 / (d as f32).sqrt();
    let group = heads / kv_heads;
    let row_stride = heads * d;
    // One task per batch row: its output rows `[seq_q, heads, d]` are contiguous.
    out.par_chunks_mut(seq_q * row_stride)
        .enumerate()
        .for_each_init(
            || Scratch {
                scores: vec![0f32; QUERY_BLOCK * seq_k],
                keys: Vec::new(),
                values: Vec::new(),
            },
            |scratch, (b, out_b)| {
                // Which keys each query block scores, found once for all heads.
                let blocks: Vec<BlockKeys> = (0..seq_q)
                    .step_by(QUERY_BLOCK)
                    .map(|i0| {
                        let rows = QUERY_BLOCK.min(seq_q - i0);
                        match visibility {
                            Visibility::Causal => BlockKeys::Prefix {
                                keys: visible_keys(i0 + rows - 1, offset, seq_k),
                            },
                            Visibility::Masked {
                                masked,
                                batch_stride,
                            } => BlockKeys::masked(
                                &masked[b * batch_stride + i0 * seq_k..][..rows * seq_k],
                                seq_k,
                            ),
                        }
                    })
                    .collect();
                for h in 0..heads {
                    let kv_h = h / group;
                    let q_h = &q[(b * heads + h) * seq_q * d..][..seq_q * d];
                    let k_h = &k[(b * kv_heads + kv_h) * seq_k * d..][..seq_k * d];
                    let v_h = &v[(b * kv_heads + kv_h) * seq_k * d..][..seq_k * d];
                    for (i0, block) in (0..seq_q).step_by(QUERY_BLOCK).zip(&blocks) {
                        let rows = QUERY_BLOCK.min(seq_q - i0);
                        let keys = block.len();
                        if keys == 0 {
                            continue;
                        }
                        // The keys (and values) scored, contiguous: read in place when they are
                        // a prefix, gathered when the block sees scattered runs of them.
                        let (k_used, v_used) = match block {
                            BlockKeys::Masked {
                                used: Some(used), ..
                            } => {
                                gather_rows(&mut scratch.keys, k_h, used, d);
                                gather_rows(&mut scratch.values, v_h, used, d);
                                (&scratch.keys[..], &scratch.values[..])
                            }
                            _ => (k_h, v_h),
                        };
                        let scores = &mut scratch.scores[..rows * keys];
                        // SAFETY: every pointer covers the extent gemm reads or writes: `q_h`
                        // rows `i0..i0 + rows` × d, `k_used` rows `0..keys` × d, `scores`
                        // rows × keys.
                        unsafe {
                            gemm::gemm(
                                rows,
                                keys,
                                d,
                                scores.as_mut_ptr(),
                                1,
                                keys as isize,
                                false,
                                q_h[i0 * d..].as_ptr(),
                                1,
                                d as isize,
                                k_used.as_ptr(),
                                d as isize,
                                1,
                                0.0,
                                scale,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                        for r in 0..rows {
                            let row = &mut scores[r * keys..(r + 1) * keys];
                            match block {
                                BlockKeys::Prefix { .. } => {
                                    softmax_prefix(row, visible_keys(i0 + r, offset, seq_k))
                                }
                                BlockKeys::Masked { hidden, .. } => {
                                    let m = &hidden[r * keys..][..keys];
                                    let mut any = false;
                                    for (x, &hidden) in row.iter_mut().zip(m) {
                                        if hidden {
                                            *x = f32::NEG_INFINITY;
                                        } else {
                                            any = true;
                                        }
                                    }
                                    // exp(−∞ − max) is 0; a row that sees nothing is all 0.
                                    softmax_prefix(row, if any { keys } else { 0 });
                                }
                            }
                        }
                        let out_rows = &mut out_b[i0 * row_stride + h * d..];
                        // SAFETY: `scores` is rows × keys, `v_used` keys × d, and the output rows
                        // `i0..i0 + rows` of head h lie in `out_b` at stride heads · d.
                        unsafe {
                            gemm::gemm(
                                rows,
                                d,
                                keys,
                                out_rows.as_mut_ptr(),
                                1,
                                row_stride as isize,
                                false,
                                scores.as_ptr(),
                                1,
                                keys as isize,
                                v_used.as_ptr(),
                                1,
                                d as isize,
                                0.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                    }
                }
            },
        );
    Some(out)
}

/// Per-task buffers: a block's scores, and its gathered keys and values.
struct Scratch {
    scores: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// The keys one query block scores.
enum BlockKeys {
    /// Keys `0..keys` (causal: up to the block's last query).
    Prefix { keys: usize },
    /// Under a mask: `used` lists the keys some query of the block may see when they are not
    /// all of `0..` the last of them (`None`: that prefix), and `hidden` is the block's mask
    /// restricted to the scored keys, `[rows, scored keys]`.
    Masked {
        keys: usize,
        used: Option<Vec<usize>>,
        hidden: Vec<bool>,
    },
}

impl BlockKeys {
    /// From a block's mask rows `[rows, seq_k]`: a packed row's query block sees its shared
    /// ancestors and its own branch, so the other branches' keys in between are never scored.
    fn masked(mask_rows: &[bool], seq_k: usize) -> Self {
        let mut seen = vec![false; seq_k];
        for row in mask_rows.chunks(seq_k) {
            for (s, &hidden) in seen.iter_mut().zip(row) {
                *s |= !hidden;
            }
        }
        let keys = seen.iter().rposition(|&s| s).map_or(0, |j| j + 1);
        let used: Vec<usize> = (0..keys).filter(|&j| seen[j]).collect();
        if used.len() == keys {
            let hidden = mask_rows
                .chunks(seq_k)
                .flat_map(|row| row[..keys].iter().copied())
                .collect();
            return Self::Masked {
                keys,
                used: None,
                hidden,
            };
        }
        let hidden = mask_rows
            .chunks(seq_k)
            .flat_map(|row| used.iter().map(move |&j| row[j]))
            .collect();
        Self::Masked {
            keys: used.len(),
            used: Some(used),
            hidden,
        }
    }

    /// How many keys are scored.
    fn len(&self) -> usize {
        match self {
            Self::Prefix { keys } | Self::Masked { keys, .. } => *keys,
        }
    }
}

/// `out ← rows `used` of `src` (`[_, d]`)`, contiguous.
fn gather_rows(out: &mut Vec<f32>, src: &[f32], used: &[usize], d: usize) {
    out.clear();
    for &j in used {
        out.extend_from_slice(&src[j * d..(j + 1) * d]);
    }
}

/// How many keys query `i` sees: `0..=i + offset`, clipped to `0..seq_k`.
fn visible_keys(i: usize, offset: isize, seq_k: usize) -> usize {
    (i as isize + offset + 1).clamp(0, seq_k as isize) as usize
}

/// `row[..seen] ← softmax(row[..seen])`, `row[seen..] ← 0` (all zeros when `seen` is 0).
fn softmax_prefix(row: &mut [f32], seen: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for (checked above).
            unsafe { softmax_prefix_avx2(row, seen) };
            return;
        }
    }
    softmax_prefix_generic(row, seen);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_prefix_avx2(row: &mut [f32], seen: usize) {
    softmax_prefix_generic(row, seen);
}

/// Lanes of the sum: independent accumulators the compiler keeps in vector registers.
const LANES: usize = 16;

#[inline(always)]
fn softmax_prefix_generic(row: &mut [f32], seen: usize) {
    let seen = seen.min(row.len());
    let (live, dead) = row.split_at_mut(seen);
    for x in dead.iter_mut() {
        *x = 0.0;
    }
    if seen == 0 {
        return;
    }
    let full = seen / LANES * LANES;
    let max = row_max(live);
    let mut sums = [0f32; LANES];
    let mut i = 0;
    while i < full {
        for j in 0..LANES {
            let e = exp_f32(live[i + j] - max);
            live[i + j] = e;
            sums[j] += e;
        }
        i += LANES;
    }
    let mut sum = 0f32;
    for &s in &sums {
        sum += s;
    }
    for x in &mut live[full..] {
        let e = exp_f32(*x - max);
        *x = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for x in live.iter_mut() {
        *x *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Bool, Tensor, TensorData, module, ops::AttentionModuleOptions};

    /// burn's attention (the twin) with the grouped heads repeated, as the model did before.
    fn twin(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: AttentionShape,
        masked: Option<&[bool]>,
    ) -> Vec<f32> {
        let device = burn::tensor::Device::flex();
        let AttentionShape {
            batch,
            heads,
            kv_heads,
            seq_q,
            seq_k,
            head_dim: d,
        } = s;
        let group = heads / kv_heads;
        let q = Tensor::<4>::from_data(
            TensorData::new(q.to_vec(), [batch, heads, seq_q, d]),
            &device,
        );
        let repeat = |t: &[f32]| {
            Tensor::<4>::from_data(
                TensorData::new(t.to_vec(), [batch, kv_heads, seq_k, d]),
                &device,
            )
            .unsqueeze_dim::<5>(2)
            .expand([batch, kv_heads, group, seq_k, d])
            .reshape([batch, heads, seq_k, d])
        };
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: masked.is_none(),
        };
        let mask = masked.map(|m| {
            Tensor::<3, Bool>::from_data(
                TensorData::new(m.to_vec(), [batch, seq_q, seq_k]),
                &device,
            )
            .unsqueeze_dim::<4>(1)
            .expand([batch, heads, seq_q, seq_k])
        });
        module::attention(q, repeat(k), repeat(v), mask, None, options)
            .swap_dims(1, 2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// The host attention under a per-row mask `[batch, seq_q, seq_k]`, and its largest
    /// difference from the twin's.
    fn masked_vs_twin(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: AttentionShape,
        masked: &[bool],
    ) -> (Vec<f32>, f32) {
        let visibility = Visibility::Masked {
            masked,
            batch_stride: s.seq_q * s.seq_k,
        };
        let got = attention(q, k, v, s, visibility).unwrap();
        let want = twin(q, k, v, s, Some(masked));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0f32, f32::max);
        (got, worst)
    }

    #[test]
    fn host_attention_matches_burns_causal_attention() {
        let mut state = 21u64;
        for (batch, heads, kv_heads, seq_q, seq_k, d) in [
            (2, 9, 3, 200, 200, 64),
            (1, 4, 4, 64, 64, 8),
            (3, 4, 2, 1, 1, 16),
            (2, 6, 2, 5, 130, 32),
            (1, 2, 1, 70, 70, 128),
        ] {
            let s = AttentionShape {
                batch,
                heads,
                kv_heads,
                seq_q,
                seq_k,
                head_dim: d,
            };
            let q = crate::test_fixtures::uniform(&mut state, batch * heads * seq_q * d, 3.0);
            let k = crate::test_fixtures::uniform(&mut state, batch * kv_heads * seq_k * d, 3.0);
            let v = crate::test_fixtures::uniform(&mut state, batch * kv_heads * seq_k * d, 1.0);
            let got = attention(&q, &k, &v, s, Visibility::Causal).unwrap();
            let want = twin(&q, &k, &v, s, None);
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            assert!(worst < 2e-6, "{s:?}: worst difference {worst:e}");
        }
    }

    #[test]
    fn host_attention_with_a_mask_matches_burns_masked_attention() {
        let mut state = 23u64;
        // Two packed rows: a shared prompt of 70 then two branches of 40 and 50, padding after
        // (a padding token sees only itself); one row that sees nothing at query 3.
        let (batch, heads, kv_heads, seq, d) = (3, 6, 2, 170, 32);
        let mut masked = vec![true; batch * seq * seq];
        for b in 0..batch {
            for i in 0..seq {
                for j in 0..seq {
                    let visible = if i < 70 {
                        j <= i
                    } else if i < 110 {
                        j < 70 || (70..=i).contains(&j)
                    } else if i < 160 {
                        j < 70 || (110..=i).contains(&j)
                    } else {
                        i == j
                    };
                    masked[(b * seq + i) * seq + j] = !visible || (b == 2 && i == 3);
                }
            }
        }
        let s = AttentionShape {
            batch,
            heads,
            kv_heads,
            seq_q: seq,
            seq_k: seq,
            head_dim: d,
        };
        let q = crate::test_fixtures::uniform(&mut state, batch * heads * seq * d, 3.0);
        let k = crate::test_fixtures::uniform(&mut state, batch * kv_heads * seq * d, 3.0);
        let v = crate::test_fixtures::uniform(&mut state, batch * kv_heads * seq * d, 1.0);
        let (got, worst) = masked_vs_twin(&q, &k, &v, s, &masked);
        assert!(worst < 2e-6, "worst difference {worst:e}");
        // Batch row 2, query 3 sees nothing: zeros (burn's kernel gives zeros too).
        let row = &got[(2 * seq + 3) * heads * d..][..heads * d];
        assert!(row.iter().all(|&x| x == 0.0));
        // One mask shared by every batch row (stride 0) is the per-row mask repeated.
        let shared = Visibility::Masked {
            masked: &masked[..seq * seq],
            batch_stride: 0,
        };
        let one = attention(&q, &k, &v, s, shared).unwrap();
        let per_row: Vec<bool> = (0..batch)
            .flat_map(|_| masked[..seq * seq].to_vec())
            .collect();
        let rows = Visibility::Masked {
            masked: &per_row,
            batch_stride: seq * seq,
        };
        assert_eq!(one, attention(&q, &k, &v, s, rows).unwrap());
    }

    #[test]
    fn host_attention_over_a_prefix_tree_matches_burns_masked_attention() {
        use crate::model::{logprobs::MaskedSequence, packing};
        // Eight sequences with a common beginning of 20 tokens, then a two-letter alphabet (so
        // sub-branches share more): one row, each query block seeing scattered runs of keys.
        let mut state = 29u64;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let owned: Vec<MaskedSequence> = (0..8)
            .map(|_| {
                let n = 60 + next(60) as usize;
                let ids: Vec<u32> = (0..n)
                    .map(|i| {
                        if i < 20 {
                            i as u32
                        } else {
                            100 + next(2) as u32
                        }
                    })
                    .collect();
                MaskedSequence {
                    target_mask: (0..n).map(|i| i >= 30).collect(),
                    input_ids: ids,
                }
            })
            .collect();
        let seqs: Vec<&MaskedSequence> = owned.iter().collect();
        let rows = packing::pack(&seqs, packing::PackPolicy::prefixes(8));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        let seq = row.len();
        assert!(seq > 4 * QUERY_BLOCK, "{seq} tokens");
        let masked: Vec<bool> = (0..seq)
            .flat_map(|i| (0..seq).map(move |j| (i, j)))
            .map(|(i, j)| !row.visible(i, j))
            .collect();
        let (heads, kv_heads, d) = (6, 2, 16);
        let s = AttentionShape {
            batch: 1,
            heads,
            kv_heads,
            seq_q: seq,
            seq_k: seq,
            head_dim: d,
        };
        let mut rng = 31u64;
        let q = crate::test_fixtures::uniform(&mut rng, heads * seq * d, 3.0);
        let k = crate::test_fixtures::uniform(&mut rng, kv_heads * seq * d, 3.0);
        let v = crate::test_fixtures::uniform(&mut rng, kv_heads * seq * d, 1.0);
        // Some block scores fewer keys than its last visible one: the gathered path runs.
        let gathered = (0..seq).step_by(QUERY_BLOCK).any(|i0| {
            let rows = QUERY_BLOCK.min(seq - i0);
            matches!(
                BlockKeys::masked(&masked[i0 * seq..][..rows * seq], seq),
                BlockKeys::Masked { used: Some(_), .. }
            )
        });
        assert!(gathered);
        let (_, worst) = masked_vs_twin(&q, &k, &v, s, &masked);
        assert!(worst < 2e-6, "worst difference {worst:e}");
    }

    #[test]
    fn queries_that_see_no_key_get_zeros_and_bad_shapes_are_refused() {
        // More queries than keys: the first two see nothing.
        let s = AttentionShape {
            batch: 1,
            heads: 1,
            kv_heads: 1,
            seq_q: 4,
            seq_k: 2,
            head_dim: 2,
        };
        let q = vec![1.0; 8];
        let kv = vec![1.0, 2.0, 3.0, 4.0];
        let out = attention(&q, &kv, &kv, s, Visibility::Causal).unwrap();
        assert_eq!(&out[..4], &[0.0; 4]);
        assert_eq!(&out[4..6], &[1.0, 2.0]);
        assert!(attention(&q[..7], &kv, &kv, s, Visibility::Causal).is_none());
        let bad = AttentionShape { kv_heads: 3, ..s };
        assert!(attention(&q, &kv, &kv, bad, Visibility::Causal).is_none());
    }

    #[test]
    fn the_softmax_of_a_prefix_sums_to_one_and_zeroes_the_rest() {
        let mut row: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        let orig = row.clone();
        softmax_prefix(&mut row, 33);
        let sum: f32 = row[..33].iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert!(row[33..].iter().all(|&x| x == 0.0));
        let max = orig[..33].iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = orig[..33].iter().map(|&x| f64::from(x - max).exp()).sum();
        for i in 0..33 {
            let want = f64::from(orig[i] - max).exp() / z;
            assert!((f64::from(row[i]) - want).abs() < 1e-6 * want.max(1e-3));
        }
    }
}
