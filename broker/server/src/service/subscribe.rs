//! Subscribe: batches pushed from an offset on, as they are appended.
//!
//! A [`Subscription`] yields one read at a time and, once caught up, waits on the
//! partition's high-watermark signal. The door pulls the next read only when it has
//! written the last one, so the transport's flow control is the backpressure: a consumer
//! that stops reading stops the reads, and no unbounded buffer grows. A filter, when
//! named, runs on each read as it does for fetch.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::BrokerService;
use super::filter::{self, ReadFilter};
use super::types::{FetchOutcome, SubscribeInput};
use crate::auth::Caller;
use crate::error::BrokerError;
use crate::partition::Partition;
use quiver_metadata::{Operation, ResourceKind};

/// A live subscription to one partition.
#[derive(Debug)]
pub struct Subscription {
    partition: Arc<Partition>,
    filter: Option<ReadFilter>,
    watch: tokio::sync::watch::Receiver<i64>,
    offset: i64,
    max_bytes: usize,
    /// Records a filter dropped since the last answer: told to the client (an answer with
    /// no records and the new `next_offset`) once caught up, so its position moves past
    /// them.
    skipped: bool,
    shutdown: CancellationToken,
}

impl BrokerService {
    /// Starts a subscription at `input.offset`. The partition must exist, and the filter,
    /// when one is named, is bound now (see [`ReadFilter::bind`]): a wrong one fails the
    /// subscription before any data arrives.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        input: SubscribeInput,
    ) -> Result<Subscription, BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Topic, &input.topic)?;
        if let Some(f) = &input.filter {
            self.check(caller, Operation::Read, ResourceKind::Plugin, &f.name)?;
        }
        let partition = self.broker.partition(&input.topic, input.partition)?;
        let max_bytes = input
            .max_bytes
            .clamp(1, self.broker.config.limits.max_fetch_bytes as usize);
        let mut filter = input
            .filter
            .map(|spec| ReadFilter::new(spec, Arc::clone(&self.broker.plugins)));
        if let Some(filter) = &mut filter {
            filter.bind().await?;
        }
        Ok(Subscription {
            watch: partition.watch(),
            partition,
            filter,
            offset: input.offset,
            max_bytes,
            skipped: false,
            shutdown: self.shutdown.clone(),
        })
    }
}

impl Subscription {
    /// The next read worth sending: records, or (after a filter dropped everything up
    /// to the end) no records and an advanced `next_offset`. Waits for appends when
    /// caught up. `None` once the broker is shutting down.
    pub async fn next(&mut self) -> Result<Option<FetchOutcome>, BrokerError> {
        loop {
            self.watch.borrow_and_update();
            let (out, payload) = filter::read(
                &self.partition,
                &mut self.filter,
                self.offset,
                self.max_bytes,
            )
            .await?;
            let answer = FetchOutcome {
                high_watermark: out.high_watermark,
                log_start_offset: out.log_start_offset,
                next_offset: out.next_offset,
                records: payload,
            };
            if !out.bytes.is_empty() {
                self.offset = out.next_offset;
                if answer.records.is_empty() {
                    self.skipped = true;
                    continue;
                }
                self.skipped = false;
                self.partition.stats.sent(&answer.records);
                return Ok(Some(answer));
            }
            if std::mem::take(&mut self.skipped) {
                return Ok(Some(answer));
            }
            tokio::select! {
                changed = self.watch.changed() => {
                    if changed.is_err() {
                        return Err(self.partition.deleted_error());
                    }
                }
                () = self.shutdown.cancelled() => return Ok(None),
                () = self.partition.deleted() => return Err(self.partition.deleted_error()),
            }
        }
    }
}
