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
    (f64::from(target_logit - max) - sum.ln()) as f32
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
