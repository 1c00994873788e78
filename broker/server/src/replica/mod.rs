//! Replicated partitions: what a broker does as a partition's leader or as one of its
//! followers.
//!
//! The metadata says, per partition, which brokers hold it, who leads at which leader
//! epoch, and which replicas are in sync (the ISR). Every broker keeps a [`Role`] per
//! partition it holds, set from the metadata on each change (`reconcile.rs`):
//!
//! - **Leader.** It takes produces and stamps its leader epoch into every batch. Its
//!   followers fetch from it ([`leader`]); from their fetch offsets it knows how far each
//!   has the log, and the high watermark is the smallest log end among the ISR. It asks
//!   the controller to shrink the ISR when a follower lags more than
//!   `cluster.replica_lag_time_max_ms`, and to expand it when one has caught up. An
//!   acks=all produce is refused with `NOT_ENOUGH_REPLICAS` while the ISR is smaller than
//!   `min.insync.replicas`, and answered once the high watermark passes it.
//! - **Follower.** It refuses clients (`NOT_LEADER`, naming the leader) and copies the
//!   leader's log ([`follower`]): one fetch session per leader broker carries all the
//!   partitions it follows there. A follower that comes back with records the leader
//!   never had (a leader that lost its leadership before they were replicated) is told
//!   where its log diverges, by leader epoch, and truncates there; it never truncates
//!   to a high watermark, which may be stale (Kafka's KIP-101 and KIP-279).
//! - **Sole.** A single node's partitions: the log's high watermark is its end.
//!
//! Durability of acknowledged records: acks=all is answered only once every ISR member
//! has the batch fsynced (the leader flushes before answering, a follower after each
//! batch of appends and before it fetches again, and its fetch offset is what the leader
//! counts). Together with leaders elected only from the ISR and an ISR never emptied by
//! fencing (`quiver_metadata`'s election rules), an acknowledged record survives any
//! single failure, power loss included.

pub(crate) mod follower;
pub(crate) mod leader;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use std::sync::Arc;

use bytes::Bytes;

use crate::error::BrokerError;
use crate::partition::Partition;

/// A follower's fetch from its leader: every partition it follows there.
#[derive(Debug, Clone)]
pub struct ReplicaFetch {
    pub replica_id: u32,
    pub max_wait_ms: u32,
    pub max_bytes: u32,
    pub partitions: Vec<PartitionFetch>,
}

/// One partition of a [`ReplicaFetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFetch {
    pub topic: String,
    pub partition: u32,
    /// The leader epoch the follower knows for the partition.
    pub leader_epoch: u32,
    /// The follower's log end: it has everything before this.
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch, -1 with none.
    pub last_fetched_epoch: i32,
}

/// The leader's answer to a [`ReplicaFetch`], partition by partition.
#[derive(Debug, Clone, Default)]
pub struct ReplicaFetchAnswer {
    pub partitions: Vec<PartitionAnswer>,
}

/// One partition of a [`ReplicaFetchAnswer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAnswer {
    pub topic: String,
    pub partition: u32,
    pub outcome: Result<Served, Refusal>,
}

/// What the leader sends for a partition it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Set when the follower's log is not a prefix of the leader's: the largest epoch at
    /// or below the follower's last one, and where it ends in the leader's log. The
    /// follower truncates there before fetching again; no records come with it.
    pub diverging: Option<(i32, i64)>,
    pub records: Bytes,
}

/// Why the leader sends nothing for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// This broker does not lead the partition (or does not hold it).
    NotLeader,
    /// The follower's leader epoch is not this leader's; the follower waits for the
    /// metadata to catch up.
    EpochMismatch { leader_epoch: u32 },
    /// The fetch offset is below the leader's log start (retention removed it): the
    /// follower starts over there.
    BelowLogStart { log_start_offset: i64 },
    /// Anything else, with the reason.
    Failed(String),
}

/// What a broker is to one partition it holds.
#[derive(Debug, Clone, Default)]
pub enum Role {
    /// A single node's partition: nobody to replicate to.
    #[default]
    Sole,
    Leader(LeaderState),
    Follower {
        /// `None` while the partition has no leader.
        leader: Option<u32>,
        leader_epoch: u32,
    },
}

/// A leader's view of its partition.
#[derive(Debug, Clone)]
pub struct LeaderState {
    pub me: u32,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
    /// The log end when this leadership began: a follower is in sync only once it has
    /// reached it (it then has everything the previous leaders committed).
    pub epoch_start_offset: i64,
    /// Each follower's progress, by broker id.
    pub followers: BTreeMap<u32, Progress>,
    /// An ISR change of this leader's is being proposed; no second one until it lands.
    pub isr_change_pending: bool,
    /// A follower proposed into the ISR and not yet in it: the high watermark already
    /// counts it (Kafka's "maximal ISR", KIP-497), so nothing is committed that the
    /// ISR-to-be lacks, whoever is elected once the change lands.
    pub joining: Option<u32>,
}

