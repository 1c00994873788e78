//! The broker's one owner of metadata: which brokers, topics, partitions, producer-id
//! blocks and plugin versions exist.
//!
//! Changes are records of `quiver_metadata`, appended to a [`LocalMetadataLog`] in
//! `<data>/meta/log/` (fsynced before the append returns, snapshotted to stay bounded)
//! and applied to a [`MetadataImage`]. Readers take the current image from an
//! `ArcSwap`, never waiting on a writer; a writer swaps in the new image only once its
//! record is durable, so nothing anyone sees can be lost by a crash. In a cluster the
//! Raft log of [`quiver_quorum`] takes the local log's place behind this same type
//! (`<data>/meta/quorum/`): an append is a proposal, answered once a majority of the
//! voters hold it and this broker has applied it.
//!
//! On first start over a data directory written before the log existed, `migrate.rs`
//! turns the old files (`meta/topics.json`, `meta/producer-id-block`, the plugin
//! registry's per-name directories) into records.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use quiver_metadata::{
    Applied, BrokerId, LocalLogError, LocalMetadataLog, MetadataImage, MetadataRecord,
    RegisterBroker,
};
use quiver_quorum::{Outcome, Quorum};

use crate::error::BrokerError;

pub(crate) mod migrate;
mod producer_ids;

pub use producer_ids::ProducerIds;

/// Where the records live.
#[derive(Debug)]
enum Backend {
    Local {
        /// Held across an append's fsync, so it is only ever taken on the blocking pool;
        /// a plain mutex, since no await happens under it.
        log: Mutex<LocalMetadataLog>,
        /// The image after the last durable record.
        image: ArcSwap<MetadataImage>,
    },
    Replicated {
        quorum: Quorum,
        /// The runtime proposals run on; `append` is called from the blocking pool and
        /// waits there for the quorum.
        runtime: tokio::runtime::Handle,
    },
}

/// The metadata log and the image it gives.
#[derive(Debug)]
pub struct MetadataStore {
    backend: Backend,
    /// An exclusive lock on the log directory's `LOCK`, held while this store lives:
    /// two processes appending to one metadata log would interleave records and damage
    /// it.
    _lock: std::fs::File,
}

/// The directory of a cluster member's quorum storage.
pub fn quorum_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("meta").join("quorum")
}

impl MetadataStore {
    /// Opens (or creates) the log under `<data_dir>/meta/log` and replays it.
    pub fn open(data_dir: &Path) -> Result<MetadataStore, BrokerError> {
        let dir = data_dir.join("meta").join("log");
        let lock = lock_dir(&dir)?;
        let (log, image) = LocalMetadataLog::open(&dir).map_err(log_error)?;
        tracing::debug!(dir = %dir.display(), last_applied = image.last_applied(), "metadata log opened");
        Ok(MetadataStore {
            backend: Backend::Local {
                log: Mutex::new(log),
                image: ArcSwap::from_pointee(image),
            },
            _lock: lock,
        })
    }

    /// A store over a running quorum voter; `lock` is [`lock_dir`] of its directory,
    /// taken before the voter opened it.
    pub fn replicated(quorum: Quorum, lock: std::fs::File) -> MetadataStore {
        MetadataStore {
            backend: Backend::Replicated {
                quorum,
                runtime: tokio::runtime::Handle::current(),
            },
            _lock: lock,
        }
    }

    /// The quorum voter, on a cluster member.
    pub fn quorum(&self) -> Option<&Quorum> {
        match &self.backend {
            Backend::Local { .. } => None,
            Backend::Replicated { quorum, .. } => Some(quorum),
        }
    }

