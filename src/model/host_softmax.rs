//! Target log-probabilities from a block of logits on the host CPU, in one pass per row for the
//! maximum and one for the sum of exponentials, with a vectorised `exp`.
//!
//! Its tensor-op twin is `logprobs::target_log_softmax` (the path every other device takes and
//! that autodiff differentiates); a test checks they agree. On burn-flex the twin runs each
//! element through libm's scalar `expf` and makes a separate pass for every operation (shift,
//! gather, exp, block sums, log); here a row is read twice and its exponentials summed in f64.

/// `log_softmax(row)[target]` for each row of `logits` (`[rows, vocab]`, row-major).
///
/// A target outside `0..vocab` gives NaN (callers check targets against the vocabulary first).
/// A row holding NaN, or +∞, gives NaN, as the twin does.
pub fn target_log_softmax_rows(logits: &[f32], vocab: usize, targets: &[i64]) -> Vec<f32> {
    if vocab == 0 {
        return vec![f32::NAN; targets.len()];
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for (checked above).
            return unsafe { rows_avx2(logits, vocab, targets) };
        }
    }
    rows_generic(logits, vocab, targets)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(logits: &[f32], vocab: usize, targets: &[i64]) -> Vec<f32> {
    rows_generic(logits, vocab, targets)
}

// Plain index loops throughout: iterator adaptors (`map`, `fold`, `sum`) are functions of their
// own that need not be inlined, and a function that is not inlined into `rows_avx2` loses its
// target features (measured: the adaptor version ran as SSE2 code).
#[inline(always)]
fn rows_generic(logits: &[f32], vocab: usize, targets: &[i64]) -> Vec<f32> {
    let rows = (logits.len() / vocab).min(targets.len());
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        out.push(row_target_log_softmax(
            &logits[r * vocab..(r + 1) * vocab],
            targets[r],
        ));
    }
    out
}

/// Lanes of the reductions: independent accumulators the compiler keeps in vector registers.
const LANES: usize = 16;

#[inline(always)]
fn row_target_log_softmax(row: &[f32], target: i64) -> f32 {
    let Some(&target_logit) = usize::try_from(target).ok().and_then(|t| row.get(t)) else {
        return f32::NAN;
    };
    let max = row_max(row);
    let sum = row_exp_sum(row, max);
    (f64::from(target_logit - max) - sum.ln()) as f32
}

/// Target log-probs of rows whose logits arrive one vocabulary chunk at a time: a running
/// maximum and a rescaled sum of exponentials per row (the online log-sum-exp), so a caller can
/// form logits for many rows against one slice of the output head at a time instead of all the
/// vocabulary for a few rows (the head is then read once per pass, not once per few rows).
///
/// Per chunk, each row is read twice (its maximum, then its exponentials relative to the new
/// running maximum, summed in f64); the old sum is rescaled by `exp(old max − new max)` in f64.
/// A row that meets NaN or +∞ gives NaN; a target no chunk covers gives NaN.
#[derive(Debug, Clone)]
pub struct StreamedRows {
    targets: Vec<i64>,
    max: Vec<f32>,
    sum: Vec<f64>,
    target_logit: Vec<f32>,
}

impl StreamedRows {
    pub fn new(targets: &[i64]) -> Self {
        let n = targets.len();
        Self {
            targets: targets.to_vec(),
            max: vec![f32::NEG_INFINITY; n],
            sum: vec![0.0; n],
            target_logit: vec![f32::NAN; n],
        }
    }

