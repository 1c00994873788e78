//! Idempotent producers: per producer id, the current epoch and the last few batches it
//! appended, so a retried batch is recognised and a lost one is noticed.
//!
//! The state is not persisted: [`PartitionLog::open`](crate::PartitionLog::open) rebuilds
//! it from the batch headers of the log.

use std::collections::HashMap;

use quiver_proto::batch::BatchHeader;

use crate::error::StorageError;

/// How many recent batches per producer are remembered for duplicate detection: as many
/// as an idempotent producer may have in flight to one partition.
pub const CACHED_BATCHES: usize = quiver_proto::batch::MAX_IDEMPOTENT_IN_FLIGHT;

/// Where one batch of a producer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence numbers of the batch's first and last records.
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// Offsets the batch was stored at.
    pub base_offset: i64,
    pub last_offset: i64,
}

/// What the log knows about one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The newest epoch seen; older epochs are fenced.
    pub epoch: i16,
    /// The last batches appended under `epoch`, oldest first, at most [`CACHED_BATCHES`].
    pub batches: Vec<BatchMetadata>,
}

impl ProducerEntry {
    fn record(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == CACHED_BATCHES {
            self.batches.remove(0);
        }
        self.batches.push(batch);
    }
}

/// The sequence after `sequence`; sequences wrap from `i32::MAX` to 0.
fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

/// What to do with a request, once every batch in it was checked.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Append all batches.
    Append,
    /// Every batch was already appended: answer with these stored batches.
    Duplicate(Vec<BatchMetadata>),
}

/// State of every producer that has batches in the log.
#[derive(Debug, Default)]
pub(crate) struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    pub(crate) fn get(&self, producer_id: i64) -> Option<ProducerEntry> {
        self.producers.get(&producer_id).cloned()
    }

    /// Checks the batches of one request in order, as if each earlier one had been
    /// appended. Changes nothing; call [`record`](Self::record) after the append.
    pub(crate) fn check(&self, headers: &[BatchHeader]) -> Result<Verdict, StorageError> {
        let mut staged: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut duplicates = Vec::new();
        let mut fresh = 0usize;
        for header in headers.iter().filter(|h| h.producer_id >= 0) {
            let pid = header.producer_id;
            let entry = match staged.get(&pid) {
                Some(entry) => Some(entry),
                None => self.producers.get(&pid),
            };
            let first = header.base_sequence;
            let last = header.last_sequence();
            let expected = match entry {
                None => 0,
                Some(e) if header.producer_epoch < e.epoch => {
                    return Err(StorageError::InvalidProducerEpoch {
                        producer_id: pid,
                        current: e.epoch,
                        got: header.producer_epoch,
                    });
                }
                Some(e) if header.producer_epoch > e.epoch => 0,
                Some(e) => {
                    if let Some(stored) = e
                        .batches
                        .iter()
                        .find(|b| b.first_sequence == first && b.last_sequence == last)
                    {
                        duplicates.push(*stored);
                        continue;
                    }
                    e.batches
                        .last()
                        .map_or(0, |b| next_sequence(b.last_sequence))
                }
            };
            if first != expected {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: pid,
                    expected,
                    got: first,
                });
            }
            fresh += 1;
            // Offsets are unknown until the append; sequence checks need only sequences.
            let mut next = entry.cloned().unwrap_or(ProducerEntry {
                epoch: header.producer_epoch,
                batches: Vec::new(),
            });
            next.record(
                header.producer_epoch,
                BatchMetadata {
                    first_sequence: first,
                    last_sequence: last,
                    base_offset: -1,
                    last_offset: -1,
                },
            );
            staged.insert(pid, next);
        }
        if duplicates.is_empty() {
            return Ok(Verdict::Append);
        }
        if fresh == 0 && duplicates.len() == headers.len() {
            return Ok(Verdict::Duplicate(duplicates));
        }
        // A retry mixed with new batches cannot be half appended; the producer must resend
        // from the batch after its last acknowledged one.
        let header = headers.iter().find(|h| h.producer_id >= 0).copied().ok_or(
            StorageError::OutOfOrderSequence {
                producer_id: -1,
                expected: 0,
                got: 0,
            },
        )?;
        let expected = self
            .producers
            .get(&header.producer_id)
            .and_then(|e| e.batches.last())
            .map_or(0, |b| next_sequence(b.last_sequence));
        Err(StorageError::OutOfOrderSequence {
            producer_id: header.producer_id,
            expected,
            got: header.base_sequence,
        })
    }

    /// Records a batch that is now in the log (after an append, or while replaying the log
    /// at open).
    pub(crate) fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 {
            return;
        }
        let batch = BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
        };
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert(ProducerEntry {
                epoch: header.producer_epoch,
                batches: Vec::new(),
            });
        // While replaying, a batch of an older epoch (left behind by compaction) must not
        // roll the epoch back.
        if header.producer_epoch >= entry.epoch {
            entry.record(header.producer_epoch, batch);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.producers.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut b = BatchBuilder::new();
        for i in 0..records {
            b.push(i as i64, None, Some(b"v"), &[]);
        }
        let bytes = b.build_at(
            base_offset,
            Compression::None,
            ProducerIdentity {
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
            },
        );
        batch::validate(&bytes).unwrap()
    }

    #[test]
    fn sequences_must_follow_and_wrap() {
        let mut table = ProducerStateTable::default();
        assert!(matches!(
            table.check(&[header(1, 0, 3, 1, 0)]),
            Err(StorageError::OutOfOrderSequence {
                expected: 0,
                got: 3,
                ..
            })
        ));
        let first = header(1, 0, 0, 3, 0);
        assert!(matches!(table.check(&[first]), Ok(Verdict::Append)));
        table.record(&first);
        assert!(matches!(
            table.check(&[header(1, 0, 4, 1, 3)]),
            Err(StorageError::OutOfOrderSequence {
                expected: 3,
                got: 4,
                ..
            })
        ));
        // Two batches in one request are checked against each other.
        assert!(matches!(
            table.check(&[header(1, 0, 3, 2, 3), header(1, 0, 5, 1, 5)]),
            Ok(Verdict::Append)
        ));
        assert_eq!(next_sequence(i32::MAX), 0);
    }

    #[test]
    fn only_the_last_cached_batches_are_duplicates() {
        let mut table = ProducerStateTable::default();
        let total = CACHED_BATCHES as i32 + 2;
        for i in 0..total {
            table.record(&header(9, 2, i, 1, i64::from(i)));
        }
        let kept = table.get(9).unwrap();
        assert_eq!(kept.batches.len(), CACHED_BATCHES);
        // The oldest batch still remembered is a duplicate; the one before it is not.
        assert!(matches!(
            table.check(&[header(9, 2, 2, 1, 0)]),
            Ok(Verdict::Duplicate(ref stored)) if stored[0].base_offset == 2
        ));
        assert!(matches!(
            table.check(&[header(9, 2, 1, 1, 0)]),
            Err(StorageError::OutOfOrderSequence { expected, .. }) if expected == total
        ));
        assert!(matches!(
            table.check(&[header(9, 1, total, 1, 0)]),
            Err(StorageError::InvalidProducerEpoch {
                current: 2,
                got: 1,
                ..
            })
        ));
        // A new epoch starts over at sequence 0.
        assert!(matches!(
            table.check(&[header(9, 3, 0, 1, 0)]),
            Ok(Verdict::Append)
        ));
        assert!(table.check(&[header(9, 3, 7, 1, 0)]).is_err());
    }
}
