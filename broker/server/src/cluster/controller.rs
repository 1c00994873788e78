//! Liveness in a cluster: every broker heartbeats the controller, and the controller (the
//! broker that leads the metadata quorum) fences brokers whose heartbeats stop and lets
//! them back when they resume.
//!
//! The judging is `quiver_metadata::Liveness`, a pure function of the heartbeats heard
//! and the time; this task gives it both and proposes what it decides. Fencing moves the
//! fenced broker's leaderships to in-sync replicas in the same record, so a partition is
//! led again as soon as the record is applied. Every broker also runs its leaders' ISR
//! check here, on the same beat. Every `cluster.leader_rebalance_interval_ms` the
//! controller also gives partitions back to their preferred leaders (their first
//! replica) where those are in sync again, and on every beat it finishes the
//! reassignments whose new replicas have all caught up. A broker that takes over as
//! controller counts the one it replaces as silent since an election timeout before,
//! so that a lost controller's partitions move about as soon as any lost broker's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_metadata::{Liveness, MetadataRecord};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;

/// Preferred-leader changes (and finished reassignments) proposed per heartbeat beat.
const PREFERRED_PER_BEAT: usize = 8;

/// Runs until `shutdown`: a heartbeat every `cluster.broker_heartbeat_ms`, and while
/// this broker leads the quorum, the fencing decisions.
pub(crate) async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let Some(quorum) = broker.metadata.quorum().cloned() else {
        return;
    };
    let cluster = &broker.config.cluster;
    let node = u64::from(broker.config.node_id);
    let beat = Duration::from_millis(cluster.broker_heartbeat_ms);
    let lag_check = Duration::from_millis(cluster.replica_lag_time_max_ms / 4).max(beat);
    let origin = Instant::now();
    let ms = |at: Instant| {
        i64::try_from(at.saturating_duration_since(origin).as_millis()).unwrap_or(i64::MAX)
    };
    let mut judge: Option<Liveness> = None;
    // The quorum leader this broker last followed, for when it takes over from it.
    let mut last_leader: Option<u64> = None;
    let election_timeout = i64::try_from(cluster.election_timeout_ms).unwrap_or(0);
    let mut last_lag_check = Instant::now();
    let rebalance = Duration::from_millis(cluster.leader_rebalance_interval_ms);
    let mut last_rebalance = Instant::now();
    let mut ticker = tokio::time::interval(beat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) =
            tokio::time::timeout(beat * 2, quorum.heartbeat(node, broker.incarnation)).await
        {
            tracing::debug!(error = %e, "heartbeat to the controller timed out");
        }
        if last_lag_check.elapsed() >= lag_check {
            last_lag_check = Instant::now();
            broker.shrink_lagging_isrs();
        }
        if !quorum.is_leader() {
            judge = None;
            // Kept through an election (no leader known meanwhile).
            if let Some(leader) = quorum.status().leader.filter(|l| *l != node) {
                last_leader = Some(leader);
            }
            continue;
        }
        let now = ms(Instant::now());
        let judge = judge.get_or_insert_with(|| {
            tracing::info!("controlling the cluster: judging broker liveness");
            let mut judge = Liveness::new(cluster.broker_session_timeout_ms, now);
            // The election that made this broker controller means the one it replaces
            // had been silent for an election timeout at least.
            if let Some(previous) = last_leader.and_then(|l| u32::try_from(l).ok())
                && let Some(reg) = broker.metadata.image().broker(previous)
            {
                judge.silent_since(previous, reg.incarnation, now - election_timeout);
            }
            judge
        });
        for (broker_id, incarnation, at) in quorum.heartbeats() {
            if let Ok(id) = u32::try_from(broker_id) {
                judge.heartbeat(id, incarnation, ms(at));
            }
        }
        for record in judge.decisions(&broker.metadata.image(), now) {
            tracing::warn!(decision = ?record, "broker liveness changed");
            propose(&broker, record, "liveness decision").await;
        }
        for change in quiver_metadata::reassignment_completions(&broker.metadata.image())
            .into_iter()
            .take(PREFERRED_PER_BEAT)
        {
            tracing::info!(topic = %change.topic, partition = change.partition, replicas = ?change.replicas, "reassignment complete: switching to the new replicas");
            propose(
                &broker,
                MetadataRecord::PartitionChange(change),
                "reassignment",
            )
            .await;
        }
        if !rebalance.is_zero() && last_rebalance.elapsed() >= rebalance {
            let changes = quiver_metadata::preferred_leader_changes(&broker.metadata.image());
            // A few per beat, so heartbeats and fencing are never held up for long; the
            // rest go on the next beats.
            if changes.len() <= PREFERRED_PER_BEAT {
                last_rebalance = Instant::now();
            }
            for change in changes.into_iter().take(PREFERRED_PER_BEAT) {
                tracing::info!(topic = %change.topic, partition = change.partition, leader = ?change.leader, "giving the partition back to its preferred leader");
                propose(
                    &broker,
                    MetadataRecord::PartitionChange(change),
                    "preferred leader election",
                )
                .await;
            }
        }
    }
}

/// Appends a decision of the controller's to the metadata; a refusal (the image moved
/// on meanwhile) is logged, and the next round decides again.
async fn propose(broker: &Arc<Broker>, record: MetadataRecord, what: &str) {
    let metadata = Arc::clone(&broker.metadata);
    let outcome = tokio::task::spawn_blocking(move || metadata.append(&record)).await;
    match outcome {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "{what} not recorded"),
        Err(e) => tracing::warn!(error = %e, "{what} task failed"),
    }
}
