//! Compaction: latest record per key at its original offset; a failing policy changes
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;
use quiver_proto::Record;
use quiver_proto::batch::ProducerIdentity;
use quiver_storage::{
    CleanupPolicy, CompactionPolicy, KeepLatest, LogConfig, PartitionLog, PolicyError,
    StorageError, Survivor,
};

use crate::common::{Rec, build, read_all, segment_files, small_config};

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup: CleanupPolicy::Compact,
        segment_bytes: 600,
        ..small_config()
    }
}

/// A record as stored: offset, key, value.
type Stored = (i64, Option<Vec<u8>>, Vec<u8>);

/// Base offset of the active segment, from the newest `.log` file name.
fn active_base(dir: &Path) -> i64 {
    let logs = segment_files(dir, "log");
    let name = logs
        .last()
        .unwrap()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    name.parse().unwrap()
}

/// Appends 60 batches of 3 records over 7 keys, with a keyless record every 50 offsets.
fn keyed_log(dir: &Path) -> (PartitionLog, Vec<Stored>) {
    let log = PartitionLog::open(dir, compact_config()).unwrap();
    let mut all = Vec::new();
    for i in 0..60i64 {
        let records: Vec<Rec> = (0..3)
            .map(|j| {
                let offset = i * 3 + j;
                let key = (offset % 50 != 0).then(|| format!("k{}", offset % 7).into_bytes());
                let value = format!("v{offset}").into_bytes();
                all.push((offset, key.clone(), value.clone()));
                (key, Some(value), offset)
            })
            .collect();
        log.append(&build(&records, ProducerIdentity::NONE), 0)
            .unwrap();
    }
    (log, all)
}

fn summary(records: &[Record]) -> Vec<Stored> {
    records
        .iter()
        .map(|r| {
            (
                r.offset,
                r.key.as_ref().map(|k| k.to_vec()),
                r.value.as_ref().map(|v| v.to_vec()).unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn compaction_keeps_exactly_the_latest_per_key_at_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (log, all) = keyed_log(dir.path());
    let active = active_base(dir.path());
    assert!(log.segment_count() > 5);

    let mut latest_closed: HashMap<Vec<u8>, i64> = HashMap::new();
    for (offset, key, _) in all.iter().filter(|r| r.0 < active) {
        if let Some(key) = key {
            latest_closed.insert(key.clone(), *offset);
        }
    }
    let expected: Vec<_> = all
        .iter()
        .filter(|(offset, key, _)| {
            *offset >= active || key.as_ref().is_none_or(|k| latest_closed[k] == *offset)
        })
        .cloned()
        .collect();

    let mut policy = KeepLatest {
        delete_retention_ms: 1_000_000,
    };
    let outcome = log.compact(&mut policy, 1000).unwrap();
    assert_eq!(outcome.records_removed as usize, all.len() - expected.len());
    assert!(outcome.segments_rewritten > 0);
    assert!(outcome.bytes_after < outcome.bytes_before);
    assert_eq!(summary(&read_all(&log)), expected);
    assert!(segment_files(dir.path(), "cleaned").is_empty());

    // A second pass finds nothing to do; appends and reads carry on.
    assert_eq!(log.compact(&mut policy, 1000).unwrap().records_removed, 0);
    let next = log
        .append(
            &build(
                &[(Some(b"k1".to_vec()), Some(b"new".to_vec()), 5)],
                ProducerIdentity::NONE,
            ),
            0,
        )
        .unwrap();
    assert_eq!(next.base_offset, 180);
    drop(log);

    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    let mut after_reopen = expected.clone();
    after_reopen.push((180, Some(b"k1".to_vec()), b"new".to_vec()));
    assert_eq!(summary(&read_all(&log)), after_reopen);
    // Every surviving offset is still found by a read at exactly that offset.
    for (offset, _, value) in &after_reopen {
        let read = log.read(*offset, 1).unwrap();
        let records = quiver_proto::batch::decode_records(&read.bytes).unwrap();
        let found = records.iter().find(|r| r.offset == *offset).unwrap();
        assert_eq!(found.value.as_deref(), Some(&value[..]));
    }
}

#[test]
fn tombstones_go_once_older_than_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    log.append(
        &build(
            &[(Some(b"a".to_vec()), Some(b"1".to_vec()), 100)],
            ProducerIdentity::NONE,
        ),
        0,
    )
    .unwrap();
    log.append(
        &build(&[(Some(b"a".to_vec()), None, 200)], ProducerIdentity::NONE),
        0,
    )
    .unwrap();
    log.append(
        &build(
            &[(Some(b"b".to_vec()), Some(b"2".to_vec()), 300)],
            ProducerIdentity::NONE,
        ),
        0,
    )
    .unwrap();
    // Force the records into closed segments.
    let mut config = compact_config();
    config.segment_bytes = 1;
    log.set_config(config);
    log.append(
        &build(
            &[(None, Some(b"tail".to_vec()), 400)],
            ProducerIdentity::NONE,
        ),
        0,
    )
    .unwrap();

    let mut policy = KeepLatest {
        delete_retention_ms: 1000,
    };
    log.compact(&mut policy, 1100).unwrap();
    let kept: Vec<_> = read_all(&log)
        .iter()
        .map(|r| (r.offset, r.value.clone()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (1, None),
            (2, Some(Bytes::from_static(b"2"))),
            (3, Some(Bytes::from_static(b"tail")))
        ]
    );

    log.compact(&mut policy, 1201).unwrap();
    let kept: Vec<_> = read_all(&log).iter().map(|r| r.offset).collect();
    assert_eq!(kept, vec![2, 3]);
    assert_eq!(
        log.log_start_offset(),
        0,
        "an emptied segment keeps its place"
    );
    assert_eq!(log.read(0, 10).unwrap().next_offset, 3);
}

/// Delegates to [`KeepLatest`] but fails on the n-th call to `retain`.
struct FailingPolicy {
    inner: KeepLatest,
    retain_calls_left: usize,
}

impl CompactionPolicy for FailingPolicy {
    fn key(&mut self, records: &[Record]) -> Result<Vec<Option<Bytes>>, PolicyError> {
        self.inner.key(records)
    }
    fn survivors(&mut self, pairs: &[(&Record, &Record)]) -> Result<Vec<Survivor>, PolicyError> {
        self.inner.survivors(pairs)
    }
    fn retain(&mut self, records: &[Record], now_ms: i64) -> Result<Vec<bool>, PolicyError> {
        if self.retain_calls_left == 0 {
            return Err(PolicyError::new("failing", "trapped"));
        }
        self.retain_calls_left -= 1;
        self.inner.retain(records, now_ms)
    }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_failing_policy_changes_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = keyed_log(dir.path());
    log.flush().unwrap();
    let before = files(dir.path());
    let records = read_all(&log);
    // Fail in the second pass after several segments were already rewritten.
    for calls in [0, 12] {
        let mut policy = FailingPolicy {
            inner: KeepLatest {
                delete_retention_ms: 0,
            },
            retain_calls_left: calls,
        };
        let err = log.compact(&mut policy, 0).unwrap_err();
        assert!(
            matches!(err, StorageError::Policy(ref e) if e.policy == "failing"),
            "{err}"
        );
        assert_eq!(files(dir.path()), before);
        assert_eq!(read_all(&log), records);
    }
}

/// A batch of keyed records `(key, value)` from idempotent producer `pid`.
fn keyed_from(pid: i64, sequence: i32, records: &[(&str, &str)]) -> Bytes {
    let records: Vec<Rec> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec()), 7))
        .collect();
    build(
        &records,
        ProducerIdentity {
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: sequence,
        },
    )
}

