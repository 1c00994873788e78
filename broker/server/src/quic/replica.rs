//! Replication between brokers over QUIC: followers' fetches to their leaders.
//!
//! It rides the inter-broker listener (the quorum listener's UDP port, mutual TLS with
//! the cluster CA) under its own ALPN, `quiver-replica/1`, so replication has its own
//! connection per broker pair, apart from the quorum's, and only brokers can fetch. A
//! fetch is one bidirectional stream: the follower writes the request and finishes, the
//! leader writes the answer and finishes.
//!
//! The encoding is big-endian and length-prefixed:
//!
//! ```text
//! request  = replica_id u32, max_wait_ms u32, max_bytes u32, count u32,
//!            count × (topic str, partition u32, leader_epoch u32, fetch_offset i64,
//!                     last_fetched_epoch i32)
//! answer   = count u32, count × (topic str, partition u32, kind u8, ...)
//!   kind 0 = served: high_watermark i64, log_start i64, diverging_epoch i32 (-1: none),
//!            diverging_end i64, records bytes
//!   kind 1 = not leader; 2 = epoch mismatch: leader_epoch u32;
//!   kind 3 = below log start: log_start i64; 4 = failed: reason str
//! str      = len u16, UTF-8;  bytes = len u32, raw
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::replica::follower::{LinkFuture, ReplicaLink};
use crate::replica::{
    PartitionAnswer, PartitionFetch, Refusal, ReplicaFetch, ReplicaFetchAnswer, Served,
};

/// The ALPN id of replication.
pub const REPLICA_ALPN: &[u8] = b"quiver-replica/1";
/// The largest request read (a fetch names partitions, it carries no records).
pub(super) const MAX_REQUEST_BYTES: usize = 4 << 20;
/// The largest answer read: a fetch's byte budget plus headroom for its framing.
const MAX_ANSWER_BYTES: usize = 64 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a fetch may take beyond the leader's wait before the follower gives up.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker a leader serves fetches from, set once it has opened; fetches that arrive
/// before are refused as "not leader".
pub(crate) type BrokerSlot = Arc<OnceLock<Arc<Broker>>>;

/// Answers one follower's fetch.
pub(super) async fn serve_fetch(
    broker: Option<Arc<Broker>>,
    request: Vec<u8>,
    shutdown: CancellationToken,
) -> Option<Vec<Bytes>> {
    let fetch = match decode_fetch(&request) {
        Ok(fetch) => fetch,
        Err(reason) => {
            tracing::warn!(reason = %reason, "a malformed replica fetch");
            return None;
        }
    };
    let answer = match broker {
        Some(b) => b.serve_replica_fetch(fetch, &shutdown).await,
        None => not_open(&fetch),
    };
    Some(encode_answer(&answer))
}

/// An inter-broker answer: one buffer, or chunks written in turn.
pub(crate) trait Answer: Send + 'static {
    fn into_chunks(self) -> Vec<Bytes>;
}

impl Answer for Vec<u8> {
    fn into_chunks(self) -> Vec<Bytes> {
        vec![Bytes::from(self)]
    }
}

impl Answer for Vec<Bytes> {
    fn into_chunks(self) -> Vec<Bytes> {
        self
    }
}

/// Serves a peer's exchanges under one inter-broker protocol: `handle` gets the broker
/// (`None` while it is still opening), the request and the shutdown signal, and returns
/// the answer (`None` ends the stream without one).
pub(crate) async fn serve_with_broker<F, Fut, A>(
    connection: quinn::Connection,
    broker: BrokerSlot,
    shutdown: CancellationToken,
    max_request: usize,
    what: &'static str,
    handle: F,
) where
    F: Fn(Option<Arc<Broker>>, Vec<u8>, CancellationToken) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<A>> + Send + 'static,
    A: Answer,
{
    let stop = shutdown.clone();
    let serve = move |request: Vec<u8>| {
        let answer = handle(broker.get().cloned(), request, stop.clone());
        async move { answer.await.map(Answer::into_chunks) }
    };
    super::quorum::serve_exchanges(connection, shutdown, max_request, what, serve).await;
}

/// The answer of a broker still opening: it leads nothing yet.
fn not_open(fetch: &ReplicaFetch) -> ReplicaFetchAnswer {
    ReplicaFetchAnswer {
        partitions: fetch
            .partitions
            .iter()
            .map(|p| PartitionAnswer {
                topic: p.topic.clone(),
                partition: p.partition,
                outcome: Err(Refusal::NotLeader),
            })
            .collect(),
    }
}

