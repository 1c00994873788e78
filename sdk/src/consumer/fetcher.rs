//! The fetch engine: one long-poll fetch in flight per assigned partition, decoded
//! records buffered per partition, positions, seeks and offset resets.
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
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::{ConsumerConfig, ConsumerRecord, OffsetReset};
use crate::{Client, Error};

#[derive(Debug)]
struct PartitionState {
    topic: Arc<str>,
    /// Next offset to fetch; `None` until seeked or reset.
    fetch_offset: Option<i64>,
    /// Prefetched records not yet returned; the first one's offset is the position.
    buffered: VecDeque<ConsumerRecord>,
    /// Bumped by every seek, so the result of a fetch started before it is dropped.
    epoch: u64,
    fetching: bool,
    backoff_until: Option<Instant>,
    /// Paused by the application: no fetches start and no buffered records are returned.
    paused: bool,
}

type FetchDone = (
    TopicPartition,
    u64,
    i64,
    Result<(FetchResponse, Bytes), Error>,
);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Fetcher {
    client: Client,
    config: ConsumerConfig,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    fetches: JoinSet<FetchDone>,
}

impl Fetcher {
    pub fn new(client: Client, config: ConsumerConfig) -> Self {
        Fetcher {
            client,
            config,
            partitions: BTreeMap::new(),
            fetches: JoinSet::new(),
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
                    fetch_offset: None,
                    buffered: VecDeque::new(),
                    epoch: 0,
                    fetching: false,
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
        state.fetch_offset = Some(offset);
        state.buffered.clear();
        state.epoch += 1;
        state.fetching = false;
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
        let state = self
            .partitions
            .get(tp)
            .ok_or_else(|| Error::NotAssigned(tp.clone()))?;
        Ok(state
            .buffered
            .front()
            .map(|r| r.offset)
            .or(state.fetch_offset))
    }

    /// Looks up an offset of `tp` on the broker.
    pub async fn lookup(&self, tp: &TopicPartition, spec: OffsetSpec) -> Result<i64, Error> {
        let req = ListOffsetsRequest {
            topic: tp.topic.clone(),
            partition: tp.partition,
            spec,
        };
        let (resp, _) = self.client.call(&req, Bytes::new()).await?;
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
            .filter(|(_, s)| s.fetch_offset.is_none())
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

    /// Starts a fetch for every partition that has a position, no fetch in flight, no
    /// backoff, and fewer than `max_poll_records` records buffered (the prefetch).
    fn start_fetches(&mut self, now: Instant) {
        for (tp, state) in &mut self.partitions {
            let Some(offset) = state.fetch_offset else {
                continue;
            };
            if state.fetching
                || state.paused
                || state.buffered.len() >= self.config.max_poll_records
                || state.backoff_until.is_some_and(|t| t > now)
            {
                continue;
            }
            state.fetching = true;
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
            let (tp, epoch) = (tp.clone(), state.epoch);
            self.fetches.spawn(async move {
                let result = client.call(&req, Bytes::new()).await;
                (tp, epoch, offset, result)
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
                Some(joined) = self.fetches.join_next(), if !self.fetches.is_empty() => {
                    let Ok(done) = joined else { continue };
                    self.apply(done).await?;
                }
                () = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= deadline {
                        return Ok(Vec::new());
                    }
                }
            }
        }
    }

    async fn apply(&mut self, (tp, epoch, offset, result): FetchDone) -> Result<(), Error> {
        let backoff = self.config.retry_backoff;
        let Some(state) = self.partitions.get_mut(&tp) else {
            return Ok(());
        };
        if state.epoch != epoch {
            return Ok(());
        }
        state.fetching = false;
        match result {
            Ok((resp, payload)) => {
                // The response says where the next fetch starts: send it now, so the
                // broker reads and the network carries it while these records decode.
                let pipelined = resp.next_offset > offset;
                if pipelined {
                    state.fetch_offset = Some(resp.next_offset);
                    self.start_fetches(Instant::now());
                }
                let Some(state) = self.partitions.get_mut(&tp) else {
                    return Ok(());
                };
                let decoded = decode_into(&tp, &state.topic, offset, &payload, &mut state.buffered);
                let next = match decoded {
                    Ok(next) => next.max(resp.next_offset),
                    Err(e) => {
                        // Stay on the undecodable data, as before the pipelined fetch.
                        state.epoch += 1;
                        state.fetching = false;
                        state.fetch_offset = Some(offset);
                        return Err(e);
                    }
                };
                if next != resp.next_offset || !pipelined {
                    if pipelined {
                        // The fetch sent ahead started elsewhere: drop its answer.
                        state.epoch += 1;
                        state.fetching = false;
                    }
                    state.fetch_offset = Some(next);
                }
                Ok(())
            }
            Err(e) if e.code() == Some(ErrorCode::OFFSET_OUT_OF_RANGE) => {
                tracing::info!(%tp, offset, "offset out of range; applying auto_offset_reset");
                let reset = self.reset_offset(&tp).await?;
                self.seek(&tp, reset)
            }
            Err(e) if e.is_retriable() => {
                tracing::debug!(%tp, error = %e, "fetch failed; retrying");
                state.backoff_until = Some(Instant::now() + backoff);
                Ok(())
            }
            Err(e) => {
                state.backoff_until = Some(Instant::now() + backoff);
                Err(e)
            }
        }
    }
}

/// Decodes the batches of a fetch into `out`, skipping records below `offset` (a fetch
/// returns whole batches, so the first may start earlier). Returns the offset after the
/// last record decoded, or `offset` when there was none.
pub(crate) fn decode_into(
    tp: &TopicPartition,
    topic: &Arc<str>,
    offset: i64,
    payload: &Bytes,
    out: &mut VecDeque<ConsumerRecord>,
) -> Result<i64, Error> {
    let mut next = offset;
    for item in batch::split(payload) {
        let bytes = match item {
            Ok((_, bytes)) => bytes,
            // A batch cut short at the end of a size-bounded response: fetch it again.
            Err(BatchError::Truncated { .. }) if next > offset => break,
            Err(source) => {
                return Err(Error::Batch {
                    tp: tp.clone(),
                    source: Arc::new(source),
                });
            }
        };
        let records = batch::decode_records(&bytes).map_err(|source| Error::Batch {
            tp: tp.clone(),
            source: Arc::new(source),
        })?;
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
    }
    Ok(next)
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
        let next = decode_into(&tp, &Arc::from("t"), 11, &Bytes::from(payload), &mut out)
            .expect("decodes");
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
        let next = decode_into(&tp, &Arc::from("t"), 0, &Bytes::from(payload), &mut out)
            .expect("first batch decodes");
        assert_eq!((out.len(), next), (1, 1));
    }

    #[test]
    fn corrupt_batches_are_typed_errors() {
        let tp = TopicPartition::new("t", 0);
        let mut out = VecDeque::new();
        let garbage = Bytes::from(vec![0u8; 70]);
        let err = decode_into(&tp, &Arc::from("t"), 0, &garbage, &mut out).expect_err("garbage");
        assert!(matches!(err, Error::Batch { .. }));
    }
}
