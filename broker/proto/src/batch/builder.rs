//! Building one batch from records, optionally compressed.

use bytes::{BufMut, Bytes};

use super::header::{ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_LEN, LOG_OVERHEAD, MAGIC};
use super::{Compression, ProducerIdentity, compress};
use crate::record::Header;
use crate::varint::{put_varint, put_varlong, varlong_len};

/// Builds one batch from records. Offsets are relative; the broker assigns the base.
///
/// The buffer starts with room for the batch header, so that [`finish`](Self::finish)
/// of an uncompressed batch writes the header in place instead of copying the records.
#[derive(Debug)]
pub struct BatchBuilder {
    /// `HEADER_LEN` bytes reserved for the header, then the encoded records.
    buf: Vec<u8>,
    count: i32,
    last_offset_delta: Option<i32>,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    pub fn with_capacity(bytes: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(bytes.max(HEADER_LEN)))
    }

    /// A builder that writes into `buf` (emptied first), for reusing a warm allocation;
    /// see [`crate::buffers::BufferPool`].
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(HEADER_LEN, 0);
        BatchBuilder {
            buf,
            count: 0,
            last_offset_delta: None,
            base_timestamp: None,
            max_timestamp: -1,
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch would take uncompressed, header included.
    pub fn size_estimate(&self) -> usize {
        self.buf.len()
    }

    /// Bytes a record takes in the batch, to decide whether it still fits.
    pub fn record_size(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[Header]) -> usize {
        // Deltas take at most 10 bytes each; this is an upper bound, not exact.
        let body = 1
            + 10
            + 5
            + 5
            + key.map_or(0, <[u8]>::len)
            + 5
            + value.map_or(0, <[u8]>::len)
            + 5
            + headers
                .iter()
                .map(|h| 10 + h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
                .sum::<usize>();
        body + 5
    }

    /// Appends one record with the given timestamp in milliseconds, at the next offset.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        let delta = self.last_offset_delta.map_or(0, |d| d + 1);
        self.push_at(delta, timestamp, key, value, headers);
    }

    /// Appends one record at an explicit offset delta from the batch's base offset, which
    /// must be greater than the last one pushed. Compaction and filters use it to write
    /// the records they keep without renumbering them.
    pub fn push_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        let base_ts = *self.base_timestamp.get_or_insert(timestamp);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.last_offset_delta = Some(offset_delta);
        let ts_delta = timestamp - base_ts;

        let mut body_len = 1 + varlong_len(ts_delta) + varlong_len(i64::from(offset_delta));
        body_len += bytes_field_len(key) + bytes_field_len(value);
        body_len += varlong_len(headers.len() as i64);
        for h in headers {
            body_len += bytes_field_len(Some(h.key.as_bytes()));
            body_len += bytes_field_len(h.value.as_deref());
        }

        let r = &mut self.buf;
        put_varint(r, body_len as i32);
        r.push(0); // record attributes: unused in v2
        put_varlong(r, ts_delta);
        put_varint(r, offset_delta);
        put_bytes_field(r, key);
        put_bytes_field(r, value);
        put_varint(r, headers.len() as i32);
        for h in headers {
            put_bytes_field(r, Some(h.key.as_bytes()));
            put_bytes_field(r, h.value.as_deref());
        }
        self.count += 1;
    }

    /// Compresses the records with `codec` and writes the header with base offset 0.
    pub fn build(&self, codec: Compression, producer: ProducerIdentity) -> Bytes {
        self.build_at(0, codec, producer)
    }

    /// Like [`build`](Self::build), with the given base offset already stamped.
    pub fn build_at(
        &self,
        base_offset: i64,
        codec: Compression,
        producer: ProducerIdentity,
    ) -> Bytes {
        let records = &self.buf[HEADER_LEN..];
        let mut out = match codec {
            Compression::None => {
                let mut out = Vec::with_capacity(self.buf.len());
                out.extend_from_slice(&self.buf);
                out
            }
            other => self.compressed(other, records),
        };
        self.write_header(&mut out, base_offset, codec, producer);
        Bytes::from(out)
    }

    /// Like [`build`](Self::build), consuming the builder: an uncompressed batch is
    /// finished in the builder's own buffer, without copying the records.
    pub fn finish(self, codec: Compression, producer: ProducerIdentity) -> Bytes {
        self.finish_with_spare(codec, producer).0
    }

    /// [`finish`](Self::finish), also handing back the builder's buffer when the records
    /// were compressed into another one, so that it can be reused.
    pub fn finish_with_spare(
        mut self,
        codec: Compression,
        producer: ProducerIdentity,
    ) -> (Bytes, Option<Vec<u8>>) {
        let (mut out, spare) = match codec {
            Compression::None => (std::mem::take(&mut self.buf), None),
            other => {
                let out = self.compressed(other, &self.buf[HEADER_LEN..]);
                (out, Some(std::mem::take(&mut self.buf)))
            }
        };
        self.write_header(&mut out, 0, codec, producer);
        (Bytes::from(out), spare)
    }

    /// A buffer of `HEADER_LEN` placeholder bytes followed by the compressed records.
    fn compressed(&self, codec: Compression, records: &[u8]) -> Vec<u8> {
        let body = compress(codec, records);
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(&body);
        out
    }

    /// Fills the first `HEADER_LEN` bytes of `out` (whose records follow) and the CRC.
    fn write_header(
        &self,
        out: &mut [u8],
        base_offset: i64,
        codec: Compression,
        producer: ProducerIdentity,
    ) {
        let payload_len = out.len() - HEADER_LEN;
        let base_ts = self.base_timestamp.unwrap_or(0);
        let mut h = &mut out[..HEADER_LEN];
        h.put_i64(base_offset);
        h.put_i32((HEADER_LEN - LOG_OVERHEAD + payload_len) as i32);
        h.put_i32(-1);
        h.put_i8(MAGIC);
        h.put_u32(0); // CRC, filled below
        h.put_i16(codec.id());
        h.put_i32(self.last_offset_delta.unwrap_or(0));
        h.put_i64(base_ts);
        h.put_i64(self.max_timestamp.max(base_ts));
        h.put_i64(producer.producer_id);
        h.put_i16(producer.producer_epoch);
        h.put_i32(producer.base_sequence);
        h.put_i32(self.count);
        debug_assert!(h.is_empty(), "the header fields fill HEADER_LEN exactly");
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Forgets the records so the builder's buffer can be reused.
    pub fn clear(&mut self) {
        self.buf.truncate(HEADER_LEN);
        self.count = 0;
        self.last_offset_delta = None;
        self.base_timestamp = None;
        self.max_timestamp = -1;
    }
}

