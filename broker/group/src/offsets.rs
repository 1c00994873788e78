//! Committed offsets as records of the internal compacted topic `__consumer_offsets`.
//!
//! Each commit becomes one record whose key names the group, topic and partition, so
//! compaction keeps only the latest commit per partition; a record without a value (a
//! tombstone) deletes the commit. At startup the server replays the topic into
//! [`GroupCoordinator::load`](crate::GroupCoordinator::load).
//!
//! ```text
//! key:   u8 kind = 1 | uvarint len | group_id | uvarint len | topic | uvarint partition
//! value: u8 version = 0 | zigzag varint offset | uvarint commit_time_ms
//!        | uvarint len | metadata
//! ```
//!
//! Strings are UTF-8. The leading kind byte leaves room for other record kinds (such as
//! group membership) in the same topic; [`OffsetRecordError::UnknownKind`] lets a reader
//! skip kinds it does not know.

use crate::partition::TopicPartition;

/// Key kind of a committed offset.
const KIND_OFFSET: u8 = 1;
/// Value layout version of a committed offset.
const VALUE_V0: u8 = 0;

/// The committed position of a group on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset the group will read.
    pub offset: i64,
    /// The committer's free text.
    pub metadata: String,
    /// The coordinator's clock when the commit was accepted.
    pub commit_time_ms: u64,
}

/// A commit (or its deletion) as stored in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub group_id: String,
    pub partition: TopicPartition,
    /// `None` deletes the group's commit for the partition.
    pub value: Option<OffsetValue>,
}

/// Why a stored record does not decode as a committed offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetRecordError {
    #[error("offset record key has kind {0}, which this broker does not know; skip the record")]
    UnknownKind(u8),
    #[error("offset record value has version {0}, which this broker does not know")]
    UnknownVersion(u8),
    #[error("offset record {part} is truncated at {field}; the record is corrupt")]
    Truncated {
        part: &'static str,
        field: &'static str,
    },
    #[error("offset record {part} has {extra} bytes after its last field; the record is corrupt")]
    TrailingBytes { part: &'static str, extra: usize },
    #[error("offset record {part} field {field} is not valid UTF-8; the record is corrupt")]
    BadUtf8 {
        part: &'static str,
        field: &'static str,
    },
    #[error(
        "offset record {part} field {field} holds an out-of-range number; the record is corrupt"
    )]
    BadNumber {
        part: &'static str,
        field: &'static str,
    },
}

impl OffsetRecord {
    /// A commit of `value` for the group on `partition`.
    pub fn commit(group_id: &str, partition: TopicPartition, value: OffsetValue) -> Self {
        OffsetRecord {
            group_id: group_id.to_string(),
            partition,
            value: Some(value),
        }
    }

    /// A tombstone deleting the group's commit on `partition`.
    pub fn tombstone(group_id: &str, partition: TopicPartition) -> Self {
        OffsetRecord {
            group_id: group_id.to_string(),
            partition,
            value: None,
        }
    }

    /// The record's key and value as stored in `__consumer_offsets`.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::with_capacity(
            1 + self.group_id.len() + self.partition.topic.len() + 3 * MAX_UVARINT,
        );
        key.push(KIND_OFFSET);
        put_bytes(&mut key, self.group_id.as_bytes());
        put_bytes(&mut key, self.partition.topic.as_bytes());
        put_uvarint(&mut key, u64::from(self.partition.partition));

        let value = self.value.as_ref().map(|v| {
            let mut out = Vec::with_capacity(1 + 3 * MAX_UVARINT + v.metadata.len());
            out.push(VALUE_V0);
            // Zig-zag keeps small negative sentinels (should one ever be stored) short.
            put_uvarint(&mut out, ((v.offset << 1) ^ (v.offset >> 63)) as u64);
            put_uvarint(&mut out, v.commit_time_ms);
            put_bytes(&mut out, v.metadata.as_bytes());
            out
        });
        (key, value)
    }

    /// Reads a record back from its stored key and value.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, OffsetRecordError> {
        let mut k = Reader {
            rest: key,
            part: "key",
        };
        let kind = k.byte("kind")?;
        if kind != KIND_OFFSET {
            return Err(OffsetRecordError::UnknownKind(kind));
        }
        let group_id = k.string("group_id")?;
        let topic = k.string("topic")?;
        let partition =
            u32::try_from(k.uvarint("partition")?).map_err(|_| OffsetRecordError::BadNumber {
                part: "key",
                field: "partition",
            })?;
        k.finish()?;

        let value = match value {
            None => None,
            Some(bytes) => {
                let mut v = Reader {
                    rest: bytes,
                    part: "value",
                };
                let version = v.byte("version")?;
                if version != VALUE_V0 {
                    return Err(OffsetRecordError::UnknownVersion(version));
                }
                let zigzag = v.uvarint("offset")?;
                let offset = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
                let commit_time_ms = v.uvarint("commit_time_ms")?;
                let metadata = v.string("metadata")?;
                v.finish()?;
                Some(OffsetValue {
                    offset,
                    metadata,
                    commit_time_ms,
                })
            }
        };
        Ok(OffsetRecord {
            group_id,
            partition: TopicPartition::new(topic, partition),
            value,
        })
    }
}

