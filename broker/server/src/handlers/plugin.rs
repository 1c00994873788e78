//! Plugin registry APIs: add, list, describe, remove, test and logs.
//!
//! Registry work compiles components and calls guests, so it runs on the blocking pool.
//! A test runs the plugin over stored records through a binding of its own, pinned to one
//! version and dropped afterwards: it never touches the bindings topics use.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quiver_plugin_host::log::{LogEntry, LogLevel, LogSource};
use quiver_plugin_host::{PluginInfo, PluginKind, RecordView};
use quiver_proto::Record;
use quiver_proto::api::{
    PluginAddRequest, PluginAddResponse, PluginDecision, PluginDescribeRequest, PluginDescription,
    PluginListRequest, PluginListResponse, PluginLogEntry, PluginLogsRequest, PluginLogsResponse,
    PluginOutcome, PluginRemoveRequest, PluginRemoveResponse, PluginTestRequest,
    PluginTestResponse, PluginVersionInfo,
};
use quiver_proto::batch;

use super::now_ms;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::listener::Context;
use crate::plugins::{bound_topics, call_error, registry_error};

/// Log entries returned by one PLUGIN_LOGS answer at most.
const MAX_LOG_ENTRIES: usize = 1000;

/// Runs registry or guest work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BrokerError::Internal(format!("plugin task failed: {e}")))?
}

pub(super) async fn add(
    b: &Broker,
    req: PluginAddRequest,
    component: Bytes,
) -> Result<PluginAddResponse, BrokerError> {
    let max = b.plugins.config().max_component_bytes;
    if component.is_empty() {
        return Err(BrokerError::InvalidPlugin(format!(
            "plugin `{}`: the upload carries no component bytes",
            req.name
        )));
    }
    if component.len() > max {
        return Err(BrokerError::InvalidPlugin(format!(
            "plugin `{}` is {} bytes; the broker accepts components up to {max} bytes \
             (plugins.max_component_bytes)",
            req.name,
            component.len()
        )));
    }
    let plugins = Arc::clone(&b.plugins);
    let meta = blocking(move || plugins.add(&req.name, &component, req.kind.as_deref())).await?;
    tracing::info!(plugin = %meta.name, version = meta.version, kind = %meta.kind, "plugin version added");
    Ok(PluginAddResponse {
        name: meta.name,
        version: meta.version,
        kind: meta.kind.to_string(),
    })
}

pub(super) async fn list(
    b: &Broker,
    _req: PluginListRequest,
) -> Result<PluginListResponse, BrokerError> {
    let topics = b.topics();
    Ok(PluginListResponse {
        plugins: b
            .plugins
            .registry()
            .list()
            .into_iter()
            .map(|info| {
                let bound = bound_topics(&topics, &info.name, None, None);
                description(info, bound)
            })
            .collect(),
    })
}

pub(super) async fn describe(
    b: &Broker,
    req: PluginDescribeRequest,
) -> Result<PluginDescription, BrokerError> {
    let info = b
        .plugins
        .registry()
        .describe(&req.name)
        .map_err(registry_error)?;
    let bound = bound_topics(&b.topics(), &req.name, None, None);
    Ok(description(info, bound))
}

pub(super) async fn remove(
    b: &Broker,
    req: PluginRemoveRequest,
) -> Result<PluginRemoveResponse, BrokerError> {
    let info = b
        .plugins
        .registry()
        .describe(&req.name)
        .map_err(registry_error)?;
    let bound = bound_topics(&b.topics(), &req.name, req.version, Some(info.current));
    let plugins = Arc::clone(&b.plugins);
    let removed =
        blocking(move || plugins.remove(&req.name, req.version, &bound, req.force)).await?;
    tracing::info!(?removed, "plugin versions removed");
    Ok(PluginRemoveResponse {
        removed_versions: removed,
    })
}

