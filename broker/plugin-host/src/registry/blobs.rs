//! Component bytes stored by their SHA-256: one file per distinct component.
//!
//! A blob is `<dir>/<sha256 hex>.wasm`, written with [`quiver_durable::write_atomic`], so
//! after a crash it is either absent or whole; the `.wasm.tmp` a crash may leave behind
//! is never read (its name is not a blob's) and [`BlobStore::collect_garbage`] removes
//! it. Naming blobs by their hash is what lets every broker of a cluster agree on the
//! bytes of a version from the hash alone, and makes storing the same component twice a
//! no-op. A read checks the bytes against their name, so a damaged file is reported as
//! such instead of running as some other plugin.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::{RegistryError, io};

/// The extension of a stored component.
const EXTENSION: &str = "wasm";

/// The content-addressed component store of one broker.
#[derive(Debug)]
pub(crate) struct BlobStore {
    dir: PathBuf,
    /// Serialises writes and garbage collection: `write_atomic` leaves keeping two
    /// writers of one path apart to its caller, and a collection must not remove the
    /// temporary file of a write in progress.
    writes: Mutex<()>,
}

impl BlobStore {
    /// Opens (or creates, durably) the store in `dir`.
    pub(crate) fn open(dir: PathBuf) -> Result<BlobStore, RegistryError> {
        quiver_durable::create_dir_all_durably(&dir).map_err(io("create", &dir))?;
        Ok(BlobStore {
            dir,
            writes: Mutex::new(()),
        })
    }

    /// Where the blob of `hash` lives (whether or not it exists).
    pub(crate) fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}.{EXTENSION}"))
    }

    /// True when the blob of `hash` is stored. Says nothing of its integrity, which
    /// [`BlobStore::read`] checks.
    pub(crate) fn has(&self, hash: &str) -> bool {
        is_content_hash(hash) && self.path(hash).is_file()
    }

    /// Stores `bytes` under `hash`, which must be their SHA-256. A blob already stored
    /// with the same bytes is left alone; one whose bytes do not match its name (a
    /// damaged file) is replaced.
    pub(crate) fn put(&self, hash: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        check_hash(hash)?;
        let actual = content_hash(bytes);
        if actual != hash {
            return Err(RegistryError::BlobCorrupt {
                hash: hash.to_string(),
                path: self.path(hash),
                reason: format!("the bytes offered have SHA-256 {actual}"),
            });
        }
        let path = self.path(hash);
        let _writes = self.writes.lock();
        match std::fs::read(&path) {
            Ok(stored) if stored == bytes => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("read", &path)(e)),
        }
        quiver_durable::write_atomic(&path, bytes).map_err(io("write", &path))
    }

    /// The bytes of `hash`, checked against it.
    pub(crate) fn read(&self, hash: &str) -> Result<Vec<u8>, RegistryError> {
        check_hash(hash)?;
        let path = self.path(hash);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::BlobMissing {
                    hash: hash.to_string(),
                    path,
                });
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        let actual = content_hash(&bytes);
        if actual != hash {
            return Err(RegistryError::BlobCorrupt {
                hash: hash.to_string(),
                path,
                reason: format!("the stored bytes have SHA-256 {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Every stored blob's hash.
    pub(crate) fn hashes(&self) -> Result<BTreeSet<String>, RegistryError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|(_, hash)| hash)
            .collect())
    }

    /// Removes every blob whose hash the set `keep` returns does not hold, and the
    /// temporary files of writes a crash interrupted. Returns how many blobs were
    /// removed. `keep` runs while writes wait, so a blob its caller records as wanted
    /// before storing it is never removed. The directory is synced once at the end, so
    /// the removals survive a crash together.
    pub(crate) fn collect_garbage(
        &self,
        keep: impl FnOnce() -> BTreeSet<String>,
    ) -> Result<usize, RegistryError> {
        let _writes = self.writes.lock();
        let keep = keep();
        let mut removed = 0;
        let mut changed = false;
        for (path, hash) in self.entries()? {
            let is_blob = match &hash {
                Some(hash) if keep.contains(hash) => continue,
                Some(_) => true,
                // Only the leftovers of interrupted writes; anything else is not ours.
                None if is_temp(&path) => false,
                None => continue,
            };
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("remove", &path)(e)),
            }
            changed = true;
            removed += usize::from(is_blob);
        }
        if changed {
            quiver_durable::sync_dir(&self.dir).map_err(io("sync", &self.dir))?;
        }
        Ok(removed)
    }

    /// Every file of the directory, with its hash when its name is a blob's.
    fn entries(&self) -> Result<Vec<(PathBuf, Option<String>)>, RegistryError> {
        let mut out = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(io("read", &self.dir))? {
            let path = item.map_err(io("read", &self.dir))?.path();
            if !path.is_file() {
                continue;
            }
            let hash = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(&format!(".{EXTENSION}")))
                .filter(|stem| is_content_hash(stem))
                .map(str::to_string);
            out.push((path, hash));
        }
        Ok(out)
    }
}

