//! `silu(gate) · up` in place on the host CPU, one pass with a vectorised `exp`.
//!
//! Its tensor-op twin is `activation::silu(gate) * up` (the path of tracked tensors and of the
//! GPU); a test checks they agree. On burn-flex the twin runs libm's scalar `expf` per element
//! and makes separate passes for the sigmoid, the product with `gate` and the product with `up`.

use super::host_softmax::exp_f32;

/// `gate[i] ← silu(gate[i]) · up[i]` with `silu(g) = g · σ(g)`; `σ` from `e = exp(−|g|)` (never
/// overflows): `1 / (1 + e)` for `g ≥ 0`, `e / (1 + e)` below. NaN stays NaN; ±∞ give the
/// limits (`silu(+∞) = +∞`, `silu(−∞) = −0`). Both slices have the same length (a shorter `up`
/// leaves the rest of `gate` as silu alone is not meaningful, so callers pass equal lengths).
pub fn silu_mul_in_place(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for (checked above).
            unsafe { silu_mul_avx2(gate, up) };
            return;
        }
    }
    silu_mul_generic(gate, up);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(gate: &mut [f32], up: &[f32]) {
    silu_mul_generic(gate, up);
}

#[inline(always)]
fn silu_mul_generic(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let (gate, up) = (&mut gate[..n], &up[..n]);
    for i in 0..n {
        let g = gate[i];
        let e = exp_f32(-g.abs());
        let numerator = if g >= 0.0 { 1.0 } else { e };
        let sigma = numerator / (1.0 + e);
        // g · σ(g): at g = −∞, σ = 0 and the product is −∞ · 0; silu's limit there is −0.
        let s = if g == f32::NEG_INFINITY {
            -0.0
        } else {
            g * sigma
        };
        gate[i] = s * up[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Tensor, TensorData, activation::silu};

    #[test]
    fn fused_silu_mul_matches_the_tensor_op_twin_and_f64() {
        let device = burn::tensor::Device::flex();
        let mut state = 3u64;
        let n = 4099;
        let mut gate = crate::test_fixtures::uniform(&mut state, n, 30.0);
        // The awkward ends: large magnitudes, zeros, tiny values.
        gate[..8].copy_from_slice(&[0.0, -0.0, 88.0, -88.0, 1e-30, -1e-30, 150.0, -150.0]);
        let up = crate::test_fixtures::uniform(&mut state, n, 3.0);
        let twin = {
            let g = Tensor::<1>::from_data(TensorData::new(gate.clone(), [n]), &device);
            let u = Tensor::<1>::from_data(TensorData::new(up.clone(), [n]), &device);
            (silu(g) * u).into_data().try_to_vec::<f32>().unwrap()
        };
        let mut fused = gate.clone();
        silu_mul_in_place(&mut fused, &up);
        let mut plain = gate.clone();
        silu_mul_generic(&mut plain, &up);
        for i in 0..n {
            let g = f64::from(gate[i]);
            let want = g / (1.0 + (-g).exp()) * f64::from(up[i]);
            let tol = 3e-7 * want.abs() + 1e-30;
            assert!(
                (f64::from(fused[i]) - want).abs() <= tol,
                "{i}: {} vs {want}",
                fused[i]
            );
            assert!(
                (f64::from(plain[i]) - want).abs() <= tol,
                "{i}: {} vs {want}",
                plain[i]
            );
            let twin_tol = 1e-6 * want.abs().max(1e-30);
            assert!(
                (f64::from(twin[i]) - f64::from(fused[i])).abs() <= twin_tol,
                "{i}: twin {} vs fused {}",
                twin[i],
                fused[i]
            );
        }
    }

    #[test]
    fn non_finite_gates_give_silus_limits() {
        let mut gate = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        silu_mul_in_place(&mut gate, &[1.0, 2.0, 3.0]);
        assert!(gate[0].is_nan());
        assert_eq!(gate[1], f32::INFINITY);
        assert_eq!(gate[2], 0.0);
    }
}
