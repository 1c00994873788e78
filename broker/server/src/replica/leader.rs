//! The leader's side of replication: answering followers' fetches, counting how far each
//! follower has the log, and asking the controller to shrink or expand the ISR.
//!
//! A follower's fetch is the fetch path with two differences: it reads up to the log end
//! (not the high watermark), and its fetch offset tells the leader how far the follower
//! has the log, which moves the high watermark. Before anything is read the follower's
//! last epoch is checked against the leader's epochs: if its log is not a prefix of the
//! leader's, the answer is where it diverges, and no records.

use std::sync::Arc;
use std::time::Duration;

use quiver_metadata::{MetadataRecord, PartitionChange};
use quiver_storage::ReadBound;
use tokio_util::sync::CancellationToken;

use super::{
    PartitionAnswer, PartitionFetch, Refusal, ReplicaFetch, ReplicaFetchAnswer, Role, Served,
};
use crate::broker::Broker;
use crate::partition::Partition;
use crate::service::now_ms;

/// The longest a follower's fetch waits for new records.
const MAX_REPLICA_WAIT: Duration = Duration::from_secs(1);

impl Broker {
    /// Answers a follower's fetch: waits (up to its `max_wait_ms`, at most a second)
    /// while no partition has anything to send, then answers every partition.
    pub async fn serve_replica_fetch(
        self: &Arc<Self>,
        fetch: ReplicaFetch,
        shutdown: &CancellationToken,
    ) -> ReplicaFetchAnswer {
        let wait = Duration::from_millis(u64::from(fetch.max_wait_ms)).min(MAX_REPLICA_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // One budget for the whole answer: past it, partitions answer without records
            // (the first with data may go over by one batch, as a fetch always may).
            let mut budget = fetch.max_bytes as usize;
            // Registered before reading, so an append between the read and the wait wakes it.
            let appended = self.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let mut answer = ReplicaFetchAnswer::default();
            let mut worth_sending = false;
            for p in &fetch.partitions {
                let outcome = self.serve_partition(fetch.replica_id, p, budget).await;
                if let Ok(served) = &outcome {
                    budget = budget.saturating_sub(served.records.len());
                }
                worth_sending |= match &outcome {
                    Ok(served) => !served.records.is_empty() || served.diverging.is_some(),
                    Err(_) => true,
                };
                answer.partitions.push(PartitionAnswer {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    outcome,
                });
            }
            if worth_sending || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::select! {
                () = &mut appended => {}
                () = tokio::time::sleep_until(deadline) => {}
                () = shutdown.cancelled() => return answer,
            }
        }
    }

    async fn serve_partition(
        &self,
        replica_id: u32,
        fetch: &PartitionFetch,
        max_bytes: usize,
    ) -> Result<Served, Refusal> {
        let partition = self
            .topic(&fetch.topic)
            .ok()
            .and_then(|t| t.partitions.get(fetch.partition as usize).cloned())
            .ok_or(Refusal::NotLeader)?;
        let leader_epoch = match &*partition.replica.lock() {
            Role::Leader(state) => state.leader_epoch,
            _ => return Err(Refusal::NotLeader),
        };
        if fetch.leader_epoch != leader_epoch {
            return Err(Refusal::EpochMismatch { leader_epoch });
        }
        let log = partition
            .log()
            .map_err(|e| Refusal::Failed(e.to_string()))?;
        if fetch.fetch_offset < log.log_start_offset() {
            return Err(Refusal::BelowLogStart {
                log_start_offset: log.log_start_offset(),
            });
        }
        let diverging = divergence(&log, fetch.last_fetched_epoch, fetch.fetch_offset);
        if diverging.is_some() {
            return Ok(Served::without_records(&log, diverging));
        }
        if fetch.fetch_offset > log.log_end_offset() {
            // Only a follower without epochs gets here (the epoch check catches the
            // rest): everything past the leader's end is not the leader's.
            return Ok(Served::without_records(
                &log,
                Some((-1, log.log_end_offset())),
            ));
        }
        self.follower_progress(&partition, replica_id, fetch.fetch_offset);
        let offset = fetch.fetch_offset;
        // A follower that has everything (most partitions, most of the time) is answered
        // without a trip to the blocking pool.
        if max_bytes == 0 || offset >= log.log_end_offset() {
            return Ok(Served::without_records(&log, None));
        }
        let reader = Arc::clone(&log);
        let read = tokio::task::spawn_blocking(move || {
            reader.read_with(offset, max_bytes, ReadBound::LogEnd)
        })
        .await
        .map_err(|e| Refusal::Failed(e.to_string()))?
        .map_err(|e| Refusal::Failed(e.to_string()))?;
        Ok(Served {
            high_watermark: log.high_watermark(),
            log_start_offset: read.log_start_offset,
            diverging: None,
            records: read.bytes,
        })
    }

