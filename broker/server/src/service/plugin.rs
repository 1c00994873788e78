//! Plugin registry operations: add, list, describe, remove, test and logs.
//!
//! Registry work compiles components and calls guests, so it runs on the blocking pool.
//! A test runs the plugin over stored records through a binding of its own, pinned to one
//! version and dropped afterwards: it never touches the bindings topics use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quiver_metadata::proposal::{PluginUpload, register_plugin_record};
use quiver_metadata::{Applied, MetadataRecord, PluginLimits as MetadataLimits, RemovePlugin};
use quiver_plugin_host::log::LogEntry;
use quiver_plugin_host::{PluginInfo, PluginKind, PluginLimits, RecordView};
use quiver_proto::Record;
use quiver_proto::batch;

use super::{BrokerService, blocking, now_ms};
use crate::auth::Caller;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::plugins::{call_error, metadata_kind, registry_error};
use quiver_metadata::{Operation, ResourceKind};

/// Log entries returned by one page of a plugin's log at most.
const MAX_LOG_ENTRIES: usize = 1000;

/// Per-call bounds an upload sets for its plugin (`quiver plugin add --timeout-ms
/// --memory-mib`). A bound left `None` is the previous version's, or the broker's default
/// when no version set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginLimitSettings {
    pub call_timeout_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// A version added to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginAdded {
    pub name: String,
    pub version: u32,
    pub kind: PluginKind,
}

/// A plugin's versions and the topics bound to it.
#[derive(Debug, Clone)]
pub struct PluginSummary {
    pub info: PluginInfo,
    pub bound_topics: Vec<String>,
    /// The limits of its versions that set none (`VersionMeta::limits` is `None`).
    pub default_limits: PluginLimits,
}

/// What a plugin decided for one record in a test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginDecision {
    Partition(u32),
    Keep(bool),
    Compaction { key: Option<Vec<u8>>, retain: bool },
}

/// The result of running a plugin over stored records: each record's offset and the
/// plugin's decision for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTrial {
    pub version: u32,
    pub kind: PluginKind,
    pub decisions: Vec<(i64, PluginDecision)>,
}

/// A page of a plugin's log and the sequence number the next page starts at.
#[derive(Debug, Clone)]
pub struct PluginLogPage {
    pub entries: Vec<LogEntry>,
    pub next_seq: u64,
}

/// Which plugin a test runs, over which records.
#[derive(Debug, Clone)]
pub struct PluginTest {
    pub name: String,
    pub version: Option<u32>,
    pub topic: String,
    pub partition: u32,
    pub from_offset: i64,
    pub count: u32,
    pub params: BTreeMap<String, String>,
}

impl BrokerService {
    /// Adds a version of plugin `name` from its component bytes; `kind`, when given, must
    /// match the world the component implements. The component is validated and stored
    /// by content hash, the version is registered in the metadata log, and then loaded:
    /// bindings that follow the name switch to it (hot reload). A refused upload is also
    /// noted in the name's log, where `plugin logs` shows it to the author.
    pub async fn add_plugin(
        &self,
        caller: &Caller,
        name: String,
        kind: Option<String>,
        limits: PluginLimitSettings,
        component: Bytes,
    ) -> Result<PluginAdded, BrokerError> {
        // Uploading code the broker runs is the most powerful act: administrators only.
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        let noted = name.clone();
        let result = self.add_checked(name, kind, limits, component).await;
        if let Err(e @ (BrokerError::InvalidPlugin(_) | BrokerError::PluginLimit(_))) = &result {
            self.broker
                .plugins
                .registry()
                .note_refused(&noted, &e.to_string());
        }
        result
    }

