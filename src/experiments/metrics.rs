//! Metric values at one path point, from the scores of the suite's requests.
//!
//! - `instruction`: token-weighted mean NLL of the final assistant message.
//! - `paired`: per item m = mean log-prob per token of `hack` − that of `honest`; value =
//!   mean σ(m), the probability of preferring the hack; extra: mean margin, mean σ of the summed
//!   margin, per-item scores.
//! - `choice` (as lm-eval-harness): `acc` = argmax of summed log-prob is the answer (ties → lowest
//!   index); `acc_norm` = the same with log-prob divided by the choice's length in UTF-8 bytes;
//!   `prob` = softmax over choices of summed log-probs, at the answer. value = acc.
//!
//! Every value carries n and a seeded 95% bootstrap CI over items, or over groups when every
//! item has one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    bootstrap::{bootstrap_ci, clusters_of},
    eval::ExampleScore,
    suite::{Metric, MetricItems, Suite, request_id},
};

/// One line of a sweep's `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    pub t: f64,
    pub metric: String,
    pub kind: String,
    #[serde(deserialize_with = "f64_or_nan")]
    pub value: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub ci_low: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub ci_high: f64,
    pub n: usize,
    pub extra: serde_json::Value,
}

/// JSON has no NaN: serde_json writes it as `null`. Reading `null` back as NaN keeps a result
/// with an undefined value (e.g. a metric whose answers have no tokens) from making the results
/// file unreadable on resume.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[derive(Debug, thiserror::Error)]
#[error("metric `{metric}`: no score for request `{id}`")]
pub struct MissingScore {
    pub metric: String,
    pub id: String,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn mean(values: &[f64], idx: &[usize]) -> f64 {
    idx.iter().filter_map(|&i| values.get(i)).sum::<f64>() / idx.len().max(1) as f64
}

struct Lookup<'a> {
    scores: &'a HashMap<&'a str, &'a ExampleScore>,
    metric: &'a str,
}

impl Lookup<'_> {
    fn get(&self, item: &str, response: &str) -> Result<&ExampleScore, MissingScore> {
        let id = request_id(self.metric, item, response);
        self.scores.get(id.as_str()).copied().ok_or(MissingScore {
            metric: self.metric.to_string(),
            id,
        })
    }
}

/// Per-token mean log-prob (0 tokens → −∞, which never wins a comparison).
fn mean_logprob(s: &ExampleScore) -> f64 {
    if s.n_tokens == 0 {
        f64::NEG_INFINITY
    } else {
        s.sum_logprob / s.n_tokens as f64
    }
}

