//! The cleaner: rewrites closed segments through a [`CompactionPolicy`], keeping every
//! surviving record at its original offset.
//!
//! Two passes over the closed segments (the active one is never touched):
//! 1. ask the policy for each record's key and, for every key a batch contests, which of
//!    the two records survives (one call per batch), building key -> winning record;
//! 2. rewrite each closed segment keeping a record when it is its key's winner (or has no
//!    key) and the policy retains it, into `<name>.log.cleaned`, fsynced. A batch left
//!    with no records is dropped, except an idempotent producer's last batch in the
//!    segment, which stays as an empty batch so the producer is still known after a
//!    restart.
//!
//! Only when every segment was rewritten without error are the files renamed over the
//! originals (under the writer lock, briefly) and their indexes rebuilt. A policy error
//! therefore leaves every segment as it was. Appends and reads continue throughout:
//! readers holding an old segment keep reading its unlinked file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use quiver_proto::batch::{self, BatchBuilder, BatchHeader, ProducerIdentity};
use quiver_proto::{Header, Record};

use crate::error::StorageError;
use crate::log::PartitionLog;
use crate::recovery::{CLEANED_SUFFIX, SegmentRole, load_segment};
use crate::segment::{Segment, remove_if_present, sync_dir};

/// A compaction policy failed; the message names the policy and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {policy}: {reason}")]
pub struct PolicyError {
    pub policy: String,
    pub reason: String,
}

impl PolicyError {
    /// An error of the policy named `policy`.
    pub fn new(policy: impl Into<String>, reason: impl Into<String>) -> Self {
        PolicyError {
            policy: policy.into(),
            reason: reason.into(),
        }
    }
}

/// Which of two records with the same key survives compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivor {
    /// Keep the record with the lower offset.
    Older,
    /// Keep the record with the higher offset.
    Newer,
}

/// Decides what compaction keeps. Calls take a whole batch of records so that a Wasm
/// policy crosses its boundary once per batch, not once per record.
pub trait CompactionPolicy {
    /// The compaction key of each record, in order; `None` means the record has no key
    /// and is never replaced by another.
    fn key(&mut self, records: &[Record]) -> Result<Vec<Option<Bytes>>, PolicyError>;
    /// For each pair `(older, newer)` of records with the same key (`older` has the
    /// lower offset), which one survives: one answer per pair, in order. The cleaner
    /// gathers the contested keys of a whole batch into one call.
    fn survivors(&mut self, pairs: &[(&Record, &Record)]) -> Result<Vec<Survivor>, PolicyError>;
    /// Whether each record is kept at all at broker time `now_ms` (expiry, tombstones).
    fn retain(&mut self, records: &[Record], now_ms: i64) -> Result<Vec<bool>, PolicyError>;
}

/// The default policy: the record key is the compaction key, the latest record per key
/// wins, records without a key are kept, and tombstones (no value) are removed once their
/// timestamp is older than `delete_retention_ms`.
#[derive(Debug, Clone, Copy)]
pub struct KeepLatest {
    pub delete_retention_ms: i64,
}

impl CompactionPolicy for KeepLatest {
    fn key(&mut self, records: &[Record]) -> Result<Vec<Option<Bytes>>, PolicyError> {
        Ok(records.iter().map(|r| r.key.clone()).collect())
    }

    fn survivors(&mut self, pairs: &[(&Record, &Record)]) -> Result<Vec<Survivor>, PolicyError> {
        Ok(vec![Survivor::Newer; pairs.len()])
    }

    fn retain(&mut self, records: &[Record], now_ms: i64) -> Result<Vec<bool>, PolicyError> {
        Ok(records
            .iter()
            .map(|r| {
                r.value.is_some() || now_ms.saturating_sub(r.timestamp) <= self.delete_retention_ms
            })
            .collect())
    }
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Closed segments looked at.
    pub segments_examined: usize,
    /// Closed segments replaced by a rewritten file.
    pub segments_rewritten: usize,
    /// Records dropped by the policy or superseded by a newer record with the same key.
    pub records_removed: u64,
    /// Bytes of the examined segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A rewritten segment waiting to be swapped in.
#[derive(Debug)]
struct Cleaned {
    original: Arc<Segment>,
    path: PathBuf,
    len: u64,
}

impl PartitionLog {
    /// Compacts the closed segments through `policy` at broker time `now_ms`. A policy
    /// error returns [`StorageError::Policy`] and changes nothing on disk.
    pub fn compact(
        &self,
        policy: &mut dyn CompactionPolicy,
        now_ms: i64,
    ) -> Result<CompactionOutcome, StorageError> {
        let _cleaner = self.cleaner.lock();
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(CompactionOutcome::default());
        }
        let segments = self.snapshot();
        let closed: Vec<Arc<Segment>> = segments[..segments.len().saturating_sub(1)].to_vec();
        let mut outcome = CompactionOutcome {
            segments_examined: closed.len(),
            ..CompactionOutcome::default()
        };

