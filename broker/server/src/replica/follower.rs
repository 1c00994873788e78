//! The follower's side of replication: one fetch session per leader broker, carrying
//! every partition this broker follows there.
//!
//! A session asks for each partition from its log end, with the epoch of its last
//! batch. What comes back is appended as the leader stored it (offsets and epochs
//! kept), fsynced, and only then fetched past, so the leader counts nothing this
//! follower could lose. A partition told it diverges is truncated at the point named and
//! fetched again; one whose leader says its epoch is not current waits for the metadata
//! to move it. Sessions start when this broker first follows a partition led there and
//! end when it follows none.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{PartitionAnswer, PartitionFetch, Refusal, ReplicaFetch, ReplicaFetchAnswer, Role};
use crate::broker::Broker;
use crate::partition::Partition;
use crate::service::now_ms;

/// How long a leader may hold a fetch that finds nothing new.
const FETCH_WAIT_MS: u32 = 500;
/// The most bytes one fetch asks for, across its partitions.
const FETCH_MAX_BYTES: u32 = 8 << 20;
/// How often the sessions are matched to the partitions followed.
const RESCAN: Duration = Duration::from_millis(100);

/// A future a [`ReplicaLink`] returns.
pub type LinkFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ReplicaFetchAnswer, String>> + Send + 'a>>;

/// Carries a fetch to a leader broker and brings back its answer (QUIC between
/// brokers; see `quic/replica.rs`).
pub trait ReplicaLink: Send + Sync + std::fmt::Debug + 'static {
    fn fetch<'a>(&'a self, leader: u32, address: &'a str, fetch: ReplicaFetch) -> LinkFuture<'a>;
}

/// Keeps one fetch session running per leader this broker follows partitions of.
pub(crate) async fn run(
    broker: Arc<Broker>,
    link: Arc<dyn ReplicaLink>,
    shutdown: CancellationToken,
) {
    let mut sessions: HashMap<u32, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        sessions.retain(|_, task| !task.is_finished());
        for leader in broker.followed_leaders() {
            sessions.entry(leader).or_insert_with(|| {
                tokio::spawn(session(
                    Arc::clone(&broker),
                    Arc::clone(&link),
                    leader,
                    shutdown.clone(),
                ))
            });
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
    for (_, task) in sessions {
        task.abort();
    }
}

impl Broker {
    /// The brokers that lead some partition this broker follows.
    fn followed_leaders(&self) -> Vec<u32> {
        let mut leaders: Vec<u32> = self
            .topics()
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| match &*p.replica.lock() {
                Role::Follower {
                    leader: Some(l), ..
                } => Some(*l),
                _ => None,
            })
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        leaders
    }

    /// The partitions this broker follows on `leader`, each with the epoch it knows.
    fn followed_on(&self, leader: u32) -> Vec<(Arc<Partition>, u32)> {
        self.topics()
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| match &*p.replica.lock() {
                Role::Follower {
                    leader: Some(l),
                    leader_epoch,
                } if *l == leader => Some((Arc::clone(p), *leader_epoch)),
                _ => None,
            })
            .collect()
    }
}

