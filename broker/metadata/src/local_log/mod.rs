//! The metadata log of a single node: records in local files, made durable before an
//! append returns, replayed at open, bounded by snapshots.
//!
//! This is the piece a replicated (Raft) log replaces. The contract callers rely on stays
//! the same: a record is validated against the current image, made durable, and only
//! then becomes part of the image callers see; a record that does not apply is never
//! written. With Raft, "durable" becomes "committed by a quorum", and the state machine
//! side ([`MetadataImage::apply`], [`MetadataImage::snapshot`],
//! [`MetadataImage::restore`]) is used as it is here.
//!
//! Order of an append: apply the record to a copy of the image (a rejection ends here,
//! nothing written), write its frame, fsync the file, then publish the copy as the
//! current image. Metadata changes are rare, so one fsync per record costs nothing that
//! matters and means an acknowledged change survives power loss.
//!
//! Snapshots keep the log bounded: once `snapshot_every` records follow the last
//! snapshot, the next append first writes a snapshot of the image (temporary file, fsync,
//! rename, directory fsync), starts a new log file at the next index, and removes the
//! log files and snapshots the new snapshot covers. Open loads the newest snapshot and
//! replays the records after it. Crashes at any step leave a directory that opens to
//! the last acknowledged image: a partly written last frame (a torn tail) is cut, a
//! partly written snapshot is a `.tmp` file that is removed, and log files a snapshot
//! covers are skipped and removed. Damage anywhere else is an error naming the file and
//! byte offset: silently dropping metadata would lose topics.
//!
//! Files, in the directory given to [`LocalMetadataLog::open`]:
//!
//! ```text
//! <first:020>.log       "QVMETLOG" | format u32, then frames:
//!                       length u32 | crc32c u32 (of index and record) | index u64 | record
//! <index:020>.snapshot  "QVMETSNP" | format u32 | index u64 | length u32 | crc32c u32
//!                       | MetadataImage::snapshot bytes
//! ```
//!
//! Integers are little-endian; a record is [`MetadataRecord::encode`]'s JSON.
//!
//! One process owns a directory at a time; this module does not lock it.

mod error;
mod files;
pub mod frame;
mod snapshot_file;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use error::LocalLogError;

use crate::apply::Applied;
use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use files::{list, log_path, remove, snapshot_path, sync_dir};
use frame::{LOG_HEADER, MAX_RECORD_BYTES};

/// How often the log snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLogOptions {
    /// Records after the last snapshot before the next append takes a new one. The log
    /// never holds more than this many records plus one.
    pub snapshot_every: u64,
}

