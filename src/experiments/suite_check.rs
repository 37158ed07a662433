//! `basin suite check`: is each metric of a suite able to show a change at a given model?
//!
//! Per metric: the value with its CI under every scoring form ([`Scoring`]), a floor / ceiling
//! flag when the declared form's CI touches 0.05 / 0.95 (probabilities and accuracies), and the
//! Spearman correlation over items between an item's margin (declared form) and how much longer,
//! in tokens, the preferred-by-the-metric response is than the other(s): |ρ| > 0.3 flags a length
//! confound. A one-line verdict sums it up.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    eval::{EvalError, EvalSpec, ExampleScore, PathPointSpec, evaluate},
    inputs::{chat_template_of, encode_examples},
    job::{CancelFlag, Progress},
    metrics::{MissingScore, compute_metric_as},
    suite::{MetricKind, Scoring, Suite, SuiteError},
};
use crate::{
    checkpoint::{error::CheckpointError, open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind, GpuUnavailable},
    model::{error::ModelError, transformer::CausalLm},
    text::error::TextError,
};

pub const SUITE_CHECK_SCHEMA: &str = "basin.suite_check.v1";
/// A probability metric whose CI reaches this close to 0 or 1 cannot show a change that way.
pub const FLOOR: f64 = 0.05;
pub const CEILING: f64 = 0.95;
/// |Spearman ρ| above this between item margins and length differences flags a confound.
pub const LENGTH_RHO_LIMIT: f64 = 0.3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormValue {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCheck {
    pub name: String,
    pub kind: String,
    /// The declared scoring form (absent for instruction metrics).
    pub score: Option<String>,
    pub n: usize,
    /// Value under each form (`sum`, `per_token`, `per_byte`; `nll` for instruction metrics).
    pub forms: BTreeMap<String, FormValue>,
    pub floor: bool,
    pub ceiling: bool,
    /// Spearman ρ between item margins and length differences (tokens); `None` when undefined.
    pub length_rho: Option<f64>,
    pub length_confound: bool,
    pub verdict: String,
}

/// What to check: a suite at one model (optionally with a LoRA adapter at scale 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteCheckRequest {
    pub model: PathBuf,
    pub adapter: Option<PathBuf>,
    pub suite: PathBuf,
    pub device: ComputeKind,
    pub batch: usize,
    pub bootstrap: usize,
    pub seed: u64,
    pub max_tokens: usize,
}

impl SuiteCheckRequest {
    /// The CLI's defaults for everything but the inputs.
    pub fn new(model: PathBuf, suite: PathBuf) -> Self {
        Self {
            model,
            adapter: None,
            suite,
            device: ComputeKind::Cpu,
            batch: 8,
            bootstrap: 1000,
            seed: 0,
            max_tokens: 8192,
        }
    }
}

