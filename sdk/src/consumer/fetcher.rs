//! The fetch engine: long-poll fetches per assigned partition, pipelined (the next is
//! sent as soon as the previous response's head says where it ends, while its batches
//! are still arriving), decoded records buffered per partition, positions, seeks and
//! offset resets.
//!
//! It knows nothing of groups: a group consumer drives it with [`Fetcher::assign`] on
//! every rebalance and commits what [`Fetcher::position`] reports.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use quiver_proto::ErrorCode;
use quiver_proto::api::{
    FetchRequest, FetchResponse, Isolation, ListOffsetsRequest, OffsetSpec, TopicPartition,
};
use quiver_proto::batch::{self, BatchError};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::config::{ConsumerConfig, ConsumerRecord, OffsetReset};
use crate::{Client, Error};

/// One fetch sent and not yet applied.
#[derive(Debug)]
struct InFlight {
    seq: u64,
    /// Where it starts.
    offset: i64,
    /// Its whole result, held until every earlier fetch of the partition is applied.
    done: Option<Result<(FetchResponse, Bytes), Error>>,
    task: AbortHandle,
}

impl Drop for InFlight {
    /// A fetch dropped before its answer (a seek, a reassignment) stops downloading.
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct PartitionState {
    topic: Arc<str>,
    /// Where the next fetch to send starts. `None` before a seek or reset, and while the
    /// last fetch in flight has not yet said where it ends.
    next_fetch: Option<i64>,
    /// Fetches sent, oldest first; results are applied in this order.
    in_flight: VecDeque<InFlight>,
    /// Prefetched records not yet returned; the first one's offset is the position.
    buffered: VecDeque<ConsumerRecord>,
    /// Bumped whenever fetches in flight are dropped, so their late events are ignored.
    epoch: u64,
    backoff_until: Option<Instant>,
    /// Paused by the application: no fetches start and no buffered records are returned.
    paused: bool,
}

impl PartitionState {
    /// Drops every fetch in flight; the next one starts at `from`.
    fn restart(&mut self, from: i64) {
        self.epoch += 1;
        self.in_flight.clear();
        self.next_fetch = Some(from);
    }

    /// The offset of the next record `poll` returns, if known.
    fn position(&self) -> Option<i64> {
        self.buffered
            .front()
            .map(|r| r.offset)
            .or_else(|| self.in_flight.front().map(|f| f.offset))
            .or(self.next_fetch)
    }
}

/// What a fetch task reports, in this order: the response head (possibly once per
/// attempt), then the whole result.
#[derive(Debug)]
enum FetchEvent {
    Head {
        tp: TopicPartition,
        epoch: u64,
        seq: u64,
        next_offset: i64,
    },
    Done {
        tp: TopicPartition,
        epoch: u64,
        seq: u64,
        result: Result<(FetchResponse, Bytes), Error>,
    },
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Fetcher {
    client: Client,
    config: ConsumerConfig,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    tasks: JoinSet<()>,
    events_tx: mpsc::UnboundedSender<FetchEvent>,
    events: mpsc::UnboundedReceiver<FetchEvent>,
    next_seq: u64,
}

impl Fetcher {
    pub fn new(client: Client, config: ConsumerConfig) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        Fetcher {
            client,
            config,
            partitions: BTreeMap::new(),
            tasks: JoinSet::new(),
            events_tx,
            events,
            next_seq: 0,
        }
    }

