//! A Hugging Face model folder: `config.json`, safetensors weights (single or sharded), and the
//! tokenizer files (`tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`).
//! `generation_config.json` is ignored: Basin only scores given tokens.
//!
//! Pickle checkpoints (`pytorch_model.bin`, `*.pt`, ...) are refused, never unpickled: loading
//! them runs arbitrary code.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    error::{CheckpointError, Result},
    hf_config::load_model_config,
    model_config::ModelConfig,
    safetensors_file::{SafetensorsSet, read_limited},
    tensors::TensorSource,
    tokenizer::TokenizerBundle,
};

/// Largest `tokenizer.json` accepted (real ones are up to a few tens of MB).
const MAX_TOKENIZER_BYTES: u64 = 500_000_000;
/// Largest `tokenizer_config.json` / chat template accepted.
const MAX_TOKENIZER_CONFIG_BYTES: u64 = 50_000_000;
/// File name endings of pickle checkpoints.
const PICKLE_SUFFIXES: [&str; 5] = [".bin", ".pt", ".pth", ".ckpt", ".pkl"];

/// A special token in `tokenizer_config.json`: a string or an AddedToken dict.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenSpec {
    Text(String),
    Added { content: String },
}

impl TokenSpec {
    pub fn content(&self) -> &str {
        match self {
            Self::Text(s) | Self::Added { content: s } => s,
        }
    }
}

/// One named template of the list form of `chat_template`.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedTemplate {
    pub name: String,
    pub template: String,
}

/// `chat_template` in `tokenizer_config.json`: one template or a list of named ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ChatTemplateSpec {
    Single(String),
    Named(Vec<NamedTemplate>),
}

/// Serde mirror of the fields of `tokenizer_config.json` Basin uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenizerConfig {
    pub bos_token: Option<TokenSpec>,
    pub eos_token: Option<TokenSpec>,
    pub pad_token: Option<TokenSpec>,
    pub unk_token: Option<TokenSpec>,
    pub chat_template: Option<ChatTemplateSpec>,
}

/// Serde mirror of `chat_template.json` (processor-style folders).
#[derive(Debug, Deserialize)]
struct ChatTemplateJson {
    chat_template: String,
}

/// An opened Hugging Face folder with checked config and weights.
#[derive(Debug)]
pub struct HfCheckpoint {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub tensors: SafetensorsSet,
}

impl HfCheckpoint {
    /// Opens a folder: refuses pickle-only folders, reads `config.json` and the safetensors,
    /// and checks the embedding (and untied `lm_head`) shapes against the config.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let entries = std::fs::read_dir(&dir).map_err(|e| CheckpointError::io(&dir, e))?;
        let mut has_safetensors = false;
        let mut pickles = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CheckpointError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".safetensors") || name == "model.safetensors.index.json" {
                has_safetensors = true;
            } else if PICKLE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                pickles.push(name);
            }
        }
        if !has_safetensors {
            if pickles.is_empty() {
                return Err(CheckpointError::format(
                    &dir,
                    "no model.safetensors or model.safetensors.index.json: not a Hugging Face model folder",
                ));
            }
            pickles.sort();
            return Err(CheckpointError::unsupported(
                &dir,
                format!(
                    "only pickle weights ({}); Basin never unpickles (it can run arbitrary code). Convert to \
                     safetensors first, e.g. `AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out)` \
                     in Python, which writes model.safetensors",
                    pickles.join(", ")
                ),
            ));
        }
        let config = load_model_config(&dir.join("config.json"))?;
        let tensors = SafetensorsSet::open_dir(&dir)?;
        let checkpoint = Self {
            dir,
            config,
            tensors,
        };
        checkpoint.check_embedding_shapes()?;
        Ok(checkpoint)
    }

    /// The embedding (and `lm_head`, when present) must have `vocab_size` rows of `hidden_size`.
    fn check_embedding_shapes(&self) -> Result<()> {
        let expected = vec![self.config.vocab_size, self.config.hidden_size];
        for name in ["model.embed_tokens.weight", "lm_head.weight"] {
            let shape = match self.tensors.tensor_shape(name) {
                Some(s) => s,
                None if name == "lm_head.weight" => continue,
                None => {
                    return Err(CheckpointError::MissingTensor {
                        path: self.tensors.origin().to_path_buf(),
                        name: name.to_string(),
                    });
                }
            };
            if shape != expected {
                return Err(CheckpointError::Shape {
                    path: self.tensors.origin().to_path_buf(),
                    name: format!(
                        "{name} (config.json: vocab_size {}, hidden_size {})",
                        expected[0], expected[1]
                    ),
                    got: shape,
                    expected: expected.clone(),
                });
            }
        }
        Ok(())
    }

    /// Loads the tokenizer, chat template and special tokens, and checks that every token id
    /// has an embedding row.
    pub fn tokenizer(&self) -> Result<TokenizerBundle> {
        let bundle = load_tokenizer_bundle(&self.dir)?;
        let rows = self
            .tensors
            .tensor_shape("model.embed_tokens.weight")
            .and_then(|s| s.first().copied())
            .unwrap_or(self.config.vocab_size);
        check_vocab_fits(&bundle, rows, self.tensors.origin())?;
        Ok(bundle)
    }
}