/// The JSON `basin suite check` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteCheckReport {
    pub schema: String,
    pub model: String,
    pub adapter: Option<String>,
    pub suite: String,
    pub device: String,
    pub metrics: Vec<MetricCheck>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteCheckError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Suite(#[from] SuiteError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{}: {source}", suite.display())]
    Text {
        suite: PathBuf,
        #[source]
        source: TextError,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Metric(#[from] MissingScore),
    #[error(transparent)]
    Gpu(#[from] GpuUnavailable),
}

/// Scores the suite at the model and checks every metric: the one entry point of the CLI's
/// `basin suite check` and the app's Data panel.
pub fn run_suite_check(
    req: &SuiteCheckRequest,
    progress: &dyn Fn(Progress),
    cancel: &CancelFlag,
) -> Result<SuiteCheckReport, SuiteCheckError> {
    if req.batch == 0 {
        return Err(SuiteCheckError::Input("--batch must be at least 1".into()));
    }
    let suite = Suite::load(&req.suite)?;
    let compute = ComputeDevice::new(req.device)?;
    let opened = open_model(&req.model)?;
    let adapter = match &req.adapter {
        Some(path) => Some(LoraAdapter::open_for(
            path,
            opened.tensors.as_ref(),
            &opened.config,
        )?),
        None => None,
    };
    let text_err = |source| SuiteCheckError::Text {
        suite: req.suite.clone(),
        source,
    };
    let template = chat_template_of(&opened.tokenizer).map_err(text_err)?;
    let items = encode_examples(
        &opened.tokenizer,
        &template,
        &suite.requests(),
        req.max_tokens,
    )
    .map_err(text_err)?;
    let model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        adapter.as_ref(),
        &compute.device,
    )?;
    drop(opened);
    let spec = EvalSpec {
        batch_size: req.batch,
        point: PathPointSpec {
            lora: adapter.iter().map(|_| 1.0).collect(),
            dense: Vec::new(),
        },
        keep_token_logprobs: false,
    };
    let scores = evaluate(&model, &items, &spec, progress, cancel)?;
    let by_id: HashMap<&str, &ExampleScore> =
        scores.examples.iter().map(|s| (s.id.as_str(), s)).collect();
    Ok(SuiteCheckReport {
        schema: SUITE_CHECK_SCHEMA.into(),
        model: req.model.display().to_string(),
        adapter: req.adapter.as_ref().map(|p| p.display().to_string()),
        suite: req.suite.display().to_string(),
        device: compute.label,
        metrics: check_suite(&suite, &by_id, req.bootstrap, req.seed)?,
    })
}

/// Ranks with ties sharing their average rank (1-based).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (Pearson on average ranks); `None` with fewer than 3 pairs or a
/// constant side.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

/// Checks every metric of `suite` from the scores of its requests at one model.
pub fn check_suite(
    suite: &Suite,
    scores: &HashMap<&str, &ExampleScore>,
    samples: usize,
    seed: u64,
) -> Result<Vec<MetricCheck>, MissingScore> {
    let mut out = Vec::with_capacity(suite.metrics.len());
    for metric in &suite.metrics {
        if metric.kind == MetricKind::Generated {
            // Its answers are sampled at each point of a sweep; nothing teacher-forced to check.
            out.push(MetricCheck {
                name: metric.name.clone(),
                kind: metric.kind.as_str().into(),
                score: None,
                n: metric.items.len(),
                forms: BTreeMap::new(),
                floor: false,
                ceiling: false,
                length_rho: None,
                length_confound: false,
                verdict: "not checked (generated: answers are sampled during a sweep)".into(),
            });
            continue;
        }
        let declared = compute_metric_as(metric, metric.score, 0.0, scores, samples, seed)?;
        let mut forms = BTreeMap::new();
        let Some(form) = metric
            .score
            .filter(|_| metric.kind != MetricKind::Instruction)
        else {
            forms.insert(
                "nll".to_string(),
                FormValue {
                    value: declared.value,
                    ci_low: declared.ci_low,
                    ci_high: declared.ci_high,
                },
            );
            out.push(MetricCheck {
                name: metric.name.clone(),
                kind: metric.kind.as_str().into(),
                score: None,
                n: declared.n,
                forms,
                floor: false,
                ceiling: false,
                length_rho: None,
                length_confound: false,
                verdict: "ok (a loss: no floor, ceiling or length check)".into(),
            });
            continue;
        };
        for f in Scoring::ALL {
            let r = compute_metric_as(metric, Some(f), 0.0, scores, samples, seed)?;
            forms.insert(
                f.as_str().to_string(),
                FormValue {
                    value: r.value,
                    ci_low: r.ci_low,
                    ci_high: r.ci_high,
                },
            );
        }
        let (mut margins, mut lengths) = (Vec::new(), Vec::new());
        for item in declared.extra["items"].as_array().into_iter().flatten() {
            if let (Some(m), Some(l)) = (
                item["margin"].as_f64().filter(|m| m.is_finite()),
                item["length_diff_tokens"].as_f64(),
            ) {
                margins.push(m);
                lengths.push(l);
            }
        }
        let rho = spearman(&margins, &lengths);
        let floor = declared.ci_low <= FLOOR;
        let ceiling = declared.ci_high >= CEILING;
        let confound = rho.is_some_and(|r| r.abs() > LENGTH_RHO_LIMIT);
        let mut problems = Vec::new();
        if floor {
            problems.push(format!("at the floor (CI reaches {:.3})", declared.ci_low));
        }
        if ceiling {
            problems.push(format!(
                "at the ceiling (CI reaches {:.3})",
                declared.ci_high
            ));
        }
        if let (true, Some(r)) = (confound, rho) {
            problems.push(format!("length-confounded (ρ = {r:.2})"));
        }
        let verdict = if problems.is_empty() {
            "ok".to_string()
        } else {
            problems.join("; ")
        };
        out.push(MetricCheck {
            name: metric.name.clone(),
            kind: metric.kind.as_str().into(),
            score: Some(form.as_str().into()),
            n: declared.n,
            forms,
            floor,
            ceiling,
            length_rho: rho,
            length_confound: confound,
            verdict,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_reversed_and_tied_data() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&x, &[10.0, 20.0, 30.0, 40.0, 50.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        // Monotone but not linear: still 1.
        assert!((spearman(&x, &[1.0, 8.0, 27.0, 64.0, 125.0]).unwrap() - 1.0).abs() < 1e-12);
        // Ties get average ranks: ranks of y = [1.5, 1.5, 3, 4, 5].
        let r = spearman(&x, &[0.0, 0.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((r - 0.9746794344808963).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&x, &[1.0; 5]), None);
        assert_eq!(spearman(&x[..2], &[1.0, 2.0]), None);
    }

    fn score(id: String, n: usize, sum: f64) -> ExampleScore {
        ExampleScore {
            id,
            n_tokens: n,
            sum_logprob: sum,
            mean_nll: -sum / n as f64,
            token_logprobs: None,
        }
    }

    /// Pairs where the hack is always the shorter response: under `sum` the hack wins in
    /// proportion to how much shorter it is (a pure length effect, flagged); per token the
    /// responses are equally likely (no confound, p = 0.5, no floor or ceiling).
    #[test]
    fn a_length_driven_metric_is_flagged_and_its_length_controlled_form_is_not() {
        use crate::experiments::suite::{Metric, MetricItems, PairedItem};
        use crate::text::dataset::ChatMessage;
        let n = 40;
        let items: Vec<PairedItem> = (0..n)
            .map(|i| PairedItem {
                id: format!("i{i}"),
                group: None,
                messages: vec![ChatMessage::new("user", "q")],
                hack: "h".repeat(1 + i % 5),
                honest: "o".repeat(10 + i % 7),
            })
            .collect();
        let mut scores = Vec::new();
        for (i, it) in items.iter().enumerate() {
            // Every token costs about -1.0 (a per-item factor, unrelated to length): the sum
            // favours the short hack; per token neither response is preferred.
            let (h, o) = (it.hack.len(), it.honest.len());
            let noise = ((i * 104_729) % 101) as f64 * 1e-3;
            scores.push(score(
                format!("m/{}/hack", it.id),
                h,
                -(h as f64) * (1.0 + noise),
            ));
            scores.push(score(format!("m/{}/honest", it.id), o, -(o as f64)));
        }
        let map: HashMap<&str, &ExampleScore> = scores.iter().map(|s| (s.id.as_str(), s)).collect();
        let suite_with = |form: Scoring| Suite {
            path: "s.toml".into(),
            name: "s".into(),
            version: 1,
            metrics: vec![Metric {
                name: "m".into(),
                kind: MetricKind::Paired,
                score: Some(form),
                file: "m.jsonl".into(),
                description: None,
                items: MetricItems::Paired(items.clone()),
            }],
        };
        let summed = &check_suite(&suite_with(Scoring::Sum), &map, 200, 1).unwrap()[0];
        assert!(summed.ceiling, "{summed:?}");
        assert!(summed.length_confound, "{summed:?}");
        assert!(summed.length_rho.unwrap() < -0.9, "{summed:?}");
        assert!(summed.verdict.contains("ceiling") && summed.verdict.contains("length"));
        let per_token = &check_suite(&suite_with(Scoring::PerToken), &map, 200, 1).unwrap()[0];
        assert!(!per_token.floor && !per_token.ceiling, "{per_token:?}");
        assert!(!per_token.length_confound, "{per_token:?}");
        assert_eq!(per_token.verdict, "ok");
        assert_eq!(per_token.forms.len(), 3);
        assert!((per_token.forms["per_token"].value - 0.5).abs() < 0.05);
        assert!(per_token.forms["sum"].value > 0.99);
    }
}
