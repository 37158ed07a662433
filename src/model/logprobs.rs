//! Teacher-forced log-probabilities of target tokens.
//!
//! Only the rows that predict a masked-in target go through the output projection, in chunks,
//! so a batch never materialises `[batch, seq, vocab]` logits (vocabularies reach 152k).

use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use super::{
    error::ModelError,
    packing::{PackedRow, balanced_parts},
    path_param::{PathCoefficients, PathPoint},
    transformer::{CausalLm, RowLayout},
};

/// Upper bound on the logits materialised at once (elements): 2 M f32 = 8 MiB.
const MAX_LOGIT_ELEMENTS: usize = 2 * 1024 * 1024;

/// One tokenised sequence with its loss mask (`target_mask[i]`: token `i` is a target,
/// predicted from tokens `0..i`; `target_mask[0]` is ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedSequence {
    pub input_ids: Vec<u32>,
    pub target_mask: Vec<bool>,
}

/// Log-probs of every masked-in target of each sequence, in order (f32, as transformers).
///
/// `coeffs`: where on the model's path the batch runs (empty for a plain checkpoint); LoRA
/// slots the model has but `coeffs` leaves out get coefficient 0.
pub fn target_logprobs(
    model: &CausalLm,
    batch: &[MaskedSequence],
    coeffs: &PathCoefficients,
) -> Result<Vec<Vec<f32>>, ModelError> {
    for (s, seq) in batch.iter().enumerate() {
        if seq.target_mask.len() != seq.input_ids.len() {
            return Err(ModelError::Input(format!(
                "sequence {s}: {} ids but {} mask entries",
                seq.input_ids.len(),
                seq.target_mask.len()
            )));
        }
    }
    let rows: Vec<PackedRow> = batch
        .iter()
        .enumerate()
        .map(|(i, s)| PackedRow::single(i, s))
        .collect();
    Ok(packed_target_logprobs(model, &rows, coeffs)?
        .into_iter()
        .map(|mut members| members.pop().unwrap_or_default())
        .collect())
}

/// Log-probs of every target of each member of each row, `[row][member][target]`, for rows made
/// by [`super::packing::pack`] (one LoRA coefficient per row). A batch of
/// unshared rows runs as plain causal sequences; with a shared row, the whole batch runs with
/// explicit positions and an attention mask.
pub fn packed_target_logprobs(
    model: &CausalLm,
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
) -> Result<Vec<Vec<Vec<f32>>>, ModelError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // A model on a full-weight path (dense deltas held) keeps one lane: each lane holds its own
    // mixed layer weights, head and logit chunks and MLP row groups, which took the peak of a
    // full-weight SmolLM2 sweep from 1,081 to 1,101 MiB, past its 2.1× model-bytes bound.
    let lanes = if model.embed_tokens.has_deltas() {
        1
    } else {
        crate::compute::cpu_lanes(&model.device)
    };
    let parts = balanced_parts(&rows.iter().map(PackedRow::len).collect::<Vec<_>>(), lanes);
    // One thread per part (see `compute::cpu_lanes`); each row's values are the ones it gets
    // in a batch of its own.
    let mut all = Vec::new();
    for part in crate::compute::map_lanes(&parts, |range| {
        flat_target_logprobs(model, &rows[range.clone()], &coeffs.rows(range))
    }) {
        all.extend(part?);
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut offset = 0;
    for row in rows {
        let mut members = Vec::with_capacity(row.members.len());
        for m in &row.members {
            let n = m.targets.len();
            let end = offset + n;
            members.push(all.get(offset..end).map(<[f32]>::to_vec).ok_or_else(|| {
                ModelError::Input(format!("{} target log-probs for {end} targets", all.len()))
            })?);
            offset = end;
        }
        out.push(members);
    }
    Ok(out)
}

/// Every target's log-prob of `rows`, flat, in row / member / target order.
fn flat_target_logprobs(
    model: &CausalLm,
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
) -> Result<Vec<f32>, ModelError> {
    let mut all = Vec::new();
    for part in target_logprob_tensors(model, rows, coeffs)? {
        all.extend(to_vec(part, &model.device)?);
    }
    Ok(all)
}

