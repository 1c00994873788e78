//! A consumer's membership in its group: join and sync inside `poll`, a background
//! heartbeat task, commits, and leaving on close.
//!
//! The heartbeat task only keeps the session alive and raises flags
//! ([`Session::flag`]); joins, revocations and callbacks happen in
//! [`Membership::ensure_active`], called by `poll`, so the application sees rebalances
//! on its own task and between the records it was given.
//!
//! Protocols: with `cooperative-sticky` the member keeps reading what it keeps while the
//! group rebalances and gives up only what the new assignment leaves out (the broker then
//! starts a follow-up rebalance that hands those partitions on). With the other
//! (eager) strategies it gives up everything before rejoining.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_proto::ErrorCode;
use quiver_proto::api::{
    CommittedOffset, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
    TopicPartition,
};
use tokio::task::JoinHandle;

use super::commit::Committer;
use super::config::ConsumerConfig;
use super::fetcher::Fetcher;
use super::rebalance::RebalanceListener;
use super::session::Session;
use super::subscription::Subscription;
use crate::client::GroupCall;
use crate::{Client, Error};

/// The assignor under which members keep their partitions through a rebalance.
const COOPERATIVE: &str = "cooperative-sticky";

/// Who this consumer is in its group, and what it holds. See the module docs.
#[derive(Debug)]
pub(crate) struct Membership {
    committer: Committer,
    config: ConsumerConfig,
    subscription: Option<Subscription>,
    /// The subscription resolved to topic names, as last joined with.
    topics: BTreeSet<String>,
    /// Partitions of the current generation, as this member applied them.
    owned: BTreeSet<TopicPartition>,
    /// The strategy of the current generation.
    assignor: String,
    heartbeat: Option<JoinHandle<()>>,
    last_commit: Instant,
    /// What this member last committed per partition, so unchanged positions are not
    /// sent again.
    committed: BTreeMap<TopicPartition, i64>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        // Without a leave: the group notices after the session timeout.
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

impl Membership {
    pub fn new(client: Client, group_id: String, config: ConsumerConfig) -> Self {
        Membership {
            committer: Committer {
                client,
                group_id,
                session: Arc::new(Session::new()),
            },
            config,
            subscription: None,
            topics: BTreeSet::new(),
            owned: BTreeSet::new(),
            assignor: String::new(),
            heartbeat: None,
            last_commit: Instant::now(),
            committed: BTreeMap::new(),
        }
    }

    pub fn session(&self) -> Arc<Session> {
        Arc::clone(&self.committer.session)
    }

    pub fn committer(&self) -> Committer {
        self.committer.clone()
    }

    pub fn is_subscribed(&self) -> bool {
        self.subscription.is_some()
    }

    /// Replaces the subscription; the member (re)joins at the next poll.
    pub fn subscribe(&mut self, subscription: Subscription) {
        if let Subscription::Topics(topics) = &subscription {
            self.topics = topics.clone();
        }
        self.subscription = Some(subscription);
        self.committer.session.request_rejoin();
    }

