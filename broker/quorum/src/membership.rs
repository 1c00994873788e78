//! Observers: brokers that join a running cluster without voting.
//!
//! The voters are fixed by configuration (three or five). Any other broker of the
//! cluster is an observer, as a broker-only node is in Kafka's KRaft: it joins at start
//! by asking the leader to add it as a Raft learner, after which the leader replicates
//! the metadata log to it like to a voter (entries, or a snapshot when it is far
//! behind), and its state machine applies the same records. It proposes through the
//! leader as a follower does, and heartbeats the controller like every broker. Learners
//! never vote and never lead, so adding or removing one leaves the quorum's majority
//! where it was.
//!
//! Membership changes are made by the leader only; `Join` and `Leave` are carried to it.
//! A voter can be neither added nor removed this way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};

use crate::network::{ForwardRefusal, PeerReply, PeerRequest};
use crate::{Node, NodeId, Quorum, QuorumError};

impl Quorum {
    /// Asks the voters, in turn, until the leader among them takes this node in as a
    /// learner at its address; gives up after `propose_timeout`.
    pub(crate) async fn join(&self) -> Result<(), QuorumError> {
        let started = Instant::now();
        let deadline = started + self.options.propose_timeout;
        let request = PeerRequest::Join {
            node_id: self.options.node_id,
            address: self.options.address.clone(),
        };
        let mut backoff = Duration::from_millis(50);
        let mut last = String::from("no voter answered");
        loop {
            for (voter, address) in &self.options.voters {
                match self.ask(*voter, address, &request, deadline).await {
                    Ok(()) => {
                        tracing::info!(leader = voter, "joined the metadata quorum as an observer");
                        return Ok(());
                    }
                    Err(JoinFailure::Refused(reason)) => {
                        return Err(QuorumError::Config(format!(
                            "voter {voter} refused to take broker {} in: {reason}",
                            self.options.node_id
                        )));
                    }
                    Err(JoinFailure::Retry(reason)) => last = reason,
                }
            }
            if Instant::now() + backoff >= deadline {
                return Err(QuorumError::NoQuorum {
                    reason: format!("could not join as an observer: {last}"),
                    waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Takes observer `node_id` out of the membership: the leader stops replicating to
    /// it. Carried to the leader from any node. Removing a node that is not a member
    /// succeeds; removing a voter is refused.
    pub async fn remove_observer(&self, node_id: NodeId) -> Result<(), QuorumError> {
        let deadline = Instant::now() + self.options.propose_timeout;
        let (leader, address) = self.leader_address()?;
        let refused = |reason: String| QuorumError::Config(reason);
        if leader == self.options.node_id {
            return self.dismiss(node_id).await.map_err(|e| match e {
                ForwardRefusal::Refused(reason) => refused(reason),
                other => QuorumError::OutcomeUnknown(format!("{other:?}")),
            });
        }
        match self
            .ask(leader, &address, &PeerRequest::Leave { node_id }, deadline)
            .await
        {
            Ok(()) => Ok(()),
            Err(JoinFailure::Refused(reason)) => Err(refused(reason)),
            Err(JoinFailure::Retry(reason)) => Err(QuorumError::NoQuorum {
                reason,
                waited_ms: 0,
            }),
        }
    }

    /// Sends a membership request to `target` and reads its answer.
    async fn ask(
        &self,
        target: NodeId,
        address: &str,
        request: &PeerRequest,
        deadline: Instant,
    ) -> Result<(), JoinFailure> {
        let message = serde_json::to_vec(request).map_err(|e| JoinFailure::Retry(e.to_string()))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let reply = tokio::time::timeout(remaining, self.transport.call(target, address, message))
            .await
            .map_err(|_| JoinFailure::Retry(format!("voter {target} did not answer in time")))?
            .map_err(|e| JoinFailure::Retry(e.reason))?;
        match serde_json::from_slice::<PeerReply>(&reply) {
            Ok(PeerReply::Membership(Ok(()))) => Ok(()),
            Ok(PeerReply::Membership(Err(ForwardRefusal::Refused(reason)))) => {
                Err(JoinFailure::Refused(reason))
            }
            Ok(PeerReply::Membership(Err(ForwardRefusal::NotLeader))) => Err(JoinFailure::Retry(
                format!("voter {target} does not lead the quorum"),
            )),
            Ok(other) => Err(JoinFailure::Retry(format!(
                "voter {target} answered {other:?}"
            ))),
            Err(e) => Err(JoinFailure::Retry(format!(
                "voter {target}'s answer does not decode: {e}"
            ))),
        }
    }

    /// On the leader: makes `node_id` a learner reached at `address`, or updates its
    /// address; nothing when it is one already at that address.
    pub(crate) async fn admit(
        &self,
        node_id: NodeId,
        address: String,
    ) -> Result<(), ForwardRefusal> {
        let membership = self.leader_membership()?;
        if membership.voters.contains(&node_id) {
            return Err(ForwardRefusal::Refused(format!(
                "broker {node_id} is a voter; it joins by its entry in the voters, not as an observer"
            )));
        }
        let change = match membership.nodes.get(&node_id) {
            Some(node) if node.addr == address => return Ok(()),
            Some(_) => ChangeMembers::SetNodes(BTreeMap::from([(node_id, Node { addr: address })])),
            None => ChangeMembers::AddNodes(BTreeMap::from([(node_id, Node { addr: address })])),
        };
        self.change(change).await
    }

    /// On the leader: takes observer `node_id` out of the membership.
    pub(crate) async fn dismiss(&self, node_id: NodeId) -> Result<(), ForwardRefusal> {
        let membership = self.leader_membership()?;
        if membership.voters.contains(&node_id) {
            return Err(ForwardRefusal::Refused(format!(
                "broker {node_id} is a voter of the metadata quorum; voters are fixed by cluster.voters"
            )));
        }
        if !membership.nodes.contains_key(&node_id) {
            return Ok(());
        }
        self.change(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])))
            .await
    }

    fn leader_membership(&self) -> Result<Members, ForwardRefusal> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            return Err(ForwardRefusal::NotLeader);
        }
        let membership = metrics.membership_config.membership();
        Ok(Members {
            voters: membership.voter_ids().collect(),
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect(),
        })
    }

    async fn change(&self, change: ChangeMembers<NodeId, Node>) -> Result<(), ForwardRefusal> {
        let changed = tokio::time::timeout(
            self.options.propose_timeout,
            self.raft.change_membership(change, true),
        )
        .await;
        match changed {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(ForwardRefusal::NotLeader)
            }
            Ok(Err(e)) => Err(ForwardRefusal::Unknown(e.to_string())),
            Err(_) => Err(ForwardRefusal::Unknown(
                "the membership change was not committed in time".into(),
            )),
        }
    }
}

/// The membership as the leader has it.
struct Members {
    voters: BTreeSet<NodeId>,
    nodes: BTreeMap<NodeId, Node>,
}

enum JoinFailure {
    /// Worth asking again (another voter, or later).
    Retry(String),
    /// The leader will not do it.
    Refused(String),
}
