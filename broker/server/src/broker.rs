//! The broker's state: the topics it hosts, their partitions, and the admin operations
//! that change them.
//!
//! Reads of the topic map are lock-free in practice (a short read lock to clone an
//! `Arc<Topic>`); changes (create, delete, alter) are serialized by one async mutex and
//! written to the catalog before they take effect, so a restart sees exactly what was
//! acknowledged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::RwLock;
use quiver_storage::PartitionLog;

use crate::catalog::{Catalog, TopicRecord, partition_dir};
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::plugins::PluginService;
use crate::producer_ids::ProducerIds;
use crate::service::types::{PartitionInfo, TopicInfo};
use crate::topic_config::{self, EffectiveConfig};

/// A topic and its open partitions.
#[derive(Debug)]
pub struct Topic {
    pub record: TopicRecord,
    pub config: EffectiveConfig,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// The partition with this index, or a typed error naming the topic's count.
    pub fn partition(&self, index: u32) -> Result<&Arc<Partition>, BrokerError> {
        self.partitions
            .get(index as usize)
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: self.record.name.clone(),
                partition: index,
                count: self.partitions.len() as u32,
            })
    }
}

/// Shared state of a running broker.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// Address clients are told to dial.
    pub advertised: String,
    catalog: Catalog,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic changes so the catalog and the map never disagree.
    admin: tokio::sync::Mutex<()>,
    pub producer_ids: ProducerIds,
    /// Round-robin counter for keyless records routed by the broker.
    pub round_robin: AtomicI64,
    /// The Wasm plugin runtime: registry, and the bindings topics and fetches use.
    pub plugins: Arc<PluginService>,
}

