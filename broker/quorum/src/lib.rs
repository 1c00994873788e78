//! Quiver's metadata quorum: the records of [`quiver_metadata`] replicated by Raft.
//!
//! A cluster's metadata (brokers, topics and their partition assignment, plugins,
//! producer-id blocks, access rules) is one log of [`MetadataRecord`]s, as on a single
//! node; here the log is a Raft log kept by a quorum of voters (3 or 5 brokers, in
//! Kafka's combined mode: every voter is also a broker). Raft itself is `openraft`
//! (pinned to one exact version; see the workspace manifest); this crate gives it:
//!
//! - a durable log store ([`log_store`]): entries framed and fsynced before Raft counts
//!   them, the vote and commit point in a small file replaced whole;
//! - a state machine ([`state_machine`]) that applies committed records to a
//!   [`MetadataImage`] and snapshots it, so the log stays bounded;
//! - a peer protocol ([`network`]) over a [`Transport`] the broker provides (QUIC in the
//!   broker, in memory in tests);
//! - [`Quorum`]: start a voter, propose a record from any voter (a follower forwards it
//!   to the leader), wait until it is applied locally, read the image, and report who
//!   leads;
//! - observers ([`membership`]): brokers beyond the voters, which join a running
//!   cluster as Raft learners, keep the same log and image, and never vote.
//!
//! A committed record can still be refused by the image (its proposer checked it against
//! an older image); every voter refuses it alike and the proposer gets the refusal.

mod heartbeat;
mod log_store;
mod membership;
pub mod network;
mod node;
mod state_machine;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use network::{Transport, TransportError, TransportFuture};
pub use node::{Quorum, QuorumOptions, QuorumStatus, Role};
use quiver_metadata::{Applied, MetadataError, MetadataRecord};
use serde::{Deserialize, Serialize};

/// Voter ids: broker ids, widened to what openraft counts in.
pub type NodeId = u64;
/// A voter's address (the broker's listener, `host:port`).
pub type Node = openraft::BasicNode;
/// An entry of the metadata Raft log.
pub type Entry = openraft::Entry<TypeConfig>;

openraft::declare_raft_types!(
    /// The types of the metadata Raft.
    pub TypeConfig:
        D = MetadataRecord,
        R = Outcome,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What applying one log entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Applied(Applied),
    /// The record was committed but the image refused it; it changed nothing.
    Refused(MetadataError),
    /// A Raft entry that is not a record (a leader's blank entry, a membership change).
    NotARecord,
}

/// A proposal that reached the log: where, and what applying it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub index: u64,
    pub outcome: Outcome,
}

/// Why the quorum could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("metadata quorum storage {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
    #[error("invalid quorum settings: {0}")]
    Config(String),
    #[error(
        "no metadata quorum: {reason} (waited {waited_ms} ms); a majority of the voters must be running and reachable"
    )]
    NoQuorum { reason: String, waited_ms: u64 },
    #[error(
        "the metadata change may or may not have been applied: {0}; look at the current state before trying again"
    )]
    OutcomeUnknown(String),
    #[error("the metadata quorum stopped: {0}")]
    Stopped(String),
}