/// The most bytes a u64 takes as an unsigned LEB128 varint.
const MAX_UVARINT: usize = 10;

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over one part (key or value) of a record, naming the field that failed.
struct Reader<'a> {
    rest: &'a [u8],
    part: &'static str,
}

impl<'a> Reader<'a> {
    fn truncated(&self, field: &'static str) -> OffsetRecordError {
        OffsetRecordError::Truncated {
            part: self.part,
            field,
        }
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, OffsetRecordError> {
        let (&b, rest) = self.rest.split_first().ok_or(self.truncated(field))?;
        self.rest = rest;
        Ok(b)
    }

    fn uvarint(&mut self, field: &'static str) -> Result<u64, OffsetRecordError> {
        let mut value = 0u64;
        for i in 0..MAX_UVARINT {
            let b = self.byte(field)?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if i == MAX_UVARINT - 1 && bits > 1 {
                break;
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(OffsetRecordError::BadNumber {
            part: self.part,
            field,
        })
    }

    fn string(&mut self, field: &'static str) -> Result<String, OffsetRecordError> {
        let len = usize::try_from(self.uvarint(field)?).map_err(|_| self.truncated(field))?;
        if len > self.rest.len() {
            return Err(self.truncated(field));
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        String::from_utf8(bytes.to_vec()).map_err(|_| OffsetRecordError::BadUtf8 {
            part: self.part,
            field,
        })
    }

    fn finish(self) -> Result<(), OffsetRecordError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(OffsetRecordError::TrailingBytes {
                part: self.part,
                extra: self.rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = OffsetRecord> {
        (
            ".{0,40}",
            "[A-Za-z0-9._-]{1,40}",
            any::<u32>(),
            prop::option::of((any::<i64>(), ".{0,60}", any::<u64>())),
        )
            .prop_map(|(group_id, topic, partition, value)| OffsetRecord {
                group_id,
                partition: TopicPartition::new(topic, partition),
                value: value.map(|(offset, metadata, commit_time_ms)| OffsetValue {
                    offset,
                    metadata,
                    commit_time_ms,
                }),
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(r in record()) {
            let (key, value) = r.encode();
            prop_assert_eq!(OffsetRecord::decode(&key, value.as_deref())?, r);
        }

        /// Keys are what compaction dedups on: equal exactly when group, topic and
        /// partition are equal, whatever the value.
        #[test]
        fn keys_identify_the_partition(a in record(), b in record()) {
            let same = a.group_id == b.group_id && a.partition == b.partition;
            prop_assert_eq!(a.encode().0 == b.encode().0, same);
        }

        /// Any prefix of a valid record, or any garbage, is an error and never a panic.
        #[test]
        fn damaged_records_are_errors(r in record(), cut in any::<prop::sample::Index>(), junk in prop::collection::vec(any::<u8>(), 0..40)) {
            let (key, value) = r.encode();
            let short = &key[..cut.index(key.len())];
            prop_assert!(OffsetRecord::decode(short, value.as_deref()).is_err());
            let _ = OffsetRecord::decode(&junk, Some(&junk));
        }
    }

    #[test]
    fn unknown_kinds_are_named() {
        assert_eq!(
            OffsetRecord::decode(&[9, 0], None),
            Err(OffsetRecordError::UnknownKind(9))
        );
    }

    #[test]
    fn a_commit_is_compact() {
        let r = OffsetRecord::commit(
            "g",
            TopicPartition::new("t", 3),
            OffsetValue {
                offset: 42,
                metadata: String::new(),
                commit_time_ms: 1_700_000_000_000,
            },
        );
        let (key, value) = r.encode();
        assert_eq!(key, [1, 1, b'g', 1, b't', 3]);
        assert_eq!(value.map(|v| v.len()), Some(1 + 1 + 6 + 1));
    }
}
