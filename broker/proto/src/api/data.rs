//! Produce, fetch, subscribe and offset look-ups: the data path.
//!
//! Record batches never appear in these structs: they travel as the frame's payload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::request;

/// How many acknowledgements a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Acks {
    /// The broker sends no response; the client does not wait.
    None,
    /// The leader has appended the batch (and flushed it if `flush=always`).
    #[default]
    Leader,
    /// Every in-sync replica has the batch. On a single node this equals `Leader`.
    All,
}

impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "0" | "none" => Ok(Acks::None),
            "1" | "leader" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("unknown acks '{other}': expected 0, 1 or all")),
        }
    }
}

/// Appends the payload's batches to one partition. Without a partition, the broker
/// chooses one with the topic's partitioner (its Wasm plugin or the key hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceRequest {
    pub topic: String,
    pub partition: Option<u32>,
    pub acks: Acks,
    pub timeout_ms: u32,
}
request!(ProduceRequest => ProduceResponse, PRODUCE, "produce");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    pub partition: u32,
    /// Offset given to the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record of the last batch.
    pub last_offset: i64,
    /// Broker time of the append, ms.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// True when the broker had stored this batch already (an idempotent retry); the
    /// offsets are those of the stored copy.
    pub duplicate: bool,
    /// When a partitioner split records across partitions: the other partitions' results.
    pub routed: Vec<RoutedAppend>,
}

/// Where a share of a produce went when the broker's partitioner split it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedAppend {
    pub partition: u32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub records: u32,
}

/// Which records a fetch may see. Only committed reads exist today; the field keeps room
/// for transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Isolation {
    #[default]
    ReadUncommitted,
}

/// A consumer-side filter, run on the broker: the plugin's name and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    pub name: String,
    pub version: Option<u32>,
    pub params: BTreeMap<String, String>,
}

/// Reads batches starting at `offset`. Waits up to `max_wait_ms` for at least
/// `min_bytes` when the partition has nothing new (a long poll woken by appends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub max_bytes: u32,
    pub max_wait_ms: u32,
    pub min_bytes: u32,
    pub isolation: Isolation,
    pub filter: Option<FilterSpec>,
}
request!(FetchRequest => FetchResponse, FETCH, "fetch");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Where the next fetch should start: past the last batch returned, or past records a
    /// filter dropped. Equals the requested offset when nothing was read.
    pub next_offset: i64,
}

/// Opens a push stream: the broker writes a [`FetchResponse`] frame with batches each time
/// new data is appended at or after `offset`, until the client stops the stream. QUIC flow
/// control is the backpressure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    /// Upper bound on the batch bytes of one pushed frame.
    pub max_bytes: u32,
    pub filter: Option<FilterSpec>,
}
request!(SubscribeRequest => FetchResponse, SUBSCRIBE, "subscribe");

/// Which offset [`ListOffsetsRequest`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset: where the next record will go.
    Latest,
    /// The first offset whose timestamp is at or after this one (ms).
    Timestamp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsRequest {
    pub topic: String,
    pub partition: u32,
    pub spec: OffsetSpec,
}
request!(ListOffsetsRequest => ListOffsetsResponse, LIST_OFFSETS, "list-offsets");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsResponse {
    /// `None` when asking by timestamp and no record is that recent.
    pub offset: Option<i64>,
    /// The found record's timestamp, when asking by timestamp.
    pub timestamp: Option<i64>,
}

/// Asks the broker for an idempotent producer identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitProducerIdRequest {
    /// Reserved for transactions: the same id gets the same producer id, bumped epoch.
    pub transactional_id: Option<String>,
}
request!(InitProducerIdRequest => InitProducerIdResponse, INIT_PRODUCER_ID, "init-producer-id");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitProducerIdResponse {
    pub producer_id: i64,
    pub producer_epoch: i16,
}
