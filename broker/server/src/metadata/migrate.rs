//! First start over a data directory written before the metadata log existed: the old
//! files become records, once.
//!
//! - `meta/topics.json` (the topic catalog: `{ "version": 1, "topics": [ { "name",
//!   "partitions", "replication_factor", "configs", "internal" } ] }`) becomes one
//!   `CreateTopic` per topic, placed on this broker;
//! - `meta/producer-id-block` (the end of the last producer-id block handed out, a
//!   decimal number) becomes an `AllocateProducerIds` at that number, so new ids start
//!   past every id the old broker may have given;
//! - the plugin registry's per-name directories are handled by the plugin service
//!   (`crate::plugins`), which runs before this so that topics naming plugins apply.
//!
//! Each step skips what the image already holds, so a crash half-way through is
//! finished by the next start; only once every record is durable is the old file
//! renamed to `<name>.migrated` (kept as a backup, never read again).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quiver_metadata::proposal::{NewTopic, PRODUCER_ID_BLOCK, create_topic_record};
use quiver_metadata::{AllocateProducerIds, BrokerId, MetadataRecord, TopicId};
use serde::Deserialize;

use super::MetadataStore;
use crate::error::BrokerError;

/// One topic as the old catalog kept it.
#[derive(Debug, Deserialize)]
struct LegacyTopic {
    name: String,
    partitions: u32,
    replication_factor: u16,
    configs: BTreeMap<String, String>,
    #[serde(default)]
    internal: bool,
}

#[derive(Debug, Deserialize)]
struct LegacyCatalog {
    topics: Vec<LegacyTopic>,
}

/// Imports whatever old metadata files `data_dir` holds into `store`, placing topics on
/// `broker_id`.
pub(crate) fn run(
    store: &MetadataStore,
    data_dir: &Path,
    broker_id: BrokerId,
) -> Result<(), BrokerError> {
    topics(store, data_dir, broker_id)?;
    producer_ids(store, data_dir, broker_id)
}

fn topics(store: &MetadataStore, data_dir: &Path, broker_id: BrokerId) -> Result<(), BrokerError> {
    let path = data_dir.join("meta").join("topics.json");
    let Some(text) = read_legacy(&path)? else {
        return Ok(());
    };
    let catalog: LegacyCatalog = serde_json::from_slice(&text).map_err(|e| {
        BrokerError::Internal(format!(
            "the old topic catalog {} is corrupt ({e}); restore it from a backup, or move it \
             away to start without its topics",
            path.display()
        ))
    })?;
    let mut imported = 0;
    for (n, topic) in catalog.topics.into_iter().enumerate() {
        let image = store.image();
        if image.topic(&topic.name).is_some() {
            continue;
        }
        let name = topic.name.clone();
        let record = create_topic_record(
            &image,
            NewTopic {
                name: topic.name,
                partitions: topic.partitions,
                replication_factor: topic.replication_factor,
                configs: topic.configs,
                internal: topic.internal,
            },
            new_topic_id(),
            u32::try_from(n).unwrap_or(0),
        )
        .map_err(|e| migration_error(&path, &name, e.into()))?;
        store
            .append(&record)
            .map_err(|e| migration_error(&path, &name, e))?;
        imported += 1;
    }
    tracing::info!(from = %path.display(), topics = imported, broker = broker_id, "imported the old topic catalog into the metadata log");
    retire(&path)
}

fn producer_ids(
    store: &MetadataStore,
    data_dir: &Path,
    broker_id: BrokerId,
) -> Result<(), BrokerError> {
    let path = data_dir.join("meta").join("producer-id-block");
    let Some(text) = read_legacy(&path)? else {
        return Ok(());
    };
    let end: i64 = String::from_utf8_lossy(&text).trim().parse().map_err(|_| {
        BrokerError::Internal(format!(
            "{} does not hold a number; move it away to restart producer-id allocation",
            path.display()
        ))
    })?;
    if store.image().next_producer_id() < end {
        store.append(&MetadataRecord::AllocateProducerIds(AllocateProducerIds {
            broker_id,
            first: end,
            count: PRODUCER_ID_BLOCK,
        }))?;
    }
    retire(&path)
}

/// A fresh random topic id: the proposer draws it, so that applying a record never does.
pub(crate) fn new_topic_id() -> TopicId {
    TopicId(rand::random::<u128>())
}

fn read_legacy(path: &Path) -> Result<Option<Vec<u8>>, BrokerError> {
    match std::fs::read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BrokerError::Internal(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Renames an imported file to `<name>.migrated`, durably, so it is never imported again.
fn retire(path: &Path) -> Result<(), BrokerError> {
    let mut retired = path.as_os_str().to_owned();
    retired.push(".migrated");
    let retired = PathBuf::from(retired);
    std::fs::rename(path, &retired)
        .and_then(|()| match path.parent() {
            Some(dir) => quiver_durable::sync_dir(dir),
            None => Ok(()),
        })
        .map_err(|e| {
            BrokerError::Internal(format!(
                "imported {} but cannot rename it to {}: {e}",
                path.display(),
                retired.display()
            ))
        })
}

fn migration_error(path: &Path, topic: &str, e: BrokerError) -> BrokerError {
    BrokerError::Internal(format!(
        "cannot import topic '{topic}' from the old catalog {}: {e}",
        path.display()
    ))
}
