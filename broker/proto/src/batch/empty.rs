//! The record-less batch compaction leaves in place of an idempotent producer's last batch.

use bytes::{BufMut, Bytes};

use super::BatchHeader;
use super::header::{ATTRIBUTES_OFFSET, CODEC_MASK, CRC_OFFSET, HEADER_LEN, LOG_OVERHEAD, MAGIC};

/// A batch with no records that stands in for the batch of `header`: the same offsets,
/// leader epoch, producer identity and so the same sequence range. The codec is cleared,
/// and both timestamps are -1: having no records, it has no time, so a look-up by
/// timestamp never lands on it and it extends no segment's retention. Compaction writes
/// one when every record of an idempotent producer's last batch was superseded: the
/// broker rebuilds producer state from batch headers when it opens a log, and without it
/// would forget the producer and refuse its next sequence number. Kafka keeps such a
/// batch for the same reason.
pub fn empty_like(header: &BatchHeader) -> Bytes {
    let mut out = vec![0u8; HEADER_LEN];
    let mut h = &mut out[..];
    h.put_i64(header.base_offset);
    h.put_i32((HEADER_LEN - LOG_OVERHEAD) as i32);
    h.put_i32(header.partition_leader_epoch);
    h.put_i8(MAGIC);
    h.put_u32(0); // CRC, filled below
    h.put_i16(header.attributes & !CODEC_MASK);
    h.put_i32(header.last_offset_delta);
    h.put_i64(-1);
    h.put_i64(-1);
    h.put_i64(header.producer_id);
    h.put_i16(header.producer_epoch);
    h.put_i32(header.base_sequence);
    h.put_i32(0);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{
        BatchBuilder, BatchError, Compression, ProducerIdentity, check_records, decode_records,
        set_leader_epoch, validate, validate_stored,
    };

    #[test]
    fn an_empty_stand_in_keeps_offsets_and_sequences_and_only_stored_readers_accept_it() {
        let mut b = BatchBuilder::new();
        for i in 0..4 {
            b.push(100 + i, Some(b"k"), Some(b"value"), &[]);
        }
        let identity = ProducerIdentity {
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 17,
        };
        let mut full = b.build_at(500, Compression::Lz4, identity).to_vec();
        set_leader_epoch(&mut full, 6);
        let original = validate(&full).expect("valid");

        let empty = empty_like(&original);
        assert_eq!(empty.len(), HEADER_LEN);
        assert!(matches!(validate(&empty), Err(BatchError::Empty)));
        let stored = validate_stored(&empty).expect("a log may hold it");
        assert_eq!(stored.record_count, 0);
        assert_eq!(stored.base_offset, 500);
        assert_eq!(stored.last_offset(), original.last_offset());
        assert_eq!(stored.last_sequence(), original.last_sequence());
        assert_eq!(stored.partition_leader_epoch, 6);
        assert_eq!(
            (
                stored.producer_id,
                stored.producer_epoch,
                stored.base_sequence
            ),
            (42, 3, 17)
        );
        assert_eq!((stored.base_timestamp, stored.max_timestamp), (-1, -1));
        assert_eq!(stored.compression(), Ok(Compression::None));
        assert!(decode_records(&empty).expect("decodes").is_empty());
        check_records(&empty).expect("no records to frame");
    }
}
