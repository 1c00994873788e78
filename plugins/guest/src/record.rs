//! Reading records out of the flat batch the broker sends.

use crate::bindings::wit;

/// The parts of a record a plugin reads; the broker leaves the others out of every
/// batch, which saves copying values into a plugin that routes by key.
pub use wit::Parts;

/// A batch of records as the broker passed it: one byte buffer and spans into it.
#[derive(Debug)]
pub struct Batch {
    raw: wit::RecordBatch,
}

impl Batch {
    /// Wraps the batch a world function received.
    pub fn new(raw: wit::RecordBatch) -> Batch {
        Batch { raw }
    }

    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.raw.offsets.len()
    }

    /// True when the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<Record<'_>> {
        (index < self.len()).then_some(Record {
            batch: &self.raw,
            index,
        })
    }

    /// Every record, in batch order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Record<'_>> {
        (0..self.len()).map(|index| Record {
            batch: &self.raw,
            index,
        })
    }
}

/// One record of a [`Batch`]. Parts the plugin did not ask for read as absent.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    batch: &'a wit::RecordBatch,
    index: usize,
}

impl<'a> Record<'a> {
    /// Position of the record in its batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Offset in the partition; -1 before the broker assigned one.
    pub fn offset(&self) -> i64 {
        self.batch.offsets.get(self.index).copied().unwrap_or(-1)
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.batch.timestamps.get(self.index).copied().unwrap_or(0)
    }

    /// The key, or `None` for a keyless record (or when keys were not asked for).
    pub fn key(&self) -> Option<&'a [u8]> {
        let span = self.batch.keys.get(self.index).copied().flatten()?;
        self.bytes(span)
    }

    /// The value, or `None` for a tombstone (or when values were not asked for).
    pub fn value(&self) -> Option<&'a [u8]> {
        let span = self.batch.values.get(self.index).copied().flatten()?;
        self.bytes(span)
    }

    /// The headers, in the order the producer wrote them.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let batch = self.batch;
        let range = batch.header_ranges.get(self.index).copied();
        let headers = range
            .and_then(|r| {
                let start = r.offset as usize;
                batch.headers.get(start..start.checked_add(r.len as usize)?)
            })
            .unwrap_or(&[]);
        headers.iter().map(move |h| {
            let name = slice(&batch.data, h.name)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("");
            (name, h.value.and_then(|v| slice(&batch.data, v)))
        })
    }

    /// The value of the first header called `name` that has a value.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, v)| *n == name && v.is_some())
            .and_then(|(_, v)| v)
    }

    fn bytes(&self, span: wit::Span) -> Option<&'a [u8]> {
        slice(&self.batch.data, span)
    }
}

// The broker only sends spans inside `data`; reading through `get` keeps a malformed
// batch from panicking the plugin all the same.
fn slice(data: &[u8], span: wit::Span) -> Option<&[u8]> {
    let start = span.offset as usize;
    data.get(start..start.checked_add(span.len as usize)?)
}
