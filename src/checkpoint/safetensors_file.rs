//! Memory-mapped safetensors files, single or sharded (`model.safetensors.index.json`).
//!
//! The header (8-byte little-endian length + JSON) is parsed and checked here, before any tensor
//! is touched: every offset and size is checked against the file so that a truncated or malicious
//! file gives a `CheckpointError` naming it, never a panic or a huge allocation. Tensors are
//! converted to f32 on demand (F32, F16, BF16); other dtypes are refused when loaded.

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Component, Path, PathBuf},
};

use memmap2::Mmap;
use serde::Deserialize;

use super::{
    error::{CheckpointError, Result},
    tensors::{HostTensor, TensorSource},
};

/// Largest header accepted. The format's own reader uses the same bound; real headers of
/// models with thousands of tensors stay far below it.
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Largest index file (`model.safetensors.index.json`) accepted.
const MAX_INDEX_BYTES: u64 = 100_000_000;

/// Element types of the safetensors format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    F8E5M2,
    F8E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

impl Dtype {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "BOOL" => Self::Bool,
            "U8" => Self::U8,
            "I8" => Self::I8,
            "F8_E5M2" => Self::F8E5M2,
            "F8_E4M3" => Self::F8E4M3,
            "I16" => Self::I16,
            "U16" => Self::U16,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "I32" => Self::I32,
            "U32" => Self::U32,
            "F32" => Self::F32,
            "F64" => Self::F64,
            "I64" => Self::I64,
            "U64" => Self::U64,
            _ => return None,
        })
    }

    /// The dtype label as written in the file.
    pub fn label(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::U8 => "U8",
            Self::I8 => "I8",
            Self::F8E5M2 => "F8_E5M2",
            Self::F8E4M3 => "F8_E4M3",
            Self::I16 => "I16",
            Self::U16 => "U16",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::I32 => "I32",
            Self::U32 => "U32",
            Self::F32 => "F32",
            Self::F64 => "F64",
            Self::I64 => "I64",
            Self::U64 => "U64",
        }
    }

    pub fn size_bytes(self) -> usize {
        match self {
            Self::Bool | Self::U8 | Self::I8 | Self::F8E5M2 | Self::F8E4M3 => 1,
            Self::I16 | Self::U16 | Self::F16 | Self::BF16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 | Self::I64 | Self::U64 => 8,
        }
    }
}

/// Serde mirror of one tensor entry of the JSON header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTensorEntry {
    dtype: String,
    #[serde(deserialize_with = "bounded_shape")]
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// Most dimensions a tensor's shape may list (real ones have at most 5 or 6).
const MAX_DIMS: usize = 64;

/// A shape of at most [`MAX_DIMS`] dimensions, refused while it is read (a header's one
/// million-entry shape never becomes a million-entry vector).
fn bounded_shape<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<usize>, D::Error> {
    struct Dims;
    impl<'de> serde::de::Visitor<'de> for Dims {
        type Value = Vec<usize>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_DIMS} dimensions")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Vec<usize>, A::Error> {
            let mut dims = Vec::new();
            while let Some(d) = seq.next_element::<usize>()? {
                if dims.len() == MAX_DIMS {
                    return Err(serde::de::Error::custom(format!(
                        "a shape of more than {MAX_DIMS} dimensions"
                    )));
                }
                dims.push(d);
            }
            Ok(dims)
        }
    }
    d.deserialize_seq(Dims)
}

/// The JSON header read straight into typed entries: each tensor's entry and the
/// `__metadata__` string map, with no intermediate JSON tree (which can take many times the
/// header's bytes), a repeated name refused.
struct RawHeader {
    tensors: Vec<(String, RawTensorEntry)>,
    metadata: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = RawHeader;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawHeader, A::Error> {
                use serde::de::Error;
                let mut seen = std::collections::BTreeSet::new();
                let mut header = RawHeader {
                    tensors: Vec::new(),
                    metadata: BTreeMap::new(),
                };
                while let Some(name) = map.next_key::<String>()? {
                    if !seen.insert(name.clone()) {
                        return Err(A::Error::custom(format!("`{name}` appears twice")));
                    }
                    if name == "__metadata__" {
                        header.metadata = map.next_value().map_err(|e| {
                            A::Error::custom(format!("`__metadata__` is not a string map: {e}"))
                        })?;
                    } else {
                        let entry = map.next_value::<RawTensorEntry>().map_err(|e| {
                            A::Error::custom(format!("bad header entry for tensor `{name}`: {e}"))
                        })?;
                        header.tensors.push((name, entry));
                    }
                }
                Ok(header)
            }
        }
        d.deserialize_map(Entries)
    }
}

