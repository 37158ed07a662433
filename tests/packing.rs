//! Requests that share a prompt, packed into one row (the prompt computed once), and requests
//! that share any beginning, packed as a prefix tree, score the same log-probs as each sequence
//! scored alone: every tiny architecture (GQA, q/k norm, biases, rope
//! scaling), a sliding window shorter than the rows, LoRA coefficients that differ per row, on
//! the CPU backend (its batches split over threads, `compute::cpu_lanes`) and on wgpu. Also: an
//! evaluation of paired and choice items gives the same scores as one sequence per forward.

mod common;

use basin::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::{EvalItem, EvalSpec, PathPointSpec, evaluate},
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
    },
    model::{
        logprobs::{packed_target_logprobs, target_logprobs},
        packing::{PackPolicy, pack},
        path_param::PathCoefficients,
        transformer::CausalLm,
    },
    text::dataset::{ChatExample, ChatMessage, load_chat_jsonl},
};

/// Each example of the tiny chat set with three answers of different lengths: the original,
/// a short one and a long one, so a prompt is shared by three requests.
fn shared_prompt_examples() -> Vec<ChatExample> {
    let examples = load_chat_jsonl(common::fixtures().join("tiny/chat.jsonl")).unwrap();
    let mut out = Vec::new();
    for ex in examples {
        let answer = ex.messages.last().unwrap().content.clone();
        let variants = [
            answer.clone(),
            "No.".to_string(),
            format!("{answer} Also, to be precise: {answer}").repeat(3),
        ];
        for (k, v) in variants.into_iter().enumerate() {
            let mut messages = ex.messages.clone();
            let last = messages.len() - 1;
            messages[last] = ChatMessage {
                role: "assistant".into(),
                content: v,
            };
            out.push(ChatExample {
                id: format!("{}#{k}", ex.id),
                messages,
            });
        }
    }
    out
}

struct Case {
    folder: &'static str,
    adapter: Option<&'static str>,
    window: Option<usize>,
}

