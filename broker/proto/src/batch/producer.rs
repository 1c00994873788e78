//! The idempotent producer's identity as a batch carries it.

/// Batches of one idempotent producer that may be in flight to one partition at once.
/// The broker remembers this many recent batches per producer, so that every batch a
/// producer may resend after a lost connection is recognised as a duplicate. Kafka
/// allows 5; Quiver's batches are ~1 MiB, and 5 of them do not keep a fast link busy
/// while each waits for its acknowledgement.
pub const MAX_IDEMPOTENT_IN_FLIGHT: usize = 16;

/// Identity of an idempotent producer, stamped into every batch it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerIdentity {
    /// A producer without idempotence.
    pub const NONE: ProducerIdentity = ProducerIdentity {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}
