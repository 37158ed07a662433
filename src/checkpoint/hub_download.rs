//! Downloading a Hugging Face repo into the local hub cache, laid out as huggingface_hub lays it
//! out (so transformers and Basin share the files): `blobs/<etag>` holds each file's bytes,
//! `snapshots/<commit>/<file>` links to its blob, `refs/<revision>` names the commit.
//!
//! The hub's HTTP API as huggingface_hub uses it: `GET {endpoint}/api/models/{repo}/revision/{rev}`
//! gives the commit (`sha`) and the file list (`siblings`), `GET {endpoint}/{repo}/resolve/{commit}/{file}`
//! the bytes, with the blob's id in `X-Linked-Etag` (large files: their SHA-256, checked here) or
//! `ETag`. `HF_ENDPOINT` replaces `https://huggingface.co`, `HF_TOKEN` (or the token file
//! huggingface-cli writes) authenticates, `HF_HUB_OFFLINE=1` forbids any request.
//!
//! Only what Basin reads is fetched: the top-level `*.json`, `*.jinja` and `*.safetensors` files
//! (config, tokenizer, chat template, weights and their index, PEFT adapter files); a repo without
//! safetensors weights is refused before any large download.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;

use super::hub::RepoId;

/// Why a repo could not be downloaded; each message names the repo or the file.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "`{repo}`: downloads are off (HF_HUB_OFFLINE is set) and the cache {cache} does not have it"
    )]
    Offline { repo: String, cache: PathBuf },
    #[error("`{repo}`: could not reach {url}: {reason}")]
    Network {
        repo: String,
        url: String,
        reason: String,
    },
    #[error("`{repo}`: {url} answered {status}{hint}")]
    Status {
        repo: String,
        url: String,
        status: u16,
        hint: &'static str,
    },
    #[error("`{repo}`: the hub's answer for {url} is not what huggingface_hub sends: {reason}")]
    Protocol {
        repo: String,
        url: String,
        reason: String,
    },
    #[error(
        "`{repo}` has no safetensors weights on {endpoint} (its files: {files}); Basin reads safetensors model folders, PEFT adapters and local GGUF files"
    )]
    NoWeights {
        repo: String,
        endpoint: String,
        files: String,
    },
    #[error("`{repo}`: {file}: {reason}")]
    File {
        repo: String,
        file: String,
        reason: String,
    },
    #[error("`{repo}`: {path}: {source}")]
    Io {
        repo: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where downloads come from and with which credentials (from the environment by default).
#[derive(Debug, Clone)]
pub struct HubClient {
    pub endpoint: String,
    pub token: Option<String>,
    pub offline: bool,
}

/// The largest revision listing accepted (a repo with tens of thousands of files stays far below).
const MAX_LISTING_BYTES: u64 = 16 << 20;

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

impl HubClient {
    /// `HF_ENDPOINT`, `HF_TOKEN` (else `$HF_HOME/token` or `~/.cache/huggingface/token`) and
    /// `HF_HUB_OFFLINE`, as huggingface_hub reads them.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string())
            .trim()
            .trim_end_matches('/')
            .to_string();
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                let home = std::env::var_os("HF_HOME")
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .map(|h| PathBuf::from(h).join(".cache").join("huggingface"))
                    })?;
                crate::bounded::read_to_string(&home.join("token"), 4096).ok()
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Self {
            endpoint,
            token,
            offline: env_flag("HF_HUB_OFFLINE") || env_flag("TRANSFORMERS_OFFLINE"),
        }
    }

    fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(120))
            .user_agent(concat!("basin/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    fn get(&self, agent: &ureq::Agent, repo: &str, url: &str) -> Result<ureq::Response, HubError> {
        let mut req = agent.get(url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, _)) => Err(HubError::Status {
                repo: repo.to_string(),
                url: url.to_string(),
                status,
                hint: match status {
                    401 | 403 => {
                        " (a private or gated repo: accept its terms on the hub and set HF_TOKEN)"
                    }
                    404 => " (no such repo, revision or file)",
                    _ => "",
                },
            }),
            Err(ureq::Error::Transport(t)) => {
                // ureq's own text repeats the URL; the kind and its cause are what is new.
                let cause = t
                    .message()
                    .map(str::to_string)
                    .or_else(|| std::error::Error::source(&t).map(|s| s.to_string()));
                Err(HubError::Network {
                    repo: repo.to_string(),
                    url: url.to_string(),
                    reason: match cause {
                        Some(c) => format!("{}: {c}", t.kind()),
                        None => t.kind().to_string(),
                    },
                })
            }
        }
    }
}