/// Sum of the negative log-probs of every target of every member of `rows`, as a scalar tensor
/// `[1]` that autodiff can differentiate (the training loss before normalisation), and the
/// number of targets it sums. The same forward as [`packed_target_logprobs`].
pub fn target_nll_sum(
    model: &CausalLm,
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
) -> Result<(Tensor<1>, usize), ModelError> {
    let n_targets: usize = rows
        .iter()
        .flat_map(|r| &r.members)
        .map(|m| m.targets.len())
        .sum();
    if n_targets == 0 {
        return Err(ModelError::Input(
            "no masked-in target in the batch (nothing to train on)".into(),
        ));
    }
    let parts = target_logprob_tensors(model, rows, coeffs)?;
    Ok((sum_parts(parts)?, n_targets))
}

/// [`target_nll_sum`] plus each row's own NLL sum and target count, read back to the host (one
/// read per output-head chunk): what a curve fit reports as the loss at each sequence's t.
pub fn target_nll_sum_by_row(
    model: &CausalLm,
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
) -> Result<(Tensor<1>, Vec<(f64, usize)>), ModelError> {
    let counts: Vec<usize> = rows
        .iter()
        .map(|r| r.members.iter().map(|m| m.targets.len()).sum())
        .collect();
    if counts.iter().sum::<usize>() == 0 {
        return Err(ModelError::Input(
            "no masked-in target in the batch (nothing to train on)".into(),
        ));
    }
    let parts = target_logprob_tensors(model, rows, coeffs)?;
    let mut values = Vec::new();
    for part in &parts {
        values.extend(to_vec(part.clone(), &model.device)?);
    }
    let mut per_row = Vec::with_capacity(rows.len());
    let mut offset = 0;
    for &n in &counts {
        let lps = values.get(offset..offset + n).ok_or_else(|| {
            ModelError::Input(format!(
                "{} target log-probs for {} targets",
                values.len(),
                offset + n
            ))
        })?;
        per_row.push((-lps.iter().map(|&v| f64::from(v)).sum::<f64>(), n));
        offset += n;
    }
    Ok((sum_parts(parts)?, per_row))
}

/// The negated sum of every part, as one `[1]` tensor.
fn sum_parts(parts: Vec<Tensor<2>>) -> Result<Tensor<1>, ModelError> {
    let mut total: Option<Tensor<1>> = None;
    for part in parts {
        let s = part.sum();
        total = Some(match total {
            Some(t) => t + s,
            None => s,
        });
    }
    let total = total.ok_or_else(|| ModelError::Input("empty batch".into()))?;
    Ok(total.neg())
}

/// The forward of a batch of rows: every target's log-prob, in row / member / target order, as
/// `[n, 1]` tensors (one per chunk of the output head).
fn target_logprob_tensors(
    model: &CausalLm,
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
) -> Result<Vec<Tensor<2>>, ModelError> {
    let device = &model.device;
    let vocab = model.config.vocab_size;
    let batch = rows.len();
    let seq_len = rows.iter().map(PackedRow::len).max().unwrap_or(0);
    if seq_len == 0 {
        return Err(ModelError::Input("empty sequence in batch".into()));
    }
    let mut ids = Vec::with_capacity(batch * seq_len);
    let mut predictors = Vec::new();
    let mut targets = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        if row.positions.len() != row.len() || row.reach.len() != row.len() {
            return Err(ModelError::Input(format!(
                "packed row {r}: {} ids, {} positions, {} reach entries",
                row.len(),
                row.positions.len(),
                row.reach.len()
            )));
        }
        for &id in &row.input_ids {
            if id as usize >= vocab {
                return Err(ModelError::Input(format!(
                    "token id {id} is outside the model's vocabulary of {vocab} (wrong tokenizer?)"
                )));
            }
            ids.push(id as i64);
        }
        ids.extend(std::iter::repeat_n(0i64, seq_len - row.len()));
        for m in &row.members {
            for &(p, t) in &m.targets {
                if p >= row.len() {
                    return Err(ModelError::Input(format!(
                        "packed row {r}: predictor {p} outside its {} tokens",
                        row.len()
                    )));
                }
                if t as usize >= vocab {
                    return Err(ModelError::Input(format!(
                        "target id {t} is outside the model's vocabulary of {vocab} (wrong tokenizer?)"
                    )));
                }
                predictors.push((r * seq_len + p) as i64);
                targets.push(t as i64);
            }
        }
    }
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq_len]), device);
    let point = device_point(model, coeffs, batch)?;
    let hidden = if rows.iter().any(PackedRow::is_shared) {
        model.hidden_states_with_layout(input, &row_layout(rows, seq_len), &point)?
    } else {
        model.hidden_states(input, &point)
    };
    Ok(head_logprobs(model, hidden, &point, &predictors, &targets))
}

