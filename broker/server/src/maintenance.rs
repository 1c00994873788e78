//! Background upkeep of every partition: age-based rolling, interval flushes, retention,
//! and compaction of compacted topics, run on a fixed period on the blocking pool.
//!
//! Compaction of a partition runs when a segment has closed since its last compaction, so
//! an idle log is not rewritten again and again. A topic's `compaction.policy` plugin
//! decides what survives through `compaction_plugin.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use quiver_plugin_host::log::{LogLevel, LogSource};

use crate::broker::{Broker, Topic};
use crate::compaction_plugin::PluginPolicy;
use crate::partition::Partition;
use crate::service::now_ms;

/// Runs until `shutdown` fires; one pass over all partitions per period.
pub(crate) async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(broker.config.maintenance_interval_ms.max(10));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let b = Arc::clone(&broker);
        let pass = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for topic in b.topics() {
                let compacts = topic.config.log.cleanup.compacts();
                for p in &topic.partitions {
                    let Ok(log) = p.log() else {
                        continue; // offline: nothing to maintain until it is reopened
                    };
                    match log.tick(now) {
                        Ok(outcome) => {
                            tracing::trace!(topic = %p.topic, partition = p.index, ?outcome, "maintenance")
                        }
                        Err(e) => {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "maintenance failed")
                        }
                    }
                    if compacts && p.take_compaction_due() {
                        compact(&b, &topic, p, now);
                    }
                }
            }
        });
        if let Err(e) = pass.await {
            tracing::error!(error = %e, "maintenance pass panicked");
        }
    }
}

/// Compacts one partition's closed segments with the topic's policy: its
/// `compaction.policy` plugin when it binds one, latest-per-key otherwise. A failure
/// leaves the data as it was and is logged (with the plugin's name, also into the
/// plugin's own log); the next closed segment triggers another attempt.
fn compact(b: &Broker, topic: &Topic, partition: &Partition, now: i64) {
    let result = match &topic.config.compaction_policy {
        None => {
            let mut policy = quiver_storage::KeepLatest {
                delete_retention_ms: topic.config.log.delete_retention_ms,
            };
            partition.log().and_then(|log| {
                log.compact(&mut policy, now)
                    .map_err(|source| partition.storage_error(source))
            })
        }
        Some(reference) => {
            let plugin = match b
                .plugins
                .compactor(reference, &topic.config.compaction_params)
            {
                Ok(plugin) => plugin,
                Err(e) => {
                    tracing::warn!(topic = %partition.topic, partition = partition.index, plugin = %reference, error = %e, "compaction policy plugin unavailable; data left as it was");
                    return;
                }
            };
            let result = partition.log().and_then(|log| {
                log.compact(&mut PluginPolicy::new(&plugin), now)
                    .map_err(|source| partition.storage_error(source))
            });
            if let Err(e) = &result {
                let current = plugin.current();
                current.log().push(
                    LogLevel::Error,
                    LogSource::Host,
                    current.version(),
                    &format!(
                        "compaction of {}-{} failed, data left as it was: {e}",
                        partition.topic, partition.index
                    ),
                );
            }
            result
        }
    };
    match result {
        Ok(outcome) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, ?outcome, "compacted")
        }
        Err(e) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, policy = ?topic.config.compaction_policy, error = %e, "compaction failed; data left as it was")
        }
    }
}
