//! A memory-mapped GGUF (v2/v3) file: header, metadata key/values, tensor infos, tensor bytes.
//!
//! Layout (little-endian): magic `GGUF`, version u32, tensor count u64, metadata count u64,
//! metadata (key string, value type u32, value), tensor infos (name string, n_dims u32,
//! n_dims × u64 dims with ne\[0\] the fastest axis, ggml type u32, offset u64 relative to the data
//! section), padding to `general.alignment`, then the data section. Strings are u64 length + UTF-8.
//! Every count, length and offset is checked against the file size before anything is allocated.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::{CheckpointError, Result};
use super::gguf_quant::{self, GgmlType};

const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of the data section when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays deeper than this are refused (guards the parser's recursion).
const MAX_ARRAY_DEPTH: u32 = 8;

/// A metadata value. Arrays keep their element type so that large arrays (token lists) stay compact.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous metadata array.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<GgufArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl GgufValue {
    /// The GGUF name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "uint8",
            GgufValue::I8(_) => "int8",
            GgufValue::U16(_) => "uint16",
            GgufValue::I16(_) => "int16",
            GgufValue::U32(_) => "uint32",
            GgufValue::I32(_) => "int32",
            GgufValue::F32(_) => "float32",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
            GgufValue::U64(_) => "uint64",
            GgufValue::I64(_) => "int64",
            GgufValue::F64(_) => "float64",
        }
    }

    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

