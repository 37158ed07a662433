//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! An adapter becomes a map from the base module name (`model.layers.3.self_attn.q_proj`) to
//! its factors `A: [r, in]`, `B: [out, r]` and the scale, so that the adapted layer computes
//! `W x + scale · B (A x)` exactly as PEFT does unmerged. Anything whose meaning Basin would get
//! wrong silently (DoRA, trained biases, modules_to_save, other PEFT types) is refused.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    error::{CheckpointError, Result},
    model_config::ModelConfig,
    safetensors_file::{SafetensorsFile, read_limited},
    tensors::{HostTensor, TensorSource},
};

const MAX_ADAPTER_CONFIG_BYTES: u64 = 10_000_000;
/// Prefix PEFT puts before the base model's parameter names.
const KEY_PREFIX: &str = "base_model.model.";

/// `target_modules`: a list of module-name suffixes, or one regex / `"all-linear"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

/// Serde mirror of PEFT's `adapter_config.json` (fields Basin uses or must refuse).
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    #[serde(default = "default_r")]
    pub r: usize,
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    #[serde(default)]
    pub use_rslora: bool,
    pub target_modules: Option<TargetModules>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default = "default_bias")]
    pub bias: String,
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub use_dora: bool,
    /// Module-name pattern → rank, overriding `r`.
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, usize>,
    /// Module-name pattern → alpha, overriding `lora_alpha`.
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, f64>,
    pub base_model_name_or_path: Option<String>,
    pub task_type: Option<String>,
    /// Trainable bias on B (newer PEFT): changes the output, refused.
    #[serde(default)]
    pub lora_bias: bool,
    /// Options that change the adapted model's structure; refused when set.
    pub layer_replication: Option<serde_json::Value>,
    pub target_parameters: Option<serde_json::Value>,
    pub trainable_token_indices: Option<serde_json::Value>,
    pub alora_invocation_tokens: Option<serde_json::Value>,
}

fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn default_bias() -> String {
    "none".into()
}

/// A JSON value that is "not set": null, false, empty list or map.
fn is_unset(v: &Option<serde_json::Value>) -> bool {
    match v {
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => true,
        Some(serde_json::Value::Array(a)) => a.is_empty(),
        Some(serde_json::Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

impl AdapterConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_limited(path, MAX_ADAPTER_CONFIG_BYTES)?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| {
            CheckpointError::format(path, format!("not a valid adapter_config.json: {e}"))
        })?;
        cfg.check_supported(path)?;
        if cfg.r == 0 || cfg.rank_pattern.values().any(|&r| r == 0) {
            return Err(CheckpointError::format(
                path,
                "r is 0: a LoRA has rank at least 1",
            ));
        }
        Ok(cfg)
    }

    /// Refuses what Basin cannot apply exactly.
    fn check_supported(&self, path: &Path) -> Result<()> {
        let refuse = |msg: String| Err(CheckpointError::unsupported(path, msg));
        if self.peft_type != "LORA" {
            return refuse(format!(
                "peft_type `{}` (only LORA adapters)",
                self.peft_type
            ));
        }
        if self.use_dora {
            return refuse("use_dora = true (DoRA adapters rescale the weight norm; only plain LoRA is supported)".into());
        }
        if let Some(m) = &self.modules_to_save
            && !m.is_empty()
        {
            return refuse(format!(
                "modules_to_save {m:?}: the adapter replaces whole modules, which Basin does not apply"
            ));
        }
        if self.bias != "none" {
            return refuse(format!(
                "bias = `{}` (the adapter trains biases; only bias = \"none\")",
                self.bias
            ));
        }
        if self.lora_bias {
            return refuse("lora_bias = true".into());
        }
        for (name, value) in [
            ("layer_replication", &self.layer_replication),
            ("target_parameters", &self.target_parameters),
            ("trainable_token_indices", &self.trainable_token_indices),
            ("alora_invocation_tokens", &self.alora_invocation_tokens),
        ] {
            if !is_unset(value) {
                return refuse(format!("`{name}` is set"));
            }
        }
        if !(self.lora_alpha.is_finite()) {
            return refuse(format!("lora_alpha {}", self.lora_alpha));
        }
        Ok(())
    }

    /// The rank and alpha PEFT uses for a module: the first pattern that matches it, else `r` and
    /// `lora_alpha`. PEFT matches pattern `p` with the regex `(.*\.)?(p)$`; Basin supports
    /// patterns that are plain (dotted) names, which is what PEFT itself writes.
    pub fn rank_and_alpha(&self, module: &str, path: &Path) -> Result<(usize, f64)> {
        let r = find_pattern(&self.rank_pattern, module, path)?.unwrap_or(self.r);
        let alpha = find_pattern(&self.alpha_pattern, module, path)?.unwrap_or(self.lora_alpha);
        Ok((r, alpha))
    }

    /// `alpha / r`, or `alpha / sqrt(r)` with rsLoRA, as PEFT computes `scaling`.
    pub fn scale(&self, r: usize, alpha: f64) -> f64 {
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }
}

