//! `--proj-dim K`: seeded random projections of per-sample LoRA gradients, and a cache of the
//! projected training gradients so a second query at the same checkpoints skips the backward
//! passes.
//!
//! The projection is a CountSketch applied per LoRA module: coordinate i of module l goes to
//! bucket h(l, i) of that module's k_l buckets with sign s(l, i), both from a hash of the seed
//! and the coordinate (nothing stored). E[⟨Pg, Pq⟩] = ⟨g, q⟩ for every pair of vectors, inside
//! each module too, so gradsim, TracIn and DataInf (per module) work on the sketches; the
//! variance of an inner product is at most ‖g‖²‖q‖²/k_l. Module l gets
//! k_l = ⌈K · len_l / D⌉ buckets (at most len_l, where the sketch is skipped: the exact
//! coordinates are kept), so the sketch has about K entries in all.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::checkpoint::{
    peft_writer::{NamedF32, write_f32_safetensors},
    safetensors_file::SafetensorsFile,
};

/// A CountSketch of flat gradients made of consecutive module segments.
#[derive(Debug, Clone, PartialEq)]
pub struct GradSketch {
    pub seed: u64,
    /// Each module's (length, buckets); buckets == length keeps the module exact.
    pub layers: Vec<(usize, usize)>,
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl GradSketch {
    /// About `dim` entries in all over modules of the given lengths.
    pub fn new(layers: &[usize], dim: usize, seed: u64) -> Self {
        let total: usize = layers.iter().sum::<usize>().max(1);
        let layers = layers
            .iter()
            .map(|&len| {
                let k = (dim * len).div_ceil(total).clamp(1, len.max(1));
                (len, k)
            })
            .collect();
        Self { seed, layers }
    }

    /// Entries of a sketch.
    pub fn dim(&self) -> usize {
        self.layers.iter().map(|l| l.1).sum()
    }

    /// The sketch's module lengths (what DataInf's per-module algebra runs on).
    pub fn sketched_layers(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.1).collect()
    }

    /// Pg. `g` must be the concatenation of the modules (a shorter `g` is padded with zeros).
    pub fn apply(&self, g: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.dim());
        let mut start = 0usize;
        for (l, &(len, k)) in self.layers.iter().enumerate() {
            let seg = g.get(start..(start + len).min(g.len())).unwrap_or_default();
            if k >= len {
                out.extend_from_slice(seg);
                out.extend(std::iter::repeat_n(0.0, len - seg.len()));
            } else {
                let mut buckets = vec![0.0f64; k];
                let layer_seed = mix(self.seed ^ mix(l as u64 + 1));
                for (i, &v) in seg.iter().enumerate() {
                    let h = mix(layer_seed ^ i as u64);
                    let bucket = (h % k as u64) as usize;
                    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
                    buckets[bucket] += sign * f64::from(v);
                }
                out.extend(buckets.into_iter().map(|b| b as f32));
            }
            start += len;
        }
        out
    }
}

/// Projected training gradients of one adapter on one data set, on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCache {
    pub dir: PathBuf,
}

/// The cache's default home: `$BASIN_CACHE/influence-grads` (`~/.cache/basin` when unset).
pub fn default_cache_dir() -> Option<PathBuf> {
    crate::cache_dir::basin_cache_dir().map(|root| root.join("influence-grads"))
}

