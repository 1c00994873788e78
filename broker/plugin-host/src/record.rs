//! The host's view of a record and its encoding into the flat WIT batch.

use quiver_proto::{Header, Record};

use crate::bindings::wit::{Header as WitHeader, Parts, RecordBatch, Span};

/// A record as a plugin sees it, borrowed from wherever the broker holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Offset in the partition; -1 when not assigned yet (before a produce appends).
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    /// `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    pub headers: &'a [Header],
}

impl<'a> From<&'a Record> for RecordView<'a> {
    fn from(r: &'a Record) -> Self {
        RecordView {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &r.headers,
        }
    }
}

/// The batch exceeds what 32-bit spans can address.
#[derive(Debug)]
pub(crate) struct TooLarge;

/// Builds the flat batch of `records`, with only the `parts` the plugin asked for.
pub(crate) fn encode(records: &[RecordView<'_>], parts: Parts) -> Result<RecordBatch, TooLarge> {
    let n = records.len();
    let (want_keys, want_values, want_headers) = (
        parts.contains(Parts::KEYS),
        parts.contains(Parts::VALUES),
        parts.contains(Parts::HEADERS),
    );
    let mut data_len = 0usize;
    for r in records {
        if want_keys {
            data_len += r.key.map_or(0, <[u8]>::len);
        }
        if want_values {
            data_len += r.value.map_or(0, <[u8]>::len);
        }
        if want_headers {
            for h in r.headers {
                data_len += h.key.len() + h.value.as_ref().map_or(0, |v| v.len());
            }
        }
    }
    let mut batch = RecordBatch {
        data: Vec::with_capacity(data_len),
        offsets: records.iter().map(|r| r.offset).collect(),
        timestamps: records.iter().map(|r| r.timestamp).collect(),
        keys: Vec::with_capacity(if want_keys { n } else { 0 }),
        values: Vec::with_capacity(if want_values { n } else { 0 }),
        headers: Vec::new(),
        header_ranges: Vec::with_capacity(if want_headers { n } else { 0 }),
    };
    for r in records {
        if want_keys {
            let span = r.key.map(|k| push(&mut batch.data, k)).transpose()?;
            batch.keys.push(span);
        }
        if want_values {
            let span = r.value.map(|v| push(&mut batch.data, v)).transpose()?;
            batch.values.push(span);
        }
        if want_headers {
            let first = u32::try_from(batch.headers.len()).map_err(|_| TooLarge)?;
            for h in r.headers {
                let name = push(&mut batch.data, h.key.as_bytes())?;
                let value = h
                    .value
                    .as_ref()
                    .map(|v| push(&mut batch.data, v))
                    .transpose()?;
                batch.headers.push(WitHeader { name, value });
            }
            let len = u32::try_from(r.headers.len()).map_err(|_| TooLarge)?;
            batch.header_ranges.push(Span { offset: first, len });
        }
    }
    Ok(batch)
}

fn push(data: &mut Vec<u8>, bytes: &[u8]) -> Result<Span, TooLarge> {
    let offset = u32::try_from(data.len()).map_err(|_| TooLarge)?;
    let len = u32::try_from(bytes.len()).map_err(|_| TooLarge)?;
    offset.checked_add(len).ok_or(TooLarge)?;
    data.extend_from_slice(bytes);
    Ok(Span { offset, len })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn span_bytes(data: &[u8], s: Span) -> &[u8] {
        &data[s.offset as usize..(s.offset + s.len) as usize]
    }

    #[test]
    fn every_part_round_trips_through_spans() {
        let headers = vec![
            Header {
                key: "v".into(),
                value: Some(Bytes::from_static(b"7")),
            },
            Header {
                key: "empty".into(),
                value: None,
            },
        ];
        let records = [
            RecordView {
                offset: 5,
                timestamp: 10,
                key: Some(b"k1"),
                value: Some(b"v1"),
                headers: &headers,
            },
            RecordView {
                offset: 6,
                timestamp: 11,
                key: None,
                value: None,
                headers: &[],
            },
        ];
        let b = encode(&records, Parts::all()).expect("fits");
        assert_eq!(b.offsets, vec![5, 6]);
        assert_eq!(b.timestamps, vec![10, 11]);
        assert_eq!(span_bytes(&b.data, b.keys[0].expect("key")), b"k1");
        assert!(b.keys[1].is_none());
        assert_eq!(span_bytes(&b.data, b.values[0].expect("value")), b"v1");
        assert!(b.values[1].is_none());
        assert_eq!((b.header_ranges[0].offset, b.header_ranges[0].len), (0, 2));
        assert_eq!((b.header_ranges[1].offset, b.header_ranges[1].len), (2, 0));
        assert_eq!(span_bytes(&b.data, b.headers[0].name), b"v");
        assert_eq!(
            span_bytes(&b.data, b.headers[0].value.expect("value")),
            b"7"
        );
        assert!(b.headers[1].value.is_none());
    }

    #[test]
    fn parts_not_asked_for_are_left_out() {
        let records = [RecordView {
            offset: -1,
            timestamp: 0,
            key: Some(b"k"),
            value: Some(&[0; 1000]),
            headers: &[],
        }];
        let b = encode(&records, Parts::KEYS).expect("fits");
        assert_eq!(b.data, b"k");
        assert!(b.values.is_empty() && b.header_ranges.is_empty());
    }
}
