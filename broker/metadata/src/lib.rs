//! Quiver's cluster metadata: one owner for which brokers, topics, partitions,
//! producer-id blocks and plugins exist, kept as a deterministic state machine fed by a
//! log of records, in the manner of Kafka's KRaft.
//!
//! Three parts:
//!
//! - [`MetadataRecord`]: the changes (register a broker, create, delete or alter a
//!   topic, change a partition's leadership, allocate producer ids, register or remove a
//!   plugin version), each a tagged JSON object (see [`record`]).
//! - [`MetadataImage`]: the state after some prefix of the log. [`MetadataImage::apply`]
//!   validates a record against the image and applies it, or rejects it and changes
//!   nothing. It reads no clock, draws no random numbers and does no I/O, so replicas
//!   that apply the same records hold the same image; [`MetadataImage::snapshot`] and
//!   [`MetadataImage::restore`] turn an image into bytes and back, with its last applied
//!   index. An image is cheap to clone: the broker keeps the current one behind a
//!   swappable pointer and readers never wait for a writer.
//! - [`LocalMetadataLog`]: the log of a single node, in local files: appends are
//!   fsynced before they return, open replays them, snapshots keep it bounded. A
//!   Raft-replicated log replaces it later without changing callers: a Raft state
//!   machine calls `apply` on committed entries and `snapshot` / `restore` to build and
//!   install snapshots.
//!
//! Formats: records are tagged JSON objects ([`record`]); a snapshot is a versioned JSON
//! document ([`SNAPSHOT_FORMAT`]); the local log frames records with their length,
//! CRC-32C and index ([`local_log`]).
//!
//! The [`proposal`] module builds records from requests on the proposing side (placing
//! partitions on brokers, numbering plugin versions, taking the next producer-id block).
//!
//! What it is not: a server, and not a config validator. It knows no wire types; the
//! server validates topic config keys and values before it proposes a record, and stores
//! plugin components by their content hash outside the log. The records check what keeps
//! the metadata consistent: names, ids, partition placement, that a topic's
//! `partitioner` / `compaction.policy` names a registered plugin of the right kind, and
//! that a plugin a topic uses is not removed.
//!
//! ```
//! use std::collections::BTreeMap;
//! use quiver_metadata::proposal::{create_topic_record, NewTopic};
//! use quiver_metadata::{LocalMetadataLog, MetadataRecord, RegisterBroker, TopicId};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (mut log, _image) = LocalMetadataLog::open(dir.path()).unwrap();
//! log.append(&MetadataRecord::RegisterBroker(RegisterBroker {
//!     broker_id: 1,
//!     listener: "127.0.0.1:9092".into(),
//!     incarnation: 7,
//!     peer_listener: None,
//! }))
//! .unwrap();
//! let request = NewTopic {
//!     name: "orders".into(),
//!     partitions: 3,
//!     replication_factor: 1,
//!     configs: BTreeMap::new(),
//!     internal: false,
//! };
//! let record = create_topic_record(log.image(), request, TopicId(42), 0).unwrap();
//! let appended = log.append(&record).unwrap();
//! assert_eq!(appended.index, 2);
//! assert_eq!(appended.image.partition("orders", 2).unwrap().leader, Some(1));
//!
//! // Reopening replays the log to the same image.
//! drop(log);
//! let (_log, image) = LocalMetadataLog::open(dir.path()).unwrap();
//! assert_eq!(image.snapshot(), appended.image.snapshot());
//! ```

pub mod access;
mod apply;
mod election;
pub use election::{preferred_leader_changes, reassignment_completions};
mod error;
mod ids;
mod image;
mod liveness;
pub mod local_log;
mod plugin_ref;
pub mod proposal;
pub mod record;

pub use access::{AccessRule, Decision, Operation, Principal, ResourceKind, TokenEntry};
pub use apply::Applied;
pub use error::MetadataError;
pub use ids::{BrokerId, TopicId};
pub use image::{
    BrokerRegistration, MetadataImage, PartitionAssignment, PluginImage, PluginVersion,
    SNAPSHOT_FORMAT, TopicImage, UNCLEAN_ELECTION_KEY,
};
pub use liveness::Liveness;
pub use local_log::{Appended, LocalLogError, LocalLogOptions, LocalMetadataLog};
pub use plugin_ref::{MAX_PLUGIN_NAME, PLUGIN_CONFIG_KEYS, PluginRef, check_plugin_name};
pub use record::{
    AllocateProducerIds, AlterTopicConfigs, BrokerEpoch, CreateTopic, DeleteTopic, MetadataRecord,
    PartitionChange, PluginKind, PluginLimits, ReassignPartition, RegisterBroker, RegisterPlugin,
    RemovePlugin, RevokeToken, UnregisterBroker,
};
