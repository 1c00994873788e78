//! The append path: validate a request, check idempotence, assign offsets, write once,
//! flush per policy, publish to readers; and rolling the active segment.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use quiver_proto::batch::{self, BatchError, BatchHeader};

use crate::config::{FlushPolicy, LogConfig};
use crate::error::StorageError;
use crate::index::IndexCursor;
use crate::leader_epoch::EPOCH_CHECKPOINT;
use crate::log::{AppendOutcome, PartitionLog, Writer};
use crate::producer_state::Verdict;
use crate::segment::{NO_TIMESTAMP, Segment, sync_dir};

/// Where a batch's partition leader epoch starts: after the base offset and the length.
const LEADER_EPOCH_AT: usize = batch::BASE_OFFSET_LEN + 4;

/// One batch of a request: where it sits in the request and its header.
#[derive(Debug, Clone, Copy)]
struct RequestBatch {
    start: usize,
    header: BatchHeader,
}

/// Splits a request into whole batches and checks each with `verify` before anything
/// is written, so a bad batch anywhere means nothing is appended. `verify` gets the
/// batch's index in the request, its bytes and the batch before it, and returns its
/// validated header. A declared length over `max_batch_bytes` is refused before the
/// bytes are looked at.
fn split_request(
    batches: &[u8],
    max_batch_bytes: Option<u32>,
    mut verify: impl FnMut(usize, &[u8], Option<&RequestBatch>) -> Result<BatchHeader, StorageError>,
) -> Result<Vec<RequestBatch>, StorageError> {
    if batches.is_empty() {
        return Err(StorageError::CorruptBatch {
            index_in_request: 0,
            source: BatchError::Empty,
        });
    }
    let mut out: Vec<RequestBatch> = Vec::new();
    let mut start = 0;
    while start < batches.len() {
        let index_in_request = out.len();
        let corrupt = |source| StorageError::CorruptBatch {
            index_in_request,
            source,
        };
        let rest = &batches[start..];
        let len = BatchHeader::parse(rest).map_err(corrupt)?.total_len();
        if let Some(max) = max_batch_bytes
            && len > max as usize
        {
            return Err(StorageError::BatchTooLarge { size: len, max });
        }
        if len > rest.len() {
            return Err(corrupt(BatchError::Truncated {
                needed: len,
                available: rest.len(),
            }));
        }
        let header = verify(index_in_request, &rest[..len], out.last())?;
        out.push(RequestBatch { start, header });
        start += len;
    }
    Ok(out)
}

/// Splits and checks every batch a producer sent: size, CRC, dense offsets, and records
/// a consumer can read.
fn validate_request(
    batches: &[u8],
    max_batch_bytes: u32,
) -> Result<Vec<RequestBatch>, StorageError> {
    split_request(
        batches,
        Some(max_batch_bytes),
        |index_in_request, bytes, _| {
            let corrupt = |source| StorageError::CorruptBatch {
                index_in_request,
                source,
            };
            let header = batch::validate(bytes).map_err(corrupt)?;
            // Offsets are assigned densely from the record count; a producer's batch that
            // claims otherwise would make offsets jump.
            if i64::from(header.last_offset_delta) != i64::from(header.record_count) - 1 {
                return Err(corrupt(BatchError::Malformed(
                    "last offset delta must be the record count minus one",
                )));
            }
            // The CRC proves the bytes are the producer's; this proves a consumer can read
            // them: the codec decompresses and the records are framed as the header says.
            batch::check_records(bytes).map_err(corrupt)?;
            Ok(header)
        },
    )
}

/// Splits and checks the batches a follower received: each whole, with a valid CRC
/// (empty batches left by the leader's compaction included), and starting where the
/// previous one ended.
fn validate_replicated(batches: &[u8]) -> Result<Vec<RequestBatch>, StorageError> {
    split_request(batches, None, |index_in_request, bytes, previous| {
        let header =
            batch::validate_stored(bytes).map_err(|source| StorageError::CorruptBatch {
                index_in_request,
                source,
            })?;
        if let Some(previous) = previous {
            let expected = previous.header.last_offset() + 1;
            if header.base_offset != expected {
                return Err(StorageError::UnexpectedReplicaOffset {
                    expected,
                    got: header.base_offset,
                });
            }
        }
        Ok(header)
    })
}

