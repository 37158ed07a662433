//! Chat rendering and tokenisation: HF chat templates, the JSONL chat dataset, the loss mask.

pub mod chat_template;
pub mod dataset;
pub mod encode;
pub mod error;