/// How far one follower has the leader's log.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The follower's log end as of its last fetch; -1 before its first fetch to this
    /// leader.
    pub log_end: i64,
    /// When it last had everything the leader had (ms).
    pub caught_up_ms: i64,
    pub last_fetch_ms: i64,
    /// The leader's log end at that fetch.
    pub leader_end_at_last_fetch: i64,
}

impl Progress {
    /// A fetch from `fetch_offset` (the follower has everything before it) while the
    /// leader's log ends at `log_end`, at `now_ms`. The follower is caught up at a fetch
    /// that reaches the leader's end, or, as of its previous fetch, when it reaches where
    /// the leader ended then (Kafka's rule: a follower that keeps up with a busy leader
    /// is never exactly at its end).
    pub fn fetched(&mut self, fetch_offset: i64, log_end: i64, now_ms: i64) {
        if fetch_offset >= log_end {
            self.caught_up_ms = now_ms;
        } else if fetch_offset >= self.leader_end_at_last_fetch
            && self.leader_end_at_last_fetch >= 0
        {
            self.caught_up_ms = self.last_fetch_ms;
        }
        self.log_end = fetch_offset;
        self.last_fetch_ms = now_ms;
        self.leader_end_at_last_fetch = log_end;
    }
}

impl LeaderState {
    /// The in-sync followers that have not been caught up for more than `lag_max_ms`
    /// at `now_ms`: what the leader proposes out of the ISR.
    pub fn lagging(&self, now_ms: i64, lag_max_ms: i64) -> Vec<u32> {
        self.isr
            .iter()
            .copied()
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_some_and(|p| now_ms - p.caught_up_ms > lag_max_ms)
            })
            .collect()
    }
}

/// The placement of a partition as the metadata gives it, for [`Partition::set_role`].
#[derive(Debug, Clone)]
pub struct Placement {
    pub me: u32,
    pub leader: Option<u32>,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
}

impl Partition {
    /// Sets this broker's role from the metadata's placement (a cluster member's local
    /// partitions). Becoming leader stamps the new leader epoch into later appends; a
    /// leader that stays leader keeps its followers' progress across ISR changes. Wakes
    /// every waiter, which re-checks what it waits for.
    pub fn set_role(&self, placement: &Placement, now_ms: i64) {
        let leads = placement.leader == Some(placement.me);
        let continues = matches!(&*self.replica.lock(),
            Role::Leader(current) if current.leader_epoch == placement.leader_epoch);
        // A new leadership's epoch goes into the log before the role changes, and
        // without the role's lock: taking the epoch waits for the log's writer, which
        // may be in an fsync, and every request checks the role. Until the role
        // changes nothing appends as leader, so no batch carries the old epoch after it.
        let epoch_start_offset = (leads && !continues).then(|| {
            self.log().map_or(0, |log| {
                let epoch = i32::try_from(placement.leader_epoch).unwrap_or(i32::MAX);
                if let Err(e) = log.set_leader_epoch(epoch) {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot take the new leader epoch");
                }
                log.log_end_offset()
            })
        });
        let mut role = self.replica.lock();
        let next = if leads {
            let mut state = match &*role {
                Role::Leader(current) if current.leader_epoch == placement.leader_epoch => {
                    let mut kept = current.clone();
                    if kept.partition_epoch != placement.partition_epoch {
                        kept.isr_change_pending = false;
                        kept.joining = None;
                    }
                    kept
                }
                _ => {
                    let log_end = epoch_start_offset.unwrap_or(0);
                    tracing::info!(topic = %self.topic, partition = self.index, epoch = placement.leader_epoch, "leading");
                    LeaderState {
                        me: placement.me,
                        leader_epoch: placement.leader_epoch,
                        partition_epoch: placement.partition_epoch,
                        replicas: Vec::new(),
                        isr: Vec::new(),
                        epoch_start_offset: log_end,
                        followers: BTreeMap::new(),
                        isr_change_pending: false,
                        joining: None,
                    }
                }
            };
            state.partition_epoch = placement.partition_epoch;
            state.replicas = placement.replicas.clone();
            state.isr = placement.isr.clone();
            for r in placement.replicas.iter().filter(|r| **r != placement.me) {
                // A follower the leader has not heard from yet gets one lag period.
                state.followers.entry(*r).or_insert(Progress {
                    log_end: -1,
                    caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    leader_end_at_last_fetch: -1,
                });
            }
            state
                .followers
                .retain(|id, _| placement.replicas.contains(id));
            Role::Leader(state)
        } else {
            Role::Follower {
                leader: placement.leader,
                leader_epoch: placement.leader_epoch,
            }
        };
        *role = next;
        drop(role);
        self.update_high_watermark();
        self.wake();
    }