impl PartitionLog {
    /// Validates every batch in `batches` (back-to-back RecordBatch v2 as a producer sent
    /// them), runs the idempotent-producer checks, assigns offsets, stamps the leader
    /// epoch, appends with one write and flushes per policy. A corrupt batch anywhere
    /// appends nothing.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendOutcome, StorageError> {
        let config = self.config();
        let request = validate_request(batches, config.max_batch_bytes)?;
        let records: u32 = request.iter().map(|b| b.header.record_count as u32).sum();
        let mut writer = self.writer.lock();
        self.check_poison()?;
        let epoch = self.leader_epoch();
        if let Some(latest) = self.latest_epoch()
            && epoch < latest
        {
            return Err(StorageError::StaleLeaderEpoch { epoch, latest });
        }

        let headers: Vec<BatchHeader> = request.iter().map(|b| b.header).collect();
        let verdict = {
            let producers = self.producers.lock();
            let verdict = producers.check(&headers);
            if let Err(StorageError::OutOfOrderSequence { producer_id, .. }) = &verdict {
                // What the log remembers of the producer, to tell a lost batch from a
                // retry that no longer matches the batch stored under its sequences.
                let sent: Vec<(i32, i32)> = headers
                    .iter()
                    .map(|h| (h.base_sequence, h.last_sequence()))
                    .collect();
                let cached: Vec<(i32, i32, i64)> = producers
                    .get(*producer_id)
                    .map(|e| {
                        e.batches
                            .iter()
                            .map(|b| (b.first_sequence, b.last_sequence, b.base_offset))
                            .collect()
                    })
                    .unwrap_or_default();
                tracing::debug!(dir = %self.dir.display(), producer_id, ?sent, ?cached, "produce refused: sequence out of order");
            }
            verdict?
        };
        if let Verdict::Duplicate(stored) = verdict {
            let base_offset = stored.first().map_or(-1, |b| b.base_offset);
            let last_offset = stored.last().map_or(-1, |b| b.last_offset);
            return Ok(AppendOutcome {
                base_offset,
                last_offset,
                log_append_time: now_ms,
                records,
                duplicate: true,
            });
        }

        let span: i64 = request
            .iter()
            .map(|b| i64::from(b.header.last_offset_delta) + 1)
            .sum();
        self.roll_if_needed(&mut writer, &config, batches.len() as u64, span, now_ms)?;

