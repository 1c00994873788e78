//! Damage found inside a segment: the byte and offset range of a [`DamagedRange`] (a
//! "hole"), and the search for the first intact batch after damaged bytes.
//!
//! Recovery must tell a torn tail from damage in the middle. A torn tail — nothing valid
//! after the damage in the active segment — is what a crash during an append leaves, and
//! it is cut: those records were never acknowledged under a flush policy that waits for
//! the disk. Damage with intact batches after it is something else (a flipped bit, a bad
//! sector): the batches after it were acknowledged, so cutting there would silently drop
//! them and hand their offsets out again. Such damage is kept on disk, untouched, and
//! recorded as a hole: reads into it fail with [`StorageError::DamagedData`] naming its
//! offsets, reads before and after it work, and the log end stays where it was, so no
//! offset is ever reused. Keeping (rather than taking the whole partition offline) lets
//! every intact record stay readable while an operator decides whether to restore the
//! segment from a replica or let consumers skip the range explicitly.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use quiver_proto::batch::{self, BatchHeader, HEADER_LEN};

use crate::error::StorageError;

/// Bytes read at once while searching for the next intact batch.
const SEARCH_WINDOW: usize = 1 << 20;

/// A damaged byte range of one segment and the offsets it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The segment file holding the damage.
    pub segment: PathBuf,
    /// First damaged byte.
    pub position: u64,
    /// First byte after the damage: an intact batch, or the end of the segment.
    pub end_position: u64,
    /// First offset the damaged bytes held (the offset expected after the last intact
    /// batch before them).
    pub first_offset: i64,
    /// First offset after the damage: reading may resume here. Equal to `first_offset`
    /// when the damaged bytes held no offsets (garbage between two intact batches).
    pub next_offset: i64,
    /// What was wrong with the bytes at `position`.
    pub reason: String,
}

impl DamagedRange {
    /// The error a read into this range fails with.
    pub(crate) fn error(&self, dir: &Path) -> StorageError {
        StorageError::DamagedData {
            dir: dir.to_path_buf(),
            range: Box::new(self.clone()),
        }
    }

    /// True when `offset` is one of the offsets the damage held.
    pub fn contains(&self, offset: i64) -> bool {
        self.first_offset <= offset && offset < self.next_offset
    }
}

/// An intact batch found after damaged bytes.
#[derive(Debug)]
pub(crate) struct Resumed {
    pub position: u64,
    pub header: BatchHeader,
}

/// The first position after `from` (exclusive) in `file[..end]` where a whole batch with a
/// valid CRC and a base offset of at least `min_offset` starts. The CRC makes a false
/// match on random bytes practically impossible; the offset rule keeps a stale copy of
/// an earlier batch from being taken for the continuation.
pub(crate) fn find_intact_batch(
    file: &File,
    from: u64,
    end: u64,
    min_offset: i64,
) -> io::Result<Option<Resumed>> {
    let mut window: Vec<u8> = Vec::new();
    let mut window_start = 0u64;
    let mut candidate = from + 1;
    let mut batch_bytes = Vec::new();
    while candidate + HEADER_LEN as u64 <= end {
        let window_end = window_start + window.len() as u64;
        if candidate < window_start || candidate + HEADER_LEN as u64 > window_end {
            let len = (end - candidate).min(SEARCH_WINDOW as u64) as usize;
            window.resize(len, 0);
            file.read_exact_at(&mut window, candidate)?;
            window_start = candidate;
        }
        let at = (candidate - window_start) as usize;
        if let Ok(header) = BatchHeader::parse(&window[at..at + HEADER_LEN])
            && header.base_offset >= min_offset
            && candidate + header.total_len() as u64 <= end
        {
            batch_bytes.resize(header.total_len(), 0);
            file.read_exact_at(&mut batch_bytes, candidate)?;
            if batch::validate_stored(&batch_bytes).is_ok() {
                return Ok(Some(Resumed {
                    position: candidate,
                    header,
                }));
            }
        }
        candidate += 1;
    }
    Ok(None)
}
