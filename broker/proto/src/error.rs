//! The wire's error codes: an append-only table.
//!
//! A code, once published, keeps its number and meaning forever; a retired code is never
//! reused. Domain errors (storage, plugins, groups) become a code only at the server
//! boundary. A client that meets a number it does not know still gets a usable
//! [`ErrorCode`] whose name says so.

use serde::{Deserialize, Serialize};

/// A numeric error code carried in every response frame; `0` means success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErrorCode(pub u16);

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, retriable: $retry:literal, $text:literal; )*) => {
        impl ErrorCode {
            $( $(#[$doc])* pub const $name: ErrorCode = ErrorCode($num); )*

            /// Every code this build knows, in table order.
            pub const TABLE: &'static [(ErrorCode, &'static str, bool, &'static str)] = &[
                $( (ErrorCode($num), stringify!($name), $retry, $text), )*
            ];
        }
    };
}

codes! {
    /// Success.
    NONE = 0, retriable: false, "no error";
    /// The broker hit a condition it did not expect; its log has the detail.
    INTERNAL = 1, retriable: false, "internal broker error";
    /// The request frame could not be decoded.
    CORRUPT_FRAME = 2, retriable: false, "the request frame is malformed";
    /// The frame is larger than the broker accepts.
    FRAME_TOO_LARGE = 3, retriable: false, "the frame exceeds the maximum frame size";
    /// The API key is not one this broker serves.
    UNSUPPORTED_API = 4, retriable: false, "unknown or unsupported API";
    /// The API exists but not at this version.
    UNSUPPORTED_VERSION = 5, retriable: false, "unsupported API version";
    /// No topic of that name exists.
    UNKNOWN_TOPIC = 6, retriable: false, "unknown topic";
    /// The topic exists but has no such partition.
    UNKNOWN_PARTITION = 7, retriable: false, "unknown partition";
    /// A topic of that name already exists.
    TOPIC_ALREADY_EXISTS = 8, retriable: false, "topic already exists";
    /// Topic names are 1-249 characters of [A-Za-z0-9._-].
    INVALID_TOPIC_NAME = 9, retriable: false, "invalid topic name";
    /// A config key is unknown or its value does not parse.
    INVALID_CONFIG = 10, retriable: false, "invalid config";
    /// The offset is below the log start or above the log end.
    OFFSET_OUT_OF_RANGE = 11, retriable: false, "offset out of range";
    /// A batch failed its header, length or CRC check.
    CORRUPT_BATCH = 12, retriable: false, "corrupt record batch";
    /// A batch is larger than the topic accepts.
    RECORD_TOO_LARGE = 13, retriable: false, "record batch too large";
    /// This broker does not lead the partition; refresh metadata.
    NOT_LEADER = 14, retriable: true, "not the leader for this partition";
    /// The request did not complete in time.
    REQUEST_TIMED_OUT = 15, retriable: true, "request timed out";
    /// The partition's storage failed (I/O error, poisoned after a failed fsync).
    STORAGE_ERROR = 16, retriable: false, "storage error";
    /// A Wasm plugin trapped, timed out or ran out of memory.
    PLUGIN_FAILED = 17, retriable: false, "plugin failed";
    /// The client is not allowed to do this.
    UNAUTHORIZED = 18, retriable: false, "unauthorized";
    /// The request is well-formed but its fields make no sense together.
    INVALID_REQUEST = 19, retriable: false, "invalid request";
    /// The broker is shutting down or overloaded; try again shortly.
    BROKER_UNAVAILABLE = 20, retriable: true, "broker unavailable";
    /// A batch repeats one the broker already stored; its offsets are in the response.
    DUPLICATE_SEQUENCE = 21, retriable: false, "duplicate sequence number";
    /// The batch's sequence leaves a gap after the last one stored.
    OUT_OF_ORDER_SEQUENCE = 22, retriable: false, "out-of-order sequence number";
    /// A newer epoch of this producer id exists.
    INVALID_PRODUCER_EPOCH = 23, retriable: false, "producer epoch is stale";
    /// The broker has no state for this producer id.
    UNKNOWN_PRODUCER_ID = 24, retriable: false, "unknown producer id";
    /// No group of that id exists.
    UNKNOWN_GROUP = 25, retriable: false, "unknown consumer group";
    /// The generation in the request is not the group's current one.
    ILLEGAL_GENERATION = 26, retriable: false, "stale or illegal group generation";
    /// The member id is not part of the group.
    UNKNOWN_MEMBER = 27, retriable: false, "unknown group member";
    /// The group is rebalancing; rejoin.
    REBALANCE_IN_PROGRESS = 28, retriable: true, "group rebalance in progress";
    /// The operation needs a group with no active members.
    GROUP_NOT_EMPTY = 29, retriable: false, "group has active members";
    /// No plugin of that name (or version) is registered.
    UNKNOWN_PLUGIN = 30, retriable: false, "unknown plugin";
    /// The component does not satisfy its world, or imports what plugins may not.
    INVALID_PLUGIN = 31, retriable: false, "invalid plugin";
    /// The plugin is bound to a topic; unbind it or force removal.
    PLUGIN_IN_USE = 32, retriable: false, "plugin in use";
    /// The partition needs more in-sync replicas than it has.
    NOT_ENOUGH_REPLICAS = 33, retriable: true, "not enough in-sync replicas";
    /// The group's coordinator is loading or moving; retry.
    COORDINATOR_NOT_AVAILABLE = 34, retriable: true, "group coordinator not available";
    /// The offsets asked for are in a damaged range of the partition's log; the message
    /// names the range (see [`WireError::damaged_offsets`]) and a consumer may skip it.
    DAMAGED_DATA = 35, retriable: false, "damaged data";
    /// The partition's log could not be opened (quarantined at start, or a reopen
    /// failed); the message names the partition and why. Not retriable: it stays offline
    /// until an operator fixes the cause and reopens it (`REOPEN_PARTITION`).
    PARTITION_OFFLINE = 36, retriable: false, "partition offline";
    /// This broker does not coordinate the group (its partition of the offsets topic is
    /// led elsewhere); find the coordinator again.
    NOT_COORDINATOR = 37, retriable: true, "not the group's coordinator";
}

