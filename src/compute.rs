//! Where the math runs: burn's pure-Rust CPU backend (burn-flex) or wgpu's default adapter
//! (a hardware GPU, or software Vulkan such as Mesa lavapipe where there is none).

use std::sync::OnceLock;

use burn::tensor::Device;

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ComputeKind {
    #[default]
    Cpu,
    Gpu,
}

/// A ready device plus a human-readable description of it.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    pub kind: ComputeKind,
    pub device: Device,
    /// e.g. `cpu (burn-flex)` or `gpu (llvmpipe (LLVM 15.0.6, 256 bits), Vulkan)`.
    pub label: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "no usable wgpu adapter: {0} (install a GPU driver, or Mesa's software Vulkan: apt-get install mesa-vulkan-drivers)"
)]
pub struct GpuUnavailable(String);

/// The wgpu handles burn computes with, for a renderer that should draw with the same device
/// (the GUI: one device serves rendering and compute).
#[derive(Clone)]
pub struct GpuHandles {
    pub instance: burn::tensor::wgpu::wgpu::Instance,
    pub adapter: burn::tensor::wgpu::wgpu::Adapter,
    pub device: burn::tensor::wgpu::wgpu::Device,
    pub queue: burn::tensor::wgpu::wgpu::Queue,
}

struct Gpu {
    device: Device,
    label: String,
    /// Most bytes one buffer may hold as burn's runtime allocates them: the smaller of the
    /// device's storage-binding and buffer-size limits (cubecl's own page limit).
    max_buffer_bytes: u64,
    handles: GpuHandles,
}

/// wgpu's runtime can be initialised once per process; later calls reuse it.
static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();

fn gpu() -> &'static Result<Gpu, String> {
    GPU.get_or_init(|| {
        Device::wgpu_options()
            .init_with_setup()
            .map(|(device, setup)| {
                let info = setup.adapter.get_info();
                let limits = setup.device.limits();
                Gpu {
                    device,
                    label: format!("gpu ({}, {:?})", info.name, info.backend),
                    max_buffer_bytes: limits
                        .max_storage_buffer_binding_size
                        .min(limits.max_buffer_size),
                    handles: GpuHandles {
                        instance: setup.instance,
                        adapter: setup.adapter,
                        device: setup.device,
                        queue: setup.queue,
                    },
                }
            })
            .map_err(|e| format!("{e}"))
    })
}

/// The GPU's wgpu handles, initialising burn's wgpu runtime if it is not yet.
pub fn gpu_handles() -> Result<GpuHandles, GpuUnavailable> {
    match gpu() {
        Ok(g) => Ok(g.handles.clone()),
        Err(e) => Err(GpuUnavailable(e.clone())),
    }
}

impl ComputeDevice {
    pub fn new(kind: ComputeKind) -> Result<Self, GpuUnavailable> {
        match kind {
            ComputeKind::Cpu => Ok(Self {
                kind,
                device: Device::flex(),
                label: "cpu (burn-flex)".to_string(),
            }),
            ComputeKind::Gpu => match gpu() {
                Ok(g) => Ok(Self {
                    kind,
                    device: g.device.clone(),
                    label: g.label.clone(),
                }),
                Err(e) => Err(GpuUnavailable(e.clone())),
            },
        }
    }
}

/// Most bytes one tensor buffer may hold on `device`: `None` on the host CPU (no limit but
/// memory), the wgpu device's limit otherwise (128 MiB on lavapipe).
pub fn max_buffer_bytes(device: &Device) -> Option<u64> {
    if is_host_cpu(device) {
        return None;
    }
    gpu().as_ref().ok().map(|g| g.max_buffer_bytes)
}

/// Whether `device` (or the device an autodiff device wraps) is burn-flex on the host CPU.
pub fn is_host_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// How many threads ("lanes") a batch on `device` is split over: one per core of the compute
/// pool (sized by `RAYON_NUM_THREADS`; at most 4, since thinner parts make each matrix product
/// less efficient) on the CPU backend, 1 on a GPU (one queue). burn-flex spreads matrix products
/// over every core but runs element-wise operations on the calling thread, so one caller leaves
/// cores idle (measured on 2 cores: a SmolLM2 training step used 1.29 of them).
pub fn cpu_lanes(device: &Device) -> usize {
    if is_host_cpu(device) {
        rayon::current_num_threads().clamp(1, 4)
    } else {
        1
    }
}

/// Runs `f` on each part as a task of the compute pool ("lanes", see [`cpu_lanes`]) and returns
/// the answers in part order; with one part (or none) it runs on the calling thread. The lanes
/// run on the pool's own threads, so the batched matrix products burn-flex splits over the pool
/// inside a lane are taken up by an idle pool thread instead of competing with extra threads
/// (measured on 2 cores: the known-answer curve fit 15% faster than with a scoped thread per
/// lane). A panic in a part is raised again here, so a job's panic handling sees it as if it had
/// run on its thread.
pub fn map_lanes<T: Send>(
    parts: &[std::ops::Range<usize>],
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    if parts.len() <= 1 {
        return parts.iter().cloned().map(f).collect();
    }
    use rayon::prelude::*;
    let f = &f;
    parts.par_iter().cloned().map(f).collect()
}

/// Keeps freed heap memory for reuse instead of handing it back after every free. By default
/// glibc trims the main heap whenever more than a (dynamic) threshold is free at its top, so a
/// training step that frees its activations returns gigabytes to the kernel and the next step
/// faults them in again as freshly zeroed pages (measured: ~4.5 GiB of `brk` shrink and regrow
/// per SmolLM2 step, 30% of the step in `clear_page_erms`). Setting the trim threshold alone
/// would also freeze glibc's mmap threshold at its 128 KiB start (every large block then mmap'd
/// and zeroed afresh), so both are set: blocks under 32 MiB (glibc's largest mmap threshold)
/// come from the heap, and the heap is trimmed only by [`release_free_host_memory`], which jobs
/// call when they end. The trim threshold is -1 (glibc reads it as `SIZE_MAX`: never trim, as
/// mallopt(3) documents), not `i32::MAX`: a 2 GiB threshold still trimmed ~2.1 GiB after every
/// SmolLM2 training step, whose heap peaks at 5 GiB (measured with `strace -e brk`, 2026-12-02).
/// One arena (`M_ARENA_MAX` 1) for every thread: glibc's extra per-thread arenas delete and
/// re-map their 64 MiB heaps whenever they empty, whatever the trim threshold, so threads that
/// allocate activations (the training lanes) faulted them in afresh every step (82 s of system
/// time over 4 SmolLM2 steps, against 34 s with one arena, loading included).
/// Called once at process start (`main`); a no-op off glibc.
pub fn keep_freed_host_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        const M_TRIM_THRESHOLD: std::os::raw::c_int = -1;
        const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;
        const M_ARENA_MAX: std::os::raw::c_int = -8;
        // SAFETY: mallopt only changes glibc's allocator parameters under its own locks; it
        // takes no pointers.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
            mallopt(M_TRIM_THRESHOLD, -1);
            mallopt(M_ARENA_MAX, 1);
        }
    }
}

/// Hands freed heap memory back to the operating system. Dropping the files' tokenizers and
/// host copies after loading, and each batch's temporaries, leaves free chunks scattered
/// through glibc's heaps that it keeps (and that count as resident) until told otherwise; a
/// full-weight sweep holds two models' worth of weights, so this slack decides whether its
/// peak stays near 2× one model. A no-op off glibc.
pub fn release_free_host_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only walks glibc's own heaps; it takes no pointers from us and
        // is safe to call from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}