impl GgufArray {
    pub fn len(&self) -> usize {
        match self {
            GgufArray::U8(v) => v.len(),
            GgufArray::I8(v) => v.len(),
            GgufArray::U16(v) => v.len(),
            GgufArray::I16(v) => v.len(),
            GgufArray::U32(v) => v.len(),
            GgufArray::I32(v) => v.len(),
            GgufArray::F32(v) => v.len(),
            GgufArray::Bool(v) => v.len(),
            GgufArray::String(v) => v.len(),
            GgufArray::Array(v) => v.len(),
            GgufArray::U64(v) => v.len(),
            GgufArray::I64(v) => v.len(),
            GgufArray::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF name of the element type, for error messages.
    pub fn element_type_name(&self) -> &'static str {
        match self {
            GgufArray::U8(_) => "uint8",
            GgufArray::I8(_) => "int8",
            GgufArray::U16(_) => "uint16",
            GgufArray::I16(_) => "int16",
            GgufArray::U32(_) => "uint32",
            GgufArray::I32(_) => "int32",
            GgufArray::F32(_) => "float32",
            GgufArray::Bool(_) => "bool",
            GgufArray::String(_) => "string",
            GgufArray::Array(_) => "array",
            GgufArray::U64(_) => "uint64",
            GgufArray::I64(_) => "int64",
            GgufArray::F64(_) => "float64",
        }
    }
}

/// Where one tensor lives and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// GGUF dims: `dims[0]` is the fastest-varying axis (the reverse of a PyTorch shape).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the tensor's bytes from the start of the data section.
    pub offset_bytes: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

impl GgufTensorInfo {
    /// The PyTorch (row-major) shape: the GGUF dims reversed.
    pub fn torch_shape(&self) -> Vec<usize> {
        // Element counts were checked against the file size at open, so every dim fits a usize.
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// An open GGUF file. Tensor bytes are read straight from the memory map.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file; tensor data stay on disk until asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| CheckpointError::io(&path, e))?;
        let len = file
            .metadata()
            .map_err(|e| CheckpointError::io(&path, e))?
            .len();
        if len < 24 {
            return Err(CheckpointError::format(
                &path,
                format!("truncated GGUF header: the file has {len} bytes, a GGUF header needs 24"),
            ));
        }
        // SAFETY: the map is read-only; Basin does not modify checkpoint files while they are
        // open, and a file changed underneath by another process is outside what we can guard.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(&path, e))?;
        Self::parse(path, mmap)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<Self> {
        let mut r = Reader {
            bytes: &mmap,
            pos: 0,
            path: &path,
        };
        let magic = r.take(4, "magic")?;
        if magic != MAGIC {
            return Err(r.err(format!(
                "not a GGUF file: magic bytes are {magic:02x?}, expected \"GGUF\""
            )));
        }
        let version = r.u32("version")?;
        match version {
            2 | 3 => {}
            1 => return Err(r.unsupported("GGUF version 1 (32-bit counts) is not supported; re-convert with a current llama.cpp")),
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err(r.unsupported("big-endian GGUF files are not supported"));
            }
            v => return Err(r.unsupported(format!("unknown GGUF version {v} (supported: 2, 3)"))),
        }
        let tensor_count = r.u64("tensor count")?;
        let kv_count = r.u64("metadata count")?;
        // Smallest possible entries: a metadata entry is an empty key (8) + type (4) + 1 byte;
        // a tensor info is an empty name (8) + n_dims (4) + type (4) + offset (8).
        r.check_count(kv_count, 13, "metadata entries")?;
        r.check_count(tensor_count, 24, "tensor infos")?;

        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = r.string("metadata key")?;
            let ty = r.u32(&format!("type of metadata `{key}`"))?;
            let value = r.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(r.err(format!("duplicate metadata key `{key}`")));
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(r.err(format!(
                        "general.alignment must be a power of two, got {v:?}"
                    )));
                }
            },
        };

        let mut tensors = Vec::with_capacity(tensor_count as usize);
        let mut tensor_index = HashMap::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let info = r.tensor_info()?;
            if !info.offset_bytes.is_multiple_of(alignment) {
                return Err(r.err(format!(
                    "tensor `{}` offset {} is not a multiple of the alignment {alignment}",
                    info.name, info.offset_bytes
                )));
            }
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(r.err(format!("duplicate tensor `{}`", info.name)));
            }
            tensors.push(info);
        }

        let data_offset = (r.pos as u64).div_ceil(alignment) * alignment;
        let file_len = mmap.len() as u64;
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset_bytes)
                .and_then(|start| start.checked_add(t.n_bytes));
            if end.is_none_or(|end| end > file_len) {
                return Err(r.err(format!(
                    "tensor `{}` data ({} bytes at offset {} of the data section starting at {data_offset}) runs past the end of the file ({file_len} bytes): truncated file?",
                    t.name, t.n_bytes, t.offset_bytes
                )));
            }
        }

        Ok(Self {
            path,
            mmap,
            version,
            metadata,
            tensors,
            tensor_index,
            alignment,
            data_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Drops the tokenizer's array metadata (`tokenizer.ggml.tokens`, `merges`, `scores`,
    /// `token_type`: ~10 MiB parsed for a 49k vocabulary) once the tokenizer is built from it,
    /// so an open checkpoint holds only what loading its weights needs.
    pub fn drop_tokenizer_arrays(&mut self) {
        self.metadata
            .retain(|k, v| !(k.starts_with("tokenizer.ggml.") && matches!(v, GgufValue::Array(_))));
    }

    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&GgufValue> {
        self.metadata.get(key).ok_or_else(|| {
            CheckpointError::format(&self.path, format!("missing metadata key `{key}`"))
        })
    }

    fn type_error(&self, key: &str, value: &GgufValue, expected: &str) -> CheckpointError {
        CheckpointError::format(
            &self.path,
            format!(
                "metadata key `{key}` is a {}, expected {expected}",
                value.type_name()
            ),
        )
    }

    /// A required unsigned integer (any integer width, as long as the value fits a u32).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| self.type_error(key, v, "an unsigned integer that fits 32 bits"))
    }

    /// A required unsigned integer of any width.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| self.type_error(key, v, "an unsigned integer"))
    }

    /// A required float (float32 or float64, returned as f32).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        Ok(self.get_f64(key)? as f32)
    }

    /// A required float (float32 or float64).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        match self.require(key)? {
            GgufValue::F32(x) => Ok(f64::from(*x)),
            GgufValue::F64(x) => Ok(*x),
            v => Err(self.type_error(key, v, "a float")),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            GgufValue::Bool(b) => Ok(*b),
            v => Err(self.type_error(key, v, "a bool")),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            GgufValue::String(s) => Ok(s),
            v => Err(self.type_error(key, v, "a string")),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<&GgufArray> {
        match self.require(key)? {
            GgufValue::Array(a) => Ok(a),
            v => Err(self.type_error(key, v, "an array")),
        }
    }

    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        match self.get_array(key)? {
            GgufArray::String(v) => Ok(v),
            a => Err(CheckpointError::format(
                &self.path,
                format!(
                    "metadata key `{key}` is an array of {}, expected strings",
                    a.element_type_name()
                ),
            )),
        }
    }

    pub fn get_i32_array(&self, key: &str) -> Result<&[i32]> {
        match self.get_array(key)? {
            GgufArray::I32(v) => Ok(v),
            a => Err(CheckpointError::format(
                &self.path,
                format!(
                    "metadata key `{key}` is an array of {}, expected int32",
                    a.element_type_name()
                ),
            )),
        }
    }

    /// Like [`Self::get_u32`] but `Ok(None)` when the key is absent (a wrong type still errors).
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.optional(key, Self::get_u32)
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.optional(key, Self::get_f64)
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.optional(key, Self::get_bool)
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.optional(key, Self::get_str)
    }

    fn optional<'a, T>(
        &'a self,
        key: &str,
        get: impl Fn(&'a Self, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.metadata.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// All tensor infos, in file order.
    pub fn tensor_infos(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    fn require_tensor(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// The raw (possibly quantised) bytes of a tensor.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.require_tensor(name)?;
        // The range was checked against the file length at open.
        let start = (self.data_offset + info.offset_bytes) as usize;
        let end = start + info.n_bytes as usize;
        self.mmap.get(start..end).ok_or_else(|| {
            CheckpointError::format(
                &self.path,
                format!("tensor `{name}` data lies outside the file"),
            )
        })
    }

    /// A tensor dequantised to f32, in GGUF element order (row-major over the reversed dims).
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.require_tensor(name)?;
        if !info.ggml_type.can_dequantize() {
            return Err(CheckpointError::unsupported(
                &self.path,
                format!(
                    "tensor `{name}` has ggml type {}, which Basin cannot dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K)",
                    info.ggml_type
                ),
            ));
        }
        let bytes = self.tensor_bytes(name)?;
        let mut out = vec![0.0f32; info.n_elements as usize];
        gguf_quant::dequantize(info.ggml_type, bytes, &mut out)
            .map_err(|e| CheckpointError::format(&self.path, format!("tensor `{name}`: {e}")))?;
        super::tensors::release_pages(&self.mmap, bytes);
        Ok(out)
    }
}

