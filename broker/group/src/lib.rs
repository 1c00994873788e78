//! Quiver's consumer-group coordinator: membership, generations, broker-side assignment
//! and committed offsets, as a deterministic state machine.
//!
//! This is Kafka's classic group protocol (join, sync, heartbeat, leave) with one change:
//! the broker, not a leader client, computes the assignment, with the strategy the group
//! agreed on (`range`, `roundrobin` or `cooperative-sticky`), so every client language
//! behaves the same.
//!
//! What it is not: a server, nor a wire protocol. It does no I/O, reads no clock, spawns
//! nothing and has no async runtime, and it speaks only its own types ([`JoinRequest`],
//! [`Joined`], [`CommitRequest`], [`GroupError`], ...): a server translates its
//! protocol's requests and error codes at its front door. Every call takes the current
//! time in milliseconds; joins that must wait for the rest of the group return a
//! [`JoinTicket`] whose answer comes out of [`GroupCoordinator::poll`]. The server wires
//! calls to its connections, calls `poll` at [`GroupCoordinator::next_deadline`] and
//! after every event, and appends the [`OffsetRecord`]s that commits return to the
//! compacted topic `__consumer_offsets`, replaying them through
//! [`GroupCoordinator::load`] at startup. A commit becomes visible only once the server
//! reports its append durable ([`GroupCoordinator::complete_commit`]); see
//! [`CommitTicket`]. Memberships are not persisted: after a restart members are unknown
//! and join afresh.
//!
//! Formats: the stored offset record is described in [`offsets`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use quiver_group::{
//!     CommitRequest, CommittedOffset, Committer, CoordinatorConfig, GroupCoordinator,
//!     JoinOutcome, JoinRequest, SyncRequest, TopicPartition,
//! };
//!
//! let topics = BTreeMap::from([("orders".to_string(), 2u32)]);
//! let config = CoordinatorConfig { initial_rebalance_delay_ms: 0, ..Default::default() };
//! let mut coordinator = GroupCoordinator::new(config);
//! let join = JoinRequest {
//!     group_id: "billing".into(),
//!     member_id: None,
//!     client_id: "worker".into(),
//!     topics: vec!["orders".into()],
//!     session_timeout_ms: 10_000,
//!     rebalance_timeout_ms: 60_000,
//!     assignors: vec!["range".into()],
//!     owned: vec![],
//! };
//! // The only member completes the rebalance by itself.
//! let JoinOutcome::Ready(joined) = coordinator.join(join, 0, &topics).unwrap() else {
//!     panic!("a lone member does not wait");
//! };
//! let sync = SyncRequest {
//!     group_id: "billing".into(),
//!     member_id: joined.member_id.clone(),
//!     generation: joined.generation,
//! };
//! let assignment = coordinator.sync(&sync, 1).unwrap();
//! assert_eq!(assignment, vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)]);
//!
//! // A commit is accepted, appended by the server, and only then visible.
//! let commit = CommitRequest {
//!     group_id: "billing".into(),
//!     committer: Committer::Member { member_id: joined.member_id, generation: joined.generation },
//!     offsets: vec![CommittedOffset {
//!         partition: TopicPartition::new("orders", 0),
//!         offset: 42,
//!         metadata: String::new(),
//!     }],
//! };
//! let pending = coordinator.commit(commit, 2, &topics).unwrap();
//! assert_eq!(pending.records.len(), 1);
//! assert!(coordinator.fetch_offsets("billing", None).is_empty());
//! coordinator.complete_commit(&pending.ticket);
//! assert_eq!(coordinator.fetch_offsets("billing", None)[0].offset, 42);
//! ```

pub mod assignor;
mod catalog;
mod committed;
mod coordinator;
mod description;
mod error;
mod group;
mod member;
pub mod offsets;
mod partition;
mod requests;
mod state;

pub use assignor::{Assignor, MemberSubscription};
pub use catalog::TopicCatalog;
pub use committed::{CommitTicket, PendingCommit};
pub use coordinator::{
    Completion, CoordinatorConfig, GroupCoordinator, JoinOutcome, JoinTicket, MAX_ID_BYTES,
};
pub use description::{GroupDescription, GroupSummary, MemberDescription, PartitionCommit};
pub use error::GroupError;
pub use offsets::{OffsetRecord, OffsetRecordError, OffsetValue};
pub use partition::TopicPartition;
pub use requests::{
    CommitRequest, CommittedOffset, Committer, HeartbeatRequest, JoinRequest, Joined, LeaveRequest,
    SyncRequest,
};
pub use state::GroupState;
