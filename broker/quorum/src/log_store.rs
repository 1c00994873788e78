//! The Raft log of one voter, on local disk.
//!
//! Two files in the quorum directory:
//!
//! - `raft-log`: the entries, framed as the single-node metadata log frames its records
//!   (length, CRC-32C, index, then the entry as JSON), appended and fsynced before Raft
//!   is told they are durable. A torn tail (a crash during an append) is cut at open;
//!   damage with good frames after it is an error, not something to skip.
//! - `raft-state`: the vote, the last committed log id and the last purged log id, one
//!   small JSON document replaced whole ([`quiver_durable::write_atomic`]).
//!
//! The entries are also held in memory: the metadata log is small, a snapshot bounds it,
//! and readers (replication to followers) then never touch the disk. Truncation (a new
//! leader overwriting entries this voter had not committed) cuts the file at the first
//! removed frame; a purge (after a snapshot) rewrites the file with what remains.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::File;
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::{Mutex, RwLock};
use quiver_metadata::local_log::frame;
use serde::{Deserialize, Serialize};

use crate::{Entry, NodeId, QuorumError, TypeConfig};

const LOG_FILE: &str = "raft-log";
const STATE_FILE: &str = "raft-state";

/// What a voter must remember across restarts besides its entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HardState {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

/// The open log file and where each entry's frame starts in it.
#[derive(Debug)]
struct LogFile {
    file: File,
    offsets: BTreeMap<u64, u64>,
    len: u64,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    entries: RwLock<BTreeMap<u64, Entry>>,
    /// Only locked on the blocking pool: appends fsync under it.
    file: Mutex<LogFile>,
    state: Mutex<HardState>,
}

/// The log store handed to openraft; clones share one log.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    shared: Arc<Shared>,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl LogStore {
    /// Opens the log in `dir`, creating it when absent. Blocking.
    pub(crate) fn open(dir: &Path) -> Result<LogStore, QuorumError> {
        let storage = |what: &str, e: &dyn std::fmt::Display| QuorumError::Storage {
            path: dir.to_path_buf(),
            reason: format!("{what}: {e}"),
        };
        quiver_durable::create_dir_all_durably(dir).map_err(|e| storage("create", &e))?;
        let state_path = dir.join(STATE_FILE);
        let state: HardState = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| storage("raft-state is not a valid state document", &e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HardState::default(),
            Err(e) => return Err(storage("read raft-state", &e)),
        };
        let log_path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&log_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                quiver_durable::write_atomic(&log_path, &frame::header())
                    .map_err(|e| storage("create raft-log", &e))?;
                frame::header().to_vec()
            }
            Err(e) => return Err(storage("read raft-log", &e)),
        };
        if bytes.len() < frame::LOG_HEADER || bytes[..frame::LOG_HEADER] != frame::header() {
            return Err(storage(
                "raft-log",
                &"the file does not start with a Quiver log header",
            ));
        }
        let scan = frame::scan(&bytes, frame::LOG_HEADER).map_err(|d| {
            storage(
                "raft-log is damaged",
                &format!("at byte {}: {}", d.offset, d.reason),
            )
        })?;
        let purged = state.last_purged.map_or(0, |l| l.index);
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut previous: Option<u64> = None;
        for f in &scan.frames {
            let entry: Entry = serde_json::from_slice(f.record).map_err(|e| {
                storage(
                    "raft-log",
                    &format!("entry {} does not decode: {e}", f.index),
                )
            })?;
            if entry.log_id.index != f.index || previous.is_some_and(|p| p + 1 != f.index) {
                return Err(storage(
                    "raft-log",
                    &format!("entry {} is out of sequence", f.index),
                ));
            }
            previous = Some(f.index);
            offsets.insert(f.index, f.offset as u64);
            // A crash between saving the purge point and rewriting the file leaves
            // purged entries in it: they are dropped here, as the purge meant.
            if state.last_purged.is_none() || f.index > purged {
                entries.insert(f.index, entry);
            }
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(|e| storage("open raft-log", &e))?;
        if scan.torn {
            tracing::warn!(path = %log_path.display(), kept = scan.valid_len, "cutting a torn tail off the raft log");
            file.set_len(scan.valid_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| storage("cut the torn tail of raft-log", &e))?;
        }
        Ok(LogStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                entries: RwLock::new(entries),
                file: Mutex::new(LogFile {
                    file,
                    offsets,
                    len: scan.valid_len as u64,
                }),
                state: Mutex::new(state),
            }),
        })
    }

    /// Changes the hard state and writes it before returning.
    async fn save_state(&self, change: impl FnOnce(&mut HardState)) -> std::io::Result<()> {
        let shared = Arc::clone(&self.shared);
        let bytes = {
            let mut state = shared.state.lock();
            change(&mut state);
            serde_json::to_vec(&*state).map_err(io_error)?
        };
        blocking(move || quiver_durable::write_atomic(&shared.dir.join(STATE_FILE), &bytes)).await
    }

    /// The number of entries held (not purged); for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shared.entries.read().len()
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_error(format!("a storage task failed: {e}")))?
}

