//! Fingerprints of input files for `run.json`: a result folder refuses to resume when an input
//! changed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::sweep_store::StoreError;

/// Files at most this large are hashed on every start; larger weight files are fingerprinted by
/// size and modification time.
const HASH_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

fn fingerprint(path: &Path) -> Result<String, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > HASH_LIMIT_BYTES {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        return Ok(format!("size:{},mtime:{mtime}", meta.len()));
    }
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// Fingerprints of a file, or of the files directly inside a folder.
pub fn fingerprints(path: &Path, out: &mut BTreeMap<String, String>) -> Result<(), StoreError> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        for p in entries {
            out.insert(p.display().to_string(), fingerprint(&p)?);
        }
    } else {
        out.insert(path.display().to_string(), fingerprint(path)?);
    }
    Ok(())
}