        let mut winners: HashMap<Bytes, Record> = HashMap::new();
        for segment in &closed {
            for_each_batch(segment, &mut |_, header, records| {
                if header.is_control() || records.is_empty() {
                    return Ok(());
                }
                let keys = checked_len(policy.key(records)?, records.len(), "key")?;
                contest(policy, &mut winners, records, keys)
            })?;
        }

        let mut cleaned = Vec::new();
        let rewritten = closed.iter().try_for_each(|segment| {
            if let Some(c) = rewrite(segment, policy, &winners, now_ms, &mut outcome)? {
                cleaned.push(c);
            }
            Ok::<(), StorageError>(())
        });
        if let Err(e) = rewritten {
            for c in &cleaned {
                remove_if_present(&c.path)?;
            }
            return Err(e);
        }
        self.swap_in(cleaned, &mut outcome)?;
        Ok(outcome)
    }

    /// Renames the rewritten files over their originals and publishes the new segments.
    fn swap_in(
        &self,
        cleaned: Vec<Cleaned>,
        outcome: &mut CompactionOutcome,
    ) -> Result<(), StorageError> {
        let config = self.config();
        let _writer = self.writer.lock();
        for c in cleaned {
            let current = self.snapshot();
            // Retention or truncation may have removed the segment meanwhile.
            let Some(at) = current.iter().position(|s| Arc::ptr_eq(s, &c.original)) else {
                remove_if_present(&c.path)?;
                continue;
            };
            let paths = c.original.paths().clone();
            // Without index files, a crash before they are rewritten makes recovery
            // rebuild them rather than trust entries for the old layout.
            remove_if_present(&paths.index)?;
            remove_if_present(&paths.time_index)?;
            std::fs::rename(&c.path, &paths.log).map_err(StorageError::io(&c.path, "rename"))?;
            sync_dir(&self.dir)?;
            let (segment, _) = load_segment(
                &self.dir,
                c.original.base_offset(),
                SegmentRole::Rewritten,
                &config,
                None,
                &mut |_| {},
            )?;
            let mut next: Vec<Arc<Segment>> = current.iter().cloned().collect();
            next[at] = Arc::new(segment);
            *self.segments.write() = Arc::new(next);
            outcome.segments_rewritten += 1;
            tracing::info!(
                segment = %paths.log.display(),
                before = c.original.len(),
                after = c.len,
                "compacted segment"
            );
        }
        Ok(())
    }
}

/// Settles the records of one batch against the winners so far, with one call to the
/// policy for all the keys they contest. A key that occurs again in the same batch must
/// be settled against the outcome of its earlier occurrence, so such repeats go into a
/// further call (one per repeat; a batch with distinct keys needs one call).
fn contest(
    policy: &mut dyn CompactionPolicy,
    winners: &mut HashMap<Bytes, Record>,
    records: &[Record],
    keys: Vec<Option<Bytes>>,
) -> Result<(), StorageError> {
    let mut pending: Vec<(&Record, Bytes)> = records
        .iter()
        .zip(keys)
        .filter_map(|(record, key)| key.map(|k| (record, k)))
        .collect();
    while !pending.is_empty() {
        // This round takes the first remaining occurrence of each key.
        let mut seen = std::collections::HashSet::new();
        let (round, later): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, key)| seen.insert(key.clone()));
        pending = later;
        let (contested, fresh): (Vec<_>, Vec<_>) = round
            .into_iter()
            .partition(|(_, key)| winners.contains_key(key));
        for (record, key) in fresh {
            winners.insert(key, detached(record));
        }
        if contested.is_empty() {
            continue;
        }
        let answers = {
            let pairs: Vec<(&Record, &Record)> = contested
                .iter()
                .filter_map(|(record, key)| winners.get(key).map(|older| (older, *record)))
                .collect();
            checked_len(policy.survivors(&pairs)?, pairs.len(), "survivors")?
        };
        for ((record, key), answer) in contested.into_iter().zip(answers) {
            if answer == Survivor::Newer {
                winners.insert(key, detached(record));
            }
        }
    }
    Ok(())
}