pub fn compute_metric(
    metric: &Metric,
    t: f64,
    scores: &HashMap<&str, &ExampleScore>,
    samples: usize,
    seed: u64,
) -> Result<MetricResult, MissingScore> {
    let look = Lookup {
        scores,
        metric: &metric.name,
    };
    let result = |value: f64, ci: (f64, f64), n: usize, extra: serde_json::Value| MetricResult {
        t,
        metric: metric.name.clone(),
        kind: metric.kind.as_str().to_string(),
        value,
        ci_low: ci.0,
        ci_high: ci.1,
        n,
        extra,
    };
    match &metric.items {
        MetricItems::Instruction(items) => {
            let mut sums = Vec::with_capacity(items.len());
            let mut counts = Vec::with_capacity(items.len());
            let mut per_item = Vec::with_capacity(items.len());
            for ex in items {
                let s = look.get(&ex.id, "answer")?;
                sums.push(s.sum_logprob);
                counts.push(s.n_tokens as f64);
                per_item.push(json!({"id": ex.id, "score": s.mean_nll, "mean_nll": s.mean_nll, "n_tokens": s.n_tokens}));
            }
            let nll = |idx: &[usize]| -> f64 {
                let tokens: f64 = idx.iter().filter_map(|&i| counts.get(i)).sum();
                -idx.iter().filter_map(|&i| sums.get(i)).sum::<f64>() / tokens
            };
            let all: Vec<usize> = (0..items.len()).collect();
            let clusters = clusters_of(&vec![None; items.len()]);
            let ci = bootstrap_ci(&clusters, samples, seed, &nll);
            let tokens: usize = counts.iter().map(|&c| c as usize).sum();
            Ok(result(
                nll(&all),
                ci,
                items.len(),
                json!({"n_tokens": tokens, "items": per_item}),
            ))
        }
        MetricItems::Paired(items) => {
            let mut p = Vec::with_capacity(items.len());
            let mut margin = Vec::with_capacity(items.len());
            let mut p_sum = Vec::with_capacity(items.len());
            let mut per_item = Vec::with_capacity(items.len());
            for it in items {
                let hack = look.get(&it.id, "hack")?;
                let honest = look.get(&it.id, "honest")?;
                let m = mean_logprob(hack) - mean_logprob(honest);
                let m_sum = hack.sum_logprob - honest.sum_logprob;
                p.push(sigmoid(m));
                margin.push(m);
                p_sum.push(sigmoid(m_sum));
                per_item.push(json!({"id": it.id, "group": it.group, "score": sigmoid(m), "p_hack": sigmoid(m), "margin": m, "margin_sum": m_sum}));
            }
            let all: Vec<usize> = (0..items.len()).collect();
            let groups: Vec<Option<&str>> = items.iter().map(|i| i.group.as_deref()).collect();
            let ci = bootstrap_ci(&clusters_of(&groups), samples, seed, &|idx| mean(&p, idx));
            Ok(result(
                mean(&p, &all),
                ci,
                items.len(),
                json!({"mean_margin": mean(&margin, &all), "mean_sigmoid_sum": mean(&p_sum, &all), "items": per_item}),
            ))
        }
        MetricItems::Choice(items) => {
            let mut acc = Vec::with_capacity(items.len());
            let mut acc_norm = Vec::with_capacity(items.len());
            let mut prob = Vec::with_capacity(items.len());
            let mut per_item = Vec::with_capacity(items.len());
            for it in items {
                let mut lps = Vec::with_capacity(it.choices.len());
                for k in 0..it.choices.len() {
                    lps.push(look.get(&it.id, &format!("choice{k}"))?.sum_logprob);
                }
                let argmax = |v: &[f64]| {
                    v.iter()
                        .enumerate()
                        .fold(0, |best, (k, &x)| if x > v[best] { k } else { best })
                };
                let normed: Vec<f64> = lps
                    .iter()
                    .zip(&it.choices)
                    .map(|(lp, c)| lp / c.len().max(1) as f64)
                    .collect();
                let top = lps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = lps.iter().map(|lp| (lp - top).exp()).sum();
                let Some(&lp_answer) = lps.get(it.answer) else {
                    // Loading validates answers; a hand-built item may not have.
                    return Err(MissingScore {
                        metric: metric.name.clone(),
                        id: request_id(&metric.name, &it.id, &format!("choice{}", it.answer)),
                    });
                };
                let p_answer = (lp_answer - top).exp() / z;
                let chosen = argmax(&lps);
                acc.push(if chosen == it.answer { 1.0 } else { 0.0 });
                acc_norm.push(if argmax(&normed) == it.answer {
                    1.0
                } else {
                    0.0
                });
                prob.push(p_answer);
                per_item.push(json!({"id": it.id, "score": p_answer, "chosen": chosen, "answer": it.answer, "prob": p_answer, "logprobs": lps}));
            }
            let all: Vec<usize> = (0..items.len()).collect();
            let groups: Vec<Option<&str>> = items.iter().map(|i| i.group.as_deref()).collect();
            let ci = bootstrap_ci(&clusters_of(&groups), samples, seed, &|idx| mean(&acc, idx));
            Ok(result(
                mean(&acc, &all),
                ci,
                items.len(),
                json!({"acc": mean(&acc, &all), "acc_norm": mean(&acc_norm, &all), "prob": mean(&prob, &all), "items": per_item}),
            ))
        }
    }
}