/// The SHA-256 of `bytes`, as 64 lowercase hex digits: a component's name in the store
/// and in the cluster metadata.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True for 64 lowercase hex digits. Anything else is refused before it becomes part of
/// a path, so a hash from a peer or a record cannot name a file outside the store.
pub fn is_content_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn check_hash(hash: &str) -> Result<(), RegistryError> {
    if is_content_hash(hash) {
        Ok(())
    } else {
        Err(RegistryError::InvalidHash {
            hash: hash.to_string(),
        })
    }
}

fn is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(&format!(".{EXTENSION}.tmp")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path().join("blobs")).expect("opens");
        (dir, store)
    }

    #[test]
    fn a_blob_is_stored_once_under_its_hash_and_read_back() {
        let (_dir, store) = store();
        let hash = content_hash(b"component");
        assert!(!store.has(&hash));
        store.put(&hash, b"component").expect("stores");
        store
            .put(&hash, b"component")
            .expect("storing again is a no-op");
        assert!(store.has(&hash));
        assert_eq!(store.read(&hash).expect("reads"), b"component");
        assert_eq!(store.hashes().expect("lists"), BTreeSet::from([hash]));
    }

    #[test]
    fn garbage_collection_keeps_what_it_is_told_and_removes_the_rest_and_leftovers() {
        let (_dir, store) = store();
        let (live, dead) = (content_hash(b"live"), content_hash(b"dead"));
        store.put(&live, b"live").expect("stores");
        store.put(&dead, b"dead").expect("stores");
        // A crash in the middle of a write, and a file that is not the store's.
        let torn = quiver_durable::temp_path(&store.path(&content_hash(b"torn")));
        std::fs::write(&torn, b"to").expect("torn write");
        let foreign = store.dir.join("README");
        std::fs::write(&foreign, b"not a blob").expect("foreign file");
        assert_eq!(
            store.hashes().expect("lists").len(),
            2,
            "a torn write is no blob"
        );

        let removed = store
            .collect_garbage(|| BTreeSet::from([live.clone()]))
            .expect("collects");
        assert_eq!(removed, 1);
        assert!(store.has(&live) && !store.has(&dead));
        assert!(!torn.exists(), "the leftover is removed");
        assert!(foreign.exists(), "what is not the store's is left alone");
        assert_eq!(
            store
                .collect_garbage(|| BTreeSet::from([live.clone()]))
                .expect("collects"),
            0
        );
    }

    #[test]
    fn bytes_that_do_not_match_the_hash_are_refused() {
        let (_dir, store) = store();
        let hash = content_hash(b"one");
        assert!(matches!(
            store.put(&hash, b"other"),
            Err(RegistryError::BlobCorrupt { .. })
        ));
        assert!(!store.has(&hash));
    }

    #[test]
    fn a_damaged_blob_is_reported_and_replaced_by_the_next_put() {
        let (_dir, store) = store();
        let hash = content_hash(b"component");
        store.put(&hash, b"component").expect("stores");
        std::fs::write(store.path(&hash), b"compo\0ent").expect("damage");
        match store.read(&hash) {
            Err(RegistryError::BlobCorrupt { hash: h, .. }) => assert_eq!(h, hash),
            other => panic!("expected a corrupt blob, got {other:?}"),
        }
        store.put(&hash, b"component").expect("repairs");
        assert_eq!(store.read(&hash).expect("reads"), b"component");
    }

    #[test]
    fn hashes_that_are_not_64_lowercase_hex_digits_never_become_paths() {
        let (_dir, store) = store();
        for bad in ["", "../../etc/passwd", &"A".repeat(64), &"a".repeat(63)] {
            assert!(!store.has(bad));
            assert!(matches!(
                store.read(bad),
                Err(RegistryError::InvalidHash { .. })
            ));
        }
    }
}