    async fn add_checked(
        &self,
        name: String,
        kind: Option<String>,
        limits: PluginLimitSettings,
        component: Bytes,
    ) -> Result<PluginAdded, BrokerError> {
        let max = self.broker.plugins.config().max_component_bytes;
        if component.is_empty() {
            return Err(BrokerError::InvalidPlugin(format!(
                "plugin `{name}`: the upload carries no component bytes"
            )));
        }
        if component.len() > max {
            return Err(BrokerError::InvalidPlugin(format!(
                "plugin `{name}` is {} bytes; the broker accepts components up to {max} bytes \
                 (plugins.max_component_bytes)",
                component.len()
            )));
        }
        // Version numbers come from the image: one change at a time.
        let _admin = self.broker.admin.lock().await;
        let broker = Arc::clone(&self.broker);
        let added = blocking(move || {
            let previous = broker
                .metadata
                .image()
                .plugin(&name)
                .and_then(|p| p.versions.values().next_back())
                .and_then(|v| v.limits);
            let limits = upload_limits(&name, previous, limits)?;
            let prepared = broker
                .plugins
                .prepare(&name, &component, kind.as_deref())?;
            let record = register_plugin_record(
                &broker.metadata.image(),
                PluginUpload {
                    name: name.clone(),
                    kind: metadata_kind(prepared.kind),
                    content_hash: prepared.content_hash,
                    size: prepared.size,
                    uploaded_at_ms: now_ms(),
                    limits,
                },
            );
            let version = match &record {
                MetadataRecord::RegisterPlugin(r) => r.version,
                _ => 0,
            };
            broker.metadata.append(&record)?;
            let image = broker.metadata.image();
            let registered = image
                .plugin(&name)
                .and_then(|p| p.versions.get(&version))
                .ok_or_else(|| {
                    BrokerError::Internal(format!(
                        "plugin `{name}` version {version} is not in the metadata after its registration"
                    ))
                })?;
            broker.plugins.install(&name, registered)?;
            Ok(PluginAdded {
                name,
                version,
                kind: prepared.kind,
            })
        })
        .await?;
        tracing::info!(plugin = %added.name, version = added.version, kind = %added.kind, "plugin version added");
        Ok(added)
    }

    /// Every plugin the caller may describe, with its versions and bound topics.
    pub fn list_plugins(&self, caller: &Caller) -> Vec<PluginSummary> {
        let image = self.broker.metadata.image();
        self.broker
            .plugins
            .registry()
            .list()
            .into_iter()
            .filter(|info| {
                self.may(
                    caller,
                    Operation::Describe,
                    ResourceKind::Plugin,
                    &info.name,
                )
            })
            .map(|info| PluginSummary {
                bound_topics: self.visible_topics(caller, image.bound_topics(&info.name, None)),
                info,
                default_limits: self.broker.plugins.default_limits(),
            })
            .collect()
    }

    /// One plugin with its versions and bound topics.
    pub fn describe_plugin(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<PluginSummary, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Plugin, name)?;
        let info = self
            .broker
            .plugins
            .registry()
            .describe(name)
            .map_err(registry_error)?;
        let bound = self.broker.metadata.image().bound_topics(name, None);
        Ok(PluginSummary {
            bound_topics: self.visible_topics(caller, bound),
            info,
            default_limits: self.broker.plugins.default_limits(),
        })
    }

    /// Removes one version (or all, for `None`) of a plugin; the metadata refuses it while
    /// topics are bound to what would go, unless `force`. Answers with the versions
    /// removed.
    pub async fn remove_plugin(
        &self,
        caller: &Caller,
        name: String,
        version: Option<u32>,
        force: bool,
    ) -> Result<Vec<u32>, BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        let _admin = self.broker.admin.lock().await;
        let broker = Arc::clone(&self.broker);
        let removed = blocking(move || {
            let applied = broker
                .metadata
                .append(&MetadataRecord::RemovePlugin(RemovePlugin {
                    name: name.clone(),
                    version,
                    force,
                }))?;
            let Applied::PluginRemoved { versions, .. } = applied else {
                return Err(BrokerError::Internal(format!(
                    "removing plugin `{name}` was answered with {applied:?}"
                )));
            };
            broker.plugins.uninstall(&name, &versions)?;
            Ok(versions)
        })
        .await?;
        tracing::info!(?removed, "plugin versions removed");
        Ok(removed)
    }

    /// Runs a plugin over up to `count` stored records of a partition, from
    /// `from_offset` on, and reports each decision. Reading and the guest calls share
    /// one hop to the blocking pool.
    pub async fn test_plugin(
        &self,
        caller: &Caller,
        test: PluginTest,
    ) -> Result<PluginTrial, BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Topic, &test.topic)?;
        self.check(
            caller,
            Operation::Describe,
            ResourceKind::Plugin,
            &test.name,
        )?;
        let topic = self.broker.topic(&test.topic)?;
        let partition = Arc::clone(topic.partition(test.partition)?);
        let partition_count = topic.partitions.len() as u32;
        let count = test
            .count
            .min(self.broker.plugins.config().max_test_records) as usize;
        let max_bytes = self.broker.config.limits.max_fetch_bytes as usize;
        let plugins = Arc::clone(&self.broker.plugins);
        blocking(move || {
            let records = read_records(&partition, test.from_offset, count, max_bytes)?;
            let registry = plugins.registry();
            let loaded = registry
                .get(&test.name, test.version)
                .map_err(registry_error)?;
            let version = Some(loaded.version());
            let params: Vec<(String, String)> = test.params.into_iter().collect();
            let views: Vec<RecordView<'_>> = records.iter().map(RecordView::from).collect();
            let outcomes: Vec<PluginDecision> = match loaded.kind() {
                PluginKind::Partitioner => registry
                    .partitioner(&test.name, version, params)
                    .map_err(registry_error)?
                    .partition(&views, partition_count)
                    .map_err(call_error)?
                    .into_iter()
                    .map(PluginDecision::Partition)
                    .collect(),
                PluginKind::Filter => registry
                    .filter(&test.name, version, params)
                    .map_err(registry_error)?
                    .keep(&views)
                    .map_err(call_error)?
                    .into_iter()
                    .map(PluginDecision::Keep)
                    .collect(),
                PluginKind::Compactor => {
                    let policy = registry
                        .compactor(&test.name, version, params)
                        .map_err(registry_error)?;
                    let keys = policy.keys(&views).map_err(call_error)?;
                    let retained = policy.retain(&views, now_ms()).map_err(call_error)?;
                    keys.into_iter()
                        .zip(retained)
                        .map(|(key, retain)| PluginDecision::Compaction { key, retain })
                        .collect()
                }
            };
            Ok(PluginTrial {
                version: loaded.version(),
                kind: loaded.kind(),
                decisions: records.iter().map(|r| r.offset).zip(outcomes).collect(),
            })
        })
        .await
    }

    /// A page of a plugin's log from sequence number `since` on. With `follow`, an empty
    /// page waits (up to `plugins.logs_follow_max_ms`) for the next entry.
    pub async fn plugin_logs(
        &self,
        caller: &Caller,
        name: &str,
        since: u64,
        follow: bool,
    ) -> Result<PluginLogPage, BrokerError> {
        // A plugin's log is shared by every topic and consumer that runs it and may quote
        // their records: administrators only.
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        let plugins = &self.broker.plugins;
        let log = plugins.registry().log(name).map_err(registry_error)?;
        let mut entries = log.read(since, MAX_LOG_ENTRIES);
        if entries.is_empty() && follow {
            // The wait parks a blocking-pool thread for at most the configured bound; the
            // request itself ends early on shutdown.
            let wait = Duration::from_millis(u64::from(plugins.config().logs_follow_max_ms));
            let waiting = Arc::clone(&log);
            let follow = blocking(move || Ok(waiting.wait(since, MAX_LOG_ENTRIES, wait)));
            tokio::select! {
                got = follow => entries = got?,
                () = self.shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
            }
        }
        let next_seq = entries
            .last()
            .map_or_else(|| since.min(log.next_seq()), |e| e.seq + 1);
        Ok(PluginLogPage { entries, next_seq })
    }
}