/// Every metric of the suite at `t`, in suite order.
pub fn compute_metrics(
    suite: &Suite,
    t: f64,
    scores: &HashMap<&str, &ExampleScore>,
    samples: usize,
    seed: u64,
) -> Result<Vec<MetricResult>, MissingScore> {
    suite
        .metrics
        .iter()
        .map(|m| compute_metric(m, t, scores, samples, seed))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::experiments::suite::{ChoiceItem, MetricKind, PairedItem};
    use crate::text::dataset::{ChatExample, ChatMessage};

    fn score(id: &str, n: usize, sum: f64) -> ExampleScore {
        ExampleScore {
            id: id.into(),
            n_tokens: n,
            sum_logprob: sum,
            mean_nll: -sum / n as f64,
            token_logprobs: None,
        }
    }

    fn metric(name: &str, kind: MetricKind, items: MetricItems) -> Metric {
        Metric {
            name: name.into(),
            kind,
            file: PathBuf::from("x.jsonl"),
            description: None,
            items,
        }
    }

    fn prompt() -> Vec<ChatMessage> {
        vec![ChatMessage::new("user", "q")]
    }

    #[test]
    fn instruction_is_token_weighted() {
        let items = vec![
            ChatExample {
                id: "a".into(),
                messages: vec![],
            },
            ChatExample {
                id: "b".into(),
                messages: vec![],
            },
        ];
        let m = metric(
            "ins",
            MetricKind::Instruction,
            MetricItems::Instruction(items),
        );
        let s = [
            score("ins/a/answer", 1, -1.0),
            score("ins/b/answer", 3, -9.0),
        ];
        let map: HashMap<&str, &ExampleScore> = s.iter().map(|s| (s.id.as_str(), s)).collect();
        let r = compute_metric(&m, 0.5, &map, 100, 1).unwrap();
        assert!((r.value - 2.5).abs() < 1e-12, "(1 + 9) / 4 tokens");
        assert_eq!(r.n, 2);
        assert!(r.ci_low <= r.value && r.value <= r.ci_high);
        assert_eq!(r.t, 0.5);
        assert_eq!(r.kind, "instruction");
    }

    #[test]
    fn paired_uses_per_token_means_and_sigmoid() {
        let items = vec![PairedItem {
            id: "x".into(),
            group: None,
            messages: prompt(),
            hack: "h".into(),
            honest: "o".into(),
        }];
        let m = metric("p", MetricKind::Paired, MetricItems::Paired(items));
        // hack: -2 over 2 tokens = -1/token; honest: -6 over 3 tokens = -2/token → m = 1.
        let s = [score("p/x/hack", 2, -2.0), score("p/x/honest", 3, -6.0)];
        let map: HashMap<&str, &ExampleScore> = s.iter().map(|s| (s.id.as_str(), s)).collect();
        let r = compute_metric(&m, 0.0, &map, 0, 1).unwrap();
        assert!((r.value - sigmoid(1.0)).abs() < 1e-12);
        assert!((r.extra["mean_margin"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert!((r.extra["mean_sigmoid_sum"].as_f64().unwrap() - sigmoid(4.0)).abs() < 1e-12);
        // A missing score is an error naming the request.
        let map: HashMap<&str, &ExampleScore> = s[..1].iter().map(|s| (s.id.as_str(), s)).collect();
        let e = compute_metric(&m, 0.0, &map, 0, 1).unwrap_err();
        assert!(e.to_string().contains("p/x/honest"));
    }

    #[test]
    fn choice_acc_norm_by_bytes_and_ties() {
        // Choice 0: "é" (2 bytes) lp -2 → -1/byte; choice 1: "abcd" (4 bytes) lp -3 → -0.75/byte.
        let items = vec![
            ChoiceItem {
                id: "c".into(),
                group: None,
                messages: prompt(),
                choices: vec!["é".into(), "abcd".into()],
                answer: 1,
            },
            ChoiceItem {
                id: "d".into(),
                group: None,
                messages: prompt(),
                choices: vec!["a".into(), "b".into()],
                answer: 0,
            },
        ];
        let m = metric("ch", MetricKind::Choice, MetricItems::Choice(items));
        let s = [
            score("ch/c/choice0", 1, -2.0),
            score("ch/c/choice1", 2, -3.0),
            score("ch/d/choice0", 1, -1.0),
            score("ch/d/choice1", 1, -1.0),
        ];
        let map: HashMap<&str, &ExampleScore> = s.iter().map(|s| (s.id.as_str(), s)).collect();
        let r = compute_metric(&m, 1.0, &map, 50, 3).unwrap();
        // c: argmax raw = 0 (wrong), normalised = 1 (right); d: tie → lowest index 0 (right).
        assert!((r.value - 0.5).abs() < 1e-12);
        assert!((r.extra["acc_norm"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        let p_c = (-3.0f64).exp() / ((-2.0f64).exp() + (-3.0f64).exp());
        assert!((r.extra["prob"].as_f64().unwrap() - (p_c + 0.5) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn result_line_has_the_results_jsonl_fields_in_order() {
        let r = MetricResult {
            t: -0.5,
            metric: "m".into(),
            kind: "choice".into(),
            value: 0.25,
            ci_low: 0.0,
            ci_high: 0.5,
            n: 4,
            extra: json!({"acc_norm": 0.5}),
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"t":-0.5,"metric":"m","kind":"choice","value":0.25,"ci_low":0.0,"ci_high":0.5,"n":4,"extra":{"acc_norm":0.5}}"#
        );
        assert_eq!(serde_json::from_str::<MetricResult>(&line).unwrap(), r);
    }

    #[test]
    fn paired_ci_resamples_groups_and_is_seeded() {
        // Two groups of two items: a group-level bootstrap can only produce means of whole groups.
        let item = |id: &str, g: &str| PairedItem {
            id: id.into(),
            group: Some(g.into()),
            messages: prompt(),
            hack: "h".into(),
            honest: "o".into(),
        };
        let items = vec![
            item("a", "g1"),
            item("b", "g1"),
            item("c", "g2"),
            item("d", "g2"),
        ];
        let m = metric("p", MetricKind::Paired, MetricItems::Paired(items));
        let margins = [("a", 2.0), ("b", 2.0), ("c", -2.0), ("d", -2.0)];
        let s: Vec<ExampleScore> = margins
            .iter()
            .flat_map(|(id, mg)| {
                [
                    score(&format!("p/{id}/hack"), 1, *mg),
                    score(&format!("p/{id}/honest"), 1, 0.0),
                ]
            })
            .collect();
        let map: HashMap<&str, &ExampleScore> = s.iter().map(|s| (s.id.as_str(), s)).collect();
        let r = compute_metric(&m, 0.0, &map, 1000, 5).unwrap();
        assert!((r.value - 0.5).abs() < 1e-12);
        assert_eq!(r.n, 4);
        // Resampling 2 groups: the mean is σ(2), 0.5 or σ(-2); the percentile ends are the extremes.
        assert!(
            (r.ci_low - sigmoid(-2.0)).abs() < 1e-12 && (r.ci_high - sigmoid(2.0)).abs() < 1e-12,
            "{r:?}"
        );
        assert_eq!(r, compute_metric(&m, 0.0, &map, 1000, 5).unwrap());
        let items = r.extra["items"].as_array().unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0]["id"], "a");
        assert!((items[0]["margin"].as_f64().unwrap() - 2.0).abs() < 1e-12);
        assert!((items[0]["score"].as_f64().unwrap() - sigmoid(2.0)).abs() < 1e-12);
        assert_eq!(items[2]["group"], "g2");
    }

    #[test]
    fn choice_answer_out_of_range_is_an_error_not_a_panic() {
        let items = vec![ChoiceItem {
            id: "c".into(),
            group: None,
            messages: prompt(),
            choices: vec!["a".into(), "b".into()],
            answer: 5,
        }];
        let m = metric("ch", MetricKind::Choice, MetricItems::Choice(items));
        let s = [
            score("ch/c/choice0", 1, -1.0),
            score("ch/c/choice1", 1, -2.0),
        ];
        let map: HashMap<&str, &ExampleScore> = s.iter().map(|s| (s.id.as_str(), s)).collect();
        let e = compute_metric(&m, 0.0, &map, 10, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ch/c/choice5"), "{e}");
    }

    #[test]
    fn choice_per_item_scores_and_acc_norm_with_multibyte_text() {
        // "日本" is 6 UTF-8 bytes, "abc" 3: raw lp favours choice 1, per byte favours choice 0.
        let items = vec![ChoiceItem {
            id: "j".into(),
            group: None,
            messages: prompt(),
            choices: vec!["日本".into(), "abc".into()],
            answer: 0,
        }];
        let m = metric("ch", MetricKind::Choice, MetricItems::Choice(items));
        let s = [
            score("ch/j/choice0", 2, -5.4),
            score("ch/j/choice1", 1, -5.0),
        ];
        let map: HashMap<&str, &ExampleScore> = s.iter().map(|s| (s.id.as_str(), s)).collect();
        let r = compute_metric(&m, 0.0, &map, 10, 1).unwrap();
        assert_eq!(r.value, 0.0);
        assert_eq!(r.extra["acc_norm"].as_f64(), Some(1.0));
        let item = &r.extra["items"][0];
        assert_eq!(item["chosen"], 1);
        let p0 = 1.0 / (1.0 + (0.4f64).exp());
        assert!(
            (item["score"].as_f64().unwrap() - p0).abs() < 1e-12,
            "{item}"
        );
    }
}
