//! The QUIC stateless-reset key, kept in the data dir so that it outlives the process.
//!
//! QUIC lets a server end a connection it no longer knows (after a restart, say) with a
//! stateless reset: a packet carrying a token that only the server could have issued for
//! that connection id. quinn derives each token with an HMAC keyed by this key; with a
//! new random key at every start, a restarted broker's resets carry tokens the clients
//! never saw, they ignore them, and each client waits out its idle timeout (30 s)
//! before it reconnects. Keeping the key makes a restart visible to clients at the
//! first packet they send.
//!
//! The file `<data>/tls/stateless-reset.key` holds [`RESET_KEY_BYTES`] random bytes,
//! owner-only, written atomically and durably. A file of any other length is damage
//! (the write is atomic, so only something outside the broker makes one): it is
//! replaced with a fresh key and a warning rather than refused, because the key is not
//! a secret anyone configured and losing it costs only this one restart's fast
//! reconnect. A file that cannot be read at all is an error: the data dir is not usable.
//!
//! The key is sensitive in one way: whoever holds it can forge resets that cut off the
//! broker's clients, hence owner-only like the TLS private key beside it.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::tls::TlsError;

/// Bytes of key: HMAC-SHA256 takes a key up to its 64-byte block without hashing it.
pub const RESET_KEY_BYTES: usize = 64;

/// The key file's name inside `<data>/tls`.
pub const RESET_KEY_FILE: &str = "stateless-reset.key";

/// A loaded stateless-reset key. Its `Debug` does not print the bytes.
pub struct ResetKey([u8; RESET_KEY_BYTES]);

impl ResetKey {
    /// The key bytes, for [`quiver_quic::server_endpoint`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ResetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetKey(..)")
    }
}

/// Where the key of the broker with data dir `data_dir` lives.
pub fn reset_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join(RESET_KEY_FILE)
}

/// Loads the key from the data dir, creating it on first start and replacing a damaged
/// one (see the module docs).
pub fn load_or_create(data_dir: &Path) -> Result<ResetKey, TlsError> {
    let path = reset_key_path(data_dir);
    let fail = |source| TlsError::ResetKey {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => match <[u8; RESET_KEY_BYTES]>::try_from(bytes.as_slice()) {
            Ok(key) => return Ok(ResetKey(key)),
            Err(_) => tracing::warn!(
                path = %path.display(),
                len = bytes.len(),
                expected = RESET_KEY_BYTES,
                "the stateless-reset key file is damaged; replacing it (clients of the previous \
                 run reconnect after their idle timeout this once)"
            ),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let mut key = [0u8; RESET_KEY_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| fail(std::io::Error::other(e)))?;
    if let Some(dir) = path.parent() {
        quiver_durable::create_dir_all_durably(dir).map_err(fail)?;
    }
    quiver_durable::write_atomic_private(&path, &key).map_err(fail)?;
    Ok(ResetKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_owner_only_once_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(data.path()).expect("create");
        let path = reset_key_path(data.path());
        let on_disk = std::fs::read(&path).expect("written");
        assert_eq!(on_disk, first.as_bytes());
        let mode = std::fs::metadata(&path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!quiver_durable::temp_path(&path).exists());
        let again = load_or_create(data.path()).expect("reload");
        assert_eq!(
            again.as_bytes(),
            first.as_bytes(),
            "the stored key is reused"
        );
        assert_ne!(first.as_bytes(), &[0u8; RESET_KEY_BYTES][..]);
    }

    #[test]
    fn a_torn_or_empty_key_file_is_replaced_with_a_whole_fresh_key() {
        let data = tempfile::tempdir().expect("tempdir");
        let original = load_or_create(data.path()).expect("create");
        let path = reset_key_path(data.path());
        for damaged in [
            &original.as_bytes()[..10],
            &[][..],
            &[1u8; RESET_KEY_BYTES + 1][..],
        ] {
            std::fs::write(&path, damaged).expect("damage the key");
            let replaced = load_or_create(data.path()).expect("replaced, not refused");
            let on_disk = std::fs::read(&path).expect("rewritten");
            assert_eq!(on_disk.len(), RESET_KEY_BYTES);
            assert_eq!(
                on_disk,
                replaced.as_bytes(),
                "the new key is the stored one"
            );
            assert_ne!(replaced.as_bytes(), original.as_bytes());
            let again = load_or_create(data.path()).expect("reload");
            assert_eq!(again.as_bytes(), replaced.as_bytes(), "and it is kept");
        }
    }

    #[test]
    fn an_unreadable_key_path_is_an_error_naming_it() {
        let data = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: reading it fails, and nothing is lost by
        // refusing to start rather than deleting what the operator put there.
        std::fs::create_dir_all(reset_key_path(data.path())).expect("a directory");
        let err = load_or_create(data.path()).expect_err("unreadable");
        assert!(err.to_string().contains(RESET_KEY_FILE), "{err}");
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let key = ResetKey([0xab; RESET_KEY_BYTES]);
        assert_eq!(format!("{key:?}"), "ResetKey(..)");
    }
}