fn bytes_field_len(field: Option<&[u8]>) -> usize {
    match field {
        None => 1,
        Some(b) => varlong_len(b.len() as i64) + b.len(),
    }
}

fn put_bytes_field(buf: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{check_records, decode_records, set_base_offset, validate};
    use proptest::prelude::*;

    /// Timestamp, key, value and headers of one generated record.
    type ArbRecord = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn arb_record() -> impl Strategy<Value = ArbRecord> {
        (
            0i64..1 << 42,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
            proptest::collection::vec(
                (
                    "[a-z]{0,8}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
                ),
                0..3,
            ),
        )
    }

    fn arb_codec() -> impl Strategy<Value = Compression> {
        proptest::sample::select(Compression::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn batches_round_trip(
            records in proptest::collection::vec(arb_record(), 1..20),
            codec in arb_codec(),
            base in 0i64..1 << 40,
        ) {
            let mut b = BatchBuilder::new();
            for (ts, k, v, hs) in &records {
                let headers: Vec<Header> = hs
                    .iter()
                    .map(|(k, v)| Header { key: k.clone(), value: v.clone().map(Bytes::from) })
                    .collect();
                b.push(*ts, k.as_deref(), v.as_deref(), &headers);
            }
            let producer = ProducerIdentity { producer_id: 7, producer_epoch: 1, base_sequence: 3 };
            let built = b.build(codec, producer);
            // Finishing in place gives the same bytes as building a copy.
            prop_assert_eq!(&b.finish(codec, producer), &built);
            let mut bytes = built.to_vec();
            set_base_offset(&mut bytes, base);
            let bytes = Bytes::from(bytes);
            let header = validate(&bytes).expect("valid");
            prop_assert_eq!(header.record_count as usize, records.len());
            prop_assert_eq!(header.compression().ok(), Some(codec));
            prop_assert_eq!(header.last_offset(), base + records.len() as i64 - 1);
            check_records(&bytes).expect("records check out");
            let decoded = decode_records(&bytes).expect("decodes");
            for (i, (r, (ts, k, v, hs))) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(r.offset, base + i as i64);
                prop_assert_eq!(r.timestamp, *ts);
                prop_assert_eq!(r.key.as_deref(), k.as_deref());
                prop_assert_eq!(r.value.as_deref(), v.as_deref());
                prop_assert_eq!(r.headers.len(), hs.len());
            }
        }

    }
}