/// The limits a new version of `name` is registered with: `given` over the `previous`
/// version's, each checked against its bounds. 0 in a stored field stands for the
/// broker's default, so a bound never set follows `[plugins]`.
fn upload_limits(
    name: &str,
    previous: Option<MetadataLimits>,
    given: PluginLimitSettings,
) -> Result<Option<MetadataLimits>, BrokerError> {
    if given == PluginLimitSettings::default() {
        return Ok(previous);
    }
    let mut limits = previous.unwrap_or(MetadataLimits {
        call_timeout_ms: 0,
        memory_bytes: 0,
        max_idle_instances: 0,
    });
    if let Some(ms) = given.call_timeout_ms {
        limits.call_timeout_ms = PluginLimits::check_timeout_ms(name, "call_timeout_ms", ms)?;
    }
    if let Some(bytes) = given.memory_bytes {
        limits.memory_bytes = PluginLimits::check_memory_bytes(name, "memory_bytes", bytes)?;
    }
    Ok(Some(limits))
}

/// Whole batches read until `count` records at or after `from` are in hand (fewer if
/// the log ends first).
fn read_records(
    partition: &Partition,
    from: i64,
    count: usize,
    max_bytes: usize,
) -> Result<Vec<Record>, BrokerError> {
    let log = partition.log()?;
    let mut records: Vec<Record> = Vec::with_capacity(count.min(1024));
    let mut offset = from.max(log.log_start_offset());
    while records.len() < count {
        let out = log
            .read(offset, max_bytes)
            .map_err(|e| partition.storage_error(e))?;
        if out.bytes.is_empty() {
            break;
        }
        for piece in batch::split(&out.bytes) {
            let (header, bytes) = piece?;
            if header.is_control() {
                continue;
            }
            let decoded = batch::decode_records(&bytes)?;
            records.extend(decoded.into_iter().filter(|r| r.offset >= from));
        }
        offset = out.next_offset;
    }
    records.truncate(count);
    Ok(records)
}

impl BrokerService {
    /// `topics` without those the caller may not describe.
    fn visible_topics(&self, caller: &Caller, topics: Vec<String>) -> Vec<String> {
        topics
            .into_iter()
            .filter(|t| self.may(caller, Operation::Describe, ResourceKind::Topic, t))
            .collect()
    }
}
