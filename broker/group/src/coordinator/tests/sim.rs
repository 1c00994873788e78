//! A simulated fleet of consumers driving a coordinator in virtual time.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    CommitRequest, CommittedOffset, Committer, CoordinatorConfig, GroupCoordinator, GroupError,
    GroupState, HeartbeatRequest, JoinOutcome, JoinRequest, JoinTicket, Joined, LeaveRequest,
    OffsetRecord, SyncRequest, TopicPartition,
};

pub(super) const GROUP: &str = "g";
pub(super) const SESSION: u32 = 10_000;
pub(super) const REBALANCE: u32 = 30_000;
pub(super) const HEARTBEAT_EVERY: u64 = 1_000;

/// A consumer as the tests simulate it: it syncs right after every join, heartbeats
/// every second, rejoins when told to, and under an eager strategy gives up everything
/// it holds before rejoining.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) member_id: Option<String>,
    pub(super) generation: i32,
    pub(super) topics: Vec<String>,
    pub(super) assignor: String,
    pub(super) held: BTreeSet<TopicPartition>,
    pub(super) ticket: Option<JoinTicket>,
    /// A crashed client sends nothing more.
    pub(super) alive: bool,
}

/// A coordinator, a topic catalog, a virtual clock and the clients.
pub(super) struct Sim {
    pub(super) coord: GroupCoordinator,
    pub(super) topics: BTreeMap<String, u32>,
    pub(super) now: u64,
    pub(super) clients: BTreeMap<String, Client>,
    /// The coordinator's assignment of every generation: member id → partitions.
    pub(super) generations: BTreeMap<i32, BTreeMap<String, BTreeSet<TopicPartition>>>,
}

impl Sim {
    pub(super) fn new(topics: &[(&str, u32)], initial_delay_ms: u32) -> Self {
        let config = CoordinatorConfig {
            initial_rebalance_delay_ms: initial_delay_ms,
            ..Default::default()
        };
        Sim {
            coord: GroupCoordinator::new(config),
            topics: topics.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            now: 0,
            clients: BTreeMap::new(),
            generations: BTreeMap::new(),
        }
    }

    pub(super) fn add(&mut self, name: &str, topics: &[&str], assignor: &str) {
        self.clients.insert(
            name.to_string(),
            Client {
                member_id: None,
                generation: -1,
                topics: topics.iter().map(|t| t.to_string()).collect(),
                assignor: assignor.to_string(),
                held: BTreeSet::new(),
                ticket: None,
                alive: true,
            },
        );
        self.join(name);
    }

    pub(super) fn client(&mut self, name: &str) -> &mut Client {
        self.clients.get_mut(name).expect("client exists")
    }