    /// The current image: every record durable so far, applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        match &self.backend {
            Backend::Local { image, .. } => image.load_full(),
            Backend::Replicated { quorum, .. } => quorum.image(),
        }
    }

    /// Appends `record` durably and applies it. A record the image refuses is not
    /// written (or, in a cluster, written and refused alike by every voter) and changes
    /// nothing. Blocking (an fsync, or a wait for the quorum): call from the blocking
    /// pool.
    pub fn append(&self, record: &MetadataRecord) -> Result<Applied, BrokerError> {
        match &self.backend {
            Backend::Local { log, image } => {
                let mut log = log.lock();
                let appended = log.append(record).map_err(log_error)?;
                image.store(Arc::new(appended.image));
                Ok(appended.applied)
            }
            Backend::Replicated { quorum, runtime } => {
                let committed = runtime
                    .block_on(quorum.propose(record.clone()))
                    .map_err(BrokerError::Quorum)?;
                match committed.outcome {
                    Outcome::Applied(applied) => Ok(applied),
                    Outcome::Refused(refused) => Err(BrokerError::Metadata(refused)),
                    Outcome::NotARecord => Err(BrokerError::Internal(format!(
                        "metadata entry {} was not the proposed record",
                        committed.index
                    ))),
                }
            }
        }
    }
}

/// Creates `dir` and takes the exclusive lock on its `LOCK` file, or says which process
/// holds it.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File, BrokerError> {
    quiver_durable::create_dir_all_durably(dir).map_err(|e| {
        BrokerError::Internal(format!(
            "cannot create metadata directory {}: {e}",
            dir.display()
        ))
    })?;
    let lock_path = dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| BrokerError::Internal(format!("cannot open {}: {e}", lock_path.display())))?;
    lock.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => BrokerError::Internal(format!(
            "the metadata in {} is in use by another process (a broker running on this \
                 data directory?); stop it first",
            dir.display()
        )),
        std::fs::TryLockError::Error(e) => {
            BrokerError::Internal(format!("cannot lock {}: {e}", lock_path.display()))
        }
    })?;
    Ok(lock)
}

impl MetadataStore {
    /// Records that this broker is up at `listener`. A node registers at every start, so
    /// its epoch (the index of this record) tells one run from the next.
    pub fn register_broker(
        &self,
        broker_id: BrokerId,
        listener: &str,
        incarnation: u64,
        peer_listener: Option<String>,
    ) -> Result<(), BrokerError> {
        self.append(&MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id,
            listener: listener.to_string(),
            incarnation,
            peer_listener,
        }))
        .map(|_| ())
    }
}

/// A record the image refused is the caller's mistake (a topic that exists, a plugin in
/// use); anything else is the log's trouble.
fn log_error(e: LocalLogError) -> BrokerError {
    match e {
        LocalLogError::Rejected(refused) => BrokerError::Metadata(refused),
        other => BrokerError::MetadataLog(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_is_visible_once_durable_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(dir.path()).expect("open");
        assert!(store.image().broker(3).is_none());
        store
            .register_broker(3, "127.0.0.1:7420", 1, None)
            .expect("register");
        assert_eq!(
            store.image().broker(3).map(|b| b.listener.as_str()),
            Some("127.0.0.1:7420")
        );
        drop(store);
        let again = MetadataStore::open(dir.path()).expect("reopen");
        assert!(again.image().broker(3).is_some());
    }

    #[test]
    fn a_second_process_cannot_open_the_same_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(dir.path()).expect("open");
        let err = MetadataStore::open(dir.path()).expect_err("locked");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(store);
        MetadataStore::open(dir.path()).expect("free again once the first is gone");
    }

    #[test]
    fn a_refused_record_is_a_metadata_error_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(dir.path()).expect("open");
        let before = store.image().snapshot();
        let err = store
            .append(&MetadataRecord::AllocateProducerIds(
                quiver_metadata::record::AllocateProducerIds {
                    broker_id: 9,
                    first: 0,
                    count: 10,
                },
            ))
            .expect_err("no such broker");
        assert!(matches!(err, BrokerError::Metadata(_)), "{err}");
        assert_eq!(store.image().snapshot(), before);
    }
}