/// Positions and visibility of a batch of packed rows padded to `seq_len`; a padding token sees
/// only itself.
fn row_layout(rows: &[PackedRow], seq_len: usize) -> RowLayout {
    let mut layout = RowLayout {
        positions: Vec::with_capacity(rows.len() * seq_len),
        visible: Vec::with_capacity(rows.len() * seq_len * seq_len),
    };
    for row in rows {
        let n = row.len();
        layout.positions.extend_from_slice(&row.positions);
        layout.positions.extend(std::iter::repeat_n(0, seq_len - n));
        for i in 0..seq_len {
            for j in 0..seq_len {
                layout.visible.push(if i < n {
                    j < n && row.visible(i, j)
                } else {
                    i == j
                });
            }
        }
    }
    layout
}

/// `log p(target | predictor row)` for the given rows of `hidden` `[batch, seq, hidden]`
/// (flattened row indices): only those rows go through the output projection, in chunks.
fn head_logprobs(
    model: &CausalLm,
    hidden: Tensor<3>,
    point: &PathPoint,
    rows: &[i64],
    targets: &[i64],
) -> Vec<Tensor<2>> {
    let device = &model.device;
    let vocab = model.config.vocab_size;
    let [batch, seq_len, hidden_size] = hidden.dims();
    let flat = hidden.reshape([batch * seq_len, hidden_size]);
    let head = model.output_param();
    let v_chunk = HEAD_CHUNK_ELEMENTS / hidden_size.max(1);
    let fixed_head = !head.has_deltas() || point.dense.iter().all(|&c| c == 0.0);
    if fixed_head || (v_chunk >= vocab && head.whole().is_some()) {
        // A moving head small enough to mix whole is mixed once, as the streamed form's one
        // chunk would be (the same values, one logit block per row chunk). A head in row
        // blocks gives each row chunk's logits block by block, side by side.
        if !flat.is_tracked()
            && crate::compute::is_host_cpu(device)
            && let Some(logp) = host_streamed_logprobs(
                &flat,
                &head.transposed_stored(&point.dense),
                rows,
                targets,
                HOST_HEAD_ROWS,
                HOST_LOGIT_ELEMENTS,
            )
        {
            return vec![logp];
        }
        let head_t = head.transposed(&point.dense);
        let chunk = (MAX_LOGIT_ELEMENTS / vocab.max(1)).max(1);
        let mut parts = Vec::with_capacity(rows.len().div_ceil(chunk));
        for (row_chunk, target_chunk) in rows.chunks(chunk).zip(targets.chunks(chunk)) {
            let n = row_chunk.len();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(row_chunk.to_vec(), [n]), device);
            let tgt =
                Tensor::<2, Int>::from_data(TensorData::new(target_chunk.to_vec(), [n, 1]), device);
            let logits = super::row_blocks::blocked_logits(flat.clone().select(0, idx), &head_t);
            parts.push(chunk_target_log_softmax(logits, tgt, target_chunk));
        }
        parts
    } else {
        streamed_target_logprobs(&flat, head, &point.dense, rows, targets, v_chunk, device)
    }
}