/// Rewrites one closed segment into `<name>.log.cleaned`; `None` if nothing would change.
fn rewrite(
    segment: &Arc<Segment>,
    policy: &mut dyn CompactionPolicy,
    winners: &HashMap<Bytes, Record>,
    now_ms: i64,
    outcome: &mut CompactionOutcome,
) -> Result<Option<Cleaned>, StorageError> {
    let log = &segment.paths().log;
    let path = PathBuf::from(format!("{}.{CLEANED_SUFFIX}", log.display()));
    let file = File::create(&path).map_err(StorageError::io(&path, "create"))?;
    let mut out = BufWriter::new(file);
    let mut len = 0u64;
    let mut removed = 0u64;
    let last_of_producer = last_batch_of_each_producer(segment)?;
    let result = for_each_batch(segment, &mut |bytes, header, records| {
        // Control batches, and empty ones left by an earlier pass, are kept as they are.
        let keep = if header.is_control() || records.is_empty() {
            vec![true; records.len()]
        } else {
            let keys = checked_len(policy.key(records)?, records.len(), "key")?;
            let retained = checked_len(policy.retain(records, now_ms)?, records.len(), "retain")?;
            records
                .iter()
                .zip(keys)
                .zip(retained)
                .map(|((record, key), retained)| {
                    retained
                        && key.is_none_or(|k| {
                            winners.get(&k).map(|w| w.offset) == Some(record.offset)
                        })
                })
                .collect()
        };
        let kept = keep.iter().filter(|k| **k).count();
        removed += (records.len() - kept) as u64;
        let written = if kept == records.len() {
            // Untouched batches keep their exact bytes: no re-encoding, same CRC.
            bytes.clone()
        } else if kept == 0 {
            // An idempotent producer's last batch here stays as an empty stand-in, so
            // that its sequence numbers survive a restart (producer state is rebuilt
            // from batch headers). A later batch of it in this segment serves as well.
            let last = last_of_producer.get(&header.producer_id) == Some(&header.base_offset);
            if header.producer_id < 0 || !last {
                return Ok(());
            }
            batch::empty_like(header)
        } else {
            rebuild(bytes, header, records, &keep)?
        };
        out.write_all(&written)
            .map_err(StorageError::io(&path, "write"))?;
        len += written.len() as u64;
        Ok(())
    });
    let finished = result.and_then(|()| {
        let file = out
            .into_inner()
            .map_err(|e| StorageError::io(&path, "write")(e.into_error()))?;
        file.sync_data().map_err(StorageError::io(&path, "fsync"))
    });
    if let Err(e) = finished {
        remove_if_present(&path)?;
        return Err(e);
    }
    outcome.bytes_before += segment.len();
    if removed == 0 {
        remove_if_present(&path)?;
        outcome.bytes_after += segment.len();
        return Ok(None);
    }
    outcome.records_removed += removed;
    outcome.bytes_after += len;
    Ok(Some(Cleaned {
        original: Arc::clone(segment),
        path,
        len,
    }))
}

/// Base offset of the last batch of each idempotent producer in a closed segment.
fn last_batch_of_each_producer(segment: &Segment) -> Result<HashMap<i64, i64>, StorageError> {
    let mut last = HashMap::new();
    let mut scan = segment.scan_from(0);
    while let Some((_, header)) = segment.step(&mut scan)? {
        if header.producer_id >= 0 {
            last.insert(header.producer_id, header.base_offset);
        }
    }
    Ok(last)
}

/// Sees one decoded batch: its stored bytes, its header and its records.
type BatchVisitor<'a> = dyn FnMut(&Bytes, &BatchHeader, &[Record]) -> Result<(), StorageError> + 'a;

/// Calls `visit` with the bytes, header and records of every batch of a closed segment.
fn for_each_batch(segment: &Segment, visit: &mut BatchVisitor<'_>) -> Result<(), StorageError> {
    let mut scan = segment.scan_from(0);
    while let Some((position, header)) = segment.step(&mut scan)? {
        let bytes = Bytes::from(segment.read_exact(position, header.total_len())?);
        let records = batch::decode_records(&bytes).map_err(|e| StorageError::CorruptSegment {
            path: segment.paths().log.clone(),
            reason: format!("batch at byte {position} does not decode: {e}"),
        })?;
        visit(&bytes, &header, &records)?;
    }
    Ok(())
}

/// A policy must answer once per record (or pair); anything else is its error, not ours.
fn checked_len<T>(answers: Vec<T>, asked: usize, call: &str) -> Result<Vec<T>, StorageError> {
    if answers.len() != asked {
        return Err(PolicyError::new(
            "compaction",
            format!(
                "{call} returned {} answers where {asked} were asked",
                answers.len()
            ),
        )
        .into());
    }
    Ok(answers)
}

/// A copy of a record that does not keep its whole batch's buffer alive.
fn detached(record: &Record) -> Record {
    let copy = |b: &Option<Bytes>| b.as_ref().map(|b| Bytes::copy_from_slice(b));
    Record {
        offset: record.offset,
        timestamp: record.timestamp,
        key: copy(&record.key),
        value: copy(&record.value),
        headers: record
            .headers
            .iter()
            .map(|h| Header {
                key: h.key.clone(),
                value: copy(&h.value),
            })
            .collect(),
    }
}

/// Re-encodes a batch with only the kept records, each at its original offset, with the
/// original codec, producer identity and leader epoch.
fn rebuild(
    bytes: &Bytes,
    header: &BatchHeader,
    records: &[Record],
    keep: &[bool],
) -> Result<Bytes, StorageError> {
    let mut builder = BatchBuilder::with_capacity(bytes.len());
    for (record, _) in records.iter().zip(keep).filter(|(_, keep)| **keep) {
        let delta = i32::try_from(record.offset - header.base_offset).unwrap_or(i32::MAX);
        builder.push_at(
            delta,
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
    }
    let codec = header
        .compression()
        .map_err(|e| StorageError::CorruptSegment {
            path: PathBuf::new(),
            reason: format!("batch at offset {}: {e}", header.base_offset),
        })?;
    let identity = ProducerIdentity {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
    };
    let mut built = builder
        .build_at(header.base_offset, codec, identity)
        .to_vec();
    batch::set_leader_epoch(&mut built, header.partition_leader_epoch);
    Ok(Bytes::from(built))
}