/// Errors when the tokenizer can produce ids without an embedding row.
pub fn check_vocab_fits(
    bundle: &TokenizerBundle,
    embedding_rows: usize,
    weights: &Path,
) -> Result<()> {
    let max_id = bundle.tokenizer.get_vocab(true).into_values().max();
    if let Some(max_id) = max_id
        && max_id as usize >= embedding_rows
    {
        return Err(CheckpointError::format(
            &bundle.origin,
            format!(
                "the tokenizer has token ids up to {max_id} (needs {} embedding rows) but the embedding in {} has only {embedding_rows} rows: tokenizer and weights do not belong together",
                max_id as usize + 1,
                weights.display()
            ),
        ));
    }
    Ok(())
}

/// Reads `tokenizer.json`, `tokenizer_config.json` (optional) and the chat template of a folder.
pub fn load_tokenizer_bundle(dir: &Path) -> Result<TokenizerBundle> {
    let tok_path = dir.join("tokenizer.json");
    let text = read_limited(&tok_path, MAX_TOKENIZER_BYTES)?;
    // tokenizers panics on some malformed files (found by tests/fuzz.rs: a non-string key
    // inside `decoder`), so the JSON syntax is checked here first and a panic is kept from
    // escaping as a backstop.
    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| {
        CheckpointError::format(
            &tok_path,
            format!("not a valid tokenizer.json: not JSON: {e}"),
        )
    })?;
    let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(text.as_bytes()))
        .map_err(|_| {
            CheckpointError::format(
                &tok_path,
                "not a valid tokenizer.json: the tokenizers library failed on it",
            )
        })?;
    let tokenizer = parsed.map_err(|e| {
        CheckpointError::format(&tok_path, format!("not a valid tokenizer.json: {e}"))
    })?;

    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: TokenizerConfig = if cfg_path.is_file() {
        let text = read_limited(&cfg_path, MAX_TOKENIZER_CONFIG_BYTES)?;
        serde_json::from_str(&text).map_err(|e| {
            CheckpointError::format(&cfg_path, format!("not a valid tokenizer_config.json: {e}"))
        })?
    } else {
        TokenizerConfig::default()
    };

    let chat_template = read_chat_template(dir, &cfg, &cfg_path)?;
    let id_of = |spec: &Option<TokenSpec>, role: &str| -> Result<Option<u32>> {
        match spec {
            None => Ok(None),
            Some(t) => tokenizer.token_to_id(t.content()).map(Some).ok_or_else(|| {
                CheckpointError::format(
                    &cfg_path,
                    format!(
                        "{role} `{}` is not a token of {}",
                        t.content(),
                        tok_path.display()
                    ),
                )
            }),
        }
    };
    let eos_token_id = id_of(&cfg.eos_token, "eos_token")?;
    let pad_token_id = id_of(&cfg.pad_token, "pad_token")?;
    id_of(&cfg.bos_token, "bos_token")?;
    Ok(TokenizerBundle {
        tokenizer,
        chat_template,
        bos_token: cfg.bos_token.map(|t| t.content().to_string()),
        eos_token: cfg.eos_token.map(|t| t.content().to_string()),
        eos_token_id,
        pad_token_id,
        origin: tok_path,
    })
}

