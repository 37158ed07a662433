//! `base + c·delta`, the weight mix a path point needs, as a hand-written WGSL kernel with a
//! plain tensor-op twin.
//!
//! [`mix`] launches `shaders/mix.wgsl` when both operands live on burn's wgpu backend, and uses
//! [`mix_reference`] (`base + delta * c`, burn tensor ops) everywhere else: burn-flex on the CPU,
//! autodiff devices (the kernel has no backward pass, so gradients must go through tensor ops),
//! dtypes other than f32, and any wgpu build where the kernel could not be compiled. The twin is
//! the specification; the kernel exists so that a full-weight path sweep mixes each weight in one
//! pass over memory instead of two (a scaled copy, then an add).
//!
//! The kernel may round differently from the twin by about one ulp of the larger operand: the
//! shader compiler is free to contract `base + c * delta` into a fused multiply-add, while the
//! twin rounds the product before adding.
//!
//! Burn's wgpu backend is used here without `fusion` (see `Cargo.toml`: burn's default features
//! are off), so its float primitive is a plain `CubeTensor`. Turning fusion on changes
//! `burn_cubecl::Cube` into `Fusion<CubeBackend>` and this module stops compiling, which is the
//! intended signal to revisit it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::tensor::{DType, Tensor};
use burn_cubecl::cubecl::ir::UIntKind;
use burn_cubecl::cubecl::ir::metadata::Info;
use burn_cubecl::cubecl::prelude::{
    AddressType, CubeCount, CubeDim, CubeKernel, ElemType, ExecutionMode, KernelDefinition,
    KernelId, KernelMetadata, KernelSettings, Scope,
};
use burn_cubecl::cubecl::server::{KernelArguments, MetadataBindingInfo};
use burn_cubecl::cubecl::{Device as CubeDevice, PrecompiledSource};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{Cube, cubecl::ir::attributes::BufferIOAttr};

/// The WGSL source, compiled into the binary so the kernel cannot drift from a file on disk.
const MIX_WGSL: &str = include_str!("../../shaders/mix.wgsl");
/// The shader's entry point (`mix` itself is a WGSL built-in and cannot be reused).
const ENTRY_POINT: &str = "mix_weights";
/// Invocations per workgroup; must equal `@workgroup_size` in the shader.
const WORKGROUP_SIZE: u32 = 256;
/// Workgroups per grid dimension that every WebGPU / Vulkan device accepts.
const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// Why [`mix`] refused its operands. Nothing is computed when it returns one of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    #[error("cannot mix weights: base has shape {base:?} but delta has shape {delta:?}")]
    ShapeMismatch { base: Vec<usize>, delta: Vec<usize> },
    #[error("cannot mix weights: base is {base:?} but delta is {delta:?}")]
    DTypeMismatch { base: DType, delta: DType },
    #[error("cannot mix weights: base and delta live on different devices ({base} vs {delta})")]
    DeviceMismatch { base: String, delta: String },
}

/// Which implementation produced a [`mix_traced`] result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixPath {
    /// `shaders/mix.wgsl` on burn's wgpu backend.
    Kernel,
    /// [`mix_reference`]: burn tensor ops.
    Reference,
}

/// `base + c·delta` for two tensors of the same shape, dtype and device.
///
/// On burn's wgpu backend (f32, no autodiff) this runs the WGSL kernel in `shaders/mix.wgsl`;
/// otherwise it runs [`mix_reference`]. Either way the result is a new tensor on the operands'
/// device; the inputs are not modified.
///
/// # Errors
///
/// [`MixError`] when the shapes, dtypes or devices differ. Unlike burn's `+` it does not
/// broadcast and never panics on such operands: a weight and its delta must match exactly.
/// A kernel that fails to compile on this device is not an error: the twin runs instead, and
/// [`kernel_failure`] says why.
pub fn mix<const D: usize>(
    base: Tensor<D>,
    delta: Tensor<D>,
    c: f32,
) -> Result<Tensor<D>, MixError> {
    mix_traced(base, delta, c).map(|(out, _)| out)
}

