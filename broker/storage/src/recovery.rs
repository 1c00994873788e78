//! Opening a log directory: finding its segments, checking them, repairing what a crash
//! can leave behind, and replaying batch headers into the producer state.
//!
//! Every batch of the active segment is checked by CRC; a closed segment's headers are
//! checked, and its CRCs where the headers show damage. Damage with an intact batch
//! after it (in any segment) is kept on disk as a hole ([`DamagedRange`]), never cut:
//! the batches after it were acknowledged. Damage with nothing valid after it is a torn
//! tail: cut in the active segment (a crash during an append), a hole to the segment's
//! end in a closed one (fsynced at roll, so its end was whole).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use quiver_proto::batch::{self, BatchHeader};

use crate::checkpoint::TEMP_SUFFIX;
use crate::config::LogConfig;
use crate::damage::{self, DamagedRange};
use crate::error::StorageError;
use crate::index::{
    IndexCursor, OffsetEntry, SegmentIndex, TimeEntry, decode_offsets, decode_times,
};
use crate::leader_epoch::{EPOCH_CHECKPOINT, EpochRuns};
use crate::producer_state::ProducerStateTable;
use crate::replication::HW_CHECKPOINT;
use crate::scan::{BatchScan, ScanStep};
use crate::segment::{
    NO_TIMESTAMP, Segment, SegmentPaths, SegmentState, remove_if_present, sync_dir,
};

/// Suffix of a compacted segment not yet renamed over its original.
pub(crate) const CLEANED_SUFFIX: &str = "cleaned";

/// What recovery found in a directory.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub producers: ProducerStateTable,
    /// Index cursor of the active (last) segment, for the appends to come.
    pub cursor: IndexCursor,
    /// The leader epochs of the batches, to check or rebuild the leader-epoch cache.
    pub epoch_runs: EpochRuns,
}

/// How much a segment is trusted while loading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentRole {
    /// Fsynced at roll: headers are checked, damage is an error.
    Closed,
    /// May end in a torn write: CRCs are checked and the tail is cut at the first failure.
    Active,
    /// Just written by compaction and fsynced: damage is an error, and its indexes are
    /// built afresh and fsynced.
    Rewritten,
}

/// Opens or creates the log in `dir`.
pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, StorageError> {
    fs::create_dir_all(dir).map_err(StorageError::io(dir, "create log directory"))?;
    let bases = list_segments(dir)?;
    let mut producers = ProducerStateTable::default();
    let mut epoch_runs = EpochRuns::default();
    if bases.is_empty() {
        let segment = Segment::create(dir, 0)?;
        sync_dir(dir)?;
        return Ok(Recovered {
            segments: vec![Arc::new(segment)],
            producers,
            cursor: IndexCursor::default(),
            epoch_runs,
        });
    }
    let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
    let mut cursor = IndexCursor::default();
    for (i, &base) in bases.iter().enumerate() {
        let role = if i + 1 == bases.len() {
            SegmentRole::Active
        } else {
            SegmentRole::Closed
        };
        if let Some(previous) = segments.last()
            && base < previous.next_offset()
        {
            return Err(StorageError::CorruptSegment {
                path: SegmentPaths::new(dir, base).log,
                reason: format!(
                    "base offset {base} overlaps the previous segment, which ends at {}",
                    previous.next_offset()
                ),
            });
        }
        let next_base = bases.get(i + 1).copied();
        let (segment, segment_cursor) =
            load_segment(dir, base, role, config, next_base, &mut |h| {
                producers.record(h);
                epoch_runs.observe(h);
            })?;
        cursor = segment_cursor;
        segments.push(Arc::new(segment));
    }
    Ok(Recovered {
        segments,
        producers,
        cursor,
        epoch_runs,
    })
}

