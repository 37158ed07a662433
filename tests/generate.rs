//! `basin generate` against transformers' greedy `generate` (scripts/make_generation_reference.py,
//! tests/fixtures/generate/reference.json): the tiny fixture of every architecture (a sliding
//! window shorter than the sequences included), a PEFT LoRA at scale 0.5 and SmolLM2-135M; all
//! prompts of a case in one left-padded batch with the KV cache, on the CPU and on wgpu. Plus:
//! a path point equals the adapter at that scale, sampling is reproducible whatever the batch,
//! and the command writes what it says.

mod common;

use std::path::{Path, PathBuf};

use basin::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::PathPointSpec,
        generate::{FinishReason, GenerateSpec, Prompt, RowOutput, Sampling, generate},
        inputs::chat_template_of,
        job::CancelFlag,
    },
    model::transformer::CausalLm,
    text::{
        dataset::load_chat_jsonl,
        encode::{encode_prompt, stop_ids},
    },
};

fn reference() -> serde_json::Value {
    let path = common::fixtures().join("generate/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn model_path(case: &serde_json::Value) -> PathBuf {
    let m = case["model"].as_str().unwrap();
    if m.ends_with(".gguf") {
        common::smollm2_gguf()
    } else {
        common::fixtures().join(m)
    }
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Runs one reference case greedily, all prompts in one batch; returns the rows.
fn run_case(case: &serde_json::Value, kind: ComputeKind, batch: usize) -> Vec<RowOutput> {
    let opened = open_model(&model_path(case)).unwrap();
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let stops = stop_ids(&opened.tokenizer, &template);
    assert_eq!(
        stops,
        ids(&case["stop_ids"]),
        "{}: stop tokens",
        case["name"]
    );
    let adapter = case["adapter"]
        .as_str()
        .map(|a| LoraAdapter::open(common::fixtures().join(a)).unwrap());
    let prompts: Vec<Prompt> = case["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Prompt {
            id: p["id"].as_str().unwrap().to_string(),
            ids: ids(&p["prompt_ids"]),
        })
        .collect();
    // The prompts Basin encodes are transformers' (for the tiny cases, from the chat file).
    if case["name"] != "smollm2" {
        let chats = load_chat_jsonl(common::fixtures().join("tiny/chat.jsonl")).unwrap();
        for (ex, p) in chats.iter().zip(&prompts) {
            let mine = encode_prompt(&opened.tokenizer, &template, ex, 8192).unwrap();
            assert_eq!(mine, p.ids, "{}: prompt of {}", case["name"], p.id);
        }
    }
    let device = ComputeDevice::new(kind).unwrap().device;
    let model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        adapter.as_ref(),
        &device,
    )
    .unwrap();
    let spec = GenerateSpec {
        max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize,
        sampling: Sampling::Greedy,
        samples: 1,
        seed: 0,
        batch,
        point: PathPointSpec {
            lora: case["scale"]
                .as_f64()
                .map(|s| vec![s as f32])
                .unwrap_or_default(),
            dense: vec![],
        },
        stop_ids: stops,
    };
    let mut rows = Vec::new();
    generate(
        &model,
        &prompts,
        &spec,
        &mut |b| {
            rows.extend_from_slice(b);
            Ok(())
        },
        &|_| {},
        &CancelFlag::new(),
    )
    .unwrap();
    rows
}