    /// Adds the logits of every row for vocabulary entries `first..first + width`: `logits` is
    /// `[rows, width]` row-major, rows in the order of `targets`.
    pub fn add_chunk(&mut self, logits: &[f32], first: usize, width: usize) {
        if width == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features the function is compiled for (checked above).
                unsafe { self.add_chunk_avx2(logits, first, width) };
                return;
            }
        }
        self.add_chunk_generic(logits, first, width);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_chunk_avx2(&mut self, logits: &[f32], first: usize, width: usize) {
        self.add_chunk_generic(logits, first, width);
    }

    #[inline(always)]
    fn add_chunk_generic(&mut self, logits: &[f32], first: usize, width: usize) {
        let rows = (logits.len() / width).min(self.targets.len());
        for r in 0..rows {
            let row = &logits[r * width..(r + 1) * width];
            let local = self.targets[r] - first as i64;
            if local >= 0 && (local as usize) < width {
                self.target_logit[r] = row[local as usize];
            }
            let chunk_max = row_max(row);
            let old = self.max[r];
            let new = old.max(chunk_max);
            let rescale = if self.sum[r] == 0.0 {
                0.0
            } else {
                (f64::from(old) - f64::from(new)).exp()
            };
            // A chunk (and everything before it) at −∞ adds nothing, not exp(−∞ − (−∞)) = NaN.
            let chunk_sum = if new == f32::NEG_INFINITY {
                0.0
            } else {
                row_exp_sum(row, new)
            };
            self.sum[r] = self.sum[r] * rescale + chunk_sum;
            self.max[r] = new;
        }
    }

    /// `log_softmax(row)[target]` per row, once every chunk of the vocabulary was added.
    pub fn finish(self) -> Vec<f32> {
        self.target_logit
            .iter()
            .zip(&self.max)
            .zip(&self.sum)
            .map(|((&t, &m), &s)| (f64::from(t - m) - s.ln()) as f32)
            .collect()
    }
}

/// The largest element of `row` (−∞ when empty; NaN elements are skipped), in 16 lanes. Inlined,
/// so it runs with the target features of the function that calls it.
#[inline(always)]
pub(crate) fn row_max(row: &[f32]) -> f32 {
    let full = row.len() / LANES * LANES;
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let mut i = 0;
    while i < full {
        for j in 0..LANES {
            maxes[j] = maxes[j].max(row[i + j]);
        }
        i += LANES;
    }
    let mut max = f32::NEG_INFINITY;
    for &m in &maxes {
        max = max.max(m);
    }
    for &x in &row[full..] {
        max = max.max(x);
    }
    max
}

/// `Σ exp(x − max)` over the row, in f64.
#[inline(always)]
fn row_exp_sum(row: &[f32], max: f32) -> f64 {
    let full = row.len() / LANES * LANES;
    let mut sums = [0f64; LANES];
    let mut i = 0;
    while i < full {
        for j in 0..LANES {
            sums[j] += f64::from(exp_f32(row[i + j] - max));
        }
        i += LANES;
    }
    let mut sum = 0f64;
    for &s in &sums {
        sum += s;
    }
    for &x in &row[full..] {
        sum += f64::from(exp_f32(x - max));
    }
    sum
}