impl Broker {
    /// Opens every topic in the catalog, recovering each partition's log, and removes
    /// partition directories the catalog no longer names.
    pub fn open(config: BrokerConfig, advertised: String) -> Result<Broker, BrokerError> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            BrokerError::Internal(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let catalog = Catalog::new(&data_dir);
        let records = catalog.load()?;
        let mut topics = BTreeMap::new();
        for record in records {
            let topic = open_topic(&config, record)?;
            topics.insert(topic.record.name.clone(), Arc::new(topic));
        }
        remove_orphans(&data_dir, &topics);
        let producer_ids = ProducerIds::open(&data_dir)?;
        let plugins = Arc::new(PluginService::open(&data_dir, &config.plugins)?);
        Ok(Broker {
            plugins,
            advertised,
            catalog,
            topics: RwLock::new(topics),
            admin: tokio::sync::Mutex::new(()),
            producer_ids,
            round_robin: AtomicI64::new(0),
            config,
        })
    }

    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
    }

    pub fn partition(&self, topic: &str, index: u32) -> Result<Arc<Partition>, BrokerError> {
        self.topic(topic)?.partition(index).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Creates a topic: validates, writes the catalog, then opens its partitions.
    pub async fn create_topic(&self, record: TopicRecord) -> Result<Arc<Topic>, BrokerError> {
        quiver_proto::topic_name::validate(&record.name).map_err(BrokerError::InvalidTopicName)?;
        if record.partitions == 0 || record.partitions > self.config.limits.max_partitions {
            return Err(BrokerError::InvalidRequest(format!(
                "a topic needs 1 to {} partitions, not {}",
                self.config.limits.max_partitions, record.partitions
            )));
        }
        if record.replication_factor != 1 {
            return Err(BrokerError::InvalidRequest(format!(
                "replication factor {} needs {} brokers; this cluster has 1",
                record.replication_factor, record.replication_factor
            )));
        }
        topic_config::validate(&record.configs)?;
        let effective = topic_config::resolve(&self.config.topic_defaults, &record.configs)?;
        let _guard = self.admin.lock().await;
        self.check_plugins(effective, None).await?;
        if self.topics.read().contains_key(&record.name) {
            return Err(BrokerError::TopicExists(record.name));
        }
        let mut all: Vec<TopicRecord> = self
            .topics
            .read()
            .values()
            .map(|t| t.record.clone())
            .collect();
        all.push(record.clone());
        // Stale directories of an earlier topic of the same name must not be adopted.
        for p in 0..record.partitions {
            let dir = partition_dir(&self.config.data_dir, &record.name, p);
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        self.catalog.store(&all)?;
        let config = self.config.clone();
        let topic = tokio::task::spawn_blocking(move || open_topic(&config, record))
            .await
            .map_err(|e| BrokerError::Internal(e.to_string()))??;
        let topic = Arc::new(topic);
        self.topics
            .write()
            .insert(topic.record.name.clone(), Arc::clone(&topic));
        Ok(topic)
    }

    /// Deletes a topic: removes it from the catalog, then its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let _guard = self.admin.lock().await;
        let topic = self.topic(name)?;
        if topic.record.internal {
            return Err(BrokerError::InvalidRequest(format!(
                "topic '{name}' is internal to the broker and cannot be deleted"
            )));
        }
        let rest: Vec<TopicRecord> = self
            .topics
            .read()
            .values()
            .filter(|t| t.record.name != name)
            .map(|t| t.record.clone())
            .collect();
        self.catalog.store(&rest)?;
        self.topics.write().remove(name);
        for p in &topic.partitions {
            p.mark_deleted();
        }
        let dirs: Vec<PathBuf> = (0..topic.record.partitions)
            .map(|p| partition_dir(&self.config.data_dir, name, p))
            .collect();
        drop(topic);
        tokio::task::spawn_blocking(move || {
            for dir in dirs {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted topic's data; it is removed at next start");
                }
            }
        })
        .await
        .map_err(|e| BrokerError::Internal(e.to_string()))?;
        Ok(())
    }

    /// Sets and removes configs of a topic, applying them to its open partitions.
    pub async fn alter_topic(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let _guard = self.admin.lock().await;
        let old = self.topic(name)?;
        let mut record = old.record.clone();
        for key in &delete {
            if !topic_config::is_known_key(key) {
                return Err(topic_config::ConfigError::UnknownKey(key.clone()).into());
            }
            record.configs.remove(key);
        }
        record.configs.extend(set);
        let config = topic_config::resolve(&self.config.topic_defaults, &record.configs)?;
        self.check_plugins(config.clone(), Some(old.config.clone()))
            .await?;
        let all: Vec<TopicRecord> = self
            .topics
            .read()
            .values()
            .map(|t| {
                if t.record.name == name {
                    record.clone()
                } else {
                    t.record.clone()
                }
            })
            .collect();
        self.catalog.store(&all)?;
        for p in &old.partitions {
            p.log().set_config(config.log.clone());
        }
        let topic = Arc::new(Topic {
            record,
            config,
            partitions: old.partitions.clone(),
        });
        self.topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        Ok(topic)
    }

    /// Checks the plugins a topic's configs bind (on the blocking pool: binding may
    /// compile a component and run its `init`).
    async fn check_plugins(
        &self,
        config: EffectiveConfig,
        previous: Option<EffectiveConfig>,
    ) -> Result<(), BrokerError> {
        if config.partitioner.is_none() && config.compaction_policy.is_none() {
            return Ok(());
        }
        let plugins = Arc::clone(&self.plugins);
        tokio::task::spawn_blocking(move || plugins.check_topic(&config, previous.as_ref()))
            .await
            .map_err(|e| BrokerError::Internal(format!("plugin check failed: {e}")))?
    }

    /// Describes a topic with the live state of every partition.
    pub fn describe(&self, topic: &Topic) -> TopicInfo {
        let node = self.config.node_id;
        TopicInfo {
            name: topic.record.name.clone(),
            replication_factor: topic.record.replication_factor,
            internal: topic.record.internal,
            configs: topic.config.all.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    let log = p.log();
                    PartitionInfo {
                        partition: p.index,
                        leader: node,
                        leader_epoch: 0,
                        replicas: vec![node],
                        in_sync_replicas: vec![node],
                        log_start_offset: log.log_start_offset(),
                        high_watermark: log.high_watermark(),
                        size_bytes: log.size_bytes(),
                        segments: log.segment_count() as u32,
                    }
                })
                .collect(),
        }
    }

    /// Flushes and closes every partition, for a clean shutdown.
    pub fn close(&self) {
        let topics = std::mem::take(&mut *self.topics.write());
        for (_, topic) in topics {
            for p in &topic.partitions {
                if let Err(e) = p.log().flush() {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush at shutdown failed");
                }
            }
        }
    }
}

fn open_topic(config: &BrokerConfig, record: TopicRecord) -> Result<Topic, BrokerError> {
    let effective = topic_config::resolve(&config.topic_defaults, &record.configs)?;
    let mut partitions = Vec::with_capacity(record.partitions as usize);
    for p in 0..record.partitions {
        let dir = partition_dir(&config.data_dir, &record.name, p);
        let log = PartitionLog::open(&dir, effective.log.clone()).map_err(|source| {
            BrokerError::Storage {
                topic: record.name.clone(),
                partition: p,
                source,
            }
        })?;
        partitions.push(Arc::new(Partition::new(record.name.clone(), p, log)));
    }
    Ok(Topic {
        record,
        config: effective,
        partitions,
    })
}

/// Removes `<topic>-<n>` directories that belong to no topic in the catalog: what an
/// interrupted delete left behind.
fn remove_orphans(data_dir: &Path, topics: &BTreeMap<String, Arc<Topic>>) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((topic, part)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(part) = part.parse::<u32>() else {
            continue;
        };
        let known = topics
            .get(topic)
            .is_some_and(|t| part < t.record.partitions);
        if !known && entry.path().is_dir() {
            tracing::warn!(dir = %entry.path().display(), "removing data of a deleted topic");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Broker {
    /// The next broker-side round-robin slot, for keyless records.
    pub fn next_round_robin(&self) -> u64 {
        self.round_robin.fetch_add(1, Ordering::Relaxed) as u64
    }
}