/// Fetches from `leader` until this broker follows nothing there.
async fn session(
    broker: Arc<Broker>,
    link: Arc<dyn ReplicaLink>,
    leader: u32,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let followed = broker.followed_on(leader);
        if followed.is_empty() {
            return;
        }
        let image = broker.metadata.image();
        let Some(address) = image.broker(leader).and_then(|b| b.peer_listener.clone()) else {
            tracing::debug!(
                leader,
                "the leader has no inter-broker address registered yet"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut partitions = Vec::with_capacity(followed.len());
        let mut by_key = HashMap::with_capacity(followed.len());
        for (p, leader_epoch) in followed {
            // A log whose write or fsync failed reports nothing: its end may not be on disk.
            let Ok(log) = p.log() else { continue };
            if log.poisoned().is_some() {
                continue;
            }
            partitions.push(PartitionFetch {
                topic: p.topic.clone(),
                partition: p.index,
                leader_epoch,
                fetch_offset: log.log_end_offset(),
                last_fetched_epoch: log.latest_epoch().unwrap_or(-1),
            });
            by_key.insert((p.topic.clone(), p.index), (p, leader_epoch));
        }
        let fetch = ReplicaFetch {
            replica_id: broker.config.node_id,
            max_wait_ms: FETCH_WAIT_MS,
            max_bytes: FETCH_MAX_BYTES,
            partitions,
        };
        let answer = tokio::select! {
            () = shutdown.cancelled() => return,
            answer = link.fetch(leader, &address, fetch) => answer,
        };
        match answer {
            Ok(answer) => {
                backoff = Duration::from_millis(50);
                let refused =
                    tokio::task::spawn_blocking(move || apply(leader, &by_key, answer.partitions))
                        .await
                        .unwrap_or(true);
                if refused {
                    // The leader does not (yet) agree on who leads; give the metadata a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(reason) => {
                tracing::debug!(leader, address = %address, reason = %reason, "replica fetch failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Applies a leader's answer to the followed partitions; returns whether some partition
/// was refused. Blocking: appends, truncations and fsyncs.
fn apply(
    leader: u32,
    partitions: &HashMap<(String, u32), (Arc<Partition>, u32)>,
    answers: Vec<PartitionAnswer>,
) -> bool {
    let mut refused = false;
    for a in answers {
        let Some((p, epoch)) = partitions.get(&(a.topic.clone(), a.partition)) else {
            continue;
        };
        // The role may have changed while the fetch was out (this broker now leads, or
        // follows another leader): what the old leader said no longer applies.
        let still = matches!(&*p.replica.lock(), Role::Follower { leader: Some(l), leader_epoch }
            if *l == leader && leader_epoch == epoch);
        if !still {
            continue;
        }
        let Ok(log) = p.log() else { continue };
        let result = match a.outcome {
            Ok(served) => apply_served(p, &log, served),
            Err(Refusal::BelowLogStart { log_start_offset }) => {
                tracing::info!(topic = %p.topic, partition = p.index, log_start_offset, "the leader's log starts past this replica's end; starting over there");
                log.truncate_fully_and_start_at(log_start_offset)
            }
            Err(other) => {
                tracing::debug!(topic = %p.topic, partition = p.index, refusal = ?other, "the leader refused the fetch");
                refused = true;
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "could not apply what the leader sent");
        }
    }
    refused
}

fn apply_served(
    p: &Partition,
    log: &quiver_storage::PartitionLog,
    served: super::Served,
) -> Result<(), quiver_storage::StorageError> {
    if let Some((epoch, end)) = served.diverging {
        let to = truncation_point(log, epoch, end);
        tracing::info!(topic = %p.topic, partition = p.index, epoch, leader_end = end, truncate_to = to, "log diverges from the leader's; truncating");
        return log.truncate_to(to);
    }
    if !served.records.is_empty() {
        let out = log.append_replicated(&served.records, now_ms())?;
        // Fsynced before the next fetch reports the new end to the leader.
        log.sync_appended()?;
        p.stats.appended(served.records.len(), out.records);
    }
    let high_watermark = served.high_watermark.min(log.log_end_offset());
    let before = log.high_watermark();
    if log.advance_high_watermark(high_watermark) != before {
        p.publish_high_watermark(log.high_watermark());
    }
    Ok(())
}

/// Where a follower truncates when its leader says their logs diverge after `epoch`,
/// which ends at `leader_end` in the leader's log: there, or where the follower's own
/// `epoch` ends if that is sooner. The next fetch checks again with what is left, so a
/// log that went through several leaders converges one epoch at a time.
pub(crate) fn truncation_point(
    log: &quiver_storage::PartitionLog,
    epoch: i32,
    leader_end: i64,
) -> i64 {
    if epoch < 0 {
        // No epoch in common: the leader's end is all that is known to match.
        return leader_end.max(log.log_start_offset());
    }
    let own = log
        .epoch_end_offset(epoch)
        .map_or(log.log_start_offset(), |(_, o)| o);
    leader_end.min(own).max(log.log_start_offset())
}