/// A file name from the hub's listing that may become a path in the snapshot: top level, no
/// traversal, no hidden or odd names.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0', ':'])
}

/// Whether Basin reads this top-level file (configs, tokenizer, `chat_template.jinja`, weights).
fn wanted(name: &str) -> bool {
    name.ends_with(".json") || name.ends_with(".safetensors") || name.ends_with(".jinja")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct Listing {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(serde::Deserialize)]
struct Sibling {
    rfilename: String,
}

/// Progress of a download: the file, bytes so far and the total when the server sent one.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, Option<u64>);

/// Downloads `repo` at its revision into `cache` and returns the snapshot folder. Files already
/// in the snapshot are kept; each new file is streamed to a temporary blob, checked (length, and
/// SHA-256 where the hub gives one), synced, then renamed into place, so an interrupted download
/// leaves no partial file under its real name.
pub fn download(
    client: &HubClient,
    cache: &Path,
    repo: &RepoId,
    progress: Progress,
) -> Result<PathBuf, HubError> {
    let id = format!("{}/{}", repo.org, repo.name);
    if client.offline {
        return Err(HubError::Offline {
            repo: id,
            cache: cache.to_path_buf(),
        });
    }
    let agent = client.agent();
    let listing_url = format!(
        "{}/api/models/{}/{}/revision/{}",
        client.endpoint,
        repo.org,
        repo.name,
        percent_encode(&repo.revision)
    );
    let protocol = |reason: String| HubError::Protocol {
        repo: id.clone(),
        url: listing_url.clone(),
        reason,
    };
    let response = client.get(&agent, &id, &listing_url)?;
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_LISTING_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| HubError::Network {
            repo: id.clone(),
            url: listing_url.clone(),
            reason: e.to_string(),
        })?;
    if body.len() as u64 > MAX_LISTING_BYTES {
        return Err(protocol(format!(
            "the file listing is over {} MiB",
            MAX_LISTING_BYTES >> 20
        )));
    }
    let listing: Listing = serde_json::from_slice(&body)
        .map_err(|e| protocol(format!("not a revision listing: {e}")))?;
    let commit = listing.sha.trim().to_string();
    if commit.is_empty() || commit.len() > 64 || !commit.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(protocol(format!("`{commit}` is not a commit hash")));
    }
    let mut files: Vec<String> = listing
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .filter(|f| !f.contains('/') && wanted(f))
        .collect();
    files.sort();
    files.dedup();
    if let Some(bad) = files.iter().find(|f| !safe_file_name(f)) {
        return Err(protocol(format!("refusing the file name `{bad}`")));
    }
    if !files.iter().any(|f| f.ends_with(".safetensors")) {
        return Err(HubError::NoWeights {
            repo: id,
            endpoint: client.endpoint.clone(),
            files: if files.is_empty() {
                "none Basin reads".into()
            } else {
                files.join(", ")
            },
        });
    }

    let dir = cache.join(format!("models--{}--{}", repo.org, repo.name));
    let blobs = dir.join("blobs");
    let snapshot = dir.join("snapshots").join(&commit);
    let io = |path: &Path, source: std::io::Error| HubError::Io {
        repo: id.clone(),
        path: path.to_path_buf(),
        source,
    };
    for d in [&blobs, &snapshot, &dir.join("refs")] {
        std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
    }
    for file in &files {
        let target = snapshot.join(file);
        if target.exists() {
            continue;
        }
        let url = format!(
            "{}/{}/{}/resolve/{}/{}",
            client.endpoint,
            repo.org,
            repo.name,
            commit,
            percent_encode(file)
        );
        let blob = fetch_blob(client, &agent, &id, &url, file, &blobs, progress)?;
        link_blob(&blob, &target).map_err(|e| io(&target, e))?;
    }
    if repo.revision != commit {
        let ref_file = dir.join("refs").join(&repo.revision);
        if let Some(parent) = ref_file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&ref_file, &commit).map_err(|e| io(&ref_file, e))?;
    }
    Ok(snapshot)
}

