//! Reads with a limit on the bytes actually read, not on what the file system says: a FIFO,
//! `/dev/zero` or a file that keeps growing stops at the limit with an error, instead of filling
//! memory. Every text file Basin reads whole (configs, suites, run records, CSV) goes through
//! [`read_to_string`] or [`read_bytes`]; line-oriented files (JSONL) read one bounded line at a
//! time through [`read_line`].

use std::io::{BufRead, Read};
use std::path::Path;

/// JSON / TOML / CSV configs and records: a model or adapter config, a suite file, `run.json`.
pub const CONFIG_BYTES: u64 = 64 << 20;
/// A whole data file read at once (a suite's item files, a SoRH CSV, `results.jsonl`'s tail).
pub const DATA_BYTES: u64 = 256 << 20;
/// One line of a JSONL file (a chat, a result, a training step).
pub const LINE_BYTES: u64 = 64 << 20;

fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "more than {} MiB, the most accepted for this kind of file (the wrong file, or not a regular file?)",
            limit >> 20
        ),
    )
}

/// The file's bytes, at most `limit` of them (more is an `InvalidData` error).
pub fn read_bytes(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    // A regular file that says it is too large is refused before a byte is read.
    if let Ok(meta) = file.metadata()
        && meta.is_file()
        && meta.len() > limit
    {
        return Err(too_large(limit));
    }
    let mut out = Vec::new();
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

/// The file as UTF-8 text, at most `limit` bytes (more, or invalid UTF-8, is an `InvalidData`
/// error).
pub fn read_to_string(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path, limit)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {}", e.utf8_error()),
        )
    })
}

/// A config or record file as text, at most [`CONFIG_BYTES`].
pub fn read_config(path: impl AsRef<Path>) -> std::io::Result<String> {
    read_to_string(path.as_ref(), CONFIG_BYTES)
}

/// Reads one line (with its `\n`, if any) into `buf` (cleared first), at most `limit` bytes;
/// returns the bytes read (0 at the end). A longer line is an `InvalidData` error.
pub fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: u64,
) -> std::io::Result<usize> {
    buf.clear();
    let n = reader.take(limit + 1).read_until(b'\n', buf)?;
    if n as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {} MiB", limit >> 20),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_files_stop_at_the_limit() {
        let zero = Path::new("/dev/zero");
        let e = read_bytes(zero, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("1 MiB"), "{e}");
        let mut reader = std::io::BufReader::new(std::fs::File::open(zero).unwrap());
        let mut buf = Vec::new();
        assert!(read_line(&mut reader, &mut buf, 1 << 20).is_err());
        assert!(buf.len() <= (1 << 20) + 1);
    }

    #[test]
    fn small_files_and_lines_read_whole() {
        let dir = std::env::temp_dir().join(format!("basin-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.txt");
        std::fs::write(&p, "one\ntwo").unwrap();
        assert_eq!(read_to_string(&p, 7).unwrap(), "one\ntwo");
        assert!(read_to_string(&p, 6).is_err(), "one byte over the limit");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(
            read_to_string(&p, 10)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        let mut r = std::io::BufReader::new("ab\ncd".as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 3).unwrap(), 3);
        assert_eq!(buf, b"ab\n");
        assert_eq!(read_line(&mut r, &mut buf, 3).unwrap(), 2);
        assert_eq!(read_line(&mut r, &mut buf, 3).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