        // Each batch's base offset (its first 8 bytes) and leader epoch (bytes 12..16),
        // both outside the CRC, are written from small buffers of their own and the rest
        // straight from the request: the whole request is one vectored write, and its
        // bytes are never copied in memory.
        let base_offset = self.log_end_offset();
        let mut next_offset = base_offset;
        let mut stamped = Vec::with_capacity(request.len());
        for b in &request {
            let mut header = b.header;
            header.base_offset = next_offset;
            header.partition_leader_epoch = epoch;
            next_offset = header.last_offset() + 1;
            stamped.push((b.start, header));
        }
        let offsets: Vec<[u8; batch::BASE_OFFSET_LEN]> = stamped
            .iter()
            .map(|(_, header)| header.base_offset.to_be_bytes())
            .collect();
        let epoch_bytes = epoch.to_be_bytes();
        let mut pieces = Vec::with_capacity(4 * request.len());
        for ((start, header), offset) in stamped.iter().zip(&offsets) {
            pieces.push(IoSlice::new(offset));
            pieces.push(IoSlice::new(
                &batches[start + batch::BASE_OFFSET_LEN..start + LEADER_EPOCH_AT],
            ));
            pieces.push(IoSlice::new(&epoch_bytes));
            pieces.push(IoSlice::new(
                &batches[start + LEADER_EPOCH_AT + 4..start + header.total_len()],
            ));
        }
        self.commit(
            &mut writer,
            &config,
            &mut pieces,
            batches.len() as u64,
            &stamped,
            now_ms,
        )?;
        Ok(AppendOutcome {
            base_offset,
            last_offset: next_offset - 1,
            log_append_time: now_ms,
            records,
            duplicate: false,
        })
    }

    /// Appends batches a leader already stored, for a follower: offsets and leader epochs
    /// are kept as they are, never stamped. Every batch is checked (header, CRC) before
    /// anything is written; the first must start at the log end and each next one where
    /// the previous ended ([`StorageError::UnexpectedReplicaOffset`] otherwise), and their
    /// epochs must not go below the newest in the log. Producer state and the
    /// leader-epoch cache follow the batches, so they travel with the log.
    pub fn append_replicated(
        &self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let config = self.config();
        let request = validate_replicated(batches)?;
        let records: u32 = request
            .iter()
            .map(|b| b.header.record_count.max(0) as u32)
            .sum();
        let mut writer = self.writer.lock();
        self.check_poison()?;
        let log_end = self.log_end_offset();
        let (Some(first), Some(last)) = (request.first(), request.last()) else {
            return Err(StorageError::CorruptBatch {
                index_in_request: 0,
                source: BatchError::Empty,
            });
        };
        if first.header.base_offset != log_end {
            return Err(StorageError::UnexpectedReplicaOffset {
                expected: log_end,
                got: first.header.base_offset,
            });
        }
        // Epochs never go down along the log (batches from before epochs were stamped
        // carry none and are let through), or the cache could not place them.
        let mut latest = self.latest_epoch().unwrap_or(0);
        for epoch in request.iter().map(|b| b.header.partition_leader_epoch) {
            if (0..latest).contains(&epoch) {
                return Err(StorageError::StaleLeaderEpoch { epoch, latest });
            }
            latest = latest.max(epoch);
        }
        let next_offset = last.header.last_offset() + 1;
        let span = next_offset - log_end;
        self.roll_if_needed(&mut writer, &config, batches.len() as u64, span, now_ms)?;
        let stamped: Vec<(usize, BatchHeader)> =
            request.iter().map(|b| (b.start, b.header)).collect();
        let mut pieces = [IoSlice::new(batches)];
        self.commit(
            &mut writer,
            &config,
            &mut pieces,
            batches.len() as u64,
            &stamped,
            now_ms,
        )?;
        Ok(AppendOutcome {
            base_offset: log_end,
            last_offset: next_offset - 1,
            log_append_time: now_ms,
            records,
            duplicate: false,
        })
    }

    /// Writes `pieces` (`len` bytes: the batches of `stamped`, each at its position in the
    /// request, as they will be stored) to the active segment, indexes them, flushes per
    /// policy and publishes them with the leader-epoch cache, producer state, log end
    /// and, for a sole replica, high watermark.
    fn commit(
        &self,
        writer: &mut Writer,
        config: &LogConfig,
        pieces: &mut [IoSlice<'_>],
        len: u64,
        stamped: &[(usize, BatchHeader)],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let segments = self.snapshot();
        let Some(active) = segments.last() else {
            return Err(self.missing_active());
        };
        // A new epoch is checkpointed before its first batch is written: a crash in
        // between leaves an epoch starting past the log end, which opening drops. The
        // other order would leave batches of an epoch the checkpoint does not know, and
        // opening would have to rebuild the whole cache from the log.
        let mut epochs = self.epochs.lock().clone();
        let mut new_epoch = false;
        for (_, header) in stamped {
            new_epoch |= epochs.assign(header.partition_leader_epoch, header.base_offset);
        }
        if new_epoch {
            EPOCH_CHECKPOINT.write(&self.dir, &epochs.to_checkpoint())?;
        }

        let start_position = active.len();
        if let Err(e) = self.write_batches(active, pieces, start_position) {
            return Err(self.poison_with(e));
        }
        let cursor = &mut writer.cursor;
        let mut max_timestamp = NO_TIMESTAMP;
        // Index entries only ever point at bytes that were written.
        {
            let mut index = active.index_mut();
            for (start, header) in stamped {
                max_timestamp = max_timestamp.max(header.max_timestamp);
                cursor.add(
                    &mut index,
                    (header.base_offset - active.base_offset()) as u32,
                    (start_position + *start as u64) as u32,
                    header.max_timestamp,
                    header.total_len() as u64,
                    config.index_interval_bytes,
                );
            }
        }
        writer.unflushed = true;
        writer.appended_seq += 1;
        if config.flush == FlushPolicy::Always {
            if let Err(e) = active.sync() {
                return Err(self.poison_with(e));
            }
            writer.unflushed = false;
            self.mark_synced(writer.appended_seq);
            self.release_synced(active, start_position + len);
        }

        let next_offset = stamped
            .last()
            .map_or(self.log_end_offset(), |(_, h)| h.last_offset() + 1);
        active.publish(start_position + len, next_offset, max_timestamp, now_ms);
        if new_epoch {
            *self.epochs.lock() = epochs;
        }
        self.log_end.store(next_offset, Ordering::Release);
        if config.sole_replica {
            self.high_watermark.store(next_offset, Ordering::Release);
        }
        let mut producers = self.producers.lock();
        for (_, header) in stamped {
            producers.record(header);
        }
        Ok(())
    }

    fn write_batches(
        &self,
        active: &Segment,
        pieces: &mut [IoSlice<'_>],
        position: u64,
    ) -> Result<(), StorageError> {
        #[cfg(any(test, feature = "test-hooks"))]
        if self.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(StorageError::Io {
                path: active.paths().log.clone(),
                op: "write",
                source: std::io::Error::other("injected write failure"),
            });
        }
        active.write_vectored_at(pieces, position)
    }

    /// Rolls before an append of `incoming` bytes and `span` offsets if the active
    /// segment is full, too old, or its indexes or relative offsets would overflow.
    fn roll_if_needed(
        &self,
        writer: &mut Writer,
        config: &LogConfig,
        incoming: u64,
        span: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let segments = self.snapshot();
        let Some(active) = segments.last() else {
            return Err(self.missing_active());
        };
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.len() + incoming > config.effective_segment_bytes();
        let relative_end = self.log_end_offset() + span - active.base_offset();
        let offsets_overflow = relative_end > i64::from(u32::MAX);
        let index_full = active.index().is_full(config.segment_index_bytes);
        if too_big || offsets_overflow || index_full || self.too_old(active, config, now_ms) {
            self.roll(writer)?;
        }
        Ok(())
    }

    pub(crate) fn too_old(&self, active: &Segment, config: &LogConfig, now_ms: i64) -> bool {
        let first = active.first_batch_ms();
        match config.segment_ms {
            Some(ms) if first != NO_TIMESTAMP && !active.is_empty() => {
                now_ms.saturating_sub(first) > i64::try_from(ms).unwrap_or(i64::MAX)
            }
            _ => false,
        }
    }

    /// Closes the active segment (final time entry, indexes and data fsynced) and starts
    /// a new one at the log end offset.
    pub(crate) fn roll(&self, writer: &mut Writer) -> Result<(), StorageError> {
        let segments = self.snapshot();
        let Some(active) = segments.last() else {
            return Err(self.missing_active());
        };
        let sealed = {
            let mut index = active.index_mut();
            writer.cursor.seal(&mut index);
            let paths = active.paths();
            index
                .persist(&paths.index, &paths.time_index, true)
                .and_then(|()| active.sync())
        };
        if let Err(e) = sealed {
            return Err(self.poison_with(e));
        }
        writer.unflushed = false;
        self.mark_synced(writer.appended_seq);
        self.release_synced(active, active.len());
        let base = self.log_end_offset();
        let fresh = Segment::create(&self.dir, base)?;
        if let Err(e) = sync_dir(&self.dir) {
            return Err(self.poison_with(e));
        }
        let mut next: Vec<Arc<Segment>> = segments.iter().cloned().collect();
        next.push(Arc::new(fresh));
        *self.segments.write() = Arc::new(next);
        writer.cursor = IndexCursor::default();
        tracing::debug!(dir = %self.dir.display(), base, "rolled to a new segment");
        Ok(())
    }

    pub(crate) fn missing_active(&self) -> StorageError {
        StorageError::CorruptSegment {
            path: self.dir.clone(),
            reason: "the log has no active segment".into(),
        }
    }
}
