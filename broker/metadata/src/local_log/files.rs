//! The files of a metadata directory and their names.
//!
//! ```text
//! <index:020>.snapshot       the image after record <index>
//! <index:020>.snapshot.tmp   a snapshot being written; removed at open
//! <first:020>.log            records from index <first> on
//! ```
//!
//! Zero-padded names sort in index order, which keeps a directory listing readable.

use std::path::{Path, PathBuf};

use super::error::LocalLogError;

/// The files found in a metadata directory, each sorted by index.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub(crate) snapshots: Vec<(u64, PathBuf)>,
    pub(crate) logs: Vec<(u64, PathBuf)>,
    pub(crate) temps: Vec<PathBuf>,
}

pub(crate) fn log_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

pub(crate) fn snapshot_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:020}.snapshot"))
}

/// Lists `dir`; files it does not recognise are left alone.
pub(crate) fn list(dir: &Path) -> Result<Listing, LocalLogError> {
    let io = |source| LocalLogError::Io {
        action: "list",
        path: dir.to_path_buf(),
        source,
    };
    let mut listing = Listing::default();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".tmp") {
            listing.temps.push(path);
        } else if let Some(index) = numbered(name, ".snapshot") {
            listing.snapshots.push((index, path));
        } else if let Some(first) = numbered(name, ".log") {
            listing.logs.push((first, path));
        }
    }
    listing.snapshots.sort();
    listing.logs.sort();
    Ok(listing)
}

fn numbered(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Makes creations, renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LocalLogError> {
    quiver_durable::sync_dir(dir).map_err(|source| LocalLogError::Io {
        action: "sync directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Removes `path`; one already gone is fine.
pub(crate) fn remove(path: &Path) -> Result<(), LocalLogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LocalLogError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}
