//! The broker's state: the topics it hosts, their partitions, and the admin operations
//! that change them.
//!
//! What topics exist is the metadata's to say ([`MetadataStore`]); this file keeps
//! the open partitions of those topics. Reads of the topic map are lock-free in practice
//! (a short read lock to clone an `Arc<Topic>`); changes (create, delete, alter) are
//! serialized by one async mutex and appended to the metadata log before they take
//! effect, so a restart sees exactly what was acknowledged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::RwLock;

use quiver_metadata::proposal::{NewTopic, create_topic_record, delete_topic_record};
use quiver_metadata::{AlterTopicConfigs, MetadataRecord, TopicImage};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::metadata::{self, MetadataStore, ProducerIds};
use crate::partition::Partition;
use crate::plugins::PluginService;
use crate::reconcile::{Reconcile, TopicMap};
use crate::service::types::{ConfigSource, PartitionInfo, TopicInfo};
use crate::topic_config::{self, EffectiveConfig};

/// A topic's definition, as the metadata holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    /// Only the configs set on this topic; the rest come from defaults.
    pub configs: BTreeMap<String, String>,
    /// Internal topics (group offsets) are hidden from produce by users.
    pub internal: bool,
}

impl TopicRecord {
    pub(crate) fn from_image(t: &TopicImage) -> Self {
        TopicRecord {
            name: t.name.clone(),
            partitions: t.partition_count(),
            replication_factor: t.replication_factor,
            configs: t.configs.clone(),
            internal: t.internal,
        }
    }
}

/// The directory of one partition's log: `<data>/<topic>-<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// A topic and its open partitions.
#[derive(Debug)]
pub struct Topic {
    /// The metadata's id of the topic: a topic deleted and created again under the same
    /// name has a new one.
    pub topic_id: quiver_metadata::TopicId,
    pub record: TopicRecord,
    pub config: EffectiveConfig,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// The online partition with this index; a typed error naming the topic's count when
    /// there is none, or why it is offline.
    pub fn partition(&self, index: u32) -> Result<&Arc<Partition>, BrokerError> {
        let partition = self.partition_even_offline(index)?;
        partition.log()?;
        partition.ensure_leader()?;
        Ok(partition)
    }

    /// The partition with this index, online or offline (describe, reopen).
    pub fn partition_even_offline(&self, index: u32) -> Result<&Arc<Partition>, BrokerError> {
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
    /// Which topics, plugins and producer-id blocks exist.
    pub metadata: Arc<MetadataStore>,
    pub(crate) topics: RwLock<TopicMap>,
    /// Serializes topic and plugin changes, so the metadata and the map never disagree
    /// and proposals are built from the image they will apply to.
    pub(crate) admin: tokio::sync::Mutex<()>,
    pub producer_ids: ProducerIds,
    /// Round-robin counter for keyless records routed by the broker.
    pub round_robin: AtomicI64,
    /// The Wasm plugin runtime: registry, and the bindings topics and fetches use.
    pub plugins: Arc<PluginService>,
    /// This run of the broker, as registered: different at every start.
    pub incarnation: u64,
    /// Notified after every append to any partition, for followers' waiting fetches.
    pub(crate) appended: Arc<tokio::sync::Notify>,
    /// Counts reconciles: changes after each, once the open topics and the partitions'
    /// roles agree with the metadata (the group coordinator follows its leaderships).
    pub(crate) reconciled: tokio::sync::watch::Sender<u64>,
    /// In a cluster, how routed batches reach partitions led by other brokers.
    pub(crate) forward: std::sync::OnceLock<Arc<crate::quic::forward::ForwardLink>>,
}

impl Broker {
    /// Opens the metadata log (importing the files of an older data directory), every
    /// topic it names, recovering each partition's log, and removes partition
    /// directories it no longer names. Blocking: call from the blocking pool.
    pub fn open(config: BrokerConfig, advertised: String) -> Result<Broker, BrokerError> {
        let metadata = Arc::new(MetadataStore::open(&config.data_dir)?);
        Self::open_with(config, advertised, metadata)
    }

