//! Why the local metadata log could not open, append or snapshot.

use std::path::PathBuf;

use crate::error::MetadataError;

/// Why a local log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalLogError {
    /// The record does not apply to the current image; nothing was written.
    #[error(transparent)]
    Rejected(#[from] MetadataError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "metadata log {} is damaged at byte {offset}: {reason}; restore the metadata directory from a backup",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "metadata log {} holds index {found} at byte {offset} where {expected} was due; a log file is missing or damaged",
        path.display()
    )]
    IndexGap {
        path: PathBuf,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error(
        "metadata log {} record {index} at byte {offset} does not replay: {source}",
        path.display()
    )]
    Replay {
        path: PathBuf,
        offset: u64,
        index: u64,
        /// Boxed: it is rare and would make every result of this type large.
        #[source]
        source: Box<MetadataError>,
    },
    #[error(
        "metadata snapshot {} is unusable: {reason}; restore the metadata directory from a backup",
        path.display()
    )]
    BadSnapshot { path: PathBuf, reason: String },
    #[error("metadata record is {size} bytes, the limit is {limit}")]
    RecordTooLarge { size: usize, limit: usize },
    #[error(
        "metadata log stopped accepting writes after a failed write or sync ({reason}); restart the broker to reopen it"
    )]
    Poisoned { reason: String },
}