/// Connections to peer brokers under one inter-broker ALPN: one per broker, dialled on
/// first use and again once closed.
#[derive(Debug)]
pub(crate) struct PeerConnections {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    connections: Mutex<HashMap<u32, quinn::Connection>>,
}

impl PeerConnections {
    pub(crate) fn new(endpoint: quinn::Endpoint, client: quinn::ClientConfig) -> Self {
        PeerConnections {
            endpoint,
            client,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// The connection to broker `id`, whose inter-broker listener is `address`.
    pub(crate) async fn get(&self, id: u32, address: &str) -> Result<quinn::Connection, String> {
        let cached = self.connections.lock().get(&id).cloned();
        if let Some(c) = cached
            && c.close_reason().is_none()
        {
            return Ok(c);
        }
        let addr: SocketAddr = address
            .parse()
            .map_err(|e| format!("broker {id}'s address {address} is not host:port ({e})"))?;
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), addr, &addr.ip().to_string())
            .map_err(|e| e.to_string())?;
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("broker {id} at {address} did not answer the handshake"))?
            .map_err(|e| e.to_string())?;
        self.connections.lock().insert(id, connection.clone());
        Ok(connection)
    }

    /// Drops the connection to broker `id`: the next request dials again.
    pub(crate) fn forget(&self, id: u32) {
        self.connections.lock().remove(&id);
    }
}

/// Sends followers' fetches to leaders, one connection per leader.
#[derive(Debug)]
pub(crate) struct QuicReplicaLink {
    peers: PeerConnections,
}

impl QuicReplicaLink {
    pub(crate) fn new(endpoint: quinn::Endpoint, client: quinn::ClientConfig) -> Self {
        QuicReplicaLink {
            peers: PeerConnections::new(endpoint, client),
        }
    }
}

impl ReplicaLink for QuicReplicaLink {
    fn fetch<'a>(&'a self, leader: u32, address: &'a str, fetch: ReplicaFetch) -> LinkFuture<'a> {
        Box::pin(async move {
            let connection = self.peers.get(leader, address).await?;
            let lost = |reason: String| {
                self.peers.forget(leader);
                format!("broker {leader} at {address}: {reason}")
            };
            let exchange = async {
                let (mut send, mut recv) = connection
                    .open_bi()
                    .await
                    .map_err(|e| lost(e.to_string()))?;
                send.write_all(&encode_fetch(&fetch))
                    .await
                    .map_err(|e| lost(e.to_string()))?;
                send.finish().map_err(|e| lost(e.to_string()))?;
                recv.read_to_end(MAX_ANSWER_BYTES)
                    .await
                    .map_err(|e| lost(e.to_string()))
            };
            let wait = Duration::from_millis(u64::from(fetch.max_wait_ms)) + FETCH_TIMEOUT;
            let bytes = tokio::time::timeout(wait, exchange)
                .await
                .map_err(|_| lost("no answer in time".into()))??;
            decode_answer(&Bytes::from(bytes)).map_err(|e| format!("broker {leader}'s answer: {e}"))
        })
    }
}

pub(super) fn put_str(out: &mut BytesMut, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.put_u16(len);
    out.put_slice(&s.as_bytes()[..usize::from(len)]);
}

