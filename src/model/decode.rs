//! Incremental decoding: a batch of prompts goes through the decoder stack once (prefill), then
//! each step feeds one token per row, attending to every earlier key and value kept per layer
//! (a KV cache), so a prefix is never recomputed.
//!
//! Prompts of different lengths are left-padded: every row's last prompt token sits in the last
//! column, each real token has its position in its own sequence, and no real token attends to
//! padding (a padding token sees only itself, so no softmax row is empty). The same model object
//! runs at any path point ([`PathCoefficients`]: LoRA slots with per-row coefficients, dense
//! deltas), on any backend.

use burn::tensor::{Int, Tensor, TensorData};

use super::{
    error::ModelError,
    logprobs::device_point,
    path_param::{PathCoefficients, PathPoint},
    rope::RopeTables,
    transformer::{CausalLm, LayerKv},
};

/// A batch being decoded: the cache, each row's padding and the point on the path.
#[derive(Debug, Clone)]
pub struct DecodeState {
    cache: Vec<LayerKv>,
    /// Left padding of each row (its first real token's column).
    pad: Vec<usize>,
    /// Columns cached so far (padding included).
    len: usize,
    point: PathPoint,
    /// The output projection at the point, transposed, per row block: `[hidden, vocab_b]`.
    head_t: Vec<(usize, Tensor<2>)>,
    device: burn::tensor::Device,
}

impl DecodeState {
    /// Rows in the batch.
    pub fn batch(&self) -> usize {
        self.pad.len()
    }

    /// Tokens each row has seen (its prompt and what was fed since).
    pub fn row_len(&self, row: usize) -> usize {
        self.len - self.pad[row]
    }

    /// Keeps only rows `keep` (in that order), e.g. to stop computing rows that have finished.
    pub fn keep_rows(&mut self, keep: &[usize]) -> Result<(), ModelError> {
        if keep.is_empty() || keep.iter().any(|&r| r >= self.batch()) {
            return Err(ModelError::Input(format!(
                "rows {keep:?} of a batch of {}",
                self.batch()
            )));
        }
        if keep.len() == self.batch() && keep.iter().enumerate().all(|(i, &r)| i == r) {
            return Ok(());
        }
        let device = self.device.clone();
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(keep.iter().map(|&r| r as i64).collect(), [keep.len()]),
            &device,
        );
        for (k, v) in self.cache.iter_mut().flatten() {
            *k = k.clone().select(0, idx.clone());
            *v = v.clone().select(0, idx.clone());
        }
        for c in &mut self.point.lora {
            *c = c.clone().select(0, idx.clone());
        }
        self.pad = keep.iter().map(|&r| self.pad[r]).collect();
        Ok(())
    }
}

impl CausalLm {
    /// Runs the prompts (token ids, each non-empty) at the point `coeffs` (one LoRA coefficient
    /// per row) and returns the state to continue from and each row's next-token logits,
    /// `[rows × vocab]` row-major.
    pub fn start_decoding(
        &self,
        prompts: &[Vec<u32>],
        coeffs: &PathCoefficients,
    ) -> Result<(DecodeState, Vec<f32>), ModelError> {
        let batch = prompts.len();
        if batch == 0 {
            return Err(ModelError::Input("no prompt to decode".into()));
        }
        if prompts.iter().any(Vec::is_empty) {
            return Err(ModelError::Input(
                "an empty prompt (no token to start from)".into(),
            ));
        }
        let vocab = self.config.vocab_size;
        if let Some(bad) = prompts.iter().flatten().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        let seq = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let pad: Vec<usize> = prompts.iter().map(|p| seq - p.len()).collect();
        let mut ids = Vec::with_capacity(batch * seq);
        let mut positions = Vec::with_capacity(batch * seq);
        let mut masked = Vec::with_capacity(batch * seq * seq);
        let window = self.config.sliding_window;
        for (prompt, &p) in prompts.iter().zip(&pad) {
            // Padding repeats the first token; its outputs are never read.
            ids.extend(std::iter::repeat_n(prompt[0] as i64, p));
            ids.extend(prompt.iter().map(|&t| t as i64));
            let pos = |col: usize| col.saturating_sub(p);
            positions.extend((0..seq).map(|c| pos(c) as u32));
            for i in 0..seq {
                for j in 0..seq {
                    let hidden = if i < p {
                        j != i
                    } else {
                        j > i || j < p || window.is_some_and(|w| pos(i) - pos(j) >= w)
                    };
                    masked.push(hidden);
                }
            }
        }
        let point = device_point(self, coeffs, batch)?;
        let head_t = self.output_param().transposed(&point.dense);
        let mut state = DecodeState {
            cache: vec![None; self.layers.len()],
            pad,
            len: 0,
            point,
            head_t,
            device: self.device.clone(),
        };
        let logits = self.decode_columns(&mut state, ids, positions, masked, seq)?;
        Ok((state, logits))
    }

    /// Feeds one token per row and returns each row's next-token logits (`[rows × vocab]`).
    pub fn decode_next(
        &self,
        state: &mut DecodeState,
        tokens: &[u32],
    ) -> Result<Vec<f32>, ModelError> {
        let batch = state.batch();
        if tokens.len() != batch {
            return Err(ModelError::Input(format!(
                "{} tokens for a batch of {batch} rows",
                tokens.len()
            )));
        }
        let vocab = self.config.vocab_size;
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        let total = state.len + 1;
        let window = self.config.sliding_window;
        let mut positions = Vec::with_capacity(batch);
        let mut masked = Vec::with_capacity(batch * total);
        for &p in &state.pad {
            let here = state.len - p;
            positions.push(here as u32);
            for j in 0..total {
                masked.push(j < p || window.is_some_and(|w| here - (j - p) >= w));
            }
        }
        let ids = tokens.iter().map(|&t| t as i64).collect();
        self.decode_columns(state, ids, positions, masked, 1)
    }