/// The largest difference between packed and alone, and how many rows hold sequences of
/// several examples (several prompts: only a prefix is shared).
fn max_packed_difference(
    kind: ComputeKind,
    case: &Case,
    policy: PackPolicy,
) -> (f32, usize, usize) {
    let dir = common::fixtures().join("tiny");
    let opened = open_model(&dir.join(case.folder)).unwrap();
    let mut config = opened.config.clone();
    if case.window.is_some() {
        config.sliding_window = case.window;
    }
    let adapter = case
        .adapter
        .map(|a| LoraAdapter::open(dir.join(a)).unwrap());
    let compute = ComputeDevice::new(kind).unwrap();
    let model = CausalLm::load(
        &config,
        opened.tensors.as_ref(),
        adapter.as_ref(),
        &compute.device,
    )
    .unwrap();
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let items = encode_examples(
        &opened.tokenizer,
        &template,
        &shared_prompt_examples(),
        4096,
    )
    .unwrap();
    let seqs: Vec<_> = items.iter().map(|i| &i.sequence).collect();
    let rows = pack(&seqs, policy);
    let shared = rows.iter().filter(|r| r.is_shared()).count();
    let example = |m: &basin::model::packing::PackedMember| {
        items[m.sequence]
            .id
            .split('#')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let mixed = rows
        .iter()
        .filter(|r| {
            r.members
                .iter()
                .any(|m| example(m) != example(&r.members[0]))
        })
        .count();
    // Per-row LoRA coefficients: row r runs at t = 0.25·(r mod 5).
    let coeff = |r: usize| 0.25 * (r % 5) as f32;
    let slots = usize::from(adapter.is_some());
    let mut worst: f32 = 0.0;
    for (b, chunk) in rows.chunks(3).enumerate() {
        let coeffs = PathCoefficients {
            lora: (0..slots)
                .map(|_| (0..chunk.len()).map(|k| coeff(b * 3 + k)).collect())
                .collect(),
            dense: vec![],
            ..Default::default()
        };
        let packed = packed_target_logprobs(&model, chunk, &coeffs).unwrap();
        for (k, (row, members)) in chunk.iter().zip(packed).enumerate() {
            for (m, got) in row.members.iter().zip(members) {
                let alone = target_logprobs(
                    &model,
                    std::slice::from_ref(&items[m.sequence].sequence),
                    &PathCoefficients {
                        lora: (0..slots).map(|_| vec![coeff(b * 3 + k)]).collect(),
                        dense: vec![],
                        ..Default::default()
                    },
                )
                .unwrap()
                .pop()
                .unwrap();
                assert_eq!(
                    got.len(),
                    alone.len(),
                    "{}: {}",
                    case.folder,
                    items[m.sequence].id
                );
                for (g, a) in got.iter().zip(&alone) {
                    assert!(g.is_finite());
                    worst = worst.max((g - a).abs());
                }
            }
        }
    }
    (worst, shared, mixed)
}

fn check(kind: ComputeKind) {
    let cases = [
        Case {
            folder: "llama",
            adapter: None,
            window: None,
        },
        Case {
            folder: "llama3",
            adapter: None,
            window: None,
        },
        Case {
            folder: "mistral",
            adapter: None,
            window: None,
        },
        Case {
            folder: "mistral",
            adapter: None,
            window: Some(5),
        },
        Case {
            folder: "qwen2",
            adapter: None,
            window: None,
        },
        Case {
            folder: "qwen3",
            adapter: None,
            window: None,
        },
        Case {
            folder: "llama",
            adapter: Some("llama_lora"),
            window: None,
        },
    ];
    for case in &cases {
        let (worst, shared, mixed) = max_packed_difference(kind, case, PackPolicy::prompts());
        assert_eq!(
            (shared, mixed),
            (7, 0),
            "{}: every example's three answers share a row, one prompt per row",
            case.folder
        );
        // Rows of up to five sequences with any common beginning: the chat template's opening
        // tokens are shared across examples, so rows hold several prompts.
        let (worst_tree, _, mixed) = max_packed_difference(kind, case, PackPolicy::prefixes(5));
        assert!(
            mixed >= 2,
            "{}: only {mixed} rows mix examples",
            case.folder
        );
        for (what, w) in [("prompts", worst), ("prefix tree", worst_tree)] {
            assert!(
                w < 2e-5,
                "{} (window {:?}, adapter {:?}), {what}: packed vs alone differ by {w}",
                case.folder,
                case.window,
                case.adapter
            );
        }
    }
}

#[test]
fn packed_rows_score_like_sequences_alone_on_cpu() {
    // In a pool of 3 threads, batches of 3 rows run as 3 lanes (one thread per row, each row with
    // its own slice of the coefficients), whatever the machine's core count.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        assert_eq!(rayon::current_num_threads(), 3);
        check(ComputeKind::Cpu)
    });
}

#[test]
fn packed_rows_score_like_sequences_alone_on_gpu() {
    check(ComputeKind::Gpu);
}

#[test]
fn evaluation_with_shared_prompts_equals_one_sequence_per_pass() {
    let dir = common::fixtures().join("tiny/llama");
    let opened = open_model(&dir).unwrap();
    let compute = ComputeDevice::new(ComputeKind::Cpu).unwrap();
    let model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        None,
        &compute.device,
    )
    .unwrap();
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let items: Vec<EvalItem> = encode_examples(
        &opened.tokenizer,
        &template,
        &shared_prompt_examples(),
        4096,
    )
    .unwrap();
    let spec = EvalSpec {
        batch_size: 4,
        point: PathPointSpec::default(),
        keep_token_logprobs: true,
    };
    let scores = evaluate(&model, &items, &spec, &|_| {}, &CancelFlag::new()).unwrap();
    assert_eq!(scores.examples.len(), items.len());
    for (item, score) in items.iter().zip(&scores.examples) {
        assert_eq!(score.id, item.id, "input order kept");
        let alone = target_logprobs(
            &model,
            std::slice::from_ref(&item.sequence),
            &PathCoefficients::default(),
        )
        .unwrap()
        .pop()
        .unwrap();
        let sum: f64 = alone.iter().map(|&v| v as f64).sum();
        assert_eq!(score.n_tokens, alone.len());
        assert!(
            (score.sum_logprob - sum).abs() < 1e-4,
            "{}: {} vs {sum}",
            item.id,
            score.sum_logprob
        );
    }
}
