//! Kafka's RecordBatch v2 byte layout, used on the wire and on disk.
//!
//! ```text
//! offset  size  field
//!      0     8  base offset            (written by the broker on append)
//!      8     4  batch length           (bytes after this field)
//!     12     4  partition leader epoch (written by the broker)
//!     16     1  magic = 2
//!     17     4  CRC-32C of bytes 21..end
//!     21     2  attributes             (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//!     23     4  last offset delta
//!     27     8  base timestamp
//!     35     8  max timestamp
//!     43     8  producer id            (-1 without idempotence)
//!     51     2  producer epoch
//!     53     4  base sequence
//!     57     4  record count
//!     61     …  records, compressed as a block when the codec is not `none`
//! ```
//!
//! The broker only ever reads the header and checks the CRC ([`validate`]); it never
//! re-encodes a batch. Because the CRC starts at the attributes, the broker can stamp the
//! base offset and leader epoch without recomputing it.
//!
//! Each part lives in its own file: the header's layout, parsing and in-place stamping
//! ([`BatchHeader`], [`set_base_offset`]), whole-batch checks ([`validate`]), the
//! [`BatchBuilder`], record decoding ([`decode_records`], [`check_records`]), walking
//! back-to-back batches ([`split`]), the record-less stand-in compaction writes
//! ([`empty_like`]), and the five codecs ([`Compression`]). Everything is re-exported
//! here, so callers name every item `batch::X` whichever file holds it.

mod builder;
mod compression;
mod decode;
mod empty;
mod error;
mod header;
mod producer;
mod split;
mod validate;

pub use builder::BatchBuilder;
pub use compression::{Compression, MAX_DECOMPRESSED, compress, decompress};
pub use decode::{check_records, decode_records};
pub use empty::empty_like;
pub use error::BatchError;
pub use header::{
    BASE_OFFSET_LEN, BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC, set_base_offset,
    set_leader_epoch,
};
pub use producer::{MAX_IDEMPOTENT_IN_FLIGHT, ProducerIdentity};
pub use split::{BatchSplit, split};
pub use validate::{validate, validate_stored};
