//! Routed produces between brokers.
//!
//! A produce that names no partition is routed by the broker it reaches (the topic's
//! Wasm partitioner, or the key hash): that broker cuts it into one batch per chosen
//! partition, appends those it leads, and hands each of the others to the partition's
//! leader over the inter-broker listener, under its own ALPN, `quiver-forward/1`. The
//! leader appends the batch as a produce of its own (acks=all waits for its ISR there)
//! and answers the offsets, or the error with its wire code, which goes back to the
//! client as it is.
//!
//! ```text
//! request = topic str, partition u32, acks_all u8, timeout_ms u32, batch bytes
//! answer  = 0, base_offset i64, last_offset i64
//!         | 1, code u16, message str
//! str     = len u16, UTF-8;  bytes = len u32, raw
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use quiver_proto::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::replica::{PeerConnections, Reader, put_str};
use crate::broker::Broker;
use crate::error::BrokerError;

/// The ALPN id of forwarded produces.
pub const FORWARD_ALPN: &[u8] = b"quiver-forward/1";
/// A forwarded batch is at most a produce frame.
pub(super) const MAX_REQUEST_BYTES: usize = 256 << 20;
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// How long past the produce's own timeout an answer may take.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// One routed batch for a partition another broker leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub topic: String,
    pub partition: u32,
    pub acks_all: bool,
    pub timeout: Duration,
    pub batch: Bytes,
}

fn encode_request(f: &Forwarded) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(f.topic.len() + f.batch.len() + 16);
    put_str(&mut out, &f.topic);
    out.put_u32(f.partition);
    out.put_u8(u8::from(f.acks_all));
    out.put_u32(u32::try_from(f.timeout.as_millis()).unwrap_or(u32::MAX));
    out.put_u32(u32::try_from(f.batch.len()).unwrap_or(u32::MAX));
    out.put_slice(&f.batch);
    out.to_vec()
}

fn decode_request(bytes: &[u8]) -> Result<Forwarded, String> {
    let mut r = Reader(bytes);
    let forwarded = Forwarded {
        topic: r.str("topic")?,
        partition: r.u32("partition")?,
        acks_all: r.u8("acks")? != 0,
        timeout: Duration::from_millis(u64::from(r.u32("timeout")?)),
        batch: r.bytes("batch")?,
    };
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the batch", r.0.len()));
    }
    Ok(forwarded)
}

fn encode_answer(answer: &Result<(i64, i64), BrokerError>) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(32);
    match answer {
        Ok((base, last)) => {
            out.put_u8(0);
            out.put_i64(*base);
            out.put_i64(*last);
        }
        Err(e) => {
            let wire = super::errors::wire_error(e);
            out.put_u8(1);
            out.put_u16(wire.code.0);
            put_str(&mut out, &wire.message);
        }
    }
    out.to_vec()
}

fn decode_answer(bytes: &[u8], leader: u32) -> Result<(i64, i64), BrokerError> {
    let mut r = Reader(bytes);
    let malformed = |e: String| BrokerError::Internal(format!("broker {leader}'s answer: {e}"));
    match r.u8("status").map_err(malformed)? {
        0 => Ok((
            r.i64("base offset").map_err(malformed)?,
            r.i64("last offset").map_err(malformed)?,
        )),
        1 => {
            let code = r.u16("code").map_err(malformed)?;
            let message = r.str("message").map_err(malformed)?;
            Err(BrokerError::Forwarded {
                broker: leader,
                code,
                message,
            })
        }
        other => Err(malformed(format!("unknown status {other}"))),
    }
}

/// Appends one produce a peer forwarded here and answers with its offsets or error.
pub(super) async fn serve_forwarded(
    broker: Option<Arc<Broker>>,
    request: Vec<u8>,
    _shutdown: CancellationToken,
) -> Option<Vec<u8>> {
    let forwarded = match decode_request(&request) {
        Ok(f) => f,
        Err(reason) => {
            tracing::warn!(reason = %reason, "a malformed forwarded produce");
            return None;
        }
    };
    let answer = match broker {
        Some(b) => append(&b, forwarded).await,
        None => Err(BrokerError::ShuttingDown),
    };
    Some(encode_answer(&answer))
}

/// Appends a forwarded batch here, as the partition's leader.
async fn append(broker: &Arc<Broker>, f: Forwarded) -> Result<(i64, i64), BrokerError> {
    let topic = broker.topic(&f.topic)?;
    let partition = topic.partition(f.partition)?;
    let min_insync = topic.config.min_insync_replicas;
    if f.acks_all {
        partition.check_min_insync(min_insync)?;
    }
    let out = partition
        .append(f.batch, crate::service::now_ms(), f.timeout)
        .await?;
    if f.acks_all {
        partition
            .await_durable(out.last_offset, min_insync, f.timeout)
            .await?;
    }
    Ok((out.base_offset, out.last_offset))
}

/// Hands routed batches to their partitions' leaders, one connection per leader.
#[derive(Debug)]
pub(crate) struct ForwardLink {
    peers: PeerConnections,
}

impl ForwardLink {
    pub(crate) fn new(endpoint: quinn::Endpoint, client: quinn::ClientConfig) -> Self {
        ForwardLink {
            peers: PeerConnections::new(endpoint, client),
        }
    }

    /// Appends `f` on broker `leader`, whose inter-broker listener is `address`;
    /// returns the batch's base and last offsets there.
    pub(crate) async fn append(
        &self,
        leader: u32,
        address: &str,
        f: &Forwarded,
    ) -> Result<(i64, i64), BrokerError> {
        let unreachable = |reason: String| {
            self.peers.forget(leader);
            BrokerError::Forwarded {
                broker: leader,
                code: ErrorCode::NOT_LEADER.0,
                message: format!(
                    "partition {}-{} is led by broker {leader} at {address}, which this broker cannot reach: {reason}",
                    f.topic, f.partition
                ),
            }
        };
        let connection = self.peers.get(leader, address).await.map_err(unreachable)?;
        let exchange = async {
            let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(&encode_request(f))
                .await
                .map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            recv.read_to_end(MAX_ANSWER_BYTES)
                .await
                .map_err(|e| e.to_string())
        };
        let answer = tokio::time::timeout(f.timeout + ANSWER_GRACE, exchange)
            .await
            .map_err(|_| unreachable("no answer in time".into()))?
            .map_err(unreachable)?;
        decode_answer(&answer, leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn requests_round_trip(
            topic in "[a-z.-]{1,40}",
            partition: u32,
            acks_all: bool,
            timeout_ms in 0u32..1_000_000,
            batch in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let f = Forwarded {
                topic,
                partition,
                acks_all,
                timeout: Duration::from_millis(u64::from(timeout_ms)),
                batch: Bytes::from(batch),
            };
            prop_assert_eq!(decode_request(&encode_request(&f)), Ok(f));
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_request(&bytes);
            let _ = decode_answer(&bytes, 1);
        }
    }

    #[test]
    fn answers_carry_offsets_or_the_leaders_error_code() {
        assert_eq!(
            decode_answer(&encode_answer(&Ok((4, 9))), 2).ok(),
            Some((4, 9))
        );
        let refused = Err(BrokerError::NotEnoughReplicas {
            topic: "t".into(),
            partition: 0,
            isr: vec![2],
            min_insync: 2,
        });
        match decode_answer(&encode_answer(&refused), 2) {
            Err(BrokerError::Forwarded {
                broker,
                code,
                message,
            }) => {
                assert_eq!((broker, code), (2, ErrorCode::NOT_ENOUGH_REPLICAS.0));
                assert!(message.contains("min.insync.replicas"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
