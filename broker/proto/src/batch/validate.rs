//! Checking a whole batch: its header, its length against the buffer, and its CRC-32C.

use super::header::ATTRIBUTES_OFFSET;
use super::{BatchError, BatchHeader};

/// Checks the header, length and CRC of the single batch that fills `buf` exactly, as a
/// producer must send it: with at least one record.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_stored(buf)?;
    if header.record_count == 0 {
        return Err(BatchError::Empty);
    }
    Ok(header)
}

/// Like [`validate`], but also accepts a batch without records, as a log may hold one:
/// compaction leaves an empty batch in place of an idempotent producer's last batch
/// whose records were all superseded (see [`empty_like`](super::empty_like)). Readers of
/// a log use this and skip such a batch's offsets.
pub fn validate_stored(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_len() != buf.len() {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: buf.len(),
        });
    }
    let actual = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    if header.record_count < 0 || header.last_offset_delta < 0 {
        return Err(BatchError::Malformed(
            "negative record count or offset delta",
        ));
    }
    header.compression()?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, ProducerIdentity};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_flipped_byte_after_the_epoch_fails_the_crc(pos in 16usize..200, flip in 1u8..=255) {
            let mut b = BatchBuilder::new();
            for i in 0..10u8 {
                b.push(1000 + i64::from(i), Some(&[i]), Some(&[i; 12]), &[]);
            }
            let mut bytes = b.build(Compression::None, ProducerIdentity::NONE).to_vec();
            let pos = pos % bytes.len();
            prop_assume!(pos >= 16);
            bytes[pos] ^= flip;
            prop_assert!(validate(&bytes).is_err());
        }
    }
}