/// Value of the pattern matching `module` (the whole name or a `.`-separated suffix of it).
fn find_pattern<T: Copy + PartialEq + std::fmt::Debug>(
    patterns: &BTreeMap<String, T>,
    module: &str,
    path: &Path,
) -> Result<Option<T>> {
    let mut found: Option<(&str, T)> = None;
    for (pattern, value) in patterns {
        if pattern
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
        {
            return Err(CheckpointError::unsupported(
                path,
                format!(
                    "regex pattern `{pattern}` in rank_pattern/alpha_pattern (only plain module names)"
                ),
            ));
        }
        let matches = module == pattern
            || module
                .strip_suffix(pattern.as_str())
                .is_some_and(|rest| rest.ends_with('.'));
        if matches {
            match found {
                Some((other, v)) if v != *value => {
                    return Err(CheckpointError::unsupported(
                        path,
                        format!(
                            "patterns `{other}` and `{pattern}` both match `{module}` with different values"
                        ),
                    ));
                }
                _ => found = Some((pattern, *value)),
            }
        }
    }
    Ok(found.map(|(_, v)| v))
}

/// The LoRA factors of one linear layer: `delta W = scale · B A`.
#[derive(Debug, Clone)]
pub struct LoraModule {
    /// `[r, in_features]`.
    pub a: HostTensor,
    /// `[out_features, r]`.
    pub b: HostTensor,
    pub scale: f64,
}

/// A loaded PEFT LoRA adapter.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// The adapter folder.
    pub origin: PathBuf,
    pub config: AdapterConfig,
    /// Base module name (`model.layers.0.self_attn.q_proj`) → factors.
    pub modules: BTreeMap<String, LoraModule>,
}

/// Which factor a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    A,
    B,
}

/// Splits a PEFT key into (module, factor, adapter name if any).
/// `base_model.model.<module>.lora_A[.<adapter>].weight`.
fn parse_key(key: &str) -> Option<(&str, Factor, Option<&str>)> {
    let rest = key.strip_prefix(KEY_PREFIX)?.strip_suffix(".weight")?;
    for (marker, factor) in [(".lora_A", Factor::A), (".lora_B", Factor::B)] {
        if let Some(module) = rest.strip_suffix(marker) {
            return Some((module, factor, None));
        }
        if let Some((head, adapter)) = rest.rsplit_once('.')
            && let Some(module) = head.strip_suffix(marker)
        {
            return Some((module, factor, Some(adapter)));
        }
    }
    None
}

