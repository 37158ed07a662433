//! Basin's cache folder: `$BASIN_CACHE`, or `~/.cache/basin` when it is unset or empty. Caches
//! (content fingerprints, influence gradients; the scripts' SmolLM2 fixture) live in folders
//! under it.

use std::path::PathBuf;

/// `$BASIN_CACHE` (when set and not empty), else `$HOME/.cache/basin`; `None` without either.
pub fn basin_cache_dir() -> Option<PathBuf> {
    std::env::var_os("BASIN_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/basin")))
}