#[test]
fn a_producer_whose_last_batch_was_compacted_away_is_still_known_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    // Producer 7 writes three keys in two batches; producer 8 then overwrites all three,
    // so compaction removes every record producer 7 ever wrote.
    log.append(&keyed_from(7, 0, &[("a", "7a"), ("b", "7b")]), 0)
        .unwrap();
    let last = log.append(&keyed_from(7, 2, &[("c", "7c")]), 0).unwrap();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        log.append(&keyed_from(8, i as i32, &[(key, "8")]), 0)
            .unwrap();
    }
    // Filler by a third producer until all of the above sit in closed segments.
    let mut sequence = 0;
    while active_base(dir.path()) <= 4 {
        log.append(
            &keyed_from(9, sequence, &[("filler", "xxxxxxxxxxxxxxxxxxxxxxxx")]),
            0,
        )
        .unwrap();
        sequence += 1;
    }
    let before = log.producer_state(7).unwrap();

    let outcome = log
        .compact(
            &mut KeepLatest {
                delete_retention_ms: 1_000_000,
            },
            1000,
        )
        .unwrap();
    assert!(outcome.records_removed >= 3);
    let values: Vec<_> = read_all(&log)
        .iter()
        .filter_map(|r| r.value.clone())
        .collect();
    assert!(
        values.iter().all(|v| !v.starts_with(b"7")),
        "producer 7's records are gone"
    );
    // A look-up by time steps over the empty batch to producer 8's first record.
    assert_eq!(log.offset_for_timestamp(7).unwrap(), Some((3, 7)));
    log.close().unwrap();

    // Reopened, the log rebuilds producer state from batch headers: the emptied last
    // batch still carries producer 7's sequence range and offsets. (Its first batch went
    // entirely, so a retry of that one could no longer be recognised; it is long
    // acknowledged by then.)
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    let after = log.producer_state(7).expect("producer 7 is still known");
    assert_eq!(after.epoch, before.epoch);
    assert_eq!(after.batches.last(), before.batches.last());
    let retry = log.append(&keyed_from(7, 2, &[("c", "7c")]), 0).unwrap();
    assert!(
        retry.duplicate,
        "a retry of the last batch is still recognised"
    );
    assert_eq!(retry.base_offset, last.base_offset);
    let next = log.append(&keyed_from(7, 3, &[("d", "7d")]), 0).unwrap();
    assert!(!next.duplicate);
    // Reads step over the empty batch; the new record is there.
    let all = read_all(&log);
    assert!(all.iter().any(|r| r.value.as_deref() == Some(&b"7d"[..])));
    assert!(all.iter().all(|r| r.offset != last.base_offset));
}

