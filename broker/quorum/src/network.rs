//! How voters talk: Raft's three RPCs and forwarded proposals, as JSON messages over a
//! [`Transport`] the broker provides.
//!
//! The quorum does not know QUIC. A transport carries one request's bytes to a peer and
//! brings back the reply's bytes; the broker's transport sends them as one frame on the
//! connection it keeps to that peer, and hands frames it receives to
//! [`crate::Quorum::handle`]. Tests use an in-memory transport that can cut nodes off.
//!
//! A message is one JSON document ([`PeerRequest`] / [`PeerReply`]): metadata traffic is
//! small and rare, and JSON keeps it readable when debugging a cluster.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use quiver_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

use crate::{Committed, Node, NodeId, TypeConfig};

/// A future a transport returns.
pub type TransportFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<u8>, TransportError>> + Send + 'a>>;

/// Carries one message to a peer voter and brings back its reply.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `message` to voter `target` at `address` and returns the reply's bytes.
    fn call<'a>(
        &'a self,
        target: NodeId,
        address: &'a str,
        message: Vec<u8>,
    ) -> TransportFuture<'a>;
}

/// Why a message got no reply.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct TransportError {
    pub reason: String,
    /// Whether the message may have reached the peer (it was sent, then the reply was
    /// lost); `false` when no connection could be made. A forwarded proposal whose
    /// fate is unknown is not retried: it may have been applied.
    pub maybe_delivered: bool,
}

/// A message from one voter to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerRequest {
    Vote(VoteRequest<NodeId>),
    Append(AppendEntriesRequest<TypeConfig>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A record proposed on a voter that does not lead, for the leader to append.
    Propose(MetadataRecord),
    /// A broker's heartbeat, for the leader (the controller) to keep it unfenced.
    Heartbeat {
        broker_id: NodeId,
        incarnation: u64,
    },
    /// An observer asks the leader to take it in as a learner, reached at `address`.
    Join {
        node_id: NodeId,
        address: String,
    },
    /// The leader is asked to take an observer out of the membership.
    Leave {
        node_id: NodeId,
    },
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerReply {
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Propose(Result<Committed, ForwardRefusal>),
    /// Whether the heartbeat was taken: `false` from a voter that does not lead.
    Heartbeat(bool),
    /// The answer to a `Join` or `Leave`.
    Membership(Result<(), ForwardRefusal>),
    /// The request did not decode.
    Malformed(String),
}

/// Why a forwarded proposal was not appended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardRefusal {
    /// The peer does not lead (any more): find the leader and try again.
    NotLeader,
    /// The peer leads but could not commit in time; the record may still commit.
    Unknown(String),
    /// The leader will not make this change (a membership change that would touch a
    /// voter); trying again changes nothing.
    Refused(String),
}

/// The network openraft uses: one [`Peer`] per target voter.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub(crate) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Peer {
        Peer {
            target,
            address: node.addr.clone(),
            transport: Arc::clone(&self.transport),
        }
    }
}

/// Sends Raft's RPCs to one voter.
#[derive(Debug)]
pub(crate) struct Peer {
    target: NodeId,
    address: String,
    transport: Arc<dyn Transport>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl Peer {
    async fn send<E: std::error::Error>(
        &self,
        request: &PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerReply, RPCError<NodeId, Node, RaftError<NodeId, E>>> {
        let bytes =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let call = self.transport.call(self.target, &self.address, bytes);
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(elapsed) => return Err(RPCError::Network(NetworkError::new(&elapsed))),
        };
        serde_json::from_slice(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

fn unexpected<E: std::error::Error>(
    reply: &PeerReply,
) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
    let text = format!("a peer answered with an unexpected reply: {reply:?}");
    RPCError::Network(NetworkError::new(&std::io::Error::other(text)))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.send(&PeerRequest::Append(rpc), &option).await? {
            PeerReply::Append(r) => r.map_err(|e| self.remote(e)),
            other => Err(unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.send(&PeerRequest::Snapshot(rpc), &option).await? {
            PeerReply::Snapshot(r) => r.map_err(|e| self.remote(e)),
            other => Err(unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.send(&PeerRequest::Vote(rpc), &option).await? {
            PeerReply::Vote(r) => r.map_err(|e| self.remote(e)),
            other => Err(unexpected(&other)),
        }
    }
}
