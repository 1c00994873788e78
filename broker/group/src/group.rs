//! One consumer group's state machine: membership, rebalances, generations and offsets.
//!
//! Every method takes the current time and changes state at once; nothing here waits.
//! Joins that must wait for other members are parked under their [`JoinTicket`] and
//! answered through the outbox of [`Completion`]s when the rebalance completes.

use std::collections::{BTreeMap, BTreeSet};

use crate::assignor::{Assignor, MemberSubscription, assignable};
use crate::catalog::TopicCatalog;
use crate::committed::CommittedOffsets;
use crate::coordinator::{Completion, CoordinatorConfig, JoinTicket};
use crate::description::{GroupDescription, MemberDescription, PartitionCommit};
use crate::error::GroupError;
use crate::member::Member;
use crate::offsets::{OffsetRecord, OffsetValue};
use crate::partition::TopicPartition;
use crate::requests::{CommittedOffset, Committer, JoinRequest, Joined};
use crate::state::GroupState;

/// The coordinator-wide settings a group obeys.
pub(crate) struct Rules<'a> {
    pub config: &'a CoordinatorConfig,
    pub assignors: &'a [Box<dyn Assignor>],
}

#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    /// Bumped by every completed rebalance, including one that leaves the group empty.
    pub generation: i32,
    /// The strategy of the current generation.
    pub assignor: Option<String>,
    leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    pub offsets: CommittedOffsets,
    /// When the current rebalance or sync phase began; member deadlines count from here.
    phase_started_ms: u64,
    /// A rebalance out of Empty waits until here for more members to arrive, so a group
    /// starting many consumers at once does not rebalance once per consumer.
    hold_until_ms: u64,
    /// Members that lost partitions to an incremental assignment and have not synced yet.
    revokers: BTreeSet<String>,
    /// This generation left assignable partitions to nobody (a cooperative move in
    /// progress): start the next rebalance once every revoker has synced.
    follow_up: bool,
    /// Partition counts the current assignment was computed from; a change rebalances.
    assigned_from: BTreeMap<String, u32>,
    next_seq: u64,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            assignor: None,
            leader: None,
            members: BTreeMap::new(),
            offsets: CommittedOffsets::default(),
            phase_started_ms: 0,
            hold_until_ms: 0,
            revokers: BTreeSet::new(),
            follow_up: false,
            assigned_from: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Handles a join. Returns the response when it can be given at once without a
    /// rebalance; otherwise parks the member under `ticket`, whose completion may
    /// already be in `outbox` when this join completed the rebalance.
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &mut self,
        req: JoinRequest,
        ticket: JoinTicket,
        new_member_id: String,
        now: u64,
        rules: &Rules<'_>,
        catalog: &dyn TopicCatalog,
        outbox: &mut Vec<Completion>,
    ) -> Result<Option<Joined>, GroupError> {
        let topics: BTreeSet<String> = req.topics.into_iter().collect();
        match req.member_id {
            Some(id) => {
                let Some(member) = self.members.get(&id) else {
                    return Err(self.unknown_member(&id));
                };
                let changed = member.topics != topics || member.assignors != req.assignors;
                if changed {
                    self.check_assignors(Some(&id), &req.assignors, rules)?;
                }
                let member =
                    self.members
                        .get_mut(&id)
                        .ok_or_else(|| GroupError::UnknownMember {
                            group_id: req.group_id.clone(),
                            member_id: id.clone(),
                        })?;
                member.topics = topics;
                member.assignors = req.assignors;
                member.session_timeout_ms = req.session_timeout_ms;
                member.rebalance_timeout_ms = req.rebalance_timeout_ms;
                member.client_id = req.client_id;
                member.last_seen_ms = now;
                member.holds.extend(req.owned);
                match self.state {
                    // A member that lost its join response asks again: nothing changed,
                    // so answer with the current generation instead of rebalancing.
                    GroupState::Stable | GroupState::CompletingRebalance if !changed => {
                        return Ok(Some(self.join_response(&id)));
                    }
                    GroupState::PreparingRebalance => {}
                    _ => self.start_rebalance(now),
                }
                if let Some(member) = self.members.get_mut(&id)
                    && let Some(old) = member.awaiting_join.replace(ticket)
                {
                    outbox.push(Completion {
                        ticket: old,
                        result: Err(GroupError::JoinSuperseded {
                            group_id: self.id.clone(),
                            member_id: id.clone(),
                        }),
                    });
                }
            }
            None => {
                let max = rules.config.max_group_members;
                if self.members.len() >= max {
                    return Err(GroupError::GroupFull {
                        group_id: self.id.clone(),
                        max,
                    });
                }
                self.check_assignors(None, &req.assignors, rules)?;
                self.next_seq += 1;
                self.members.insert(
                    new_member_id,
                    Member {
                        client_id: req.client_id,
                        topics,
                        session_timeout_ms: req.session_timeout_ms,
                        rebalance_timeout_ms: req.rebalance_timeout_ms,
                        assignors: req.assignors,
                        joined_seq: self.next_seq,
                        last_seen_ms: now,
                        awaiting_join: Some(ticket),
                        assignment: Vec::new(),
                        // After a coordinator restart the client's claim is all we know.
                        holds: req.owned.into_iter().collect(),
                        synced: false,
                    },
                );
                match self.state {
                    GroupState::Empty | GroupState::Dead => {
                        self.start_rebalance(now);
                        self.hold_until_ms =
                            now.saturating_add(u64::from(rules.config.initial_rebalance_delay_ms));
                    }
                    GroupState::PreparingRebalance => {
                        if now < self.hold_until_ms {
                            // Each arrival during the initial delay extends it, up to the
                            // longest rebalance timeout.
                            let cap = self
                                .members
                                .values()
                                .map(|m| m.rebalance_deadline(self.phase_started_ms))
                                .max()
                                .unwrap_or(now);
                            self.hold_until_ms = now
                                .saturating_add(u64::from(rules.config.initial_rebalance_delay_ms))
                                .min(cap);
                        }
                    }
                    GroupState::Stable | GroupState::CompletingRebalance => {
                        self.start_rebalance(now)
                    }
                }
            }
        }
        self.try_complete(now, rules, catalog, outbox);
        Ok(None)
    }

    /// The member's assignment for `generation`. Never waits: the assignment is computed
    /// when the join phase completes.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        now: u64,
    ) -> Result<Vec<TopicPartition>, GroupError> {
        self.check_member(member_id)?;
        if self.state == GroupState::PreparingRebalance {
            return Err(self.rebalancing());
        }
        self.check_generation(generation)?;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(self.unknown_member(member_id));
        };
        member.last_seen_ms = now;
        member.synced = true;
        // The member now knows what it lost and stops reading it.
        member.holds = member.assignment.iter().cloned().collect();
        let assignment = member.assignment.clone();
        self.revokers.remove(member_id);
        if self.follow_up && self.revokers.is_empty() {
            self.start_rebalance(now);
        } else if self.members.values().all(|m| m.synced) {
            self.state = GroupState::Stable;
        }
        Ok(assignment)
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now: u64,
    ) -> Result<(), GroupError> {
        self.check_member(member_id)?;
        self.check_generation(generation)?;
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_seen_ms = now;
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(self.rebalancing());
        }
        Ok(())
    }

    pub fn leave(
        &mut self,
        member_id: &str,
        now: u64,
        outbox: &mut Vec<Completion>,
    ) -> Result<(), GroupError> {
        self.check_member(member_id)?;
        self.remove_member(member_id, now, outbox);
        Ok(())
    }

    /// Checks who commits; offsets themselves are checked by the caller.
    pub fn check_committer(&mut self, who: &Committer, now: u64) -> Result<(), GroupError> {
        match who {
            Committer::Outside => {
                if !self.members.is_empty() {
                    return Err(self.not_empty());
                }
            }
            Committer::Member {
                member_id: id,
                generation,
            } => {
                self.check_member(id)?;
                self.check_generation(*generation)?;
                let synced = self.members.get(id).is_some_and(|m| m.synced);
                // During PreparingRebalance the generation is still valid and the member
                // still owns its partitions: it must be able to commit what it processed
                // before giving them up. Between join and sync it does not yet know its
                // partitions, so nothing it commits can be meant for this generation.
                if self.state == GroupState::CompletingRebalance && !synced {
                    return Err(self.rebalancing());
                }
                if let Some(member) = self.members.get_mut(id) {
                    member.last_seen_ms = now;
                }
            }
        }
        Ok(())
    }

    /// Holds offsets already validated under `seq`, invisible until the commit is
    /// completed, and returns the records to persist.
    pub fn hold_commit(
        &mut self,
        seq: u64,
        offsets: Vec<CommittedOffset>,
        now: u64,
    ) -> Vec<OffsetRecord> {
        let held: Vec<(TopicPartition, OffsetValue)> = offsets
            .into_iter()
            .map(|c| {
                let value = OffsetValue {
                    offset: c.offset,
                    metadata: c.metadata,
                    commit_time_ms: now,
                };
                (c.partition, value)
            })
            .collect();
        let records = held
            .iter()
            .map(|(tp, value)| OffsetRecord::commit(&self.id, tp.clone(), value.clone()))
            .collect();
        self.offsets.hold(seq, held);
        records
    }

    /// Whether the coordinator may forget the group: nobody in it, nothing committed
    /// and nothing being committed.
    pub fn is_forgettable(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.offsets.is_empty()
    }

    /// Expires members, times out rebalance phases and notices topic changes.
    pub fn poll(
        &mut self,
        now: u64,
        rules: &Rules<'_>,
        catalog: &dyn TopicCatalog,
        outbox: &mut Vec<Completion>,
    ) {
        // A member parked in a join is waiting on us, not silent.
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none() && now >= m.session_deadline())
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id, now, outbox);
        }
        match self.state {
            GroupState::CompletingRebalance => {
                let started = self.phase_started_ms;
                let late: Vec<String> = self
                    .members
                    .iter()
                    .filter(|(_, m)| !m.synced && now >= m.rebalance_deadline(started))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in late {
                    self.remove_member(&id, now, outbox);
                }
            }
            GroupState::Stable if self.subscribed_partitions(catalog) != self.assigned_from => {
                self.start_rebalance(now);
            }
            _ => {}
        }
        self.try_complete(now, rules, catalog, outbox);
    }

    /// The earliest time at which [`Group::poll`] would change something, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(Member::session_deadline);
        let phase = self.members.values().filter_map(|m| match self.state {
            GroupState::PreparingRebalance if m.awaiting_join.is_none() => {
                Some(m.rebalance_deadline(self.phase_started_ms))
            }
            GroupState::CompletingRebalance if !m.synced => {
                Some(m.rebalance_deadline(self.phase_started_ms))
            }
            _ => None,
        });
        // The initial delay is the wake-up time only once everyone has joined; before
        // that, joins (events) or the deadlines above end the wait. A past hold would
        // otherwise ask for a poll over and over.
        let everyone_joined = self.members.values().all(|m| m.awaiting_join.is_some());
        let hold = (self.state == GroupState::PreparingRebalance && everyone_joined)
            .then_some(self.hold_until_ms);
        sessions.chain(phase).chain(hold).min()
    }

    pub fn describe(&self) -> GroupDescription {
        let members = self
            .members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                topics: m.topics.iter().cloned().collect(),
                assignment: m.assignment.clone(),
            })
            .collect();
        let partitions: BTreeSet<&TopicPartition> = self
            .offsets
            .partitions()
            .chain(self.members.values().flat_map(|m| &m.assignment))
            .collect();
        let offsets = partitions
            .into_iter()
            .map(|tp| PartitionCommit {
                partition: tp.clone(),
                committed: self.offsets.get(tp).map(|v| v.offset),
            })
            .collect();
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            generation: self.generation,
            assignor: self.assignor.clone(),
            members,
            offsets,
        }
    }

    pub fn not_empty(&self) -> GroupError {
        GroupError::GroupNotEmpty {
            group_id: self.id.clone(),
            members: self.members.len(),
        }
    }

    /// Moves to the next generation. After `i32::MAX` it starts again at 1 rather than
    /// stopping, so a stale generation can never equal the current one by saturation.
    fn bump_generation(&mut self) {
        self.generation = self.generation.checked_add(1).unwrap_or(1);
    }

    fn start_rebalance(&mut self, now: u64) {
        self.state = GroupState::PreparingRebalance;
        self.phase_started_ms = now;
        self.hold_until_ms = now;
        self.revokers.clear();
        self.follow_up = false;
    }

    fn become_empty(&mut self) {
        if self.state != GroupState::Empty {
            self.bump_generation();
        }
        self.state = GroupState::Empty;
        self.leader = None;
        self.assignor = None;
        self.revokers.clear();
        self.follow_up = false;
        self.assigned_from.clear();
    }

    fn remove_member(&mut self, member_id: &str, now: u64, outbox: &mut Vec<Completion>) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(ticket) = member.awaiting_join {
            outbox.push(Completion {
                ticket,
                result: Err(self.unknown_member(member_id)),
            });
        }
        self.revokers.remove(member_id);
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        if self.members.is_empty() {
            self.become_empty();
        } else if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.start_rebalance(now);
        }
    }

    /// Completes the rebalance once every member has rejoined, dropping members whose
    /// rebalance timeout ran out first.
    fn try_complete(
        &mut self,
        now: u64,
        rules: &Rules<'_>,
        catalog: &dyn TopicCatalog,
        outbox: &mut Vec<Completion>,
    ) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let started = self.phase_started_ms;
        let late: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none() && now >= m.rebalance_deadline(started))
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            self.remove_member(&id, now, outbox);
        }
        if self.state != GroupState::PreparingRebalance
            || now < self.hold_until_ms
            || self.members.values().any(|m| m.awaiting_join.is_none())
        {
            return;
        }
        self.complete(now, rules, catalog, outbox);
    }

    fn complete(
        &mut self,
        now: u64,
        rules: &Rules<'_>,
        catalog: &dyn TopicCatalog,
        outbox: &mut Vec<Completion>,
    ) {
        let leader = self
            .leader
            .clone()
            .filter(|l| self.members.contains_key(l))
            .or_else(|| {
                self.members
                    .iter()
                    .min_by_key(|(_, m)| m.joined_seq)
                    .map(|(id, _)| id.clone())
            });
        let assignor = leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .and_then(|l| {
                l.assignors.iter().find_map(|name| {
                    let shared = self.members.values().all(|m| m.assignors.contains(name));
                    let known = rules.assignors.iter().find(|a| a.name() == name);
                    known.filter(|_| shared)
                })
            });
        let (Some(leader), Some(assignor)) = (leader, assignor) else {
            // Joins are refused when they share no assignor with the group, so this is
            // only reachable if that check is broken; fail the joins rather than hang.
            let supported: Vec<String> = rules.assignors.iter().map(|a| a.name().into()).collect();
            for m in std::mem::take(&mut self.members).into_values() {
                if let Some(ticket) = m.awaiting_join {
                    outbox.push(Completion {
                        ticket,
                        result: Err(GroupError::NoCommonAssignor {
                            group_id: self.id.clone(),
                            offered: m.assignors.clone(),
                            supported: supported.clone(),
                        }),
                    });
                }
            }
            self.become_empty();
            return;
        };

        let partitions = self.subscribed_partitions(catalog);
        let subscriptions: Vec<MemberSubscription> = self
            .members
            .iter()
            .map(|(id, m)| MemberSubscription {
                member_id: id.clone(),
                topics: m.topics.clone(),
                owned: m.holds.clone(),
            })
            .collect();
        let mut result = assignor.assign(&subscriptions, &partitions);
        let universe = assignable(&subscriptions, &partitions);
        let given: BTreeSet<&TopicPartition> = result.values().flatten().collect();
        let withheld: BTreeSet<&TopicPartition> =
            universe.iter().filter(|tp| !given.contains(tp)).collect();
        self.follow_up = !withheld.is_empty();
        self.revokers = self
            .members
            .iter()
            .filter(|(_, m)| m.holds.iter().any(|tp| withheld.contains(tp)))
            .map(|(id, _)| id.clone())
            .collect();

        self.bump_generation();
        self.assignor = Some(assignor.name().to_string());
        self.leader = Some(leader);
        self.assigned_from = partitions;
        self.state = GroupState::CompletingRebalance;
        self.phase_started_ms = now;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            let mut assignment = result.remove(id).unwrap_or_default();
            assignment.sort();
            let Some(member) = self.members.get_mut(id) else {
                continue;
            };
            member.holds.extend(assignment.iter().cloned());
            member.assignment = assignment;
            member.synced = false;
            // The session restarts when the response leaves, not when the join arrived.
            member.last_seen_ms = now;
            if let Some(ticket) = member.awaiting_join.take() {
                let response = self.join_response(id);
                outbox.push(Completion {
                    ticket,
                    result: Ok(response),
                });
            }
        }
    }

    fn join_response(&self, member_id: &str) -> Joined {
        Joined {
            member_id: member_id.to_string(),
            generation: self.generation,
            leader: self.leader.clone().unwrap_or_default(),
            assignor: self.assignor.clone().unwrap_or_default(),
            members: self.members.keys().cloned().collect(),
        }
    }

    /// Partition counts of every existing topic some member subscribes to.
    fn subscribed_partitions(&self, catalog: &dyn TopicCatalog) -> BTreeMap<String, u32> {
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        topics
            .into_iter()
            .filter_map(|t| catalog.partitions(t).map(|n| (t.clone(), n)))
            .collect()
    }

    /// Refuses a join whose assignors share none with the rest of the group (and this
    /// broker), so the group always has one it can agree on.
    fn check_assignors(
        &self,
        member_id: Option<&str>,
        offered: &[String],
        rules: &Rules<'_>,
    ) -> Result<(), GroupError> {
        let mut common: Vec<String> = rules.assignors.iter().map(|a| a.name().into()).collect();
        for (id, m) in &self.members {
            if Some(id.as_str()) != member_id {
                common.retain(|name| m.assignors.contains(name));
            }
        }
        if offered.iter().any(|name| common.contains(name)) {
            Ok(())
        } else {
            Err(GroupError::NoCommonAssignor {
                group_id: self.id.clone(),
                offered: offered.to_vec(),
                supported: common,
            })
        }
    }

    fn check_member(&self, member_id: &str) -> Result<(), GroupError> {
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(self.unknown_member(member_id))
        }
    }

    fn check_generation(&self, generation: i32) -> Result<(), GroupError> {
        if generation == self.generation {
            Ok(())
        } else {
            Err(GroupError::IllegalGeneration {
                group_id: self.id.clone(),
                got: generation,
                current: self.generation,
            })
        }
    }

    fn unknown_member(&self, member_id: &str) -> GroupError {
        GroupError::UnknownMember {
            group_id: self.id.clone(),
            member_id: member_id.to_string(),
        }
    }

    fn rebalancing(&self) -> GroupError {
        GroupError::RebalanceInProgress {
            group_id: self.id.clone(),
        }
    }
}
