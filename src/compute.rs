//! Where the math runs: burn's pure-Rust CPU backend (burn-flex) or wgpu's default adapter
//! (a hardware GPU, or software Vulkan such as Mesa lavapipe where there is none).

use std::sync::OnceLock;

use burn::tensor::Device;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ComputeKind {
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

/// wgpu's runtime can be initialised once per process; later calls reuse it.
static GPU: OnceLock<Result<(Device, String), String>> = OnceLock::new();

impl ComputeDevice {
    pub fn new(kind: ComputeKind) -> Result<Self, GpuUnavailable> {
        match kind {
            ComputeKind::Cpu => Ok(Self {
                kind,
                device: Device::flex(),
                label: "cpu (burn-flex)".to_string(),
            }),
            ComputeKind::Gpu => {
                let gpu = GPU.get_or_init(|| {
                    Device::wgpu_options()
                        .init_with_setup()
                        .map(|(device, setup)| {
                            let info = setup.adapter.get_info();
                            (device, format!("gpu ({}, {:?})", info.name, info.backend))
                        })
                        .map_err(|e| format!("{e}"))
                });
                match gpu {
                    Ok((device, label)) => Ok(Self {
                        kind,
                        device: device.clone(),
                        label: label.clone(),
                    }),
                    Err(e) => Err(GpuUnavailable(e.clone())),
                }
            }
        }
    }
}
