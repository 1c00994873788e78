//! The coordinator of every group on this broker: routes requests to groups, parks joins
//! under tickets, and hands out their completions.

use std::collections::BTreeMap;

use crate::assignor::{self, Assignor};
use crate::catalog::TopicCatalog;
use crate::committed::{CommitTicket, PendingCommit};
use crate::description::{GroupDescription, GroupSummary};
use crate::error::GroupError;
use crate::group::{Group, Rules};
use crate::offsets::OffsetRecord;
use crate::partition::TopicPartition;
use crate::requests::{
    CommitRequest, CommittedOffset, Committer, HeartbeatRequest, JoinRequest, Joined, LeaveRequest,
    SyncRequest,
};
use crate::state::GroupState;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// Longest group id or client id accepted, in bytes; ids travel in every request and
/// every stored offset key.
pub const MAX_ID_BYTES: usize = 255;

/// Limits and timings of a coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Shortest session timeout a member may ask for (Kafka's default: 6 s); shorter ones
    /// make members expire on an ordinary GC pause or network hiccup.
    pub min_session_timeout_ms: u32,
    /// Longest session timeout a member may ask for (30 min); longer ones leave the
    /// partitions of a crashed member unread for that long.
    pub max_session_timeout_ms: u32,
    /// How long a rebalance out of an empty group waits for more members (3 s), so a
    /// fleet starting at once rebalances once, not once per consumer.
    pub initial_rebalance_delay_ms: u32,
    /// Most members one group may have (1000), which bounds the cost of an assignment.
    pub max_group_members: usize,
    /// Longest metadata string stored beside a committed offset (4 KiB).
    pub max_metadata_bytes: usize,
    /// Distinguishes this coordinator's member ids from those of an earlier run, whose
    /// members may still present them; the server passes its start time, or any value
    /// that differs between runs.
    pub incarnation: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_group_members: 1_000,
            max_metadata_bytes: 4_096,
            incarnation: 0,
        }
    }
}

/// Names a parked join; its answer comes back from [`GroupCoordinator::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JoinTicket(u64);

/// What a join produced: an answer now, or a ticket to wait on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Ready(Joined),
    /// The join waits for the rest of the group; the answer arrives as a [`Completion`]
    /// with this ticket.
    Pending(JoinTicket),
}

/// The answer to a parked join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub ticket: JoinTicket,
    pub result: Result<Joined, GroupError>,
}

/// Every consumer group on this broker, as a deterministic state machine.
///
/// Nothing here blocks, sleeps, reads a clock or does I/O: each call takes the current
/// time in milliseconds and returns what to send and what to persist. The server must
/// call [`poll`](Self::poll) when [`next_deadline`](Self::next_deadline) passes and after
/// every join, leave and topic change, and deliver the completions it returns.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    assignors: Vec<Box<dyn Assignor>>,
    groups: BTreeMap<String, Group>,
    next_ticket: u64,
    next_member: u64,
    /// Numbers accepted commits (and loaded records) in acceptance order; see
    /// [`CommitTicket`].
    next_commit: u64,
    /// Completions produced between polls, delivered by the next one.
    outbox: Vec<Completion>,
}

impl GroupCoordinator {
    /// A coordinator with no groups, offering the built-in assignors.
    pub fn new(config: CoordinatorConfig) -> Self {
        GroupCoordinator {
            config,
            assignors: assignor::builtin(),
            groups: BTreeMap::new(),
            next_ticket: 0,
            next_member: 0,
            next_commit: 0,
            outbox: Vec::new(),
        }
    }

