//! Checkpoint readers: files in, named f32 tensors + resolved configs + tokenizers out; and the
//! PEFT adapter writer training uses. No burn modules here.

pub mod error;
pub mod gguf;
pub mod gguf_model;
pub mod gguf_quant;
pub mod gguf_tokenizer;
pub mod hf_config;
pub mod hf_folder;
pub mod hub;
pub mod hub_download;
pub mod model_config;
pub mod open;
pub mod peft;
pub mod peft_writer;
pub mod safetensors_file;
pub mod tensors;
pub mod tokenizer;