/// Logits formed on the host at once per vocabulary chunk (elements): 4 M f32 = 16 MiB.
const HOST_LOGIT_ELEMENTS: usize = 4 * 1024 * 1024;

/// Rows of `flat` per pass over the output head on the host CPU.
const HOST_HEAD_ROWS: usize = 2048;

/// Target log-probs of untracked rows on the host CPU, vocabulary chunk by vocabulary chunk:
/// each chunk's logits are formed for up to `max_rows` rows at once (about `logit_elements` of
/// them; [`HOST_HEAD_ROWS`] and [`HOST_LOGIT_ELEMENTS`] in use) and folded into a
/// running log-sum-exp ([`super::host_softmax::StreamedRows`]). The row-chunked form
/// (`head_logprobs`' general route, its tested twin) forms the whole vocabulary for ~40 rows at a
/// time, so the matrix product repacks the whole `[vocab, hidden]` head (113 MB for SmolLM2)
/// for every 40 rows; here it is packed once per pass. `None` when a chunk could not be read
/// back (the caller then takes the general route). `head_t` may be stored in half precision.
fn host_streamed_logprobs(
    flat: &Tensor<2>,
    head_t: &[(usize, Tensor<2>)],
    rows: &[i64],
    targets: &[i64],
    max_rows: usize,
    logit_elements: usize,
) -> Option<Tensor<2>> {
    let device = flat.device();
    let max_rows = max_rows.max(1);
    let mut out = Vec::with_capacity(rows.len());
    for (row_chunk, target_chunk) in rows.chunks(max_rows).zip(targets.chunks(max_rows)) {
        let n = row_chunk.len();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(row_chunk.to_vec(), [n]), &device);
        let x = flat.clone().select(0, idx);
        let width = (logit_elements / n).max(1);
        let mut acc = super::host_softmax::StreamedRows::new(target_chunk);
        for (first, w_t) in head_t {
            let block_rows = w_t.dims()[1];
            for local in (0..block_rows).step_by(width) {
                let len = width.min(block_rows - local);
                // A head stored in half precision is widened one chunk at a time.
                let w = super::weight_dtype::widened(w_t.clone().narrow(1, local, len));
                let logits = x.clone().matmul(w);
                let data = logits.into_data();
                acc.add_chunk(data.as_slice::<f32>().ok()?, first + local, len);
            }
        }
        out.extend(acc.finish());
    }
    let n = out.len();
    Some(Tensor::<2>::from_data(
        TensorData::new(out, [n, 1]),
        &device,
    ))
}

/// A result read back to the host; a device that failed while computing it (e.g. a buffer it
/// could not allocate) is an error, not a panic.
fn to_vec(t: Tensor<2>, device: &burn::tensor::Device) -> Result<Vec<f32>, ModelError> {
    let failed = |msg: String| ModelError::Device {
        device: format!("{device:?}"),
        msg,
    };
    t.try_into_data()
        .map_err(|e| failed(format!("{e}")))?
        .try_to_vec::<f32>()
        .map_err(|e| failed(format!("{e:?}")))
}

/// Elements of one mixed output-head chunk (`[vocab rows, hidden]`): 1 M f32 = 4 MiB.
const HEAD_CHUNK_ELEMENTS: usize = 1024 * 1024;