    /// [`Broker::open`] over a given metadata store (a cluster member's quorum).
    /// Blocking, and in a cluster it waits for the quorum to register this broker.
    pub fn open_with(
        config: BrokerConfig,
        advertised: String,
        metadata: Arc<MetadataStore>,
    ) -> Result<Broker, BrokerError> {
        let data_dir = config.data_dir.clone();
        create_data_dir(&data_dir)?;
        let incarnation = u64::try_from(crate::service::now_ms()).unwrap_or(0);
        // Other brokers reach this one on its inter-broker listener, as the quorum does.
        let peer_listener = config
            .cluster
            .peer_address(config.node_id)
            .map(|a| a.to_string());
        metadata.register_broker(config.node_id, &advertised, incarnation, peer_listener)?;
        let plugins = Arc::new(PluginService::open(&data_dir, &config.plugins)?);
        // Plugins first: imported topics may name them.
        plugins.migrate_legacy(&metadata, &data_dir)?;
        metadata::migrate::run(&metadata, &data_dir, config.node_id)?;
        plugins.install_all(&metadata.image())?;
        let producer_ids = ProducerIds::new(Arc::clone(&metadata), config.node_id);
        let broker = Broker {
            plugins,
            advertised,
            metadata,
            topics: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
            producer_ids,
            round_robin: AtomicI64::new(0),
            config,
            incarnation,
            appended: Arc::new(tokio::sync::Notify::new()),
            reconciled: tokio::sync::watch::Sender::new(0),
            forward: std::sync::OnceLock::new(),
        };
        broker.reconcile(Reconcile::Startup)?;
        remove_orphans(&data_dir, &broker.topics.read());
        Ok(broker)
    }