impl LoraAdapter {
    /// Opens an adapter folder (or its `adapter_model.safetensors` / `adapter_config.json`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new("."))
        } else {
            path
        }
        .to_path_buf();
        let config_path = dir.join("adapter_config.json");
        let config = AdapterConfig::from_file(&config_path)?;
        let weights_path = dir.join("adapter_model.safetensors");
        if !weights_path.is_file() {
            let pickle = dir.join("adapter_model.bin");
            if pickle.is_file() {
                return Err(CheckpointError::unsupported(
                    &pickle,
                    "pickle adapter weights; Basin never unpickles. Re-save with \
                     `model.save_pretrained(out, safe_serialization=True)` to get adapter_model.safetensors",
                ));
            }
            return Err(CheckpointError::format(
                &dir,
                "no adapter_model.safetensors in this folder",
            ));
        }
        let file = SafetensorsFile::open(&weights_path)?;
        let wp = weights_path.as_path();

        let mut pairs: BTreeMap<String, (Option<HostTensor>, Option<HostTensor>)> = BTreeMap::new();
        let mut adapter_name: Option<Option<String>> = None;
        for key in file.tensors().keys() {
            let Some((module, factor, name)) = parse_key(key) else {
                let why = if key.contains("lora_magnitude_vector") {
                    "a DoRA magnitude vector"
                } else if key.contains("lora_embedding_") {
                    "LoRA on an embedding layer, which Basin does not apply"
                } else if key.contains("modules_to_save") || !key.contains("lora_") {
                    "a full module weight (modules_to_save?), which Basin does not apply"
                } else {
                    "not a `base_model.model.<module>.lora_A|lora_B.weight` key"
                };
                return Err(CheckpointError::unsupported(
                    wp,
                    format!("tensor `{key}`: {why}"),
                ));
            };
            let name = name.map(str::to_string);
            match &adapter_name {
                None => adapter_name = Some(name),
                Some(n) if *n == name => {}
                Some(n) => {
                    return Err(CheckpointError::unsupported(
                        wp,
                        format!("several adapters in one file ({n:?} and {name:?})"),
                    ));
                }
            }
            let tensor = file.load_f32(key)?;
            if let Some(bad) = tensor.data.iter().position(|v| !v.is_finite()) {
                return Err(CheckpointError::format(
                    wp,
                    format!("tensor `{key}` holds a non-finite value at element {bad}"),
                ));
            }
            let slot = pairs.entry(module.to_string()).or_default();
            match factor {
                Factor::A => slot.0 = Some(tensor),
                Factor::B => slot.1 = Some(tensor),
            }
        }
        if pairs.is_empty() {
            return Err(CheckpointError::format(
                wp,
                "the adapter holds no LoRA tensors",
            ));
        }

        let mut modules = BTreeMap::new();
        for (module, (a, b)) in pairs {
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) => (a, b),
                (a, _) => {
                    let missing = if a.is_none() { "lora_A" } else { "lora_B" };
                    return Err(CheckpointError::MissingTensor {
                        path: weights_path.clone(),
                        name: format!("{KEY_PREFIX}{module}.{missing}.weight"),
                    });
                }
            };
            let (r, alpha) = config.rank_and_alpha(&module, &config_path)?;
            let (a_rows, in_f) = match a.shape.as_slice() {
                &[r, i] => (r, i),
                _ => return Err(shape_err(wp, &module, "lora_A", &a.shape, vec![r, 0])),
            };
            if a_rows != r || r == 0 {
                return Err(shape_err(wp, &module, "lora_A", &a.shape, vec![r, in_f]));
            }
            match b.shape.as_slice() {
                &[_, br] if br == r => {}
                _ => {
                    let out = b.shape.first().copied().unwrap_or(0);
                    return Err(shape_err(wp, &module, "lora_B", &b.shape, vec![out, r]));
                }
            }
            // fan_in_fan_out concerns how PEFT merges into a transposed (Conv1D) base weight; the
            // factors themselves are stored as nn.Linear weights either way, and for the nn.Linear
            // layers of the supported architectures PEFT turns the flag off. Nothing to transpose.
            let scale = config.scale(r, alpha);
            modules.insert(module, LoraModule { a, b, scale });
        }
        Ok(Self {
            origin: dir,
            config,
            modules,
        })
    }

    /// Opens an adapter and checks it against the base model it will be applied to.
    pub fn open_for(
        path: impl AsRef<Path>,
        base: &dyn TensorSource,
        config: &ModelConfig,
    ) -> Result<Self> {
        let adapter = Self::open(path)?;
        adapter.validate_against(base, config)?;
        Ok(adapter)
    }

    /// Checks that every adapted module is a `[out, in]` weight of the base matching the factors.
    pub fn validate_against(&self, base: &dyn TensorSource, config: &ModelConfig) -> Result<()> {
        if let Some(missing) = self
            .modules
            .keys()
            .find(|m| base.tensor_shape(&format!("{m}.weight")).is_none())
        {
            return Err(CheckpointError::format(
                &self.origin,
                format!(
                    "the adapter seems to be for another architecture: module `{missing}` has no weight `{missing}.weight` in {} ({:?}, {} layers){}",
                    base.origin().display(),
                    config.architecture,
                    config.num_hidden_layers,
                    self.config
                        .base_model_name_or_path
                        .as_deref()
                        .map(|b| format!("; the adapter was trained on `{b}`"))
                        .unwrap_or_default()
                ),
            ));
        }
        for (module, m) in &self.modules {
            let name = format!("{module}.weight");
            let base_shape = base.tensor_shape(&name).unwrap_or_default();
            let out_f = m.b.shape.first().copied().unwrap_or(0);
            let in_f = m.a.shape.get(1).copied().unwrap_or(0);
            if base_shape != [out_f, in_f] {
                return Err(CheckpointError::Shape {
                    path: self.origin.clone(),
                    name: format!(
                        "{name} of {} (adapter factors B·A)",
                        base.origin().display()
                    ),
                    got: base_shape,
                    expected: vec![out_f, in_f],
                });
            }
        }
        Ok(())
    }
}

