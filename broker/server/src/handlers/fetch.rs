//! Fetch: read batches from an offset, long-polling for new data.
//!
//! A fetch that finds fewer than `min_bytes` waits on the partition's high-watermark
//! signal, not on a timer, so it answers as soon as an append lands and costs nothing
//! while it waits. The response payload is the stored bytes, copied once from the file.

use std::time::Duration;

use quiver_proto::api::{FetchRequest, FetchResponse, FilterSpec};
use tokio::time::Instant;

use super::Reply;
use crate::error::BrokerError;
use crate::listener::Context;

pub(super) async fn handle(
    ctx: &Context,
    req: FetchRequest,
) -> Result<Reply<FetchResponse>, BrokerError> {
    let limits = &ctx.broker.config.limits;
    reject_filter(req.filter.as_ref())?;
    let partition = ctx.broker.partition(&req.topic, req.partition)?;
    let max_bytes = req.max_bytes.clamp(1, limits.max_fetch_bytes) as usize;
    let min_bytes = req.min_bytes.max(1) as usize;
    let wait = Duration::from_millis(u64::from(req.max_wait_ms.min(limits.max_fetch_wait_ms)));
    let deadline = Instant::now() + wait;
    let mut watch = partition.watch();
    loop {
        // Mark the current high watermark seen before reading, so an append that lands
        // between the read and the wait still wakes us.
        watch.borrow_and_update();
        let out = partition.read(req.offset, max_bytes).await?;
        let enough = out.bytes.len() >= min_bytes;
        if enough || Instant::now() >= deadline {
            return Ok(Reply {
                body: FetchResponse {
                    high_watermark: out.high_watermark,
                    log_start_offset: out.log_start_offset,
                    next_offset: out.next_offset,
                },
                payload: out.bytes,
            });
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, watch.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    // Deadline passed (or the partition went away): answer with what there is.
                    continue;
                }
            }
            () = ctx.shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
            () = partition.deleted() => return Err(partition.deleted_error()),
        }
    }
}

/// Filters run in the plugin runtime; until a broker has one, asking for a filter is a
/// clear error rather than an unfiltered answer.
pub(super) fn reject_filter(filter: Option<&FilterSpec>) -> Result<(), BrokerError> {
    match filter {
        None => Ok(()),
        Some(f) => Err(BrokerError::UnknownPlugin(format!(
            "filter '{}' requested, but this broker has no plugin runtime",
            f.name
        ))),
    }
}
