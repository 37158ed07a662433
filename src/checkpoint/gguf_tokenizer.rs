//! Rebuilds a Hugging Face `tokenizers::Tokenizer` from the `tokenizer.ggml.*` metadata of a
//! GGUF file, so a GGUF checkpoint needs no separate `tokenizer.json`.
//!
//! Only byte-level BPE (`tokenizer.ggml.model == "gpt2"`) is supported. The pre-tokenizer is
//! chosen from `tokenizer.ggml.pre`, the name llama.cpp gives to the original tokenizer's
//! pre-tokenisation regexes.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::error::{CheckpointError, Result};
use super::gguf::GgufFile;
use super::tokenizer::TokenizerBundle;

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The Llama 3 pre-tokenisation regex (`llama-bpe`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The Qwen2 pre-tokenisation regex (`qwen2`): like Llama 3 but single digits.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How the text is split before BPE, per `tokenizer.ggml.pre`.
enum PreTokenization {
    /// GPT-2's own regex inside ByteLevel (`gpt2`, `default`).
    Gpt2,
    /// Single digits, then GPT-2's regex (`smollm`).
    SmolLm,
    /// A custom split regex, then ByteLevel without its regex.
    Regex {
        pattern: &'static str,
        nfc: bool,
        ignore_merges: bool,
    },
}

impl PreTokenization {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "gpt2" | "default" => Some(Self::Gpt2),
            "smollm" => Some(Self::SmolLm),
            "llama-bpe" | "llama3" => Some(Self::Regex {
                pattern: LLAMA3_REGEX,
                nfc: false,
                ignore_merges: true,
            }),
            "qwen2" => Some(Self::Regex {
                pattern: QWEN2_REGEX,
                nfc: true,
                ignore_merges: false,
            }),
            _ => None,
        }
    }
}