    /// Replaces the assignment. Partitions that stay keep their position and buffer.
    pub fn assign(&mut self, tps: Vec<TopicPartition>) {
        let mut next = BTreeMap::new();
        for tp in tps {
            let state = self
                .partitions
                .remove(&tp)
                .unwrap_or_else(|| PartitionState {
                    topic: Arc::from(tp.topic.as_str()),
                    next_fetch: None,
                    in_flight: VecDeque::new(),
                    buffered: VecDeque::new(),
                    epoch: 0,
                    backoff_until: None,
                    paused: false,
                });
            next.insert(tp, state);
        }
        self.partitions = next;
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    fn state(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState, Error> {
        self.partitions
            .get_mut(tp)
            .ok_or_else(|| Error::NotAssigned(tp.clone()))
    }

    /// Next reads of `tp` start at `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Error> {
        let state = self.state(tp)?;
        state.buffered.clear();
        state.restart(offset);
        state.backoff_until = None;
        Ok(())
    }

    /// Stops or restarts fetching and returning `tp`; its position and buffer stay.
    pub fn set_paused(&mut self, tp: &TopicPartition, paused: bool) -> Result<(), Error> {
        self.state(tp)?.paused = paused;
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The offset of the next record `poll` returns for `tp`, if known.
    pub fn position(&self, tp: &TopicPartition) -> Result<Option<i64>, Error> {
        self.partitions
            .get(tp)
            .map(PartitionState::position)
            .ok_or_else(|| Error::NotAssigned(tp.clone()))
    }

    /// Looks up an offset of `tp` on the broker.
    pub async fn lookup(&self, tp: &TopicPartition, spec: OffsetSpec) -> Result<i64, Error> {
        let req = ListOffsetsRequest {
            topic: tp.topic.clone(),
            partition: tp.partition,
            spec,
        };
        let resp = self
            .client
            .call_leader(&tp.topic, tp.partition, &req)
            .await?;
        resp.offset.ok_or_else(|| Error::Broker {
            api: "list-offsets",
            source: quiver_proto::WireError::new(
                ErrorCode::OFFSET_OUT_OF_RANGE,
                format!("the broker has no {spec:?} offset for {tp}"),
            ),
        })
    }

    /// Gives every partition without a position one, by `auto_offset_reset`.
    async fn reset_positions(&mut self) -> Result<(), Error> {
        let missing: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.position().is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in missing {
            let offset = self.reset_offset(&tp).await?;
            self.seek(&tp, offset)?;
        }
        Ok(())
    }

    async fn reset_offset(&self, tp: &TopicPartition) -> Result<i64, Error> {
        let spec = match self.config.auto_offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::None => return Err(Error::NoOffset(tp.clone())),
        };
        self.lookup(tp, spec).await
    }

    /// Starts a fetch for every partition whose next fetch offset is known, with fewer
    /// than `fetches_in_flight` fetches out, no backoff, and fewer than
    /// `max_poll_records` records buffered (the prefetch).
    fn start_fetches(&mut self, now: Instant) {
        let depth = self.config.fetches_in_flight.max(1);
        for (tp, state) in &mut self.partitions {
            let Some(offset) = state.next_fetch else {
                continue;
            };
            if state.paused
                || state.in_flight.len() >= depth
                || state.buffered.len() >= self.config.max_poll_records
                || state.backoff_until.is_some_and(|t| t > now)
            {
                continue;
            }
            state.next_fetch = None;
            state.backoff_until = None;
            let req = FetchRequest {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                max_bytes: self.config.max_bytes,
                max_wait_ms: self.config.max_wait.as_millis().min(u128::from(u32::MAX)) as u32,
                min_bytes: self.config.min_bytes,
                isolation: Isolation::ReadUncommitted,
                filter: self.config.filter.clone(),
            };
            let client = self.client.clone();
            let events = self.events_tx.clone();
            let (tp, epoch, seq) = (tp.clone(), state.epoch, self.next_seq);
            self.next_seq += 1;
            let task = self.tasks.spawn(async move {
                let mut on_head = |resp: &FetchResponse| {
                    let _ = events.send(FetchEvent::Head {
                        tp: tp.clone(),
                        epoch,
                        seq,
                        next_offset: resp.next_offset,
                    });
                };
                let result = match client.leader_for(&tp.topic, tp.partition).await {
                    Ok(leader) => leader.call_early(&req, Bytes::new(), &mut on_head).await,
                    Err(e) => Err(e),
                };
                // A leader that moved answers NOT_LEADER, or is gone with its
                // connection: the next fetch asks the metadata again.
                if let Err(e) = &result
                    && (e.code() == Some(ErrorCode::NOT_LEADER) || e.code().is_none())
                {
                    client.invalidate_metadata(&tp.topic);
                }
                let _ = events.send(FetchEvent::Done {
                    tp,
                    epoch,
                    seq,
                    result,
                });
            });
            state.in_flight.push_back(InFlight {
                seq,
                offset,
                done: None,
                task,
            });
        }
    }

    /// Takes up to `max_poll_records` buffered records, a fair share from each partition.
    fn take_buffered(&mut self) -> Vec<ConsumerRecord> {
        let max = self.config.max_poll_records;
        let mut out = Vec::new();
        let busy = self
            .partitions
            .values()
            .filter(|s| !s.paused && !s.buffered.is_empty())
            .count();
        if busy == 0 {
            return out;
        }
        let share = max.div_ceil(busy).max(1);
        for state in self.partitions.values_mut().filter(|s| !s.paused) {
            let n = share.min(state.buffered.len()).min(max - out.len());
            out.extend(state.buffered.drain(..n));
            if out.len() >= max {
                break;
            }
        }
        out
    }

    /// Returns buffered records, or waits up to `deadline` for a fetch to bring some.
    pub async fn poll(&mut self, deadline: Instant) -> Result<Vec<ConsumerRecord>, Error> {
        self.reset_positions().await?;
        loop {
            // Finished tasks have reported through the channel; only reap them here.
            while self.tasks.try_join_next().is_some() {}
            let now = Instant::now();
            self.start_fetches(now);
            let records = self.take_buffered();
            if !records.is_empty() {
                // Prefetch the partitions just emptied while the caller works.
                self.start_fetches(now);
                return Ok(records);
            }
            let backoff = self
                .partitions
                .values()
                .filter_map(|s| s.backoff_until)
                .min();
            let wake = backoff.map_or(deadline, |b| b.min(deadline));
            tokio::select! {
                Some(event) = self.events.recv() => {
                    if let Err(e) = self.on_event(event).await {
                        // Records that arrived before the failure go out first. The
                        // failing partition was restarted at the failing offset, so its
                        // next fetch meets the same error, reported by a later poll.
                        let records = self.take_buffered();
                        if records.is_empty() {
                            return Err(e);
                        }
                        tracing::debug!(error = %e, "returning buffered records before an error");
                        return Ok(records);
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= deadline {
                        return Ok(Vec::new());
                    }
                }
            }
        }
    }

    async fn on_event(&mut self, event: FetchEvent) -> Result<(), Error> {
        match event {
            FetchEvent::Head {
                tp,
                epoch,
                seq,
                next_offset,
            } => {
                let Some(state) = self.partitions.get_mut(&tp) else {
                    return Ok(());
                };
                // The newest fetch said where it ends: the next can start from there
                // while this one's batches are still arriving.
                let newest = state.in_flight.back().filter(|f| f.seq == seq);
                if state.epoch == epoch
                    && state.next_fetch.is_none()
                    && newest.is_some_and(|f| next_offset > f.offset)
                {
                    state.next_fetch = Some(next_offset);
                    self.start_fetches(Instant::now());
                }
                Ok(())
            }
            FetchEvent::Done {
                tp,
                epoch,
                seq,
                result,
            } => {
                let Some(state) = self.partitions.get_mut(&tp) else {
                    return Ok(());
                };
                if state.epoch != epoch {
                    return Ok(());
                }
                if let Some(f) = state.in_flight.iter_mut().find(|f| f.seq == seq) {
                    f.done = Some(result);
                }
                while self
                    .partitions
                    .get(&tp)
                    .is_some_and(|s| s.in_flight.front().is_some_and(|f| f.done.is_some()))
                {
                    self.apply_front(&tp).await?;
                }
                Ok(())
            }
        }
    }

    /// Applies the oldest fetch of `tp`, whose result has arrived.
    async fn apply_front(&mut self, tp: &TopicPartition) -> Result<(), Error> {
        let backoff = self.config.retry_backoff;
        let check_crcs = self.config.check_crcs;
        let Some(state) = self.partitions.get_mut(tp) else {
            return Ok(());
        };
        let Some(mut fetch) = state.in_flight.pop_front() else {
            return Ok(());
        };
        let Some(result) = fetch.done.take() else {
            return Ok(());
        };
        let offset = fetch.offset;
        match result {
            Ok((resp, payload)) => {
                let (decoded, outcome) = decode_into(
                    tp,
                    &state.topic,
                    offset,
                    &payload,
                    check_crcs,
                    &mut state.buffered,
                );
                if let Err(e) = outcome {
                    // Keep what decoded before the corrupt batch and stay on it: the
                    // next poll returns those records, the one after fails here again.
                    state.restart(decoded);
                    return Err(e);
                }
                let next = decoded.max(resp.next_offset);
                // The fetch sent after this one (or about to be) must start where this
                // one ended; if not (a retry answered differently), fetch again from there.
                let follows = state
                    .in_flight
                    .front()
                    .map(|f| f.offset)
                    .or(state.next_fetch);
                if follows != Some(next) {
                    state.restart(next);
                }
                Ok(())
            }
            Err(e) if e.code() == Some(ErrorCode::OFFSET_OUT_OF_RANGE) => {
                tracing::info!(%tp, offset, "offset out of range; applying auto_offset_reset");
                state.restart(offset);
                let reset = self.reset_offset(tp).await?;
                self.seek(tp, reset)
            }
            Err(Error::Broker { source, .. }) if source.damaged_offsets().is_some() => {
                // Stay on the damage: skipping acknowledged records is the application's
                // explicit choice, never the client's.
                state.restart(offset);
                let (first_offset, next_offset) = source.damaged_offsets().unwrap_or_default();
                Err(Error::DamagedData {
                    tp: tp.clone(),
                    first_offset,
                    next_offset,
                    message: source.message,
                })
            }
            Err(e) => {
                state.restart(offset);
                state.backoff_until = Some(Instant::now() + backoff);
                if e.is_retriable() {
                    tracing::debug!(%tp, error = %e, "fetch failed; retrying");
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// Decodes the batches of a fetch into `out`, skipping records below `offset` (a fetch
/// returns whole batches, so the first may start earlier), and checking each batch's
/// CRC first when `check_crcs`. Returns the offset after the last whole batch decoded
/// (or `offset` when there was none) and, if a batch was corrupt, the error that stopped
/// decoding there: the records of the batches before it are kept.
pub(crate) fn decode_into(
    tp: &TopicPartition,
    topic: &Arc<str>,
    offset: i64,
    payload: &Bytes,
    check_crcs: bool,
    out: &mut VecDeque<ConsumerRecord>,
) -> (i64, Result<(), Error>) {
    let mut next = offset;
    let mut batches = batch::split(payload).peekable();
    while let Some(item) = batches.next() {
        let corrupt = |source, skip_to| Error::Batch {
            tp: tp.clone(),
            offset: next,
            skip_to,
            source: Arc::new(source),
        };
        let (header, bytes) = match item {
            Ok(piece) => piece,
            // A batch cut short at the end of a size-bounded response: fetch it again.
            Err(BatchError::Truncated { .. }) if next > offset => break,
            Err(source) => return (next, Err(corrupt(source, None))),
        };
        // Where reading may resume past this batch if it is damaged: the next batch's
        // base offset when the response holds one (its framing is intact), else this
        // batch's own end as its header says, when that lies ahead.
        let skip_to = |batches: &mut std::iter::Peekable<batch::BatchSplit<'_>>| match batches
            .peek()
        {
            Some(Ok((following, _))) if following.base_offset > next => Some(following.base_offset),
            _ => Some(header.last_offset() + 1).filter(|end| *end > next),
        };
        if check_crcs && let Err(source) = batch::validate_stored(&bytes) {
            return (next, Err(corrupt(source, skip_to(&mut batches))));
        }
        let records = match batch::decode_records(&bytes) {
            Ok(records) => records,
            Err(source) => return (next, Err(corrupt(source, skip_to(&mut batches)))),
        };
        for r in records {
            if r.offset < offset {
                continue;
            }
            next = r.offset + 1;
            out.push_back(ConsumerRecord {
                topic: topic.clone(),
                partition: tp.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers,
            });
        }
        // A compacted batch may end in removed records, or hold none at all (an empty
        // stand-in for an idempotent producer): its offsets are passed all the same.
        next = next.max(header.last_offset() + 1);
    }
    (next, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity, set_base_offset};

    fn batch(base: i64, values: &[&str], codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for v in values {
            b.push(1000, None, Some(v.as_bytes()), &[]);
        }
        let mut bytes = b.build(codec, ProducerIdentity::NONE).to_vec();
        set_base_offset(&mut bytes, base);
        bytes
    }

    #[test]
    fn skips_records_below_the_requested_offset_and_decompresses() {
        let mut payload = batch(10, &["a", "b", "c"], Compression::Lz4);
        payload.extend(batch(13, &["d"], Compression::Zstd));
        let tp = TopicPartition::new("t", 2);
        let mut out = VecDeque::new();
        let (next, outcome) = decode_into(&tp, &"t".into(), 11, &payload.into(), true, &mut out);
        outcome.expect("decodes");
        let got: Vec<(i64, &[u8])> = out
            .iter()
            .map(|r| (r.offset, r.value.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(got, vec![(11, &b"b"[..]), (12, b"c"), (13, b"d")]);
        assert_eq!(next, 14);
        assert!(out.iter().all(|r| r.partition == 2));
    }

    #[test]
    fn a_truncated_tail_batch_is_left_for_the_next_fetch() {
        let mut payload = batch(0, &["a"], Compression::None);
        let second = batch(1, &["b"], Compression::None);
        payload.extend_from_slice(&second[..second.len() - 3]);
        let mut out = VecDeque::new();
        let tp = TopicPartition::new("t", 0);
        let (next, outcome) = decode_into(&tp, &"t".into(), 0, &payload.into(), true, &mut out);
        outcome.expect("first batch decodes");
        assert_eq!((out.len(), next), (1, 1));
    }

    #[test]
    fn corrupt_batches_are_typed_errors() {
        let tp = TopicPartition::new("t", 0);
        let mut out = VecDeque::new();
        let garbage = Bytes::from(vec![0u8; 70]);
        let (next, outcome) = decode_into(&tp, &"t".into(), 5, &garbage, true, &mut out);
        let err = outcome.expect_err("garbage");
        assert!(matches!(err, Error::Batch { offset: 5, .. }), "{err}");
        assert_eq!(next, 5);
    }

    /// Compaction leaves an empty batch for an idempotent producer's last batch: it is
    /// stepped over, even when a truncated batch follows it at the end of a response.
    #[test]
    fn an_empty_batch_left_by_compaction_is_stepped_over() {
        let mut payload = batch(0, &["a"], Compression::None);
        let mut gone = BatchBuilder::new();
        gone.push(1000, Some(b"k"), Some(b"superseded"), &[]);
        gone.push(1000, Some(b"k"), Some(b"superseded"), &[]);
        let identity = ProducerIdentity {
            producer_id: 3,
            producer_epoch: 0,
            base_sequence: 0,
        };
        let gone = gone.build_at(1, Compression::None, identity);
        let header = batch::validate(&gone).expect("valid");
        payload.extend_from_slice(&batch::empty_like(&header));
        let tail = batch(3, &["d"], Compression::None);
        let tp = TopicPartition::new("t", 0);

        let mut whole = payload.clone();
        whole.extend_from_slice(&tail);
        let mut out = VecDeque::new();
        let (next, outcome) = decode_into(&tp, &"t".into(), 0, &whole.into(), true, &mut out);
        outcome.expect("the empty batch is no error");
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!((offsets, next), (vec![0, 3], 4));

        // Starting at the empty batch with the next one cut short: nothing to hand over,
        // no error, and the position moves past the empty batch.
        let mut cut = payload[payload.len() - batch::HEADER_LEN..].to_vec();
        cut.extend_from_slice(&tail[..tail.len() - 2]);
        let mut out = VecDeque::new();
        let (next, outcome) = decode_into(&tp, &"t".into(), 1, &cut.into(), true, &mut out);
        outcome.expect("the truncated tail is left for the next fetch");
        assert_eq!((out.len(), next), (0, 3));
    }

    /// A flipped bit in a value passes every length check; only the CRC catches it.
    #[test]
    fn a_batch_failing_its_crc_stops_decoding_there_and_keeps_the_batches_before() {
        let mut payload = batch(0, &["a", "b"], Compression::None);
        let second = batch(2, &["c", "d"], Compression::None);
        let value_byte = second.len() - 2;
        payload.extend_from_slice(&second);
        let flip = payload.len() - second.len() + value_byte;
        payload[flip] ^= 0x20;
        let tp = TopicPartition::new("t", 0);
        let payload = Bytes::from(payload);

        let mut out = VecDeque::new();
        let (next, outcome) = decode_into(&tp, &"t".into(), 0, &payload, true, &mut out);
        let err = outcome.expect_err("the CRC fails");
        assert!(
            matches!(&err, Error::Batch { offset: 2, source, .. }
                if matches!(**source, BatchError::CrcMismatch { .. })),
            "{err}"
        );
        assert_eq!((next, out.len()), (2, 2), "the first batch is kept");

        // Unchecked, the damaged value is handed over as it is.
        let mut out = VecDeque::new();
        let (next, outcome) = decode_into(&tp, &"t".into(), 0, &payload, false, &mut out);
        outcome.expect("decodes without the check");
        assert_eq!(next, 4);
        assert_eq!(out[3].value.as_deref(), Some(&b"D"[..]));
    }

    /// A batch that fails its CRC says where reading can resume: the next batch's base
    /// offset when one follows in the response, else its own end.
    #[test]
    fn a_corrupt_batch_names_where_reading_resumes() {
        let tp = TopicPartition::new("t", 0);
        let mut first = batch(0, &["a", "b", "c"], Compression::None);
        let last = first.len() - 2;
        first[last] ^= 0x20;
        let mut followed = first.clone();
        followed.extend_from_slice(&batch(5, &["f"], Compression::None));
        let mut out = VecDeque::new();
        let (_, outcome) = decode_into(&tp, &"t".into(), 0, &followed.into(), true, &mut out);
        let err = outcome.expect_err("the CRC fails");
        assert!(
            matches!(
                err,
                Error::Batch {
                    offset: 0,
                    skip_to: Some(5),
                    ..
                }
            ),
            "{err}"
        );

        let mut out = VecDeque::new();
        let (_, outcome) = decode_into(&tp, &"t".into(), 0, &first.into(), true, &mut out);
        let err = outcome.expect_err("the CRC fails");
        assert!(
            matches!(
                err,
                Error::Batch {
                    offset: 0,
                    skip_to: Some(3),
                    ..
                }
            ),
            "{err}"
        );
    }
}
