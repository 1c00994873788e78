//! Quiver's consumer-group coordinator: membership, generations, broker-side assignment
//! and committed offsets, as a deterministic state machine.
//!
//! This is Kafka's classic group protocol (join, sync, heartbeat, leave) with one change:
//! the broker, not a leader client, computes the assignment, with the strategy the group
//! agreed on (`range`, `roundrobin` or `cooperative-sticky`), so every client language
//! behaves the same.
//!
//! What it is not: a server. It does no I/O, reads no clock, spawns nothing and has no
//! async runtime. Every call takes the current time in milliseconds; joins that must wait
//! for the rest of the group return a [`JoinTicket`] whose answer comes out of
//! [`GroupCoordinator::poll`]. The server wires calls to QUIC streams, calls `poll` at
//! [`GroupCoordinator::next_deadline`] and after every event, and appends the
//! [`OffsetRecord`]s that commits return to the compacted topic `__consumer_offsets`,
//! replaying them through [`GroupCoordinator::load`] at startup. Memberships are not
//! persisted: after a restart members get `UNKNOWN_MEMBER` and join afresh.
//!
//! Formats: requests and responses are those of [`quiver_proto::api`]; the stored offset
//! record is described in [`offsets`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use quiver_group::{CoordinatorConfig, GroupCoordinator, JoinOutcome};
//! use quiver_proto::api::{JoinGroupRequest, SyncGroupRequest, TopicPartition};
//!
//! let topics = BTreeMap::from([("orders".to_string(), 2u32)]);
//! let config = CoordinatorConfig { initial_rebalance_delay_ms: 0, ..Default::default() };
//! let mut coordinator = GroupCoordinator::new(config);
//! let join = JoinGroupRequest {
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
//! let sync = SyncGroupRequest {
//!     group_id: "billing".into(),
//!     member_id: joined.member_id,
//!     generation: joined.generation,
//! };
//! let assignment = coordinator.sync(&sync, 1).unwrap().assignment;
//! assert_eq!(assignment, vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)]);
//! ```

pub mod assignor;
mod catalog;
mod coordinator;
mod error;
mod group;
mod member;
pub mod offsets;
mod state;

pub use assignor::{Assignor, MemberSubscription};
pub use catalog::TopicCatalog;
pub use coordinator::{
    Completion, CoordinatorConfig, GroupCoordinator, JoinOutcome, JoinTicket, MAX_ID_BYTES,
};
pub use error::GroupError;
pub use offsets::{OffsetRecord, OffsetRecordError, OffsetValue};
pub use state::GroupState;
