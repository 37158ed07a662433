//! Named tensors: what every checkpoint reader produces.
//!
//! Names are Hugging Face (transformers) parameter names, e.g. `model.embed_tokens.weight`,
//! `model.layers.3.self_attn.q_proj.weight`, `lm_head.weight`. Shapes are PyTorch shapes
//! (row-major, a linear weight is `[out_features, in_features]`). Values come out as f32 whatever
//! the stored dtype; conversion happens tensor by tensor, on demand.

use std::path::Path;

use super::error::Result;

/// A dense f32 tensor on the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Something that holds named tensors: a safetensors file set, a GGUF file, a PEFT adapter.
pub trait TensorSource: Send + Sync {
    /// The file (or folder) the tensors come from; used in error messages.
    fn origin(&self) -> &Path;
    /// All tensor names, sorted.
    fn tensor_names(&self) -> Vec<String>;
    /// The shape of a tensor, or `None` when there is no tensor of that name.
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>>;
    /// A short dtype label of a stored tensor (`F32`, `BF16`, `Q4_1`, ...).
    fn tensor_dtype(&self, name: &str) -> Option<String>;
    /// Reads (and converts / dequantises) one tensor to f32.
    /// Errors with `CheckpointError::MissingTensor` when there is no such tensor.
    fn load_f32(&self, name: &str) -> Result<HostTensor>;
}

/// Lets the kernel drop the pages behind `bytes`, a slice of the read-only file mapping `map`
/// whose data has just been copied out. Without this, every page of a checkpoint read through a
/// mapping stays in the process's resident set until the file is closed, so loading two
/// checkpoints (a full-weight path) would hold both files *and* both decoded copies at the peak.
/// Best effort: failure (or a slice outside the map) changes nothing but memory use.
pub(crate) fn release_pages(map: &memmap2::Mmap, bytes: &[u8]) {
    let start = (bytes.as_ptr() as usize).wrapping_sub(map.as_ptr() as usize);
    if bytes.is_empty()
        || start
            .checked_add(bytes.len())
            .is_none_or(|end| end > map.len())
    {
        return;
    }
    // SAFETY: the mapping is private and read-only and the file is not modified while open (the
    // assumption every mmap reader here makes). MADV_DONTNEED on such pages only discards them;
    // a later access faults in the same bytes from the file, so no reference — including other
    // tensors' slices sharing a boundary page — ever observes different contents.
    let _ = unsafe {
        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, bytes.len())
    };
}
