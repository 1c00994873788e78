//! One voter of the metadata quorum.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Raft, ServerState, SnapshotPolicy};
use quiver_metadata::{MetadataImage, MetadataRecord};
use tokio::sync::watch;

use crate::log_store::LogStore;
use crate::network::{ForwardRefusal, Network, PeerReply, PeerRequest, Transport};
use crate::state_machine::{Shared, StateMachine};
use crate::{Committed, Node, NodeId, QuorumError, TypeConfig};

/// How a voter runs.
#[derive(Debug, Clone)]
pub struct QuorumOptions {
    /// This voter's id.
    pub node_id: NodeId,
    /// Every voter of the cluster: id → `host:port`. This node is one of them, or it
    /// is an observer that joins the running quorum as a learner (see `address`).
    pub voters: BTreeMap<NodeId, String>,
    /// Where the other nodes reach this one. A voter's is its entry in `voters`; an
    /// observer sends its own to the leader when it joins.
    pub address: String,
    /// A follower that hears nothing from a leader for a random time in this range
    /// starts an election.
    pub election_timeout_ms: (u64, u64),
    /// How often the leader heartbeats followers.
    pub heartbeat_ms: u64,
    /// A snapshot is taken after this many entries; the log before it is purged.
    pub snapshot_every: u64,
    /// How long a proposal waits for a leader and a commit before failing.
    pub propose_timeout: Duration,
}

impl QuorumOptions {
    /// Options with the defaults a cluster on one network runs well with: elections
    /// after 500–1000 ms of silence, heartbeats every 100 ms, a snapshot every 1000
    /// entries, proposals given 10 s.
    ///
    /// A node that is not among `voters` is an observer reached at `address`; a voter's
    /// address is its entry in `voters` whatever `address` says.
    pub fn new(node_id: NodeId, voters: BTreeMap<NodeId, String>, address: String) -> Self {
        let address = voters.get(&node_id).cloned().unwrap_or(address);
        QuorumOptions {
            node_id,
            voters,
            address,
            election_timeout_ms: (500, 1000),
            heartbeat_ms: 100,
            snapshot_every: 1000,
            propose_timeout: Duration::from_secs(10),
        }
    }
}

/// This voter's part in the quorum now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    /// An observer: it keeps a copy of the log and the metadata but never votes.
    Learner,
    /// Shut down, or not started yet.
    Other,
}

/// What `quiver cluster status` shows of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub role: Role,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    /// The last index the newest snapshot here covers.
    pub snapshot_index: Option<u64>,
    pub voters: BTreeSet<NodeId>,
    /// The observers (learners): nodes that keep the log without voting.
    pub learners: BTreeSet<NodeId>,
}

/// A running voter: its Raft, its state machine's image, and the way to its peers.
#[derive(Clone)]
pub struct Quorum {
    pub(crate) raft: Raft<TypeConfig>,
    state: Arc<Shared>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) options: Arc<QuorumOptions>,
    /// Broker heartbeats this voter received while leading (see `heartbeat.rs`).
    pub(crate) heartbeats: Arc<crate::heartbeat::Heartbeats>,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.options.node_id)
            .field("voters", &self.options.voters)
            .finish_non_exhaustive()
    }
}

impl Quorum {
    /// Opens the node's storage in `dir` and starts its Raft. A voter that has never
    /// been part of a cluster proposes the initial membership (every voter does; the
    /// same membership from several is harmless, and the first election settles it).
    /// An observer asks the quorum's leader to take it in as a learner, at every start
    /// (a learner removed while it was down would otherwise wait for entries that never
    /// come), and fails when no voter takes it within `propose_timeout`.
    pub async fn start(
        dir: &Path,
        options: QuorumOptions,
        transport: Arc<dyn Transport>,
    ) -> Result<Quorum, QuorumError> {
        if options.voters.is_empty() {
            return Err(QuorumError::Config("a quorum needs voters".into()));
        }
        let voter = options.voters.contains_key(&options.node_id);
        let (min, max) = options.election_timeout_ms;
        let config = openraft::Config {
            cluster_name: "quiver".into(),
            election_timeout_min: min,
            election_timeout_max: max,
            heartbeat_interval: options.heartbeat_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_every),
            max_in_snapshot_log_to_keep: options.snapshot_every / 10,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;
        let dir = dir.to_path_buf();
        let (log, machine) = tokio::task::spawn_blocking(move || {
            Ok::<_, QuorumError>((LogStore::open(&dir)?, StateMachine::open(&dir)?))
        })
        .await
        .map_err(|e| QuorumError::Stopped(e.to_string()))??;
        let state = Arc::clone(&machine.shared);
        let network = Network {
            transport: Arc::clone(&transport),
        };
        let raft = Raft::new(options.node_id, Arc::new(config), network, log, machine)
            .await
            .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        let quorum = Quorum {
            raft,
            state,
            transport,
            options: Arc::new(options),
            heartbeats: Arc::default(),
        };
        if voter {
            quorum.initialize().await?;
        } else {
            quorum.join().await?;
        }
        Ok(quorum)
    }

