//! [`ProducerConfig`]: batching, compression, acknowledgements, retries and memory.

use std::time::Duration;

use quiver_proto::api::Acks;
use quiver_proto::batch::{Compression, MAX_IDEMPOTENT_IN_FLIGHT};

use crate::Error;

/// How a [`Producer`](crate::Producer) batches, compresses and delivers records.
///
/// The defaults follow Kafka's modern client (acks=all, idempotence on, 5 in-flight
/// batches per partition, 120 s delivery timeout) except for `batch_size`, which is
/// 1 MiB instead of 16 KiB: over QUIC a large batch costs one stream and one frame, and
/// ~1 MiB batches are where throughput peaks.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How many acknowledgements a produce waits for. Default [`Acks::All`].
    pub acks: Acks,
    /// Stamp batches with a producer id and per-partition sequence numbers so that the
    /// broker drops retried duplicates and detects gaps. Default on. Needs an acks mode
    /// other than [`Acks::None`]. Records routed by the topic's Wasm partitioner (no
    /// explicit partition) are sent without a sequence: the broker, not the client,
    /// chooses their partition, so there is no per-partition order to number.
    pub idempotence: bool,
    /// A partition's batch is sent once it reaches this many bytes (before compression).
    /// A single record larger than this travels alone in its own batch. Default 1 MiB.
    pub batch_size: usize,
    /// How long a batch waits for more records before it is sent anyway. Default 5 ms.
    pub linger: Duration,
    /// Bytes of records buffered and in flight across all partitions; past it
    /// [`Producer::send`](crate::Producer::send) waits for space. Default 64 MiB.
    pub buffer_memory: usize,
    /// Batch compression codec. Default none.
    pub compression: Compression,
    /// Batches of one partition in flight at once. With idempotence the broker keeps
    /// order even across retries, and at most
    /// [`MAX_IDEMPOTENT_IN_FLIGHT`](quiver_proto::batch::MAX_IDEMPOTENT_IN_FLIGHT) (16)
    /// are allowed: the broker recognises that many resent batches. Default 16 (5 in
    /// Kafka, whose batches are 64 times smaller): 5 batches of 1 MiB do not keep a fast
    /// link busy while each waits for its acknowledgement.
    pub max_in_flight_per_partition: usize,
    /// How often one batch is retried after a retriable error or a lost connection.
    /// Default unbounded: `delivery_timeout` is the real bound.
    pub retries: u32,
    /// First delay before a retry; doubles per attempt. Default 100 ms.
    pub retry_backoff: Duration,
    /// Upper bound of the retry delay. Default 1 s.
    pub retry_backoff_max: Duration,
    /// Upper bound from `send` to a delivery report, retries included. Default 120 s.
    pub delivery_timeout: Duration,
    /// How long the broker may take to acknowledge one produce request. Default 30 s.
    pub request_timeout: Duration,
    /// Largest record accepted by `send`, in encoded bytes. Default 15 MiB, under the
    /// broker's 16 MiB frame limit.
    pub max_request_size: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            idempotence: true,
            batch_size: 1024 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory: 64 * 1024 * 1024,
            compression: Compression::None,
            max_in_flight_per_partition: MAX_IDEMPOTENT_IN_FLIGHT,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_request_size: 15 * 1024 * 1024,
        }
    }
}

impl ProducerConfig {
    /// Checks that the options make sense together, saying which to change.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1 byte");
        }
        if self.buffer_memory > u32::MAX as usize {
            return bad("buffer_memory must be under 4 GiB");
        }
        if self.max_request_size > self.buffer_memory {
            return bad("max_request_size must not exceed buffer_memory");
        }
        if self.max_in_flight_per_partition == 0 {
            return bad("max_in_flight_per_partition must be at least 1");
        }
        if self.idempotence && self.acks == Acks::None {
            return bad(
                "idempotence needs acknowledgements: set acks to Leader or All, or turn idempotence off",
            );
        }
        if self.idempotence && self.max_in_flight_per_partition > MAX_IDEMPOTENT_IN_FLIGHT {
            return bad("with idempotence, max_in_flight_per_partition must be at most 16");
        }
        if self.delivery_timeout < self.linger + self.request_timeout {
            return bad("delivery_timeout must be at least linger + request_timeout");
        }
        Ok(())
    }

    /// Whether batches get sequence numbers at all.
    pub(crate) fn sequenced(&self) -> bool {
        self.idempotence && self.acks != Acks::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_conflicts_are_named() {
        ProducerConfig::default().validate().expect("defaults");
        let acks_none = ProducerConfig {
            acks: Acks::None,
            ..Default::default()
        };
        assert!(matches!(acks_none.validate(), Err(Error::Config(m)) if m.contains("idempotence")));
        let ok = ProducerConfig {
            acks: Acks::None,
            idempotence: false,
            ..Default::default()
        };
        ok.validate().expect("acks none without idempotence");
        let many = ProducerConfig {
            max_in_flight_per_partition: MAX_IDEMPOTENT_IN_FLIGHT + 1,
            ..Default::default()
        };
        assert!(many.validate().is_err());
    }
}
