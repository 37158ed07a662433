//! A vocabulary-sized `[rows, cols]` path parameter (the input embedding, the output head)
//! stored as consecutive row blocks, each small enough for one device buffer.
//!
//! wgpu binds at most `max_storage_buffer_binding_size` bytes of one buffer in a shader (128 MiB
//! on lavapipe; 2–4 GiB on many GPUs), and Qwen3's 151,936 × 2,048 embedding alone is 1.2 GiB in
//! f32. The loader splits such a table into blocks of whole rows; a table that fits stays one
//! block and every operation below is then exactly the single-tensor form.

use burn::tensor::{Int, Tensor, module::embedding};

use super::{path_param::PathParam, weight_dtype::widened};

#[derive(Debug, Clone)]
pub struct RowBlocks {
    /// `(first row, block)` in row order; together the blocks hold every row once.
    blocks: Vec<(usize, PathParam<2>)>,
}

impl RowBlocks {
    /// Consecutive blocks (each `[rows_b, cols]`, the same `cols`).
    pub fn new(blocks: Vec<PathParam<2>>) -> Self {
        let mut start = 0;
        let blocks = blocks
            .into_iter()
            .map(|b| {
                let first = start;
                start += b.base.dims()[0];
                (first, b)
            })
            .collect();
        Self { blocks }
    }

    pub fn one(param: PathParam<2>) -> Self {
        Self::new(vec![param])
    }

    /// The parameter as one tensor, when it is one block.
    pub fn whole(&self) -> Option<&PathParam<2>> {
        match self.blocks.as_slice() {
            [(_, b)] => Some(b),
            _ => None,
        }
    }

    /// `(first row, block)` in row order.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, &PathParam<2>)> {
        self.blocks.iter().map(|(r, b)| (*r, b))
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub fn rows(&self) -> usize {
        self.blocks.last().map_or(0, |(r, b)| r + b.base.dims()[0])
    }

    /// Whether any block carries dense deltas (a full-weight path).
    pub fn has_deltas(&self) -> bool {
        self.blocks.iter().any(|(_, b)| !b.deltas.is_empty())
    }

    /// Rows `ids` `[batch, seq]` of `base + Σ cₖ·Δₖ` → `[batch, seq, cols]`. Rows are gathered
    /// from the base and each delta and then mixed (no mixed table is formed); with several
    /// blocks each gathers the ids that fall in it (others clamped and multiplied by 0) and the
    /// blocks' rows are summed, which adds only exact zeros to each row.
    pub fn embed(&self, ids: Tensor<2, Int>, coeffs: &[f32]) -> Tensor<3> {
        let gather = |b: &PathParam<2>, ids: Tensor<2, Int>| {
            // Rows of a table stored in half precision are widened after the lookup, so only
            // the looked-up rows ever exist in f32.
            let mut h = widened(embedding(b.base.clone(), ids.clone()));
            for (delta, &c) in b.deltas.iter().zip(coeffs) {
                if c != 0.0 {
                    h = h + widened(embedding(delta.clone(), ids.clone())) * c;
                }
            }
            h
        };
        if let Some(b) = self.whole() {
            return gather(b, ids);
        }
        let mut out: Option<Tensor<3>> = None;
        for (first, b) in self.blocks() {
            let rows = b.base.dims()[0] as i64;
            let local = ids.clone().sub_scalar(first as i64);
            let inside = local
                .clone()
                .greater_equal_elem(0)
                .float()
                .mul(local.clone().lower_elem(rows).float())
                .unsqueeze_dim::<3>(2);
            let h = gather(b, local.clamp(0, rows - 1)) * inside;
            out = Some(match out {
                Some(o) => o + h,
                None => h,
            });
        }
        // `new` is never given an empty list by the loader; an empty table embeds nothing.
        out.unwrap_or_else(|| {
            let [batch, seq] = ids.dims();
            Tensor::zeros([batch, seq, 0], &ids.device())
        })
    }

    /// Each block mixed at `coeffs` and transposed to `[cols, rows_b]`, with its first row: the
    /// output head ready for `hidden · head_t` (the base itself where nothing moves), in f32.
    pub fn transposed(&self, coeffs: &[f32]) -> Vec<(usize, Tensor<2>)> {
        self.transposed_stored(coeffs)
            .into_iter()
            .map(|(first, w)| (first, widened(w)))
            .collect()
    }

    /// [`RowBlocks::transposed`], but a block that does not move keeps the type it is stored
    /// in (a half-precision head is then widened chunk by chunk where it is used, never whole).
    pub fn transposed_stored(&self, coeffs: &[f32]) -> Vec<(usize, Tensor<2>)> {
        self.blocks()
            .map(|(first, b)| {
                let w = if b.deltas.is_empty() || coeffs.iter().all(|&c| c == 0.0) {
                    b.base.clone()
                } else {
                    b.value(coeffs)
                };
                (first, w.transpose())
            })
            .collect()
    }
}

/// `x · head_tᵀ` over every block, `[n, rows]`: the blocks' logits side by side.
pub fn blocked_logits(x: Tensor<2>, head_t: &[(usize, Tensor<2>)]) -> Tensor<2> {
    match head_t {
        [(_, w)] => x.matmul(w.clone()),
        _ => Tensor::cat(
            head_t
                .iter()
                .map(|(_, w)| x.clone().matmul(w.clone()))
                .collect(),
            1,
        ),
    }
}

/// Rows per block so that one block of `cols` f32 columns fits in `max_bytes` (at least one).
pub fn rows_per_block(cols: usize, max_bytes: u64) -> usize {
    let row_bytes = (cols.max(1) as u64).saturating_mul(4);
    usize::try_from((max_bytes / row_bytes).max(1)).unwrap_or(usize::MAX)
}
