//! Opening a base model from a path, whatever its format: a Hugging Face folder or a GGUF file.
//! Pickle checkpoints are refused, never unpickled.

use std::path::{Path, PathBuf};

use super::{
    error::{CheckpointError, Result},
    gguf_model::GgufCheckpoint,
    gguf_tokenizer::tokenizer_from_gguf,
    hf_folder::HfCheckpoint,
    model_config::ModelConfig,
    tensors::TensorSource,
    tokenizer::TokenizerBundle,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointFormat {
    HfFolder,
    Gguf,
}

/// A base model ready to be built: resolved config, tensors by HF name, tokenizer.
pub struct OpenedModel {
    pub path: PathBuf,
    pub format: CheckpointFormat,
    pub config: ModelConfig,
    pub tensors: Box<dyn TensorSource>,
    pub tokenizer: TokenizerBundle,
}

const PICKLE_EXTENSIONS: [&str; 5] = ["bin", "pt", "pth", "ckpt", "pkl"];

pub fn open_model(path: &Path) -> Result<OpenedModel> {
    if path.is_dir() {
        let hf = HfCheckpoint::open(path)?;
        let tokenizer = hf.tokenizer()?;
        let config = hf.config.clone();
        return Ok(OpenedModel {
            path: path.to_path_buf(),
            format: CheckpointFormat::HfFolder,
            config,
            tensors: Box::new(hf.tensors),
            tokenizer,
        });
    }
    if !path.exists() {
        return Err(CheckpointError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if PICKLE_EXTENSIONS.contains(&ext.as_str()) {
        return Err(CheckpointError::unsupported(
            path,
            "pickle checkpoints are never loaded (unpickling runs arbitrary code); convert it to \
             safetensors, e.g. in Python: `AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out, safe_serialization=True)`",
        ));
    }
    if ext == "safetensors" || ext == "json" {
        return Err(CheckpointError::unsupported(
            path,
            "pass the model folder (with config.json and tokenizer.json), not one of its files",
        ));
    }
    let mut ckpt = GgufCheckpoint::open(path)?;
    let config = ckpt.model_config()?;
    let tokenizer = tokenizer_from_gguf(ckpt.gguf())?;
    check_vocab(path, &config, &tokenizer)?;
    ckpt.drop_tokenizer_arrays();
    Ok(OpenedModel {
        path: path.to_path_buf(),
        format: CheckpointFormat::Gguf,
        config,
        tensors: Box::new(ckpt),
        tokenizer,
    })
}

/// The tokenizer must not produce ids the embedding has no row for.
pub fn check_vocab(path: &Path, config: &ModelConfig, tokenizer: &TokenizerBundle) -> Result<()> {
    let tok_size = tokenizer.tokenizer.get_vocab_size(true);
    if tok_size > config.vocab_size {
        return Err(CheckpointError::format(
            path,
            format!(
                "the tokenizer has {tok_size} tokens but the embedding only {} rows (wrong tokenizer for this model?)",
                config.vocab_size
            ),
        ));
    }
    Ok(())
}