/// Appends `entries` to the end of the log file, fsyncs, then makes them readable.
/// Blocking.
fn write_entries(shared: &Shared, entries: Vec<Entry>) -> std::io::Result<()> {
    let mut file = shared.file.lock();
    let mut buf = Vec::new();
    let mut at = file.len;
    let mut placed = Vec::with_capacity(entries.len());
    for e in &entries {
        let json = serde_json::to_vec(e).map_err(io_error)?;
        let frame = frame::encode(e.log_id.index, &json);
        placed.push((e.log_id.index, at));
        at += frame.len() as u64;
        buf.extend_from_slice(&frame);
    }
    file.file.write_all(&buf)?;
    file.file.sync_data()?;
    file.len = at;
    file.offsets.extend(placed);
    let mut map = shared.entries.write();
    for e in entries {
        map.insert(e.log_id.index, e);
    }
    Ok(())
}

fn write_error(e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self
            .shared
            .entries
            .read()
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id = self.shared.state.lock().last_purged;
        let last_log_id = self
            .shared
            .entries
            .read()
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.save_state(|s| s.vote = Some(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.shared.state.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.save_state(|s| s.committed = committed)
            .await
            .map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.shared.state.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let shared = Arc::clone(&self.shared);
        let result = blocking(move || write_entries(&shared, entries)).await;
        let failed = result.as_ref().err().map(io_error);
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(write_error(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            let mut file = shared.file.lock();
            shared.entries.write().split_off(&log_id.index);
            if let Some(&offset) = file.offsets.get(&log_id.index) {
                file.file.set_len(offset)?;
                file.file.sync_all()?;
                file.len = offset;
                file.offsets.split_off(&log_id.index);
            }
            Ok(())
        })
        .await
        .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // The purge point is saved first: a crash before the rewrite leaves entries in
        // the file that open then drops.
        self.save_state(|s| s.last_purged = Some(log_id))
            .await
            .map_err(write_error)?;
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            let mut file = shared.file.lock();
            let kept = {
                let mut map = shared.entries.write();
                *map = map.split_off(&(log_id.index + 1));
                map.values().cloned().collect::<Vec<_>>()
            };
            let mut bytes = frame::header().to_vec();
            let mut offsets = BTreeMap::new();
            for e in &kept {
                offsets.insert(e.log_id.index, bytes.len() as u64);
                let json = serde_json::to_vec(e).map_err(io_error)?;
                bytes.extend(frame::encode(e.log_id.index, &json));
            }
            let path = shared.dir.join(LOG_FILE);
            quiver_durable::write_atomic(&path, &bytes)?;
            file.file = std::fs::OpenOptions::new().append(true).open(&path)?;
            file.len = bytes.len() as u64;
            file.offsets = offsets;
            Ok(())
        })
        .await
        .map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use quiver_metadata::{MetadataRecord, RegisterBroker};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetadataRecord::RegisterBroker(RegisterBroker {
                broker_id: 1,
                listener: format!("127.0.0.1:{index}"),
                incarnation: index,
                peer_listener: None,
            })),
        }
    }

    /// The file work of `append`, without the flush callback only a running Raft has.
    async fn append(store: &mut LogStore, entries: Vec<Entry>) {
        write_entries(&store.shared, entries).expect("append");
    }

    #[tokio::test]
    async fn entries_vote_and_commit_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        append(&mut store, (1..=5).map(|i| entry(1, i)).collect()).await;
        let vote = Vote::new_committed(1, 1);
        store.save_vote(&vote).await.expect("vote");
        store
            .save_committed(Some(LogId::new(CommittedLeaderId::new(1, 1), 4)))
            .await
            .expect("commit");
        drop(store);
        let mut again = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(again.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(
            again
                .read_committed()
                .await
                .expect("committed")
                .map(|l| l.index),
            Some(4)
        );
        let got = again.try_get_log_entries(2..4).await.expect("read");
        assert_eq!(got, vec![entry(1, 2), entry(1, 3)]);
        let state = again.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id.map(|l| l.index), Some(5));
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_damage_before_good_frames_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        append(&mut store, (1..=3).map(|i| entry(1, i)).collect()).await;
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let whole = bytes.len();
        bytes.truncate(whole - 5);
        std::fs::write(&path, &bytes).expect("tear");
        let mut torn = LogStore::open(dir.path()).expect("a torn tail is a crash, not damage");
        let state = torn.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id.map(|l| l.index), Some(2));
        append(&mut torn, vec![entry(1, 3), entry(1, 4)]).await;
        drop(torn);
        // A flipped byte in the first frame, with good frames after it.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[frame::LOG_HEADER + frame::FRAME_HEADER + 3] ^= 0xff;
        std::fs::write(&path, &bytes).expect("damage");
        let err = LogStore::open(dir.path()).expect_err("damage");
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[tokio::test]
    async fn truncate_and_purge_keep_the_file_and_memory_in_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        append(&mut store, (1..=10).map(|i| entry(1, i)).collect()).await;
        store
            .truncate(LogId::new(CommittedLeaderId::new(1, 1), 8))
            .await
            .expect("truncate");
        append(&mut store, vec![entry(2, 8)]).await;
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 3))
            .await
            .expect("purge");
        assert_eq!(store.len(), 5);
        drop(store);
        let mut again = LogStore::open(dir.path()).expect("reopen");
        let state = again.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id, Some(entry(2, 8).log_id));
        let got = again.try_get_log_entries(..).await.expect("read");
        let indexes: Vec<u64> = got.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![4, 5, 6, 7, 8]);
        assert_eq!(got.last(), Some(&entry(2, 8)));
    }
}
