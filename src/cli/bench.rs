//! `basin bench-eval`: Basin's side of `bench/eval_vs_torch.sh`. Same work as
//! `bench/torch_eval.py`: templated ids of each example truncated to `--seq-len`, one batch,
//! forward + log-softmax + each next token's log-prob, timed over repeats after a warm-up.

use std::{path::PathBuf, time::Instant};

use anyhow::{Result, bail};

use crate::{
    checkpoint::open::open_model,
    compute::{ComputeDevice, ComputeKind},
    experiments::inputs::chat_template_of,
    model::{
        load::PathEndpoints,
        logprobs::{MaskedSequence, target_logprobs},
        path_param::PathCoefficients,
        transformer::CausalLm,
        weight_dtype::WeightDType,
    },
    text::{dataset::load_chat_jsonl, encode::encode_example},
};

#[derive(Debug, clap::Args)]
pub struct BenchEvalArgs {
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub model: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
    /// What the weights are stored in (as `basin eval --dtype`).
    #[arg(long, value_enum, default_value_t = WeightDType::F32)]
    pub dtype: WeightDType,
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
}

pub fn run(args: &BenchEvalArgs) -> Result<()> {
    if args.repeats == 0 || args.seq_len < 2 {
        bail!("--repeats must be ≥ 1 and --seq-len ≥ 2");
    }
    let mut compute = ComputeDevice::new(args.device)?;
    compute.label = args.dtype.device_label(&compute.label);
    let opened = open_model(&args.model)?;
    let template = chat_template_of(&opened.tokenizer)?;
    let mut batch = Vec::new();
    for ex in load_chat_jsonl(&args.data)? {
        let enc = encode_example(&opened.tokenizer, &template, &ex, usize::MAX)?;
        if enc.input_ids.len() < args.seq_len {
            bail!(
                "{}: example {} has {} tokens < {}",
                args.data.display(),
                ex.id,
                enc.input_ids.len(),
                args.seq_len
            );
        }
        let ids = enc.input_ids[..args.seq_len].to_vec();
        let mut mask = vec![true; args.seq_len];
        mask[0] = false;
        batch.push(MaskedSequence {
            input_ids: ids,
            target_mask: mask,
        });
    }
    let load_start = Instant::now();
    let model = CausalLm::load_path_until(
        &opened.config,
        opened.tensors.as_ref(),
        &PathEndpoints::default(),
        &compute.device,
        args.dtype,
        &|| false,
    )?;
    let load_s = load_start.elapsed().as_secs_f64();
    // The first forward pays for compiling each kernel (shader compilation on a GPU, unless a
    // driver cache holds them from an earlier process): the cold start a user sees once.
    let warmup_start = Instant::now();
    let warm = target_logprobs(&model, &batch, &PathCoefficients::default())?;
    let warmup_s = warmup_start.elapsed().as_secs_f64();
    let checksum: f64 = warm.iter().flatten().map(|&v| v as f64).sum();
    let mut seconds = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let t0 = Instant::now();
        let out = target_logprobs(&model, &batch, &PathCoefficients::default())?;
        seconds.push(t0.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median_s = sorted[sorted.len() / 2];
    let tokens = (batch.len() * args.seq_len) as f64;
    let report = serde_json::json!({
        "tokens_per_s": tokens / median_s,
        "seconds": seconds,
        "median_s": median_s,
        "batch": batch.len(),
        "seq_len": args.seq_len,
        "device": compute.label,
        "load_s": load_s,
        "warmup_s": warmup_s,
        "sum_logprob_checksum": checksum,
        "basin": env!("CARGO_PKG_VERSION"),
    });
    println!("{report}");
    Ok(())
}
