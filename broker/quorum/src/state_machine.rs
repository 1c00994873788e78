//! The Raft state machine: committed entries applied to a [`MetadataImage`].
//!
//! Every voter applies the same entries in the same order, and applying a record is
//! deterministic, so every voter holds the same image at the same index. A record the
//! image refuses (its proposer checked it against an image that has since changed) is
//! refused alike everywhere; it still takes its log index, and the proposer gets the
//! refusal as its answer.
//!
//! The image lives behind an `ArcSwap` the broker reads without waiting; a watch
//! channel carries the last applied log index, so a proposer can wait until its own
//! record is visible locally.
//!
//! A snapshot is the image's own snapshot with Raft's bookkeeping (the last log id it
//! covers and the membership), in the file `raft-snapshot`:
//!
//! ```text
//! {"format":1,"meta":{...openraft SnapshotMeta...},"image":{...MetadataImage::snapshot...}}
//! ```
//!
//! The same bytes go to a follower that is too far behind for the log.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::Mutex;
use quiver_metadata::MetadataImage;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{Entry, Node, NodeId, Outcome, QuorumError, TypeConfig};

const SNAPSHOT_FILE: &str = "raft-snapshot";
/// The format of `raft-snapshot`; bumped when its meaning changes.
const SNAPSHOT_ENVELOPE_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    meta: SnapshotMeta<NodeId, Node>,
    image: serde_json::Value,
}

impl Envelope {
    fn encode(
        meta: &SnapshotMeta<NodeId, Node>,
        image: &MetadataImage,
    ) -> std::io::Result<Vec<u8>> {
        let image: serde_json::Value =
            serde_json::from_slice(&image.snapshot()).map_err(std::io::Error::other)?;
        serde_json::to_vec(&Envelope {
            format: SNAPSHOT_ENVELOPE_FORMAT,
            meta: meta.clone(),
            image,
        })
        .map_err(std::io::Error::other)
    }

    fn decode(bytes: &[u8]) -> Result<(SnapshotMeta<NodeId, Node>, MetadataImage), String> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| format!("not a snapshot document: {e}"))?;
        if envelope.format != SNAPSHOT_ENVELOPE_FORMAT {
            return Err(format!(
                "snapshot format {} is not the format {SNAPSHOT_ENVELOPE_FORMAT} this broker reads",
                envelope.format
            ));
        }
        let image_bytes = serde_json::to_vec(&envelope.image).map_err(|e| e.to_string())?;
        let image = MetadataImage::restore(&image_bytes).map_err(|e| e.to_string())?;
        Ok((envelope.meta, image))
    }
}

#[derive(Debug)]
struct MachineState {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshot: Option<(SnapshotMeta<NodeId, Node>, Vec<u8>)>,
}

/// What the state machine shares with the broker: the image and how far it goes.
#[derive(Debug)]
pub(crate) struct Shared {
    dir: PathBuf,
    pub(crate) image: ArcSwap<MetadataImage>,
    pub(crate) applied_index: watch::Sender<u64>,
    state: Mutex<MachineState>,
}

/// The state machine handed to openraft.
#[derive(Debug, Clone)]
pub(crate) struct StateMachine {
    pub(crate) shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state machine in `dir` from its last snapshot, if any. Blocking.
    pub(crate) fn open(dir: &Path) -> Result<StateMachine, QuorumError> {
        let path = dir.join(SNAPSHOT_FILE);
        let (image, state) = match std::fs::read(&path) {
            Ok(bytes) => {
                let (meta, image) =
                    Envelope::decode(&bytes).map_err(|reason| QuorumError::Storage {
                        path: path.clone(),
                        reason,
                    })?;
                let state = MachineState {
                    last_applied: meta.last_log_id,
                    membership: meta.last_membership.clone(),
                    snapshot: Some((meta, bytes)),
                };
                (image, state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                MetadataImage::empty(),
                MachineState {
                    last_applied: None,
                    membership: StoredMembership::default(),
                    snapshot: None,
                },
            ),
            Err(e) => {
                return Err(QuorumError::Storage {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let index = state.last_applied.map_or(0, |l| l.index);
        Ok(StateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                image: ArcSwap::from_pointee(image),
                applied_index: watch::Sender::new(index),
                state: Mutex::new(state),
            }),
        })
    }
}

impl StateMachine {
    /// Writes `bytes` as the snapshot file (replaced whole), on the blocking pool.
    async fn save(
        &self,
        bytes: &[u8],
        meta: &SnapshotMeta<NodeId, Node>,
    ) -> Result<(), StorageError<NodeId>> {
        let shared = Arc::clone(&self.shared);
        let to_write = bytes.to_vec();
        tokio::task::spawn_blocking(move || {
            quiver_durable::write_atomic(&shared.dir.join(SNAPSHOT_FILE), &to_write)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, image) = {
            let state = self.shared.state.lock();
            let image = self.shared.image.load_full();
            let index = state.last_applied.map_or(0, |l| l.index);
            let id = format!(
                "{}-{index}-{}",
                state.last_applied.map_or(0, |l| l.leader_id.term),
                wall_clock_ms()
            );
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
                snapshot_id: id,
            };
            (meta, image)
        };
        let bytes = Envelope::encode(&meta, &image)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.save(&bytes, &meta).await?;
        self.shared.state.lock().snapshot = Some((meta.clone(), bytes.clone()));
        tracing::debug!(last = ?meta.last_log_id, "metadata snapshot taken");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

/// Milliseconds since the Unix epoch, to make snapshot ids unique; snapshots are built
/// outside `apply`, so reading a clock here keeps applying deterministic.
fn wall_clock_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let state = self.shared.state.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut state = self.shared.state.lock();
        let mut image = MetadataImage::clone(&self.shared.image.load());
        let mut outcomes = Vec::new();
        for entry in entries {
            let outcome = match &entry.payload {
                EntryPayload::Blank => Outcome::NotARecord,
                EntryPayload::Normal(record) => match image.apply(entry.log_id.index, record) {
                    Ok(applied) => Outcome::Applied(applied),
                    Err(refused) => Outcome::Refused(refused),
                },
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Outcome::NotARecord
                }
            };
            state.last_applied = Some(entry.log_id);
            outcomes.push(outcome);
        }
        self.shared.image.store(Arc::new(image));
        let index = state.last_applied.map_or(0, |l| l.index);
        drop(state);
        self.shared.applied_index.send_replace(index);
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let (_, image) = Envelope::decode(&bytes).map_err(|reason| {
            StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(reason))
        })?;
        self.save(&bytes, meta).await?;
        let mut state = self.shared.state.lock();
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some((meta.clone(), bytes));
        self.shared.image.store(Arc::new(image));
        let index = state.last_applied.map_or(0, |l| l.index);
        drop(state);
        self.shared.applied_index.send_replace(index);
        tracing::info!(last = ?meta.last_log_id, "installed a metadata snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .shared
            .state
            .lock()
            .snapshot
            .as_ref()
            .map(|(meta, bytes)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new(bytes.clone())),
            }))
    }
}
