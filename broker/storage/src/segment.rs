//! One segment: a `.log` file of batches back to back, named by its base offset, with
//! its sparse indexes.
//!
//! A segment is shared by the writer and any number of readers through `Arc<Segment>`.
//! Readers use positional reads bounded by `committed`, which the writer raises only after
//! a write completes, so they never see a partly written batch and never take a lock that
//! an append holds across its write or fsync.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use quiver_proto::batch::BatchHeader;

use crate::damage::DamagedRange;
use crate::error::StorageError;
use crate::index::SegmentIndex;
use crate::scan::{BatchScan, ScanStep};

/// Marks a timestamp that is not known yet (an empty segment).
pub(crate) const NO_TIMESTAMP: i64 = i64::MIN;

/// File name of a segment file: the base offset, 20 digits, then the extension.
pub(crate) fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// The `.log`, `.index` and `.timeindex` paths of the segment at `base_offset`.
#[derive(Debug, Clone)]
pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
}

impl SegmentPaths {
    pub(crate) fn new(dir: &Path, base_offset: i64) -> Self {
        SegmentPaths {
            log: dir.join(file_name(base_offset, "log")),
            index: dir.join(file_name(base_offset, "index")),
            time_index: dir.join(file_name(base_offset, "timeindex")),
        }
    }
}

/// What a reader collected from one segment.
#[derive(Debug)]
pub(crate) struct Collected {
    /// Whole batches, back to back.
    pub bytes: Bytes,
    /// Last offset of the last batch in `bytes`.
    pub last_offset: i64,
    /// True when the scan stopped for the byte budget or the high watermark rather than
    /// because the segment ended.
    pub stopped_early: bool,
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    paths: SegmentPaths,
    file: File,
    /// Bytes readers may see: every batch below it is whole and, under
    /// `FlushPolicy::Always`, fsynced.
    committed: AtomicU64,
    /// Offset after the last batch; the base offset while empty.
    next_offset: AtomicI64,
    /// Largest batch max timestamp, for retention and timestamp lookups.
    max_timestamp: AtomicI64,
    /// When the first batch arrived, for rolling by age: the broker clock when appended in
    /// this process, the batch's max timestamp when recovered.
    first_batch_ms: AtomicI64,
    index: RwLock<SegmentIndex>,
    /// Position (page-aligned) below which the page cache was asked to drop this file's
    /// pages; see [`Segment::release_cache_below`].
    pub(crate) released_below: AtomicU64,
    /// Damaged ranges recovery kept, in position order; fixed for the segment's life.
    holes: Vec<DamagedRange>,
}

/// One step of a read over a segment that may hold damaged ranges.
pub(crate) enum ReadStep<'s> {
    Batch(u64, BatchHeader),
    Hole(&'s DamagedRange),
}

/// The page size cache releases round to.
const PAGE: u64 = 4096;
/// Least number of bytes one [`Segment::release_cache_below`] call releases.
const RELEASE_STEP: u64 = 1 << 20;