    /// Runs `cols` new columns of every row through the stack with the cache, appends them to
    /// it and returns the last column's logits.
    fn decode_columns(
        &self,
        state: &mut DecodeState,
        ids: Vec<i64>,
        positions: Vec<u32>,
        masked: Vec<bool>,
        cols: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let batch = state.batch();
        let total = state.len + cols;
        let device = &self.device;
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, cols]), device);
        let rope = RopeTables::at_positions(&self.config, &positions, batch, cols, device);
        let mask = super::transformer::AttnMask::per_row(
            masked,
            [batch, cols, total],
            self.config.num_attention_heads,
            device,
        );
        let hidden = self.forward_hidden(
            input,
            &rope,
            Some(mask),
            &state.point,
            Some(&mut state.cache),
        );
        state.len = total;
        let hidden_size = self.config.hidden_size;
        let last = hidden.narrow(1, cols - 1, 1).reshape([batch, hidden_size]);
        let logits = super::row_blocks::blocked_logits(last, &state.head_t);
        let failed = |msg: String| ModelError::Device {
            device: format!("{:?}", self.device),
            msg: format!("reading logits back: {msg}"),
        };
        logits
            .try_into_data()
            .map_err(|e| failed(format!("{e}")))?
            .try_to_vec::<f32>()
            .map_err(|e| failed(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{open::open_model, peft::LoraAdapter};
    use burn::tensor::Device;

    fn fixture(path: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path)
    }

    /// Next-token logits of one unpadded sequence by the full forward (no cache).
    fn full_logits(model: &CausalLm, ids: &[u32], coeffs: &PathCoefficients) -> Vec<f32> {
        let seq = ids.len();
        let input = Tensor::<2, Int>::from_data(
            TensorData::new(ids.iter().map(|&t| t as i64).collect(), [1, seq]),
            &model.device,
        );
        let point = device_point(model, &coeffs.rows(0..1), 1).unwrap();
        let h = model.hidden_states(input, &point);
        let last = h
            .narrow(1, seq - 1, 1)
            .reshape([1, model.config.hidden_size]);
        let head = model.output_param().transposed(&point.dense);
        super::super::row_blocks::blocked_logits(last, &head)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// Left-padded, cached decoding gives every row the logits the plain forward gives it
    /// alone: llama with a LoRA at per-row scales, qwen3 (grouped-query, q/k norms) and mistral
    /// with a sliding window shorter than the sequences.
    #[test]
    fn cached_decoding_equals_the_full_forward_of_each_row() {
        let device = Device::flex();
        let cases = [
            ("tiny/llama", Some("tiny/llama_lora")),
            ("tiny/qwen3", None),
            ("tiny_sliding/mistral_window6", None),
        ];
        for (model_dir, lora) in cases {
            let opened = open_model(&fixture(model_dir)).unwrap();
            let adapter = lora.map(|l| LoraAdapter::open(fixture(l)).unwrap());
            let model = CausalLm::load(
                &opened.config,
                opened.tensors.as_ref(),
                adapter.as_ref(),
                &device,
            )
            .unwrap();
            let vocab = model.config.vocab_size as u32;
            let prompts: Vec<Vec<u32>> = [3usize, 9, 1, 6]
                .iter()
                .enumerate()
                .map(|(r, &n)| {
                    (0..n as u32)
                        .map(|i| (i * 7 + r as u32 * 13 + 5) % vocab)
                        .collect()
                })
                .collect();
            let scales = [0.0f32, 0.5, 1.0, -0.7];
            let coeffs = PathCoefficients {
                lora: if adapter.is_some() {
                    vec![scales.to_vec()]
                } else {
                    vec![]
                },
                ..Default::default()
            };
            let (mut state, mut logits) = model.start_decoding(&prompts, &coeffs).unwrap();
            let mut seqs = prompts.clone();
            for step in 0..12 {
                let v = vocab as usize;
                for (r, seq) in seqs.iter().enumerate() {
                    let row_coeffs = coeffs.rows(r..r + 1);
                    let want = full_logits(&model, seq, &row_coeffs);
                    let got = &logits[r * v..(r + 1) * v];
                    let worst = want
                        .iter()
                        .zip(got)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0f32, f32::max);
                    assert!(
                        worst < 2e-4,
                        "{model_dir} row {r} step {step}: cached logits differ by {worst}"
                    );
                    assert_eq!(state.row_len(r), seq.len());
                }
                let next: Vec<u32> = (0..seqs.len())
                    .map(|r| ((step * 11 + r * 3 + 1) as u32) % vocab)
                    .collect();
                for (seq, &t) in seqs.iter_mut().zip(&next) {
                    seq.push(t);
                }
                logits = model.decode_next(&mut state, &next).unwrap();
            }
            assert!(
                model.decode_next(&mut state, &[1]).is_err(),
                "wrong batch size"
            );
            assert!(
                model.decode_next(&mut state, &[vocab; 4]).is_err(),
                "token outside vocab"
            );
        }
        let opened = open_model(&fixture("tiny/llama")).unwrap();
        let model = CausalLm::load(&opened.config, opened.tensors.as_ref(), None, &device).unwrap();
        let none = PathCoefficients::default();
        assert!(model.start_decoding(&[], &none).is_err());
        assert!(model.start_decoding(&[vec![]], &none).is_err());
    }
}