impl Default for LocalLogOptions {
    fn default() -> Self {
        // Metadata records are a few hundred bytes; a thousand replay in milliseconds.
        LocalLogOptions {
            snapshot_every: 1000,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The record's index in the log.
    pub index: u64,
    /// The image with the record applied, now the log's current image.
    pub image: MetadataImage,
    /// What the record changed.
    pub applied: Applied,
}

/// A durable metadata log in one directory.
#[derive(Debug)]
pub struct LocalMetadataLog {
    dir: PathBuf,
    options: LocalLogOptions,
    image: MetadataImage,
    active: File,
    active_path: PathBuf,
    /// Index of the first record the active file holds (or will hold).
    active_first: u64,
    active_len: u64,
    snapshot_index: u64,
    poisoned: Option<String>,
}

impl LocalMetadataLog {
    /// Opens (or creates) the log in `dir` with default options; returns the log and
    /// the image its records give.
    pub fn open(dir: &Path) -> Result<(Self, MetadataImage), LocalLogError> {
        Self::open_with(dir, LocalLogOptions::default())
    }

    /// Opens (or creates) the log in `dir`.
    pub fn open_with(
        dir: &Path,
        options: LocalLogOptions,
    ) -> Result<(Self, MetadataImage), LocalLogError> {
        std::fs::create_dir_all(dir).map_err(|source| LocalLogError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let listing = list(dir)?;
        // A temporary file is a snapshot a crash interrupted; the one before it stands.
        for tmp in &listing.temps {
            remove(tmp)?;
        }
        let (mut image, snapshot_index) = match listing.snapshots.last() {
            Some((index, path)) => (snapshot_file::read(path, *index)?, *index),
            None => (MetadataImage::empty(), 0),
        };

        let mut last_file = None;
        let count = listing.logs.len();
        for (n, (first, path)) in listing.logs.iter().enumerate() {
            let is_last = n + 1 == count;
            let replayed = replay_file(path, *first, is_last, snapshot_index, &mut image)?;
            if is_last {
                last_file = Some((*first, path.clone(), replayed));
            }
        }

        let next = image.last_applied() + 1;
        // The last file stays active if the next record belongs at its end; otherwise
        // (no file yet, or it ends before the snapshot) a new one starts at `next`.
        let (active_first, active_path, active, active_len) = match last_file {
            Some((first, path, replayed)) if replayed.next_index == next => {
                let file = open_append(&path)?;
                (first, path, file, replayed.len)
            }
            _ => {
                let (path, file) = create_log_file(dir, next)?;
                (next, path, file, LOG_HEADER as u64)
            }
        };
        let log = LocalMetadataLog {
            dir: dir.to_path_buf(),
            options,
            image: image.clone(),
            active,
            active_path,
            active_first,
            active_len,
            snapshot_index,
            poisoned: None,
        };
        log.remove_covered()?;
        Ok((log, image))
    }

    /// The current image: every durable record applied.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The index the newest snapshot covers; 0 before the first.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Validates `record` against the current image, makes it durable and applies it.
    /// A record that does not apply returns [`LocalLogError::Rejected`] and is not
    /// written. After a failed write or sync the log refuses further appends
    /// ([`LocalLogError::Poisoned`]) until reopened, because what reached the disk is no
    /// longer known.
    pub fn append(&mut self, record: &MetadataRecord) -> Result<Appended, LocalLogError> {
        self.check_poisoned()?;
        if self.image.last_applied() - self.snapshot_index >= self.options.snapshot_every {
            self.snapshot()?;
        }
        let index = self.image.last_applied() + 1;
        let mut next = self.image.clone();
        let applied = next.apply(index, record)?;
        let payload = record.encode();
        if payload.len() > MAX_RECORD_BYTES {
            return Err(LocalLogError::RecordTooLarge {
                size: payload.len(),
                limit: MAX_RECORD_BYTES,
            });
        }
        let bytes = frame::encode(index, &payload);
        if let Err(e) = self.write_at_end(&bytes) {
            self.poisoned = Some(e.to_string());
            // Best effort: cut what may have been written, so a reopen finds the log as
            // it was. Reopen would cut a torn tail anyway.
            let _ = self.active.set_len(self.active_len);
            return Err(e);
        }
        self.active_len += bytes.len() as u64;
        self.image = next;
        Ok(Appended {
            index,
            image: self.image.clone(),
            applied,
        })
    }

    /// Writes a snapshot of the current image, starts a new log file after it and
    /// removes the files it covers. Returns the index it covers. Appends call this
    /// when `snapshot_every` records have accumulated.
    pub fn snapshot(&mut self) -> Result<u64, LocalLogError> {
        self.check_poisoned()?;
        let index = self.image.last_applied();
        if index > self.snapshot_index {
            snapshot_file::write(&snapshot_path(&self.dir, index), &self.image)?;
            self.snapshot_index = index;
        }
        if self.active_first <= index {
            let (path, file) = create_log_file(&self.dir, index + 1)?;
            self.active = file;
            self.active_path = path;
            self.active_first = index + 1;
            self.active_len = LOG_HEADER as u64;
        }
        self.remove_covered()?;
        Ok(index)
    }

    fn check_poisoned(&self) -> Result<(), LocalLogError> {
        match &self.poisoned {
            Some(reason) => Err(LocalLogError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn write_at_end(&mut self, bytes: &[u8]) -> Result<(), LocalLogError> {
        let io = |action| {
            let path = self.active_path.clone();
            move |source| LocalLogError::Io {
                action,
                path,
                source,
            }
        };
        self.active
            .seek(SeekFrom::Start(self.active_len))
            .map_err(io("seek in"))?;
        self.active.write_all(bytes).map_err(io("append to"))?;
        // The file's length changes with every append; sync_data syncs it with the data.
        self.active.sync_data().map_err(io("sync"))
    }

    /// Removes the log files before the active one, and every snapshot but the newest.
    /// A new file is started only right after a snapshot, so every record before the
    /// active file is covered by the newest snapshot; the check on `active_first` keeps
    /// that true even in a directory this code did not write.
    fn remove_covered(&self) -> Result<(), LocalLogError> {
        let listing = list(&self.dir)?;
        let mut removed = false;
        let covered = self.active_first <= self.snapshot_index + 1;
        for (first, path) in &listing.logs {
            if covered && *first < self.active_first && *path != self.active_path {
                remove(path)?;
                removed = true;
            }
        }
        for (index, path) in &listing.snapshots {
            if *index < self.snapshot_index {
                remove(path)?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// What replaying one log file found.
#[derive(Debug)]
struct Replayed {
    /// Length of the good part (after a torn tail is cut).
    len: u64,
    /// The index a record appended to this file would have.
    next_index: u64,
}

/// Replays the records of one log file after `snapshot_index` into `image`, having
/// cut a torn tail of the last file.
fn replay_file(
    path: &Path,
    first: u64,
    is_last: bool,
    snapshot_index: u64,
    image: &mut MetadataImage,
) -> Result<Replayed, LocalLogError> {
    let bytes = std::fs::read(path).map_err(|source| LocalLogError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |offset: usize, reason: String| LocalLogError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < LOG_HEADER {
        // A crash while a new file was being started leaves it short; only the last
        // file can be new.
        if is_last && frame::header().starts_with(&bytes) {
            rewrite_header(path)?;
            return Ok(Replayed {
                len: LOG_HEADER as u64,
                next_index: first,
            });
        }
        return Err(corrupt(0, "the file is shorter than its header".into()));
    }
    if bytes[..LOG_HEADER] != frame::header() {
        return Err(corrupt(0, "the header is not a metadata log header".into()));
    }
    let scan = frame::scan(&bytes, LOG_HEADER).map_err(|d| corrupt(d.offset, d.reason))?;
    if scan.torn && !is_last {
        // Appends only ever go to the last file, so only it can end in a partial frame.
        return Err(corrupt(
            scan.valid_len,
            "a partial record before the last log file".into(),
        ));
    }
    let mut expected = first;
    for f in &scan.frames {
        let gap = |expected| LocalLogError::IndexGap {
            path: path.to_path_buf(),
            offset: f.offset as u64,
            expected,
            found: f.index,
        };
        if f.index != expected {
            return Err(gap(expected));
        }
        expected += 1;
        if f.index <= snapshot_index {
            continue;
        }
        if f.index != image.last_applied() + 1 {
            return Err(gap(image.last_applied() + 1));
        }
        let replay = |source| LocalLogError::Replay {
            path: path.to_path_buf(),
            offset: f.offset as u64,
            index: f.index,
            source: Box::new(source),
        };
        let record = MetadataRecord::decode(f.record).map_err(replay)?;
        image.apply(f.index, &record).map_err(replay)?;
    }
    if scan.torn {
        cut(path, scan.valid_len as u64)?;
    }
    Ok(Replayed {
        len: scan.valid_len as u64,
        next_index: expected,
    })
}

fn cut(path: &Path, len: u64) -> Result<(), LocalLogError> {
    let io = |action| {
        move |source| LocalLogError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("open"))?;
    file.set_len(len).map_err(io("cut the torn tail of"))?;
    file.sync_all().map_err(io("sync"))
}

fn rewrite_header(path: &Path) -> Result<(), LocalLogError> {
    let io = |action| {
        move |source| LocalLogError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io("open"))?;
    file.write_all(&frame::header()).map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))
}

fn open_append(path: &Path) -> Result<File, LocalLogError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| LocalLogError::Io {
            action: "open",
            path: path.to_path_buf(),
            source,
        })
}

/// Creates the log file for records from `first` on, header written and durable.
fn create_log_file(dir: &Path, first: u64) -> Result<(PathBuf, File), LocalLogError> {
    let path = log_path(dir, first);
    let io = |action| {
        let path = path.clone();
        move |source| LocalLogError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io("create"))?;
    file.write_all(&frame::header()).map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))?;
    sync_dir(dir)?;
    Ok((path, file))
}
