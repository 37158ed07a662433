//! Fingerprints of input files for `run.json`: a result folder refuses to resume when an input
//! changed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::sweep_store::StoreError;

/// Files at most this large are hashed on every start; a larger one (model weights) is hashed
/// once per machine and its hash kept in the fingerprint cache, keyed by where the file is and
/// its size, modification time and inode: a later start only reads the file's metadata, and a
/// copy or a moved folder is hashed again and gives the same fingerprint.
const HASH_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// The fingerprint cache: `$BASIN_CACHE/fingerprints` (`~/.cache/basin` when unset).
fn default_cache_dir() -> Option<PathBuf> {
    crate::cache_dir::basin_cache_dir().map(|root| root.join("fingerprints"))
}

fn fingerprint(path: &Path) -> Result<String, StoreError> {
    fingerprint_with(path, HASH_LIMIT_BYTES, default_cache_dir().as_deref())
}

fn sha256_of(path: &Path) -> Result<String, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
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

/// What identifies one state of a file on this machine: its canonical path, size, modification
/// time (ns) and, on unix, device and inode.
fn state_key(path: &Path, meta: &std::fs::Metadata) -> String {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let node = {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}", meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let node = String::new();
    let mut h = Sha256::new();
    h.update(canonical.to_string_lossy().as_bytes());
    h.update(format!("\0{}\0{mtime_ns}\0{node}", meta.len()).as_bytes());
    format!("{:x}", h.finalize())
}

/// [`fingerprint`] with its size limit and cache folder given (`None`: no cache).
fn fingerprint_with(path: &Path, limit: u64, cache: Option<&Path>) -> Result<String, StoreError> {
    let meta = std::fs::metadata(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() <= limit {
        return sha256_of(path);
    }
    let Some(cache) = cache else {
        return sha256_of(path);
    };
    let entry = cache.join(state_key(path, &meta));
    if let Ok(text) = crate::bounded::read_to_string(&entry, 256) {
        let text = text.trim();
        if text.starts_with("sha256:") && text.len() == 7 + 64 {
            return Ok(text.to_string());
        }
    }
    let fp = sha256_of(path)?;
    // A cache that cannot be written only costs the next start another hash.
    if std::fs::create_dir_all(cache).is_ok() {
        let key = entry
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let tmp = cache.join(format!(".{key}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, &fp).is_ok() && std::fs::rename(&tmp, &entry).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(fp)
}

/// The fingerprint older Basin versions recorded for a file over the size limit.
fn legacy_fingerprint(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Some(format!("size:{},mtime:{mtime}", meta.len()))
}

/// `new`'s inputs as a record of an older version would name them: where `stored` holds the
/// old size-and-time form for a file name and the file `new` names still has exactly that size
/// and time, `new` takes the old form, so a folder written before content fingerprints of
/// large files resumes while its inputs are unchanged.
pub fn with_legacy_fingerprints(
    stored: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let name = |p: &str| {
        Path::new(p)
            .file_name()
            .map_or_else(|| p.to_string(), |n| n.to_string_lossy().to_string())
    };
    let mut out = new.clone();
    for (path, fp) in out.iter_mut() {
        let legacy = stored
            .iter()
            .filter(|(p, f)| f.starts_with("size:") && name(p) == name(path))
            .map(|(_, f)| f);
        for old in legacy {
            if legacy_fingerprint(Path::new(path)).as_deref() == Some(old.as_str()) {
                *fp = old.clone();
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file over the limit gets its content's SHA-256 (not size and time), computed once and
    /// then read from the cache; a copy elsewhere gives the same fingerprint, a change another.
    #[test]
    fn large_files_are_hashed_once_and_identified_by_content() {
        let dir = std::env::temp_dir().join(format!("basin-fingerprint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cache = dir.join("cache");
        let big = dir.join("model.safetensors");
        std::fs::write(&big, vec![7u8; 5000]).unwrap();
        let direct = sha256_of(&big).unwrap();
        let fp = fingerprint_with(&big, 1000, Some(&cache)).unwrap();
        assert_eq!(fp, direct);
        // The second start reads the cache (a planted value proves it).
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let planted = format!("sha256:{}", "a".repeat(64));
        std::fs::write(&entry, &planted).unwrap();
        assert_eq!(fingerprint_with(&big, 1000, Some(&cache)).unwrap(), planted);
        // Moved elsewhere: hashed again, the same content fingerprint.
        let moved = dir.join("moved");
        std::fs::create_dir_all(&moved).unwrap();
        std::fs::copy(&big, moved.join("model.safetensors")).unwrap();
        assert_eq!(
            fingerprint_with(&moved.join("model.safetensors"), 1000, Some(&cache)).unwrap(),
            direct
        );
        // Changed (same size): another fingerprint.
        std::fs::write(moved.join("model.safetensors"), vec![8u8; 5000]).unwrap();
        assert_ne!(
            fingerprint_with(&moved.join("model.safetensors"), 1000, Some(&cache)).unwrap(),
            direct
        );
        // An older record's size-and-time form is accepted while the file is unchanged.
        let key = big.display().to_string();
        let stored = BTreeMap::from([(key.clone(), legacy_fingerprint(&big).unwrap())]);
        let new = BTreeMap::from([(key.clone(), direct.clone())]);
        assert_eq!(with_legacy_fingerprints(&stored, &new), stored);
        let stale = BTreeMap::from([(key.clone(), "size:5000,mtime:1".to_string())]);
        assert_eq!(with_legacy_fingerprints(&stale, &new), new);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