/// Base offsets of the segments in `dir`, ascending. Removes leftovers of interrupted
/// compactions and checkpoint writes, passes over the checkpoints, and ignores, with a
/// warning, files it does not recognise.
fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let entries = fs::read_dir(dir).map_err(StorageError::io(dir, "list log directory"))?;
    for entry in entries {
        let entry = entry.map_err(StorageError::io(dir, "list log directory"))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(CLEANED_SUFFIX) {
            // A compaction died before its rename; the original segment is intact.
            tracing::warn!(file = %path.display(), "removing unfinished compaction output");
            remove_if_present(&path)?;
            continue;
        }
        let checkpoints = [EPOCH_CHECKPOINT.name, HW_CHECKPOINT.name];
        if checkpoints.contains(&name.as_str()) || name == crate::PARTITION_METADATA {
            continue;
        }
        if let Some(stem) = name.strip_suffix(TEMP_SUFFIX)
            && checkpoints.contains(&stem)
        {
            // A checkpoint write died before its rename; the previous checkpoint stands.
            remove_if_present(&path)?;
            continue;
        }
        let Some((stem, extension)) = name.split_once('.') else {
            tracing::warn!(file = %path.display(), "ignoring file that is not a segment");
            continue;
        };
        let parsed = (stem.len() == 20)
            .then(|| stem.parse::<i64>().ok())
            .flatten()
            .filter(|base| *base >= 0);
        match (parsed, extension) {
            (Some(base), "log") => bases.push(base),
            (Some(_), "index" | "timeindex") => {}
            _ => {
                tracing::warn!(file = %path.display(), "ignoring file whose name is not a segment name")
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Loads one segment, repairing it according to its role. `visit` sees every batch kept.
/// `next_base` is the base offset of the segment after this one, if any: offsets a
/// damaged end of a closed segment held run up to it.
pub(crate) fn load_segment(
    dir: &Path,
    base: i64,
    role: SegmentRole,
    config: &LogConfig,
    next_base: Option<i64>,
    visit: &mut dyn FnMut(&BatchHeader),
) -> Result<(Segment, IndexCursor), StorageError> {
    let paths = SegmentPaths::new(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&paths.log)
        .map_err(StorageError::io(&paths.log, "open segment"))?;
    let file_len = file
        .metadata()
        .map_err(StorageError::io(&paths.log, "stat segment"))?
        .len();
    let mut loader = Loader {
        base,
        state: SegmentState::empty(base),
        rebuilt: SegmentIndex::default(),
        cursor: IndexCursor::default(),
        check: match role {
            SegmentRole::Closed => Some(IndexCheck::load(&paths)),
            SegmentRole::Active | SegmentRole::Rewritten => None,
        },
        running_max: NO_TIMESTAMP,
        index_interval_bytes: config.index_interval_bytes,
        visit,
    };
    // Only the active segment may hold unsynced bytes, so only its CRCs are checked up
    // front; a closed segment's are checked where its headers show damage.
    let verify_crc = role == SegmentRole::Active;
    let mut holes: Vec<DamagedRange> = Vec::new();
    let mut from = 0;
    while let Some((position, reason)) = loader.scan(&file, &paths, from, file_len, verify_crc)? {
        if role == SegmentRole::Rewritten {
            return Err(StorageError::CorruptSegment {
                path: paths.log.clone(),
                reason: format!("rewritten segment is unreadable at byte {position}: {reason}"),
            });
        }
        let expected = loader.state.next_offset;
        let resumed = damage::find_intact_batch(&file, position, file_len, expected)
            .map_err(StorageError::io(&paths.log, "read segment"))?;
        match resumed {
            Some(resumed) => {
                // Intact batches follow: they were acknowledged, so they stay, and the
                // damaged bytes become a hole that reads report instead of skipping.
                let hole = DamagedRange {
                    segment: paths.log.clone(),
                    position,
                    end_position: resumed.position,
                    first_offset: expected,
                    next_offset: resumed.header.base_offset,
                    reason,
                };
                report_hole(&hole);
                holes.push(hole);
                from = resumed.position;
            }
            None if role == SegmentRole::Active => {
                // Nothing valid after it: a write torn by a crash, which is cut.
                tracing::warn!(
                    segment = %paths.log.display(),
                    position,
                    dropped_bytes = file_len - position,
                    next_offset = expected,
                    "truncating the torn tail of the active segment: {reason}"
                );
                file.set_len(position)
                    .map_err(StorageError::io(&paths.log, "truncate torn tail"))?;
                file.sync_all()
                    .map_err(StorageError::io(&paths.log, "fsync after truncation"))?;
                break;
            }
            None => {
                // A closed segment was fsynced when it rolled, so its end was whole:
                // the damaged end held offsets up to the next segment's base.
                let hole = DamagedRange {
                    segment: paths.log.clone(),
                    position,
                    end_position: file_len,
                    first_offset: expected,
                    next_offset: next_base.unwrap_or(expected).max(expected),
                    reason,
                };
                report_hole(&hole);
                loader.state.len = file_len;
                loader.state.next_offset = hole.next_offset;
                holes.push(hole);
                break;
            }
        }
    }

    let Loader {
        state,
        mut rebuilt,
        cursor,
        check,
        ..
    } = loader;
    // Entries of an index written before the damage may point into it: rebuild.
    let check = if holes.is_empty() { check } else { None };
    let index = match (role, check.map(IndexCheck::finish)) {
        (_, Some(Ok(index))) => index,
        (SegmentRole::Active, _) => {
            // The active segment's indexes are written lazily, so they are always rebuilt.
            rebuilt.rewrite(&paths.index, &paths.time_index, false)?;
            rebuilt
        }
        (_, problem) => {
            if let Some(Err(problem)) = problem {
                tracing::warn!(segment = %paths.log.display(), "rebuilding index: {problem}");
            }
            cursor.seal(&mut rebuilt);
            rebuilt.rewrite(&paths.index, &paths.time_index, true)?;
            rebuilt
        }
    };
    Ok((
        Segment::assemble(base, paths, file, state, index, holes),
        cursor,
    ))
}

fn report_hole(hole: &DamagedRange) {
    tracing::error!(
        segment = %hole.segment.display(),
        bytes = %format_args!("{}..{}", hole.position, hole.end_position),
        offsets = %format_args!("{}..{}", hole.first_offset, hole.next_offset),
        "damaged batches kept as a hole: reads of these offsets fail until the segment is \
         restored or consumers skip them; the intact batches around it are served: {}",
        hole.reason
    );
}

/// The running state of one segment's load.
struct Loader<'v> {
    base: i64,
    state: SegmentState,
    rebuilt: SegmentIndex,
    cursor: IndexCursor,
    check: Option<IndexCheck>,
    running_max: i64,
    index_interval_bytes: u32,
    visit: &'v mut dyn FnMut(&BatchHeader),
}

impl Loader<'_> {
    /// Scans from `from` to `end`, keeping every sound batch; returns where the bytes
    /// stop being sound, and why, or `None` at a clean end.
    ///
    /// Each batch is kept only once the next one is found sound (or the segment ends):
    /// without CRC checks, a damaged length shows up as garbage where the next batch
    /// should start, so the batch before the garbage must pass its CRC to be kept.
    fn scan(
        &mut self,
        file: &File,
        paths: &SegmentPaths,
        from: u64,
        end: u64,
        verify_crc: bool,
    ) -> Result<Option<(u64, String)>, StorageError> {
        let mut scan = BatchScan::new(file, from, end);
        let mut pending: Option<(u64, BatchHeader)> = None;
        let damage = loop {
            let step = scan
                .next_step()
                .map_err(StorageError::io(&paths.log, "read segment"))?;
            match step {
                ScanStep::Batch { position, header } => {
                    let expected = pending
                        .as_ref()
                        .map_or(self.state.next_offset, |(_, h)| h.last_offset() + 1);
                    if let Some(reason) =
                        self.unsound(file, paths, position, &header, expected, verify_crc)?
                    {
                        break Some((position, reason));
                    }
                    if let Some((p, h)) = pending.replace((position, header)) {
                        self.keep(p, &h);
                    }
                }
                ScanStep::End => break None,
                ScanStep::Broken { position, reason } => {
                    break Some((position, reason.to_string()));
                }
                // Recovery's scans are given no holes; they find them.
                ScanStep::Hole { position } => break Some((position, "damaged".into())),
            }
        };
        if let Some((p, h)) = pending {
            if damage.is_some() && !verify_crc {
                let bytes = read_batch(file, paths, p, &h)?;
                if let Err(e) = batch::validate_stored(&bytes) {
                    return Ok(Some((p, e.to_string())));
                }
            }
            self.keep(p, &h);
        }
        Ok(damage)
    }

    /// Why the batch at `position` cannot be kept, if it cannot.
    fn unsound(
        &self,
        file: &File,
        paths: &SegmentPaths,
        position: u64,
        header: &BatchHeader,
        expected: i64,
        verify_crc: bool,
    ) -> Result<Option<String>, StorageError> {
        if header.base_offset < expected {
            return Ok(Some(format!(
                "batch base offset {} is below the expected {expected}",
                header.base_offset
            )));
        }
        if u32::try_from(header.base_offset - self.base).is_err() {
            return Ok(Some("batch offset too far from the segment base".into()));
        }
        if u32::try_from(position).is_err() {
            return Ok(Some("segment larger than 4 GiB".into()));
        }
        if verify_crc {
            let bytes = read_batch(file, paths, position, header)?;
            if let Err(e) = batch::validate_stored(&bytes) {
                return Ok(Some(e.to_string()));
            }
        }
        Ok(None)
    }

    /// Adds a sound batch to the segment's state, indexes and the caller's visitor.
    fn keep(&mut self, position: u64, header: &BatchHeader) {
        // `unsound` checked that both fit.
        let relative = u32::try_from(header.base_offset - self.base).unwrap_or(u32::MAX);
        let position32 = u32::try_from(position).unwrap_or(u32::MAX);
        self.running_max = self.running_max.max(header.max_timestamp);
        if let Some(check) = self.check.as_mut() {
            check.visit(position, relative, self.running_max);
        }
        self.cursor.add(
            &mut self.rebuilt,
            relative,
            position32,
            header.max_timestamp,
            header.total_len() as u64,
            self.index_interval_bytes,
        );
        (self.visit)(header);
        self.state.len = position + header.total_len() as u64;
        self.state.next_offset = header.last_offset() + 1;
        self.state.max_timestamp = self.running_max;
        if self.state.first_batch_ms == NO_TIMESTAMP {
            self.state.first_batch_ms = header.max_timestamp;
        }
    }
}

fn read_batch(
    file: &File,
    paths: &SegmentPaths,
    position: u64,
    header: &BatchHeader,
) -> Result<Vec<u8>, StorageError> {
    let mut bytes = vec![0; header.total_len()];
    file.read_exact_at(&mut bytes, position)
        .map_err(StorageError::io(&paths.log, "read segment"))?;
    Ok(bytes)
}

/// Checks a closed segment's index files against the batches actually in its log.
#[derive(Debug)]
struct IndexCheck {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    next_offset_entry: usize,
    next_time_entry: usize,
    problem: Option<String>,
}

impl IndexCheck {
    fn load(paths: &SegmentPaths) -> IndexCheck {
        let mut problem = None;
        let mut read = |path: &Path| match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                problem.get_or_insert(format!("{} unreadable: {e}", path.display()));
                Vec::new()
            }
        };
        let offset_bytes = read(&paths.index);
        let time_bytes = read(&paths.time_index);
        let offsets = decode_offsets(&offset_bytes).unwrap_or_else(|e| {
            problem.get_or_insert(format!("{}: {e}", paths.index.display()));
            Vec::new()
        });
        let times = decode_times(&time_bytes).unwrap_or_else(|e| {
            problem.get_or_insert(format!("{}: {e}", paths.time_index.display()));
            Vec::new()
        });
        IndexCheck {
            offsets,
            times,
            next_offset_entry: 0,
            next_time_entry: 0,
            problem,
        }
    }

    /// Called for every batch in order with the max timestamp of batches so far.
    fn visit(&mut self, position: u64, relative: u32, running_max: i64) {
        if self.problem.is_some() {
            return;
        }
        if let Some(e) = self.offsets.get(self.next_offset_entry) {
            if u64::from(e.position) < position {
                self.problem = Some(format!("entry {e:?} does not point at a batch"));
                return;
            }
            if u64::from(e.position) == position {
                if e.relative_offset != relative {
                    self.problem = Some(format!("entry {e:?} names the wrong offset"));
                    return;
                }
                self.next_offset_entry += 1;
            }
        }
        if let Some(e) = self.times.get(self.next_time_entry) {
            if e.relative_offset < relative {
                self.problem = Some(format!("time entry {e:?} does not point at a batch"));
                return;
            }
            if e.relative_offset == relative {
                if e.timestamp != running_max {
                    self.problem = Some(format!("time entry {e:?} disagrees with the log"));
                    return;
                }
                self.next_time_entry += 1;
            }
        }
    }

    fn finish(self) -> Result<SegmentIndex, String> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        if self.next_offset_entry < self.offsets.len() || self.next_time_entry < self.times.len() {
            return Err("entries point past the end of the log".into());
        }
        Ok(SegmentIndex::persisted(self.offsets, self.times))
    }
}