/// Reads from a byte slice, naming what was cut short.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl Reader<'_> {
    pub(super) fn need(&self, n: usize, what: &str) -> Result<(), String> {
        if self.0.remaining() < n {
            return Err(format!("cut short in {what}"));
        }
        Ok(())
    }
    pub(super) fn u8(&mut self, what: &str) -> Result<u8, String> {
        self.need(1, what)?;
        Ok(self.0.get_u8())
    }
    pub(super) fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.need(2, what)?;
        Ok(self.0.get_u16())
    }
    pub(super) fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.need(4, what)?;
        Ok(self.0.get_u32())
    }
    pub(super) fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    pub(super) fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    pub(super) fn str(&mut self, what: &str) -> Result<String, String> {
        self.need(2, what)?;
        let len = usize::from(self.0.get_u16());
        self.need(len, what)?;
        let s = std::str::from_utf8(&self.0[..len])
            .map_err(|_| format!("{what} is not UTF-8"))?
            .to_string();
        self.0.advance(len);
        Ok(s)
    }
    pub(super) fn bytes(&mut self, what: &str) -> Result<Bytes, String> {
        let len = self.u32(what)? as usize;
        self.need(len, what)?;
        let b = Bytes::copy_from_slice(&self.0[..len]);
        self.0.advance(len);
        Ok(b)
    }
    /// Like [`Reader::bytes`] without a copy: a slice of `whole`, the buffer this
    /// reader was made over.
    pub(super) fn bytes_of(&mut self, whole: &Bytes, what: &str) -> Result<Bytes, String> {
        let len = self.u32(what)? as usize;
        self.need(len, what)?;
        let at = whole.len() - self.0.len();
        self.0.advance(len);
        Ok(whole.slice(at..at + len))
    }
    pub(super) fn count(&mut self, what: &str, min_each: usize) -> Result<usize, String> {
        let n = self.u32(what)? as usize;
        // A count the remaining bytes cannot hold is refused before allocating for it.
        if n.saturating_mul(min_each) > self.0.remaining() {
            return Err(format!("{what} of {n} does not fit the message"));
        }
        Ok(n)
    }
}

pub(crate) fn encode_fetch(f: &ReplicaFetch) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(16 + f.partitions.len() * 40);
    out.put_u32(f.replica_id);
    out.put_u32(f.max_wait_ms);
    out.put_u32(f.max_bytes);
    out.put_u32(u32::try_from(f.partitions.len()).unwrap_or(u32::MAX));
    for p in &f.partitions {
        put_str(&mut out, &p.topic);
        out.put_u32(p.partition);
        out.put_u32(p.leader_epoch);
        out.put_i64(p.fetch_offset);
        out.put_i32(p.last_fetched_epoch);
    }
    out.to_vec()
}

pub(crate) fn decode_fetch(bytes: &[u8]) -> Result<ReplicaFetch, String> {
    let mut r = Reader(bytes);
    let replica_id = r.u32("replica id")?;
    let max_wait_ms = r.u32("max wait")?;
    let max_bytes = r.u32("max bytes")?;
    let n = r.count("partition count", 22)?;
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        partitions.push(PartitionFetch {
            topic: r.str("topic")?,
            partition: r.u32("partition")?,
            leader_epoch: r.u32("leader epoch")?,
            fetch_offset: r.i64("fetch offset")?,
            last_fetched_epoch: r.i32("last fetched epoch")?,
        });
    }
    if r.0.has_remaining() {
        return Err(format!(
            "{} bytes after the last partition",
            r.0.remaining()
        ));
    }
    Ok(ReplicaFetch {
        replica_id,
        max_wait_ms,
        max_bytes,
        partitions,
    })
}

/// The answer as chunks to write in turn: the fields, and each partition's records as
/// they were read from its log, not copied.
pub(crate) fn encode_answer(a: &ReplicaFetchAnswer) -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(1 + 2 * a.partitions.len());
    let mut out = BytesMut::with_capacity(4 + 64 * a.partitions.len());
    out.put_u32(u32::try_from(a.partitions.len()).unwrap_or(u32::MAX));
    for p in &a.partitions {
        put_str(&mut out, &p.topic);
        out.put_u32(p.partition);
        match &p.outcome {
            Ok(s) => {
                out.put_u8(0);
                out.put_i64(s.high_watermark);
                out.put_i64(s.log_start_offset);
                let (epoch, end) = s.diverging.unwrap_or((-1, -1));
                out.put_i32(epoch);
                out.put_i64(end);
                out.put_u32(u32::try_from(s.records.len()).unwrap_or(u32::MAX));
                if !s.records.is_empty() {
                    chunks.push(out.split().freeze());
                    chunks.push(s.records.clone());
                }
            }
            Err(Refusal::NotLeader) => out.put_u8(1),
            Err(Refusal::EpochMismatch { leader_epoch }) => {
                out.put_u8(2);
                out.put_u32(*leader_epoch);
            }
            Err(Refusal::BelowLogStart { log_start_offset }) => {
                out.put_u8(3);
                out.put_i64(*log_start_offset);
            }
            Err(Refusal::Failed(reason)) => {
                out.put_u8(4);
                put_str(&mut out, reason);
            }
        }
    }
    if !out.is_empty() {
        chunks.push(out.freeze());
    }
    chunks
}