    /// Joins or rejoins when the group asked for it, the subscription changed or the
    /// member was dropped; returns once the member has its partitions and positions.
    /// Errors other than "rejoin" answers are returned, and the next poll tries again.
    pub async fn ensure_active(
        &mut self,
        fetcher: &mut Fetcher,
        listener: &mut dyn RebalanceListener,
    ) -> Result<(), Error> {
        let client = self.committer.client.clone();
        let Some(subscription) = self.subscription.as_mut() else {
            return Ok(());
        };
        if subscription.is_stale(&client) {
            let topics = subscription.resolve(&client).await?;
            if topics != self.topics {
                self.topics = topics;
                self.committer.session.request_rejoin();
            }
        }
        let mut transient_failures = 0;
        loop {
            let (needed, lost) = self.committer.session.needs_join();
            if !needed {
                return Ok(());
            }
            self.prepare_rejoin(lost, fetcher, listener).await;
            self.committer.session.begin_join();
            let failure = match self.join_and_sync().await {
                Ok(assignment) => match self.apply(assignment, fetcher, listener).await {
                    Ok(()) => {
                        self.start_heartbeat();
                        return Ok(());
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            self.committer.session.request_rejoin();
            match failure.code() {
                Some(ErrorCode::UNKNOWN_MEMBER) => self.committer.session.mark_lost(),
                Some(ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::ILLEGAL_GENERATION) => {}
                _ if failure.is_retriable() && transient_failures < client.options().retries => {
                    tokio::time::sleep(client.options().backoff(transient_failures)).await;
                    transient_failures += 1;
                }
                _ => return Err(failure),
            }
        }
    }

    /// What a member does before it joins again: forget what it lost, or commit and
    /// (with an eager protocol) give up everything it holds.
    async fn prepare_rejoin(
        &mut self,
        lost: bool,
        fetcher: &mut Fetcher,
        listener: &mut dyn RebalanceListener,
    ) {
        if lost {
            let gone: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
            fetcher.assign(Vec::new());
            self.committed.clear();
            self.committer.session.forget_member();
            if !gone.is_empty() {
                listener.on_lost(&gone);
            }
            return;
        }
        if self.owned.is_empty() {
            return;
        }
        if self.config.enable_auto_commit
            && let Err(e) = self.commit_positions(fetcher).await
        {
            tracing::warn!(group = %self.committer.group_id, error = %e, "commit before rejoining failed");
        }
        if self.assignor != COOPERATIVE {
            let revoked: Vec<TopicPartition> =
                std::mem::take(&mut self.owned).into_iter().collect();
            fetcher.assign(Vec::new());
            self.committed.clear();
            listener.on_revoked(&revoked);
        }
    }

    async fn join_and_sync(&mut self) -> Result<Vec<TopicPartition>, Error> {
        let client = &self.committer.client;
        let config = &self.config;
        let req = JoinGroupRequest {
            group_id: self.committer.group_id.clone(),
            member_id: self.committer.session.member_id(),
            client_id: config.client_id.clone(),
            topics: self.topics.iter().cloned().collect(),
            session_timeout_ms: millis(config.session_timeout),
            rebalance_timeout_ms: millis(config.max_poll_interval),
            assignors: config.assignors.clone(),
            owned: self.owned.iter().cloned().collect(),
        };
        // The broker holds a join until the rest of the group has rejoined, at most the
        // longest rebalance timeout of the group; ours bounds it for this member.
        let wait = config.max_poll_interval + client.options().request_timeout;
        let group_id = &self.committer.group_id;
        let joined = client
            .call_group(group_id, &req, GroupCall::Within(wait))
            .await?;
        self.committer
            .session
            .joined(&joined.member_id, joined.generation);
        self.assignor = joined.assignor;
        tracing::debug!(
            group = %self.committer.group_id,
            member = %joined.member_id,
            generation = joined.generation,
            "joined"
        );
        let sync = SyncGroupRequest {
            group_id: self.committer.group_id.clone(),
            member_id: joined.member_id,
            generation: joined.generation,
        };
        let timeout = client.options().request_timeout;
        Ok(client
            .call_group(group_id, &sync, GroupCall::Within(timeout))
            .await?
            .assignment)
    }

    /// Takes on a new assignment: revokes what it leaves out, positions what it adds
    /// at the group's committed offsets (or the reset policy, when none).
    async fn apply(
        &mut self,
        assignment: Vec<TopicPartition>,
        fetcher: &mut Fetcher,
        listener: &mut dyn RebalanceListener,
    ) -> Result<(), Error> {
        let next: BTreeSet<TopicPartition> = assignment.into_iter().collect();
        let added: Vec<TopicPartition> = next.difference(&self.owned).cloned().collect();
        let revoked: Vec<TopicPartition> = self.owned.difference(&next).cloned().collect();
        // Read the commits before touching the fetcher, so a failure leaves no added
        // partition without a position for the reset policy to misplace.
        let commits = if added.is_empty() {
            Vec::new()
        } else {
            self.committer.fetch(Some(added.clone())).await?
        };
        if !revoked.is_empty() {
            for tp in &revoked {
                self.committed.remove(tp);
            }
            listener.on_revoked(&revoked);
        }
        fetcher.assign(next.iter().cloned().collect());
        for c in commits {
            fetcher.seek(&c.partition, c.offset)?;
            self.committed.insert(c.partition, c.offset);
        }
        self.owned = next;
        if !added.is_empty() {
            listener.on_assigned(&added);
        }
        Ok(())
    }

    fn start_heartbeat(&mut self) {
        if self.heartbeat.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let committer = self.committer.clone();
        let interval = self.config.heartbeat_interval;
        let timeout = self
            .config
            .session_timeout
            .min(committer.client.options().request_timeout);
        self.heartbeat = Some(tokio::spawn(heartbeat(committer, interval, timeout)));
    }

    /// Whether a commit now would be accepted as this consumer's: always for a
    /// consumer with assigned partitions, only inside a generation for a member.
    fn may_commit(&self) -> bool {
        self.subscription.is_none() || self.committer.session.current().is_some()
    }

    /// The auto-commit due at the start of a poll: positions of the records returned
    /// so far, every `auto_commit_interval`. Failures are logged; the next one retries.
    pub async fn auto_commit(&mut self, fetcher: &Fetcher) {
        if !self.config.enable_auto_commit
            || self.last_commit.elapsed() < self.config.auto_commit_interval
            || !self.may_commit()
        {
            return;
        }
        if let Err(e) = self.commit_positions(fetcher).await {
            tracing::warn!(group = %self.committer.group_id, error = %e, "auto-commit failed");
        }
    }

    /// The positions of every assigned partition that moved since its last commit.
    pub fn uncommitted(&self, fetcher: &Fetcher) -> Vec<CommittedOffset> {
        fetcher
            .assignment()
            .into_iter()
            .filter_map(|tp| {
                let position = fetcher.position(&tp).ok().flatten()?;
                (self.committed.get(&tp) != Some(&position)).then(|| CommittedOffset {
                    partition: tp,
                    offset: position,
                    metadata: String::new(),
                })
            })
            .collect()
    }

    /// Commits the positions of every assigned partition that moved.
    pub async fn commit_positions(&mut self, fetcher: &Fetcher) -> Result<(), Error> {
        let offsets = self.uncommitted(fetcher);
        self.commit(offsets).await
    }

    /// Commits exactly these offsets.
    pub async fn commit(&mut self, offsets: Vec<CommittedOffset>) -> Result<(), Error> {
        self.committer.commit(offsets.clone()).await?;
        for c in offsets {
            self.committed.insert(c.partition, c.offset);
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Leaves the group: commits (with auto-commit), revokes and says goodbye, so the
    /// partitions move at once instead of after the session timeout.
    pub async fn close(&mut self, fetcher: &mut Fetcher, listener: &mut dyn RebalanceListener) {
        if self.config.enable_auto_commit
            && self.may_commit()
            && let Err(e) = self.commit_positions(fetcher).await
        {
            tracing::warn!(group = %self.committer.group_id, error = %e, "commit on close failed");
        }
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let held: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        if !held.is_empty() {
            listener.on_revoked(&held);
        }
        if self.subscription.is_some()
            && let Some(member_id) = self.committer.session.member_id()
        {
            let req = LeaveGroupRequest {
                group_id: self.committer.group_id.clone(),
                member_id,
            };
            let timeout = self.committer.client.options().request_timeout;
            if let Err(e) = self
                .committer
                .client
                .call_group(&self.committer.group_id, &req, GroupCall::Within(timeout))
                .await
            {
                tracing::warn!(group = %self.committer.group_id, error = %e, "leaving the group failed; it notices after the session timeout");
            }
        }
        self.committer.session.forget_member();
        self.subscription = None;
    }
}

/// Keeps the session alive every `interval` while the member is in a generation, and
/// raises the session's flags when the group answers that it must rejoin.
async fn heartbeat(committer: Committer, interval: Duration, timeout: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some((member_id, generation)) = committer.session.current() else {
            continue;
        };
        let req = HeartbeatRequest {
            group_id: committer.group_id.clone(),
            member_id,
            generation,
        };
        match committer
            .client
            .call_group(&committer.group_id, &req, GroupCall::Within(timeout))
            .await
        {
            Ok(_) => {}
            Err(e) => match e.code() {
                Some(ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::ILLEGAL_GENERATION) => {
                    committer.session.flag(generation, false)
                }
                Some(ErrorCode::UNKNOWN_MEMBER) => committer.session.flag(generation, true),
                _ => {
                    tracing::debug!(group = %committer.group_id, error = %e, "heartbeat failed; retrying")
                }
            },
        }
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}