    pub(super) fn join_request(&mut self, name: &str) -> JoinRequest {
        let c = self.client(name);
        if c.assignor != "cooperative-sticky" {
            c.held.clear();
        }
        JoinRequest {
            group_id: GROUP.into(),
            member_id: c.member_id.clone(),
            client_id: name.into(),
            topics: c.topics.clone(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            assignors: vec![c.assignor.clone()],
            owned: c.held.iter().cloned().collect(),
        }
    }

    pub(super) fn join(&mut self, name: &str) {
        let req = self.join_request(name);
        match self.coord.join(req, self.now, &self.topics) {
            Ok(JoinOutcome::Ready(response)) => self.joined(name, response),
            Ok(JoinOutcome::Pending(ticket)) => self.client(name).ticket = Some(ticket),
            Err(e) => panic!("{name} could not join: {e}"),
        }
        self.check_disjoint();
    }

    pub(super) fn joined(&mut self, name: &str, response: Joined) {
        self.record_generation();
        let c = self.client(name);
        c.member_id = Some(response.member_id.clone());
        c.generation = response.generation;
        c.ticket = None;
        let req = SyncRequest {
            group_id: GROUP.into(),
            member_id: response.member_id,
            generation: response.generation,
        };
        match self.coord.sync(&req, self.now) {
            Ok(assignment) => self.client(name).held = assignment.into_iter().collect(),
            Err(GroupError::RebalanceInProgress { .. }) => self.join(name),
            Err(GroupError::UnknownMember { .. }) => self.rejoin_afresh(name),
            Err(e) => panic!("{name} could not sync: {e}"),
        }
        self.check_disjoint();
    }

    /// Remembers what the coordinator assigned in its current generation.
    pub(super) fn record_generation(&mut self) {
        let Ok(description) = self.coord.describe(GROUP) else {
            return;
        };
        if matches!(
            description.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            let assignment = description
                .members
                .into_iter()
                .map(|m| (m.member_id, m.assignment.into_iter().collect()))
                .collect();
            self.generations
                .entry(description.generation)
                .or_insert(assignment);
        }
    }

    /// Polls until no parked join is left to answer, delivering every answer.
    pub(super) fn deliver(&mut self) {
        loop {
            let done = self.coord.poll(self.now, &self.topics);
            if done.is_empty() {
                return;
            }
            for completion in done {
                let name = self
                    .clients
                    .iter()
                    .find(|(_, c)| c.ticket == Some(completion.ticket))
                    .map(|(n, _)| n.clone())
                    .expect("every ticket belongs to a client");
                self.client(&name).ticket = None;
                if !self.clients[&name].alive {
                    // A crashed client never reads its answer, nor syncs.
                    continue;
                }
                match completion.result {
                    Ok(response) => self.joined(&name, response),
                    Err(GroupError::UnknownMember { .. }) => self.rejoin_afresh(&name),
                    Err(e) => panic!("{name}'s join failed: {e}"),
                }
            }
        }
    }

    pub(super) fn heartbeat(&mut self, name: &str) {
        let c = &self.clients[name];
        if !c.alive || c.ticket.is_some() {
            return;
        }
        let Some(member_id) = c.member_id.clone() else {
            return;
        };
        let req = HeartbeatRequest {
            group_id: GROUP.into(),
            member_id,
            generation: c.generation,
        };
        match self.coord.heartbeat(&req, self.now) {
            Ok(_) => {}
            Err(GroupError::UnknownMember { .. }) => self.rejoin_afresh(name),
            Err(_) => self.join(name),
        }
    }

    /// What a client does once the group has forgotten it: drop everything, join anew.
    pub(super) fn rejoin_afresh(&mut self, name: &str) {
        let c = self.client(name);
        c.member_id = None;
        c.held.clear();
        self.join(name);
    }

    /// Advances the clock by `ms`, letting every live client heartbeat first.
    pub(super) fn step(&mut self, ms: u64) {
        self.now += ms;
        let names: Vec<String> = self.clients.keys().cloned().collect();
        for name in names {
            self.heartbeat(&name);
        }
        self.deliver();
    }

    /// Runs until the group is stable and every live client is in its generation.
    pub(super) fn settle(&mut self) {
        self.deliver();
        for _ in 0..120 {
            let generation = self.coord.describe(GROUP).map(|d| d.generation).ok();
            let caught_up = self
                .clients
                .values()
                .filter(|c| c.alive)
                .all(|c| c.ticket.is_none() && Some(c.generation) == generation);
            if self.coord.state(GROUP) == Some(GroupState::Stable) && caught_up {
                return;
            }
            self.step(HEARTBEAT_EVERY);
        }
        panic!("group did not settle: {:?}", self.coord.describe(GROUP));
    }

    pub(super) fn crash(&mut self, name: &str) {
        let c = self.client(name);
        c.alive = false;
        c.held.clear();
    }

    pub(super) fn leave(&mut self, name: &str) {
        let c = self.client(name);
        c.alive = false;
        c.held.clear();
        let req = LeaveRequest {
            group_id: GROUP.into(),
            member_id: c.member_id.clone().expect("joined"),
        };
        self.coord.leave(&req, self.now).expect("leave");
        self.deliver();
    }

    pub(super) fn held(&self, name: &str) -> usize {
        self.clients[name].held.len()
    }

    pub(super) fn member_id(&self, name: &str) -> String {
        self.clients[name].member_id.clone().expect("joined")
    }

    pub(super) fn generation(&self) -> i32 {
        self.coord.describe(GROUP).expect("group exists").generation
    }

    /// No partition is ever held by two live clients at once.
    pub(super) fn check_disjoint(&self) {
        let mut seen = BTreeMap::new();
        for (name, c) in &self.clients {
            for tp in &c.held {
                if let Some(other) = seen.insert(tp.clone(), name) {
                    panic!("{tp} held by both {other} and {name}");
                }
            }
        }
    }

    pub(super) fn commit(
        &mut self,
        name: Option<&str>,
        generation: i32,
        offset: i64,
    ) -> Result<Vec<OffsetRecord>, GroupError> {
        let committer = match name {
            Some(n) => Committer::Member {
                member_id: self.member_id(n),
                generation,
            },
            None => Committer::Outside,
        };
        let req = CommitRequest {
            group_id: GROUP.into(),
            committer,
            offsets: vec![CommittedOffset {
                partition: TopicPartition::new("t", 0),
                offset,
                metadata: String::new(),
            }],
        };
        // The simulated server's appends always succeed.
        let pending = self.coord.commit(req, self.now, &self.topics)?;
        self.coord.complete_commit(&pending.ticket);
        Ok(pending.records)
    }
}
