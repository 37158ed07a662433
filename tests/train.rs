//! `basin train` against PEFT + torch (references made by scripts/make_train_fixtures.py):
//! one step's LoRA gradients, a short AdamW run (losses, learning rates, gradient norms, final
//! adapter), PEFT's initialisation, gradients through packed rows by finite differences, resume
//! after a cancel, the same run on wgpu, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use basin::{
    checkpoint::{open::open_model, peft::LoraAdapter, safetensors_file::SafetensorsFile},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::EvalItem,
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
        optim::Schedule,
        train::{TrainHooks, TrainLength, TrainSpec, batch_gradients, new_lora_factors},
        train_job::{AdapterInit, TrainRequest, run_train_job},
        train_store::{list_checkpoints, read_steps},
    },
    model::{
        logprobs::{MaskedSequence, target_nll_sum},
        packing::{PackedRow, balanced_parts, pack_shared_prompts},
        path_param::PathCoefficients,
        trainable::{LoraFactors, attach, gradients},
        transformer::CausalLm,
    },
    text::dataset::load_chat_jsonl,
};
use common::fixtures;

fn tiny(name: &str) -> PathBuf {
    fixtures().join("tiny").join(name)
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("train/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn items(model_dir: &Path) -> Vec<EvalItem> {
    let opened = open_model(model_dir).unwrap();
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let examples = load_chat_jsonl(tiny("chat.jsonl")).unwrap();
    encode_examples(&opened.tokenizer, &template, &examples, 4096).unwrap()
}

/// The tiny llama on an autodiff device with the fixture adapter's factors as trainables.
fn model_with_adapter(kind: ComputeKind) -> (CausalLm, Vec<LoraFactors>) {
    let opened = open_model(&tiny("llama")).unwrap();
    let device = ComputeDevice::new(kind).unwrap().device.autodiff();
    let mut model = CausalLm::load(&opened.config, opened.tensors.as_ref(), None, &device).unwrap();
    model.ensure_lora_slots(1);
    let adapter = LoraAdapter::open(tiny("llama_lora")).unwrap();
    let factors = adapter
        .modules
        .iter()
        .map(|(name, m)| {
            LoraFactors::from_peft(
                name,
                &m.a.data,
                &m.b.data,
                m.a.shape[0],
                m.a.shape[1],
                m.b.shape[0],
                m.scale as f32,
            )
            .unwrap()
        })
        .collect();
    (model, factors)
}

fn rows(items: &[EvalItem]) -> Vec<PackedRow> {
    items
        .iter()
        .enumerate()
        .map(|(i, it)| PackedRow::single(i, &it.sequence))
        .collect()
}

fn coeffs(n: usize) -> PathCoefficients {
    PathCoefficients {
        lora: vec![vec![1.0; n]],
        ..Default::default()
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn one_step_gradients_equal_peft() {
    let reference = reference();
    let (mut model, factors) = model_with_adapter(ComputeKind::Cpu);
    let items = items(&tiny("llama"));
    let leaves = attach(&mut model, 0, &factors).unwrap();
    // Padded batches of 3 (right padding must not change a gradient).
    let n_targets = reference["one_step"]["n_targets"].as_u64().unwrap() as usize;
    let mut grads: Vec<(Vec<f32>, Vec<f32>)> = factors
        .iter()
        .map(|f| (vec![0.0; f.a.len()], vec![0.0; f.b.len()]))
        .collect();
    let mut loss = 0.0f64;
    let mut counted = 0;
    for chunk in items.chunks(3) {
        let leaves_now = attach(&mut model, 0, &factors).unwrap();
        let (nll, n) = target_nll_sum(&model, &rows(chunk), &coeffs(chunk.len())).unwrap();
        counted += n;
        loss += nll.clone().into_data().try_to_vec::<f32>().unwrap()[0] as f64;
        let g = gradients(&leaves_now, &(nll / n_targets as f32).backward()).unwrap();
        for ((ga, gb), (da, db)) in grads.iter_mut().zip(g) {
            ga.iter_mut().zip(da).for_each(|(x, y)| *x += y);
            gb.iter_mut().zip(db).for_each(|(x, y)| *x += y);
        }
    }
    drop(leaves);
    assert_eq!(counted, n_targets);
    let want_loss = reference["one_step"]["loss"].as_f64().unwrap();
    assert!(
        (loss / n_targets as f64 - want_loss).abs() < 1e-5,
        "loss {} vs PEFT {want_loss}",
        loss / n_targets as f64
    );
    let file = SafetensorsFile::open(fixtures().join("train/grads.safetensors")).unwrap();
    assert_eq!(file.tensors().len(), 2 * factors.len());
    let mut worst = 0.0f32;
    for (f, (ga, gb)) in factors.iter().zip(&grads) {
        for (factor, got, rows, cols) in [
            ("lora_A", ga, f.in_features, f.rank),
            ("lora_B", gb, f.rank, f.out_features),
        ] {
            let key = format!("base_model.model.{}.{factor}.weight", f.module);
            let want = file.load_f32(&key).unwrap().data;
            let got_peft = basin::model::trainable::transpose(got, rows, cols);
            let scale = max_abs(&want).max(1e-12);
            let diff = got_peft
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            worst = worst.max(diff / scale);
            assert!(
                diff / scale < 1e-4,
                "{key}: relative difference {}",
                diff / scale
            );
        }
    }
    eprintln!("worst relative gradient difference vs PEFT: {worst:.2e}");
}

/// `basin eval`'s token-weighted mean NLL of the tiny chat examples under an adapter.
fn eval_mean_nll(model: impl AsRef<std::ffi::OsStr>, adapter: &Path) -> f64 {
    let eval = basin()
        .args(["eval", "--model"])
        .arg(model)
        .arg("--adapter")
        .arg(adapter)
        .arg("--data")
        .arg(tiny("chat.jsonl"))
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    report["mean_nll"].as_f64().unwrap()
}

fn basin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_basin"))
}

fn reference_run_args(out: &Path) -> Vec<String> {
    let r = reference()["run"].clone();
    let s = |v: &serde_json::Value| v.to_string();
    [
        "train",
        "--base",
        tiny("llama").to_str().unwrap(),
        "--init-adapter",
        tiny("llama_lora").to_str().unwrap(),
        "--data",
        tiny("chat.jsonl").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--shuffle",
        "false",
    ]
    .iter()
    .map(|x| x.to_string())
    .chain([
        "--batch".into(),
        s(&r["batch"]),
        "--grad-accum".into(),
        s(&r["grad_accum"]),
        "--steps".into(),
        s(&r["steps"]),
        "--lr".into(),
        s(&r["lr"]),
        "--schedule".into(),
        r["schedule"].as_str().unwrap().to_string(),
        "--warmup-steps".into(),
        s(&r["warmup_steps"]),
        "--weight-decay".into(),
        s(&r["weight_decay"]),
        "--max-grad-norm".into(),
        s(&r["max_grad_norm"]),
    ])
    .collect()
}

#[test]
fn short_run_matches_the_peft_loop_and_its_adapter_loads() {
    let reference = reference();
    let out = tmp_dir("peft-loop");
    let status = basin().args(reference_run_args(&out)).output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let steps = read_steps(&out.join("train.jsonl")).unwrap();
    let want = reference["steps"].as_array().unwrap();
    assert_eq!(steps.len(), want.len());
    for (got, w) in steps.iter().zip(want) {
        let wl = w["loss"].as_f64().unwrap();
        assert!(
            (got.loss - wl).abs() < 1e-3,
            "step {}: loss {} vs {wl}",
            got.step,
            got.loss
        );
        let wlr = w["lr"].as_f64().unwrap();
        assert!(
            (got.lr - wlr).abs() < 1e-12,
            "step {}: lr {} vs {wlr}",
            got.step,
            got.lr
        );
        let wn = w["grad_norm"].as_f64().unwrap();
        assert!(
            (got.grad_norm - wn).abs() < 1e-3 * wn,
            "step {}: grad norm {} vs {wn}",
            got.step,
            got.grad_norm
        );
        assert_eq!(got.samples_seen as u64, w["samples_seen"].as_u64().unwrap());
        assert_eq!(got.tokens as u64, w["tokens"].as_u64().unwrap());
    }
    // The final adapter: PEFT's own factors, and the NLL `basin eval` gives with it.
    let ours = LoraAdapter::open(out.join("final")).unwrap();
    let peft = LoraAdapter::open(fixtures().join("train/final_adapter")).unwrap();
    assert_eq!(ours.modules.len(), peft.modules.len());
    for (name, m) in &peft.modules {
        let o = &ours.modules[name];
        for (a, b) in
            o.a.data
                .iter()
                .zip(&m.a.data)
                .chain(o.b.data.iter().zip(&m.b.data))
        {
            assert!((a - b).abs() < 1e-4, "{name}: {a} vs {b}");
        }
    }
    let nll = eval_mean_nll(tiny("llama"), &out.join("final"));
    let want_nll = reference["final_mean_nll"].as_f64().unwrap();
    assert!(
        (nll - want_nll).abs() < 1e-3,
        "final mean NLL {nll} vs PEFT {want_nll}"
    );
    // Rerunning the finished command computes nothing and keeps the log.
    let again = basin().args(reference_run_args(&out)).output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 computed now"));
    assert_eq!(read_steps(&out.join("train.jsonl")).unwrap(), steps);
    // A different recipe in the same folder is refused, naming what differs.
    let mut args = reference_run_args(&out);
    let lr = args.iter().position(|a| a == "--lr").unwrap();
    args[lr + 1] = "0.5".into();
    let refused = basin().args(args).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("different run") && err.contains("lr"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_fresh_adapter_starts_as_peft_does() {
    let reference = reference()["fresh_init"].clone();
    let opened = open_model(&tiny("llama")).unwrap();
    let device = ComputeDevice::new(ComputeKind::Cpu).unwrap().device;
    let model = CausalLm::load(&opened.config, opened.tensors.as_ref(), None, &device).unwrap();
    let rank = reference["rank"].as_u64().unwrap() as usize;
    let factors =
        new_lora_factors(&model, &["q_proj".into(), "v_proj".into()], rank, 0.25, 3).unwrap();
    assert_eq!(factors.len(), 2 * model.layers.len());
    let mut a: Vec<f64> = factors
        .iter()
        .flat_map(|f| f.a.iter().map(|&v| f64::from(v)))
        .collect();
    assert!(
        factors.iter().all(|f| f.b.iter().all(|&v| v == 0.0)),
        "B starts at zero"
    );
    assert_eq!(a.len() as u64, reference["n"].as_u64().unwrap());
    // PEFT's A: Kaiming-uniform with a = √5, i.e. U(−1/√in, 1/√in); PEFT's own sample agrees.
    let bound = 1.0 / (reference["in_features"].as_f64().unwrap()).sqrt();
    assert!((reference["a_max_abs"].as_f64().unwrap() - bound).abs() < 1e-3 * bound);
    assert!(
        (reference["a_var"].as_f64().unwrap() - bound * bound / 3.0).abs()
            < 0.05 * bound * bound / 3.0
    );
    // Kolmogorov–Smirnov against the uniform law (critical value at 99.9%: 1.95/√n).
    a.sort_by(f64::total_cmp);
    let n = a.len() as f64;
    let ks = a
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let cdf = ((x + bound) / (2.0 * bound)).clamp(0.0, 1.0);
            (cdf - i as f64 / n)
                .abs()
                .max((cdf - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max);
    assert!(ks < 1.95 / n.sqrt(), "KS distance {ks} from U(±{bound})");
    assert!(a[0] >= -bound && a[a.len() - 1] <= bound);
    let mean = a.iter().sum::<f64>() / n;
    assert!(mean.abs() < 4.0 * bound / (3.0 * n).sqrt(), "mean {mean}");
    // Another seed gives other values; the same seed the same.
    let again =
        new_lora_factors(&model, &["q_proj".into(), "v_proj".into()], rank, 0.25, 3).unwrap();
    assert_eq!(again, factors);
    let other =
        new_lora_factors(&model, &["q_proj".into(), "v_proj".into()], rank, 0.25, 4).unwrap();
    assert_ne!(other[0].a, factors[0].a);
    assert!(new_lora_factors(&model, &["lm_head".into()], 4, 1.0, 0).is_err());
}

/// Autodiff through packed rows (shared prompt, explicit positions, attention mask), RoPE,
/// RMSNorm, q/k norms and the log-softmax, checked against central finite differences.
#[test]
fn gradients_through_packed_rows_match_finite_differences() {
    for family in ["llama", "qwen3"] {
        let opened = open_model(&tiny(family)).unwrap();
        let device = ComputeDevice::new(ComputeKind::Cpu)
            .unwrap()
            .device
            .autodiff();
        let mut model =
            CausalLm::load(&opened.config, opened.tensors.as_ref(), None, &device).unwrap();
        model.ensure_lora_slots(1);
        let mut factors = new_lora_factors(
            &model,
            &["q_proj".into(), "k_proj".into(), "down_proj".into()],
            2,
            2.0,
            5,
        )
        .unwrap();
        // A nonzero B, so A's gradient is not zero either.
        for (k, f) in factors.iter_mut().enumerate() {
            for (i, b) in f.b.iter_mut().enumerate() {
                *b = (((i * 31 + k * 7) % 17) as f32 / 17.0 - 0.5) * 0.2;
            }
        }
        // Pairs sharing a prompt: every example twice with different answers, packed.
        let items = items(&tiny(family));
        let mut seqs = Vec::new();
        for it in items.iter().take(3) {
            seqs.push(it.sequence.clone());
            let mut other = it.sequence.clone();
            let last = other.input_ids.len() - 2;
            other.input_ids[last] = (other.input_ids[last] + 5) % 400 + 10;
            seqs.push(other);
        }
        let refs: Vec<&MaskedSequence> = seqs.iter().collect();
        let packed = pack_shared_prompts(&refs);
        assert!(
            packed.iter().any(PackedRow::is_shared),
            "{family}: nothing was packed"
        );
        let loss_at = |model: &mut CausalLm, factors: &[LoraFactors]| -> f64 {
            let _l = attach(model, 0, factors).unwrap();
            let (nll, _) = target_nll_sum(model, &packed, &coeffs(packed.len())).unwrap();
            f64::from(nll.into_data().try_to_vec::<f32>().unwrap()[0])
        };
        let leaves = attach(&mut model, 0, &factors).unwrap();
        let (nll, _) = target_nll_sum(&model, &packed, &coeffs(packed.len())).unwrap();
        let grads = gradients(&leaves, &nll.backward()).unwrap();
        // The largest gradient entry of A and B of every module.
        let checked = common::check_lora_gradients_by_finite_differences(
            &factors,
            &grads,
            |f| loss_at(&mut model, f),
            family,
        );
        assert!(checked >= 6, "{family}: only {checked} entries checked");
    }
}

fn request(out: &Path, device: ComputeKind, steps: usize) -> TrainRequest {
    let mut req = TrainRequest::new(tiny("llama"), tiny("chat.jsonl"), out.to_path_buf());
    req.init = AdapterInit::New {
        rank: 4,
        alpha: 8.0,
        targets: vec!["q_proj".into(), "v_proj".into(), "up_proj".into()],
        rslora: false,
    };
    req.spec = TrainSpec {
        lr: 5e-3,
        schedule: Schedule::Cosine,
        warmup_steps: 1,
        weight_decay: 0.01,
        length: TrainLength::Steps(steps),
        batch: 2,
        grad_accum: 1,
        max_grad_norm: Some(1.0),
        seed: 11,
        shuffle: true,
        checkpoint_every: Some(4),
        lora_dropout: 0.1,
        curve: None,
    };
    req.device = device;
    req
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn train(req: &TrainRequest, stop_after: Option<usize>) -> basin::experiments::train::TrainOutcome {
    let cancel = CancelFlag::new();
    let hooks = TrainHooks {
        progress: &|_| {},
        on_step: &|r| {
            if Some(r.step) == stop_after {
                cancel.cancel();
            }
        },
        on_checkpoint: &|_| {},
        cancel: &cancel,
    };
    run_train_job(req, &hooks, &|_| {}).unwrap()
}

#[test]
fn a_cancelled_then_resumed_run_ends_where_an_uninterrupted_one_does() {
    let whole = tmp_dir("whole");
    let parts = tmp_dir("parts");
    let done = train(&request(&whole, ComputeKind::Cpu, 7), None);
    assert_eq!((done.steps_done, done.cancelled), (7, false));
    let first = train(&request(&parts, ComputeKind::Cpu, 7), Some(3));
    assert_eq!((first.steps_done, first.cancelled), (3, true));
    assert_eq!(read_steps(&parts.join("train.jsonl")).unwrap().len(), 3);
    // A log line written after the last saved state (as by a kill) is dropped on resume.
    let second = train(&request(&parts, ComputeKind::Cpu, 7), None);
    assert_eq!((second.steps_done, second.steps_computed), (7, 4));
    let a = read_steps(&whole.join("train.jsonl")).unwrap();
    let b = read_steps(&parts.join("train.jsonl")).unwrap();
    assert_eq!(a.len(), 7);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.step, x.samples_seen, x.tokens),
            (y.step, y.samples_seen, y.tokens)
        );
        assert_eq!(x.loss, y.loss, "step {}", x.step);
        assert_eq!(x.grad_norm, y.grad_norm, "step {}", x.step);
    }
    let fa = std::fs::read(whole.join("final/adapter_model.safetensors")).unwrap();
    let fb = std::fs::read(parts.join("final/adapter_model.safetensors")).unwrap();
    assert!(
        fa == fb,
        "the resumed run's adapter differs from the uninterrupted one's"
    );
    // A crash after the checkpoint at 9 samples (step 5): only the log and the checkpoints are
    // on disk. Rerunning resumes from that checkpoint, drops the two logged steps after it and
    // ends with the same adapter.
    let crashed = tmp_dir("crashed");
    copy_dir(&whole, &crashed);
    std::fs::remove_dir_all(crashed.join("final")).unwrap();
    std::fs::remove_dir_all(crashed.join("checkpoints/samples-000013")).unwrap();
    assert_eq!(read_steps(&crashed.join("train.jsonl")).unwrap().len(), 7);
    let again = train(&request(&crashed, ComputeKind::Cpu, 7), None);
    assert_eq!((again.steps_done, again.steps_computed), (7, 2));
    let key = |v: &[basin::experiments::train_store::StepRecord]| -> Vec<(usize, usize, f64, f64)> {
        v.iter()
            .map(|r| (r.step, r.samples_seen, r.loss, r.grad_norm))
            .collect()
    };
    assert_eq!(
        key(&read_steps(&crashed.join("train.jsonl")).unwrap()),
        key(&a)
    );
    let fc = std::fs::read(crashed.join("final/adapter_model.safetensors")).unwrap();
    assert!(fa == fc, "the adapter resumed after a crash differs");
    let _ = std::fs::remove_dir_all(&crashed);
    // Checkpoints each time 4 more samples are seen; batches of 2 over 7 examples (the last
    // batch of an epoch holds 1) see 2, 4, 6, 7, 9, 11, 13 samples after each step.
    let ckpts: Vec<usize> = list_checkpoints(&whole)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(ckpts, vec![4, 9, 13]);
    for (_, dir) in list_checkpoints(&whole) {
        LoraAdapter::open(&dir).unwrap();
    }
    // Dropout is on and seeded: the loss differs from a run without it once B is nonzero (the
    // first update has lr 0 under warmup, so from step 3).
    let plain = tmp_dir("no-dropout");
    let mut req = request(&plain, ComputeKind::Cpu, 3);
    req.spec.lora_dropout = 0.0;
    train(&req, None);
    let c = read_steps(&plain.join("train.jsonl")).unwrap();
    // "The same" within f32 rounding: on an AVX2-only CPU (no AVX-512) the two runs' step-1
    // losses differ in the last bit of f32 (6.7480777 vs 6.7480780, measured 2026-12-07; equal
    // on the AVX-512 machines before, and at 8e38370 too, so not this change), while dropout on
    // a nonzero B moves the loss by orders of magnitude more.
    let rel = |x: f64, y: f64| (x - y).abs() / y.abs();
    assert!(
        rel(c[1].loss, a[1].loss) <= 1e-6,
        "{} vs {}",
        c[1].loss,
        a[1].loss
    );
    assert!(
        rel(c[2].loss, a[2].loss) > 1e-5,
        "{} vs {}",
        c[2].loss,
        a[2].loss
    );
    for d in [whole, parts, plain] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn training_on_wgpu_gives_the_cpu_losses() {
    let cpu = tmp_dir("cpu");
    let gpu = tmp_dir("gpu");
    let mut rc = request(&cpu, ComputeKind::Cpu, 3);
    rc.spec.lora_dropout = 0.0;
    let mut rg = request(&gpu, ComputeKind::Gpu, 3);
    rg.spec.lora_dropout = 0.0;
    train(&rc, None);
    train(&rg, None);
    let a = read_steps(&cpu.join("train.jsonl")).unwrap();
    let b = read_steps(&gpu.join("train.jsonl")).unwrap();
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x.loss - y.loss).abs() < 1e-4,
            "step {}: cpu {} vs gpu {}",
            x.step,
            x.loss,
            y.loss
        );
        assert!((x.grad_norm - y.grad_norm).abs() < 1e-3 * x.grad_norm);
    }
    for d in [cpu, gpu] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn bad_training_input_is_one_clear_line() {
    let out = tmp_dir("bad");
    let run = |extra: &[&str], data: &Path| {
        let o = basin()
            .args(["train", "--base"])
            .arg(tiny("llama"))
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{extra:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let chat = tiny("chat.jsonl");
    let err = run(&["--max-seq-len", "20"], &chat);
    assert!(err.contains("chat.jsonl") && err.contains("20"), "{err}");
    let err = run(&["--targets", "lm_head"], &chat);
    assert!(err.contains("lm_head"), "{err}");
    let err = run(&["--batch", "0"], &chat);
    assert!(err.contains("--batch"), "{err}");
    let err = run(&["--lora-dropout", "1.5"], &chat);
    assert!(err.contains("dropout"), "{err}");
    assert!(
        !out.join("run.json").exists(),
        "a refused run left a run.json behind"
    );
    let broken = out.with_extension("jsonl");
    std::fs::write(&broken, "{\"id\": \"a\", \"messages\": [\n").unwrap();
    let err = run(&[], &broken);
    assert!(
        err.contains(broken.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    let err = run(&["--init-adapter", tiny("qwen3").to_str().unwrap()], &chat);
    assert!(err.contains("adapter_config.json"), "{err}");
    // Truncation keeps a long example when asked (and names it when nothing is left to train).
    let ok = basin()
        .args(["train", "--base"])
        .arg(tiny("llama"))
        .arg("--data")
        .arg(&chat)
        .arg("--out")
        .arg(out.join("trunc"))
        .args(["--max-seq-len", "40", "--truncate", "--steps", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(
        ok.status.success() || err.contains("nothing to train on"),
        "{err}"
    );
    for lines in ["", "\n"] {
        std::fs::write(&broken, lines).unwrap();
        let err = run(&[], &broken);
        assert!(
            err.contains("no example") || err.contains(broken.to_str().unwrap()),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&broken);
}

#[test]
fn schedules_equal_transformers() {
    let reference = reference();
    let mut n = 0;
    for s in reference["schedules"].as_array().unwrap() {
        let kind = match s["kind"].as_str().unwrap() {
            "constant" => Schedule::Constant,
            "linear" => Schedule::Linear,
            _ => Schedule::Cosine,
        };
        let (w, t) = (
            s["warmup"].as_u64().unwrap() as usize,
            s["total"].as_u64().unwrap() as usize,
        );
        for (step, want) in s["factors"].as_array().unwrap().iter().enumerate() {
            let got = kind.factor(step, w, t);
            assert!(
                (got - want.as_f64().unwrap()).abs() < 1e-12,
                "{kind:?} w{w} t{t} step {step}: {got} vs {want}"
            );
            n += 1;
        }
    }
    assert!(n > 50);
}

/// SmolLM2-135M-Instruct (the fetched GGUF): continuing a PEFT adapter for 8 steps gives the
/// per-step losses of the same loop in PEFT + torch, and the final adapter its mean NLL.
#[test]
fn smollm2_short_run_matches_the_peft_loop() {
    let dir = fixtures().join("train/smollm2");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let gguf = common::smollm2_gguf();
    let out = tmp_dir("smollm2");
    let r = &reference["run"];
    let mut req = TrainRequest::new(gguf.clone(), tiny("chat.jsonl"), out.clone());
    req.init = AdapterInit::Existing(dir.join("init_adapter"));
    req.spec = TrainSpec {
        lr: r["lr"].as_f64().unwrap(),
        schedule: Schedule::Linear,
        warmup_steps: r["warmup_steps"].as_u64().unwrap() as usize,
        weight_decay: r["weight_decay"].as_f64().unwrap(),
        length: TrainLength::Steps(r["steps"].as_u64().unwrap() as usize),
        batch: r["batch"].as_u64().unwrap() as usize,
        grad_accum: r["grad_accum"].as_u64().unwrap() as usize,
        max_grad_norm: r["max_grad_norm"].as_f64(),
        seed: 0,
        shuffle: false,
        checkpoint_every: None,
        lora_dropout: 0.0,
        curve: None,
    };
    // Basin encodes the examples as transformers' tokenizer did.
    let ours = items(&gguf);
    for (it, want) in ours.iter().zip(reference["encoded"].as_array().unwrap()) {
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
        let mask: Vec<bool> = serde_json::from_value(want["target_mask"].clone()).unwrap();
        assert_eq!(
            (&it.sequence.input_ids, &it.sequence.target_mask),
            (&ids, &mask),
            "{}",
            it.id
        );
    }
    train(&req, None);
    let steps = read_steps(&out.join("train.jsonl")).unwrap();
    let want = reference["steps"].as_array().unwrap();
    assert_eq!(steps.len(), want.len());
    let mut worst = 0.0f64;
    for (got, w) in steps.iter().zip(want) {
        let wl = w["loss"].as_f64().unwrap();
        worst = worst.max((got.loss - wl).abs());
        assert!(
            (got.loss - wl).abs() < 1e-3,
            "step {}: loss {} vs PEFT {wl}",
            got.step,
            got.loss
        );
        let wn = w["grad_norm"].as_f64().unwrap();
        assert!(
            (got.grad_norm - wn).abs() < 1e-2 * wn,
            "step {}: grad norm {} vs {wn}",
            got.step,
            got.grad_norm
        );
    }
    // Steps 5 and 6 see the batches of steps 1 and 2 again (7 examples, batch 2): lower loss.
    assert!(
        steps[4].loss < steps[0].loss - 0.05,
        "the loss did not go down: {steps:?}"
    );
    assert!(
        steps[5].loss < steps[1].loss - 0.05,
        "the loss did not go down: {steps:?}"
    );
    let nll = eval_mean_nll(&gguf, &out.join("final"));
    let want_nll = reference["final_mean_nll"].as_f64().unwrap();
    assert!(
        (nll - want_nll).abs() < 1e-3,
        "final mean NLL {nll} vs PEFT {want_nll}"
    );
    eprintln!(
        "SmolLM2: worst per-step loss difference vs PEFT {worst:.2e}; final NLL {nll:.6} vs {want_nll:.6}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// `basin sweep --checkpoints`: the base at 0 samples and every saved adapter, in one store,
/// with the same values a plain LoRA sweep of each adapter gives, and an onset row.
#[test]
fn checkpoint_sweep_evaluates_every_adapter_against_samples_seen() {
    let train_dir = tmp_dir("ckpt-train");
    let st = basin()
        .args(["train", "--base"])
        .arg(tiny("llama"))
        .arg("--data")
        .arg(tiny("chat.jsonl"))
        .arg("--out")
        .arg(&train_dir)
        .args([
            "--rank",
            "4",
            "--targets",
            "q_proj,v_proj,down_proj",
            "--lr",
            "2e-2",
            "--steps",
            "4",
            "--batch",
            "2",
            "--checkpoint-every",
            "4",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let suite = common::repo().join("assets/suites/default/suite.toml");
    let sweep_dir = tmp_dir("ckpt-sweep");
    let sw = basin()
        .args(["sweep", "--base"])
        .arg(tiny("llama"))
        .arg("--checkpoints")
        .arg(&train_dir)
        .arg("--suite")
        .arg(&suite)
        .arg("--out")
        .arg(&sweep_dir)
        .args(["--bootstrap", "200"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&sw.stderr);
    assert!(sw.status.success(), "{err}");
    assert!(err.contains("onset of"), "{err}");
    // Samples seen after each step: 2, 4, 6, 7 → a checkpoint at 4, the final adapter at 7.
    let csv = std::fs::read_to_string(sweep_dir.join("summary.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("samples_seen,"), "{csv}");
    let coords: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r.split(',').next().unwrap())
        .collect();
    assert_eq!(coords, vec!["0", "4", "7", "onset"], "{csv}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep_dir.join("run.json")).unwrap())
            .unwrap();
    assert_eq!(run["spec"]["path"], "checkpoints");
    assert_eq!(run["spec"]["coordinate"], "samples_seen");
    // The final adapter's values equal a LoRA sweep of that adapter at t = 1, and the base's
    // those at t = 0.
    let lora_dir = tmp_dir("ckpt-lora");
    let lw = basin()
        .args(["sweep", "--base"])
        .arg(tiny("llama"))
        .arg("--adapter")
        .arg(train_dir.join("final"))
        .arg("--suite")
        .arg(&suite)
        .arg("--out")
        .arg(&lora_dir)
        .args(["--t", "0:1:2", "--bootstrap", "200"])
        .output()
        .unwrap();
    assert!(
        lw.status.success(),
        "{}",
        String::from_utf8_lossy(&lw.stderr)
    );
    let read = |dir: &Path| {
        basin::experiments::sweep_store::read_results(&dir.join("results.jsonl")).unwrap()
    };
    let (ck, lo) = (read(&sweep_dir), read(&lora_dir));
    let mut compared = 0;
    for ((t, metric), r) in &ck {
        let t: f64 = t.parse().unwrap();
        let lora_t = if t == 0.0 {
            Some(0.0)
        } else if t == 7.0 {
            Some(1.0)
        } else {
            None
        };
        let Some(lt) = lora_t else { continue };
        let key = (basin::experiments::sweep_store::t_key(lt), metric.clone());
        let other = &lo[&key];
        assert!(
            (r.value - other.value).abs() < 1e-6,
            "{metric} at {t} samples: {} vs {}",
            r.value,
            other.value
        );
        compared += 1;
    }
    assert_eq!(compared, 10, "5 metrics at 2 points");
    // Training on the chat data moves the instruction loss away from the base's.
    let base_nll = &ck[&(
        basin::experiments::sweep_store::t_key(0.0),
        "instruction".to_string(),
    )];
    let last_nll = &ck[&(
        basin::experiments::sweep_store::t_key(7.0),
        "instruction".to_string(),
    )];
    assert_ne!(base_nll.value, last_nll.value);
    // A folder without checkpoints is one clear error.
    let empty = tmp_dir("ckpt-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = basin()
        .args(["sweep", "--base"])
        .arg(tiny("llama"))
        .arg("--checkpoints")
        .arg(&empty)
        .arg("--suite")
        .arg(&suite)
        .arg("--out")
        .arg(empty.join("out"))
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("no checkpoint"));
    for d in [train_dir, sweep_dir, lora_dir, empty] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A CPU batch split into lanes (threads, each on a shallow clone of the model) gives the
/// gradients of the batch run whole: same parts' sums, each row's own path coefficient kept.
#[test]
fn lanes_give_the_gradients_of_the_whole_batch() {
    let (model, factors) = model_with_adapter(ComputeKind::Cpu);
    let items = items(&tiny("llama"));
    let batch = &items[..items.len().min(5)];
    assert!(batch.len() >= 3, "the fixture has {} chats", batch.len());
    let rows = rows(batch);
    // Per-row coefficients (as a curve's t draws give), so a mis-sliced part would show.
    let coeffs = PathCoefficients {
        lora: vec![(0..rows.len()).map(|i| 0.3 + 0.25 * i as f32).collect()],
        ..Default::default()
    };
    // Each part's rows' NLL sums add up to its total; every row is reported once, in order.
    // (loss, leaf gradients, per-row (NLL sum, targets)) of each lane's part.
    type Part = (
        f32,
        basin::model::trainable::LeafGradients,
        Vec<(f64, usize)>,
    );
    let sum = |parts: Vec<Part>| {
        let mut loss = 0.0f64;
        let mut flat = Vec::new();
        let mut rows_seen = 0;
        for (k, (value, g, per_row)) in parts.into_iter().enumerate() {
            let row_sum: f64 = per_row.iter().map(|r| r.0).sum();
            assert!((row_sum - f64::from(value)).abs() < 1e-3 * row_sum.abs().max(1.0));
            assert!(per_row.iter().all(|r| r.1 > 0 && r.0 > 0.0));
            rows_seen += per_row.len();
            loss += f64::from(value);
            let g: Vec<f32> = g
                .into_iter()
                .flat_map(|(a, b)| a.into_iter().chain(b))
                .collect();
            if k == 0 {
                flat = g;
            } else {
                flat.iter_mut().zip(g).for_each(|(x, y)| *x += y);
            }
        }
        assert_eq!(rows_seen, 5.min(items.len()));
        (loss, flat)
    };
    let whole = batch_gradients(&model, 0, &factors, &rows, &coeffs, 1, true).unwrap();
    assert_eq!(whole.len(), 1);
    let (loss1, g1) = sum(whole);
    for lanes in [2, 3] {
        let parts = batch_gradients(&model, 0, &factors, &rows, &coeffs, lanes, true).unwrap();
        assert_eq!(parts.len(), lanes);
        let (loss, g) = sum(parts);
        assert!(
            (loss - loss1).abs() < 1e-4 * loss1.abs(),
            "{lanes} lanes: loss {loss} vs {loss1}"
        );
        let scale = max_abs(&g1);
        assert!(scale > 0.0);
        let worst = g
            .iter()
            .zip(&g1)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5 * scale,
            "{lanes} lanes: worst gradient difference {worst} (scale {scale})"
        );
    }
}

#[test]
fn balanced_parts_cut_contiguous_ranges_of_about_equal_tokens() {
    assert_eq!(balanced_parts(&[10, 10, 10, 10], 2), vec![0..2, 2..4]);
    assert_eq!(balanced_parts(&[100, 1, 1], 2), vec![0..1, 1..3]);
    assert_eq!(balanced_parts(&[1, 1, 100], 2), vec![0..2, 2..3]);
    assert_eq!(balanced_parts(&[5, 5], 4), vec![0..1, 1..2]);
    assert_eq!(balanced_parts(&[7, 3, 9], 1), vec![0..3]);
    assert_eq!(balanced_parts(&[4; 8], 3).len(), 3);
    assert!(balanced_parts(&[], 2).is_empty());
}
