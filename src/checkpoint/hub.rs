//! Hugging Face repo ids (`org/name` or `org/name@revision`) in place of a folder: resolved from
//! the local Hugging Face cache as transformers lays it out (`$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`; in it `models--org--name/refs/<branch>`
//! holds a commit hash and `models--org--name/snapshots/<commit>/` the files). The CLI downloads
//! a repo that is not cached into that cache (`hub_download`; `HF_HUB_OFFLINE=1` forbids it);
//! the app only reads the cache. Either way a repo that cannot be had is an error naming the
//! cache folder and how to fill it. An argument that exists as a path is always that path.

use std::path::{Path, PathBuf};

/// The hub cache folder transformers would use.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("huggingface").join("hub")
}

/// A repo id and its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    pub org: String,
    pub name: String,
    /// A branch, tag or commit (`main` when not given).
    pub revision: String,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.len() <= 96
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `org/name[@revision]`, or `None` when `s` does not have that shape.
pub fn parse_repo_id(s: &str) -> Option<RepoId> {
    let (repo, revision) = match s.split_once('@') {
        Some((r, rev)) => (r, rev),
        None => (s, "main"),
    };
    let (org, name) = repo.split_once('/')?;
    let revision_ok = !revision.is_empty()
        && revision
            .split('/')
            .all(|part| is_name(part) || part.chars().all(|c| c.is_ascii_alphanumeric()));
    (is_name(org) && is_name(name) && revision_ok).then(|| RepoId {
        org: org.to_string(),
        name: name.to_string(),
        revision: revision.to_string(),
    })
}

/// The snapshot folder of `repo` in the cache at `cache`.
pub fn snapshot_in(cache: &Path, repo: &RepoId) -> Result<PathBuf, String> {
    let id = format!("{}/{}", repo.org, repo.name);
    let dir = cache.join(format!("models--{}--{}", repo.org, repo.name));
    if !dir.is_dir() {
        return Err(format!(
            "`{id}` is not a path, and the Hugging Face cache ({}) has no models--{}--{} (fill it where a network is: `basin download {id}` or `huggingface-cli download {id}`; or point HF_HUB_CACHE / HF_HOME at a cache that has it)",
            cache.display(),
            repo.org,
            repo.name
        ));
    }
    let ref_file = dir.join("refs").join(&repo.revision);
    let commit = if ref_file.is_file() {
        let text = crate::bounded::read_to_string(&ref_file, 4096)
            .map_err(|e| format!("{}: {e}", ref_file.display()))?;
        let commit = text.trim().to_string();
        if !is_name(&commit) {
            return Err(format!(
                "{}: not a commit hash: `{commit}`",
                ref_file.display()
            ));
        }
        commit
    } else {
        repo.revision.clone()
    };
    let snapshot = dir.join("snapshots").join(&commit);
    if !snapshot.is_dir() {
        let mut known: Vec<String> = std::fs::read_dir(dir.join("refs"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        return Err(format!(
            "`{id}@{}`: no snapshot {} in the Hugging Face cache (branches there: {}); download that revision first",
            repo.revision,
            snapshot.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    Ok(snapshot)
}

/// A model or adapter argument as a path: the path itself when it exists (or does not look like
/// a repo id), else the cached snapshot of the repo id it names, downloaded into the cache first
/// when it is not there (progress on stderr). The CLI parses `--model`, `--base`, `--adapter`,
/// `--target` through this.
pub fn resolve(arg: &str) -> Result<PathBuf, String> {
    resolve_with(arg, true)
}

/// As [`resolve`], from the cache only (the app: no download on its UI thread).
pub fn resolve_cached(arg: &str) -> Result<PathBuf, String> {
    resolve_with(arg, false)
}

fn resolve_with(arg: &str, download: bool) -> Result<PathBuf, String> {
    let path = PathBuf::from(arg);
    if path.exists() || arg.starts_with(['.', '/', '~']) {
        return Ok(path);
    }
    let Some(repo) = parse_repo_id(arg) else {
        return Ok(path);
    };
    let cache = cache_dir();
    let missing = match snapshot_in(&cache, &repo) {
        Ok(snapshot) => return Ok(snapshot),
        Err(e) => e,
    };
    if !download {
        return Err(format!(
            "{missing} (the app reads the cache only: `basin download {arg}` fills it)"
        ));
    }
    let client = super::hub_download::HubClient::from_env();
    let mut last_file = String::new();
    let mut progress = |file: &str, done: u64, total: Option<u64>| {
        // One line per file, then at every 64 MiB.
        if file != last_file || done % (64 << 20) < (1 << 20) {
            let total = total.map_or(String::new(), |t| {
                format!(" of {:.1} MiB", t as f64 / 1048576.0)
            });
            eprintln!(
                "downloading {arg}: {file} {:.1} MiB{total}",
                done as f64 / 1048576.0
            );
            last_file = file.to_string();
        }
    };
    super::hub_download::download(&client, &cache, &repo, &mut progress)
        .map_err(|e| format!("{missing}; downloading it failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_parse_and_paths_do_not() {
        let r = parse_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
        assert_eq!(
            (r.org.as_str(), r.name.as_str(), r.revision.as_str()),
            ("HuggingFaceTB", "SmolLM2-135M-Instruct", "main")
        );
        assert_eq!(parse_repo_id("a/b@v1.0").unwrap().revision, "v1.0");
        assert_eq!(
            parse_repo_id("a/b@refs/pr/1").unwrap().revision,
            "refs/pr/1"
        );
        for not in [
            "a",
            "a/b/c",
            "../b",
            "a/..",
            "a/b@..",
            "a/b@",
            "/abs/path",
            "a b/c",
        ] {
            assert!(parse_repo_id(not).is_none(), "{not}");
        }
    }

    #[test]
    fn a_cached_snapshot_is_found_by_branch_and_by_commit() {
        let cache = std::env::temp_dir().join(format!("basin-hub-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let repo = cache.join("models--org--tiny");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        let id = parse_repo_id("org/tiny").unwrap();
        assert_eq!(
            snapshot_in(&cache, &id).unwrap(),
            repo.join("snapshots").join(commit)
        );
        let pinned = parse_repo_id(&format!("org/tiny@{commit}")).unwrap();
        assert!(snapshot_in(&cache, &pinned).is_ok());
        let e = snapshot_in(&cache, &parse_repo_id("org/tiny@dev").unwrap()).unwrap_err();
        assert!(e.contains("branches there: main"), "{e}");
        let e = snapshot_in(&cache, &parse_repo_id("org/other").unwrap()).unwrap_err();
        assert!(
            e.contains(&cache.display().to_string())
                && e.contains("huggingface-cli download org/other"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
}