/// [`mix`], also reporting which implementation ran (for tests and diagnostics).
///
/// # Errors
///
/// As [`mix`].
pub fn mix_traced<const D: usize>(
    base: Tensor<D>,
    delta: Tensor<D>,
    c: f32,
) -> Result<(Tensor<D>, MixPath), MixError> {
    check_operands(&base, &delta)?;
    Ok(mix_checked(base, delta, c))
}

/// The tensor-op twin of the WGSL kernel: `base + delta * c`.
///
/// This is the definition the kernel is tested against, and what [`mix`] runs off wgpu. It follows
/// burn's rules for `+`: operands of different shapes broadcast, and incompatible ones panic inside
/// burn. Prefer [`mix`], which checks its operands first.
pub fn mix_reference<const D: usize>(base: Tensor<D>, delta: Tensor<D>, c: f32) -> Tensor<D> {
    base + delta * c
}

/// `Ok` when [`mix`] would accept these operands: same shape, dtype and device.
///
/// # Errors
///
/// The [`MixError`] that [`mix`] would return.
pub fn check_operands<const D: usize>(base: &Tensor<D>, delta: &Tensor<D>) -> Result<(), MixError> {
    let (base_dims, delta_dims) = (base.dims(), delta.dims());
    if base_dims != delta_dims {
        return Err(MixError::ShapeMismatch {
            base: base_dims.to_vec(),
            delta: delta_dims.to_vec(),
        });
    }
    let (base_dtype, delta_dtype) = (base.dtype(), delta.dtype());
    if base_dtype != delta_dtype {
        return Err(MixError::DTypeMismatch {
            base: base_dtype,
            delta: delta_dtype,
        });
    }
    let (base_device, delta_device) = (base.device(), delta.device());
    if base_device != delta_device {
        return Err(MixError::DeviceMismatch {
            base: format!("{base_device:?}"),
            delta: format!("{delta_device:?}"),
        });
    }
    Ok(())
}

/// Why the WGSL kernel could not run in this process, once a launch has failed; `None` while it
/// works (or has not been tried). After a failure every [`mix`] uses the twin.
pub fn kernel_failure() -> Option<&'static str> {
    KERNEL_FAILURE.get().map(String::as_str)
}

/// [`mix`] for operands that already passed [`check_operands`]; crate code that cannot return an
/// error (a forward pass) calls this after checking.
pub(crate) fn mix_checked<const D: usize>(
    base: Tensor<D>,
    delta: Tensor<D>,
    c: f32,
) -> (Tensor<D>, MixPath) {
    let kernel_usable = base.dtype() == DType::F32
        && KERNEL_STATE.load(Ordering::Acquire) != KERNEL_FAILED
        && u32::try_from(base.shape().num_elements()).is_ok_and(|n| n > 0);
    if !kernel_usable {
        return (mix_reference(base, delta, c), MixPath::Reference);
    }

    // Downcasting consumes the tensor, so try clones (two reference-count bumps) and keep the
    // originals for the twin. Autodiff and burn-flex tensors fail here; both go to the twin.
    let primitives = (
        base.clone().try_into_primitive::<Cube>(),
        delta.clone().try_into_primitive::<Cube>(),
    );
    let (Ok(base_prim), Ok(delta_prim)) = primitives else {
        return (mix_reference(base, delta, c), MixPath::Reference);
    };
    if !matches!(base_prim.device, CubeDevice::Wgpu(_)) {
        // Another cubecl runtime (CUDA, Metal, ...) would reject WGSL text.
        return (mix_reference(base, delta, c), MixPath::Reference);
    }

    match launch(base_prim, delta_prim, c) {
        Some(out) => (Tensor::from_primitive::<Cube>(out), MixPath::Kernel),
        None => (mix_reference(base, delta, c), MixPath::Reference),
    }
}

const KERNEL_UNTRIED: u8 = 0;
const KERNEL_WORKS: u8 = 1;
const KERNEL_FAILED: u8 = 2;