/// A cache key: SHA-256 of the parts (fingerprints of the base, the adapter and the data, the
/// token limit, the sketch's size and seed).
pub fn cache_key(parts: &[String]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl GradCache {
    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.safetensors"))
    }

    /// The gradients and their exact norms stored under `key`, when they are there with the
    /// expected shape (anything else, a torn or foreign file included, is a miss).
    pub fn load(&self, key: &str, n: usize, dim: usize) -> Option<(Vec<Vec<f32>>, Vec<f64>)> {
        let file = SafetensorsFile::open(self.file(key)).ok()?;
        let grads = file.load_f32("grads").ok()?;
        let norms = file.load_f32("norms").ok()?;
        if grads.shape != [n, dim] || norms.shape != [n] {
            return None;
        }
        let rows = grads.data.chunks(dim.max(1)).map(<[f32]>::to_vec).collect();
        Some((rows, norms.data.iter().map(|&v| f64::from(v)).collect()))
    }

    /// Stores gradients (n × dim) and norms under `key`, atomically.
    pub fn store(&self, key: &str, grads: &[Vec<f32>], norms: &[f64]) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let dim = grads.first().map_or(0, Vec::len);
        let flat: Vec<f32> = grads.iter().flatten().copied().collect();
        let norms: Vec<f32> = norms.iter().map(|&v| v as f32).collect();
        let path = self.file(key);
        write_f32_safetensors(
            &path,
            &[
                NamedF32 {
                    name: "grads".into(),
                    shape: vec![grads.len(), dim],
                    data: &flat,
                },
                NamedF32 {
                    name: "norms".into(),
                    shape: vec![norms.len()],
                    data: &norms,
                },
            ],
        )
        .map_err(|e| e.to_string())
    }

    pub fn path_of(&self, key: &str) -> PathBuf {
        self.file(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        Path::new(&self.file(key)).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::SplitMix64;

    fn gaussian(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                // Sum of uniforms: close enough to Gaussian for a test vector.
                let s: f64 = (0..6)
                    .map(|_| rng.next_u64() as f64 / u64::MAX as f64)
                    .sum();
                (s - 3.0) as f32
            })
            .collect()
    }

    #[test]
    fn inner_products_are_kept_on_average_and_modules_stay_apart() {
        let layers = [3000, 1000];
        let mut rng = SplitMix64::new(7);
        let g = gaussian(&mut rng, 4000);
        let q: Vec<f32> = g
            .iter()
            .zip(gaussian(&mut rng, 4000))
            .map(|(a, b)| 0.5 * a + b)
            .collect();
        let exact: f64 = g.iter().zip(&q).map(|(&a, &b)| f64::from(a * b)).sum();
        let seeds = 200;
        let mut mean = 0.0;
        for seed in 0..seeds {
            let s = GradSketch::new(&layers, 400, seed);
            assert_eq!(s.sketched_layers(), vec![300, 100]);
            let (pg, pq) = (s.apply(&g), s.apply(&q));
            mean += pg
                .iter()
                .zip(&pq)
                .map(|(&a, &b)| f64::from(a * b))
                .sum::<f64>();
        }
        mean /= seeds as f64;
        let norm = (g.iter().map(|&v| f64::from(v * v)).sum::<f64>()
            * q.iter().map(|&v| f64::from(v * v)).sum::<f64>())
        .sqrt();
        // The mean of 200 sketches: standard error ≤ ‖g‖‖q‖/√(100·200).
        assert!(
            (mean - exact).abs() < 4.0 * norm / (100.0f64 * 200.0).sqrt(),
            "{mean} vs {exact}"
        );
        // Same seed, same sketch; a vector living in module 1 only stays in module 1's buckets.
        let s = GradSketch::new(&layers, 400, 3);
        assert_eq!(s.apply(&g), s.apply(&g));
        let mut only1 = vec![0.0f32; 4000];
        only1[3500] = 2.0;
        let p = s.apply(&only1);
        assert!(p[..300].iter().all(|&v| v == 0.0));
        assert_eq!(p[300..].iter().map(|v| v.abs()).sum::<f32>(), 2.0);
        // A module smaller than its share stays exact.
        let s = GradSketch::new(&[10, 90], 1000, 1);
        assert_eq!(s.apply(&g[..100]), g[..100].to_vec());
    }

    #[test]
    fn the_cache_round_trips_and_misses_on_another_shape() {
        let dir = std::env::temp_dir().join(format!("basin-gradcache-{}", std::process::id()));
        let cache = GradCache { dir: dir.clone() };
        let key = cache_key(&["a".into(), "b".into()]);
        assert_ne!(key, cache_key(&["ab".into()]));
        let grads = vec![vec![1.0f32, 2.0, 3.0], vec![4.0, 5.0, 6.0]];
        cache.store(&key, &grads, &[1.5, 2.5]).unwrap();
        let (g, n) = cache.load(&key, 2, 3).unwrap();
        assert_eq!(g, grads);
        assert_eq!(n, vec![1.5, 2.5]);
        assert!(cache.load(&key, 3, 2).is_none());
        std::fs::write(cache.path_of(&key), b"torn").unwrap();
        assert!(cache.load(&key, 2, 3).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
