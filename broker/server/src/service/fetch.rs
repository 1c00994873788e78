//! Fetch: read batches from an offset, long-polling for new data.
//!
//! A fetch that finds fewer than `min_bytes` waits on the partition's high-watermark
//! signal, not on a timer, so it answers as soon as an append lands and costs nothing
//! while it waits. The answer is the stored bytes, copied once from the file. With a
//! filter (see `filter.rs`) it holds only the kept records, and `next_offset` moves past
//! the dropped ones.

use std::time::Duration;

use tokio::time::Instant;

use super::BrokerService;
use super::filter::{self, ReadFilter};
use super::types::{FetchInput, FetchOutcome};
use crate::auth::Caller;
use crate::error::BrokerError;
use quiver_metadata::{Operation, ResourceKind};

/// How many reads' worth of bytes (of `max_bytes` each) one filtered fetch examines
/// before answering with nothing but an advanced `next_offset`: a filter that drops
/// almost everything must not turn one request into a scan of the whole log.
const MAX_FILTERED_SCAN_FETCHES: usize = 16;

impl BrokerService {
    /// Reads from `input.offset`, waiting up to `max_wait` (capped by the broker's
    /// limit) until at least `min_bytes` are there, the deadline passes, or a filter has
    /// examined its bound of bytes.
    pub async fn fetch(
        &self,
        caller: &Caller,
        input: FetchInput,
    ) -> Result<FetchOutcome, BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Topic, &input.topic)?;
        if let Some(f) = &input.filter {
            self.check(caller, Operation::Read, ResourceKind::Plugin, &f.name)?;
        }
        let limits = &self.broker.config.limits;
        let partition = self.broker.partition(&input.topic, input.partition)?;
        let mut filter = input
            .filter
            .map(|spec| ReadFilter::new(spec, std::sync::Arc::clone(&self.broker.plugins)));
        if let Some(filter) = &mut filter {
            filter.bind().await?;
        }
        let filtered = filter.is_some();
        let max_bytes = input.max_bytes.clamp(1, limits.max_fetch_bytes as usize);
        let min_bytes = input.min_bytes.max(1);
        let wait = input
            .max_wait
            .min(Duration::from_millis(u64::from(limits.max_fetch_wait_ms)));
        let deadline = Instant::now() + wait;
        let mut watch = partition.watch();
        let mut offset = input.offset;
        let mut scanned = 0usize;
        loop {
            // Mark the current high watermark seen before reading, so an append that lands
            // between the read and the wait still wakes us.
            watch.borrow_and_update();
            let (out, payload) = filter::read(&partition, &mut filter, offset, max_bytes).await?;
            let read = out.bytes.len();
            // A filter may drop everything it saw. Move past it and read on without
            // waiting, up to a bound on the bytes one request examines.
            let all_dropped = payload.is_empty() && out.next_offset > offset;
            if all_dropped {
                offset = out.next_offset;
                scanned += read;
                if scanned < MAX_FILTERED_SCAN_FETCHES * max_bytes && Instant::now() < deadline {
                    continue;
                }
            }
            // With a filter, any kept record is worth answering with: min_bytes counts
            // stored bytes, which a consumer of a sparse filter may never see together.
            let enough = payload.len() >= min_bytes || (filtered && !payload.is_empty());
            if enough || all_dropped || Instant::now() >= deadline {
                partition.stats.sent(&payload);
                return Ok(FetchOutcome {
                    high_watermark: out.high_watermark,
                    log_start_offset: out.log_start_offset,
                    next_offset: out.next_offset,
                    records: payload,
                });
            }
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, watch.changed()) => {
                    if !matches!(changed, Ok(Ok(()))) {
                        // Deadline passed (or the partition went away): answer with what there is.
                        continue;
                    }
                }
                () = self.shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
                () = partition.deleted() => return Err(partition.deleted_error()),
            }
        }
    }
}