/// Target log-probs when the output head moves along the path (full-weight paths): the mixed
/// head `W₀ + Σ cₖ·Δₖ` is formed one vocabulary chunk at a time, never whole, and each row's
/// log-sum-exp is accumulated across the chunks (running max and rescaled sum), so memory holds
/// one head chunk and one logit block instead of a second `[vocab, hidden]` matrix.
fn streamed_target_logprobs(
    flat: &Tensor<2>,
    head: &super::row_blocks::RowBlocks,
    coeffs: &[f32],
    rows: &[i64],
    targets: &[i64],
    v_chunk: usize,
    device: &burn::tensor::Device,
) -> Vec<Tensor<2>> {
    let vocab = head.rows();
    let v_chunk = v_chunk.clamp(1, vocab.max(1));
    let r_chunk = (MAX_LOGIT_ELEMENTS / v_chunk).max(1);
    // Per row block: its hidden states, running max, rescaled sum and the target's raw logit.
    let mut blocks = Vec::new();
    for (row_chunk, target_chunk) in rows.chunks(r_chunk).zip(targets.chunks(r_chunk)) {
        let n = row_chunk.len();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(row_chunk.to_vec(), [n]), device);
        blocks.push((
            flat.clone().select(0, idx),
            target_chunk.to_vec(),
            Tensor::<2>::full([n, 1], f32::NEG_INFINITY, device),
            Tensor::<2>::zeros([n, 1], device),
            Tensor::<2>::zeros([n, 1], device),
        ));
    }
    // Chunks never straddle two row blocks: a chunk is a view of one block's buffer.
    let chunks: Vec<(usize, usize, &super::path_param::PathParam<2>)> = head
        .blocks()
        .flat_map(|(first, block)| {
            let rows = block.base.dims()[0];
            (0..rows)
                .step_by(v_chunk)
                .map(move |local| (first + local, local, block))
        })
        .collect();
    for (v0, local0, block) in chunks {
        let len = v_chunk.min(block.base.dims()[0] - local0);
        let part = super::path_param::PathParam {
            base: block.base.clone().narrow(0, local0, len),
            deltas: block
                .deltas
                .iter()
                .map(|d| d.clone().narrow(0, local0, len))
                .collect(),
        };
        let w_t = part.value(coeffs).transpose();
        for (x, tg, m, s, raw) in blocks.iter_mut() {
            let n = tg.len();
            let logits = x.clone().matmul(w_t.clone());
            let m_new = m.clone().max_pair(logits.clone().max_dim(1)).detach();
            // The target's raw logit, where it falls in this chunk.
            let local: Vec<i64> = tg
                .iter()
                .map(|&t| (t - v0 as i64).clamp(0, len as i64 - 1))
                .collect();
            let inside: Vec<f32> = tg
                .iter()
                .map(|&t| f32::from(t >= v0 as i64 && t < (v0 + len) as i64))
                .collect();
            let local = Tensor::<2, Int>::from_data(TensorData::new(local, [n, 1]), device);
            let inside = Tensor::<2>::from_data(TensorData::new(inside, [n, 1]), device);
            *raw = raw.clone() + logits.clone().gather(1, local) * inside;
            let chunk_sum = blocked_row_sum((logits - m_new.clone()).exp());
            *s = s.clone() * (m.clone() - m_new.clone()).exp() + chunk_sum;
            *m = m_new;
        }
    }
    blocks
        .into_iter()
        .map(|(_, _, m, s, raw)| raw - m - s.log())
        .collect()
}

/// Row sums of `[rows, n]` in blocks of 1024 and then across blocks, which keeps the f32 rounding
/// error near that of a pairwise sum.
fn blocked_row_sum(x: Tensor<2>) -> Tensor<2> {
    const BLOCK: usize = 1024;
    let [rows, n] = x.dims();
    if n <= BLOCK {
        return x.sum_dim(1);
    }
    let blocks = n.div_ceil(BLOCK);
    let pad = blocks * BLOCK - n;
    let x = if pad > 0 {
        let zeros = Tensor::<2>::zeros([rows, pad], &x.device());
        Tensor::cat(vec![x, zeros], 1)
    } else {
        x
    };
    x.reshape([rows, blocks, BLOCK])
        .sum_dim(2)
        .sum_dim(1)
        .reshape([rows, 1])
}

