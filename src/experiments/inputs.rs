//! Turning a tokenizer + chat examples into scored sequences (shared by eval, sweeps, CLI, GUI).

use super::eval::EvalItem;
use crate::{
    checkpoint::tokenizer::TokenizerBundle,
    model::logprobs::MaskedSequence,
    text::{
        chat_template::ChatTemplate, dataset::ChatExample, encode::encode_example, error::TextError,
    },
};

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
