//! Zig-zag variable-length integers, as used inside Kafka's record format.
//!
//! A record's fields are protobuf-style varints over zig-zag encoded signed values, so
//! small negative numbers (such as -1 for "no key") take one byte.

use crate::batch::BatchError;

/// Appends `value` zig-zag encoded as a varint of at most 5 bytes.
pub fn put_varint(buf: &mut Vec<u8>, value: i32) {
    put_varlong(buf, i64::from(value));
}

/// Appends `value` zig-zag encoded as a varint of at most 10 bytes.
pub fn put_varlong(buf: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// How many bytes `put_varlong(value)` writes.
pub fn varlong_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    let bits = 64 - v.leading_zeros() as usize;
    bits.max(1).div_ceil(7)
}

/// Reads a zig-zag varlong from the front of `input`, advancing it.
pub fn get_varlong(input: &mut &[u8]) -> Result<i64, BatchError> {
    let mut result: u64 = 0;
    for i in 0..10 {
        let Some((&byte, rest)) = input.split_first() else {
            return Err(BatchError::Malformed(
                "varint runs past the end of the record",
            ));
        };
        *input = rest;
        result |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((result >> 1) as i64) ^ -((result & 1) as i64));
        }
    }
    Err(BatchError::Malformed("varint longer than 10 bytes"))
}

/// Reads a zig-zag varint that must fit an `i32`.
pub fn get_varint(input: &mut &[u8]) -> Result<i32, BatchError> {
    let v = get_varlong(input)?;
    i32::try_from(v).map_err(|_| BatchError::Malformed("varint does not fit 32 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            prop_assert_eq!(buf.len(), varlong_len(v));
            let mut slice = buf.as_slice();
            prop_assert_eq!(get_varlong(&mut slice).ok(), Some(v));
            prop_assert!(slice.is_empty());
        }
    }

    #[test]
    fn small_negatives_are_one_byte() {
        let mut buf = Vec::new();
        put_varint(&mut buf, -1);
        assert_eq!(buf, [1]);
    }

    #[test]
    fn truncated_varint_is_an_error() {
        let mut slice: &[u8] = &[0x80, 0x80];
        assert!(get_varlong(&mut slice).is_err());
    }
}