/// A bounds-checked little-endian cursor over the file bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, msg: impl Into<String>) -> CheckpointError {
        CheckpointError::format(self.path, msg)
    }

    fn unsupported(&self, msg: impl Into<String>) -> CheckpointError {
        CheckpointError::unsupported(self.path, msg)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        match end.and_then(|end| self.bytes.get(self.pos..end).map(|s| (s, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(self.err(format!(
                "truncated: {what} needs {n} bytes at offset {}, but the file has {} bytes",
                self.pos,
                self.bytes.len()
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Refuses a count of items that could not fit in the rest of the file.
    fn check_count(&self, count: u64, min_item_bytes: u64, what: &str) -> Result<usize> {
        let fits = count
            .checked_mul(min_item_bytes)
            .is_some_and(|need| need <= self.remaining() as u64);
        if !fits {
            return Err(self.err(format!(
                "{count} {what} cannot fit in the {} bytes left after offset {}",
                self.remaining(),
                self.pos
            )));
        }
        Ok(count as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(&format!("length of {what}"))?;
        if len > self.remaining() as u64 {
            return Err(self.err(format!(
                "{what}: string length {len} at offset {} runs past the end of the file ({} bytes)",
                self.pos,
                self.bytes.len()
            )));
        }
        let at = self.pos;
        let raw = self.take(len as usize, what)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| self.err(format!("{what} at offset {at} is not valid UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<GgufValue> {
        let what = || format!("value of metadata `{key}`");
        Ok(match ty {
            0 => GgufValue::U8(u8::from_le_bytes(self.array(&what())?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(&what())?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(&what())?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(&what())?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(&what())?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(&what())?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(&what())?)),
            7 => GgufValue::Bool(self.bool(key)?),
            8 => GgufValue::String(self.string(&what())?),
            9 => GgufValue::Array(self.array_value(key, depth)?),
            10 => GgufValue::U64(u64::from_le_bytes(self.array(&what())?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(&what())?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(&what())?)),
            t => return Err(self.err(format!("metadata `{key}` has unknown value type {t}"))),
        })
    }

    fn bool(&mut self, key: &str) -> Result<bool> {
        match self.array::<1>(&format!("bool of metadata `{key}`"))?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.err(format!(
                "metadata `{key}`: bool byte {b} is neither 0 nor 1"
            ))),
        }
    }

    /// Reads `n` fixed-size elements after checking they fit in the file.
    fn fixed<const N: usize, T>(
        &mut self,
        n: u64,
        key: &str,
        conv: fn([u8; N]) -> T,
    ) -> Result<Vec<T>> {
        let n = self.check_count(n, N as u64, &format!("elements of array `{key}`"))?;
        let raw = self.take(n * N, &format!("array `{key}`"))?;
        Ok(raw
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                conv(a)
            })
            .collect())
    }

    fn array_value(&mut self, key: &str, depth: u32) -> Result<GgufArray> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.err(format!(
                "metadata `{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH}"
            )));
        }
        let ty = self.u32(&format!("element type of array `{key}`"))?;
        let n = self.u64(&format!("length of array `{key}`"))?;
        Ok(match ty {
            0 => GgufArray::U8(self.fixed(n, key, u8::from_le_bytes)?),
            1 => GgufArray::I8(self.fixed(n, key, i8::from_le_bytes)?),
            2 => GgufArray::U16(self.fixed(n, key, u16::from_le_bytes)?),
            3 => GgufArray::I16(self.fixed(n, key, i16::from_le_bytes)?),
            4 => GgufArray::U32(self.fixed(n, key, u32::from_le_bytes)?),
            5 => GgufArray::I32(self.fixed(n, key, i32::from_le_bytes)?),
            6 => GgufArray::F32(self.fixed(n, key, f32::from_le_bytes)?),
            7 => {
                let n = self.check_count(n, 1, &format!("elements of array `{key}`"))?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool(key)?);
                }
                GgufArray::Bool(v)
            }
            8 => {
                let n = self.check_count(n, 8, &format!("strings of array `{key}`"))?;
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.string(&format!("element {i} of array `{key}`"))?);
                }
                GgufArray::String(v)
            }
            9 => {
                let n = self.check_count(n, 12, &format!("arrays of array `{key}`"))?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array_value(key, depth + 1)?);
                }
                GgufArray::Array(v)
            }
            10 => GgufArray::U64(self.fixed(n, key, u64::from_le_bytes)?),
            11 => GgufArray::I64(self.fixed(n, key, i64::from_le_bytes)?),
            12 => GgufArray::F64(self.fixed(n, key, f64::from_le_bytes)?),
            t => return Err(self.err(format!("array `{key}` has unknown element type {t}"))),
        })
    }

    fn tensor_info(&mut self) -> Result<GgufTensorInfo> {
        let name = self.string("tensor name")?;
        let n_dims = self.u32(&format!("n_dims of tensor `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(self.err(format!(
                "tensor `{name}` has {n_dims} dimensions (GGUF allows 1 to {MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(&format!("dims of tensor `{name}`"))?);
        }
        let type_id = self.u32(&format!("type of tensor `{name}`"))?;
        let offset_bytes = self.u64(&format!("offset of tensor `{name}`"))?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            self.err(format!(
                "tensor `{name}` has unknown ggml type id {type_id}"
            ))
        })?;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                self.err(format!(
                    "tensor `{name}` dims {dims:?}: element count overflows"
                ))
            })?;
        let block = ggml_type.block_size();
        if let Some(&row) = dims.first()
            && row % block != 0
        {
            return Err(self.err(format!(
                "tensor `{name}` ({ggml_type}) has a row of {row} elements, not a multiple of the block size {block}"
            )));
        }
        // A tensor can hold more elements than bytes only through block packing, so this bounds
        // the element count (and the f32 buffer allocated later) by a small multiple of the file size.
        let n_bytes = (n_elements / block)
            .checked_mul(ggml_type.type_size())
            .filter(|&b| b <= self.bytes.len() as u64)
            .ok_or_else(|| {
                self.err(format!(
                    "tensor `{name}` dims {dims:?} ({ggml_type}) is larger than the whole file"
                ))
            })?;
        Ok(GgufTensorInfo {
            name,
            dims,
            ggml_type,
            offset_bytes,
            n_elements,
            n_bytes,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Builds GGUF bytes for tests (also used by the other GGUF modules' tests).
    #[derive(Default)]
    pub(crate) struct GgufBuilder {
        pub version: u32,
        pub kvs: Vec<(String, u32, Vec<u8>)>,
        /// (name, dims, type id, data)
        pub tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    }

    pub(crate) fn gguf_string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    impl GgufBuilder {
        pub fn new() -> Self {
            Self {
                version: 3,
                ..Default::default()
            }
        }
        pub fn kv_raw(mut self, key: &str, ty: u32, value: Vec<u8>) -> Self {
            self.kvs.push((key.to_string(), ty, value));
            self
        }
        pub fn kv_str(self, key: &str, s: &str) -> Self {
            self.kv_raw(key, 8, gguf_string(s))
        }
        pub fn kv_u32(self, key: &str, x: u32) -> Self {
            self.kv_raw(key, 4, x.to_le_bytes().to_vec())
        }
        pub fn kv_f32(self, key: &str, x: f32) -> Self {
            self.kv_raw(key, 6, x.to_le_bytes().to_vec())
        }
        pub fn kv_bool(self, key: &str, b: bool) -> Self {
            self.kv_raw(key, 7, vec![b as u8])
        }
        pub fn kv_str_array(self, key: &str, items: &[&str]) -> Self {
            let mut v = 8u32.to_le_bytes().to_vec();
            v.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for s in items {
                v.extend(gguf_string(s));
            }
            self.kv_raw(key, 9, v)
        }
        pub fn kv_i32_array(self, key: &str, items: &[i32]) -> Self {
            let mut v = 5u32.to_le_bytes().to_vec();
            v.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for x in items {
                v.extend_from_slice(&x.to_le_bytes());
            }
            self.kv_raw(key, 9, v)
        }
        pub fn tensor_f32(mut self, name: &str, dims: &[u64], data: &[f32]) -> Self {
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.tensors
                .push((name.to_string(), dims.to_vec(), 0, bytes));
            self
        }
        pub fn tensor_raw(mut self, name: &str, dims: &[u64], ty: u32, data: Vec<u8>) -> Self {
            self.tensors
                .push((name.to_string(), dims.to_vec(), ty, data));
            self
        }
        pub fn build(&self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend_from_slice(&self.version.to_le_bytes());
            out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
            out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
            for (k, ty, v) in &self.kvs {
                out.extend(gguf_string(k));
                out.extend_from_slice(&ty.to_le_bytes());
                out.extend_from_slice(v);
            }
            let mut offset = 0u64;
            let mut offsets = Vec::new();
            for (_, _, _, data) in &self.tensors {
                offsets.push(offset);
                offset += (data.len() as u64).div_ceil(32) * 32;
            }
            for ((name, dims, ty, _), off) in self.tensors.iter().zip(&offsets) {
                out.extend(gguf_string(name));
                out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
                for d in dims {
                    out.extend_from_slice(&d.to_le_bytes());
                }
                out.extend_from_slice(&ty.to_le_bytes());
                out.extend_from_slice(&off.to_le_bytes());
            }
            while !out.len().is_multiple_of(32) {
                out.push(0);
            }
            for (_, _, _, data) in &self.tensors {
                out.extend_from_slice(data);
                while !out.len().is_multiple_of(32) {
                    out.push(0);
                }
            }
            out
        }
    }

    /// Writes bytes to a unique file in the temp dir and returns its path.
    pub(crate) fn write_temp(tag: &str, bytes: &[u8]) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("basin-test-{}-{n}-{tag}.gguf", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn open_err(tag: &str, bytes: &[u8]) -> String {
        let path = write_temp(tag, bytes);
        let err = GgufFile::open(&path).unwrap_err().to_string();
        let file_name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            err.contains(&file_name),
            "error does not name the file: {err}"
        );
        std::fs::remove_file(&path).ok();
        err
    }

    fn small() -> GgufBuilder {
        GgufBuilder::new()
            .kv_str("general.architecture", "llama")
            .kv_u32("llama.block_count", 2)
            .kv_f32("llama.rope.freq_base", 10000.0)
            .kv_bool("flag", true)
            .kv_str_array("names", &["a", "bc", ""])
            .kv_i32_array("ints", &[1, -2, 3])
            .tensor_f32("a", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .tensor_f32("b", &[4], &[7.0, 8.0, 9.0, 10.0])
    }

    #[test]
    fn parses_metadata_and_tensors() {
        let path = write_temp("ok", &small().build());
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
        assert_eq!(f.get_u32("llama.block_count").unwrap(), 2);
        assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
        assert!(f.get_bool("flag").unwrap());
        assert_eq!(f.get_str_array("names").unwrap(), ["a", "bc", ""]);
        assert_eq!(f.get_i32_array("ints").unwrap(), [1, -2, 3]);
        assert_eq!(f.opt_u32("absent").unwrap(), None);
        let a = f.tensor_info("a").unwrap();
        assert_eq!(a.torch_shape(), vec![2, 3]);
        assert_eq!(a.n_bytes, 24);
        assert_eq!(
            f.tensor_f32("a").unwrap(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(f.tensor_f32("b").unwrap(), vec![7.0, 8.0, 9.0, 10.0]);
        assert_eq!(f.tensor_bytes("b").unwrap().len(), 16);
        assert!(matches!(
            f.tensor_bytes("zzz"),
            Err(CheckpointError::MissingTensor { .. })
        ));
        // Typed errors name the key and the file.
        let file_name = path.file_name().unwrap().to_str().unwrap();
        let e = f.get_str("llama.block_count").unwrap_err().to_string();
        assert!(
            e.contains("llama.block_count") && e.contains("uint32") && e.contains(file_name),
            "{e}"
        );
        let e = f.get_u32("llama.missing").unwrap_err().to_string();
        assert!(
            e.contains("missing metadata key `llama.missing`") && e.contains(file_name),
            "{e}"
        );
        std::fs::remove_file(&path).ok();
        // Version 2 has the same layout.
        let mut v2 = small();
        v2.version = 2;
        let path = write_temp("v2", &v2.build());
        assert_eq!(GgufFile::open(&path).unwrap().version(), 2);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn nested_arrays_parse() {
        // array of 2 arrays of uint8
        let mut v = 9u32.to_le_bytes().to_vec();
        v.extend_from_slice(&2u64.to_le_bytes());
        for items in [&[1u8, 2][..], &[3u8][..]] {
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&(items.len() as u64).to_le_bytes());
            v.extend_from_slice(items);
        }
        let path = write_temp("nested", &GgufBuilder::new().kv_raw("nested", 9, v).build());
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(
            f.get_array("nested").unwrap(),
            &GgufArray::Array(vec![GgufArray::U8(vec![1, 2]), GgufArray::U8(vec![3])])
        );
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn bad_magic() {
        let mut b = small().build();
        b[0] = b'X';
        assert!(open_err("magic", &b).contains("not a GGUF file"));
    }

    #[test]
    fn version_1_and_unknown_versions_refused() {
        let mut b = small();
        b.version = 1;
        let e = open_err("v1", &b.build());
        assert!(e.contains("version 1"), "{e}");
        b.version = 7;
        let e = open_err("v7", &b.build());
        assert!(e.contains("unknown GGUF version 7"), "{e}");
        b.version = 3u32.swap_bytes();
        assert!(open_err("be", &b.build()).contains("big-endian"));
    }

    #[test]
    fn truncated_header() {
        let b = small().build();
        assert!(open_err("hdr", &b[..10]).contains("truncated"));
        // Too many metadata entries for what is left, and a cut in the middle of a value.
        let e = open_err("meta", &b[..60]);
        assert!(e.contains("6 metadata entries cannot fit"), "{e}");
        let one = GgufBuilder::new().kv_u32("general.alignment", 32).build();
        let e = open_err("value", &one[..24 + 8 + 17 + 4 + 2]);
        assert!(
            e.contains("truncated: value of metadata `general.alignment` needs 4 bytes"),
            "{e}"
        );
    }

    #[test]
    fn absurd_counts_refused_without_allocating() {
        let mut b = small().build();
        b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes()); // tensor count
        assert!(open_err("tcount", &b).contains("tensor infos cannot fit"));
        let mut b = small().build();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes()); // metadata count
        assert!(open_err("kvcount", &b).contains("metadata entries cannot fit"));
        // An array claiming 2^60 strings.
        let mut v = 8u32.to_le_bytes().to_vec();
        v.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let e = open_err("arr", &GgufBuilder::new().kv_raw("big", 9, v).build());
        assert!(e.contains("cannot fit"), "{e}");
    }

    #[test]
    fn string_length_past_eof() {
        let mut v = (1u64 << 40).to_le_bytes().to_vec();
        v.extend_from_slice(b"abc");
        let e = open_err("str", &GgufBuilder::new().kv_raw("s", 8, v).build());
        assert!(e.contains("runs past the end of the file"), "{e}");
    }

    #[test]
    fn tensor_data_past_eof() {
        let b = small().build();
        let e = open_err("data", &b[..b.len() - 40]);
        assert!(e.contains("runs past the end of the file"), "{e}");
    }

    #[test]
    fn unknown_tensor_type_and_bad_dims() {
        let b = GgufBuilder::new()
            .tensor_raw("w", &[4], 99, vec![0; 16])
            .build();
        let e = open_err("type", &b);
        assert!(
            e.contains("unknown ggml type id 99") && e.contains("`w`"),
            "{e}"
        );
        let b = GgufBuilder::new()
            .tensor_raw("w", &[1, 1, 1, 1, 1], 0, vec![0; 4])
            .build();
        assert!(open_err("dims", &b).contains("5 dimensions"));
        let b = GgufBuilder::new()
            .tensor_raw("w", &[1 << 40, 1 << 40], 0, vec![0; 4])
            .build();
        assert!(open_err("overflow", &b).contains("overflows"));
        let b = GgufBuilder::new()
            .tensor_raw("w", &[1 << 30, 1 << 20], 0, vec![0; 4])
            .build();
        assert!(open_err("huge", &b).contains("larger than the whole file"));
        let b = GgufBuilder::new()
            .tensor_raw("w", &[33], 2, vec![0; 18])
            .build();
        assert!(open_err("block", &b).contains("not a multiple of the block size"));
    }

    #[test]
    fn unsupported_tensor_type_names_tensor_and_type() {
        let b = GgufBuilder::new()
            .tensor_raw("blk.0.w", &[256], 16, vec![0; 66])
            .build();
        let path = write_temp("iq", &b);
        let f = GgufFile::open(&path).unwrap();
        let e = f.tensor_f32("blk.0.w").unwrap_err();
        assert!(matches!(e, CheckpointError::Unsupported { .. }));
        let e = e.to_string();
        assert!(e.contains("blk.0.w") && e.contains("IQ2_XXS"), "{e}");
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn deep_nesting_refused() {
        let mut v = Vec::new();
        for _ in 0..20 {
            v.extend_from_slice(&9u32.to_le_bytes());
            v.extend_from_slice(&1u64.to_le_bytes());
        }
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        let e = open_err("deep", &GgufBuilder::new().kv_raw("deep", 9, v).build());
        assert!(e.contains("nested deeper"), "{e}");
    }
}
