//! Seeded percentile bootstrap for 95% confidence intervals, resampling clusters (items, or
//! whole groups when items carry a group) with a small deterministic PRNG, so a result file is
//! reproducible from its seed.

/// Resamples per CI unless the caller asks for another number.
pub const DEFAULT_BOOTSTRAP_SAMPLES: usize = 1000;

/// SplitMix64: tiny, deterministic across platforms and crate upgrades.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n ≥ 1), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }
}

/// 95% percentile interval of `statistic` over `samples` resamples of the clusters.
/// `clusters[c]` lists the item indices of cluster c; `statistic` gets the resampled item
/// indices (with repetition). Returns `(low, high)`; with fewer than 2 clusters, both are the
/// statistic of the full sample.
pub fn bootstrap_ci(
    clusters: &[Vec<usize>],
    samples: usize,
    seed: u64,
    statistic: &dyn Fn(&[usize]) -> f64,
) -> (f64, f64) {
    let all: Vec<usize> = clusters.iter().flatten().copied().collect();
    if clusters.len() < 2 || samples == 0 {
        let v = statistic(&all);
        return (v, v);
    }
    let mut rng = SplitMix64::new(seed);
    let mut stats = Vec::with_capacity(samples);
    let mut picked = Vec::with_capacity(all.len());
    for _ in 0..samples {
        picked.clear();
        for _ in 0..clusters.len() {
            if let Some(c) = clusters.get(rng.below(clusters.len())) {
                picked.extend_from_slice(c);
            }
        }
        let v = statistic(&picked);
        if v.is_finite() {
            stats.push(v);
        }
    }
    if stats.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    stats.sort_by(f64::total_cmp);
    let last = stats.len() - 1;
    let at = |q: f64| {
        let k = ((q * last as f64).round() as usize).min(last);
        stats.get(k).copied().unwrap_or(f64::NAN)
    };
    (at(0.025), at(0.975))
}

/// Groups item indices into clusters: by group label when every item has one, else one cluster
/// per item. Cluster order follows first appearance (deterministic).
pub fn clusters_of(groups: &[Option<&str>]) -> Vec<Vec<usize>> {
    if !groups.is_empty() && groups.iter().all(|g| g.is_some()) {
        let mut order: Vec<&str> = Vec::new();
        let mut members: std::collections::HashMap<&str, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            let g = g.unwrap_or_default();
            members.entry(g).or_insert_with(|| {
                order.push(g);
                Vec::new()
            });
            if let Some(m) = members.get_mut(g) {
                m.push(i);
            }
        }
        order.iter().filter_map(|g| members.remove(g)).collect()
    } else {
        (0..groups.len()).map(|i| vec![i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_contains_the_mean() {
        let values: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
        let clusters = clusters_of(&vec![None; values.len()]);
        let mean = |idx: &[usize]| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64;
        let a = bootstrap_ci(&clusters, 500, 7, &mean);
        let b = bootstrap_ci(&clusters, 500, 7, &mean);
        assert_eq!(a, b);
        let m = mean(&(0..values.len()).collect::<Vec<_>>());
        assert!(a.0 < m && m < a.1, "{a:?} around {m}");
        assert_ne!(a, bootstrap_ci(&clusters, 500, 8, &mean));
        // The interval of a mean of 200 values in [0,1] is about ±0.04 wide.
        assert!(a.1 - a.0 > 0.02 && a.1 - a.0 < 0.2, "{a:?}");
    }

    #[test]
    fn groups_resample_whole_clusters() {
        let groups = [Some("a"), Some("a"), Some("b"), Some("b"), Some("c")];
        let clusters = clusters_of(&groups);
        assert_eq!(clusters, vec![vec![0, 1], vec![2, 3], vec![4]]);
        // A statistic that sees whole clusters: picked sizes are sums of cluster sizes.
        let sizes = std::cell::RefCell::new(Vec::new());
        bootstrap_ci(&clusters, 50, 1, &|idx| {
            sizes.borrow_mut().push(idx.len());
            0.0
        });
        assert!(sizes.borrow().iter().all(|&n| (3..=6).contains(&n)));
        // One missing group label: fall back to items.
        assert_eq!(clusters_of(&[Some("a"), None]).len(), 2);
    }

    #[test]
    fn below_is_in_range() {
        let mut r = SplitMix64::new(3);
        for n in 1..50 {
            assert!(r.below(n) < n);
        }
    }
}
