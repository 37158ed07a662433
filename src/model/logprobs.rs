//! Teacher-forced log-probabilities of target tokens.
//!
//! Only the rows that predict a masked-in target go through the output projection, in chunks,
//! so a batch never materialises `[batch, seq, vocab]` logits (vocabularies reach 152k).

use burn::tensor::{Int, Tensor, TensorData};

use super::{
    error::ModelError,
    path_param::{PathCoefficients, PathPoint},
    transformer::CausalLm,
};

/// Upper bound on the logits materialised at once (elements): 8 M f32 = 32 MiB.
const MAX_LOGIT_ELEMENTS: usize = 8 * 1024 * 1024;

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
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let device = &model.device;
    let vocab = model.config.vocab_size;
    let seq_len = batch.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    if seq_len == 0 {
        return Err(ModelError::Input("empty sequence in batch".into()));
    }
    let mut ids = Vec::with_capacity(batch.len() * seq_len);
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut counts = Vec::with_capacity(batch.len());
    for (s, seq) in batch.iter().enumerate() {
        if seq.target_mask.len() != seq.input_ids.len() {
            return Err(ModelError::Input(format!(
                "sequence {s}: {} ids but {} mask entries",
                seq.input_ids.len(),
                seq.target_mask.len()
            )));
        }
        for &id in &seq.input_ids {
            if id as usize >= vocab {
                return Err(ModelError::Input(format!(
                    "token id {id} is outside the model's vocabulary of {vocab} (wrong tokenizer?)"
                )));
            }
            ids.push(id as i64);
        }
        ids.extend(std::iter::repeat_n(0i64, seq_len - seq.input_ids.len()));
        let mut count = 0;
        for i in 1..seq.input_ids.len() {
            if seq.target_mask[i] {
                rows.push((s * seq_len + i - 1) as i64);
                targets.push(seq.input_ids[i] as i64);
                count += 1;
            }
        }
        counts.push(count);
    }
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch.len(), seq_len]), device);
    let point = device_point(model, coeffs, batch.len())?;
    let hidden = model.hidden_states(input, &point);
    let hidden_size = model.config.hidden_size;
    let flat = hidden.reshape([batch.len() * seq_len, hidden_size]);
    let head_t = model.output_weight(&point).transpose();

    let chunk = (MAX_LOGIT_ELEMENTS / vocab.max(1)).max(1);
    let mut all = Vec::with_capacity(rows.len());
    for (row_chunk, target_chunk) in rows.chunks(chunk).zip(targets.chunks(chunk)) {
        let n = row_chunk.len();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(row_chunk.to_vec(), [n]), device);
        let tgt =
            Tensor::<2, Int>::from_data(TensorData::new(target_chunk.to_vec(), [n, 1]), device);
        let logits = flat.clone().select(0, idx).matmul(head_t.clone());
        let lp = target_log_softmax(logits, tgt);
        let values = lp
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Device {
                device: format!("{device:?}"),
                msg: format!("{e:?}"),
            })?;
        all.extend(values);
    }
    let mut out = Vec::with_capacity(batch.len());
    let mut offset = 0;
    for c in counts {
        out.push(all[offset..offset + c].to_vec());
        offset += c;
    }
    Ok(out)
}

/// `log_softmax(logits)[target]` for each row: `[rows, vocab]`, `[rows, 1]` → `[rows, 1]`.
///
/// Written out rather than calling burn's `log_softmax`: on burn-flex that loses ~1e-4 over a
/// 49k vocabulary. The exponentials are summed in blocks of 1024 and then across blocks, which
/// keeps the f32 rounding error of the sum near that of a pairwise sum.
pub fn target_log_softmax(logits: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [rows, vocab] = logits.dims();
    let max = logits.clone().max_dim(1);
    let shifted = logits - max;
    let target = shifted.clone().gather(1, targets);
    const BLOCK: usize = 1024;
    let exp = shifted.exp();
    let sum = if vocab > BLOCK {
        let blocks = vocab.div_ceil(BLOCK);
        let pad = blocks * BLOCK - vocab;
        let exp = if pad > 0 {
            let zeros = Tensor::<2>::zeros([rows, pad], &exp.device());
            Tensor::cat(vec![exp, zeros], 1)
        } else {
            exp
        };
        exp.reshape([rows, blocks, BLOCK])
            .sum_dim(2)
            .sum_dim(1)
            .reshape([rows, 1])
    } else {
        exp.sum_dim(1)
    };
    target - sum.log()
}

/// Moves the coefficients to the device, checking them against the model and the batch.
fn device_point(
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
    Ok(PathPoint {
        lora,
        dense: coeffs.dense.clone(),
    })
}