/// Whether a launch of the kernel has been seen to compile and bind in this process. The first
/// launches are checked (a blocking round trip to the device thread, not a GPU sync); once one
/// works the check is skipped, and once one fails the kernel is not tried again.
static KERNEL_STATE: AtomicU8 = AtomicU8::new(KERNEL_UNTRIED);
static KERNEL_FAILURE: OnceLock<String> = OnceLock::new();

/// Runs the kernel; `None` when the launch failed (recorded in [`KERNEL_FAILURE`]).
fn launch(base: CubeTensor, delta: CubeTensor, c: f32) -> Option<CubeTensor> {
    // The shader indexes flat buffers, so strided views (a transpose, a broadcast) become dense
    // copies first. A contiguous slice keeps its aligned byte offset, which the binding carries.
    let base = into_contiguous(base);
    let delta = into_contiguous(delta);
    let shape = base.meta.shape().clone();
    let len = u32::try_from(shape.num_elements()).ok()?;

    let client = base.client.clone();
    let out_handle = client.empty(shape.num_elements() * size_of::<f32>());
    let out = CubeTensor::new_contiguous(
        client.clone(),
        base.device.clone(),
        shape,
        out_handle.clone(),
        DType::F32,
    );

    // The uniform `Params { len: u32, c: f32, _pad0, _pad1 }`: cubecl uploads these words
    // little-endian and binds them after the buffers.
    let info = vec![u64::from(len) | (u64::from(c.to_bits()) << 32), 0];
    let args = KernelArguments::new()
        .with_buffer_io(base.handle.binding(), BufferIOAttr::ReadOnly)
        .with_buffer_io(delta.handle.binding(), BufferIOAttr::ReadOnly)
        .with_buffer_io(out_handle.clone().binding(), BufferIOAttr::WriteOnly)
        .with_info(MetadataBindingInfo::custom(info));
    client.launch(Box::new(MixKernel), grid(len), args);

    if KERNEL_STATE.load(Ordering::Acquire) == KERNEL_WORKS {
        return Some(out);
    }
    match client.check([&out_handle]) {
        Ok(()) => {
            KERNEL_STATE.store(KERNEL_WORKS, Ordering::Release);
            Some(out)
        }
        Err(err) => {
            let _ = KERNEL_FAILURE.set(err.to_string());
            KERNEL_STATE.store(KERNEL_FAILED, Ordering::Release);
            None
        }
    }
}

/// A 2-D grid covering `len` elements: rows of at most 65,535 workgroups.
fn grid(len: u32) -> CubeCount {
    let groups = len.div_ceil(WORKGROUP_SIZE);
    let x = groups.clamp(1, MAX_GROUPS_PER_DIM);
    CubeCount::new_2d(x, groups.div_ceil(x))
}

/// `shaders/mix.wgsl` as a cubecl kernel: its text stands in for compiled IR, as burn-cubecl's
/// `template::SourceKernel` does (that needs burn-wgpu's `template` feature, which would rebuild
/// cubecl; the three trait methods below are all it adds).
struct MixKernel;

impl KernelMetadata for MixKernel {
    fn id(&self) -> KernelId {
        // Compilation caches are keyed by this id, never by the text, so the id covers the text.
        KernelId::new::<Self>()
            .cube_dim(CubeDim::new_1d(WORKGROUP_SIZE).0)
            .info(fnv1a(MIX_WGSL))
    }

    fn address_type(&self) -> ElemType {
        UIntKind::U32.into()
    }
}

impl CubeKernel for MixKernel {
    fn define(&self) -> KernelDefinition {
        // Only the settings matter (they key caches and validation); there is no IR to compile.
        let settings = KernelSettings::new(
            CubeDim::new_1d(WORKGROUP_SIZE).0,
            ExecutionMode::Checked,
            AddressType::U32,
        );
        KernelDefinition {
            body: Scope::root(settings.clone()),
            settings,
            info: Info::default(),
        }
    }

    fn source(&self) -> Option<PrecompiledSource> {
        Some(PrecompiledSource {
            source: MIX_WGSL.to_string(),
            entrypoint_name: ENTRY_POINT.to_string(),
            lang: "wgsl",
        })
    }
}

