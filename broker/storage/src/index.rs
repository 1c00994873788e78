//! The sparse offset and time indexes of one segment.
//!
//! On disk, `.index` holds entries of (relative offset `u32`, position `u32`) and
//! `.timeindex` entries of (timestamp `i64`, relative offset `u32`), big endian, back to
//! back. An offset entry points at the start of the batch whose base offset is
//! `segment base + relative offset`. A time entry says that every batch up to and
//! including the one at `relative offset` has a max timestamp of at most `timestamp`.
//!
//! Entries are kept in memory for lookups and appended to the files lazily (on flush,
//! roll and close): the active segment's indexes are rebuilt by recovery anyway, and a
//! closed segment's are complete because a roll persists them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::StorageError;

/// Bytes of one `.index` entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes of one `.timeindex` entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// Where the batch at `relative_offset` starts in the `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Batches up to the one at `relative_offset` hold no timestamp above `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Both indexes of a segment, in memory, with how much of each is already on disk.
#[derive(Debug, Default)]
pub(crate) struct SegmentIndex {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    persisted_offsets: usize,
    persisted_times: usize,
}

impl SegmentIndex {
    /// An index whose entries are all already on disk.
    pub(crate) fn persisted(offsets: Vec<OffsetEntry>, times: Vec<TimeEntry>) -> Self {
        SegmentIndex {
            persisted_offsets: offsets.len(),
            persisted_times: times.len(),
            offsets,
            times,
        }
    }

    /// Position to start a forward scan from, to find the batch holding `relative`.
    pub(crate) fn scan_start(&self, relative: u32) -> u64 {
        let after = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative);
        match after.checked_sub(1) {
            Some(i) => u64::from(self.offsets[i].position),
            None => 0,
        }
    }

    /// Relative offset of a batch from which a forward scan finds the first batch whose
    /// max timestamp is `>= timestamp`, or `None` to scan from the segment start.
    pub(crate) fn time_scan_start(&self, timestamp: i64) -> Option<u32> {
        let after = self.times.partition_point(|e| e.timestamp < timestamp);
        after.checked_sub(1).map(|i| self.times[i].relative_offset)
    }

    pub(crate) fn push_offset(&mut self, entry: OffsetEntry) {
        self.offsets.push(entry);
    }

    pub(crate) fn push_time(&mut self, entry: TimeEntry) {
        self.times.push(entry);
    }

    pub(crate) fn last_time(&self) -> Option<TimeEntry> {
        self.times.last().copied()
    }

    /// Whether one more entry of either kind would take its file past `max_bytes`.
    pub(crate) fn is_full(&self, max_bytes: u32) -> bool {
        let max = max_bytes as usize;
        (self.offsets.len() + 1) * OFFSET_ENTRY_LEN > max
            || (self.times.len() + 1) * TIME_ENTRY_LEN > max
    }

    /// Appends the entries not yet on disk to the index files.
    pub(crate) fn persist(
        &mut self,
        index_path: &Path,
        time_path: &Path,
        sync: bool,
    ) -> Result<(), StorageError> {
        let offsets = encode_offsets(&self.offsets[self.persisted_offsets..]);
        append_file(index_path, &offsets, sync)?;
        self.persisted_offsets = self.offsets.len();
        let times = encode_times(&self.times[self.persisted_times..]);
        append_file(time_path, &times, sync)?;
        self.persisted_times = self.times.len();
        Ok(())
    }

    /// Replaces both index files with the in-memory entries.
    pub(crate) fn rewrite(
        &mut self,
        index_path: &Path,
        time_path: &Path,
        sync: bool,
    ) -> Result<(), StorageError> {
        replace_file(index_path, &encode_offsets(&self.offsets), sync)?;
        self.persisted_offsets = self.offsets.len();
        replace_file(time_path, &encode_times(&self.times), sync)?;
        self.persisted_times = self.times.len();
        Ok(())
    }
}

/// Decides where sparse entries go as batches are appended to a segment, so that the
/// append path, recovery and compaction all index the same way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexCursor {
    bytes_since_entry: u64,
    last_batch_relative: Option<u32>,
    max_timestamp: i64,
}

impl Default for IndexCursor {
    fn default() -> Self {
        IndexCursor {
            bytes_since_entry: 0,
            last_batch_relative: None,
            max_timestamp: i64::MIN,
        }
    }
}

