//! Reading the records of a batch: decoding them, or only checking that they decode.

use bytes::Bytes;

use super::header::HEADER_LEN;
use super::{BatchError, BatchHeader, Compression, decompress};
use crate::record::{Header, Record};
use crate::varint::{get_varint, get_varlong};

/// Decodes every record of one validated batch, decompressing as its codec says.
pub fn decode_records(batch: &Bytes) -> Result<Vec<Record>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() > batch.len() {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: batch.len(),
        });
    }
    let body = batch.slice(HEADER_LEN..header.total_len());
    let codec = header.compression()?;
    let body = match codec {
        Compression::None => body,
        other => Bytes::from(decompress(other, &body)?),
    };
    let count = usize::try_from(header.record_count)
        .map_err(|_| BatchError::Malformed("negative record count"))?;
    // Each record is at least 7 bytes, so a huge count in a small batch is caught here
    // before it becomes a huge allocation.
    if count > body.len() / 7 + 1 {
        return Err(BatchError::Malformed(
            "record count exceeds what the batch can hold",
        ));
    }
    let mut records = Vec::with_capacity(count);
    let mut input: &[u8] = &body;
    for _ in 0..count {
        let len = usize::try_from(get_varint(&mut input)?)
            .map_err(|_| BatchError::Malformed("negative record length"))?;
        if len > input.len() {
            return Err(BatchError::Malformed("record length runs past the batch"));
        }
        let (mut rec, rest) = input.split_at(len);
        input = rest;
        let _attributes = take(&mut rec, 1)?;
        let ts_delta = get_varlong(&mut rec)?;
        let offset_delta = get_varint(&mut rec)?;
        let key = take_bytes_field(&mut rec, &body)?;
        let value = take_bytes_field(&mut rec, &body)?;
        let header_count = usize::try_from(get_varint(&mut rec)?)
            .map_err(|_| BatchError::Malformed("negative header count"))?;
        if header_count > rec.len() {
            return Err(BatchError::Malformed("header count exceeds the record"));
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let k = take_bytes_field(&mut rec, &body)?
                .ok_or(BatchError::Malformed("header key is null"))?;
            let key = String::from_utf8(k.to_vec())
                .map_err(|_| BatchError::Malformed("header key is not UTF-8"))?;
            let value = take_bytes_field(&mut rec, &body)?;
            headers.push(Header { key, value });
        }
        records.push(Record {
            offset: header.base_offset + i64::from(offset_delta),
            timestamp: header.base_timestamp + ts_delta,
            key,
            value,
            headers,
        });
    }
    Ok(records)
}

/// Checks that a batch's records decode: the codec really decompresses, every record's
/// framing fits, and the count matches the header. Walks the records without building
/// them, so the broker can afford it on the produce path.
pub fn check_records(batch: &[u8]) -> Result<(), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let end = header.total_len().min(batch.len());
    let body = &batch[HEADER_LEN.min(end)..end];
    let decompressed;
    let mut input: &[u8] = match header.compression()? {
        Compression::None => body,
        codec => {
            decompressed = decompress(codec, body)?;
            &decompressed
        }
    };
    let mut count = 0i64;
    let mut last_delta = -1i64;
    while !input.is_empty() {
        let len = usize::try_from(get_varint(&mut input)?)
            .map_err(|_| BatchError::Malformed("negative record length"))?;
        let mut rec = take(&mut input, len)?;
        take(&mut rec, 1)?;
        get_varlong(&mut rec)?;
        let delta = i64::from(get_varint(&mut rec)?);
        if delta <= last_delta || delta > i64::from(header.last_offset_delta) {
            return Err(BatchError::Malformed(
                "record offset deltas out of order or past the header's",
            ));
        }
        last_delta = delta;
        for _ in 0..2 {
            skip_bytes_field(&mut rec)?;
        }
        let headers = get_varint(&mut rec)?;
        for _ in 0..headers.max(0) {
            skip_bytes_field(&mut rec)?;
            skip_bytes_field(&mut rec)?;
        }
        if !rec.is_empty() {
            return Err(BatchError::Malformed(
                "record has bytes past its last header",
            ));
        }
        count += 1;
    }
    if count != i64::from(header.record_count) {
        return Err(BatchError::Malformed(
            "record count differs from the batch header",
        ));
    }
    Ok(())
}

fn skip_bytes_field(input: &mut &[u8]) -> Result<(), BatchError> {
    let len = get_varint(input)?;
    if len > 0 {
        take(input, len as usize)?;
    }
    Ok(())
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], BatchError> {
    if input.len() < n {
        return Err(BatchError::Malformed("field runs past the record"));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Reads a length-prefixed field as a zero-copy slice of `body`.
fn take_bytes_field(input: &mut &[u8], body: &Bytes) -> Result<Option<Bytes>, BatchError> {
    let len = get_varint(input)?;
    if len < 0 {
        return Ok(None);
    }
    let field = take(input, len as usize)?;
    Ok(Some(body.slice_ref(field)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::header::{ATTRIBUTES_OFFSET, CRC_OFFSET};
    use crate::batch::{BatchBuilder, ProducerIdentity, split, validate};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let bytes = Bytes::from(data);
            let _ = validate(&bytes);
            let _ = check_records(&bytes);
            let _ = decode_records(&bytes);
            for piece in split(&bytes) {
                let _ = piece;
            }
        }
    }

    #[test]
    fn a_batch_that_does_not_decompress_is_refused() {
        let mut b = BatchBuilder::new();
        b.push(5, None, Some(b"value"), &[]);
        let mut bytes = b.build(Compression::None, ProducerIdentity::NONE).to_vec();
        // Claim zstd for an uncompressed body and fix up the CRC so only the codec lies.
        bytes[ATTRIBUTES_OFFSET + 1] = Compression::Zstd.id() as u8;
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let bytes = Bytes::from(bytes);
        validate(&bytes).expect("header and CRC are fine");
        assert!(matches!(
            check_records(&bytes),
            Err(BatchError::Decompression {
                codec: Compression::Zstd,
                ..
            })
        ));
        assert!(matches!(
            decode_records(&bytes),
            Err(BatchError::Decompression {
                codec: Compression::Zstd,
                ..
            })
        ));
    }
}