    /// Appends a metadata record on the blocking pool (the append fsyncs).
    async fn append_metadata(&self, record: MetadataRecord) -> Result<(), BrokerError> {
        let metadata = Arc::clone(&self.metadata);
        crate::service::blocking(move || metadata.append(&record).map(|_| ())).await
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

    /// Creates a topic: validates, appends it to the metadata, then opens its partitions.
    /// A replication factor of 0 asks for the default: `cluster.default_replication_factor`
    /// in a cluster, 1 on a single node.
    pub async fn create_topic(&self, mut record: TopicRecord) -> Result<Arc<Topic>, BrokerError> {
        if record.replication_factor == 0 {
            record.replication_factor = if self.config.cluster.is_cluster() {
                self.config.cluster.default_replication_factor
            } else {
                1
            };
        }
        quiver_proto::topic_name::validate(&record.name).map_err(BrokerError::InvalidTopicName)?;
        if record.partitions == 0 || record.partitions > self.config.limits.max_partitions {
            return Err(BrokerError::InvalidRequest(format!(
                "a topic needs 1 to {} partitions, not {}",
                self.config.limits.max_partitions, record.partitions
            )));
        }
        if record.replication_factor != 1 && !self.config.cluster.is_cluster() {
            return Err(BrokerError::InvalidRequest(format!(
                "replication factor {} needs {} brokers; a single node has 1",
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
        let image = self.metadata.image();
        let proposal = create_topic_record(
            &image,
            NewTopic {
                name: record.name.clone(),
                partitions: record.partitions,
                replication_factor: record.replication_factor,
                configs: record.configs.clone(),
                internal: record.internal,
            },
            metadata::migrate::new_topic_id(),
            u32::try_from(image.topics().count()).unwrap_or(0),
        )?;
        self.append_metadata(proposal).await?;
        self.reconcile_now().await?;
        self.topic(&record.name)
    }

    /// Deletes a topic: removes it from the metadata, then its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let _guard = self.admin.lock().await;
        let topic = self.topic(name)?;
        if topic.record.internal {
            return Err(BrokerError::InvalidRequest(format!(
                "topic '{name}' is internal to the broker and cannot be deleted"
            )));
        }
        let record = delete_topic_record(&self.metadata.image(), name)?;
        drop(topic);
        self.append_metadata(record).await?;
        self.reconcile_now().await
    }

    /// Starts moving a partition to `replicas` (see `ReassignPartition`): the new
    /// brokers copy the log as followers, and the controller switches the partition to
    /// exactly `replicas` once all of them are in sync.
    pub async fn reassign_partition(
        &self,
        topic: &str,
        partition: u32,
        replicas: Vec<u32>,
    ) -> Result<(), BrokerError> {
        if !self.config.cluster.is_cluster() {
            return Err(BrokerError::InvalidRequest(
                "a single node has one broker: there is nowhere to move a partition to".into(),
            ));
        }
        let _guard = self.admin.lock().await;
        self.topic(topic)?.partition_even_offline(partition)?;
        self.append_metadata(MetadataRecord::ReassignPartition(
            quiver_metadata::ReassignPartition {
                topic: topic.to_string(),
                partition,
                target: replicas,
            },
        ))
        .await?;
        self.reconcile_now().await
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
        // What the user sends is held to today's ranges; values stored earlier are not.
        topic_config::validate(&set)?;
        let set_now = set.clone();
        record.configs.extend(set);
        let config = topic_config::resolve(&self.config.topic_defaults, &record.configs)?;
        self.check_plugins(config.clone(), Some(old.config.clone()))
            .await?;
        // A key both set and deleted is set, as it is in the map above.
        let delete = delete
            .into_iter()
            .filter(|k| !set_now.contains_key(k))
            .collect();
        self.append_metadata(MetadataRecord::AlterTopicConfigs(AlterTopicConfigs {
            name: name.to_string(),
            set: set_now,
            delete,
        }))
        .await?;
        drop(old);
        self.reconcile_now().await?;
        self.topic(name)
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
        let image = self.metadata.image();
        TopicInfo {
            name: topic.record.name.clone(),
            replication_factor: topic.record.replication_factor,
            internal: topic.record.internal,
            configs: topic.config.all.clone(),
            config_sources: topic
                .config
                .all
                .keys()
                .map(|key| {
                    let source = if topic.record.configs.contains_key(key) {
                        ConfigSource::Topic
                    } else if self.config.topic_defaults.contains_key(key) {
                        ConfigSource::BrokerDefault
                    } else {
                        ConfigSource::Default
                    };
                    (key.clone(), source)
                })
                .collect(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| self.describe_partition(&image, p))
                .collect(),
        }
    }

    /// One partition's placement (from the metadata `image`) and live log state.
    pub fn describe_partition(
        &self,
        image: &quiver_metadata::MetadataImage,
        p: &Partition,
    ) -> PartitionInfo {
        let placed = image.partition(&p.topic, p.index);
        let cluster = self.config.cluster.is_cluster();
        let leaderless = cluster && placed.is_some_and(|a| a.leader.is_none());
        let mut info = PartitionInfo {
            partition: p.index,
            leader: placed.and_then(|a| a.leader).unwrap_or(self.config.node_id),
            leader_epoch: placed.map_or(0, |a| i32::try_from(a.leader_epoch).unwrap_or(i32::MAX)),
            replicas: placed.map(|a| a.replicas.clone()).unwrap_or_default(),
            in_sync_replicas: placed.map(|a| a.isr.clone()).unwrap_or_default(),
            log_start_offset: -1,
            high_watermark: -1,
            size_bytes: 0,
            segments: 0,
            offline: p.offline_reason().or_else(|| {
                leaderless
                    .then(|| "no leader: none of its in-sync replicas is available".to_string())
            }),
        };
        // An offline partition has no log to measure: -1 offsets, no size.
        if let Ok(log) = p.log() {
            info.log_start_offset = log.log_start_offset();
            info.high_watermark = log.high_watermark();
            info.size_bytes = log.size_bytes();
            info.segments = log.segment_count() as u32;
        }
        info
    }

    /// Reopens one partition: re-runs recovery on its directory and swaps the new log in
    /// (see [`Partition::reopen`]), for a partition quarantined at start or locked by a
    /// failed write or fsync, once the cause is fixed. A healthy partition may be
    /// reopened too: it just recovers again. Serialised with topic changes, so the log
    /// opens with the topic's current configs.
    pub async fn reopen_partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<Partition>, BrokerError> {
        let _guard = self.admin.lock().await;
        let topic = self.topic(topic)?;
        let p = Arc::clone(topic.partition_even_offline(partition)?);
        let dir = partition_dir(&self.config.data_dir, &topic.record.name, partition);
        p.reopen(dir, topic.config.log.clone()).await?;
        Ok(p)
    }

    /// Flushes and closes every partition, for a clean shutdown.
    pub fn close(&self) {
        let topics = std::mem::take(&mut *self.topics.write());
        for (_, topic) in topics {
            for p in &topic.partitions {
                let Ok(log) = p.log() else {
                    continue; // offline: nothing of it is open
                };
                if let Err(e) = log.flush() {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush at shutdown failed");
                }
            }
        }
    }
}

/// Creates the data directory, naming it when that fails.
fn create_data_dir(data_dir: &Path) -> Result<(), BrokerError> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        BrokerError::Internal(format!(
            "cannot create data dir {}: {e}",
            data_dir.display()
        ))
    })
}

/// Removes `<topic>-<n>` directories that belong to no topic in the metadata: what an
/// interrupted delete left behind.
fn remove_orphans(data_dir: &Path, topics: &TopicMap) {
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