fn shape_err(
    path: &Path,
    module: &str,
    factor: &str,
    got: &[usize],
    expected: Vec<usize>,
) -> CheckpointError {
    CheckpointError::Shape {
        path: path.to_path_buf(),
        name: format!("{KEY_PREFIX}{module}.{factor}.weight"),
        got: got.to_vec(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{
        hf_folder::HfCheckpoint,
        safetensors_file::tests::{f32_bytes, fixtures, temp_dir, write_safetensors},
    };

    #[derive(Deserialize)]
    struct RefModule {
        scale: f64,
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
        a: Vec<f64>,
        b: Vec<f64>,
    }

    fn check_against_peft(dir: &str) -> LoraAdapter {
        let dir = fixtures().join(dir);
        let adapter = LoraAdapter::open(&dir).unwrap();
        let reference: BTreeMap<String, RefModule> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        assert_eq!(
            adapter.modules.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>()
        );
        for (name, want) in &reference {
            let m = &adapter.modules[name];
            assert_eq!(m.a.shape, want.a_shape, "{name}");
            assert_eq!(m.b.shape, want.b_shape, "{name}");
            assert!(
                (m.scale - want.scale).abs() < 1e-12,
                "{name}: {} vs {}",
                m.scale,
                want.scale
            );
            for (got, want) in
                m.a.data
                    .iter()
                    .zip(&want.a)
                    .chain(m.b.data.iter().zip(&want.b))
            {
                assert_eq!(got.to_bits(), (*want as f32).to_bits(), "{name}");
            }
        }
        let base = HfCheckpoint::open(fixtures().join("llama")).unwrap();
        adapter
            .validate_against(&base.tensors, &base.config)
            .unwrap();
        adapter
    }

    #[test]
    fn real_peft_adapter_matches_peft() {
        let a = check_against_peft("lora");
        assert_eq!(a.modules.len(), 4);
        assert_eq!(
            a.modules["model.layers.1.self_attn.v_proj"].a.shape,
            vec![2, 16]
        );
        assert_eq!(
            a.modules["model.layers.1.self_attn.v_proj"].b.shape,
            vec![8, 2]
        );
        assert_eq!(a.modules["model.layers.0.self_attn.q_proj"].scale, 2.0);
        assert!(
            a.modules
                .values()
                .all(|m| m.b.data.iter().any(|v| *v != 0.0))
        );
    }

    #[test]
    fn rslora_with_rank_and_alpha_patterns_matches_peft() {
        let a = check_against_peft("lora_rslora");
        let q0 = &a.modules["model.layers.0.self_attn.q_proj"];
        assert_eq!((q0.a.shape[0], q0.scale), (4, 2.0));
        let v1 = &a.modules["model.layers.1.self_attn.v_proj"];
        assert!((v1.scale - 8.0 / 2f64.sqrt()).abs() < 1e-12);
    }

    /// An adapter folder with the given config JSON fields merged over a valid LoRA config, and
    /// the given tensors.
    fn adapter_dir(
        tag: &str,
        config_patch: serde_json::Value,
        tensors: &[(&str, Vec<usize>)],
    ) -> PathBuf {
        let dir = temp_dir(tag);
        let mut cfg = serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "bias": "none",
            "target_modules": ["q_proj"], "modules_to_save": null, "use_dora": false});
        for (k, v) in config_patch.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).unwrap();
        let owned: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s)| {
                (
                    *n,
                    "F32",
                    s.clone(),
                    f32_bytes(&vec![0.25; s.iter().product()]),
                )
            })
            .collect();
        write_safetensors(&dir.join("adapter_model.safetensors"), &owned);
        dir
    }

    const QA: &str = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    const QB: &str = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

    fn open_err(dir: &Path) -> CheckpointError {
        LoraAdapter::open(dir).unwrap_err()
    }

    #[test]
    fn refusals() {
        let good = [(QA, vec![2, 16]), (QB, vec![16, 2])];
        for (patch, needle) in [
            (serde_json::json!({"use_dora": true}), "use_dora"),
            (
                serde_json::json!({"modules_to_save": ["lm_head"]}),
                "modules_to_save",
            ),
            (serde_json::json!({"bias": "lora_only"}), "lora_only"),
            (serde_json::json!({"peft_type": "IA3"}), "IA3"),
            (
                serde_json::json!({"rank_pattern": {"q_proj|v_proj": 4}}),
                "regex",
            ),
        ] {
            let dir = adapter_dir("refuse", patch.clone(), &good);
            let e = open_err(&dir);
            let msg = e.to_string();
            assert!(
                matches!(e, CheckpointError::Unsupported { .. }),
                "{patch}: {msg}"
            );
            assert!(
                msg.contains(needle) && msg.contains("adapter_config.json"),
                "{patch}: {msg}"
            );
        }
        // Empty modules_to_save is fine; so is the `.default` adapter name of older files.
        let dir = adapter_dir(
            "default_name",
            serde_json::json!({"modules_to_save": []}),
            &[
                (
                    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
                    vec![2, 16],
                ),
                (
                    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight",
                    vec![16, 2],
                ),
            ],
        );
        let a = LoraAdapter::open(&dir).unwrap();
        assert_eq!(
            a.modules.keys().collect::<Vec<_>>(),
            vec!["model.layers.0.self_attn.q_proj"]
        );
        assert_eq!(a.modules["model.layers.0.self_attn.q_proj"].scale, 2.0);
    }

    #[test]
    fn bad_adapter_files() {
        let dir = adapter_dir("halfpair", serde_json::json!({}), &[(QA, vec![2, 16])]);
        let e = open_err(&dir).to_string();
        assert!(
            e.contains("adapter_model.safetensors") && e.contains("lora_B"),
            "{e}"
        );
        let dir = adapter_dir(
            "rank",
            serde_json::json!({"r": 4}),
            &[(QA, vec![2, 16]), (QB, vec![16, 2])],
        );
        let e = open_err(&dir);
        assert!(matches!(e, CheckpointError::Shape { .. }), "{e}");
        let dir = adapter_dir(
            "magnitude",
            serde_json::json!({}),
            &[
                (QA, vec![2, 16]),
                (QB, vec![16, 2]),
                (
                    "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
                    vec![16],
                ),
            ],
        );
        assert!(open_err(&dir).to_string().contains("DoRA"));
        let dir = adapter_dir(
            "mts",
            serde_json::json!({}),
            &[
                (QA, vec![2, 16]),
                (QB, vec![16, 2]),
                ("base_model.model.lm_head.weight", vec![4, 16]),
            ],
        );
        assert!(open_err(&dir).to_string().contains("lm_head"));
        let dir = adapter_dir(
            "cfg",
            serde_json::json!({}),
            &[(QA, vec![2, 16]), (QB, vec![16, 2])],
        );
        std::fs::write(dir.join("adapter_config.json"), "{\"r\": ").unwrap();
        let e = open_err(&dir).to_string();
        assert!(e.contains("adapter_config.json"), "{e}");
        std::fs::remove_file(dir.join("adapter_model.safetensors")).unwrap();
        std::fs::write(dir.join("adapter_config.json"), r#"{"peft_type":"LORA"}"#).unwrap();
        std::fs::write(dir.join("adapter_model.bin"), b"\x80").unwrap();
        let e = open_err(&dir);
        assert!(
            matches!(e, CheckpointError::Unsupported { .. })
                && e.to_string().contains("adapter_model.bin"),
            "{e}"
        );
    }

    #[test]
    fn validate_against_base() {
        let base = HfCheckpoint::open(fixtures().join("llama")).unwrap();
        // Base q_proj is [16, 16]; an adapter made for a wider model does not fit.
        let dir = adapter_dir(
            "wide",
            serde_json::json!({}),
            &[(QA, vec![2, 32]), (QB, vec![32, 2])],
        );
        let a = LoraAdapter::open(&dir).unwrap();
        let e = a.validate_against(&base.tensors, &base.config).unwrap_err();
        assert!(
            matches!(&e, CheckpointError::Shape { got, expected, .. } if *got == [16, 16] && *expected == [32, 32]),
            "{e}"
        );
        // Module names of another architecture (GPT-2 style).
        let dir = adapter_dir(
            "arch",
            serde_json::json!({"base_model_name_or_path": "gpt2"}),
            &[
                (
                    "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
                    vec![2, 16],
                ),
                (
                    "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
                    vec![48, 2],
                ),
            ],
        );
        let a = LoraAdapter::open(&dir).unwrap();
        let e = a
            .validate_against(&base.tensors, &base.config)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another architecture")
                && e.contains("transformer.h.0.attn.c_attn")
                && e.contains("gpt2"),
            "{e}"
        );
        // A layer the base does not have.
        let dir = adapter_dir(
            "layers",
            serde_json::json!({}),
            &[
                (
                    "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight",
                    vec![2, 16],
                ),
                (
                    "base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight",
                    vec![16, 2],
                ),
            ],
        );
        let e = LoraAdapter::open(&dir)
            .unwrap()
            .validate_against(&base.tensors, &base.config)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.layers.7.self_attn.q_proj"), "{e}");
    }

    #[test]
    fn pattern_matching_is_suffix_on_dots() {
        let p: BTreeMap<String, usize> = [
            ("q_proj".to_string(), 4),
            ("layers.1.self_attn.v_proj".to_string(), 6),
        ]
        .into();
        let path = Path::new("x");
        assert_eq!(
            find_pattern(&p, "model.layers.0.self_attn.q_proj", path).unwrap(),
            Some(4)
        );
        assert_eq!(
            find_pattern(&p, "model.layers.1.self_attn.v_proj", path).unwrap(),
            Some(6)
        );
        assert_eq!(
            find_pattern(&p, "model.layers.0.self_attn.v_proj", path).unwrap(),
            None
        );
        assert_eq!(
            find_pattern(&p, "model.layers.0.self_attn.xq_proj", path).unwrap(),
            None
        );
    }
}
