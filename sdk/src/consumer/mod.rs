//! [`Consumer`]: reads partitions with long-poll fetches, prefetching while the
//! application works through the previous records. Up to `fetches_in_flight` fetches of
//! a partition are out at once (default 2): the next leaves as soon as the previous
//! response's head has arrived (its `next_offset` says where), while that response's
//! batches are still on the wire. Responses are applied in the order they were sent.
//!
//! Two ways to get partitions: [`Consumer::assign`] names them (positions are the
//! consumer's own), or [`Consumer::subscribe`] joins the consumer group of
//! `ConsumerConfig::group_id`, whose coordinator on the broker spreads the topics'
//! partitions over its members and keeps their committed offsets. A partition with no
//! position (no commit, never seeked) starts where `auto_offset_reset` says. Group
//! membership is layered on the same fetch engine: joins, revocations and rebalance
//! callbacks happen inside [`Consumer::poll`]; a background task heartbeats.

mod commit;
mod config;
mod fetcher;
mod group;
mod rebalance;
mod session;
mod subscription;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_core::Stream;
use quiver_proto::api::{CommittedOffset, OffsetSpec, TopicPartition};
use tokio::time::Instant;

pub use commit::CommitHandle;
pub use config::{ConsumerConfig, ConsumerRecord, OffsetReset};
pub use rebalance::RebalanceListener;

use crate::{Client, Error};
use fetcher::Fetcher;
use group::Membership;
use rebalance::NoListener;
use subscription::Subscription;

/// Who a group consumer is in its group right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
}

/// Reads records from assigned or group-given partitions. Not `Clone`: it owns its
/// positions and the fetches in flight, which are cancelled when it is dropped.
///
/// Dropping a group consumer stops its heartbeat without leaving the group, so its
/// partitions move only after the session timeout; call [`Consumer::close`] to commit
/// and leave at once.
pub struct Consumer {
    fetcher: Fetcher,
    /// Present when `group_id` is set: commits, and membership once subscribed.
    group: Option<Membership>,
    listener: Box<dyn RebalanceListener>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("fetcher", &self.fetcher)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Result<Consumer, Error> {
        if config.max_poll_records == 0 {
            return Err(Error::Config("max_poll_records must be at least 1".into()));
        }
        if config.max_bytes as usize > client.options().max_frame_size {
            return Err(Error::Config(format!(
                "max_bytes ({}) exceeds the client's max_frame_size ({}): lower it or raise the frame size",
                config.max_bytes,
                client.options().max_frame_size
            )));
        }
        if config.max_wait >= client.options().request_timeout {
            return Err(Error::Config(
                "max_wait must be shorter than the client's request_timeout".into(),
            ));
        }
        let group = match &config.group_id {
            None => None,
            Some(id) => {
                check_group_config(id, &config)?;
                Some(Membership::new(client.clone(), id.clone(), config.clone()))
            }
        };
        Ok(Consumer {
            fetcher: Fetcher::new(client, config),
            group,
            listener: Box::new(NoListener),
        })
    }