    /// Adds a strategy, replacing a built-in one of the same name.
    pub fn with_assignor(mut self, assignor: Box<dyn Assignor>) -> Self {
        self.assignors.retain(|a| a.name() != assignor.name());
        self.assignors.push(assignor);
        self
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Joins (or rejoins) a group. The answer is often not ready: the join waits until
    /// every known member has rejoined or timed out, and arrives through
    /// [`poll`](Self::poll). Errors here are answered at once.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now_ms: u64,
        catalog: &dyn TopicCatalog,
    ) -> Result<JoinOutcome, GroupError> {
        self.check_join(&req)?;
        self.next_ticket += 1;
        let ticket = JoinTicket(self.next_ticket);
        self.next_member += 1;
        let new_member_id = format!(
            "{}-{:x}-{}",
            req.client_id, self.config.incarnation, self.next_member
        );
        let rules = Rules {
            config: &self.config,
            assignors: &self.assignors,
        };
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id));
        let immediate = group.join(
            req,
            ticket,
            new_member_id,
            now_ms,
            &rules,
            catalog,
            &mut self.outbox,
        )?;
        if let Some(response) = immediate {
            return Ok(JoinOutcome::Ready(response));
        }
        match self.outbox.iter().position(|c| c.ticket == ticket) {
            Some(i) => self.outbox.remove(i).result.map(JoinOutcome::Ready),
            None => Ok(JoinOutcome::Pending(ticket)),
        }
    }

    /// The member's assignment for the generation it joined. Never waits: assignment
    /// happens on the broker when the join phase completes.
    /// Returns the partitions the member owns in this generation, sorted.
    pub fn sync(
        &mut self,
        req: &SyncRequest,
        now_ms: u64,
    ) -> Result<Vec<TopicPartition>, GroupError> {
        let group = self.member_group(&req.group_id, &req.member_id)?;
        group.sync(&req.member_id, req.generation, now_ms)
    }

    /// Keeps a session alive. [`GroupError::RebalanceInProgress`] tells the member to
    /// rejoin.
    pub fn heartbeat(&mut self, req: &HeartbeatRequest, now_ms: u64) -> Result<(), GroupError> {
        let group = self.member_group(&req.group_id, &req.member_id)?;
        group.heartbeat(&req.member_id, req.generation, now_ms)
    }

    /// Removes a member at once and rebalances the rest.
    pub fn leave(&mut self, req: &LeaveRequest, now_ms: u64) -> Result<(), GroupError> {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Err(unknown_member(&req.group_id, &req.member_id));
        };
        group.leave(&req.member_id, now_ms, &mut self.outbox)
    }

    /// Validates and accepts a commit, returning the records the server must append to
    /// `__consumer_offsets` and the ticket to settle the commit with. The offsets stay
    /// invisible (to offset fetches, descriptions and lag) until the server reports the
    /// append with [`complete_commit`](Self::complete_commit); should it fail, the server
    /// calls [`abort_commit`](Self::abort_commit), answers the commit with an error and
    /// the client retries. See [`CommitTicket`] for concurrent commits.
    pub fn commit(
        &mut self,
        req: CommitRequest,
        now_ms: u64,
        catalog: &dyn TopicCatalog,
    ) -> Result<PendingCommit, GroupError> {
        check_group_id(&req.group_id)?;
        self.check_offsets(&req.group_id, &req.offsets, catalog)?;
        let group = match (self.groups.get_mut(&req.group_id), &req.committer) {
            (Some(group), _) => group,
            (None, Committer::Outside) => self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id)),
            (None, Committer::Member { member_id, .. }) => {
                return Err(unknown_member(&req.group_id, member_id));
            }
        };
        group.check_committer(&req.committer, now_ms)?;
        self.next_commit += 1;
        let seq = self.next_commit;
        let records = group.hold_commit(seq, req.offsets, now_ms);
        Ok(PendingCommit {
            ticket: CommitTicket {
                group_id: req.group_id,
                seq,
            },
            records,
        })
    }

    /// The commit's records are durable: its offsets become visible, except on
    /// partitions where a commit accepted after it is visible already. A ticket already
    /// settled, or whose group was deleted meanwhile, changes nothing.
    pub fn complete_commit(&mut self, ticket: &CommitTicket) {
        if let Some(group) = self.groups.get_mut(&ticket.group_id) {
            group.offsets.complete(ticket.seq);
        }
    }

    /// The commit's records could not be appended: its offsets are dropped and the
    /// group keeps showing the ones it had.
    pub fn abort_commit(&mut self, ticket: &CommitTicket) {
        if let Some(group) = self.groups.get_mut(&ticket.group_id) {
            group.offsets.abort(ticket.seq);
            if group.is_forgettable() {
                self.groups.remove(&ticket.group_id);
            }
        }
    }

    /// The group's durable committed offsets, for `partitions` or all, sorted;
    /// partitions without a commit are left out, and an unknown group has none.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Vec<CommittedOffset> {
        let Some(group) = self.groups.get(group_id) else {
            return Vec::new();
        };
        let wanted = |tp: &TopicPartition| partitions.is_none_or(|p| p.contains(tp));
        group
            .offsets
            .iter()
            .filter(|(tp, _)| wanted(tp))
            .map(|(tp, v)| CommittedOffset {
                partition: tp.clone(),
                offset: v.offset,
                metadata: v.metadata.clone(),
            })
            .collect()
    }

    /// Every group, sorted by id.
    pub fn list(&self) -> Vec<GroupSummary> {
        self.groups
            .values()
            .map(|g| GroupSummary {
                group_id: g.id.clone(),
                state: g.state,
                members: g.members.len(),
            })
            .collect()
    }

    /// A group's members, assignments and durable commits. End offsets and lag are the
    /// server's to add, since only it can read the partitions.
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        self.groups
            .get(group_id)
            .map(Group::describe)
            .ok_or_else(|| unknown_group(group_id))
    }

    /// The group's state, or `None` for a group the coordinator does not know.
    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// Deletes an empty group and returns tombstones for its committed offsets, those
    /// still being committed included; commits in flight are dropped with the group.
    pub fn delete(&mut self, group_id: &str) -> Result<Vec<OffsetRecord>, GroupError> {
        self.check_resettable(group_id)?;
        let Some(mut group) = self.groups.remove(group_id) else {
            return Err(unknown_group(group_id));
        };
        group.state = GroupState::Dead;
        Ok(group
            .offsets
            .into_all_partitions()
            .into_iter()
            .map(|tp| OffsetRecord::tombstone(group_id, tp))
            .collect())
    }

    /// Fails with [`GroupError::GroupNotEmpty`] while the group has members. The server checks this
    /// before resolving a reset target, which costs a read of every partition.
    pub fn check_resettable(&self, group_id: &str) -> Result<(), GroupError> {
        match self.groups.get(group_id) {
            Some(group) if !group.members.is_empty() => Err(group.not_empty()),
            _ => Ok(()),
        }
    }

    /// Overwrites an empty group's offsets with ones the server resolved from a reset
    /// target, creating the group if needed. Like a commit, the new offsets are visible
    /// only once completed.
    pub fn reset_offsets(
        &mut self,
        group_id: &str,
        offsets: Vec<CommittedOffset>,
        now_ms: u64,
        catalog: &dyn TopicCatalog,
    ) -> Result<PendingCommit, GroupError> {
        self.commit(
            CommitRequest {
                group_id: group_id.to_string(),
                committer: Committer::Outside,
                offsets,
            },
            now_ms,
            catalog,
        )
    }

    /// Replays records of `__consumer_offsets`, oldest first: at startup, or after the
    /// server appended records it got from elsewhere. They are durable, so they are
    /// visible at once, and count as accepted now: a commit still in flight does not
    /// overwrite them when it completes. A tombstone deletes the commit.
    pub fn load(&mut self, records: impl IntoIterator<Item = OffsetRecord>) {
        for record in records {
            let group = self
                .groups
                .entry(record.group_id.clone())
                .or_insert_with(|| Group::new(&record.group_id));
            self.next_commit += 1;
            group
                .offsets
                .load(record.partition, record.value, self.next_commit);
            if group.is_forgettable() {
                self.groups.remove(&record.group_id);
            }
        }
    }

    /// Forgets every group `moved` names: its partition of the offsets topic is led by
    /// another broker now, which replays the group's commits and coordinates it from
    /// there. Members waiting in a join are answered [`GroupError::NotCoordinator`] at
    /// once, so they look for the new coordinator instead of waiting out the rebalance.
    /// A commit of such a group still in flight settles into nothing.
    pub fn unload(&mut self, moved: impl Fn(&str) -> bool) -> Vec<Completion> {
        let mut answers = Vec::new();
        self.groups.retain(|id, group| {
            if !moved(id) {
                return true;
            }
            for ticket in group.members.values().filter_map(|m| m.awaiting_join) {
                answers.push(Completion {
                    ticket,
                    result: Err(GroupError::NotCoordinator {
                        group_id: id.clone(),
                    }),
                });
            }
            false
        });
        answers
    }

    /// Advances every group to `now_ms`: expires silent members, times out rebalance
    /// phases, completes rebalances, notices partition-count changes, and forgets groups
    /// with neither members nor offsets. Returns the answers to parked joins.
    pub fn poll(&mut self, now_ms: u64, catalog: &dyn TopicCatalog) -> Vec<Completion> {
        let rules = Rules {
            config: &self.config,
            assignors: &self.assignors,
        };
        for group in self.groups.values_mut() {
            group.poll(now_ms, &rules, catalog, &mut self.outbox);
        }
        self.groups.retain(|_, g| !g.is_forgettable());
        std::mem::take(&mut self.outbox)
    }

    /// When [`poll`](Self::poll) next has timed work to do: a session or rebalance
    /// deadline. `None` when nothing is timed. A value at or before now means "poll now".
    pub fn next_deadline(&self) -> Option<u64> {
        let pending = (!self.outbox.is_empty()).then_some(0);
        self.groups
            .values()
            .filter_map(Group::next_deadline)
            .chain(pending)
            .min()
    }

    fn check_join(&self, req: &JoinRequest) -> Result<(), GroupError> {
        check_group_id(&req.group_id)?;
        let invalid = |reason: String| GroupError::InvalidJoin {
            group_id: req.group_id.clone(),
            reason,
        };
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        if !(min..=max).contains(&req.session_timeout_ms) {
            return Err(invalid(format!(
                "session timeout {} ms is outside the broker's range {min}..={max} ms",
                req.session_timeout_ms
            )));
        }
        if req.rebalance_timeout_ms == 0 {
            return Err(invalid("rebalance timeout must be above 0 ms".into()));
        }
        if req.client_id.len() > MAX_ID_BYTES {
            return Err(invalid(format!(
                "client id is {} bytes; the limit is {MAX_ID_BYTES}",
                req.client_id.len()
            )));
        }
        if req.assignors.is_empty() {
            return Err(invalid(
                "no assignor listed; list at least one of range, roundrobin, \
                 cooperative-sticky"
                    .into(),
            ));
        }
        Ok(())
    }

    fn check_offsets(
        &self,
        group_id: &str,
        offsets: &[CommittedOffset],
        catalog: &dyn TopicCatalog,
    ) -> Result<(), GroupError> {
        for c in offsets {
            let tp = &c.partition;
            let Some(count) = catalog.partitions(&tp.topic) else {
                return Err(GroupError::UnknownTopic {
                    group_id: group_id.to_string(),
                    topic: tp.topic.clone(),
                });
            };
            if tp.partition >= count {
                return Err(GroupError::UnknownPartition {
                    group_id: group_id.to_string(),
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    partitions: count,
                });
            }
            let invalid = |reason: String| GroupError::InvalidCommit {
                group_id: group_id.to_string(),
                reason: format!("{tp}: {reason}"),
            };
            if c.offset < 0 {
                return Err(invalid(format!(
                    "offset {} is negative; commit the next offset to read",
                    c.offset
                )));
            }
            if c.metadata.len() > self.config.max_metadata_bytes {
                return Err(invalid(format!(
                    "metadata is {} bytes; the limit is {}",
                    c.metadata.len(),
                    self.config.max_metadata_bytes
                )));
            }
        }
        Ok(())
    }

    /// The group of a member-scoped request. A group that no longer exists has no
    /// members, so the member is unknown and must join afresh.
    fn member_group(&mut self, group_id: &str, member_id: &str) -> Result<&mut Group, GroupError> {
        self.groups
            .get_mut(group_id)
            .ok_or_else(|| unknown_member(group_id, member_id))
    }
}

fn check_group_id(group_id: &str) -> Result<(), GroupError> {
    if group_id.is_empty() || group_id.len() > MAX_ID_BYTES {
        return Err(GroupError::InvalidGroupId {
            group_id: group_id.to_string(),
            max: MAX_ID_BYTES,
        });
    }
    Ok(())
}

fn unknown_group(group_id: &str) -> GroupError {
    GroupError::UnknownGroup {
        group_id: group_id.to_string(),
    }
}

fn unknown_member(group_id: &str, member_id: &str) -> GroupError {
    GroupError::UnknownMember {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}