/// Builds the tokenizer, chat template and special tokens from a GGUF file's metadata.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<TokenizerBundle> {
    let path = file.path();
    let format_err = |msg: String| CheckpointError::format(path, msg);
    let model = file.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(CheckpointError::unsupported(
            path,
            format!(
                "tokenizer model `{model}` (only byte-level BPE, `gpt2`, is supported); load the tokenizer.json of the original model instead"
            ),
        ));
    }
    let pre_name = file.opt_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let pre = PreTokenization::from_name(pre_name).ok_or_else(|| {
        CheckpointError::unsupported(
            path,
            format!(
                "pre-tokenizer `{pre_name}` (supported: default, gpt2, smollm, llama-bpe, qwen2)"
            ),
        )
    })?;

    let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
    let token_types = match file.get("tokenizer.ggml.token_type") {
        Some(_) => Some(file.get_i32_array("tokenizer.ggml.token_type")?),
        None => None,
    };
    if let Some(types) = token_types
        && types.len() != tokens.len()
    {
        return Err(format_err(format!(
            "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
            types.len(),
            tokens.len()
        )));
    }
    let n_tokens = u32::try_from(tokens.len())
        .map_err(|_| format_err(format!("{} tokens do not fit 32-bit ids", tokens.len())))?;
    let vocab: Vocab = tokens.iter().cloned().zip(0..n_tokens).collect();
    let merges = file
        .get_str_array("tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(i, m)| match m.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
            _ => Err(format_err(format!(
                "tokenizer.ggml.merges[{i}] = {m:?} is not two tokens separated by a space"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;

    let ignore_merges = matches!(
        pre,
        PreTokenization::Regex {
            ignore_merges: true,
            ..
        }
    );
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| format_err(format!("cannot build the BPE tokenizer: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);

    let pre_tokenizer: PreTokenizerWrapper = match pre {
        PreTokenization::Gpt2 => ByteLevel::new(false, true, true).into(),
        PreTokenization::SmolLm => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        PreTokenization::Regex { pattern, nfc, .. } => {
            if nfc {
                tokenizer.with_normalizer(Some(NFC));
            }
            let split = Split::new(
                SplitPattern::Regex(pattern.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| format_err(format!("pre-tokenizer `{pre_name}`: {e}")))?;
            Sequence::new(vec![
                split.into(),
                ByteLevel::new(false, true, false).into(),
            ])
            .into()
        }
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    // Control / unknown tokens are special (skipped by `skip_special_tokens`); user-defined ones
    // are added tokens that decode as text, as in transformers. Both are never split by BPE.
    if let Some(types) = token_types {
        let mut special = Vec::new();
        let mut added = Vec::new();
        for (token, &ty) in tokens.iter().zip(types) {
            match ty {
                TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => {
                    special.push(AddedToken::from(token.clone(), true))
                }
                TOKEN_TYPE_USER_DEFINED => {
                    added.push(AddedToken::from(token.clone(), false).normalized(false))
                }
                _ => {}
            }
        }
        tokenizer.add_special_tokens(&special);
        tokenizer.add_tokens(&added);
    }

    let token_id = |key: &str| -> Result<Option<(u32, String)>> {
        match file.opt_u32(key)? {
            None => Ok(None),
            Some(id) => match tokens.get(id as usize) {
                Some(t) => Ok(Some((id, t.clone()))),
                None => Err(format_err(format!(
                    "{key} = {id} is outside the vocabulary of {n_tokens} tokens"
                ))),
            },
        }
    };
    let bos = token_id("tokenizer.ggml.bos_token_id")?;
    let eos = token_id("tokenizer.ggml.eos_token_id")?;
    let pad = token_id("tokenizer.ggml.padding_token_id")?;
    // llama.cpp adds BOS unless told otherwise; EOS only when asked.
    let add_bos = file
        .opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(true);
    let add_eos = file
        .opt_bool("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false);
    let prefix = bos.as_ref().filter(|_| add_bos);
    let suffix = eos.as_ref().filter(|_| add_eos);
    if prefix.is_some() || suffix.is_some() {
        let wrap = |body: &str| {
            let mut parts = Vec::new();
            if let Some((_, t)) = prefix {
                parts.push(t.clone());
            }
            parts.push(body.to_string());
            if let Some((_, t)) = suffix {
                parts.push(t.clone());
            }
            parts.join(" ")
        };
        let specials: Vec<(String, u32)> = prefix
            .iter()
            .chain(suffix.iter())
            .map(|(id, t)| (t.clone(), *id))
            .collect();
        let processor = TemplateProcessing::builder()
            .try_single(wrap("$A"))
            .and_then(|b| b.try_pair(format!("{} {}", wrap("$A"), wrap("$B:1"))))
            .map_err(|e| format_err(format!("cannot build the BOS/EOS template: {e}")))?
            .special_tokens(specials)
            .build()
            .map_err(|e| format_err(format!("cannot build the BOS/EOS template: {e}")))?;
        tokenizer.with_post_processor(Some(processor));
    }

    Ok(TokenizerBundle {
        tokenizer,
        chat_template: file.opt_str("tokenizer.chat_template")?.map(str::to_string),
        bos_token: bos.map(|(_, t)| t),
        eos_token: eos.as_ref().map(|(_, t)| t.clone()),
        eos_token_id: eos.map(|(id, _)| id),
        pad_token_id: pad.map(|(id, _)| id),
        origin: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::gguf::tests::{GgufBuilder, write_temp};

    /// Token ids of transformers' tokenizer for the reference chats, and decode round trips.
    #[test]
    fn smollm2_matches_reference_input_ids() {
        let file = GgufFile::open(crate::test_fixtures::smollm2_gguf()).unwrap();
        let bundle = tokenizer_from_gguf(&file).unwrap();
        assert_eq!(bundle.tokenizer.get_vocab_size(true), 49152);
        assert_eq!(bundle.bos_token.as_deref(), Some("<|im_start|>"));
        assert_eq!(bundle.eos_token.as_deref(), Some("<|im_end|>"));
        assert_eq!(bundle.eos_token_id, Some(2));
        assert_eq!(bundle.pad_token_id, Some(2));
        assert!(
            bundle
                .chat_template
                .as_deref()
                .unwrap()
                .contains("<|im_start|>")
        );
        assert_eq!(bundle.tokenizer.token_to_id("<|im_start|>"), Some(1));

        let reference: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(crate::test_fixtures::smollm2_reference()).unwrap(),
        )
        .unwrap();
        let examples = reference["examples"].as_array().unwrap();
        assert_eq!(examples.len(), 8);
        for ex in examples {
            let text = ex["text"].as_str().unwrap();
            let want: Vec<u32> = ex["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let enc = bundle.tokenizer.encode(text, true).unwrap();
            assert_eq!(enc.get_ids(), want.as_slice(), "text {text:?}");
            let decoded = bundle.tokenizer.decode(enc.get_ids(), false).unwrap();
            assert_eq!(decoded, text);
        }
        // Digits are split one by one (the `smollm` pre-tokenizer) and special tokens are single ids.
        let enc = bundle
            .tokenizer
            .encode("<|im_end|>12345 apples", false)
            .unwrap();
        assert_eq!(enc.get_ids()[0], 2);
        assert_eq!(enc.get_tokens()[1..6], ["1", "2", "3", "4", "5"]);
        let text = "Ünïcödé ✓ and\ttabs\n\n  spaces 🤗";
        let ids = bundle
            .tokenizer
            .encode(text, false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(bundle.tokenizer.decode(&ids, false).unwrap(), text);
    }

    fn tiny_tokenizer(model: &str, pre: &str) -> GgufBuilder {
        GgufBuilder::new()
            .kv_str("tokenizer.ggml.model", model)
            .kv_str("tokenizer.ggml.pre", pre)
            .kv_str_array(
                "tokenizer.ggml.tokens",
                &["<s>", "a", "b", "ab", "Ġ", "Ġab", "<x>"],
            )
            .kv_i32_array("tokenizer.ggml.token_type", &[3, 1, 1, 1, 1, 1, 4])
            .kv_str_array("tokenizer.ggml.merges", &["a b", "Ġ ab"])
            .kv_u32("tokenizer.ggml.bos_token_id", 0)
    }

    #[test]
    fn tiny_tokenizer_adds_bos_by_default() {
        let path = write_temp("tok", &tiny_tokenizer("gpt2", "gpt2").build());
        let f = GgufFile::open(&path).unwrap();
        let b = tokenizer_from_gguf(&f).unwrap();
        let enc = b.tokenizer.encode("ab ab<x>", true).unwrap();
        assert_eq!(enc.get_ids(), [0, 3, 5, 6]);
        assert_eq!(b.tokenizer.encode("ab", false).unwrap().get_ids(), [3]);
        assert_eq!(b.tokenizer.decode(&[0, 3, 5, 6], true).unwrap(), "ab ab<x>");
        std::fs::remove_file(&path).ok();
    }

    /// Each supported `tokenizer.ggml.pre` splits digits its own way.
    #[test]
    fn pre_tokenizers_split_digits_as_their_models_do() {
        let ids = |pre: &str| {
            let mut b = tiny_tokenizer("gpt2", pre);
            b.kvs.retain(|(k, _, _)| {
                k != "tokenizer.ggml.tokens"
                    && k != "tokenizer.ggml.token_type"
                    && k != "tokenizer.ggml.merges"
            });
            let b = b
                .kv_str_array(
                    "tokenizer.ggml.tokens",
                    &["<s>", "1", "2", "3", "4", "12", "123"],
                )
                .kv_i32_array("tokenizer.ggml.token_type", &[3, 1, 1, 1, 1, 1, 1])
                .kv_str_array("tokenizer.ggml.merges", &["1 2", "12 3"]);
            let path = write_temp(pre, &b.build());
            let f = GgufFile::open(&path).unwrap();
            let ids = tokenizer_from_gguf(&f)
                .unwrap()
                .tokenizer
                .encode("1234", false)
                .unwrap()
                .get_ids()
                .to_vec();
            std::fs::remove_file(&path).ok();
            ids
        };
        assert_eq!(ids("gpt2"), [6, 4]); // one pre-token "1234", merged up to "123"
        assert_eq!(ids("default"), [6, 4]);
        assert_eq!(ids("llama-bpe"), [6, 4]); // \p{N}{1,3}: "123" + "4"
        assert_eq!(ids("smollm"), [1, 2, 3, 4]); // individual digits
        assert_eq!(ids("qwen2"), [1, 2, 3, 4]); // \p{N}: one digit at a time
    }

    #[test]
    fn bad_tokenizers_refused_with_file_name() {
        let check = |tag: &str, b: GgufBuilder, want: &str| {
            let path = write_temp(tag, &b.build());
            let file_name = path.file_name().unwrap().to_str().unwrap().to_string();
            let f = GgufFile::open(&path).unwrap();
            let e = tokenizer_from_gguf(&f).unwrap_err().to_string();
            assert!(e.contains(&file_name) && e.contains(want), "{tag}: {e}");
            std::fs::remove_file(&path).ok();
        };
        check(
            "spm",
            tiny_tokenizer("llama", "default"),
            "tokenizer model `llama`",
        );
        check(
            "pre",
            tiny_tokenizer("gpt2", "deepseek-coder"),
            "pre-tokenizer `deepseek-coder`",
        );
        let mut bad_merge = tiny_tokenizer("gpt2", "gpt2");
        bad_merge
            .kvs
            .retain(|(k, _, _)| k != "tokenizer.ggml.merges");
        check(
            "merge",
            bad_merge.kv_str_array("tokenizer.ggml.merges", &["ab"]),
            "tokenizer.ggml.merges[0]",
        );
        let mut missing = tiny_tokenizer("gpt2", "gpt2");
        missing.kvs.retain(|(k, _, _)| k != "tokenizer.ggml.merges");
        check(
            "missing",
            missing,
            "missing metadata key `tokenizer.ggml.merges`",
        );
        let mut bad_bos = tiny_tokenizer("gpt2", "gpt2");
        bad_bos
            .kvs
            .retain(|(k, _, _)| k != "tokenizer.ggml.bos_token_id");
        check(
            "bos",
            bad_bos.kv_u32("tokenizer.ggml.bos_token_id", 99),
            "outside the vocabulary",
        );
    }
}