/// One tensor of a file, checked: its bytes lie inside the data section and match shape × dtype.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range inside the whole file (header included).
    start_byte: usize,
    end_byte: usize,
}

/// One memory-mapped `.safetensors` file with its checked header.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    tensors: BTreeMap<String, TensorInfo>,
    /// `__metadata__` string map of the header (e.g. `{"format": "pt"}`).
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("num_tensors", &self.tensors.len())
            .finish()
    }
}

impl SafetensorsFile {
    /// Maps the file and checks its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| CheckpointError::io(&path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| CheckpointError::io(&path, e))?
            .len();
        if file_len < 8 {
            return Err(CheckpointError::format(
                &path,
                format!(
                    "truncated safetensors file: {file_len} bytes, not even the 8-byte header length"
                ),
            ));
        }
        // SAFETY: the map is read-only; Basin never writes checkpoint files. Another process
        // truncating the file while it is mapped is outside what any reader can defend against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(&path, e))?;
        let (tensors, metadata) = parse_header(&path, &mmap)?;
        Ok(Self {
            path,
            mmap,
            tensors,
            metadata,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.tensors
    }

    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The raw little-endian bytes of a tensor.
    pub fn raw_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        self.mmap
            .get(info.start_byte..info.end_byte)
            .ok_or_else(|| {
                CheckpointError::format(
                    &self.path,
                    format!("tensor `{name}` lies outside the file"),
                )
            })
    }

    /// Reads one tensor and converts it to f32.
    pub fn load_f32(&self, name: &str) -> Result<HostTensor> {
        let bytes = self.raw_bytes(name)?;
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        let data: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(CheckpointError::unsupported(
                    &self.path,
                    format!(
                        "tensor `{name}` has dtype {}; only F32, F16 and BF16 weights are supported",
                        other.label()
                    ),
                ));
            }
        };
        super::tensors::release_pages(&self.mmap, bytes);
        Ok(HostTensor {
            shape: info.shape.clone(),
            data,
        })
    }
}

type ParsedHeader = (BTreeMap<String, TensorInfo>, BTreeMap<String, String>);

/// Parses and checks the header of a mapped file.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<ParsedHeader> {
    let file_len = bytes.len() as u64;
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            CheckpointError::format(path, "truncated safetensors file: no header length")
        })?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(CheckpointError::format(
            path,
            format!(
                "safetensors header claims {header_len} bytes (limit {MAX_HEADER_BYTES}); not a safetensors file or corrupt"
            ),
        ));
    }
    let data_start = 8 + header_len;
    if data_start > file_len {
        return Err(CheckpointError::format(
            path,
            format!(
                "safetensors header length {header_len} runs past the end of the file ({file_len} bytes): truncated or not a safetensors file"
            ),
        ));
    }
    // Both bounds checked above against the file length, which fits in memory.
    let header = bytes
        .get(8..data_start as usize)
        .ok_or_else(|| CheckpointError::format(path, "safetensors header outside the file"))?;
    let raw: RawHeader = serde_json::from_slice(header).map_err(|e| {
        let msg = e.to_string();
        // An entry's own problem names the entry; anything else is the header's shape.
        if msg.starts_with("bad header entry") || msg.starts_with('`') {
            CheckpointError::format(path, format!("safetensors header: {msg}"))
        } else {
            CheckpointError::format(
                path,
                format!("safetensors header is not a JSON object: {msg}"),
            )
        }
    })?;
    let data_len = file_len - data_start;
    let mut tensors = BTreeMap::new();
    let metadata = raw.metadata;
    for (name, entry) in raw.tensors {
        let dtype = Dtype::parse(&entry.dtype).ok_or_else(|| {
            CheckpointError::format(
                path,
                format!("tensor `{name}` has unknown dtype `{}`", entry.dtype),
            )
        })?;
        let [begin, end] = entry.data_offsets;
        if begin > end || end > data_len {
            return Err(CheckpointError::format(
                path,
                format!(
                    "tensor `{name}` has data offsets [{begin}, {end}] outside the data section of {data_len} bytes (truncated file?)"
                ),
            ));
        }
        let expected_bytes = entry
            .shape
            .iter()
            .try_fold(dtype.size_bytes() as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            });
        if expected_bytes != Some(end - begin) {
            return Err(CheckpointError::format(
                path,
                format!(
                    "tensor `{name}`: shape {:?} of {} needs {} bytes but data offsets [{begin}, {end}] hold {}",
                    entry.shape,
                    dtype.label(),
                    expected_bytes.map_or_else(|| "too many".to_string(), |b| b.to_string()),
                    end - begin
                ),
            ));
        }
        // Offsets are bounded by the file length, so they fit in usize.
        tensors.insert(
            name,
            TensorInfo {
                dtype,
                shape: entry.shape,
                start_byte: (data_start + begin) as usize,
                end_byte: (data_start + end) as usize,
            },
        );
    }
    Ok((tensors, metadata))
}

