//! The element type a model's large weights are stored in on the device (`--dtype`).
//!
//! Linear weights and the vocabulary tables (embedding, output head), and the dense deltas of a
//! full-weight path, are held in this type; norms, biases and LoRA factors stay f32. Every
//! computation runs in f32: a stored weight is widened to f32 where it is used
//! ([`super::path_param::PathParam::value`], the embedding lookup), one layer at a time, so half
//! storage halves the weights' memory and changes results only by the weights' own rounding.

use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};

use super::error::ModelError;

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
pub enum WeightDType {
    #[default]
    F32,
    /// IEEE half: 10 mantissa bits, finite up to 65,504.
    F16,
    /// bfloat16: 7 mantissa bits, f32's range. Not a WGSL type, so CPU only here.
    Bf16,
}

impl WeightDType {
    pub fn is_f32(&self) -> bool {
        *self == Self::F32
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    pub fn burn(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::Bf16 => DType::BF16,
        }
    }

    /// A device's description with the weights' type added when it is not f32 (what run
    /// records keep as the device, so resuming with other weights is refused like resuming on
    /// another device).
    pub fn device_label(self, device: &str) -> String {
        match self {
            Self::F32 => device.to_string(),
            other => format!("{device}, weights {}", other.label()),
        }
    }

    /// Refuses a type the device cannot store: bf16 on wgpu (WGSL has no bf16 type).
    pub fn check_device(self, device: &burn::tensor::Device) -> Result<(), ModelError> {
        if self == Self::Bf16 && !crate::compute::is_host_cpu(device) {
            return Err(ModelError::Input(
                "--dtype bf16 runs on the CPU only: WGSL, the shader language Basin's GPU kernels are compiled to, has no bfloat16 type; use --dtype f16 on the GPU (half the memory of f32, like bf16)".into(),
            ));
        }
        Ok(())
    }

    /// `data` (row-major f32) as a tensor of this type on `device`. `what` names the tensor in
    /// the error for a value beyond f16's finite range (it would become infinite).
    pub fn upload<const D: usize>(
        self,
        data: Vec<f32>,
        shape: [usize; D],
        device: &Device,
        what: &dyn Fn() -> String,
    ) -> Result<Tensor<D>, ModelError> {
        let data = self.to_data(data, shape, what)?;
        Ok(Tensor::from_data(data, (device, self.burn())))
    }

    fn to_data<const D: usize>(
        self,
        data: Vec<f32>,
        shape: [usize; D],
        what: &dyn Fn() -> String,
    ) -> Result<TensorData, ModelError> {
        match self {
            Self::F32 => Ok(TensorData::new(data, shape)),
            Self::F16 => {
                if let Some(v) = data.iter().find(|v| v.abs() > f32::from(half::f16::MAX)) {
                    return Err(ModelError::Input(format!(
                        "{}: holds {v}, beyond f16's largest finite value 65504; use --dtype bf16 (CPU) or f32",
                        what()
                    )));
                }
                let half: Vec<half::f16> = data.into_iter().map(half::f16::from_f32).collect();
                Ok(TensorData::new(half, shape))
            }
            Self::Bf16 => {
                let half: Vec<half::bf16> = data.into_iter().map(half::bf16::from_f32).collect();
                Ok(TensorData::new(half, shape))
            }
        }
    }
}

impl std::fmt::Display for WeightDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// `t` in f32: itself when it is f32 already, otherwise widened (exactly: every f16 / bf16
/// value is an f32 value).
pub fn widened<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.dtype() == DType::F32 {
        t
    } else {
        t.cast(FloatDType::F32)
    }
}