/// Delegates to [`KeepLatest`], counting the survivor calls and the pairs in each.
struct CountingPolicy {
    inner: KeepLatest,
    pairs_per_call: Vec<usize>,
    wrong_length: bool,
}

impl CompactionPolicy for CountingPolicy {
    fn key(&mut self, records: &[Record]) -> Result<Vec<Option<Bytes>>, PolicyError> {
        self.inner.key(records)
    }
    fn survivors(&mut self, pairs: &[(&Record, &Record)]) -> Result<Vec<Survivor>, PolicyError> {
        self.pairs_per_call.push(pairs.len());
        for (older, newer) in pairs {
            assert_eq!(older.key, newer.key);
            assert!(older.offset < newer.offset);
        }
        let mut answers = self.inner.survivors(pairs)?;
        if self.wrong_length {
            answers.pop();
        }
        Ok(answers)
    }
    fn retain(&mut self, records: &[Record], now_ms: i64) -> Result<Vec<bool>, PolicyError> {
        self.inner.retain(records, now_ms)
    }
}

#[test]
fn survivors_are_asked_once_per_batch_of_contested_keys() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    // Batch 0 brings keys a..e (nothing contested); batches 1..=4 each rewrite all five;
    // batch 5 has key `a` three times, which must be settled one after the other.
    let keyed = |round: usize, keys: &[&str]| -> Bytes {
        let records: Vec<Rec> = keys
            .iter()
            .map(|k| {
                let value = format!("{k}{round}").into_bytes();
                (Some(k.as_bytes().to_vec()), Some(value), 1)
            })
            .collect();
        build(&records, ProducerIdentity::NONE)
    };
    for round in 0..5 {
        log.append(&keyed(round, &["a", "b", "c", "d", "e"]), 0)
            .unwrap();
    }
    log.append(&keyed(5, &["a", "x", "a", "a"]), 0).unwrap();
    while active_base(dir.path()) < 29 {
        log.append(&keyed(9, &["filler"]), 0).unwrap();
    }
    let mut policy = CountingPolicy {
        inner: KeepLatest {
            delete_retention_ms: i64::MAX,
        },
        pairs_per_call: Vec::new(),
        wrong_length: false,
    };
    log.compact(&mut policy, 0).unwrap();
    let filler_calls = policy.pairs_per_call.len() - 7;
    assert_eq!(
        policy.pairs_per_call[..7],
        [5, 5, 5, 5, 1, 1, 1],
        "one call per batch, and one per repeat of a key within a batch"
    );
    assert!(policy.pairs_per_call[7..].iter().all(|n| *n == 1));
    assert!(filler_calls > 0);
    let survivors: Vec<_> = read_all(&log)
        .iter()
        .filter(|r| r.key.as_deref() != Some(&b"filler"[..]))
        .map(|r| (r.key.clone().unwrap(), r.value.clone().unwrap()))
        .collect();
    let expect = |k: &str, v: &str| (Bytes::from(k.to_string()), Bytes::from(v.to_string()));
    assert_eq!(
        survivors,
        vec![
            expect("b", "b4"),
            expect("c", "c4"),
            expect("d", "d4"),
            expect("e", "e4"),
            expect("x", "x5"),
            expect("a", "a5"),
        ]
    );

    // An answer short of the pairs asked is the policy's error, and changes nothing.
    let before = read_all(&log);
    log.append(&keyed(6, &["b", "c"]), 0).unwrap();
    while active_base(dir.path()) < log.log_end_offset() - 1 {
        log.append(&keyed(9, &["filler"]), 0).unwrap();
    }
    let mut policy = CountingPolicy {
        inner: KeepLatest {
            delete_retention_ms: i64::MAX,
        },
        pairs_per_call: Vec::new(),
        wrong_length: true,
    };
    let err = log.compact(&mut policy, 0).unwrap_err();
    assert!(
        matches!(err, StorageError::Policy(ref e) if e.reason.contains("survivors")),
        "{err}"
    );
    assert_eq!(read_all(&log)[..before.len()], before[..]);
}
