//! Idempotent producer ids that are never handed out twice, across restarts and (later)
//! across brokers.
//!
//! Ids come from blocks that the metadata log grants: a block is an
//! `AllocateProducerIds` record, durable before any id in it is given, and the image's
//! `next_producer_id` is past every block ever granted. After a crash the broker takes a
//! fresh block, so the unused rest of the old one is skipped, never reused.

use std::sync::Arc;

use parking_lot::Mutex;
use quiver_metadata::proposal::{PRODUCER_ID_BLOCK, allocate_producer_ids_record};
use quiver_metadata::{Applied, BrokerId, MetadataError};

use super::MetadataStore;
use crate::error::BrokerError;

/// Hands out producer ids from blocks granted by the metadata log.
#[derive(Debug)]
pub struct ProducerIds {
    metadata: Arc<MetadataStore>,
    broker_id: BrokerId,
    /// (next id to give, end of the current block). Held across the append of a new
    /// block so that two callers never take two blocks at once; only ever locked on the
    /// blocking pool.
    block: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub fn new(metadata: Arc<MetadataStore>, broker_id: BrokerId) -> Self {
        ProducerIds {
            metadata,
            broker_id,
            block: Mutex::new((0, 0)),
        }
    }

    /// A fresh producer id. Blocking when the block runs out (the next one is an fsynced
    /// metadata record): call from the blocking pool.
    pub fn next(&self) -> Result<i64, BrokerError> {
        let mut block = self.block.lock();
        if block.0 >= block.1 {
            // In a cluster another broker may take the same next block first; its record
            // is then applied here too, and the next attempt starts after it.
            let mut attempts = 0;
            let applied = loop {
                let image = self.metadata.image();
                let record =
                    allocate_producer_ids_record(&image, self.broker_id, PRODUCER_ID_BLOCK);
                match self.metadata.append(&record) {
                    Err(BrokerError::Metadata(MetadataError::ProducerIdsReused { .. }))
                        if attempts < 5 =>
                    {
                        attempts += 1;
                    }
                    other => break other?,
                }
            };
            match applied {
                Applied::ProducerIdsAllocated { first, count, .. } => {
                    *block = (first, first + i64::from(count));
                }
                other => {
                    return Err(BrokerError::Internal(format!(
                        "a producer-id block was answered with {other:?}"
                    )));
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> Arc<MetadataStore> {
        let store = MetadataStore::open(dir).expect("open");
        store
            .register_broker(0, "127.0.0.1:1", 1, None)
            .expect("register");
        Arc::new(store)
    }

    #[test]
    fn ids_are_not_reused_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::new(store(dir.path()), 0);
        let a = ids.next().expect("id");
        let b = ids.next().expect("id");
        assert_ne!(a, b);
        drop(ids);
        let again = ProducerIds::new(store(dir.path()), 0);
        assert!(again.next().expect("id") > b);
    }

    #[test]
    fn a_block_runs_out_into_the_next_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::new(store(dir.path()), 0);
        let taken: Vec<i64> = (0..=PRODUCER_ID_BLOCK)
            .map(|_| ids.next().expect("id"))
            .collect();
        let unique: std::collections::BTreeSet<i64> = taken.iter().copied().collect();
        assert_eq!(unique.len(), taken.len());
    }
}
