//! The fixed batch header: its layout constants, parsing, and the two fields the broker
//! stamps in place (base offset and leader epoch), which the CRC does not cover.

use super::{BatchError, Compression};

/// Size of the fixed batch header that precedes the records.
pub const HEADER_LEN: usize = 61;
/// Bytes of the base offset that starts every batch: the broker assigns it, so the CRC
/// does not cover it.
pub const BASE_OFFSET_LEN: usize = 8;
/// Bytes before the `batch length` field ends: base offset plus the length itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format version Quiver reads and writes.
pub const MAGIC: i8 = 2;

/// Where the CRC-32C sits in the header.
pub(super) const CRC_OFFSET: usize = 17;
/// Where the attributes start; the CRC covers everything from here to the end.
pub(super) const ATTRIBUTES_OFFSET: usize = 21;
/// The attribute bits that hold the codec id.
pub(super) const CODEC_MASK: i16 = 0x07;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// The fixed header of one batch, read without touching the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the front of `buf` without checking the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let h = BatchHeader {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, 8),
            partition_leader_epoch: i32_at(buf, 12),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
            attributes: i16_at(buf, 21),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, 35),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16_at(buf, 51),
            base_sequence: i32_at(buf, 53),
            record_count: i32_at(buf, 57),
        };
        if h.magic != MAGIC {
            return Err(BatchError::UnsupportedMagic(h.magic));
        }
        if (h.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::BadLength(h.batch_length));
        }
        Ok(h)
    }

    /// Size of the whole batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id(self.attributes & CODEC_MASK)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// The sequence number of the last record, for idempotent producers.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        // Sequences wrap at i32::MAX, as in Kafka.
        ((i64::from(self.base_sequence) + i64::from(self.last_offset_delta))
            % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// Writes the base offset into a batch in place; the CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..BASE_OFFSET_LEN].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch into a batch in place; the CRC does not cover it.
pub fn set_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, ProducerIdentity, validate};

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut b = BatchBuilder::new();
        b.push(5, None, Some(b"v"), &[]);
        let mut bytes = b.build(Compression::None, ProducerIdentity::NONE).to_vec();
        set_base_offset(&mut bytes, 1234);
        set_leader_epoch(&mut bytes, 9);
        let h = validate(&bytes).expect("still valid");
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 9);
    }
}
