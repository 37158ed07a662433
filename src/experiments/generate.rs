//! Generation at a point of a path: what the model writes at θ(t). Prompts are decoded in
//! batches with a KV cache ([`crate::model::decode`]), greedily or by sampling with
//! transformers' definitions of temperature and top-p, until an end-of-turn token or a length
//! limit. Each row draws from its own random stream, derived from the seed, the prompt's id and
//! the sample's index, so the same seed gives the same samples whatever the batch size.

use serde::{Deserialize, Serialize};

use super::{
    eval::PathPointSpec,
    job::{CancelFlag, Progress},
};
use crate::{
    data::rng::SplitMix64,
    model::{error::ModelError, path_param::PathCoefficients, transformer::CausalLm},
};

/// Schema tag of each line [`Generated`] writes.
pub const GENERATE_SCHEMA: &str = "basin.generate.v1";

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sampling {
    /// The most likely token (the first one on a tie, as `torch.argmax`).
    Greedy,
    /// A draw from softmax(logits / temperature), restricted to the top-p nucleus.
    Sample { temperature: f32, top_p: f32 },
}

impl Sampling {
    /// Checks the settings (temperature > 0, 0 < top-p ≤ 1).
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Sampling::Greedy => Ok(()),
            Sampling::Sample { temperature, top_p } => {
                if !(temperature.is_finite() && temperature > 0.0) {
                    return Err(format!(
                        "temperature {temperature}: must be above 0 (use --greedy for the most likely token)"
                    ));
                }
                if !(top_p > 0.0 && top_p <= 1.0) {
                    return Err(format!("top-p {top_p}: must be in (0, 1]"));
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSpec {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Samples per prompt.
    pub samples: usize,
    pub seed: u64,
    /// Rows (prompt × sample) decoded together.
    pub batch: usize,
    /// Where on the model's path (one coefficient per LoRA slot, the dense coefficients).
    pub point: PathPointSpec,
    /// Token ids that end a row (kept in its output).
    pub stop_ids: Vec<u32>,
}

/// One prompt, tokenised.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub id: String,
    pub ids: Vec<u32>,
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It wrote a stop token.
    Stop,
    /// It reached the new-token limit.
    Length,
}

/// What one row wrote (the text is added by the caller, who holds the tokenizer).
#[derive(Debug, Clone, PartialEq)]
pub struct RowOutput {
    pub prompt: usize,
    pub sample: usize,
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
}

/// One line of a generation file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    pub id: String,
    pub sample: usize,
    /// The path coordinate (absent for a plain model or adapter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t: Option<f64>,
    pub text: String,
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub n_tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Spec(String),
    #[error("cancelled after {done} of {total} rows")]
    Cancelled { done: usize, total: usize },
}

/// Generates `spec.samples` continuations of every prompt; `on_batch` sees each batch's rows as
/// soon as the batch ends (in prompt, then sample order).
pub fn generate(
    model: &CausalLm,
    prompts: &[Prompt],
    spec: &GenerateSpec,
    on_batch: &mut dyn FnMut(&[RowOutput]) -> Result<(), GenerateError>,
    progress: &dyn Fn(Progress),
    cancel: &CancelFlag,
) -> Result<usize, GenerateError> {
    spec.sampling.check().map_err(GenerateError::Spec)?;
    if spec.batch == 0 || spec.samples == 0 {
        return Err(GenerateError::Spec(
            "batch and samples must be at least 1".into(),
        ));
    }
    let rows: Vec<(usize, usize)> = (0..prompts.len())
        .flat_map(|p| (0..spec.samples).map(move |s| (p, s)))
        .collect();
    let total = rows.len();
    let vocab = model.config.vocab_size;
    let mut done = 0;
    for chunk in rows.chunks(spec.batch) {
        if cancel.is_cancelled() {
            return Err(GenerateError::Cancelled { done, total });
        }
        let batch_prompts: Vec<Vec<u32>> =
            chunk.iter().map(|&(p, _)| prompts[p].ids.clone()).collect();
        let mut rngs: Vec<SplitMix64> = chunk
            .iter()
            .map(|&(p, s)| SplitMix64::derive(spec.seed, &format!("{}/{s}", prompts[p].id)))
            .collect();
        let coeffs: PathCoefficients = spec.point.for_batch(chunk.len());
        let (mut state, mut logits) = model.start_decoding(&batch_prompts, &coeffs)?;
        let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); chunk.len()];
        let mut finished: Vec<Option<FinishReason>> = vec![None; chunk.len()];
        // The chunk's rows still being decoded, in the state's row order: a finished row
        // leaves the batch, so it costs nothing more.
        let mut active: Vec<usize> = (0..chunk.len()).collect();
        for step in 0..spec.max_new_tokens {
            if cancel.is_cancelled() {
                return Err(GenerateError::Cancelled { done, total });
            }
            for (&r, row_logits) in active.iter().zip(logits.chunks(vocab)) {
                let token = choose(row_logits, spec.sampling, &mut rngs[r]);
                outputs[r].push(token);
                if spec.stop_ids.contains(&token) {
                    finished[r] = Some(FinishReason::Stop);
                } else if outputs[r].len() == spec.max_new_tokens {
                    finished[r] = Some(FinishReason::Length);
                }
            }
            progress(Progress {
                done,
                total,
                stage: format!("token {}/{}", step + 1, spec.max_new_tokens),
            });
            let still: Vec<usize> = (0..active.len())
                .filter(|&i| finished[active[i]].is_none())
                .collect();
            if still.is_empty() {
                break;
            }
            if still.len() < active.len() {
                state.keep_rows(&still)?;
                active = still.iter().map(|&i| active[i]).collect();
            }
            let next: Vec<u32> = active
                .iter()
                .map(|&r| outputs[r].last().copied().unwrap_or(0))
                .collect();
            logits = model.decode_next(&mut state, &next)?;
        }
        let batch_out: Vec<RowOutput> = chunk
            .iter()
            .zip(outputs)
            .zip(finished)
            .map(|((&(prompt, sample), token_ids), f)| RowOutput {
                prompt,
                sample,
                token_ids,
                finish_reason: f.unwrap_or(FinishReason::Length),
            })
            .collect();
        on_batch(&batch_out)?;
        done += chunk.len();
        progress(Progress {
            done,
            total,
            stage: "generating".into(),
        });
    }
    Ok(done)
}