impl ErrorCode {
    fn entry(self) -> Option<&'static (ErrorCode, &'static str, bool, &'static str)> {
        Self::TABLE.iter().find(|e| e.0 == self)
    }

    /// The code's name, such as `UNKNOWN_TOPIC`, or `UNRECOGNIZED` for a newer code.
    pub fn name(self) -> &'static str {
        self.entry().map_or("UNRECOGNIZED", |e| e.1)
    }

    /// Whether repeating the same request later may succeed.
    pub fn is_retriable(self) -> bool {
        self.entry().is_some_and(|e| e.2)
    }

    /// A one-line description of the code.
    pub fn description(self) -> &'static str {
        self.entry()
            .map_or("error code not known to this client", |e| e.3)
    }

    pub fn is_ok(self) -> bool {
        self == ErrorCode::NONE
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// An error as it travels in a response: its code and a message naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

/// How a [`ErrorCode::DAMAGED_DATA`] message ends: the damaged offsets in a form a client
/// reads back. Kept in the message rather than a new field so that the error's encoding,
/// and every client already decoding it, stays as it is.
const DAMAGED_TAG: &str = " [damaged offsets ";

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }

    /// A [`ErrorCode::DAMAGED_DATA`] error for offsets `first..next` (`next` exclusive:
    /// where reading may resume), with a human `message` before the tag.
    pub fn damaged_data(message: impl Into<String>, first: i64, next: i64) -> Self {
        let mut message = message.into();
        message.push_str(&format!("{DAMAGED_TAG}{first}..{next}]"));
        WireError::new(ErrorCode::DAMAGED_DATA, message)
    }

    /// The damaged offsets `(first, next)` a [`ErrorCode::DAMAGED_DATA`] error names;
    /// `None` for any other error or a message without the tag.
    pub fn damaged_offsets(&self) -> Option<(i64, i64)> {
        if self.code != ErrorCode::DAMAGED_DATA {
            return None;
        }
        let at = self.message.rfind(DAMAGED_TAG)?;
        let range = self.message[at + DAMAGED_TAG.len()..].strip_suffix(']')?;
        let (first, next) = range.split_once("..")?;
        Some((first.parse().ok()?, next.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The table is append-only: numbers are unique and dense from zero, so a gap or a
    /// reuse shows up here.
    #[test]
    fn codes_are_unique_and_dense() {
        let mut seen = HashSet::new();
        for (i, (code, name, _, _)) in ErrorCode::TABLE.iter().enumerate() {
            assert_eq!(code.0 as usize, i, "{name} is out of order");
            assert!(seen.insert(code.0), "{name} reuses {}", code.0);
        }
    }

    #[test]
    fn damaged_offsets_round_trip_through_the_message() {
        let e = WireError::damaged_data("offsets 4..8 are damaged", 4, 8);
        assert_eq!(e.code, ErrorCode::DAMAGED_DATA);
        assert_eq!(e.damaged_offsets(), Some((4, 8)));
        assert!(e.message.starts_with("offsets 4..8 are damaged"));
        let other = WireError::new(ErrorCode::STORAGE_ERROR, e.message.clone());
        assert_eq!(other.damaged_offsets(), None);
        let untagged = WireError::new(ErrorCode::DAMAGED_DATA, "no tag");
        assert_eq!(untagged.damaged_offsets(), None);
    }

    #[test]
    fn unknown_codes_are_named_as_such() {
        assert_eq!(ErrorCode(60000).name(), "UNRECOGNIZED");
        assert!(!ErrorCode(60000).is_retriable());
        assert_eq!(ErrorCode::NOT_LEADER.to_string(), "NOT_LEADER (14)");
    }
}