/// [`target_log_softmax`] of one logit chunk; untracked logits on the host CPU go through
/// [`super::host_softmax`] instead (one read of the block for the maximum, one for the sum, a
/// vectorised `exp`), its tensor-op twin being [`target_log_softmax`].
fn chunk_target_log_softmax(logits: Tensor<2>, tgt: Tensor<2, Int>, targets: &[i64]) -> Tensor<2> {
    let device = logits.device();
    if logits.is_tracked() || !crate::compute::is_host_cpu(&device) {
        return target_log_softmax(logits, tgt);
    }
    let [rows, vocab] = logits.dims();
    match logits.clone().into_data().try_to_vec::<f32>() {
        Ok(values) => {
            let logp = super::host_softmax::target_log_softmax_rows(&values, vocab, targets);
            Tensor::<2>::from_data(TensorData::new(logp, [rows, 1]), &device)
        }
        Err(_) => target_log_softmax(logits, tgt),
    }
}

/// `log_softmax(logits)[target]` for each row: `[rows, vocab]`, `[rows, 1]` → `[rows, 1]`.
///
/// Written out rather than calling burn's `log_softmax`: on burn-flex that loses ~1e-4 over a
/// 49k vocabulary. The exponentials are summed in blocks of 1024 and then across blocks, which
/// keeps the f32 rounding error of the sum near that of a pairwise sum.
///
/// The shift by the row maximum is detached: log-softmax does not depend on it, so under
/// autodiff its gradient would only add a scatter that cancels out.
///
/// Under autodiff (`logits` tracked) the value is the same but the gradient is formed here, see
/// [`tracked_target_log_softmax`].
pub fn target_log_softmax(logits: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<2> {
    if logits.is_tracked() {
        return tracked_target_log_softmax(logits, targets);
    }
    let max = logits.clone().max_dim(1).detach();
    let shifted = logits - max;
    let target = shifted.clone().gather(1, targets);
    target - blocked_row_sum(shifted.exp()).log()
}

/// [`target_log_softmax`] of tracked logits, its gradient built in the forward pass. The values
/// are computed off the graph by the same operations as the untracked form; the graph gets only
/// `s = Σ_v logits·(p − onehot(target))` with the softmax `p` a constant, entering as
/// `value + (s.detach() − s)`: the value is unchanged and the gradient with respect to the logits
/// is `onehot − p`, log-softmax's own. Written by hand, the backward pass would recompute every
/// `exp` of the `[rows, vocab]` block (burn's `exp` keeps its input, not its output) and run the
/// gather, max, log and sum nodes; here it is one multiply and one broadcast.
fn tracked_target_log_softmax(logits: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<2> {
    let values = logits.clone().inner();
    let targets = targets.inner();
    let n = targets.dims()[0];
    let max = values.clone().max_dim(1);
    let shifted = values - max;
    let target = shifted.clone().gather(1, targets.clone());
    let exps = shifted.exp();
    let sums = blocked_row_sum(exps.clone());
    let value = target - sums.clone().log();
    let minus_one = Tensor::full([n, 1], -1.0, &value.device());
    let coef = (exps / sums).scatter(1, targets, minus_one, IndexingUpdateOp::Add);
    let s = (logits * Tensor::from_inner(coef)).sum_dim(1);
    Tensor::from_inner(value) + (s.clone().detach() - s)
}

/// Moves the coefficients to the device, checking them against the model and the batch.
pub(crate) fn device_point(
    model: &CausalLm,
    coeffs: &PathCoefficients,
    batch: usize,
) -> Result<PathPoint, ModelError> {
    if coeffs.lora.len() > model.lora_slots {
        return Err(ModelError::Input(format!(
            "{} LoRA coefficient rows for a model with {} adapter slots",
            coeffs.lora.len(),
            model.lora_slots
        )));
    }
    if let Some(bad) = coeffs
        .lora
        .iter()
        .chain(std::iter::once(&coeffs.dense))
        .flatten()
        .find(|c| !c.is_finite())
    {
        return Err(ModelError::Input(format!(
            "path coefficient {bad} is not finite"
        )));
    }
    let mut lora = Vec::with_capacity(model.lora_slots);
    for slot in 0..model.lora_slots {
        let values = match coeffs.lora.get(slot) {
            Some(v) if v.len() != batch => {
                return Err(ModelError::Input(format!(
                    "LoRA slot {slot}: {} coefficients for {batch} sequences",
                    v.len()
                )));
            }
            Some(v) => v.clone(),
            None => vec![0.0; batch],
        };
        lora.push(Tensor::<3>::from_data(
            TensorData::new(values, [batch, 1, 1]),
            &model.device,
        ));
    }
    if !(0.0..1.0).contains(&coeffs.lora_dropout) {
        return Err(ModelError::Input(format!(
            "LoRA dropout {} is not in [0, 1)",
            coeffs.lora_dropout
        )));
    }
    Ok(PathPoint {
        lora,
        dense: coeffs.dense.clone(),
        lora_dropout: coeffs.lora_dropout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{path_param::PathParam, row_blocks::RowBlocks};

    fn random(shape: [usize; 2], seed: u64, device: &burn::tensor::Device) -> Tensor<2> {
        let mut state = seed;
        let data = crate::test_fixtures::uniform(&mut state, shape[0] * shape[1], 4.0);
        Tensor::<2>::from_data(TensorData::new(data, shape), device)
    }

    #[test]
    fn streamed_head_equals_the_mixed_head_for_any_chunking() {
        let device = burn::tensor::Device::flex();
        let (vocab, hidden, n) = (100, 16, 9);
        let flat = random([n, hidden], 1, &device);
        let head = PathParam {
            base: random([vocab, hidden], 2, &device),
            deltas: vec![random([vocab, hidden], 3, &device)],
        };
        let coeffs = [0.7f32];
        let rows: Vec<i64> = (0..n as i64).rev().collect();
        let targets: Vec<i64> = (0..n as i64).map(|i| (i * 37 + 5) % vocab as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(rows.clone(), [n]), &device);
        let tgt = Tensor::<2, Int>::from_data(TensorData::new(targets.clone(), [n, 1]), &device);
        let logits = flat
            .clone()
            .select(0, idx)
            .matmul(head.value(&coeffs).transpose());
        let expected = to_vec(target_log_softmax(logits, tgt), &device).unwrap();
        // The head whole and in row blocks of 30 (the last one 10 rows).
        let split = |p: &PathParam<2>, r0: usize, len: usize| PathParam {
            base: p.base.clone().narrow(0, r0, len),
            deltas: p
                .deltas
                .iter()
                .map(|d| d.clone().narrow(0, r0, len))
                .collect(),
        };
        let heads = [
            RowBlocks::one(head.clone()),
            RowBlocks::new(
                [(0, 30), (30, 30), (60, 30), (90, 10)]
                    .iter()
                    .map(|&(r0, len)| split(&head, r0, len))
                    .collect(),
            ),
        ];
        for blocks in &heads {
            assert_eq!(blocks.rows(), vocab);
            for v_chunk in [1, 7, 33, 99, 100, 1000] {
                let got: Vec<f32> = streamed_target_logprobs(
                    &flat, blocks, &coeffs, &rows, &targets, v_chunk, &device,
                )
                .into_iter()
                .flat_map(|t| to_vec(t, &device).unwrap())
                .collect();
                assert_eq!(got.len(), n);
                for (g, e) in got.iter().zip(&expected) {
                    assert!(
                        (g - e).abs() < 1e-5,
                        "{} blocks, chunk {v_chunk}: {g} vs {e}",
                        blocks.block_count()
                    );
                }
            }
        }
    }

    #[test]
    fn host_streamed_head_equals_the_row_chunked_twin() {
        let device = burn::tensor::Device::flex();
        let (vocab, hidden, n) = (300, 8, 25);
        let flat = random([n, hidden], 4, &device);
        let head = random([vocab, hidden], 5, &device);
        let rows: Vec<i64> = (0..n as i64).map(|i| (i * 7) % n as i64).collect();
        let targets: Vec<i64> = (0..n as i64)
            .map(|i| (i * 113 + 1) % vocab as i64)
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(rows.clone(), [n]), &device);
        let tgt = Tensor::<2, Int>::from_data(TensorData::new(targets.clone(), [n, 1]), &device);
        let logits = flat.clone().select(0, idx).matmul(head.clone().transpose());
        let expected = to_vec(target_log_softmax(logits, tgt), &device).unwrap();
        let param = |w: Tensor<2>| PathParam {
            base: w,
            deltas: Vec::new(),
        };
        let heads = [
            RowBlocks::one(param(head.clone())),
            RowBlocks::new(vec![
                param(head.clone().narrow(0, 0, 128)),
                param(head.clone().narrow(0, 128, 172)),
            ]),
        ];
        for blocks in &heads {
            let head_t = blocks.transposed(&[]);
            // Row passes of 1, 10 and all rows; vocabulary chunks of 1 to all columns.
            for (max_rows, elements) in [(1, 1), (10, 70), (10, 3000), (n, 50 * n), (64, 1 << 20)] {
                let got =
                    host_streamed_logprobs(&flat, &head_t, &rows, &targets, max_rows, elements)
                        .map(|t| to_vec(t, &device).unwrap())
                        .expect("flex values read back");
                assert_eq!(got.len(), n);
                for (g, e) in got.iter().zip(&expected) {
                    assert!(
                        (g - e).abs() < 1e-5,
                        "{} blocks, {max_rows} rows, {elements} elements: {g} vs {e}",
                        blocks.block_count()
                    );
                }
            }
        }
    }

    /// The plain form under autodiff: burn differentiates the written-out ops.
    fn plain_target_log_softmax(logits: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<2> {
        let max = logits.clone().max_dim(1).detach();
        let shifted = logits - max;
        let target = shifted.clone().gather(1, targets);
        target - blocked_row_sum(shifted.exp()).log()
    }

    #[test]
    fn tracked_log_softmax_has_the_plain_forms_values_and_gradients() {
        let gpu = crate::compute::ComputeDevice::new(crate::compute::ComputeKind::Gpu)
            .expect("the wgpu tests need an adapter (lavapipe is enough)")
            .device;
        // 1500 columns: two blocks of the blocked sum; a weighted sum downstream, as a loss.
        for device in [burn::tensor::Device::flex(), gpu] {
            let (n, vocab) = (6, 1500);
            let base = random([n, vocab], 7, &device);
            let targets: Vec<i64> = (0..n as i64)
                .map(|i| (i * 611 + 3) % vocab as i64)
                .collect();
            let tgt =
                || Tensor::<2, Int>::from_data(TensorData::new(targets.clone(), [n, 1]), &device);
            let weights = Tensor::<2>::from_data(
                TensorData::new(vec![1.0f32, 0.5, 2.0, 0.0, 1.0, 3.0], [n, 1]),
                &device,
            );
            let run = |tracked: bool| {
                let logits = Tensor::<2>::from_data(base.to_data(), &device.clone().autodiff())
                    .require_grad();
                let logp = if tracked {
                    target_log_softmax(logits.clone(), Tensor::from_inner(tgt()))
                } else {
                    plain_target_log_softmax(logits.clone(), Tensor::from_inner(tgt()))
                };
                let loss = (logp.clone() * Tensor::from_inner(weights.clone())).sum();
                let grads = loss.backward();
                let grad = logits.grad(&grads).expect("the logits are a leaf");
                (
                    to_vec(logp.inner(), &device).unwrap(),
                    to_vec(grad, &device).unwrap(),
                )
            };
            let (value, grad) = run(true);
            let (want_value, want_grad) = run(false);
            assert_eq!(value, want_value, "{device:?}");
            let scale = want_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
            for (g, w) in grad.iter().zip(&want_grad) {
                assert!((g - w).abs() <= 1e-6 * scale, "{device:?}: {g} vs {w}");
            }
            // The gradient of a target entry is weight·(1 − p), of any other −weight·p.
            assert!(grad[targets[0] as usize] > 0.0 && grad[targets[0] as usize + 1] < 0.0);
        }
    }
}