/// Streams one file into `blobs/` and returns the blob's path.
fn fetch_blob(
    client: &HubClient,
    agent: &ureq::Agent,
    id: &str,
    url: &str,
    file: &str,
    blobs: &Path,
    progress: Progress,
) -> Result<PathBuf, HubError> {
    let file_err = |reason: String| HubError::File {
        repo: id.to_string(),
        file: file.to_string(),
        reason,
    };
    let response = client.get(agent, id, url)?;
    let etag = |name: &str| {
        response
            .header(name)
            .map(|v| {
                v.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_string()
            })
            .filter(|v| !v.is_empty())
    };
    let linked = etag("X-Linked-Etag");
    let plain = etag("ETag");
    // A 64-hex-digit linked etag is the file's SHA-256 (LFS files): checked below.
    let expected_sha = linked
        .as_ref()
        .filter(|e| e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit()))
        .map(|e| e.to_ascii_lowercase());
    let length: Option<u64> = response
        .header("X-Linked-Size")
        .or_else(|| response.header("Content-Length"))
        .and_then(|v| v.trim().parse().ok());
    let tmp = blobs.join(format!(
        "{}.{}.incomplete",
        percent_encode(file),
        std::process::id()
    ));
    let io = |path: &Path, source: std::io::Error| HubError::Io {
        repo: id.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    let mut reader = response.into_reader();
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done: u64 = 0;
    let result = (|| {
        loop {
            let n = reader.read(&mut buf).map_err(|e| HubError::Network {
                repo: id.to_string(),
                url: url.to_string(),
                reason: format!("after {done} bytes: {e}"),
            })?;
            if n == 0 {
                break;
            }
            done += n as u64;
            if length.is_some_and(|l| done > l) {
                return Err(file_err(format!(
                    "the server sent more than the {} bytes it announced",
                    length.unwrap_or(0)
                )));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| io(&tmp, e))?;
            progress(file, done, length);
        }
        if let Some(l) = length
            && done != l
        {
            return Err(file_err(format!("truncated: {done} of {l} bytes arrived")));
        }
        let sha = format!("{:x}", hasher.finalize_reset());
        if let Some(expected) = &expected_sha
            && &sha != expected
        {
            return Err(file_err(format!(
                "its SHA-256 is {sha}, the hub says {expected}: the download is corrupt"
            )));
        }
        out.sync_all().map_err(|e| io(&tmp, e))?;
        // The blob's name: the hub's etag when it is a plain token, else the content's SHA-256.
        let name = linked
            .or(plain)
            .filter(|e| e.len() <= 128 && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(sha);
        let blob = blobs.join(name);
        std::fs::rename(&tmp, &blob).map_err(|e| io(&blob, e))?;
        crate::durable::sync_dir(blobs).map_err(|e| io(blobs, e))?;
        Ok(blob)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `snapshots/<commit>/<file>` → `../../blobs/<etag>` (a copy where symlinks are not available).
fn link_blob(blob: &Path, target: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let name = blob
            .file_name()
            .ok_or_else(|| std::io::Error::other("blob without a name"))?;
        std::os::unix::fs::symlink(Path::new("../../blobs").join(name), target)
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(blob, target).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_names_are_checked() {
        for ok in [
            "config.json",
            "model-00001-of-00002.safetensors",
            "a b.json",
        ] {
            assert!(safe_file_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden.json",
            "../x.json",
            "a/b.json",
            "c:\\x.json",
            "a\0.json",
        ] {
            assert!(!safe_file_name(bad), "{bad:?}");
        }
        assert!(wanted("tokenizer.json") && wanted("adapter_model.safetensors"));
        assert!(wanted("chat_template.jinja"));
        assert!(!wanted("pytorch_model.bin") && !wanted("model.gguf") && !wanted("README.md"));
        assert_eq!(percent_encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(percent_encode("a b.json"), "a%20b.json");
    }
}