/// Serde mirror of `model.safetensors.index.json`.
#[derive(Debug, Deserialize)]
pub struct SafetensorsIndex {
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// Tensor name → shard file name (relative to the index's folder).
    pub weight_map: BTreeMap<String, String>,
}

/// The tensors of one checkpoint: one safetensors file, or shards listed by an index.
#[derive(Debug)]
pub struct SafetensorsSet {
    /// The single file, or the index file: what errors name.
    origin: PathBuf,
    shards: Vec<SafetensorsFile>,
    /// Tensor name → position in `shards`.
    locations: BTreeMap<String, usize>,
}

impl SafetensorsSet {
    /// One unsharded file.
    pub fn open_file(path: impl AsRef<Path>) -> Result<Self> {
        let file = SafetensorsFile::open(path)?;
        let locations = file.tensors.keys().map(|k| (k.clone(), 0)).collect();
        Ok(Self {
            origin: file.path.clone(),
            shards: vec![file],
            locations,
        })
    }

    /// Shards listed in a `model.safetensors.index.json`. Every listed shard must exist and hold
    /// the tensors the index maps to it. Tensors of a shard that the index does not list are
    /// ignored, as transformers does.
    pub fn open_index(index_path: impl AsRef<Path>) -> Result<Self> {
        let index_path = index_path.as_ref().to_path_buf();
        let text = read_limited(&index_path, MAX_INDEX_BYTES)?;
        let index: SafetensorsIndex = serde_json::from_str(&text).map_err(|e| {
            CheckpointError::format(&index_path, format!("not a valid safetensors index: {e}"))
        })?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut shard_pos: BTreeMap<&str, usize> = BTreeMap::new();
        let mut shards = Vec::new();
        let mut locations = BTreeMap::new();
        for (name, shard_name) in &index.weight_map {
            let pos = match shard_pos.get(shard_name.as_str()) {
                Some(&p) => p,
                None => {
                    let rel = Path::new(shard_name);
                    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                        return Err(CheckpointError::format(
                            &index_path,
                            format!("shard name `{shard_name}` is not a plain relative path"),
                        ));
                    }
                    let shard_path = dir.join(rel);
                    if !shard_path.is_file() {
                        return Err(CheckpointError::format(
                            &index_path,
                            format!("shard `{shard_name}` (listed for tensor `{name}`) is missing"),
                        ));
                    }
                    shards.push(SafetensorsFile::open(&shard_path)?);
                    let p = shards.len() - 1;
                    shard_pos.insert(shard_name, p);
                    p
                }
            };
            let has = shards
                .get(pos)
                .is_some_and(|s| s.tensors.contains_key(name));
            if !has {
                return Err(CheckpointError::MissingTensor {
                    path: dir.join(shard_name),
                    name: format!("{name} (listed for this shard in {})", index_path.display()),
                });
            }
            locations.insert(name.clone(), pos);
        }
        Ok(Self {
            origin: index_path,
            shards,
            locations,
        })
    }

    /// `model.safetensors.index.json` when present, else `model.safetensors`.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            return Self::open_index(index);
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Self::open_file(single);
        }
        Err(CheckpointError::format(
            dir,
            "no model.safetensors or model.safetensors.index.json in this folder",
        ))
    }

    /// The files the tensors come from.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.shards.iter().map(|s| s.path())
    }

    fn locate(&self, name: &str) -> Option<(&SafetensorsFile, &TensorInfo)> {
        let shard = self.shards.get(*self.locations.get(name)?)?;
        Some((shard, shard.tensors.get(name)?))
    }
}

impl TensorSource for SafetensorsSet {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn tensor_names(&self) -> Vec<String> {
        self.locations.keys().cloned().collect()
    }

    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.locate(name).map(|(_, i)| i.shape.clone())
    }

    fn tensor_dtype(&self, name: &str) -> Option<String> {
        self.locate(name).map(|(_, i)| i.dtype.label().to_string())
    }

    fn load_f32(&self, name: &str) -> Result<HostTensor> {
        match self.locate(name) {
            Some((shard, _)) => shard.load_f32(name),
            None => Err(CheckpointError::MissingTensor {
                path: self.origin.clone(),
                name: name.to_string(),
            }),
        }
    }
}

