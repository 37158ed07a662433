//! Writing output files deterministically (structs with fixed field order, '\n' line ends)
//! and recording their size and SHA-256 for the manifest.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::DataError;

/// One written file, as listed in a manifest or report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the output directory, '/'-separated.
    pub path: String,
    pub lines: usize,
    pub bytes: usize,
    pub sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Writes `contents` to `out_dir/rel`, creating parent folders.
pub fn write_text(out_dir: &Path, rel: &str, contents: &str) -> Result<FileRecord, DataError> {
    let path = out_dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    std::fs::write(&path, contents).map_err(|e| DataError::io(&path, e))?;
    Ok(FileRecord {
        path: rel.to_string(),
        lines: contents.lines().count(),
        bytes: contents.len(),
        sha256: sha256_hex(contents.as_bytes()),
    })
}

/// One JSON object per line.
pub fn write_jsonl<T: Serialize>(
    out_dir: &Path,
    rel: &str,
    records: &[T],
) -> Result<FileRecord, DataError> {
    let mut s = String::new();
    for r in records {
        let line = serde_json::to_string(r).map_err(|source| DataError::Json {
            path: out_dir.join(rel),
            source,
        })?;
        s.push_str(&line);
        s.push('\n');
    }
    write_text(out_dir, rel, &s)
}

/// Escapes a string as a TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A metric entry of a `suite.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricEntry {
    pub name: String,
    /// `instruction`, `paired` or `choice`.
    pub kind: String,
    pub file: String,
    pub description: String,
    /// `generated` metrics: answers per item.
    pub samples: Option<usize>,
}

/// Renders a `suite.toml` in the format of the paths issue. Paired and choice metrics declare
/// their length-controlled scoring form (`per_token` for pairs, `per_byte` for choices).
pub fn suite_toml(name: &str, metrics: &[MetricEntry]) -> String {
    let mut s = format!("name = {}\nversion = 1\n", toml_string(name));
    for m in metrics {
        let _ = write!(
            s,
            "\n[[metric]]\nname = {}\nkind = {}\nfile = {}\n",
            toml_string(&m.name),
            toml_string(&m.kind),
            toml_string(&m.file),
        );
        match m.kind.as_str() {
            "paired" => s.push_str("score = \"per_token\"\n"),
            "choice" => s.push_str("score = \"per_byte\"\n"),
            "generated" => {
                let _ = writeln!(s, "samples = {}", m.samples.unwrap_or(4));
            }
            _ => {}
        }
        let _ = writeln!(s, "description = {}", toml_string(&m.description));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_and_toml_escape() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = suite_toml(
            "g\"x",
            &[MetricEntry {
                name: "a".into(),
                kind: "paired".into(),
                file: "a.jsonl".into(),
                description: "P(\"hack\")\n".into(),
                samples: None,
            }],
        );
        let v: toml::Value = toml::from_str(&t).unwrap();
        assert_eq!(v["name"].as_str(), Some("g\"x"));
        assert_eq!(
            v["metric"][0]["description"].as_str(),
            Some("P(\"hack\")\n")
        );
        assert_eq!(v["metric"][0]["score"].as_str(), Some("per_token"));
    }
}
