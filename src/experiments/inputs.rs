//! Turning a tokenizer + chat examples into scored sequences (shared by eval, sweeps, CLI, GUI).

use super::eval::EvalItem;
use crate::{
    checkpoint::tokenizer::TokenizerBundle,
    data::LengthMeasure,
    model::logprobs::MaskedSequence,
    text::{
        chat_template::ChatTemplate, dataset::ChatExample, encode::encode_example, error::TextError,
    },
};

/// Lengths in this tokenizer's tokens (the text alone, no special tokens), for the data
/// generator's `--match-tokens`. `name` says whose tokens, e.g. the model file's name.
pub fn token_length_measure(tokenizer: &TokenizerBundle, name: &str) -> LengthMeasure {
    let tokenizer = tokenizer.tokenizer.clone();
    LengthMeasure::custom(format!("tokens of {name}"), move |text: &str| {
        // Plain text always encodes; were it ever to fail, its word count stands in.
        tokenizer
            .encode(text, false)
            .map(|enc| enc.len())
            .unwrap_or_else(|_| crate::data::text::word_count(text))
    })
}

/// The tokenizer's chat template, compiled. Errors when the checkpoint has none.
pub fn chat_template_of(tokenizer: &TokenizerBundle) -> Result<ChatTemplate, TextError> {
    let source = tokenizer
        .chat_template
        .as_deref()
        .ok_or_else(|| TextError::NoChatTemplate {
            path: tokenizer.origin.clone(),
        })?;
    ChatTemplate::new(
        source,
        tokenizer.bos_token.clone(),
        tokenizer.eos_token.clone(),
    )
    .map_err(|e| TextError::InTemplateOf {
        // The model folder for a Hugging Face checkpoint (its template may be in
        // chat_template.jinja or tokenizer_config.json), the file for a GGUF.
        path: match tokenizer.origin.file_name() {
            Some(n) if n == "tokenizer.json" => tokenizer
                .origin
                .parent()
                .map_or_else(|| tokenizer.origin.clone(), std::path::Path::to_path_buf),
            _ => tokenizer.origin.clone(),
        },
        source: Box::new(e),
    })
}

/// Encodes every example with the loss-mask rule of `text::encode`.
pub fn encode_examples(
    tokenizer: &TokenizerBundle,
    template: &ChatTemplate,
    examples: &[ChatExample],
    max_tokens: usize,
) -> Result<Vec<EvalItem>, TextError> {
    examples
        .iter()
        .map(|ex| {
            let enc = encode_example(tokenizer, template, ex, max_tokens)?;
            Ok(EvalItem {
                id: enc.id,
                sequence: MaskedSequence {
                    input_ids: enc.input_ids,
                    target_mask: enc.target_mask,
                },
            })
        })
        .collect()
}
