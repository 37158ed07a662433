//! Basin: where does a fine-tuned LLM sit relative to its base model in weight space?
//!
//! Data flows one way: files → named tensors ([`checkpoint`]) → model ([`model`]) →
//! experiment results ([`experiments`]) → plots / exports. See `ARCHITECTURE.md`.

pub mod checkpoint;
pub mod cli;
pub mod compute;
pub mod data;
pub mod experiments;
pub mod gui;
pub mod model;
pub mod text;

#[cfg(test)]
pub(crate) mod test_fixtures;