    /// `Ok` where this broker takes produces and serves consumers for the partition;
    /// `NotLeader` naming the leader on a follower.
    pub fn ensure_leader(&self) -> Result<(), BrokerError> {
        match &*self.replica.lock() {
            Role::Sole | Role::Leader(_) => Ok(()),
            Role::Follower { leader, .. } => Err(BrokerError::NotLeader {
                topic: self.topic.clone(),
                partition: self.index,
                leader: *leader,
            }),
        }
    }

    /// The leader epoch a replicated partition's leader stamps into its batches; `None`
    /// on a follower and on a single node (whose log keeps its own).
    pub(crate) fn leader_epoch_if_leading(&self) -> Option<i32> {
        match &*self.replica.lock() {
            Role::Leader(state) => Some(i32::try_from(state.leader_epoch).unwrap_or(i32::MAX)),
            Role::Sole | Role::Follower { .. } => None,
        }
    }

    /// The leader epoch this broker leads the partition at: `None` on a follower, 0 on
    /// a single node.
    pub fn leading_epoch(&self) -> Option<u32> {
        match &*self.replica.lock() {
            Role::Sole => Some(0),
            Role::Leader(state) => Some(state.leader_epoch),
            Role::Follower { .. } => None,
        }
    }

    /// After a leader's append that must survive any single failure (acks=all, group
    /// commits): fsyncs its log up to `last_offset` (sharing the fsync with concurrent
    /// requests), then waits until every in-sync replica has it. Nothing to wait for on a single node, whose durability is the
    /// topic's flush policy.
    pub async fn await_durable(
        &self,
        last_offset: i64,
        min_insync: u16,
        timeout: std::time::Duration,
    ) -> Result<(), BrokerError> {
        if matches!(&*self.replica.lock(), Role::Sole) {
            return Ok(());
        }
        let log = self.log()?;
        let synced = Arc::clone(&log);
        tokio::task::spawn_blocking(move || synced.sync_appended())
            .await
            .map_err(|e| BrokerError::Internal(format!("flush task failed: {e}")))?
            .map_err(|source| self.storage_error(source))?;
        self.await_replicated(last_offset + 1, min_insync, timeout)
            .await
    }

    /// Raises the log's high watermark to the smallest log end among the ISR, as far as
    /// this leader knows them, and wakes readers when it moved. Nothing on a follower or
    /// a sole replica (whose log moves its own).
    pub fn update_high_watermark(&self) {
        // The role first: a sole replica or a follower (most appends on a single node)
        // leaves at once, without touching the log.
        let (log, target) = {
            let role = self.replica.lock();
            let Role::Leader(state) = &*role else { return };
            let Ok(log) = self.log() else { return };
            let mut target = log.log_end_offset();
            let counted = state.isr.iter().chain(state.joining.iter());
            for id in counted.filter(|id| **id != state.me) {
                match state.followers.get(id) {
                    Some(p) if p.log_end >= 0 => target = target.min(p.log_end),
                    // An in-sync follower not heard from yet holds the mark where it is.
                    _ => return,
                }
            }
            (log, target)
        };
        let before = log.high_watermark();
        if log.advance_high_watermark(target) != before {
            self.publish_high_watermark(log.high_watermark());
        }
    }

    /// Checks, before an acks=all append, that the ISR is at least `min_insync`.
    pub fn check_min_insync(&self, min_insync: u16) -> Result<(), BrokerError> {
        if let Role::Leader(state) = &*self.replica.lock()
            && state.isr.len() < usize::from(min_insync)
        {
            return Err(BrokerError::NotEnoughReplicas {
                topic: self.topic.clone(),
                partition: self.index,
                isr: state.isr.clone(),
                min_insync,
            });
        }
        Ok(())
    }

    /// Waits until every ISR member has the records before `end` (the high watermark
    /// reached it), for acks=all. Fails when this broker stops leading, or at
    /// `timeout`; a sole replica has them at once.
    pub async fn await_replicated(
        &self,
        end: i64,
        min_insync: u16,
        timeout: std::time::Duration,
    ) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watch = self.watch();
        loop {
            watch.borrow_and_update();
            if matches!(&*self.replica.lock(), Role::Sole) {
                return Ok(());
            }
            self.ensure_leader()?;
            if self.log()?.high_watermark() >= end {
                // The ISR may have shrunk below the minimum while it waited (a follower
                // dropped out and the mark moved without it): Kafka's
                // NOT_ENOUGH_REPLICAS_AFTER_APPEND.
                return self.check_min_insync(min_insync);
            }
            if tokio::time::timeout_at(deadline, watch.changed())
                .await
                .is_err()
            {
                self.check_min_insync(min_insync)?;
                return Err(BrokerError::ReplicationTimedOut {
                    topic: self.topic.clone(),
                    partition: self.index,
                    offset: end - 1,
                    waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
    }
}
