//! Allocation of idempotent producer ids that are never reused across restarts.
//!
//! Ids are handed out from blocks; the end of the current block is persisted before any
//! id in it is given, so after a crash the broker starts past every id it may have used.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::BrokerError;

const BLOCK: i64 = 1000;

/// Hands out producer ids.
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    /// (next id to give, end of the persisted block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub fn open(data_dir: &Path) -> Result<Self, BrokerError> {
        let path = data_dir.join("meta").join("producer-id-block");
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|_| {
                BrokerError::Internal(format!(
                    "{} does not hold a number; remove it to restart allocation",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(BrokerError::Internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(ProducerIds {
            path,
            state: Mutex::new((start, start)),
        })
    }

    /// A fresh producer id.
    pub fn next(&self) -> Result<i64, BrokerError> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            let end = state.0 + BLOCK;
            persist(&self.path, end)
                .map_err(|e| BrokerError::Internal(format!("cannot persist producer ids: {e}")))?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

fn persist(path: &Path, end: i64) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        quiver_durable::create_dir_all_durably(dir)?;
    }
    // The block end must survive a crash once ids from it are handed out, so the
    // directory is synced after the rename too.
    quiver_durable::write_atomic(path, end.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_reused_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let a = ids.next().expect("id");
        let b = ids.next().expect("id");
        assert_ne!(a, b);
        let again = ProducerIds::open(dir.path()).expect("reopen");
        assert!(again.next().expect("id") > b);
    }

    #[test]
    fn a_torn_temporary_block_from_a_crash_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = ProducerIds::open(dir.path()).expect("open");
        let a = ids.next().expect("id");
        // A crash while persisting the next block: only its temporary file was written.
        let block = dir.path().join("meta").join("producer-id-block");
        std::fs::write(quiver_durable::temp_path(&block), b"20").expect("torn write");
        let again = ProducerIds::open(dir.path()).expect("reopen");
        assert!(again.next().expect("id") > a);
        assert!(!quiver_durable::temp_path(&block).exists());
    }
}