/// The next token from one row's logits.
pub fn choose(logits: &[f32], sampling: Sampling, rng: &mut SplitMix64) -> u32 {
    match sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::Sample { temperature, top_p } => {
            let probs = nucleus_probs(logits, temperature, top_p);
            let u = rng.next_f64();
            let mut acc = 0.0f64;
            let mut last = 0;
            for (i, &p) in probs.iter().enumerate() {
                if p > 0.0 {
                    acc += p;
                    last = i;
                    if u < acc {
                        return i as u32;
                    }
                }
            }
            last as u32
        }
    }
}

/// Index of the largest value; the first one on a tie (NaN never wins).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best as u32
}

/// The distribution a sample is drawn from, as transformers' `TemperatureLogitsWarper` then
/// `TopPLogitsWarper` leave it: softmax(logits / T), with the tokens whose cumulative
/// probability, summed from the least likely up, stays at or below 1 − top_p removed (the most
/// likely token always stays), renormalised. In f64.
pub fn nucleus_probs(logits: &[f32], temperature: f32, top_p: f32) -> Vec<f64> {
    let t = f64::from(temperature);
    let scaled: Vec<f64> = logits.iter().map(|&l| f64::from(l) / t).collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<f64> = scaled.iter().map(|&s| (s - max).exp()).collect();
    let sum: f64 = probs.iter().sum();
    for p in &mut probs {
        *p /= sum;
    }
    if top_p < 1.0 {
        let mut order: Vec<usize> = (0..probs.len()).collect();
        // Ascending, ties in index order (torch.sort is stable here).
        order.sort_by(|&a, &b| probs[a].total_cmp(&probs[b]).then(a.cmp(&b)));
        let cut = 1.0 - f64::from(top_p);
        let mut cumulative = 0.0;
        for &i in &order[..order.len().saturating_sub(1)] {
            cumulative += probs[i];
            if cumulative <= cut {
                probs[i] = 0.0;
            } else {
                break;
            }
        }
        let kept: f64 = probs.iter().sum();
        for p in &mut probs {
            *p /= kept;
        }
    }
    probs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum_and_top_p_keeps_the_nucleus() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        // probs ∝ e^{l}: with top-p 0.7 the tokens below the cut go.
        let logits = [0.0f32, 1.0, 2.0, 3.0];
        let full = nucleus_probs(&logits, 1.0, 1.0);
        assert!((full.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // ascending probs 0.032, 0.087, 0.237, 0.644: cumulative 0.032, 0.119 ≤ 0.3 go, 0.356 stays
        let p = nucleus_probs(&logits, 1.0, 0.7);
        assert_eq!(p[0], 0.0);
        assert_eq!(p[1], 0.0);
        assert!(p[2] > 0.0 && p[3] > 0.0);
        assert!((p[2] + p[3] - 1.0).abs() < 1e-12);
        // A tiny top-p keeps only the most likely token.
        let p = nucleus_probs(&logits, 1.0, 1e-6);
        assert_eq!(p, vec![0.0, 0.0, 0.0, 1.0]);
        // Temperature sharpens.
        let cold = nucleus_probs(&logits, 0.5, 1.0);
        assert!(cold[3] > full[3]);
        assert!(
            Sampling::Sample {
                temperature: 0.0,
                top_p: 1.0
            }
            .check()
            .is_err()
        );
        assert!(
            Sampling::Sample {
                temperature: 1.0,
                top_p: 0.0
            }
            .check()
            .is_err()
        );
        assert!(
            Sampling::Sample {
                temperature: 1.0,
                top_p: 1.5
            }
            .check()
            .is_err()
        );
    }

    /// Sampled tokens follow the distribution: 200k draws from a 5-token softmax, every
    /// frequency within 4.5 standard errors of its probability (a chance failure ~1e-5).
    #[test]
    fn sampled_frequencies_match_the_softmax() {
        let logits = [0.3f32, -1.0, 1.2, 0.0, 2.0];
        for (temperature, top_p) in [(1.0f32, 1.0f32), (0.7, 1.0), (1.3, 0.8)] {
            let probs = nucleus_probs(&logits, temperature, top_p);
            let mut rng = SplitMix64::new(11);
            let n = 200_000;
            let mut counts = [0usize; 5];
            for _ in 0..n {
                counts[choose(&logits, Sampling::Sample { temperature, top_p }, &mut rng)
                    as usize] += 1;
            }
            for (k, &c) in counts.iter().enumerate() {
                let f = c as f64 / n as f64;
                let se = (probs[k] * (1.0 - probs[k]) / n as f64).sqrt().max(1e-9);
                assert!(
                    (f - probs[k]).abs() <= 4.5 * se,
                    "T {temperature} top-p {top_p} token {k}: frequency {f} vs p {}",
                    probs[k]
                );
                if probs[k] == 0.0 {
                    assert_eq!(c, 0, "a token outside the nucleus was drawn");
                }
            }
        }
    }
}
