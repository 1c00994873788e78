//! Keeping the broker's open topics in line with the metadata.
//!
//! The metadata image says which topics exist, with which configs, and which brokers
//! hold each partition; the broker keeps an open log for each partition it holds. Every
//! change reaches the broker the same way: a record is applied to the image (proposed
//! here, or, in a cluster, by any broker), then [`Broker::reconcile`] compares the image
//! with the open topics and makes them agree: opens new topics, closes deleted ones
//! (a topic deleted and created again under its name has a new id and is a new topic),
//! applies changed configs, and marks partitions held by other brokers as remote, so a
//! request for one is answered with who leads it.
//!
//! On a single node every partition is local, whatever its recorded placement.

use std::collections::BTreeMap;
use std::sync::Arc;

use quiver_metadata::{MetadataImage, TopicId, TopicImage};
use quiver_storage::PartitionLog;

use crate::broker::{Broker, Topic, TopicRecord, partition_dir};
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::replica::Placement;
use crate::topic_config;

/// When a reconcile runs, which decides what to do with partition directories found on
/// disk for a topic the broker has not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconcile {
    /// At start: the directories are the topic's own data, recovered and adopted.
    Startup,
    /// While serving: the topic is new to this broker, so directories of its name are
    /// left from an earlier topic of that name and are removed first.
    Live,
}

impl Broker {
    /// Brings the open topics in line with the current metadata image. Blocking (opens
    /// logs, removes directories): call from the blocking pool, with the admin lock
    /// held when serving.
    pub(crate) fn reconcile(&self, when: Reconcile) -> Result<(), BrokerError> {
        let current = self.topics.read().clone();
        let image = self.metadata.image();
        let next = reconcile_topics(&self.config, &image, current, when, &self.appended)?;
        set_roles(&self.config, &image, &next);
        *self.topics.write() = next;
        self.reconciled.send_modify(|n| *n += 1);
        Ok(())
    }

    /// [`Broker::reconcile`] from an async context: the file work runs on the blocking
    /// pool. Hold the admin lock.
    pub(crate) async fn reconcile_now(&self) -> Result<(), BrokerError> {
        let config = self.config.clone();
        let image = self.metadata.image();
        let current = self.topics.read().clone();
        let appended = Arc::clone(&self.appended);
        let next = tokio::task::spawn_blocking(move || {
            let next = reconcile_topics(&config, &image, current, Reconcile::Live, &appended)?;
            set_roles(&config, &image, &next);
            Ok::<_, BrokerError>(next)
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("reconciling topics failed: {e}")))??;
        *self.topics.write() = next;
        self.reconciled.send_modify(|n| *n += 1);
        Ok(())
    }
}

