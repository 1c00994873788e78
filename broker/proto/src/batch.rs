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

use bytes::{BufMut, Bytes};

use crate::record::{Header, Record};
use crate::varint::{get_varint, get_varlong, put_varint, put_varlong, varlong_len};

/// Size of the fixed batch header that precedes the records.
pub const HEADER_LEN: usize = 61;
/// Bytes of the base offset that starts every batch: the broker assigns it, so the CRC
/// does not cover it.
pub const BASE_OFFSET_LEN: usize = 8;
/// Bytes before the `batch length` field ends: base offset plus the length itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format version Quiver reads and writes.
pub const MAGIC: i8 = 2;

const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const CODEC_MASK: i16 = 0x07;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

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

/// The compression codec stored in a batch's attribute bits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The id Kafka uses for this codec in the attribute bits.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(id: i16) -> Result<Self, BatchError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnknownCodec(other)),
        })
    }

    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!(
                "unknown compression '{other}': expected none, gzip, snappy, lz4 or zstd"
            )),
        }
    }
}

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
/// whose records were all superseded (see [`empty_like`]). Readers of a log use this and
/// skip such a batch's offsets.
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

/// A batch with no records that stands in for the batch of `header`: the same offsets,
/// leader epoch, producer identity and so the same sequence range. The codec is cleared,
/// and both timestamps are -1: having no records, it has no time, so a look-up by
/// timestamp never lands on it and it extends no segment's retention. Compaction writes one when every record of an idempotent producer's
/// last batch was superseded: the broker rebuilds producer state from batch headers
/// when it opens a log, and without it would forget the producer and refuse its next
/// sequence number. Kafka keeps such a batch for the same reason.
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

/// Splits a buffer of back-to-back batches, yielding each batch's header and bytes.
///
/// The split is by the length fields only; call [`validate`] on each piece to check its CRC.
/// A trailing fragment shorter than its declared length is reported as `Truncated`.
pub fn split(buf: &Bytes) -> BatchSplit<'_> {
    BatchSplit { buf, pos: 0 }
}

/// Iterator returned by [`split`].
#[derive(Debug)]
pub struct BatchSplit<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Iterator for BatchSplit<'_> {
    type Item = Result<(BatchHeader, Bytes), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.pos = self.buf.len();
                return Some(Err(e));
            }
        };
        let len = header.total_len();
        if len > rest.len() {
            self.pos = self.buf.len();
            return Some(Err(BatchError::Truncated {
                needed: len,
                available: rest.len(),
            }));
        }
        let bytes = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Some(Ok((header, bytes)))
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

/// Batches of one idempotent producer that may be in flight to one partition at once.
/// The broker remembers this many recent batches per producer, so that every batch a
/// producer may resend after a lost connection is recognised as a duplicate. Kafka
/// allows 5; Quiver's batches are ~1 MiB, and 5 of them do not keep a fast link busy
/// while each waits for its acknowledgement.
pub const MAX_IDEMPOTENT_IN_FLIGHT: usize = 16;

/// Identity of an idempotent producer, stamped into every batch it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerIdentity {
    /// A producer without idempotence.
    pub const NONE: ProducerIdentity = ProducerIdentity {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

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

/// Compresses a record block with the given codec.
pub fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(data);
            enc.finish().unwrap_or_default()
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .unwrap_or_default(),
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
            let _ = enc.write_all(data);
            enc.finish().unwrap_or_default()
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).unwrap_or_default(),
    }
}

/// Largest record block a compressed batch may expand to. Bounds a decompression bomb.
pub const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// Decompresses a record block. Snappy accepts both raw blocks and the xerial framing
/// Kafka's Java client writes.
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, BatchError> {
    use std::io::Read;
    let fail = |reason: String| BatchError::Decompression { codec, reason };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data)
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail(e.to_string()))?;
            check_bound(out, codec)
        }
        Compression::Snappy => decompress_snappy(data).map_err(fail),
        Compression::Lz4 => {
            let mut out = Vec::new();
            lz4_flex::frame::FrameDecoder::new(data)
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail(e.to_string()))?;
            check_bound(out, codec)
        }
        Compression::Zstd => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(data)
                .map_err(|e| fail(e.to_string()))?
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail(e.to_string()))?;
            check_bound(out, codec)
        }
    }
}

fn check_bound(out: Vec<u8>, codec: Compression) -> Result<Vec<u8>, BatchError> {
    if out.len() > MAX_DECOMPRESSED {
        return Err(BatchError::Decompression {
            codec,
            reason: format!("expands past {MAX_DECOMPRESSED} bytes"),
        });
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

fn decompress_snappy(data: &[u8]) -> Result<Vec<u8>, String> {
    let raw = |block: &[u8]| -> Result<Vec<u8>, String> {
        let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
        if len > MAX_DECOMPRESSED {
            return Err(format!("expands past {MAX_DECOMPRESSED} bytes"));
        }
        snap::raw::Decoder::new()
            .decompress_vec(block)
            .map_err(|e| e.to_string())
    };
    if !data.starts_with(XERIAL_MAGIC) {
        return raw(data);
    }
    // Xerial framing: 16-byte header, then blocks each prefixed by a 4-byte length.
    let mut rest = data.get(16..).ok_or("xerial header truncated")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or("xerial block length truncated")?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest.get(4..4 + len).ok_or("xerial block truncated")?;
        out.extend_from_slice(&raw(block)?);
        if out.len() > MAX_DECOMPRESSED {
            return Err(format!("expands past {MAX_DECOMPRESSED} bytes"));
        }
        rest = &rest[4 + len..];
    }
    Ok(out)
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

    #[test]
    fn split_reports_a_truncated_tail() {
        let mut b = BatchBuilder::new();
        b.push(5, None, Some(b"v"), &[]);
        let one = b.build(Compression::None, ProducerIdentity::NONE);
        let mut two = one.to_vec();
        two.extend_from_slice(&one[..one.len() - 3]);
        let two = Bytes::from(two);
        let pieces: Vec<_> = split(&two).collect();
        assert_eq!(pieces.len(), 2);
        assert!(pieces[0].is_ok());
        assert!(matches!(pieces[1], Err(BatchError::Truncated { .. })));
    }
}
