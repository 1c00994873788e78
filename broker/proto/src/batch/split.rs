//! Walking a buffer of back-to-back batches by their length fields.

use bytes::Bytes;

use super::{BatchError, BatchHeader};

/// Splits a buffer of back-to-back batches, yielding each batch's header and bytes.
///
/// The split is by the length fields only; call [`validate`](super::validate) on each
/// piece to check its CRC.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, ProducerIdentity};

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