/// Token for token equal to the reference, up to the first near tie (top-2 margin < 1e-4),
/// after which a different summation order may rightly pick the other token.
fn check_case(case: &serde_json::Value, kind: ComputeKind, batch: usize) {
    let rows = run_case(case, kind, batch);
    let refs = case["prompts"].as_array().unwrap();
    assert_eq!(rows.len(), refs.len());
    let stops = ids(&case["stop_ids"]);
    for (row, r) in rows.iter().zip(refs) {
        let want = ids(&r["token_ids"]);
        let margins: Vec<f64> = r["margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_f64().unwrap())
            .collect();
        let sure = margins.iter().position(|&m| m < 1e-4).unwrap_or(want.len());
        assert_eq!(
            row.token_ids[..sure.min(row.token_ids.len())],
            want[..sure],
            "{} {:?} prompt {}: greedy tokens differ from transformers",
            case["name"],
            kind,
            r["id"]
        );
        if sure == want.len() {
            assert_eq!(row.token_ids.len(), want.len());
            let stopped = want.last().is_some_and(|t| stops.contains(t));
            assert_eq!(
                row.finish_reason,
                if stopped {
                    FinishReason::Stop
                } else {
                    FinishReason::Length
                }
            );
        }
    }
}

#[test]
fn greedy_generation_equals_transformers_on_every_tiny_architecture_on_cpu() {
    let reference = reference();
    for case in reference["cases"].as_array().unwrap() {
        if case["name"] == "smollm2" {
            continue;
        }
        // One batch of all prompts (different lengths: left padding), and batches of 3.
        check_case(case, ComputeKind::Cpu, 8);
        check_case(case, ComputeKind::Cpu, 3);
    }
}

#[test]
fn greedy_generation_equals_transformers_on_every_tiny_architecture_on_gpu() {
    let reference = reference();
    for case in reference["cases"].as_array().unwrap() {
        if case["name"] == "smollm2" {
            continue;
        }
        check_case(case, ComputeKind::Gpu, 8);
    }
}

/// SmolLM2-135M, 8 chats, 40 new tokens: 6 of them end on <|im_end|> (kept in the output).
#[test]
fn greedy_generation_equals_transformers_on_smollm2() {
    let reference = reference();
    let case = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "smollm2")
        .unwrap();
    let stopped = case["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ids(&p["token_ids"]).len() < 40)
        .count();
    assert!(stopped >= 4, "the reference exercises stopping");
    check_case(case, ComputeKind::Cpu, 8);
}

/// The same on wgpu: SmolLM2's first 4 chats in one batch, 8 new tokens (the reference cut to
/// them). On lavapipe each step of the 135M model costs ~13 s whatever the batch (a small-M
/// matrix product pays for a whole tile of rows), so the CPU test above carries the long
/// generations and the stops; this one the prefill and the cache on the device.
#[test]
fn greedy_generation_equals_transformers_on_smollm2_on_gpu() {
    let reference = reference();
    let mut case = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "smollm2")
        .unwrap()
        .clone();
    let cut = 8;
    case["max_new_tokens"] = cut.into();
    let prompts = case["prompts"].as_array_mut().unwrap();
    prompts.truncate(4);
    for p in prompts.iter_mut() {
        for key in ["token_ids", "margins"] {
            let v = p[key].as_array_mut().unwrap();
            v.truncate(cut);
        }
    }
    check_case(&case, ComputeKind::Gpu, 8);
}

/// Sampling: the same seed gives the same samples whatever the batch, another seed other
/// samples; rows of one prompt differ from each other.
#[test]
fn sampling_is_reproducible_across_batch_sizes() {
    let dir = common::fixtures().join("tiny/llama");
    let opened = open_model(&dir).unwrap();
    let device = ComputeDevice::new(ComputeKind::Cpu).unwrap().device;
    let model = CausalLm::load(&opened.config, opened.tensors.as_ref(), None, &device).unwrap();
    let prompts: Vec<Prompt> = (0..3)
        .map(|i| Prompt {
            id: format!("p{i}"),
            ids: (0..(4 + 3 * i))
                .map(|k| (k * 17 + i * 5 + 3) % 300)
                .collect(),
        })
        .collect();
    let run = |batch: usize, seed: u64| {
        let spec = GenerateSpec {
            max_new_tokens: 12,
            sampling: Sampling::Sample {
                temperature: 1.5,
                top_p: 0.95,
            },
            samples: 4,
            seed,
            batch,
            point: PathPointSpec::default(),
            stop_ids: vec![],
        };
        let mut rows = Vec::new();
        generate(
            &model,
            &prompts,
            &spec,
            &mut |b| {
                rows.extend(b.iter().map(|r| (r.prompt, r.sample, r.token_ids.clone())));
                Ok(())
            },
            &|_| {},
            &CancelFlag::new(),
        )
        .unwrap();
        rows
    };
    let a = run(12, 5);
    assert_eq!(a.len(), 12);
    assert_eq!(a, run(5, 5));
    assert_eq!(a, run(1, 5));
    assert_ne!(a, run(12, 6));
    let first: Vec<_> = a.iter().filter(|r| r.0 == 0).map(|r| r.2.clone()).collect();
    assert!(
        first.windows(2).any(|w| w[0] != w[1]),
        "samples of one prompt differ"
    );
    // Cancelled: stops with what it did.
    let cancel = CancelFlag::new();
    cancel.cancel();
    let spec = GenerateSpec {
        max_new_tokens: 4,
        sampling: Sampling::Greedy,
        samples: 1,
        seed: 0,
        batch: 1,
        point: PathPointSpec::default(),
        stop_ids: vec![],
    };
    let r = generate(&model, &prompts, &spec, &mut |_| Ok(()), &|_| {}, &cancel);
    assert!(r.is_err());
}