/// `exp(x)` for f32 without branches (so a loop of it vectorises): `2^k · e^r` with
/// `x = k·ln 2 + r`, |r| ≤ ln 2 / 2, `e^r` by its degree-6 Taylor polynomial (truncation error
/// below 1.2e-7 relative). Inputs below −87.3 (where `2^k` would leave the normal range) give 0,
/// NaN gives NaN. Meant for `x ≤ 0` (shifted logits): above 88.7 the result is wrong.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that k·LN2_HI is exact for |k| < 2^8.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LOWEST: f32 = -87.33;
    let shifted = x * LOG2_E + ROUND;
    let k = shifted - ROUND;
    let k_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits((k_int.wrapping_add(127) as u32) << 23);
    if x < LOWEST { 0.0 } else { p * scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64s_down_to_the_normal_range() {
        let mut worst = 0f64;
        let mut x = -87.3f32;
        while x <= 0.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp_f32(x));
            worst = worst.max((got - want).abs() / want);
            x += 0.000_731;
        }
        // One f32 ulp is 2^-23 ≈ 1.19e-7 relative at most.
        assert!(worst < 2.4e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    fn reference(row: &[f32], target: usize) -> f64 {
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
        let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
        f64::from(row[target]) - max - sum.ln()
    }

    #[test]
    fn rows_match_an_f64_log_softmax_with_and_without_the_vector_path() {
        let mut state = 5u64;
        for vocab in [1, 15, 16, 17, 1500, 49_152] {
            let rows = 4;
            let logits = crate::test_fixtures::uniform(&mut state, rows * vocab, 30.0);
            let targets: Vec<i64> = (0..rows as i64)
                .map(|r| (r * 7919) % vocab as i64)
                .collect();
            let fast = target_log_softmax_rows(&logits, vocab, &targets);
            let plain = rows_generic(&logits, vocab, &targets);
            for (r, (&f, &p)) in fast.iter().zip(&plain).enumerate() {
                let want = reference(&logits[r * vocab..(r + 1) * vocab], targets[r] as usize);
                let tol = 2e-6 * want.abs().max(1.0);
                assert!(
                    (f64::from(f) - want).abs() <= tol,
                    "vocab {vocab}: {f} vs {want}"
                );
                assert!(
                    (f64::from(p) - want).abs() <= tol,
                    "vocab {vocab}: {p} vs {want}"
                );
            }
        }
    }

    #[test]
    fn streamed_chunks_match_an_f64_log_softmax_for_any_chunk_width() {
        let mut state = 11u64;
        for vocab in [1, 17, 1500, 49_152] {
            let rows = 3;
            let logits = crate::test_fixtures::uniform(&mut state, rows * vocab, 30.0);
            let targets: Vec<i64> = (0..rows as i64)
                .map(|r| (r * 7919 + 3) % vocab as i64)
                .collect();
            let whole = target_log_softmax_rows(&logits, vocab, &targets);
            for width in [1, 7, 16, 1000, vocab] {
                if width > vocab {
                    continue;
                }
                let mut acc = StreamedRows::new(&targets);
                let mut first = 0;
                while first < vocab {
                    let w = width.min(vocab - first);
                    let block: Vec<f32> = (0..rows)
                        .flat_map(|r| logits[r * vocab + first..r * vocab + first + w].to_vec())
                        .collect();
                    acc.add_chunk(&block, first, w);
                    first += w;
                }
                let got = acc.finish();
                for r in 0..rows {
                    let want = reference(&logits[r * vocab..(r + 1) * vocab], targets[r] as usize);
                    let tol = 2e-6 * want.abs().max(1.0);
                    assert!(
                        (f64::from(got[r]) - want).abs() <= tol,
                        "vocab {vocab}, width {width}, row {r}: {} vs {want}",
                        got[r]
                    );
                    assert!((got[r] - whole[r]).abs() <= tol as f32);
                }
            }
        }
    }

    #[test]
    fn streamed_rows_give_nan_where_the_whole_row_form_does() {
        let run = |row: &[f32], target: i64| {
            let mut acc = StreamedRows::new(&[target]);
            for (i, x) in row.iter().enumerate() {
                acc.add_chunk(&[*x], i, 1);
            }
            acc.finish()[0]
        };
        assert!(run(&[0.5, f32::NAN, 1.0], 0).is_nan());
        assert!(run(&[0.5, f32::INFINITY, 1.0], 0).is_nan());
        assert!(run(&[0.5, 2.0, 1.0], 3).is_nan());
        assert!(run(&[0.5, 2.0, 1.0], -1).is_nan());
        assert!(run(&[f32::NEG_INFINITY, f32::NEG_INFINITY], 0).is_nan());
        // Leading −∞ entries are probability zero, not a NaN.
        let got = run(&[f32::NEG_INFINITY, 0.0, 0.0], 1);
        assert!((got - (-std::f32::consts::LN_2)).abs() < 1e-6, "{got}");
        let got = run(&[f32::NEG_INFINITY, 0.0, 0.0], 0);
        assert_eq!(got, f32::NEG_INFINITY);
    }

    #[test]
    fn bad_rows_and_targets_give_nan_not_a_panic() {
        let row = [0.5f32, f32::NAN, 1.0];
        assert!(target_log_softmax_rows(&row, 3, &[0])[0].is_nan());
        let row = [0.5f32, f32::INFINITY, 1.0];
        assert!(target_log_softmax_rows(&row, 3, &[0])[0].is_nan());
        let row = [0.5f32, 2.0, 1.0];
        assert!(target_log_softmax_rows(&row, 3, &[3])[0].is_nan());
        assert!(target_log_softmax_rows(&row, 3, &[-1])[0].is_nan());
        assert!(target_log_softmax_rows(&row, 0, &[0])[0].is_nan());
    }
}
