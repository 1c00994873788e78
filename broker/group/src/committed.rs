//! A group's committed offsets, and the two steps a commit goes through: accepted
//! (pending) and durable (visible).
//!
//! A commit is visible to offset fetches, descriptions and lag only once its records are
//! durable in `__consumer_offsets`; otherwise a reader could act on an offset that a
//! restart would lose. So [`GroupCoordinator::commit`](crate::GroupCoordinator::commit)
//! only *accepts* a commit, holding its offsets under a [`CommitTicket`]; the server
//! appends the records and then settles the ticket with
//! [`complete_commit`](crate::GroupCoordinator::complete_commit) (the offsets become
//! visible) or [`abort_commit`](crate::GroupCoordinator::abort_commit) (they are dropped
//! and the previous ones stay). This is how Kafka's group coordinator treats its pending
//! offset commits.
//!
//! Concurrent commits to one partition: tickets are numbered in the order the
//! coordinator accepted them, and a completed commit replaces the visible offset only if
//! it was accepted later than the commit that offset came from. So when two commits are
//! both durable, the later-accepted one wins whatever order they complete in, and an
//! aborted commit never hides one that completed. Replaying `__consumer_offsets` agrees
//! with this as long as the server appends a group's records in acceptance order, which
//! it does by holding one lock per offsets partition from acceptance to settlement.

use std::collections::BTreeMap;

use crate::offsets::{OffsetRecord, OffsetValue};
use crate::partition::TopicPartition;

/// Names a commit the coordinator accepted but holds back until the server reports
/// whether its records became durable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitTicket {
    pub(crate) group_id: String,
    /// Acceptance order across the coordinator; later commits have larger numbers.
    pub(crate) seq: u64,
}

impl CommitTicket {
    /// The group the commit belongs to.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }
}

/// An accepted commit: the records the server must append to `__consumer_offsets`, and
/// the ticket to settle it with once the append succeeded or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a pending commit stays invisible until it is completed or aborted"]
pub struct PendingCommit {
    pub ticket: CommitTicket,
    pub records: Vec<OffsetRecord>,
}

/// A visible offset and the acceptance number of the commit it came from.
#[derive(Debug, Clone)]
struct Durable {
    value: OffsetValue,
    seq: u64,
}

/// One group's offsets: the durable ones readers see, and accepted ones waiting for
/// their append.
#[derive(Debug, Default)]
pub(crate) struct CommittedOffsets {
    durable: BTreeMap<TopicPartition, Durable>,
    pending: BTreeMap<u64, Vec<(TopicPartition, OffsetValue)>>,
}

impl CommittedOffsets {
    /// The visible offset of a partition.
    pub fn get(&self, partition: &TopicPartition) -> Option<&OffsetValue> {
        self.durable.get(partition).map(|d| &d.value)
    }

    /// Visible offsets, sorted by partition.
    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &OffsetValue)> {
        self.durable.iter().map(|(tp, d)| (tp, &d.value))
    }

    /// Partitions with a visible offset, sorted.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.durable.keys()
    }

    /// Whether there is nothing to keep: no visible offset and no commit in flight.
    pub fn is_empty(&self) -> bool {
        self.durable.is_empty() && self.pending.is_empty()
    }

    /// Holds a commit's offsets under `seq` until it is completed or aborted.
    pub fn hold(&mut self, seq: u64, offsets: Vec<(TopicPartition, OffsetValue)>) {
        self.pending.insert(seq, offsets);
    }

    /// Makes a held commit visible, partition by partition, unless a commit accepted
    /// later is visible already. Unknown numbers (settled already) change nothing.
    pub fn complete(&mut self, seq: u64) {
        let Some(offsets) = self.pending.remove(&seq) else {
            return;
        };
        for (partition, value) in offsets {
            match self.durable.get(&partition) {
                Some(current) if current.seq > seq => {}
                _ => {
                    self.durable.insert(partition, Durable { value, seq });
                }
            }
        }
    }

    /// Drops a held commit; the visible offsets stay as they are.
    pub fn abort(&mut self, seq: u64) {
        self.pending.remove(&seq);
    }

    /// Sets a partition's offset from a durable record (`None` deletes it), as accepted
    /// at `seq`.
    pub fn load(&mut self, partition: TopicPartition, value: Option<OffsetValue>, seq: u64) {
        match value {
            Some(value) => {
                self.durable.insert(partition, Durable { value, seq });
            }
            None => {
                self.durable.remove(&partition);
            }
        }
    }

    /// Every partition with a visible offset or a commit in flight, sorted: what a
    /// deletion must write tombstones for.
    pub fn into_all_partitions(self) -> Vec<TopicPartition> {
        let mut all: Vec<TopicPartition> = self
            .durable
            .into_keys()
            .chain(self.pending.into_values().flatten().map(|(tp, _)| tp))
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            metadata: String::new(),
            commit_time_ms: 0,
        }
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    fn visible(offsets: &CommittedOffsets) -> Option<i64> {
        offsets.get(&tp()).map(|v| v.offset)
    }

    #[test]
    fn a_held_commit_is_invisible_until_completed() {
        let mut offsets = CommittedOffsets::default();
        offsets.hold(1, vec![(tp(), value(5))]);
        assert_eq!(visible(&offsets), None);
        assert!(!offsets.is_empty(), "a commit in flight keeps the group");
        offsets.complete(1);
        assert_eq!(visible(&offsets), Some(5));
    }

    #[test]
    fn an_aborted_commit_leaves_the_previous_offset() {
        let mut offsets = CommittedOffsets::default();
        offsets.hold(1, vec![(tp(), value(5))]);
        offsets.complete(1);
        offsets.hold(2, vec![(tp(), value(9))]);
        offsets.abort(2);
        assert_eq!(visible(&offsets), Some(5));
        offsets.complete(2);
        assert_eq!(
            visible(&offsets),
            Some(5),
            "an aborted ticket cannot complete"
        );
    }

    #[test]
    fn the_later_accepted_commit_wins_in_either_completion_order() {
        for later_first in [false, true] {
            let mut offsets = CommittedOffsets::default();
            offsets.hold(1, vec![(tp(), value(5))]);
            offsets.hold(2, vec![(tp(), value(9))]);
            if later_first {
                offsets.complete(2);
                offsets.complete(1);
            } else {
                offsets.complete(1);
                offsets.complete(2);
            }
            assert_eq!(visible(&offsets), Some(9), "later first: {later_first}");
        }
    }

    #[test]
    fn an_aborted_later_commit_does_not_hide_an_earlier_durable_one() {
        let mut offsets = CommittedOffsets::default();
        offsets.hold(1, vec![(tp(), value(5))]);
        offsets.hold(2, vec![(tp(), value(9))]);
        offsets.abort(2);
        offsets.complete(1);
        assert_eq!(visible(&offsets), Some(5));
        assert!(offsets.pending.is_empty());
    }

    #[test]
    fn deletion_covers_partitions_still_in_flight() {
        let mut offsets = CommittedOffsets::default();
        offsets.load(tp(), Some(value(1)), 0);
        offsets.hold(
            1,
            vec![(TopicPartition::new("t", 1), value(2)), (tp(), value(3))],
        );
        assert_eq!(
            offsets.into_all_partitions(),
            [tp(), TopicPartition::new("t", 1)]
        );
    }
}