impl IndexCursor {
    /// Accounts for the batch at `position`, adding entries to `index` when one is due.
    pub(crate) fn add(
        &mut self,
        index: &mut SegmentIndex,
        relative: u32,
        position: u32,
        max_timestamp: i64,
        batch_len: u64,
        interval: u32,
    ) {
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        if self.bytes_since_entry >= u64::from(interval) {
            index.push_offset(OffsetEntry {
                relative_offset: relative,
                position,
            });
            self.push_time_if_newer(index, relative);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += batch_len;
        self.last_batch_relative = Some(relative);
    }

    /// Adds the segment's final time entry, so a closed segment's newest timestamp is in
    /// its time index.
    pub(crate) fn seal(&self, index: &mut SegmentIndex) {
        if let Some(relative) = self.last_batch_relative {
            self.push_time_if_newer(index, relative);
        }
    }

    fn push_time_if_newer(&self, index: &mut SegmentIndex, relative: u32) {
        let newer = index
            .last_time()
            .is_none_or(|t| self.max_timestamp > t.timestamp && relative > t.relative_offset);
        if newer {
            index.push_time(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: relative,
            });
        }
    }
}

fn append_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StorageError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(StorageError::io(path, "open index"))?;
    if !bytes.is_empty() {
        file.write_all(bytes)
            .map_err(StorageError::io(path, "append to index"))?;
    }
    if sync {
        file.sync_data()
            .map_err(StorageError::io(path, "fsync index"))?;
    }
    Ok(())
}

fn replace_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StorageError> {
    let mut file = File::create(path).map_err(StorageError::io(path, "create index"))?;
    file.write_all(bytes)
        .map_err(StorageError::io(path, "write index"))?;
    if sync {
        file.sync_data()
            .map_err(StorageError::io(path, "fsync index"))?;
    }
    Ok(())
}

pub(crate) fn encode_offsets(entries: &[OffsetEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * OFFSET_ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
    }
    out
}

pub(crate) fn encode_times(entries: &[TimeEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TIME_ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.timestamp.to_be_bytes());
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
    }
    out
}

/// Decodes an `.index` file, checking its size and that entries strictly increase.
pub(crate) fn decode_offsets(bytes: &[u8]) -> Result<Vec<OffsetEntry>, String> {
    if !bytes.len().is_multiple_of(OFFSET_ENTRY_LEN) {
        return Err(format!(
            "size {} is not a multiple of {OFFSET_ENTRY_LEN}",
            bytes.len()
        ));
    }
    let entries: Vec<OffsetEntry> = bytes
        .chunks_exact(OFFSET_ENTRY_LEN)
        .map(|c| OffsetEntry {
            relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    for pair in entries.windows(2) {
        if pair[1].relative_offset <= pair[0].relative_offset
            || pair[1].position <= pair[0].position
        {
            return Err(format!("entries not increasing: {:?}", pair));
        }
    }
    Ok(entries)
}

/// Decodes a `.timeindex` file, checking its size and ordering.
pub(crate) fn decode_times(bytes: &[u8]) -> Result<Vec<TimeEntry>, String> {
    if !bytes.len().is_multiple_of(TIME_ENTRY_LEN) {
        return Err(format!(
            "size {} is not a multiple of {TIME_ENTRY_LEN}",
            bytes.len()
        ));
    }
    let entries: Vec<TimeEntry> = bytes
        .chunks_exact(TIME_ENTRY_LEN)
        .map(|c| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            }
        })
        .collect();
    for pair in entries.windows(2) {
        if pair[1].timestamp < pair[0].timestamp
            || pair[1].relative_offset <= pair[0].relative_offset
        {
            return Err(format!("entries not increasing: {:?}", pair));
        }
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_lookups_use_the_floor() {
        let offsets = vec![
            OffsetEntry {
                relative_offset: 10,
                position: 4096,
            },
            OffsetEntry {
                relative_offset: 20,
                position: 8200,
            },
        ];
        let times = vec![
            TimeEntry {
                timestamp: 100,
                relative_offset: 10,
            },
            TimeEntry {
                timestamp: 200,
                relative_offset: 20,
            },
        ];
        assert_eq!(decode_offsets(&encode_offsets(&offsets)).unwrap(), offsets);
        assert_eq!(decode_times(&encode_times(&times)).unwrap(), times);
        let index = SegmentIndex::persisted(offsets, times);
        assert_eq!(index.scan_start(5), 0);
        assert_eq!(index.scan_start(10), 4096);
        assert_eq!(index.scan_start(19), 4096);
        assert_eq!(index.scan_start(25), 8200);
        assert_eq!(index.time_scan_start(100), None);
        assert_eq!(index.time_scan_start(150), Some(10));
        assert_eq!(index.time_scan_start(201), Some(20));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(decode_offsets(&[1, 2, 3]).is_err());
        let backwards = encode_offsets(&[
            OffsetEntry {
                relative_offset: 5,
                position: 100,
            },
            OffsetEntry {
                relative_offset: 4,
                position: 200,
            },
        ]);
        assert!(decode_offsets(&backwards).is_err());
        assert!(decode_times(&[0; 13]).is_err());
    }
}
