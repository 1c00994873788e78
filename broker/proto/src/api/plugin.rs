//! Wasm plugin registry: upload, list, describe, remove, test and logs.
//!
//! A plugin upload carries the component bytes as the frame's payload, like a produce
//! carries batches, so they are never copied into a struct. Kinds and log levels travel
//! as lowercase names (`partitioner`, `filter`, `compactor`; `trace` .. `error`) so this
//! crate needs nothing from the plugin host.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::request;

/// Uploads a new version of plugin `name`; the payload is the WebAssembly component. The
/// broker validates it against its world before storing it and makes it current.
/// Version 1 added `limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginAddRequest {
    pub name: String,
    /// The world it must satisfy; `None` lets the broker detect it from the exports.
    pub kind: Option<String>,
    /// Per-call bounds of this plugin.
    pub limits: PluginLimitsSpec,
}
request!(PluginAddRequest => PluginAddResponse, PLUGIN_ADD, "plugin-add", version 1);

/// Per-call bounds an upload sets for its plugin. A bound left `None` is the previous
/// version's, or the broker's default (`plugins.call_timeout_ms`, `plugins.memory_bytes`)
/// when no version set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLimitsSpec {
    /// Wall-clock time one call may take, 10 to 60,000 ms.
    pub call_timeout_ms: Option<u64>,
    /// Linear memory one instance may hold, 1 MiB to 4 GiB.
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginAddResponse {
    pub name: String,
    /// The version the upload became; the current version if the bytes were identical.
    pub version: u32,
    pub kind: String,
}

/// Lists every registered plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginListRequest {}
request!(PluginListRequest => PluginListResponse, PLUGIN_LIST, "plugin-list", version 1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginListResponse {
    pub plugins: Vec<PluginDescription>,
}

/// Describes one plugin: every stored version and the topics bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDescribeRequest {
    pub name: String,
}
request!(PluginDescribeRequest => PluginDescription, PLUGIN_DESCRIBE, "plugin-describe", version 1);

/// Version 1 added each version's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDescription {
    pub name: String,
    pub kind: String,
    /// The version calls go to.
    pub current_version: u32,
    pub versions: Vec<PluginVersionInfo>,
    /// Topics whose partitioner or compaction policy names this plugin (filled in by the
    /// server, which owns topic configs).
    pub bound_topics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersionInfo {
    pub version: u32,
    pub kind: String,
    pub size_bytes: u64,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Milliseconds since the Unix epoch.
    pub added_ms: i64,
    /// Time one call may take, in ms. This and the next two were appended in version 1
    /// of list and describe.
    pub call_timeout_ms: u64,
    /// Linear memory one instance may hold, in bytes.
    pub memory_bytes: u64,
    /// True when the version set a limit of its own at upload; false when both are the
    /// broker's defaults.
    pub own_limits: bool,
}

/// Removes one version, or the whole plugin when `version` is `None`. Fails while a topic
/// uses the plugin unless `force`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRemoveRequest {
    pub name: String,
    pub version: Option<u32>,
    pub force: bool,
}
request!(PluginRemoveRequest => PluginRemoveResponse, PLUGIN_REMOVE, "plugin-remove");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRemoveResponse {
    pub removed_versions: Vec<u32>,
}

/// Runs a plugin over up to `count` stored records of a partition, from `from_offset`,
/// without changing anything: how an author checks a plugin before binding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginTestRequest {
    pub name: String,
    /// `None` tests the current version.
    pub version: Option<u32>,
    pub topic: String,
    pub partition: u32,
    pub from_offset: i64,
    pub count: u32,
    /// Parameters passed to the plugin's `init`.
    pub params: BTreeMap<String, String>,
}
request!(PluginTestRequest => PluginTestResponse, PLUGIN_TEST, "plugin-test");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginTestResponse {
    /// The version that ran.
    pub version: u32,
    pub kind: String,
    /// One entry per record read, in offset order.
    pub decisions: Vec<PluginDecision>,
}

/// What the plugin decided for one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDecision {
    pub offset: i64,
    pub outcome: PluginOutcome,
}

/// A decision, by plugin kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PluginOutcome {
    /// A partitioner chose this partition (given the topic's partition count).
    Partition(u32),
    /// A filter kept (true) or dropped the record.
    Keep(bool),
    /// A compactor's key for the record (`None`: left out of compaction) and whether it
    /// would be retained now.
    Compaction { key: Option<Vec<u8>>, retain: bool },
}

/// Reads a plugin's log from entry `since_seq`. With `follow`, the broker waits for new
/// entries when there are none (a long poll); the client asks again from `next_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLogsRequest {
    pub name: String,
    pub follow: bool,
    pub since_seq: u64,
}
request!(PluginLogsRequest => PluginLogsResponse, PLUGIN_LOGS, "plugin-logs");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLogsResponse {
    pub entries: Vec<PluginLogEntry>,
    /// Where the next request should start.
    pub next_seq: u64,
}

/// One log entry. A gap between `since_seq` and the first `seq` means the bounded ring
/// dropped entries in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLogEntry {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub level: String,
    /// `guest`, `stdout`, `stderr` or `host`.
    pub source: String,
    pub version: u32,
    pub message: String,
}
