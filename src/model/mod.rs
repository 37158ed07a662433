//! Backend-generic model code: modules, full-sequence forward, masked log-probs. No file I/O.

pub mod decode;
pub mod error;
pub mod host_attention;
pub mod host_softmax;
pub mod host_swiglu;
pub mod linear;
pub mod load;
pub mod logprobs;
pub mod mix_kernel;
pub mod norm;
pub mod packing;
pub mod path_param;
pub mod rope;
pub mod row_blocks;
pub mod trainable;
pub mod transformer;
pub mod weight_dtype;
