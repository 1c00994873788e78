//! Every request the broker serves, its response, and the API key that names it.
//!
//! Each request type implements [`Request`], which ties it to its key, version and
//! response type, so the server's dispatch and the SDK's calls cannot disagree on them.
//! Keys are append-only, like error codes.

use serde::Serialize;
use serde::de::DeserializeOwned;

mod access;
mod cluster;
mod data;
mod group;
mod plugin;
mod topic;

pub use access::*;
pub use cluster::*;
pub use data::*;
pub use group::*;
pub use plugin::*;
pub use topic::*;

/// Names an API on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ApiKey(pub u16);

impl ApiKey {
    pub const PRODUCE: ApiKey = ApiKey(0);
    pub const FETCH: ApiKey = ApiKey(1);
    pub const LIST_OFFSETS: ApiKey = ApiKey(2);
    pub const METADATA: ApiKey = ApiKey(3);
    pub const CREATE_TOPIC: ApiKey = ApiKey(4);
    pub const DELETE_TOPIC: ApiKey = ApiKey(5);
    pub const LIST_TOPICS: ApiKey = ApiKey(6);
    pub const DESCRIBE_TOPIC: ApiKey = ApiKey(7);
    pub const ALTER_TOPIC_CONFIG: ApiKey = ApiKey(8);
    pub const SUBSCRIBE: ApiKey = ApiKey(9);
    pub const INIT_PRODUCER_ID: ApiKey = ApiKey(10);
    pub const JOIN_GROUP: ApiKey = ApiKey(11);
    pub const SYNC_GROUP: ApiKey = ApiKey(12);
    pub const HEARTBEAT: ApiKey = ApiKey(13);
    pub const LEAVE_GROUP: ApiKey = ApiKey(14);
    pub const OFFSET_COMMIT: ApiKey = ApiKey(15);
    pub const OFFSET_FETCH: ApiKey = ApiKey(16);
    pub const LIST_GROUPS: ApiKey = ApiKey(17);
    pub const DESCRIBE_GROUP: ApiKey = ApiKey(18);
    pub const DELETE_GROUP: ApiKey = ApiKey(19);
    pub const RESET_GROUP_OFFSETS: ApiKey = ApiKey(20);
    pub const PLUGIN_ADD: ApiKey = ApiKey(21);
    pub const PLUGIN_LIST: ApiKey = ApiKey(22);
    pub const PLUGIN_DESCRIBE: ApiKey = ApiKey(23);
    pub const PLUGIN_REMOVE: ApiKey = ApiKey(24);
    pub const PLUGIN_TEST: ApiKey = ApiKey(25);
    pub const PLUGIN_LOGS: ApiKey = ApiKey(26);
    pub const REOPEN_PARTITION: ApiKey = ApiKey(27);
    pub const AUTHENTICATE: ApiKey = ApiKey(28);
    pub const ACCESS_RULE_ADD: ApiKey = ApiKey(29);
    pub const ACCESS_RULE_REMOVE: ApiKey = ApiKey(30);
    pub const ACCESS_RULE_LIST: ApiKey = ApiKey(31);
    pub const TOKEN_ISSUE: ApiKey = ApiKey(32);
    pub const TOKEN_REVOKE: ApiKey = ApiKey(33);
    pub const TOKEN_LIST: ApiKey = ApiKey(34);
    pub const CLUSTER_STATUS: ApiKey = ApiKey(35);
    pub const FIND_COORDINATOR: ApiKey = ApiKey(36);
    pub const REASSIGN_PARTITION: ApiKey = ApiKey(37);
    pub const UNREGISTER_BROKER: ApiKey = ApiKey(38);

    /// The API's name in snake case, as metrics and logs label it; `unknown` for a key
    /// this build does not know.
    pub fn name(self) -> &'static str {
        match self {
            ApiKey::PRODUCE => "produce",
            ApiKey::FETCH => "fetch",
            ApiKey::LIST_OFFSETS => "list_offsets",
            ApiKey::METADATA => "metadata",
            ApiKey::CREATE_TOPIC => "create_topic",
            ApiKey::DELETE_TOPIC => "delete_topic",
            ApiKey::LIST_TOPICS => "list_topics",
            ApiKey::DESCRIBE_TOPIC => "describe_topic",
            ApiKey::ALTER_TOPIC_CONFIG => "alter_topic_config",
            ApiKey::SUBSCRIBE => "subscribe",
            ApiKey::INIT_PRODUCER_ID => "init_producer_id",
            ApiKey::JOIN_GROUP => "join_group",
            ApiKey::SYNC_GROUP => "sync_group",
            ApiKey::HEARTBEAT => "heartbeat",
            ApiKey::LEAVE_GROUP => "leave_group",
            ApiKey::OFFSET_COMMIT => "offset_commit",
            ApiKey::OFFSET_FETCH => "offset_fetch",
            ApiKey::LIST_GROUPS => "list_groups",
            ApiKey::DESCRIBE_GROUP => "describe_group",
            ApiKey::DELETE_GROUP => "delete_group",
            ApiKey::RESET_GROUP_OFFSETS => "reset_group_offsets",
            ApiKey::PLUGIN_ADD => "plugin_add",
            ApiKey::PLUGIN_LIST => "plugin_list",
            ApiKey::PLUGIN_DESCRIBE => "plugin_describe",
            ApiKey::PLUGIN_REMOVE => "plugin_remove",
            ApiKey::PLUGIN_TEST => "plugin_test",
            ApiKey::PLUGIN_LOGS => "plugin_logs",
            ApiKey::REOPEN_PARTITION => "reopen_partition",
            ApiKey::AUTHENTICATE => "authenticate",
            ApiKey::ACCESS_RULE_ADD => "access_rule_add",
            ApiKey::ACCESS_RULE_REMOVE => "access_rule_remove",
            ApiKey::ACCESS_RULE_LIST => "access_rule_list",
            ApiKey::TOKEN_ISSUE => "token_issue",
            ApiKey::TOKEN_REVOKE => "token_revoke",
            ApiKey::TOKEN_LIST => "token_list",
            ApiKey::CLUSTER_STATUS => "cluster_status",
            ApiKey::FIND_COORDINATOR => "find_coordinator",
            ApiKey::REASSIGN_PARTITION => "reassign_partition",
            ApiKey::UNREGISTER_BROKER => "unregister_broker",
            _ => "unknown",
        }
    }
}

/// A request type: its API key, version, name for messages, and response type.
pub trait Request: Serialize + DeserializeOwned + std::fmt::Debug {
    const API: ApiKey;
    const VERSION: u16 = 0;
    /// Used in error messages, such as "frame body does not decode as fetch".
    const NAME: &'static str;
    type Response: Serialize + DeserializeOwned + std::fmt::Debug;
}

macro_rules! request {
    ($req:ty => $resp:ty, $key:ident, $name:literal) => {
        impl $crate::api::Request for $req {
            const API: $crate::api::ApiKey = $crate::api::ApiKey::$key;
            const NAME: &'static str = $name;
            type Response = $resp;
        }
    };
    ($req:ty => $resp:ty, $key:ident, $name:literal, version $version:literal) => {
        impl $crate::api::Request for $req {
            const API: $crate::api::ApiKey = $crate::api::ApiKey::$key;
            const VERSION: u16 = $version;
            const NAME: &'static str = $name;
            type Response = $resp;
        }
    };
}
pub(crate) use request;

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