impl Broker {
    /// Runs `pass` now and after every reconcile until `shutdown`; while a pass reports
    /// work left undone (`true`), also every `retry`: for the tasks that keep some
    /// state of the broker in line with the metadata (groups, plugins).
    pub(crate) async fn after_each_reconcile<F, Fut>(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
        retry: std::time::Duration,
        mut pass: F,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut reconciled = self.reconciled.subscribe();
        loop {
            reconciled.borrow_and_update();
            let undone = pass().await;
            let again = async {
                if undone {
                    tokio::time::sleep(retry).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = reconciled.changed() => if changed.is_err() { return },
                () = again => {}
            }
        }
    }
}

/// In a cluster, sets this broker's role (leader or follower) for every partition it
/// holds from the image's placement; a single node's partitions stay sole replicas.
fn set_roles(config: &BrokerConfig, image: &MetadataImage, topics: &TopicMap) {
    if !config.cluster.is_cluster() {
        return;
    }
    let now = crate::service::now_ms();
    for (name, topic) in topics {
        for p in topic.partitions.iter().filter(|p| p.is_local()) {
            let Some(a) = image.partition(name, p.index) else {
                continue;
            };
            p.set_role(
                &Placement {
                    me: config.node_id,
                    leader: a.leader,
                    leader_epoch: a.leader_epoch,
                    partition_epoch: a.partition_epoch,
                    replicas: a.replicas.clone(),
                    isr: a.isr.clone(),
                },
                now,
            );
        }
    }
}

/// The topics `current` becomes under `image`.
fn reconcile_topics(
    config: &BrokerConfig,
    image: &MetadataImage,
    mut current: TopicMap,
    when: Reconcile,
    appended: &Arc<tokio::sync::Notify>,
) -> Result<TopicMap, BrokerError> {
    // Deleted topics (or ones re-created under a new id) go first, so a new topic of
    // the same name never has its fresh directories removed.
    let gone: Vec<String> = current
        .iter()
        .filter(|(name, open)| {
            image
                .topic(name)
                .is_none_or(|t| t.topic_id != open.topic_id)
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in gone {
        if let Some(topic) = current.remove(&name) {
            close_deleted(config, &topic);
        }
    }
    for t in image.topics() {
        let next = match current.get(&t.name) {
            Some(open) => refresh(config, open, t, image, appended)?,
            None => Some(open_topic(config, t, image, when, appended)?),
        };
        if let Some(next) = next {
            current.insert(t.name.clone(), Arc::new(next));
        }
    }
    Ok(current)
}

/// Whether this broker holds `topic`-`partition`, and who leads it.
fn hosts(
    config: &BrokerConfig,
    image: &MetadataImage,
    topic: &str,
    partition: u32,
) -> (bool, Option<u32>) {
    let placed = image.partition(topic, partition);
    let leader = placed.and_then(|a| a.leader);
    if !config.cluster.is_cluster() {
        return (true, leader);
    }
    let local = placed.is_some_and(|a| a.replicas.contains(&config.node_id));
    (local, leader)
}

/// Opens a topic the broker does not have open yet: a log for each partition it holds,
/// a remote marker for the rest.
fn open_topic(
    config: &BrokerConfig,
    t: &TopicImage,
    image: &MetadataImage,
    when: Reconcile,
    appended: &Arc<tokio::sync::Notify>,
) -> Result<Topic, BrokerError> {
    let record = TopicRecord::from_image(t);
    let effective = effective_config(config, &record)?;
    effective.warn_adjusted(&record.name);
    let mut partitions = Vec::with_capacity(record.partitions as usize);
    for p in 0..record.partitions {
        let (local, leader) = hosts(config, image, &record.name, p);
        if !local {
            partitions.push(Arc::new(Partition::remote(record.name.clone(), p, leader)));
            continue;
        }
        partitions.push(Arc::new(
            open_partition(config, &record.name, p, &effective, t.topic_id, when)
                .with_append_signal(appended),
        ));
    }
    Ok(Topic {
        topic_id: t.topic_id,
        record,
        config: effective,
        partitions,
    })
}

/// A topic that is open and still exists: new configs applied to its logs, and the
/// placement of partitions held elsewhere updated. `None` when nothing changed.
fn refresh(
    config: &BrokerConfig,
    open: &Topic,
    t: &TopicImage,
    image: &MetadataImage,
    appended: &Arc<tokio::sync::Notify>,
) -> Result<Option<Topic>, BrokerError> {
    let record = TopicRecord::from_image(t);
    let mut changed = false;
    let effective = if record.configs != open.record.configs {
        changed = true;
        let effective = effective_config(config, &record)?;
        for p in &open.partitions {
            // An offline partition takes the topic's configs when it is reopened.
            if let Ok(log) = p.log() {
                log.set_config(effective.log.clone());
            }
        }
        effective
    } else {
        open.config.clone()
    };
    let mut partitions = open.partitions.clone();
    for (i, slot) in partitions.iter_mut().enumerate() {
        let index = i as u32;
        let (local, leader) = hosts(config, image, &t.name, index);
        if slot.is_local() == local && (local || slot.remote_leader() == leader) {
            continue;
        }
        changed = true;
        *slot = if local {
            Arc::new(
                open_partition(
                    config,
                    &t.name,
                    index,
                    &effective,
                    t.topic_id,
                    Reconcile::Live,
                )
                .with_append_signal(appended),
            )
        } else {
            // Moved off this broker (a finished reassignment): its log is retired and
            // its data removed, since no replica of it lives here any more. Requests
            // still holding the partition are sent to the leader.
            if let Some(log) = slot.move_away(leader)
                && let Err(e) = log.retire()
            {
                tracing::warn!(topic = %t.name, partition = index, error = %e, "flush before removing a moved replica failed");
            }
            let dir = partition_dir(&config.data_dir, &t.name, index);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::info!(topic = %t.name, partition = index, "replica moved off this broker; its data is removed")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove a moved replica's data")
                }
            }
            Arc::new(Partition::remote(t.name.clone(), index, leader))
        };
    }
    Ok(changed.then(|| Topic {
        topic_id: open.topic_id,
        record,
        config: effective,
        partitions,
    }))
}

/// A topic's effective configs on this broker. In a cluster no log is a sole replica:
/// its high watermark is moved by its leader as the in-sync replicas report.
pub(crate) fn effective_config(
    config: &BrokerConfig,
    record: &TopicRecord,
) -> Result<topic_config::EffectiveConfig, BrokerError> {
    let mut effective = topic_config::resolve(&config.topic_defaults, &record.configs)?;
    effective.log.sole_replica = !config.cluster.is_cluster();
    Ok(effective)
}

/// Ends a deleted topic: waiting readers wake with `UNKNOWN_TOPIC`, its directories go.
fn close_deleted(config: &BrokerConfig, topic: &Topic) {
    for p in &topic.partitions {
        p.mark_deleted();
    }
    for (index, p) in topic.partitions.iter().enumerate() {
        if !p.is_local() {
            continue;
        }
        let dir = partition_dir(&config.data_dir, &topic.record.name, index as u32);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted topic's data; it is removed at next start");
        }
    }
}

