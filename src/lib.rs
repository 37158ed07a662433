//! Basin: where does a fine-tuned LLM sit relative to its base model in weight space?
//!
//! Data flows one way: files → named tensors ([`checkpoint`]) → model ([`model`]) →
//! experiment results ([`experiments`]) → plots / exports. See `ARCHITECTURE.md`.

pub mod bounded;
pub mod cache_dir;
pub mod checkpoint;
pub mod cli;
pub mod compute;
pub mod data;
pub mod durable;
pub mod experiments;
pub mod gui;
pub mod model;
pub mod study;
pub mod text;

/// An error and its causes on one line: each cause added only when its text is not already part
/// of the message (library errors often print their source themselves), no line breaks. The
/// CLI's `error:` line and the GUI's messages both use it.
pub fn error_line(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
        source = cause.source();
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod test_fixtures;