/// Reads a text file, refusing more than `max_bytes` (protects against a huge or wrong file, a
/// FIFO or a device being read into memory; see [`crate::bounded`]).
pub(crate) fn read_limited(path: &Path, max_bytes: u64) -> Result<String> {
    crate::bounded::read_to_string(path, max_bytes).map_err(|e| CheckpointError::io(path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh empty folder under the system temp dir.
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("basin-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a safetensors file from (name, dtype, shape, raw bytes).
    pub(crate) fn write_safetensors(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            let begin = data.len();
            data.extend_from_slice(bytes);
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()]}),
            );
        }
        let header = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        std::fs::write(path, out).unwrap();
    }

    pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    pub(crate) fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_small")
    }

    fn err_string(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn dtypes_match_numpy_reference() {
        let dir = fixtures().join("dtypes");
        let set = SafetensorsSet::open_file(dir.join("dtypes.safetensors")).unwrap();
        let reference: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        assert_eq!(reference.len(), 3);
        for (name, want) in &reference {
            let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
            let values: Vec<f64> = serde_json::from_value(want["values"].clone()).unwrap();
            let t = set.load_f32(name).unwrap();
            assert_eq!(t.shape, shape, "{name}");
            assert_eq!(t.data.len(), values.len());
            for (got, want) in t.data.iter().zip(&values) {
                // The reference is numpy's f32 view of the stored value; JSON text → f64 → f32
                // recovers it exactly.
                assert_eq!(got.to_bits(), (*want as f32).to_bits(), "{name}");
            }
            assert_eq!(
                set.tensor_dtype(name).unwrap(),
                want["dtype"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn sharded_index_loads_all_tensors() {
        let set = SafetensorsSet::open_dir(fixtures().join("sharded")).unwrap();
        assert_eq!(set.files().count(), 2);
        let names = set.tensor_names();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(set.load_f32("c").unwrap().data, vec![5.0, 6.0, 7.0]);
        assert_eq!(set.tensor_shape("a"), Some(vec![2, 2]));
        let e = err_string(set.load_f32("nope"));
        assert!(
            e.contains("model.safetensors.index.json") && e.contains("nope"),
            "{e}"
        );
    }

    #[test]
    fn shard_missing_or_lacking_tensor() {
        let dir = temp_dir("shards");
        write_safetensors(
            &dir.join("s1.safetensors"),
            &[("a", "F32", vec![1], f32_bytes(&[1.0]))],
        );
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            r#"{"metadata":{},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}"#,
        )
        .unwrap();
        let e = err_string(SafetensorsSet::open_dir(&dir));
        assert!(
            e.contains("s2.safetensors") && e.contains("missing") && e.contains("index.json"),
            "{e}"
        );

        std::fs::write(
            dir.join("model.safetensors.index.json"),
            r#"{"weight_map":{"a":"s1.safetensors","zz":"s1.safetensors"}}"#,
        )
        .unwrap();
        let e = err_string(SafetensorsSet::open_dir(&dir));
        assert!(e.contains("s1.safetensors") && e.contains("zz"), "{e}");

        std::fs::write(
            dir.join("model.safetensors.index.json"),
            r#"{"weight_map":{"a":"../x.safetensors"}}"#,
        )
        .unwrap();
        let e = err_string(SafetensorsSet::open_dir(&dir));
        assert!(e.contains("plain relative path"), "{e}");

        std::fs::write(dir.join("model.safetensors.index.json"), "{not json").unwrap();
        let e = err_string(SafetensorsSet::open_dir(&dir));
        assert!(e.contains("index.json"), "{e}");
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = temp_dir("badst");
        let good = dir.join("good.safetensors");
        write_safetensors(
            &good,
            &[("w", "F32", vec![2, 3], f32_bytes(&[1., 2., 3., 4., 5., 6.]))],
        );
        let bytes = std::fs::read(&good).unwrap();
        let case = |name: &str, content: &[u8], needle: &str| {
            let p = dir.join(name);
            std::fs::write(&p, content).unwrap();
            let e = err_string(SafetensorsSet::open_file(&p));
            assert!(e.contains(name), "{name}: {e}");
            assert!(e.contains(needle), "{name}: expected `{needle}` in {e}");
        };
        // Data section cut short.
        case(
            "truncated.safetensors",
            &bytes[..bytes.len() - 5],
            "outside the data section",
        );
        case("tiny.safetensors", &bytes[..5], "truncated");
        case("empty.safetensors", b"", "truncated");
        // Header length pointing past the end.
        let mut past = bytes.clone();
        past[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        case("past_eof.safetensors", &past, "past the end");
        // Absurd header length.
        let mut absurd = bytes.clone();
        absurd[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        case("absurd.safetensors", &absurd, "header claims");
        // Non-JSON header.
        let mut out = 4u64.to_le_bytes().to_vec();
        out.extend_from_slice(b"nope");
        case("notjson.safetensors", &out, "not a JSON object");
        // Wrong dtype string, shape/offset inconsistency, offsets reversed.
        let header_with = |entry: &str| {
            let h = format!("{{\"w\":{entry}}}");
            let mut out = (h.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(&[0u8; 24]);
            out
        };
        case(
            "dtype.safetensors",
            &header_with(r#"{"dtype":"F33","shape":[2,3],"data_offsets":[0,24]}"#),
            "unknown dtype `F33`",
        );
        case(
            "shape.safetensors",
            &header_with(r#"{"dtype":"F32","shape":[2,4],"data_offsets":[0,24]}"#),
            "needs 32 bytes",
        );
        case(
            "overflow.safetensors",
            &header_with(
                r#"{"dtype":"F32","shape":[18446744073709551615,4],"data_offsets":[0,24]}"#,
            ),
            "too many",
        );
        case(
            "reversed.safetensors",
            &header_with(r#"{"dtype":"F32","shape":[2,3],"data_offsets":[24,0]}"#),
            "outside the data section",
        );
        case(
            "entry.safetensors",
            &header_with(r#"{"dtype":"F32","shape":"x","data_offsets":[0,24]}"#),
            "bad header entry",
        );
        // Good one still loads.
        let set = SafetensorsSet::open_file(&good).unwrap();
        assert_eq!(
            set.load_f32("w").unwrap().data,
            vec![1., 2., 3., 4., 5., 6.]
        );
        let e = err_string(set.load_f32("missing"));
        assert!(
            e.contains("good.safetensors") && e.contains("missing tensor `missing`"),
            "{e}"
        );
    }

    /// The header is read straight into typed entries: a tensor with millions of listed
    /// dimensions is refused at the 65th, a repeated name is refused, metadata is kept.
    #[test]
    fn headers_are_parsed_into_typed_entries_with_bounds() {
        let dir = temp_dir("header-bounds");
        let write = |name: &str, header: &str| {
            let p = dir.join(name);
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&[0u8; 8]);
            std::fs::write(&p, out).unwrap();
            p
        };
        // A 12 MB shape: two million dimensions.
        let huge = format!(
            r#"{{"w":{{"dtype":"F32","shape":[{}1],"data_offsets":[0,8]}}}}"#,
            "1,".repeat(2_000_000)
        );
        let e = SafetensorsSet::open_file(write("huge.safetensors", &huge))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tensor `w`") && e.contains("more than 64 dimensions"),
            "{e}"
        );
        let twice = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let e = SafetensorsSet::open_file(write("twice.safetensors", twice))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`w` appears twice"), "{e}");
        let ok = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let set = SafetensorsSet::open_file(write("ok.safetensors", ok)).unwrap();
        assert_eq!(set.load_f32("w").unwrap().data, vec![0.0, 0.0]);
        let bad_meta =
            r#"{"__metadata__":{"format":1},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let e = SafetensorsSet::open_file(write("meta.safetensors", bad_meta))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`__metadata__` is not a string map"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn set_is_a_shareable_tensor_source() {
        fn assert_source<T: TensorSource + Send + Sync + 'static>() {}
        assert_source::<SafetensorsSet>();
    }

    #[test]
    fn unsupported_dtype_names_tensor_and_dtype() {
        let dir = temp_dir("i8");
        let p = dir.join("i8.safetensors");
        write_safetensors(
            &p,
            &[
                ("q", "I8", vec![4], vec![1, 2, 3, 4]),
                ("d", "F64", vec![1], vec![0; 8]),
            ],
        );
        let set = SafetensorsSet::open_file(&p).unwrap();
        let e = set.load_f32("q").unwrap_err();
        assert!(matches!(e, CheckpointError::Unsupported { .. }));
        let e = e.to_string();
        assert!(
            e.contains("i8.safetensors") && e.contains("`q`") && e.contains("I8"),
            "{e}"
        );
        let e = err_string(set.load_f32("d"));
        assert!(e.contains("F64"), "{e}");
        assert!(SafetensorsSet::open_dir(&dir).is_err());
    }
}