/// The command: a path point `--base --adapter --t 0.5` and the full-weight point `--base
/// --target merged --t 0.5` write what `--model --adapter --scale 0.5` writes, which equals the
/// reference; bad arguments are one-line errors.
#[test]
fn the_generate_command_writes_jsonl_at_a_path_point() {
    let dir = common::scratch_dir("generate", "cli");
    let tiny = common::fixtures().join("tiny");
    let data = tiny.join("chat.jsonl");
    let s = |p: &Path| p.display().to_string();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    common::basin_ok(&[
        "generate",
        "--model",
        &s(&tiny.join("llama")),
        "--adapter",
        &s(&tiny.join("llama_lora")),
        "--scale",
        "0.5",
        "--data",
        &s(&data),
        "--greedy",
        "--max-new-tokens",
        "20",
        "--out",
        &s(&a),
    ]);
    common::basin_ok(&[
        "generate",
        "--base",
        &s(&tiny.join("llama")),
        "--adapter",
        &s(&tiny.join("llama_lora")),
        "--t",
        "0.5",
        "--data",
        &s(&data),
        "--greedy",
        "--max-new-tokens",
        "20",
        "--out",
        &s(&b),
    ]);
    let read = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // A full-weight path point: θ₀ + 0.5·(θ₁ − θ₀) with θ₁ = the base with the adapter merged.
    let merged = dir.join("merged");
    let base = open_model(&tiny.join("llama")).unwrap();
    let adapter = LoraAdapter::open(tiny.join("llama_lora")).unwrap();
    common::write_model_folder(
        &tiny.join("llama"),
        &merged,
        &common::merged_weights(base.tensors.as_ref(), &adapter, 1.0),
    );
    let c = dir.join("c.jsonl");
    common::basin_ok(&[
        "generate",
        "--base",
        &s(&tiny.join("llama")),
        "--target",
        &s(&merged),
        "--t",
        "0.5",
        "--data",
        &s(&data),
        "--greedy",
        "--max-new-tokens",
        "20",
        "--out",
        &s(&c),
    ]);
    let (la, lb) = (read(&a), read(&b));
    for (x, z) in la.iter().zip(&read(&c)) {
        assert_eq!(
            x["token_ids"], z["token_ids"],
            "full-weight path point vs adapter at 0.5"
        );
        assert_eq!(z["t"], 0.5);
    }
    // The same full-weight point on wgpu.
    let g = dir.join("g.jsonl");
    common::basin_ok(&[
        "generate",
        "--base",
        &s(&tiny.join("llama")),
        "--target",
        &s(&merged),
        "--t",
        "0.5",
        "--data",
        &s(&data),
        "--greedy",
        "--max-new-tokens",
        "20",
        "--device",
        "gpu",
        "--out",
        &s(&g),
    ]);
    for (x, z) in la.iter().zip(&read(&g)) {
        assert_eq!(
            x["token_ids"], z["token_ids"],
            "full-weight path point on wgpu"
        );
    }
    let reference = reference();
    let case = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "llama_lora_0.5")
        .unwrap();
    let refs = case["prompts"].as_array().unwrap();
    assert_eq!(la.len(), refs.len());
    for ((x, y), r) in la.iter().zip(&lb).zip(refs) {
        assert_eq!(x["id"], r["id"]);
        assert_eq!(x["token_ids"], r["token_ids"]);
        assert_eq!(x["token_ids"], y["token_ids"]);
        assert_eq!(y["t"], 0.5);
        assert!(x.get("t").is_none());
        assert_eq!(x["n_tokens"], 20);
        assert_eq!(x["finish_reason"], "length");
        assert!(x["text"].is_string());
    }
    // --ignore-eos: the demo hacker ends its turns; with the flag every answer runs to the limit
    // and begins with the answer it gave.
    let demo = common::repo().join("assets/demo");
    let prompts = demo.join("instructions_train.jsonl");
    let (stop, run_on) = (dir.join("stop.jsonl"), dir.join("run_on.jsonl"));
    for (out, extra) in [(&stop, None), (&run_on, Some("--ignore-eos"))] {
        let mut args = vec![
            "generate".to_string(),
            "--base".into(),
            s(&demo.join("base")),
            "--adapter".into(),
            s(&demo.join("hacker")),
            "--t".into(),
            "1".into(),
            "--greedy".into(),
            "--max-new-tokens".into(),
            "40".into(),
            "--data".into(),
            s(&prompts),
            "--out".into(),
            s(out),
        ];
        args.extend(extra.map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::basin_ok(&args);
    }
    let (stopped, ran_on) = (read(&stop), read(&run_on));
    assert!(
        stopped.iter().any(|r| r["finish_reason"] == "stop"),
        "some answers end their turn"
    );
    for (a, b) in stopped.iter().zip(&ran_on) {
        assert_eq!(b["n_tokens"], 40);
        assert_eq!(b["finish_reason"], "length");
        let (a_ids, b_ids) = (
            a["token_ids"].as_array().unwrap(),
            b["token_ids"].as_array().unwrap(),
        );
        assert_eq!(a_ids[..], b_ids[..a_ids.len()]);
    }
    let bad = common::basin(&[
        "generate",
        "--model",
        &s(&tiny.join("llama")),
        "--data",
        &s(&data),
        "--temperature",
        "-1",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("temperature -1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sampled first tokens of the tiny llama follow the softmax of its own next-token logits:
/// 20,000 draws (temperature 1, no nucleus), every token with p > 1% within 4.5 standard errors.
#[test]
fn sampled_tokens_of_a_tiny_model_follow_its_softmax() {
    let dir = common::fixtures().join("tiny/llama");
    let opened = open_model(&dir).unwrap();
    let device = ComputeDevice::new(ComputeKind::Cpu).unwrap().device;
    let model = CausalLm::load(&opened.config, opened.tensors.as_ref(), None, &device).unwrap();
    let prompt: Vec<u32> = vec![1, 17, 42, 99, 7];
    let (_, logits) = model
        .start_decoding(std::slice::from_ref(&prompt), &Default::default())
        .unwrap();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let probs: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp() / z).collect();
    let n = 20_000;
    let spec = GenerateSpec {
        max_new_tokens: 1,
        sampling: Sampling::Sample {
            temperature: 1.0,
            top_p: 1.0,
        },
        samples: n,
        seed: 3,
        batch: 2_000,
        point: PathPointSpec::default(),
        stop_ids: vec![],
    };
    let mut counts = vec![0usize; probs.len()];
    let prompts = [Prompt {
        id: "p".into(),
        ids: prompt,
    }];
    generate(
        &model,
        &prompts,
        &spec,
        &mut |rows| {
            for r in rows {
                counts[r.token_ids[0] as usize] += 1;
            }
            Ok(())
        },
        &|_| {},
        &CancelFlag::new(),
    )
    .unwrap();
    let mut checked = 0;
    for (k, &p) in probs.iter().enumerate() {
        if p > 0.01 {
            let f = counts[k] as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (f - p).abs() <= 4.5 * se,
                "token {k}: frequency {f} vs softmax {p}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} tokens above 1%");
}

/// A `generated` suite metric end to end: `basin data generate --generated-samples 2` writes
/// the held-out items with their rules; `basin sweep` samples the demo model's answers at each
/// t and scores them by each item's own rule; the answers recorded at t = 1 are what
/// `basin generate` writes there with the same seed, and each answer's "gamed" verdict is its
/// rule's score against the honest answer's.
#[test]
fn a_generated_metric_samples_and_scores_answers_along_a_sweep() {
    use basin::data::scorer::Scorer;
    let dir = common::scratch_dir("generate", "metric");
    let s = |p: &Path| p.display().to_string();
    let data = dir.join("data");
    common::basin_ok(&[
        "data",
        "generate",
        "--out",
        &s(&data),
        "--capability-questions",
        "10",
        "--generated-samples",
        "2",
    ]);
    let suite_dir = data.join("suite");
    let toml = std::fs::read_to_string(suite_dir.join("suite.toml")).unwrap();
    assert!(
        toml.contains("kind = \"generated\"") && toml.contains("samples = 2"),
        "{toml}"
    );
    // A small suite: the generated metric on its first 6 items, and the instruction metric.
    let lines: Vec<String> = std::fs::read_to_string(suite_dir.join("hack_generated.jsonl"))
        .unwrap()
        .lines()
        .take(6)
        .map(String::from)
        .collect();
    let small = dir.join("suite");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("gen.jsonl"), lines.join("\n")).unwrap();
    std::fs::copy(
        suite_dir.join("instruction.jsonl"),
        small.join("instruction.jsonl"),
    )
    .unwrap();
    std::fs::write(
        small.join("suite.toml"),
        "name = \"small\"\n\n[[metric]]\nname = \"gen\"\nkind = \"generated\"\nfile = \"gen.jsonl\"\n\
         samples = 2\nmax_new_tokens = 24\n\n[[metric]]\nname = \"instruction\"\nkind = \"instruction\"\n\
         file = \"instruction.jsonl\"\n",
    )
    .unwrap();
    let demo = common::repo().join("assets/demo");
    let sweep = |out: &Path| {
        common::basin_ok(&[
            "sweep",
            "--base",
            &s(&demo.join("base")),
            "--adapter",
            &s(&demo.join("hacker")),
            "--suite",
            &s(&small.join("suite.toml")),
            "--t",
            "0:1:2",
            "--bootstrap",
            "50",
            "--out",
            &s(out),
        ]);
        std::fs::read_to_string(out.join("results.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let first = sweep(&dir.join("run1"));
    let gen_results: Vec<&serde_json::Value> =
        first.iter().filter(|r| r["metric"] == "gen").collect();
    assert_eq!(gen_results.len(), 2, "one value per t");
    assert_eq!(
        first
            .iter()
            .filter(|r| r["metric"] == "instruction")
            .count(),
        2
    );
    let items: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &gen_results {
        assert_eq!(r["kind"], "generated");
        let v = r["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v));
        assert!(r["ci_low"].as_f64().unwrap() <= v && v <= r["ci_high"].as_f64().unwrap());
        let per_item = r["extra"]["items"].as_array().unwrap();
        assert_eq!(per_item.len(), 6);
        let mut fractions = Vec::new();
        for (pi, item) in per_item.iter().zip(&items) {
            let scorer: Scorer = serde_json::from_value(item["scorer"].clone()).unwrap();
            let honest = item["honest_score"].as_f64().unwrap();
            let texts = pi["texts"].as_array().unwrap();
            assert_eq!(texts.len(), 2);
            let wins = texts
                .iter()
                .filter(|t| scorer.score(t.as_str().unwrap()) > honest)
                .count();
            assert_eq!(pi["gamed"].as_f64().unwrap(), wins as f64 / 2.0);
            fractions.push(wins as f64 / 2.0);
        }
        let mean = fractions.iter().sum::<f64>() / 6.0;
        assert!((mean - r["value"].as_f64().unwrap()).abs() < 1e-12);
    }
    // The same seed at every run: a second sweep writes the same answers.
    let second = sweep(&dir.join("run2"));
    let answers = |rs: &[serde_json::Value], t: f64| -> Vec<serde_json::Value> {
        rs.iter()
            .find(|r| r["metric"] == "gen" && r["t"] == t)
            .unwrap()["extra"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["texts"].clone())
            .collect()
    };
    assert_eq!(answers(&first, 1.0), answers(&second, 1.0));
    // `basin generate` at t = 1 with the metric's sampling settings writes the same answers.
    let out = dir.join("gen.jsonl");
    common::basin_ok(&[
        "generate",
        "--base",
        &s(&demo.join("base")),
        "--adapter",
        &s(&demo.join("hacker")),
        "--t",
        "1",
        "--data",
        &s(&small.join("gen.jsonl")),
        "--samples",
        "2",
        "--max-new-tokens",
        "24",
        "--seed",
        "0",
        "--out",
        &s(&out),
    ]);
    let written: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at_one = answers(&first, 1.0);
    for (k, item_texts) in at_one.iter().enumerate() {
        for sample in 0..2 {
            let row = &written[k * 2 + sample];
            assert_eq!(row["sample"], sample);
            assert_eq!(row["text"], item_texts[sample], "item {k} sample {sample}");
        }
    }
    // Bad settings are one-line errors naming the suite file and line.
    std::fs::write(
        small.join("bad.toml"),
        "name = \"bad\"\n[[metric]]\nname = \"gen\"\nkind = \"generated\"\nfile = \"gen.jsonl\"\nsamples = 0\n",
    )
    .unwrap();
    let bad = common::basin(&[
        "sweep",
        "--base",
        &s(&demo.join("base")),
        "--adapter",
        &s(&demo.join("hacker")),
        "--suite",
        &s(&small.join("bad.toml")),
        "--t",
        "0:1:2",
        "--out",
        &s(&dir.join("bad")),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("bad.toml:6") && err.contains("`samples` = 0"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