/// `chat_template.jinja` (transformers 5), else `chat_template.json`, else `tokenizer_config.json`.
fn read_chat_template(
    dir: &Path,
    cfg: &TokenizerConfig,
    cfg_path: &Path,
) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return read_limited(&jinja, MAX_TOKENIZER_CONFIG_BYTES).map(Some);
    }
    let json = dir.join("chat_template.json");
    if json.is_file() {
        let text = read_limited(&json, MAX_TOKENIZER_CONFIG_BYTES)?;
        let parsed: ChatTemplateJson = serde_json::from_str(&text).map_err(|e| {
            CheckpointError::format(&json, format!("not a valid chat_template.json: {e}"))
        })?;
        return Ok(Some(parsed.chat_template));
    }
    match &cfg.chat_template {
        None => Ok(None),
        Some(ChatTemplateSpec::Single(t)) => Ok(Some(t.clone())),
        Some(ChatTemplateSpec::Named(list)) => {
            let by_name: BTreeMap<&str, &str> = list
                .iter()
                .map(|t| (t.name.as_str(), t.template.as_str()))
                .collect();
            match by_name.get("default") {
                Some(t) => Ok(Some(t.to_string())),
                None => Err(CheckpointError::format(
                    cfg_path,
                    format!(
                        "chat_template lists {:?} but no `default` template",
                        by_name.keys().collect::<Vec<_>>()
                    ),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::safetensors_file::tests::{
        f32_bytes, fixtures, temp_dir, write_safetensors,
    };

    /// A copy of the llama fixture folder that a test may modify.
    fn llama_copy(tag: &str) -> PathBuf {
        let dir = temp_dir(tag);
        for entry in std::fs::read_dir(fixtures().join("llama")).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
        dir
    }

    #[test]
    fn opens_transformers5_folder() {
        let ck = HfCheckpoint::open(fixtures().join("llama")).unwrap();
        assert_eq!(ck.config.num_hidden_layers, 2);
        let vocab = ck.config.vocab_size;
        assert_eq!(
            ck.tensors.tensor_shape("model.embed_tokens.weight"),
            Some(vec![vocab, 16])
        );
        assert_eq!(
            ck.tensors
                .tensor_shape("model.layers.1.self_attn.k_proj.weight"),
            Some(vec![8, 16])
        );
        let t = ck.tokenizer().unwrap();
        assert!(t.chat_template.as_deref().unwrap().contains("<|im_start|>"));
        assert_eq!(t.bos_token.as_deref(), Some("<|im_start|>"));
        assert_eq!(t.eos_token.as_deref(), Some("<|im_end|>"));
        // Special tokens come first in the trained vocabulary.
        assert_eq!((t.eos_token_id, t.pad_token_id), (Some(2), Some(0)));
        assert_eq!(t.tokenizer.get_vocab_size(true), vocab);
        let ids = t
            .tokenizer
            .encode("hello world", false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert!(!ids.is_empty() && ids.iter().all(|&i| (i as usize) < vocab));
    }

    #[test]
    fn legacy_tokenizer_config_template_and_added_token_dicts() {
        let dir = llama_copy("legacy");
        std::fs::remove_file(dir.join("chat_template.jinja")).unwrap();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"bos_token": {"content": "<|im_start|>", "lstrip": false}, "eos_token": {"__type": "AddedToken", "content": "<|im_end|>"},
               "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#,
        )
        .unwrap();
        let t = HfCheckpoint::open(&dir).unwrap().tokenizer().unwrap();
        assert_eq!(t.chat_template.as_deref(), Some("D"));
        assert_eq!((t.eos_token_id, t.pad_token_id), (Some(2), None));
        assert_eq!(t.bos_token.as_deref(), Some("<|im_start|>"));

        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"chat_template": "S", "eos_token": "<|nope|>"}"#,
        )
        .unwrap();
        let e = HfCheckpoint::open(&dir)
            .unwrap()
            .tokenizer()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tokenizer_config.json") && e.contains("<|nope|>"),
            "{e}"
        );

        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"chat_template": [{"name": "x", "template": "X"}]}"#,
        )
        .unwrap();
        let e = HfCheckpoint::open(&dir)
            .unwrap()
            .tokenizer()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `default`"), "{e}");

        std::fs::write(dir.join("tokenizer.json"), "{").unwrap();
        let e = HfCheckpoint::open(&dir)
            .unwrap()
            .tokenizer()
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
    }

    #[test]
    fn pickle_only_folder_is_refused() {
        let dir = temp_dir("pickle");
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("pytorch_model.bin"), b"\x80\x02").unwrap();
        let e = HfCheckpoint::open(&dir).unwrap_err();
        assert!(matches!(e, CheckpointError::Unsupported { .. }));
        let e = e.to_string();
        assert!(
            e.contains("pytorch_model.bin")
                && e.contains("safetensors")
                && e.contains(dir.to_str().unwrap()),
            "{e}"
        );
        let empty = temp_dir("empty");
        let e = HfCheckpoint::open(&empty).unwrap_err().to_string();
        assert!(e.contains("no model.safetensors"), "{e}");
    }

    #[test]
    fn vocab_mismatches() {
        // Config says a vocabulary the embedding does not have.
        let dir = llama_copy("vocab1");
        let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
        let vocab = v["vocab_size"].as_u64().unwrap() as usize;
        v["vocab_size"] = serde_json::json!(vocab + 5);
        std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
        let e = HfCheckpoint::open(&dir).unwrap_err();
        assert!(matches!(e, CheckpointError::Shape { .. }));
        let e = e.to_string();
        assert!(
            e.contains("model.embed_tokens.weight") && e.contains(&format!("{}", vocab + 5)),
            "{e}"
        );

        // Weights with fewer rows than the tokenizer needs (config consistent with the weights).
        let dir = llama_copy("vocab2");
        let small = 10usize;
        v["vocab_size"] = serde_json::json!(small);
        v["tie_word_embeddings"] = serde_json::json!(true);
        std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
        write_safetensors(
            &dir.join("model.safetensors"),
            &[(
                "model.embed_tokens.weight",
                "F32",
                vec![small, 16],
                f32_bytes(&vec![0.5; small * 16]),
            )],
        );
        let ck = HfCheckpoint::open(&dir).unwrap();
        let e = ck.tokenizer().unwrap_err().to_string();
        assert!(
            e.contains(&format!("up to {}", vocab - 1)) && e.contains("only 10 rows"),
            "{e}"
        );
        assert!(
            e.contains("tokenizer.json") && e.contains("model.safetensors"),
            "{e}"
        );
    }

    #[test]
    fn missing_or_bad_parts() {
        let dir = llama_copy("parts");
        std::fs::write(dir.join("config.json"), "[1, 2").unwrap();
        let e = HfCheckpoint::open(&dir).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
        std::fs::remove_file(dir.join("config.json")).unwrap();
        let e = HfCheckpoint::open(&dir).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
        let dir = llama_copy("parts2");
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
        let e = HfCheckpoint::open(&dir).unwrap_err().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
    }
}