impl Segment {
    /// Creates an empty segment, replacing stale files of the same base offset.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Segment, StorageError> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&paths.log)
            .map_err(StorageError::io(&paths.log, "create segment"))?;
        for stale in [&paths.index, &paths.time_index] {
            remove_if_present(stale)?;
        }
        Ok(Segment::assemble(
            base_offset,
            paths,
            file,
            SegmentState::empty(base_offset),
            SegmentIndex::default(),
            Vec::new(),
        ))
    }

    /// Wraps an already validated file.
    pub(crate) fn assemble(
        base_offset: i64,
        paths: SegmentPaths,
        file: File,
        state: SegmentState,
        index: SegmentIndex,
        holes: Vec<DamagedRange>,
    ) -> Segment {
        Segment {
            base_offset,
            paths,
            file,
            committed: AtomicU64::new(state.len),
            next_offset: AtomicI64::new(state.next_offset),
            max_timestamp: AtomicI64::new(state.max_timestamp),
            first_batch_ms: AtomicI64::new(state.first_batch_ms),
            index: RwLock::new(index),
            released_below: AtomicU64::new(0),
            holes,
        }
    }

    /// Damaged ranges recovery kept in this segment.
    pub(crate) fn holes(&self) -> &[DamagedRange] {
        &self.holes
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn paths(&self) -> &SegmentPaths {
        &self.paths
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Committed length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Largest timestamp in the segment, or [`NO_TIMESTAMP`] when empty.
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn first_batch_ms(&self) -> i64 {
        self.first_batch_ms.load(Ordering::Acquire)
    }

    pub(crate) fn index(&self) -> RwLockReadGuard<'_, SegmentIndex> {
        self.index.read()
    }

    pub(crate) fn index_mut(&self) -> RwLockWriteGuard<'_, SegmentIndex> {
        self.index.write()
    }

    /// Makes the bytes written so far visible to readers. Only the writer calls this, after
    /// its write (and fsync, if the policy wants one) completed.
    pub(crate) fn publish(&self, len: u64, next_offset: i64, max_timestamp: i64, now_ms: i64) {
        if self.first_batch_ms() == NO_TIMESTAMP {
            self.first_batch_ms.store(now_ms, Ordering::Release);
        }
        let max = self.max_timestamp().max(max_timestamp);
        self.max_timestamp.store(max, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.committed.store(len, Ordering::Release);
    }

    /// Lowers the committed length before the file is cut, so readers stop short of it.
    pub(crate) fn retract(&self, len: u64) {
        self.committed.fetch_min(len, Ordering::AcqRel);
    }

    /// Writes `pieces` back to back from `position`, in as few positional writes as
    /// the kernel's limit on pieces per call and short writes allow.
    pub(crate) fn write_vectored_at(
        &self,
        mut pieces: &mut [std::io::IoSlice<'_>],
        mut position: u64,
    ) -> Result<(), StorageError> {
        // Well under IOV_MAX (1024 on Linux).
        const PIECES_PER_CALL: usize = 512;
        let failed = |e| StorageError::io(&self.paths.log, "write")(e);
        while !pieces.is_empty() {
            let n = pieces.len().min(PIECES_PER_CALL);
            match rustix::io::pwritev(&self.file, &pieces[..n], position) {
                Ok(0) => return Err(failed(std::io::ErrorKind::WriteZero.into())),
                Ok(written) => {
                    position += written as u64;
                    std::io::IoSlice::advance_slices(&mut pieces, written);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(failed(e.into())),
            }
        }
        Ok(())
    }

    /// Asks the kernel to drop the cached pages of this file below `position`, all of
    /// which the caller has fsynced (pages not yet written out would be skipped anyway,
    /// never lost). Only whole pages, and only once at least [`RELEASE_STEP`] more
    /// are due, so a stream of small fsyncs costs no syscall each; reads of released
    /// data still work, from the disk.
    pub(crate) fn release_cache_below(&self, position: u64) {
        let target = position & !(PAGE - 1);
        let from = self.released_below.load(Ordering::Acquire);
        if target < from.saturating_add(RELEASE_STEP) {
            return;
        }
        // One caller per range: a concurrent one that lost the race has nothing to do.
        if self
            .released_below
            .compare_exchange(from, target, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let advice = rustix::fs::fadvise(
            &self.file,
            from,
            std::num::NonZeroU64::new(target - from),
            rustix::fs::Advice::DontNeed,
        );
        if let Err(e) = advice {
            // Advice: failing costs memory, not data.
            tracing::debug!(log = %self.paths.log.display(), error = %e, "page cache not released");
        }
    }

    /// fsyncs the log file's data.
    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(StorageError::io(&self.paths.log, "fsync"))
    }

    /// Reads `len` bytes at `position`, straight into fresh memory: a fetch reads
    /// megabytes, and zero-filling them first would cost as much as the read.
    pub(crate) fn read_exact(&self, position: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = position + buf.len() as u64;
            match rustix::io::pread(&self.file, rustix::buffer::spare_capacity(&mut buf), at) {
                Ok(0) => {
                    let short = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{len} bytes at {position} asked, the file ends first"),
                    );
                    return Err(StorageError::io(&self.paths.log, "read")(short));
                }
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(StorageError::io(&self.paths.log, "read")(e.into())),
            }
        }
        Ok(buf)
    }

    /// A header scan over the committed bytes from `position`.
    pub(crate) fn scan_from(&self, position: u64) -> BatchScan<'_> {
        BatchScan::new(&self.file, position, self.len()).passing(&self.holes)
    }

    /// Next step of a scan over committed bytes, where a broken batch means damage.
    pub(crate) fn step(
        &self,
        scan: &mut BatchScan<'_>,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        match scan
            .next_step()
            .map_err(StorageError::io(&self.paths.log, "read"))?
        {
            ScanStep::Batch { position, header } => Ok(Some((position, header))),
            ScanStep::End => Ok(None),
            ScanStep::Broken { position, reason } => Err(StorageError::CorruptSegment {
                path: self.paths.log.clone(),
                reason: format!("batch at byte {position} is unreadable: {reason}"),
            }),
            ScanStep::Hole { position } => Err(self.hole_at(position).error(self.dir())),
        }
    }

    /// Next step of a read, which passes damaged ranges to its caller to decide.
    pub(crate) fn read_step(
        &self,
        scan: &mut BatchScan<'_>,
    ) -> Result<Option<ReadStep<'_>>, StorageError> {
        match scan
            .next_step()
            .map_err(StorageError::io(&self.paths.log, "read"))?
        {
            ScanStep::Hole { position } => Ok(Some(ReadStep::Hole(self.hole_at(position)))),
            ScanStep::Batch { position, header } => Ok(Some(ReadStep::Batch(position, header))),
            ScanStep::End => Ok(None),
            ScanStep::Broken { position, reason } => Err(StorageError::CorruptSegment {
                path: self.paths.log.clone(),
                reason: format!("batch at byte {position} is unreadable: {reason}"),
            }),
        }
    }

    fn hole_at(&self, position: u64) -> &DamagedRange {
        // The scan reports only positions taken from `self.holes`.
        let at = self.holes.partition_point(|h| h.position < position);
        &self.holes[at.min(self.holes.len().saturating_sub(1))]
    }

    fn dir(&self) -> &Path {
        self.paths.log.parent().unwrap_or(Path::new("."))
    }

    /// Position of the first batch whose last offset is `>= offset`, if any.
    pub(crate) fn locate(&self, offset: i64) -> Result<Option<u64>, StorageError> {
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let start = self.index().scan_start(relative);
        let mut scan = self.scan_from(start);
        while let Some(step) = self.read_step(&mut scan)? {
            match step {
                ReadStep::Batch(position, header) if header.last_offset() >= offset => {
                    return Ok(Some(position));
                }
                ReadStep::Hole(hole) if hole.next_offset > offset => {
                    return Err(hole.error(self.dir()));
                }
                ReadStep::Batch(..) | ReadStep::Hole(_) => {}
            }
        }
        Ok(None)
    }

    /// Whole batches from `position` while they stay below `high_watermark` and within
    /// `budget` bytes; the first batch is taken even when larger if `at_least_one`.
    pub(crate) fn collect(
        &self,
        position: u64,
        high_watermark: i64,
        budget: usize,
        at_least_one: bool,
    ) -> Result<Option<Collected>, StorageError> {
        let mut scan = self.scan_from(position);
        let mut position = position;
        let mut end = position;
        let mut last_offset = None;
        let mut stopped_early = false;
        while let Some(step) = self.read_step(&mut scan)? {
            let (at, header) = match step {
                ReadStep::Batch(at, header) => (at, header),
                ReadStep::Hole(hole) if hole.first_offset == hole.next_offset => {
                    // Garbage that held no offsets: what follows continues the log, but
                    // the bytes returned must be contiguous, so a read that has batches
                    // ends here and one that has none starts after it.
                    if last_offset.is_some() {
                        stopped_early = true;
                        break;
                    }
                    position = hole.end_position;
                    end = position;
                    continue;
                }
                ReadStep::Hole(hole) => {
                    if last_offset.is_none() {
                        return Err(hole.error(self.dir()));
                    }
                    // The batches before the damage are returned; the next read, at the
                    // hole's first offset, reports it.
                    stopped_early = true;
                    break;
                }
            };
            let taken = (end - position) as usize;
            let fits = taken + header.total_len() <= budget || (taken == 0 && at_least_one);
            if header.last_offset() >= high_watermark || !fits {
                stopped_early = true;
                break;
            }
            end = at + header.total_len() as u64;
            last_offset = Some(header.last_offset());
        }
        let Some(last_offset) = last_offset else {
            return Ok(None);
        };
        let bytes = self.read_exact(position, (end - position) as usize)?;
        Ok(Some(Collected {
            bytes: Bytes::from(bytes),
            last_offset,
            stopped_early,
        }))
    }

    /// The first batch below `high_watermark` whose max timestamp is `>= timestamp`.
    pub(crate) fn first_batch_at_time(
        &self,
        timestamp: i64,
        high_watermark: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let start = match self.index().time_scan_start(timestamp) {
            Some(relative) => self
                .locate(self.base_offset + i64::from(relative))?
                .unwrap_or(0),
            None => 0,
        };
        let mut scan = self.scan_from(start);
        while let Some(step) = self.read_step(&mut scan)? {
            // A timestamp lookup passes over damage: it asks for a position, not data.
            let ReadStep::Batch(position, header) = step else {
                continue;
            };
            if header.last_offset() >= high_watermark {
                return Ok(None);
            }
            if header.max_timestamp >= timestamp {
                return Ok(Some((position, header)));
            }
        }
        Ok(None)
    }

    /// Deletes the segment's files. Readers holding the segment keep reading the open file.
    pub(crate) fn remove_files(&self) -> Result<(), StorageError> {
        for path in [&self.paths.log, &self.paths.index, &self.paths.time_index] {
            remove_if_present(path)?;
        }
        Ok(())
    }
}

/// The mutable facts about a segment, as found by recovery or set at creation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentState {
    pub len: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub first_batch_ms: i64,
}

impl SegmentState {
    pub(crate) fn empty(base_offset: i64) -> Self {
        SegmentState {
            len: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            first_batch_ms: NO_TIMESTAMP,
        }
    }
}

pub(crate) fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::Io {
            path: path.to_path_buf(),
            op: "remove",
            source: e,
        }),
    }
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    quiver_durable::sync_dir(dir).map_err(StorageError::io(dir, "fsync directory"))
}
