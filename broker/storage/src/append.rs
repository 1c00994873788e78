//! The append path: validate a request, check idempotence, assign offsets, write once,
//! flush per policy, publish to readers; and rolling the active segment.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use quiver_proto::batch::{self, BatchError, BatchHeader};

use crate::config::{FlushPolicy, LogConfig};
use crate::error::StorageError;
use crate::index::IndexCursor;
use crate::log::{AppendOutcome, PartitionLog, Writer};
use crate::producer_state::Verdict;
use crate::segment::{NO_TIMESTAMP, Segment, sync_dir};

/// One batch of a request: where it sits in the request and its header.
#[derive(Debug, Clone, Copy)]
struct RequestBatch {
    start: usize,
    header: BatchHeader,
}

/// Splits and checks every batch of a request before anything is written, so a corrupt
/// batch anywhere means nothing is appended.
fn validate_request(
    batches: &[u8],
    max_batch_bytes: u32,
) -> Result<Vec<RequestBatch>, StorageError> {
    if batches.is_empty() {
        return Err(StorageError::CorruptBatch {
            index_in_request: 0,
            source: BatchError::Empty,
        });
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < batches.len() {
        let index_in_request = out.len();
        let corrupt = |source| StorageError::CorruptBatch {
            index_in_request,
            source,
        };
        let rest = &batches[start..];
        let header = BatchHeader::parse(rest).map_err(corrupt)?;
        let len = header.total_len();
        if len > max_batch_bytes as usize {
            return Err(StorageError::BatchTooLarge {
                size: len,
                max: max_batch_bytes,
            });
        }
        if len > rest.len() {
            return Err(corrupt(BatchError::Truncated {
                needed: len,
                available: rest.len(),
            }));
        }
        let header = batch::validate(&rest[..len]).map_err(corrupt)?;
        // Offsets are assigned densely from the record count; a producer's batch that
        // claims otherwise would make offsets jump.
        if i64::from(header.last_offset_delta) != i64::from(header.record_count) - 1 {
            return Err(corrupt(BatchError::Malformed(
                "last offset delta must be the record count minus one",
            )));
        }
        // The CRC proves the bytes are the producer's; this proves a consumer can read
        // them: the codec decompresses and the records are framed as the header says.
        batch::check_records(&rest[..len]).map_err(corrupt)?;
        out.push(RequestBatch { start, header });
        start += len;
    }
    Ok(out)
}

impl PartitionLog {
    /// Validates every batch in `batches` (back-to-back RecordBatch v2 as a producer sent
    /// them), runs the idempotent-producer checks, assigns offsets, appends with one write
    /// and flushes per policy. A corrupt batch anywhere appends nothing.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendOutcome, StorageError> {
        let config = self.config();
        let request = validate_request(batches, config.max_batch_bytes)?;
        let records: u32 = request.iter().map(|b| b.header.record_count as u32).sum();
        let mut writer = self.writer.lock();
        self.check_poison()?;

        let headers: Vec<BatchHeader> = request.iter().map(|b| b.header).collect();
        if let Verdict::Duplicate(stored) = self.producers.lock().check(&headers)? {
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
        let segments = self.snapshot();
        let Some(active) = segments.last() else {
            return Err(self.missing_active());
        };

        // Each batch's base offset (its first 8 bytes, outside the CRC) is written from
        // a small buffer of its own and the rest straight from the request: the whole
        // request is one vectored write, and its bytes are never copied in memory.
        let base_offset = self.log_end_offset();
        let mut next_offset = base_offset;
        let mut max_timestamp = NO_TIMESTAMP;
        let start_position = active.len();
        let mut stamped = Vec::with_capacity(request.len());
        for b in &request {
            let mut header = b.header;
            header.base_offset = next_offset;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            next_offset = header.last_offset() + 1;
            stamped.push((b.start, header));
        }
        let offsets: Vec<[u8; batch::BASE_OFFSET_LEN]> = stamped
            .iter()
            .map(|(_, header)| header.base_offset.to_be_bytes())
            .collect();
        let mut pieces = Vec::with_capacity(2 * request.len());
        for ((start, header), offset) in stamped.iter().zip(&offsets) {
            pieces.push(IoSlice::new(offset));
            pieces.push(IoSlice::new(
                &batches[start + batch::BASE_OFFSET_LEN..start + header.total_len()],
            ));
        }
        if let Err(e) = self.write_batches(active, &mut pieces, start_position) {
            return Err(self.poison_with(e));
        }
        let cursor = &mut writer.cursor;
        // Index entries only ever point at bytes that were written.
        {
            let mut index = active.index_mut();
            for (start, header) in &stamped {
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
        if config.flush == FlushPolicy::Always {
            if let Err(e) = active.sync() {
                return Err(self.poison_with(e));
            }
            writer.unflushed = false;
        }

        let end_position = start_position + batches.len() as u64;
        active.publish(end_position, next_offset, max_timestamp, now_ms);
        self.log_end.store(next_offset, Ordering::Release);
        self.high_watermark.store(next_offset, Ordering::Release);
        let mut producers = self.producers.lock();
        for (_, header) in &stamped {
            producers.record(header);
        }
        Ok(AppendOutcome {
            base_offset,
            last_offset: next_offset - 1,
            log_append_time: now_ms,
            records,
            duplicate: false,
        })
    }

    fn write_batches(
        &self,
        active: &Segment,
        pieces: &mut [IoSlice<'_>],
        position: u64,
    ) -> Result<(), StorageError> {
        #[cfg(test)]
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