    /// Reads exactly these partitions from now on; partitions that stay keep their
    /// positions, others are dropped with their buffered records. For consumers without
    /// a subscription: a subscribed consumer's partitions come from its group.
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) {
        self.fetcher.assign(partitions);
    }

    /// The assigned partitions, in order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.fetcher.assignment()
    }

    /// The next record of `tp` returned will be the one at `offset` (or the first after it).
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Error> {
        self.fetcher.seek(tp, offset)
    }

    /// Skips the damaged range `error` names, when it is an [`Error::DamagedData`] of an
    /// assigned partition (damage the broker found) or an [`Error::Batch`] whose end is
    /// known (a batch that failed this consumer's CRC check): the partition moves to the
    /// first offset after the damage, which is returned. Any other error is left alone (`Ok(None)`). The records of the
    /// range are lost to this consumer; skipping is explicit so that nothing is dropped
    /// without the application deciding it.
    pub fn skip_damaged(&mut self, error: &Error) -> Result<Option<i64>, Error> {
        let (tp, next_offset) = match error {
            Error::DamagedData {
                tp, next_offset, ..
            } => (tp, next_offset),
            // A batch that fails its CRC in the consumer: damage the broker cannot see
            // without checking every batch it serves.
            Error::Batch {
                tp,
                skip_to: Some(next_offset),
                ..
            } => (tp, next_offset),
            _ => return Ok(None),
        };
        tracing::warn!(%tp, next_offset, "skipping damaged offsets: {error}");
        self.fetcher.seek(tp, *next_offset)?;
        Ok(Some(*next_offset))
    }

    /// Moves each partition to its log start.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        self.seek_to(partitions, OffsetSpec::Earliest).await
    }

    /// Moves each partition to its log end: only records appended later are read.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        self.seek_to(partitions, OffsetSpec::Latest).await
    }

    /// Moves each partition to the first record at or after `timestamp` (ms), or to the
    /// log end when none is that recent.
    pub async fn seek_to_timestamp(
        &mut self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<(), Error> {
        for tp in partitions {
            let offset = match self
                .fetcher
                .lookup(tp, OffsetSpec::Timestamp(timestamp))
                .await
            {
                Ok(offset) => offset,
                Err(e) if e.code() == Some(quiver_proto::ErrorCode::OFFSET_OUT_OF_RANGE) => {
                    self.fetcher.lookup(tp, OffsetSpec::Latest).await?
                }
                Err(e) => return Err(e),
            };
            self.fetcher.seek(tp, offset)?;
        }
        Ok(())
    }

    async fn seek_to(
        &mut self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<(), Error> {
        for tp in partitions {
            let offset = self.fetcher.lookup(tp, spec).await?;
            self.fetcher.seek(tp, offset)?;
        }
        Ok(())
    }

    /// The offset of the next record [`Consumer::poll`] will return for `tp`; `None`
    /// before the first poll or seek.
    pub fn position(&self, tp: &TopicPartition) -> Result<Option<i64>, Error> {
        self.fetcher.position(tp)
    }

    /// Returns the next records (at most `max_poll_records`), waiting up to `timeout`
    /// for some to arrive; an empty vector means none arrived in time.
    ///
    /// A group consumer first commits (when auto-commit is due) and joins or rejoins
    /// when the group asks; a rebalance may take longer than `timeout`, bounded by the
    /// group's rebalance timeouts. Calling `poll` again means the records returned
    /// before were processed: that is what auto-commit commits.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        let deadline = Instant::now() + timeout;
        let Consumer {
            fetcher,
            group,
            listener,
        } = self;
        let Some(group) = group.as_mut() else {
            return fetcher.poll(deadline).await;
        };
        group.auto_commit(fetcher).await;
        loop {
            group.ensure_active(fetcher, listener.as_mut()).await?;
            let session = group.session();
            let subscribed = group.is_subscribed();
            tokio::select! {
                records = fetcher.poll(deadline) => return records,
                // The fetcher's poll is cancel-safe: in-flight fetches stay in its set.
                () = session.rejoin_wanted(), if subscribed => {}
            }
        }
    }

    /// Joins the group of `ConsumerConfig::group_id` reading these topics; the join
    /// happens at the next [`poll`](Self::poll). Replaces any earlier subscription.
    pub fn subscribe<I, T>(&mut self, topics: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let topics = topics.into_iter().map(Into::into).collect();
        self.membership()?.subscribe(Subscription::Topics(topics));
        Ok(())
    }

    /// Joins the group reading every topic whose whole name matches the regular
    /// expression `pattern` (internal topics excepted). The match is taken again each
    /// time the client's `metadata_max_age` passes, and a change rejoins the group.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<(), Error> {
        let subscription = Subscription::pattern(pattern)?;
        self.membership()?.subscribe(subscription);
        Ok(())
    }

    /// Called from `poll` and `close` when the group moves partitions.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Box::new(listener);
    }

    /// The member id and generation, while this consumer is in a generation of its group.
    pub fn group_metadata(&self) -> Option<GroupMetadata> {
        let group = self.group.as_ref()?;
        let (member_id, generation) = group.session().current()?;
        Some(GroupMetadata {
            group_id: group.committer().group_id,
            member_id,
            generation,
        })
    }

    /// Commits the position of every partition that moved since its last commit, and
    /// waits for the broker to store it.
    pub async fn commit(&mut self) -> Result<(), Error> {
        let Consumer { fetcher, group, .. } = self;
        let group = group.as_mut().ok_or_else(no_group)?;
        group.commit_positions(fetcher).await
    }

    /// Starts committing the current positions and returns at once; await the handle
    /// for the outcome, or drop it.
    pub fn commit_async(&mut self) -> Result<CommitHandle, Error> {
        let group = self.group.as_ref().ok_or_else(no_group)?;
        let offsets = group.uncommitted(&self.fetcher);
        Ok(CommitHandle::spawn(group.committer(), offsets))
    }

    /// Commits exactly these offsets (each the offset of the next record to read).
    pub async fn commit_offsets(
        &mut self,
        offsets: BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        let group = self.membership()?;
        let offsets = offsets
            .into_iter()
            .map(|(partition, offset)| CommittedOffset {
                partition,
                offset,
                metadata: String::new(),
            })
            .collect();
        group.commit(offsets).await
    }

    /// The group's committed offset of `tp`, or `None` when it has none.
    pub async fn committed(&self, tp: &TopicPartition) -> Result<Option<i64>, Error> {
        let group = self.group.as_ref().ok_or_else(no_group)?;
        let offsets = group.committer().fetch(Some(vec![tp.clone()])).await?;
        Ok(offsets
            .into_iter()
            .find(|c| &c.partition == tp)
            .map(|c| c.offset))
    }

    /// Stops returning records of these partitions (and fetching them) until
    /// [`resume`](Self::resume); the group still counts them as this member's.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        for tp in partitions {
            self.fetcher.set_paused(tp, true)?;
        }
        Ok(())
    }

    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        for tp in partitions {
            self.fetcher.set_paused(tp, false)?;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.fetcher.paused()
    }

    /// Commits (with auto-commit), revokes this member's partitions and leaves its
    /// group, so they move at once; then drops the consumer. A standalone consumer just
    /// stops.
    pub async fn close(mut self) {
        let Consumer {
            fetcher,
            group,
            listener,
        } = &mut self;
        if let Some(group) = group.as_mut() {
            group.close(fetcher, listener.as_mut()).await;
        }
    }

    fn membership(&mut self) -> Result<&mut Membership, Error> {
        self.group.as_mut().ok_or_else(no_group)
    }

    /// The records as an endless stream. An error is yielded once and the stream goes on;
    /// stop on errors that are not [`Error::is_retriable`] if that suits the application.
    /// The stream is `Unpin`, so `StreamExt::next` works on it directly.
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord, Error>> + Unpin + '_ {
        let pending = std::collections::VecDeque::new();
        Box::pin(futures_util::stream::unfold(
            (self, pending),
            |(consumer, mut pending)| async move {
                loop {
                    if let Some(record) = pending.pop_front() {
                        return Some((Ok(record), (consumer, pending)));
                    }
                    match consumer.poll(Duration::from_secs(60)).await {
                        Ok(records) => pending.extend(records),
                        Err(e) => return Some((Err(e), (consumer, pending))),
                    }
                }
            },
        ))
    }
}

fn no_group() -> Error {
    Error::Config("this needs a consumer group: set ConsumerConfig::group_id".into())
}

/// Checks a group consumer's settings before it talks to the broker.
fn check_group_config(group_id: &str, config: &ConsumerConfig) -> Result<(), Error> {
    if group_id.is_empty() {
        return Err(Error::Config("group_id must not be empty".into()));
    }
    if config.assignors.is_empty() {
        return Err(Error::Config(
            "assignors is empty: list at least one of cooperative-sticky, range, roundrobin".into(),
        ));
    }
    if config.heartbeat_interval.is_zero() || config.heartbeat_interval >= config.session_timeout {
        return Err(Error::Config(format!(
            "heartbeat_interval ({:?}) must be above zero and below session_timeout ({:?}); a third of it is usual",
            config.heartbeat_interval, config.session_timeout
        )));
    }
    if config.enable_auto_commit && config.auto_commit_interval.is_zero() {
        return Err(Error::Config(
            "auto_commit_interval must be above zero".into(),
        ));
    }
    Ok(())
}