pub(super) async fn test(
    b: &Broker,
    req: PluginTestRequest,
) -> Result<PluginTestResponse, BrokerError> {
    let topic = b.topic(&req.topic)?;
    let partition = Arc::clone(topic.partition(req.partition)?);
    let partition_count = topic.partitions.len() as u32;
    let count = req.count.min(b.plugins.config().max_test_records) as usize;
    let max_bytes = b.config.limits.max_fetch_bytes as usize;

    // Read whole batches until `count` records at or after `from_offset` are in hand.
    let mut records: Vec<Record> = Vec::with_capacity(count.min(1024));
    let mut offset = req.from_offset.max(partition.log().log_start_offset());
    while records.len() < count {
        let out = partition.read(offset, max_bytes).await?;
        if out.bytes.is_empty() {
            break;
        }
        for piece in batch::split(&out.bytes) {
            let (header, bytes) = piece?;
            if header.is_control() {
                continue;
            }
            let decoded = batch::decode_records(&bytes)?;
            records.extend(decoded.into_iter().filter(|r| r.offset >= req.from_offset));
        }
        offset = out.next_offset;
    }
    records.truncate(count);

    let plugins = Arc::clone(&b.plugins);
    blocking(move || {
        let registry = plugins.registry();
        let loaded = registry
            .get(&req.name, req.version)
            .map_err(registry_error)?;
        let version = Some(loaded.version());
        let params: Vec<(String, String)> = req.params.into_iter().collect();
        let views: Vec<RecordView<'_>> = records.iter().map(RecordView::from).collect();
        let outcomes: Vec<PluginOutcome> = match loaded.kind() {
            PluginKind::Partitioner => registry
                .partitioner(&req.name, version, params)
                .map_err(registry_error)?
                .partition(&views, partition_count)
                .map_err(call_error)?
                .into_iter()
                .map(PluginOutcome::Partition)
                .collect(),
            PluginKind::Filter => registry
                .filter(&req.name, version, params)
                .map_err(registry_error)?
                .keep(&views)
                .map_err(call_error)?
                .into_iter()
                .map(PluginOutcome::Keep)
                .collect(),
            PluginKind::Compactor => {
                let policy = registry
                    .compactor(&req.name, version, params)
                    .map_err(registry_error)?;
                let keys = policy.keys(&views).map_err(call_error)?;
                let retained = policy.retain(&views, now_ms()).map_err(call_error)?;
                keys.into_iter()
                    .zip(retained)
                    .map(|(key, retain)| PluginOutcome::Compaction { key, retain })
                    .collect()
            }
        };
        Ok(PluginTestResponse {
            version: loaded.version(),
            kind: loaded.kind().to_string(),
            decisions: records
                .iter()
                .zip(outcomes)
                .map(|(r, outcome)| PluginDecision {
                    offset: r.offset,
                    outcome,
                })
                .collect(),
        })
    })
    .await
}

pub(super) async fn logs(
    ctx: &Context,
    req: PluginLogsRequest,
) -> Result<PluginLogsResponse, BrokerError> {
    let b = &ctx.broker;
    let log = b
        .plugins
        .registry()
        .log(&req.name)
        .map_err(registry_error)?;
    let since = req.since_seq;
    let mut entries = log.read(since, MAX_LOG_ENTRIES);
    if entries.is_empty() && req.follow {
        // The wait parks a blocking-pool thread for at most the configured bound; the
        // request itself ends early on shutdown.
        let wait = Duration::from_millis(u64::from(b.plugins.config().logs_follow_max_ms));
        let waiting = Arc::clone(&log);
        let follow = blocking(move || Ok(waiting.wait(since, MAX_LOG_ENTRIES, wait)));
        tokio::select! {
            got = follow => entries = got?,
            () = ctx.shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
        }
    }
    let next_seq = entries
        .last()
        .map_or_else(|| since.min(log.next_seq()), |e| e.seq + 1);
    Ok(PluginLogsResponse {
        entries: entries.into_iter().map(log_entry).collect(),
        next_seq,
    })
}

fn description(info: PluginInfo, bound_topics: Vec<String>) -> PluginDescription {
    PluginDescription {
        kind: info.kind().map_or_else(String::new, |k| k.to_string()),
        name: info.name,
        current_version: info.current,
        versions: info
            .versions
            .into_iter()
            .map(|v| PluginVersionInfo {
                version: v.version,
                kind: v.kind.to_string(),
                size_bytes: v.size_bytes,
                sha256: v.sha256,
                added_ms: v.added_ms,
            })
            .collect(),
        bound_topics,
    }
}

fn log_entry(e: LogEntry) -> PluginLogEntry {
    let level = match e.level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let source = match e.source {
        LogSource::Guest => "guest",
        LogSource::Stdout => "stdout",
        LogSource::Stderr => "stderr",
        LogSource::Host => "host",
    };
    PluginLogEntry {
        seq: e.seq,
        time_ms: e.time_ms,
        level: level.to_string(),
        source: source.to_string(),
        version: e.version,
        message: e.message,
    }
}