    /// Records that follower `replica_id` has the log up to `fetch_offset`: moves the
    /// high watermark, and proposes the follower back into the ISR once it has caught up
    /// with both the high watermark and the start of this leadership.
    fn follower_progress(&self, partition: &Arc<Partition>, replica_id: u32, fetch_offset: i64) {
        let Ok(log) = partition.log() else { return };
        let now = now_ms();
        let log_end = log.log_end_offset();
        let high_watermark = log.high_watermark();
        let expand = {
            let mut role = partition.replica.lock();
            let Role::Leader(state) = &mut *role else {
                return;
            };
            let Some(progress) = state.followers.get_mut(&replica_id) else {
                return; // not a replica of this partition
            };
            progress.fetched(fetch_offset, log_end, now);
            let rejoins = !state.isr.contains(&replica_id)
                && !state.isr_change_pending
                && fetch_offset >= high_watermark
                && fetch_offset >= state.epoch_start_offset;
            if rejoins {
                state.isr_change_pending = true;
                state.joining = Some(replica_id);
                let mut isr = state.isr.clone();
                isr.push(replica_id);
                isr.sort_by_key(|b| state.replicas.iter().position(|r| r == b));
                Some(isr_change(partition, state, isr))
            } else {
                None
            }
        };
        partition.update_high_watermark();
        if let Some(record) = expand {
            tracing::info!(topic = %partition.topic, partition = partition.index, follower = replica_id, "follower caught up; proposing it back into the ISR");
            self.propose_isr_change(Arc::clone(partition), record);
        }
    }

    /// Proposes `record` without waiting; the leader hears the outcome as a metadata
    /// change (or, on failure, may propose again).
    fn propose_isr_change(&self, partition: Arc<Partition>, record: MetadataRecord) {
        let metadata = Arc::clone(&self.metadata);
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || metadata.append(&record)).await;
            let failed = match result {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = failed {
                tracing::warn!(topic = %partition.topic, partition = partition.index, reason = %reason, "ISR change not made");
                if let Role::Leader(state) = &mut *partition.replica.lock() {
                    state.isr_change_pending = false;
                    state.joining = None;
                }
            }
        });
    }

    /// Takes the followers that have not caught up for `cluster.replica_lag_time_max_ms`
    /// out of the ISR of every partition this broker leads.
    pub(crate) fn shrink_lagging_isrs(&self) {
        let lag_max =
            i64::try_from(self.config.cluster.replica_lag_time_max_ms).unwrap_or(i64::MAX);
        let now = now_ms();
        for topic in self.topics() {
            for partition in &topic.partitions {
                let record = {
                    let mut role = partition.replica.lock();
                    let Role::Leader(state) = &mut *role else {
                        continue;
                    };
                    if state.isr_change_pending {
                        continue;
                    }
                    let lagging = state.lagging(now, lag_max);
                    if lagging.is_empty() {
                        continue;
                    }
                    tracing::warn!(topic = %partition.topic, partition = partition.index, ?lagging, "followers lag; proposing them out of the ISR");
                    state.isr_change_pending = true;
                    let isr = state
                        .isr
                        .iter()
                        .copied()
                        .filter(|id| !lagging.contains(id))
                        .collect();
                    isr_change(partition, state, isr)
                };
                self.propose_isr_change(Arc::clone(partition), record);
            }
        }
    }
}

impl Served {
    /// An answer carrying no records: the leader's marks, and where the follower's log
    /// diverges, if it does.
    fn without_records(log: &quiver_storage::PartitionLog, diverging: Option<(i32, i64)>) -> Self {
        Served {
            high_watermark: log.high_watermark(),
            log_start_offset: log.log_start_offset(),
            diverging,
            records: bytes::Bytes::new(),
        }
    }
}

/// Where a follower whose last batch has `last_fetched_epoch` and whose log ends at
/// `fetch_offset` departs from `log`, the leader's: `None` when the follower's log is a
/// prefix of it, else the largest epoch at or below the follower's and where it ends
/// here (`(-1, log start)` for an epoch newer than any here, which cannot be trusted at
/// all).
pub(crate) fn divergence(
    log: &quiver_storage::PartitionLog,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    match log.epoch_end_offset(last_fetched_epoch) {
        Some((epoch, end)) if epoch != last_fetched_epoch || end < fetch_offset => {
            Some((epoch, end))
        }
        Some(_) => None,
        None => Some((-1, log.log_start_offset())),
    }
}

/// The record that sets `partition`'s ISR to `isr` under the same leader.
fn isr_change(partition: &Partition, state: &super::LeaderState, isr: Vec<u32>) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChange {
        topic: partition.topic.clone(),
        partition: partition.index,
        leader: Some(state.me),
        leader_epoch: state.leader_epoch,
        isr,
        replicas: state.replicas.clone(),
        partition_epoch: Some(state.partition_epoch),
    })
}
