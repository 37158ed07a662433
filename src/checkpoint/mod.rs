//! Checkpoint readers: files in, named f32 tensors + resolved configs + tokenizers out.
//! No burn modules here.

pub mod error;
pub mod gguf;
pub mod gguf_model;
pub mod gguf_quant;
pub mod gguf_tokenizer;
pub mod hf_config;
pub mod hf_folder;
pub mod model_config;
pub mod open;
pub mod peft;
pub mod safetensors_file;
pub mod tensors;
pub mod tokenizer;
