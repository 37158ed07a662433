//! Making a rename or a new file survive a crash: after `rename(tmp, path)` (or creating a file)
//! the new directory entry lives in the folder's own metadata, which `fsync` of the file does not
//! write. [`sync_dir`] writes it.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

static DIR_SYNCS: AtomicUsize = AtomicUsize::new(0);

/// `fsync` of the folder `dir` (its entries: renames and new files in it become durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    DIR_SYNCS.fetch_add(1, Ordering::Relaxed);
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a folder as a file to flush it; its renames go through the
        // journal of NTFS.
        let _ = dir;
        Ok(())
    }
}

/// The parent folder of `path` (`.` for a bare file name), synced.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// How many folders this process has synced (tests check that writers sync).
pub fn dir_syncs() -> usize {
    DIR_SYNCS.load(Ordering::Relaxed)
}
