//! Opening a log directory: finding its segments, checking them, repairing what a crash
//! can leave behind, and replaying batch headers into the producer state.
//!
//! Closed segments were fsynced when they rolled, so damage in one is reported as
//! [`StorageError::CorruptSegment`] rather than silently cut. The active segment may end
//! in a torn write: every batch of it is checked by CRC and the file is truncated at the
//! first one that fails.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use quiver_proto::batch::{self, BatchHeader};

use crate::checkpoint::TEMP_SUFFIX;
use crate::config::LogConfig;
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
        let (segment, segment_cursor) = load_segment(dir, base, role, config, &mut |h| {
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
        if checkpoints.contains(&name.as_str()) {
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
pub(crate) fn load_segment(
    dir: &Path,
    base: i64,
    role: SegmentRole,
    config: &LogConfig,
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
    let mut state = SegmentState::empty(base);
    let mut rebuilt = SegmentIndex::default();
    let mut cursor = IndexCursor::default();
    let mut check = match role {
        SegmentRole::Closed => Some(IndexCheck::load(&paths)),
        SegmentRole::Active | SegmentRole::Rewritten => None,
    };
    let mut scan = BatchScan::new(&file, 0, file_len);
    let mut batch_bytes = Vec::new();
    let mut running_max = NO_TIMESTAMP;
    let damage = loop {
        let step = scan
            .next_step()
            .map_err(StorageError::io(&paths.log, "read segment"))?;
        let (position, header) = match step {
            ScanStep::Batch { position, header } => (position, header),
            ScanStep::End => break None,
            ScanStep::Broken { position, reason } => break Some((position, reason.to_string())),
        };
        if header.base_offset < state.next_offset {
            break Some((
                position,
                format!(
                    "batch base offset {} is below the expected {}",
                    header.base_offset, state.next_offset
                ),
            ));
        }
        let Ok(relative) = u32::try_from(header.base_offset - base) else {
            break Some((
                position,
                "batch offset too far from the segment base".into(),
            ));
        };
        let Ok(position32) = u32::try_from(position) else {
            break Some((position, "segment larger than 4 GiB".into()));
        };
        if role == SegmentRole::Active {
            batch_bytes.resize(header.total_len(), 0);
            file.read_exact_at(&mut batch_bytes, position)
                .map_err(StorageError::io(&paths.log, "read segment"))?;
            if let Err(e) = batch::validate_stored(&batch_bytes) {
                break Some((position, e.to_string()));
            }
        }
        running_max = running_max.max(header.max_timestamp);
        if let Some(check) = check.as_mut() {
            check.visit(position, relative, running_max);
        }
        cursor.add(
            &mut rebuilt,
            relative,
            position32,
            header.max_timestamp,
            header.total_len() as u64,
            config.index_interval_bytes,
        );
        visit(&header);
        state.len = position + header.total_len() as u64;
        state.next_offset = header.last_offset() + 1;
        state.max_timestamp = running_max;
        if state.first_batch_ms == NO_TIMESTAMP {
            state.first_batch_ms = header.max_timestamp;
        }
    };

    if let Some((position, reason)) = damage {
        if role != SegmentRole::Active {
            return Err(StorageError::CorruptSegment {
                path: paths.log.clone(),
                reason: format!("closed segment is unreadable at byte {position}: {reason}"),
            });
        }
        tracing::warn!(
            segment = %paths.log.display(),
            position,
            dropped_bytes = file_len - position,
            next_offset = state.next_offset,
            "truncating the torn or corrupt tail of the active segment: {reason}"
        );
        file.set_len(position)
            .map_err(StorageError::io(&paths.log, "truncate torn tail"))?;
        file.sync_all()
            .map_err(StorageError::io(&paths.log, "fsync after truncation"))?;
    } else if state.len != file_len {
        // The scan ends exactly at file_len when nothing is damaged.
        return Err(StorageError::CorruptSegment {
            path: paths.log.clone(),
            reason: format!("scan ended at {} of {file_len} bytes", state.len),
        });
    }

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
    Ok((Segment::assemble(base, paths, file, state, index), cursor))
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
