//! The one error type of the batch codec.

use super::Compression;

/// Why a batch was refused. Each names what was wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("batch magic is {0}, only magic 2 (RecordBatch v2) is supported")]
    UnsupportedMagic(i8),
    #[error("batch CRC mismatch: header says {expected:#010x}, content hashes to {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("batch length {0} is smaller than the batch header")]
    BadLength(i32),
    #[error("unknown compression codec id {0}")]
    UnknownCodec(i16),
    #[error("batch claims {codec} compression but does not decompress: {reason}")]
    Decompression { codec: Compression, reason: String },
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("batch holds no records")]
    Empty,
}