/// An answer from its bytes; the records are slices of `bytes`, not copies.
pub(crate) fn decode_answer(bytes: &Bytes) -> Result<ReplicaFetchAnswer, String> {
    let mut r = Reader(bytes);
    let n = r.count("partition count", 7)?;
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = r.str("topic")?;
        let partition = r.u32("partition")?;
        let outcome = match r.u8("kind")? {
            0 => {
                let high_watermark = r.i64("high watermark")?;
                let log_start_offset = r.i64("log start")?;
                let epoch = r.i32("diverging epoch")?;
                let end = r.i64("diverging end")?;
                let records = r.bytes_of(bytes, "records")?;
                Ok(Served {
                    high_watermark,
                    log_start_offset,
                    diverging: (epoch >= 0 || end >= 0).then_some((epoch, end)),
                    records,
                })
            }
            1 => Err(Refusal::NotLeader),
            2 => Err(Refusal::EpochMismatch {
                leader_epoch: r.u32("leader epoch")?,
            }),
            3 => Err(Refusal::BelowLogStart {
                log_start_offset: r.i64("log start")?,
            }),
            4 => Err(Refusal::Failed(r.str("reason")?)),
            other => return Err(format!("unknown answer kind {other}")),
        };
        partitions.push(PartitionAnswer {
            topic,
            partition,
            outcome,
        });
    }
    if r.0.has_remaining() {
        return Err(format!(
            "{} bytes after the last partition",
            r.0.remaining()
        ));
    }
    Ok(ReplicaFetchAnswer { partitions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fetch_strategy() -> impl Strategy<Value = ReplicaFetch> {
        let partition = (
            "[a-z._-]{1,20}",
            any::<u32>(),
            any::<u32>(),
            any::<i64>(),
            any::<i32>(),
        )
            .prop_map(
                |(topic, partition, leader_epoch, fetch_offset, last_fetched_epoch)| {
                    PartitionFetch {
                        topic,
                        partition,
                        leader_epoch,
                        fetch_offset,
                        last_fetched_epoch,
                    }
                },
            );
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            prop::collection::vec(partition, 0..8),
        )
            .prop_map(
                |(replica_id, max_wait_ms, max_bytes, partitions)| ReplicaFetch {
                    replica_id,
                    max_wait_ms,
                    max_bytes,
                    partitions,
                },
            )
    }

    fn outcome_strategy() -> impl Strategy<Value = Result<Served, Refusal>> {
        prop_oneof![
            (
                any::<i64>(),
                any::<i64>(),
                prop::option::of((0i32..1000, 0i64..1_000_000)),
                prop::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(high_watermark, log_start_offset, diverging, records)| Ok(
                    Served {
                        high_watermark,
                        log_start_offset,
                        diverging,
                        records: Bytes::from(records),
                    }
                )),
            Just(Err(Refusal::NotLeader)),
            any::<u32>().prop_map(|leader_epoch| Err(Refusal::EpochMismatch { leader_epoch })),
            any::<i64>()
                .prop_map(|log_start_offset| Err(Refusal::BelowLogStart { log_start_offset })),
            "[ -~]{0,40}".prop_map(|r| Err(Refusal::Failed(r))),
        ]
    }

    proptest! {
        #[test]
        fn fetches_round_trip(fetch in fetch_strategy()) {
            let decoded = decode_fetch(&encode_fetch(&fetch)).expect("decodes");
            prop_assert_eq!(decoded.partitions, fetch.partitions);
            prop_assert_eq!(decoded.replica_id, fetch.replica_id);
        }

        #[test]
        fn answers_round_trip(parts in prop::collection::vec(("[a-z]{1,10}", any::<u32>(), outcome_strategy()), 0..6)) {
            let answer = ReplicaFetchAnswer {
                partitions: parts
                    .into_iter()
                    .map(|(topic, partition, outcome)| PartitionAnswer { topic, partition, outcome })
                    .collect(),
            };
            let decoded = decode_answer(&encode_answer(&answer).concat().into()).expect("decodes");
            prop_assert_eq!(decoded.partitions, answer.partitions);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_fetch(&bytes);
            let _ = decode_answer(&bytes.into());
        }
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut bytes = vec![0u8; 12];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = decode_fetch(&bytes).expect_err("refused");
        assert!(err.contains("does not fit"), "{err}");
    }
}