/// Opens one partition's log; one that cannot be opened is quarantined (offline, its
/// files left for the operator) and every other partition still serves.
///
/// The directory's `partition.metadata` names the topic id its data belongs to. Data of
/// another id is left from an earlier topic of the same name (deleted, perhaps while
/// this broker was down, and created again) and is removed, never adopted. A directory
/// without the file predates it: adopted at start, removed when the topic is new to a
/// running broker.
fn open_partition(
    config: &BrokerConfig,
    topic: &str,
    p: u32,
    effective: &topic_config::EffectiveConfig,
    topic_id: TopicId,
    when: Reconcile,
) -> Partition {
    let dir = partition_dir(&config.data_dir, topic, p);
    let marker = dir.join(quiver_storage::PARTITION_METADATA);
    let recorded = recorded_topic_id(&marker);
    let stale = match &recorded {
        Marker::Names(id) => *id != topic_id,
        Marker::Missing => when == Reconcile::Live,
        // Data is never removed on evidence that cannot be read.
        Marker::Unreadable(reason) => {
            tracing::warn!(file = %marker.display(), reason = %reason, "cannot tell which topic this partition's data belongs to; keeping it");
            false
        }
    };
    if stale && dir.exists() {
        tracing::warn!(dir = %dir.display(), topic_id = %topic_id, "removing data an earlier topic of this name left");
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove the data of an earlier topic of this name");
        }
    }
    let partition = match PartitionLog::open(&dir, effective.log.clone()) {
        Ok(log) => Partition::new(topic.to_string(), p, log),
        Err(source) => {
            let reason = source.to_string();
            tracing::error!(topic = %topic, partition = p, dir = %dir.display(), reason = %reason, "partition quarantined: its log could not be opened; fix the cause, then run `quiver topic reopen {topic} {p}`");
            return Partition::offline(topic.to_string(), p, reason);
        }
    };
    if stale || recorded != Marker::Names(topic_id) {
        let text = format!("version: 0\ntopic_id: {topic_id}\n");
        if let Err(e) = quiver_durable::write_atomic(&marker, text.as_bytes()) {
            tracing::warn!(file = %marker.display(), error = %e, "could not record the partition's topic id");
        }
    }
    partition
}

/// What a partition directory's `partition.metadata` says.
#[derive(Debug, PartialEq, Eq)]
enum Marker {
    Missing,
    Names(TopicId),
    Unreadable(String),
}

fn recorded_topic_id(marker: &std::path::Path) -> Marker {
    let text = match std::fs::read_to_string(marker) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Marker::Missing,
        Err(e) => return Marker::Unreadable(e.to_string()),
    };
    let id = text
        .lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .map(|id| id.trim().parse::<TopicId>());
    match id {
        Some(Ok(id)) => Marker::Names(id),
        Some(Err(e)) => Marker::Unreadable(e),
        None => Marker::Unreadable("it names no topic_id".into()),
    }
}

/// Topics by name, as the broker keeps them.
pub(crate) type TopicMap = BTreeMap<String, Arc<Topic>>;
