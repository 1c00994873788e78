//! Property: whatever the appends, epoch changes, truncations and restarts, the
//! leader-epoch cache is what a rebuild from the log's batches gives.

use proptest::prelude::*;
use quiver_storage::{EpochEntry, PartitionLog};

use crate::common::{batch_of, small_config};
use crate::leader_epochs::{EPOCH_CHECKPOINT, headers};

#[derive(Debug, Clone)]
enum Op {
    /// A new leader epoch this much above the current one, then appends.
    Append {
        bump: i32,
        batches: usize,
    },
    /// Truncate at this fraction (per mille) of the log.
    Truncate(i64),
    Reopen,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i32..3, 1usize..6).prop_map(|(bump, batches)| Op::Append { bump, batches }),
        2 => (0i64..1000).prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
    ]
}

/// The cache a rebuild gives: the first batch of every epoch above the previous ones.
fn from_headers(log: &PartitionLog) -> Vec<EpochEntry> {
    let mut out: Vec<EpochEntry> = Vec::new();
    for header in headers(log) {
        if out
            .last()
            .is_none_or(|e| e.epoch < header.partition_leader_epoch)
        {
            out.push(EpochEntry {
                epoch: header.partition_leader_epoch,
                start_offset: header.base_offset,
            });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn the_epoch_cache_always_matches_the_batches(ops in proptest::collection::vec(arb_op(), 1..14)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_config()).unwrap();
        for op in ops {
            match op {
                Op::Append { bump, batches } => {
                    log.set_leader_epoch(log.leader_epoch() + bump).unwrap();
                    for i in 0..batches {
                        log.append(&batch_of(&format!("b{i}"), 1 + i % 3, 150, 0), 0).unwrap();
                    }
                }
                Op::Truncate(per_mille) => {
                    let end = log.log_end_offset();
                    log.truncate_to(end * per_mille / 1000).unwrap();
                }
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(dir.path(), small_config()).unwrap();
                }
            }
            prop_assert_eq!(log.leader_epochs(), from_headers(&log));
        }
        let kept = log.leader_epochs();
        drop(log);
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        prop_assert_eq!(log.leader_epochs(), kept.clone());
        drop(log);
        std::fs::remove_file(dir.path().join(EPOCH_CHECKPOINT)).ok();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        prop_assert_eq!(log.leader_epochs(), kept);
    }
}
