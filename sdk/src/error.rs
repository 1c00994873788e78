//! The one error type every SDK call returns.
//!
//! Errors are `Clone` because one failed batch fails every record in it, and each record's
//! [`DeliveryFuture`](crate::DeliveryFuture) gets its own copy; causes that are not `Clone`
//! themselves are kept behind an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use quiver_proto::api::TopicPartition;
use quiver_proto::batch::BatchError;
use quiver_proto::frame::FrameError;
use quiver_proto::{ErrorCode, WireError};

/// Everything that can go wrong in the SDK.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The broker URL does not parse; expected `quic://host:port`.
    #[error("invalid broker URL '{url}': {reason}; expected quic://host[:port]")]
    InvalidUrl { url: String, reason: String },

    /// A client, producer or consumer option is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The trusted CA or the TLS settings could not be loaded.
    #[error("TLS setup failed: {0}")]
    Tls(String),

    /// The host name did not resolve, or resolved to nothing.
    #[error("cannot resolve broker address '{host}:{port}': {reason}")]
    Resolve {
        host: String,
        port: u16,
        reason: String,
    },

    /// The QUIC handshake with the broker failed (unreachable, wrong CA, wrong name, ALPN).
    #[error(
        "cannot connect to the broker at {addr}: {reason}; check the URL, that the broker runs, and the trusted CA"
    )]
    Connect { addr: String, reason: String },

    /// A broker of the cluster stopped answering a moment ago (its connection went
    /// silent for the liveness timeout, or it could not be dialled), so the client does
    /// not dial it again yet: retriable, once the cluster has moved its partitions or
    /// groups to another broker, or the broker is back.
    #[error(
        "the broker at {address} stopped answering; waiting for the cluster to move its partitions or for it to return"
    )]
    Unreachable { address: String },

    /// The connection broke while a request was under way. Retriable: the client reconnects.
    #[error("connection to the broker lost: {0}")]
    ConnectionLost(#[source] quinn::ConnectionError),

    /// Reading or writing a request's stream failed.
    #[error("stream I/O with the broker failed during {api}: {reason}")]
    Transport { api: &'static str, reason: String },

    /// The broker refused the client's bearer token (unknown, revoked, expired or not a
    /// token at all). Not retriable: the client closes the connection it opened rather
    /// than run as someone else, and a new token is needed.
    #[error(
        "the broker refused token {token_id}: {source}; ask an administrator for a new token (quiver token issue)"
    )]
    Authentication {
        /// The token's public id, or `(malformed)`.
        token_id: String,
        #[source]
        source: WireError,
    },

    /// A response holds a value this SDK does not know (a newer broker, say).
    #[error("the broker's {api} response holds {reason}; upgrade the SDK")]
    Protocol { api: &'static str, reason: String },

    /// The broker answered with an error code and a message.
    #[error("broker rejected {api}: {source}")]
    Broker {
        api: &'static str,
        #[source]
        source: WireError,
    },

    /// An operation did not finish in its allotted time.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },

    /// A response frame did not decode; the broker and client may disagree on the protocol.
    #[error("cannot decode the broker's {api} response: {source}")]
    Frame {
        api: &'static str,
        #[source]
        source: Arc<FrameError>,
    },

    /// A record batch from the broker failed its CRC or did not decode. The consumer
    /// stays at `offset`: the records before it were returned, and polling again reports
    /// the same error until the application seeks past the batch.
    #[error("the record batch of {tp} at offset {offset} is corrupt: {source}")]
    Batch {
        tp: TopicPartition,
        /// Where the corrupt batch was found: the consumer's position.
        offset: i64,
        /// Where reading can resume past it (what `Consumer::skip_damaged` seeks to),
        /// when the batch's framing says; `None` when nothing after it can be located.
        skip_to: Option<i64>,
        #[source]
        source: Arc<BatchError>,
    },

    /// The broker holds offsets `first_offset..next_offset` of `tp` only as damaged bytes
    /// (recovery kept them as a hole; the records around them are intact). The consumer
    /// stays at the damage: polling again reports it until the application skips it,
    /// with [`Consumer::skip_damaged`](crate::Consumer::skip_damaged) or a seek to
    /// `next_offset`.
    #[error("{tp}: offsets {first_offset}..{next_offset} are damaged on the broker: {message}")]
    DamagedData {
        tp: TopicPartition,
        first_offset: i64,
        /// Where reading may resume.
        next_offset: i64,
        message: String,
    },

    /// A record is larger than the producer's `batch_size` or `buffer_memory` allows.
    #[error(
        "record of {size} bytes exceeds the producer's limit of {max} bytes; raise buffer_memory or send smaller records"
    )]
    RecordTooLarge { size: usize, max: usize },

    /// The topic has no partition of that number.
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: u32,
        count: u32,
    },

    /// The producer was closed; create a new one to send more.
    #[error("the producer is closed")]
    ProducerClosed,

    /// The idempotent producer lost track of its sequence numbers (a batch with a
    /// sequence failed for good, or the broker fenced it); create a new producer.
    #[error("idempotent producer is unusable: {0}; create a new producer")]
    ProducerFatal(String),

    /// A consumer partition has no position and `auto_offset_reset` is `None`.
    #[error("{0} has no position and auto_offset_reset is None; seek it first")]
    NoOffset(TopicPartition),

    /// The partition is not assigned to this consumer.
    #[error("{0} is not assigned to this consumer; assign it first")]
    NotAssigned(TopicPartition),
}

impl Error {
    /// Whether repeating the same operation later may succeed: a retriable broker code,
    /// a lost connection, stream I/O or a timeout.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { source, .. } => source.code.is_retriable(),
            Error::ConnectionLost(_)
            | Error::Transport { .. }
            | Error::Timeout { .. }
            | Error::Unreachable { .. } => true,
            _ => false,
        }
    }

    /// The broker's error code, when the broker rejected the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { source, .. } | Error::Authentication { source, .. } => {
                Some(source.code)
            }
            _ => None,
        }
    }

    pub(crate) fn frame(api: &'static str, source: FrameError) -> Error {
        match source {
            FrameError::Io(io) => Error::Transport {
                api,
                reason: io.to_string(),
            },
            other => Error::Frame {
                api,
                source: Arc::new(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriability_follows_the_code_table() {
        let broker = |code| Error::Broker {
            api: "produce",
            source: WireError::new(code, "x"),
        };
        assert!(broker(ErrorCode::NOT_LEADER).is_retriable());
        assert!(!broker(ErrorCode::UNKNOWN_TOPIC).is_retriable());
        assert!(
            Error::Timeout {
                what: "fetch",
                after: Duration::from_secs(1)
            }
            .is_retriable()
        );
        assert!(!Error::ProducerClosed.is_retriable());
        let refused = Error::Authentication {
            token_id: "abc".into(),
            source: WireError::new(ErrorCode::UNAUTHORIZED, "token refused: revoked"),
        };
        assert!(!refused.is_retriable());
        assert_eq!(refused.code(), Some(ErrorCode::UNAUTHORIZED));
        assert!(refused.to_string().contains("abc"), "{refused}");
        assert_eq!(
            broker(ErrorCode::UNKNOWN_TOPIC).code(),
            Some(ErrorCode::UNKNOWN_TOPIC)
        );
    }
}
