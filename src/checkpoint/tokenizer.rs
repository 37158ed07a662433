//! A tokenizer together with what is needed to render chats: the chat template and special tokens.

use std::path::PathBuf;

/// A ready-to-use tokenizer: a `tokenizers::Tokenizer` plus the chat template and special tokens,
/// however it was obtained (an HF folder's `tokenizer.json` + `tokenizer_config.json` /
/// `chat_template.jinja`, or the `tokenizer.ggml.*` metadata of a GGUF file).
#[derive(Clone)]
pub struct TokenizerBundle {
    pub tokenizer: tokenizers::Tokenizer,
    /// Jinja source of the chat template (`None` when the checkpoint has none).
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// Where it came from, for error messages.
    pub origin: PathBuf,
}

impl std::fmt::Debug for TokenizerBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenizerBundle")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("has_chat_template", &self.chat_template.is_some())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("origin", &self.origin)
            .finish()
    }
}
