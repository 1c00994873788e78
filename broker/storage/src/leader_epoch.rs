//! The leader-epoch cache: for every leader epoch that wrote to the log, the first offset
//! it wrote. A follower that comes back asks its leader where its last epoch ended, and
//! truncates what it holds past that point: batches written by a leader the rest of the
//! replicas never followed.
//!
//! The cache is checkpointed in `leader-epoch-checkpoint` (one `epoch start_offset`
//! entry per line, see [`checkpoint`](crate::checkpoint)). Every stored batch carries its
//! epoch in its header, so the cache can always be rebuilt from the log; the checkpoint
//! matters where the log lost information: compaction may remove the first batches of an
//! epoch, or all of them.

use quiver_proto::batch::BatchHeader;

use crate::checkpoint::{Checkpoint, CheckpointError};

/// The checkpoint file of the cache.
pub(crate) const EPOCH_CHECKPOINT: Checkpoint = Checkpoint {
    name: "leader-epoch-checkpoint",
    width: 2,
};

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries ascending in both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache rebuilt from the batches of a log, as [`EpochRuns`] summarised them.
    pub(crate) fn rebuilt(runs: &EpochRuns) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for run in &runs.runs {
            cache.assign(run.epoch, run.first_offset);
        }
        cache
    }

    /// The cache from its checkpoint entries, refused unless both columns ascend.
    pub(crate) fn from_checkpoint(
        entries: Vec<Vec<i64>>,
        path: &std::path::Path,
    ) -> Result<LeaderEpochCache, CheckpointError> {
        let mut cache = LeaderEpochCache::default();
        for entry in entries {
            let (epoch, start_offset) = match entry[..] {
                [epoch, start] => (i32::try_from(epoch).ok().filter(|e| *e >= 0), start),
                _ => (None, 0),
            };
            let ascending = cache
                .entries
                .last()
                .is_none_or(|last| Some(last.epoch) < epoch && last.start_offset < start_offset);
            match epoch {
                Some(epoch) if start_offset >= 0 && ascending => {
                    cache.entries.push(EpochEntry {
                        epoch,
                        start_offset,
                    });
                }
                _ => {
                    return Err(CheckpointError {
                        path: path.to_path_buf(),
                        reason: format!(
                            "entry {entry:?} is not an epoch and offset above the previous ones"
                        ),
                    });
                }
            }
        }
        Ok(cache)
    }

    /// The checkpoint entries of the cache.
    pub(crate) fn to_checkpoint(&self) -> Vec<Vec<i64>> {
        self.entries
            .iter()
            .map(|e| vec![i64::from(e.epoch), e.start_offset])
            .collect()
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` wrote its first batch at `start_offset`. Epochs below zero
    /// (batches written before epochs were stamped) and epochs not above the latest are
    /// not new, and change nothing. Returns whether the cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| latest >= epoch) {
            return false;
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Forgets the epochs that started at or after `end_offset`, the new log end after a
    /// truncation. Returns whether the cache changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Clips the cache to a log that now starts at `start_offset`: epochs that ended
    /// before it go, and the epoch in force there starts there. Returns whether the cache
    /// changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if covering == 0 {
            return false;
        }
        let dropped = covering - 1;
        self.entries.drain(..dropped);
        let first = &mut self.entries[0];
        let moved = first.start_offset < start_offset;
        first.start_offset = first.start_offset.max(start_offset);
        dropped > 0 || moved
    }

    /// Forgets every epoch.
    pub(crate) fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's OffsetsForLeaderEpoch answer for a log ending at `log_end`: the largest
    /// epoch at or below `requested` and where it ended, which is the start of the next
    /// larger epoch, or the log end when it is the latest. A requested epoch below every
    /// known one answers itself and the first known start offset. `None` when nothing is
    /// known: the cache is empty, or `requested` is negative or above the latest epoch.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end: i64) -> Option<(i32, i64)> {
        let latest = self.latest_epoch()?;
        if requested < 0 || requested > latest {
            return None;
        }
        if requested == latest {
            return Some((latest, log_end));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let end = self.entries.get(higher)?.start_offset;
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            Some(floor) => Some((floor.epoch, end)),
            None => Some((requested, end)),
        }
    }

    /// The epoch whose entry covers `offset`.
    fn epoch_at(&self, offset: i64) -> Option<i32> {
        let covering = self.entries.partition_point(|e| e.start_offset <= offset);
        covering.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Whether every batch of the log lies in the epoch the cache says covers it. Entries
    /// without batches (compacted away) are fine; a batch of an epoch the cache does not
    /// place there means the checkpoint is stale or belongs to other data.
    pub(crate) fn agrees_with(&self, runs: &EpochRuns) -> bool {
        runs.runs.iter().all(|run| {
            self.epoch_at(run.first_offset) == Some(run.epoch)
                && self.epoch_at(run.last_offset) == Some(run.epoch)
        })
    }
}

/// Consecutive batches of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EpochRun {
    epoch: i32,
    first_offset: i64,
    last_offset: i64,
}

/// The epochs of a log's batches in order, summarised while recovery reads their headers.
#[derive(Debug, Default)]
pub(crate) struct EpochRuns {
    runs: Vec<EpochRun>,
}

impl EpochRuns {
    /// Takes the next batch of the log. Batches without an epoch (written before epochs
    /// were stamped) say nothing and are skipped.
    pub(crate) fn observe(&mut self, header: &BatchHeader) {
        let epoch = header.partition_leader_epoch;
        if epoch < 0 {
            return;
        }
        match self.runs.last_mut() {
            Some(run) if run.epoch == epoch => run.last_offset = header.last_offset(),
            _ => self.runs.push(EpochRun {
                epoch,
                first_offset: header.base_offset,
                last_offset: header.last_offset(),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            assert!(cache.assign(epoch, start));
        }
        cache
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn end_offsets_follow_kafkas_offsets_for_leader_epoch() {
        let c = cache(&[(1, 10), (3, 50), (4, 80)]);
        assert_eq!(c.end_offset_for(4, 100), Some((4, 100)), "latest: log end");
        assert_eq!(c.end_offset_for(3, 100), Some((3, 80)));
        assert_eq!(c.end_offset_for(2, 100), Some((1, 50)), "floor epoch 1");
        assert_eq!(c.end_offset_for(1, 100), Some((1, 50)));
        assert_eq!(c.end_offset_for(0, 100), Some((0, 10)), "below every epoch");
        assert_eq!(c.end_offset_for(5, 100), None, "above the latest");
        assert_eq!(c.end_offset_for(-1, 100), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 0), None);
    }

    #[test]
    fn assign_takes_only_newer_epochs() {
        let mut c = cache(&[(0, 0), (2, 5)]);
        assert!(!c.assign(2, 9));
        assert!(!c.assign(1, 9));
        assert!(!c.assign(-1, 9));
        assert!(c.assign(7, 9));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 5), (7, 9)]);
    }

    #[test]
    fn truncation_from_either_end_keeps_the_covering_epochs() {
        let mut c = cache(&[(0, 0), (2, 5), (3, 9)]);
        assert!(!c.truncate_from_end(10));
        assert!(c.truncate_from_end(9));
        assert_eq!(pairs(&c), vec![(0, 0), (2, 5)]);
        assert!(c.truncate_from_start(3));
        assert_eq!(pairs(&c), vec![(0, 3), (2, 5)]);
        assert!(!c.truncate_from_start(3));
        assert!(c.truncate_from_start(5));
        assert_eq!(pairs(&c), vec![(2, 5)]);
        assert!(c.truncate_from_start(7));
        assert_eq!(pairs(&c), vec![(2, 7)]);
        assert!(c.truncate_from_end(7));
        assert!(c.entries().is_empty());
        assert!(!c.truncate_from_start(100));
    }

    #[test]
    fn checkpoint_entries_must_ascend() {
        let path = std::path::Path::new("x");
        let good = cache(&[(0, 0), (4, 10)]);
        assert_eq!(
            LeaderEpochCache::from_checkpoint(good.to_checkpoint(), path).unwrap(),
            good
        );
        for bad in [
            vec![vec![1, 10], vec![1, 20]],
            vec![vec![1, 10], vec![2, 10]],
            vec![vec![-1, 0]],
            vec![vec![1, -5]],
            vec![vec![i64::from(i32::MAX) + 1, 0]],
        ] {
            assert!(LeaderEpochCache::from_checkpoint(bad, path).is_err());
        }
    }

    fn header(epoch: i32, base: i64, records: i32) -> BatchHeader {
        let mut builder = quiver_proto::batch::BatchBuilder::new();
        for _ in 0..records {
            builder.push(0, None, Some(b"v"), &[]);
        }
        let mut bytes = builder
            .build_at(
                base,
                quiver_proto::batch::Compression::None,
                quiver_proto::batch::ProducerIdentity::NONE,
            )
            .to_vec();
        quiver_proto::batch::set_leader_epoch(&mut bytes, epoch);
        BatchHeader::parse(&bytes).unwrap()
    }

    #[test]
    fn runs_rebuild_the_cache_and_check_a_checkpoint() {
        let mut runs = EpochRuns::default();
        for (epoch, base) in [(-1, 0), (0, 2), (0, 4), (2, 8), (2, 10), (5, 12)] {
            runs.observe(&header(epoch, base, 2));
        }
        let rebuilt = LeaderEpochCache::rebuilt(&runs);
        assert_eq!(pairs(&rebuilt), vec![(0, 2), (2, 8), (5, 12)]);
        assert!(rebuilt.agrees_with(&runs));
        // A checkpoint that knows more (epoch 1 compacted away, epoch 0 starting earlier)
        // still agrees; one that misses an epoch or places it elsewhere does not.
        assert!(cache(&[(0, 0), (1, 6), (2, 8), (5, 12)]).agrees_with(&runs));
        assert!(!cache(&[(0, 2), (2, 8)]).agrees_with(&runs));
        assert!(!cache(&[(0, 2), (2, 10), (5, 12)]).agrees_with(&runs));
    }
}
