//! Small checkpoint files beside the segments (the leader-epoch cache, the high
//! watermark): a text format that says what it holds and proves it is whole, written so
//! that a crash leaves either the old file or the new one.
//!
//! ```text
//! <kind> 1              kind and format version
//! <n>                   number of entries
//! <i64> <i64> ...       n lines of integers separated by one space
//! crc32c <8 hex>        CRC-32C of every byte before this line
//! ```
//!
//! A reader that finds anything else (a torn write, garbage, another kind or version)
//! gets [`CheckpointError`] and falls back to what the log itself can tell.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// Version written in the first line; a reader refuses any other.
const VERSION: u32 = 1;

/// Suffix of a checkpoint being written; recovery removes leftovers of a crash.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Why a checkpoint file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint {} is unusable: {reason}", path.display())]
pub(crate) struct CheckpointError {
    pub path: PathBuf,
    pub reason: String,
}

/// One checkpoint file of the log directory, holding entries of `width` integers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoint {
    /// File name in the log directory, also the kind written in the first line.
    pub name: &'static str,
    /// Integers per entry.
    pub width: usize,
}

impl Checkpoint {
    pub(crate) fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.name)
    }

    /// The file's bytes for `entries`.
    fn encode(&self, entries: &[Vec<i64>]) -> String {
        let mut text = format!("{} {VERSION}\n{}\n", self.name, entries.len());
        for entry in entries {
            let line: Vec<String> = entry.iter().map(i64::to_string).collect();
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        let crc = crc32c::crc32c(text.as_bytes());
        text.push_str(&format!("crc32c {crc:08x}\n"));
        text
    }

    /// Parses the file's bytes; any deviation from the format is an error.
    fn decode(&self, path: &Path, bytes: &[u8]) -> Result<Vec<Vec<i64>>, CheckpointError> {
        let bad = |reason: String| CheckpointError {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        let body_end = text
            .trim_end_matches('\n')
            .rfind('\n')
            .map(|i| i + 1)
            .ok_or_else(|| bad("no checksum line".into()))?;
        let (body, trailer) = text.split_at(body_end);
        let stored = trailer
            .strip_prefix("crc32c ")
            .and_then(|t| t.strip_suffix('\n'))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .ok_or_else(|| bad("the last line is not a checksum (torn write?)".into()))?;
        let actual = crc32c::crc32c(body.as_bytes());
        if stored != actual {
            return Err(bad(format!(
                "checksum {stored:08x} does not match the contents ({actual:08x})"
            )));
        }
        let mut lines = body.lines();
        let expected_head = format!("{} {VERSION}", self.name);
        if lines.next() != Some(expected_head.as_str()) {
            return Err(bad(format!("the first line is not `{expected_head}`")));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| bad("the second line is not an entry count".into()))?;
        let entries: Vec<Vec<i64>> = lines
            .map(|line| {
                let entry: Option<Vec<i64>> =
                    line.split(' ').map(|field| field.parse().ok()).collect();
                entry
                    .filter(|e| e.len() == self.width)
                    .ok_or_else(|| bad(format!("entry `{line}` is not {} integers", self.width)))
            })
            .collect::<Result<_, _>>()?;
        if entries.len() != count {
            return Err(bad(format!(
                "{} entries where the count says {count}",
                entries.len()
            )));
        }
        Ok(entries)
    }

    /// The entries in `dir`, `Ok(None)` when there is no file, `Err` when it is
    /// unreadable or damaged.
    pub(crate) fn read(&self, dir: &Path) -> Result<Option<Vec<Vec<i64>>>, CheckpointError> {
        let path = self.path(dir);
        match fs::read(&path) {
            Ok(bytes) => self.decode(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CheckpointError {
                path,
                reason: format!("unreadable: {e}"),
            }),
        }
    }

    /// Replaces the file durably: the entries go to a temporary file, which is fsynced
    /// and renamed over the old one, and the directory is fsynced so the rename lasts.
    pub(crate) fn write(&self, dir: &Path, entries: &[Vec<i64>]) -> Result<(), StorageError> {
        let path = self.path(dir);
        let text = self.encode(entries);
        quiver_durable::write_atomic(&path, text.as_bytes())
            .map_err(StorageError::io(&path, "write checkpoint"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PAIRS: Checkpoint = Checkpoint {
        name: "test-checkpoint",
        width: 2,
    };

    #[test]
    fn entries_round_trip_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PAIRS.read(dir.path()).unwrap(), None);
        let entries = vec![vec![0, 0], vec![3, 1_000], vec![7, i64::MAX]];
        PAIRS.write(dir.path(), &entries).unwrap();
        assert_eq!(PAIRS.read(dir.path()).unwrap(), Some(entries));
        PAIRS.write(dir.path(), &[]).unwrap();
        assert_eq!(PAIRS.read(dir.path()).unwrap(), Some(vec![]));
        assert!(!dir.path().join("test-checkpoint.tmp").exists());
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        PAIRS
            .write(dir.path(), &[vec![1, 10], vec![2, 20]])
            .unwrap();
        let path = PAIRS.path(dir.path());
        let good = fs::read(&path).unwrap();
        for cut in 0..good.len() {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(PAIRS.read(dir.path()).is_err(), "cut at {cut}");
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            assert!(PAIRS.read(dir.path()).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn another_kind_or_width_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        PAIRS.write(dir.path(), &[vec![1, 10]]).unwrap();
        let other = Checkpoint {
            name: "test-checkpoint",
            width: 1,
        };
        assert!(other.read(dir.path()).is_err());
        let text = fs::read_to_string(PAIRS.path(dir.path())).unwrap();
        fs::write(
            dir.path().join("renamed"),
            text.replace("test-checkpoint", "renamed"),
        )
        .unwrap();
        let renamed = Checkpoint {
            name: "renamed",
            width: 2,
        };
        assert!(
            renamed.read(dir.path()).is_err(),
            "the checksum covers the kind"
        );
    }
}