/// 64-bit FNV-1a, a stable fingerprint of the shader text.
const fn fnv1a(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::compute::{ComputeDevice, ComputeKind};

    const COEFFS: [f32; 4] = [0.0, 1.0, -0.5, 0.37];
    const LENGTHS: [usize; 5] = [1, 255, 256, 257, 1_000_003];

    fn gpu() -> Device {
        ComputeDevice::new(ComputeKind::Gpu)
            .expect("the wgpu tests need an adapter (lavapipe is enough)")
            .device
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32 tensor")
    }

    /// Largest |kernel - reference| over all elements, in units of one ulp of the element's
    /// scale max(|base|, |c·delta|) (an FMA-contracted kernel differs by at most about one).
    fn max_ulp_diff(base: &[f32], delta: &[f32], c: f32, got: &[f32], want: &[f32]) -> (f32, f32) {
        let (mut ulps, mut abs) = (0.0_f32, 0.0_f32);
        for i in 0..got.len() {
            let diff = (got[i] - want[i]).abs();
            let scale = base[i]
                .abs()
                .max((c * delta[i]).abs())
                .max(f32::MIN_POSITIVE);
            ulps = ulps.max(diff / (scale * f32::EPSILON));
            abs = abs.max(diff);
        }
        (ulps, abs)
    }

    fn check_on_gpu<const D: usize>(shape: [usize; D], device: &Device) -> (f32, f32) {
        let base = Tensor::<D>::random(shape, Distribution::Uniform(-2.0, 2.0), device);
        let delta = Tensor::<D>::random(shape, Distribution::Uniform(-2.0, 2.0), device);
        let (b, d) = (values(base.clone()), values(delta.clone()));
        let mut worst = (0.0_f32, 0.0_f32);
        for c in COEFFS {
            let (got, path) = mix_traced(base.clone(), delta.clone(), c).expect("same shapes");
            assert_eq!(
                path,
                MixPath::Kernel,
                "shape {shape:?}, c={c}: {:?}",
                kernel_failure()
            );
            assert_eq!(got.dims(), shape);
            let got = values(got);
            let want = values(mix_reference(base.clone(), delta.clone(), c));
            let (ulps, abs) = max_ulp_diff(&b, &d, c, &got, &want);
            assert!(
                ulps <= 1.0,
                "shape {shape:?}, c={c}: {ulps} ulp (abs {abs})"
            );
            if c == 0.0 || c == 1.0 {
                // No rounding in c·delta, so no room for a fused multiply-add to differ.
                assert_eq!(got, want, "shape {shape:?}, c={c}");
            }
            worst = (worst.0.max(ulps), worst.1.max(abs));
        }
        worst
    }

    #[test]
    fn mix_kernel_matches_twin_on_wgpu() {
        let device = gpu();
        let mut worst = (0.0_f32, 0.0_f32);
        for n in LENGTHS {
            for w in [check_on_gpu([n], &device), check_on_gpu([2, n], &device)] {
                worst = (worst.0.max(w.0), worst.1.max(w.1));
            }
        }
        eprintln!(
            "mix kernel vs twin: max {} ulp, max abs diff {:e}",
            worst.0, worst.1
        );
    }

    #[test]
    fn mix_kernel_covers_more_than_65535_workgroups() {
        // 65,535 × 256 + 300 elements: the grid needs a second row of workgroups.
        let n = (MAX_GROUPS_PER_DIM * WORKGROUP_SIZE) as usize + 300;
        let device = gpu();
        let base = Tensor::<1>::random([n], Distribution::Uniform(-1.0, 1.0), &device);
        let delta = Tensor::<1>::random([n], Distribution::Uniform(-1.0, 1.0), &device);
        assert!(matches!(grid(n as u32), CubeCount::Static(65_535, 2, 1)));
        let (got, path) = mix_traced(base.clone(), delta.clone(), 0.37).expect("same shapes");
        assert_eq!(path, MixPath::Kernel);
        let (b, d) = (values(base.clone()), values(delta.clone()));
        let want = values(mix_reference(base, delta, 0.37));
        let (ulps, _) = max_ulp_diff(&b, &d, 0.37, &values(got), &want);
        assert!(ulps <= 1.0, "{ulps} ulp");
    }

    #[test]
    fn mix_kernel_reads_strided_and_sliced_views() {
        let device = gpu();
        let base = Tensor::<2>::random([33, 70], Distribution::Uniform(-1.0, 1.0), &device);
        let delta = Tensor::<2>::random([70, 33], Distribution::Uniform(-1.0, 1.0), &device);
        let (got, path) = mix_traced(base.clone(), delta.clone().transpose(), -0.5).unwrap();
        assert_eq!(path, MixPath::Kernel);
        let want = mix_reference(base.clone(), delta.transpose(), -0.5);
        got.into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Default::default());

        // Rows 8.. start 8·70·4 bytes into the buffer: an offset binding.
        let rows = base.clone().narrow(0, 8, 25);
        let other = base.narrow(0, 0, 25);
        let (got, path) = mix_traced(rows.clone(), other.clone(), 0.37).unwrap();
        assert_eq!(path, MixPath::Kernel);
        let want = mix_reference(rows, other, 0.37);
        got.into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Default::default());
    }

    #[test]
    fn mix_equals_twin_exactly_on_cpu() {
        let device = Device::flex();
        for n in LENGTHS {
            let base = Tensor::<2>::random([2, n], Distribution::Uniform(-2.0, 2.0), &device);
            let delta = Tensor::<2>::random([2, n], Distribution::Uniform(-2.0, 2.0), &device);
            for c in COEFFS {
                let (got, path) = mix_traced(base.clone(), delta.clone(), c).unwrap();
                assert_eq!(path, MixPath::Reference);
                let want = mix_reference(base.clone(), delta.clone(), c);
                assert_eq!(values(got), values(want), "n={n}, c={c}");
            }
        }
    }

    #[test]
    fn mix_on_autodiff_uses_twin_and_keeps_gradients() {
        let device = gpu().autodiff();
        let base = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device).require_grad();
        let delta = Tensor::<1>::from_floats([0.5, -1.0, 4.0], &device).require_grad();
        let (out, path) = mix_traced(base.clone(), delta.clone(), 0.25).unwrap();
        assert_eq!(path, MixPath::Reference);
        let grads = out.sum().backward();
        let grad = delta.grad(&grads).expect("delta takes part in the graph");
        assert_eq!(values(grad), vec![0.25; 3]);
    }

    #[test]
    fn mismatched_operands_are_errors_not_panics() {
        let device = Device::flex();
        let base = Tensor::<2>::zeros([2, 3], &device);
        let err = mix(base.clone(), Tensor::<2>::zeros([3, 2], &device), 1.0).unwrap_err();
        assert!(matches!(err, MixError::ShapeMismatch { .. }), "{err}");
        // Broadcastable under burn's `+`, still refused: a delta must match its weight.
        let err = mix(base.clone(), Tensor::<2>::zeros([1, 3], &device), 1.0).unwrap_err();
        assert!(matches!(err, MixError::ShapeMismatch { .. }), "{err}");
        let doubles = Tensor::<2>::zeros([2, 3], &device).cast(DType::F64);
        let err = mix(base.clone(), doubles, 1.0).unwrap_err();
        assert!(matches!(err, MixError::DTypeMismatch { .. }), "{err}");
        let err = mix(base, Tensor::<2>::zeros([2, 3], &gpu()), 1.0).unwrap_err();
        assert!(matches!(err, MixError::DeviceMismatch { .. }), "{err}");
    }

    #[test]
    fn empty_tensors_mix_through_the_twin() {
        let device = gpu();
        let base = Tensor::<2>::zeros([0, 4], &device);
        let (out, path) = mix_traced(base.clone(), base, 2.0).unwrap();
        assert_eq!(path, MixPath::Reference);
        assert_eq!(out.dims(), [0, 4]);
    }
}