    async fn initialize(&self) -> Result<(), QuorumError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<NodeId, Node> = self
            .options
            .voters
            .iter()
            .map(|(id, addr)| (*id, Node { addr: addr.clone() }))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(QuorumError::Config(e.to_string())),
        }
    }

    /// The metadata as of the last entry applied here.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.state.image.load_full()
    }

    /// The index of the last entry applied here, as it changes.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.state.applied_index.subscribe()
    }

    /// Appends `record` to the metadata log through the leader (forwarding it there
    /// from a follower), waits until it is committed and applied on this voter, and
    /// returns what applying it did.
    ///
    /// While no leader is known, or the leader cannot be reached, it retries with
    /// backoff until `propose_timeout`. Once a proposal may have reached a leader it is
    /// not sent again: a lost answer is [`QuorumError::OutcomeUnknown`].
    pub async fn propose(&self, record: MetadataRecord) -> Result<Committed, QuorumError> {
        let started = Instant::now();
        let deadline = started + self.options.propose_timeout;
        let mut backoff = Duration::from_millis(20);
        loop {
            let reason = match self.try_propose(&record, deadline).await? {
                Ok(committed) => {
                    self.wait_applied(committed.index, deadline).await?;
                    return Ok(committed);
                }
                Err(reason) => reason,
            };
            let now = Instant::now();
            if now + backoff >= deadline {
                return Err(QuorumError::NoQuorum {
                    reason,
                    waited_ms: u64::try_from(now.duration_since(started).as_millis())
                        .unwrap_or(u64::MAX),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// One attempt: `Ok(Err(reason))` when it surely did not reach a leader and may be
    /// retried.
    async fn try_propose(
        &self,
        record: &MetadataRecord,
        deadline: Instant,
    ) -> Result<Result<Committed, String>, QuorumError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let written = tokio::time::timeout(remaining, self.raft.client_write(record.clone())).await;
        let forward = match written {
            Err(_) => {
                return Err(QuorumError::OutcomeUnknown(
                    "this voter leads but the record was not committed in time".into(),
                ));
            }
            Ok(Ok(response)) => {
                return Ok(Ok(Committed {
                    index: response.log_id.index,
                    outcome: response.data,
                }));
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => f,
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                return Err(QuorumError::Stopped(e.to_string()));
            }
            Ok(Err(RaftError::Fatal(e))) => return Err(QuorumError::Stopped(e.to_string())),
        };
        let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) else {
            return Ok(Err("no leader is elected yet".into()));
        };
        if leader == self.options.node_id {
            return Ok(Err("leadership is changing".into()));
        }
        let message = serde_json::to_vec(&PeerRequest::Propose(record.clone()))
            .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        let call = self.transport.call(leader, &node.addr, message);
        let reply = match tokio::time::timeout(remaining, call).await {
            Err(_) => {
                return Err(QuorumError::OutcomeUnknown(format!(
                    "leader {leader} did not answer in time"
                )));
            }
            Ok(Err(e)) if !e.maybe_delivered => {
                return Ok(Err(format!(
                    "leader {leader} at {} is unreachable: {e}",
                    node.addr
                )));
            }
            Ok(Err(e)) => {
                return Err(QuorumError::OutcomeUnknown(format!(
                    "the connection to leader {leader} failed: {e}"
                )));
            }
            Ok(Ok(bytes)) => bytes,
        };
        match serde_json::from_slice::<PeerReply>(&reply) {
            Ok(PeerReply::Propose(Ok(committed))) => Ok(Ok(committed)),
            Ok(PeerReply::Propose(Err(ForwardRefusal::NotLeader))) => {
                Ok(Err(format!("broker {leader} no longer leads")))
            }
            Ok(PeerReply::Propose(Err(ForwardRefusal::Unknown(e)))) => {
                Err(QuorumError::OutcomeUnknown(e))
            }
            Ok(other) => Err(QuorumError::OutcomeUnknown(format!(
                "leader {leader} answered a proposal with {other:?}"
            ))),
            Err(e) => Err(QuorumError::OutcomeUnknown(format!(
                "leader {leader}'s answer does not decode: {e}"
            ))),
        }
    }

    /// Waits until this voter has applied `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), QuorumError> {
        let mut applied = self.applied();
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, applied.wait_for(|a| *a >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(QuorumError::Stopped("the state machine is gone".into())),
            Err(_) => Err(QuorumError::NoQuorum {
                reason: format!("entry {index} is committed but not yet applied on this voter"),
                waited_ms: u64::try_from(self.options.propose_timeout.as_millis())
                    .unwrap_or(u64::MAX),
            }),
        }
    }

    /// Answers a message from a peer (what a transport received).
    pub async fn handle(&self, message: &[u8]) -> Vec<u8> {
        let reply = match serde_json::from_slice::<PeerRequest>(message) {
            Err(e) => PeerReply::Malformed(format!("not a quorum message: {e}")),
            Ok(PeerRequest::Vote(rpc)) => PeerReply::Vote(self.raft.vote(rpc).await),
            Ok(PeerRequest::Append(rpc)) => PeerReply::Append(self.raft.append_entries(rpc).await),
            Ok(PeerRequest::Snapshot(rpc)) => {
                PeerReply::Snapshot(self.raft.install_snapshot(rpc).await)
            }
            Ok(PeerRequest::Propose(record)) => PeerReply::Propose(self.propose_here(record).await),
            Ok(PeerRequest::Heartbeat {
                broker_id,
                incarnation,
            }) => PeerReply::Heartbeat(self.receive_heartbeat(broker_id, incarnation)),
            Ok(PeerRequest::Join { node_id, address }) => {
                PeerReply::Membership(self.admit(node_id, address).await)
            }
            Ok(PeerRequest::Leave { node_id }) => {
                PeerReply::Membership(self.dismiss(node_id).await)
            }
        };
        // Every reply type serialises; a failure here would be a bug in a derive.
        serde_json::to_vec(&reply).unwrap_or_default()
    }

    /// Appends a proposal forwarded by a peer, if this voter leads; never forwards again.
    async fn propose_here(&self, record: MetadataRecord) -> Result<Committed, ForwardRefusal> {
        let written =
            tokio::time::timeout(self.options.propose_timeout, self.raft.client_write(record))
                .await;
        match written {
            Ok(Ok(r)) => Ok(Committed {
                index: r.log_id.index,
                outcome: r.data,
            }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(ForwardRefusal::NotLeader)
            }
            Ok(Err(e)) => Err(ForwardRefusal::Unknown(e.to_string())),
            Err(_) => Err(ForwardRefusal::Unknown(
                "the leader could not commit the record in time".into(),
            )),
        }
    }

    /// Who leads, this voter's role, and how far its log and state machine go.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Other,
        };
        QuorumStatus {
            node_id: self.options.node_id,
            role,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied: metrics.last_applied.map(|l| l.index),
            snapshot_index: metrics.snapshot.map(|l| l.index),
            voters: metrics.membership_config.membership().voter_ids().collect(),
            learners: metrics
                .membership_config
                .membership()
                .learner_ids()
                .collect(),
        }
    }

    /// Waits until some voter is known to lead, or `timeout` passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        let mut metrics = self.raft.metrics();
        let found =
            tokio::time::timeout(timeout, metrics.wait_for(|m| m.current_leader.is_some())).await;
        match found {
            Ok(Ok(m)) => m.current_leader,
            _ => None,
        }
    }

    /// Stops this voter's Raft.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "the metadata quorum did not stop cleanly");
        }
    }
}
