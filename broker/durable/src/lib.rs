//! Replacing a small file so that a crash leaves either the old content or the new, whole.
//!
//! Quiver keeps its metadata (the topic catalog, the producer-id block, the dev TLS
//! identity, stored plugins and their metadata) in small files that are rewritten whole.
//! [`write_atomic`] does that in the one order that survives a crash at any point:
//!
//! 1. Write the new bytes to `<name>.tmp` **in the same directory**. A rename is atomic
//!    only within one filesystem; a temporary file elsewhere (say `/tmp`) could sit on
//!    another one, where the rename would fail or degrade to a copy that a crash can tear.
//! 2. `fsync` the temporary file, so its content is on disk before any name points at it.
//!    Without this, the rename may reach the disk before the data, and a crash leaves the
//!    target name on an empty or partial file.
//! 3. Rename it over the target. Readers see the old file or the new one, never a mix.
//! 4. `fsync` the directory. The rename is a change to the directory, not to the file:
//!    until the directory is synced, a crash may forget it and bring the old file back
//!    (or, for a first write, no file at all) even though the write returned success.
//!
//! A crash between the steps leaves a `<name>.tmp` behind; the next write removes it
//! first and starts over, so a leftover never breaks anything and never lends its
//! permissions to the new file. [`remove_durably`] is the same last step for deletion.
//!
//! What this is not: a log or a database. It suits files that are small and rewritten
//! whole; appending to a segment log is `broker/storage`'s business. [`write_atomic`]
//! does not create missing parent directories ([`create_dir_all_durably`] does, and syncs
//! each new one into its parent), and nothing here serialises writers: two processes or
//! threads writing the same path at once must be kept apart by the caller.
//!
//! Errors are `std::io::Error`s of the underlying kind whose message names the step
//! and the path (a [`PathError`] inside, which `get_ref` and `downcast` can reach), such
//! as `cannot fsync /data/meta/topics.json.tmp: Input/output error`.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("producer-id-block");
//! quiver_durable::write_atomic(&path, b"1000").unwrap();
//! quiver_durable::write_atomic(&path, b"2").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"2");
//! quiver_durable::remove_durably(&path).unwrap();
//! assert!(!path.exists());
//! ```

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces the file at `path` with `bytes`, durably and atomically: after it returns,
/// a crash leaves the new content; a crash during it leaves the old content or the new,
/// never a mix. The parent directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, &mut OpenOptions::new())
}

/// [`write_atomic`] for secrets: the file is readable and writable by its owner only
/// (mode 0600 on Unix), from the moment it is created, so a private key is never
/// readable by others, not even as its temporary file.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    write_with(path, bytes, &mut options)
}

/// Removes the file at `path` and syncs its directory, so that the removal survives a
/// crash: without the directory sync the file may come back. A missing file is an error
/// of kind `NotFound`, as with `std::fs::remove_file`.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path).map_err(failed("remove", path))?;
    sync_dir(parent(path))
}

/// Creates `dir` and any missing ancestors, syncing the parent of each one it creates,
/// so that the directories survive a crash along with the files later written in them.
/// A file synced inside a directory whose own entry was never synced can vanish with it.
/// An existing directory is fine; anything else in the way is an error.
pub fn create_dir_all_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let up = parent(dir);
    if up != dir {
        create_dir_all_durably(up)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => sync_dir(up),
        // Another writer made it meanwhile; its parent sync is that writer's business.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(failed("create directory", dir)(e)),
    }
}

/// Flushes a directory's entries to disk: the last step of any create, rename or removal
/// that must survive a crash, because those change the directory rather than a file.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed("fsync directory", dir))
    }
    // Elsewhere a directory cannot be opened as a file; there, renames are made durable
    // by the filesystem itself or not at all.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Where [`write_atomic`] writes before the rename: `<name>.tmp` beside `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map_or_else(OsString::new, ToOwned::to_owned);
    name.push(".tmp");
    path.with_file_name(name)
}

/// One failed step of a durable write: what was being done, to which path, and why.
/// It travels inside the returned `io::Error`, whose kind is that of `source`.
#[derive(Debug)]
pub struct PathError {
    /// The step, as a verb phrase: `create`, `write`, `fsync`, `rename over`, ….
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn write_with(path: &Path, bytes: &[u8], options: &mut OpenOptions) -> io::Result<()> {
    let tmp = temp_path(path);
    // A leftover from a crashed write is removed rather than truncated, so the new file
    // is created fresh and takes the permissions asked for, not the leftover's.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed("remove the leftover", &tmp)(e)),
    }
    let written = fill(&tmp, bytes, options)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(failed("rename over", path)));
    if let Err(e) = written {
        // Best effort: the next write removes it anyway.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent(path))
}

/// Creates `tmp` (it must not exist), writes `bytes` and fsyncs it.
fn fill(tmp: &Path, bytes: &[u8], options: &mut OpenOptions) -> io::Result<()> {
    let mut file = options
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(failed("create", tmp))?;
    file.write_all(bytes).map_err(failed("write", tmp))?;
    file.sync_all().map_err(failed("fsync", tmp))
}

/// The directory holding `path`; `.` for a bare file name.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> io::Error {
    let path = path.to_path_buf();
    move |source| {
        io::Error::new(
            source.kind(),
            PathError {
                action,
                path,
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topics.json");
        write_atomic(&path, b"a long first version of the file").expect("first write");
        write_atomic(&path, b"short").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"short");
        assert!(!temp_path(&path).exists(), "no temporary file is left");
    }

    #[test]
    fn a_first_write_creates_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("producer-id-block");
        write_atomic(&path, b"1000").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"1000");
    }

    #[test]
    fn a_leftover_temporary_file_from_a_crash_does_not_break_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.json");
        write_atomic(&path, b"old").expect("write");
        // A crash after the temporary file was partly written, before the rename.
        std::fs::write(temp_path(&path), b"torn half of a much longer new vers").expect("leftover");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"old",
            "the target is intact"
        );
        write_atomic(&path, b"new").expect("write over the leftover");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert!(!temp_path(&path).exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_is_owner_only_even_over_a_world_readable_leftover() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        let leftover = temp_path(&path);
        std::fs::write(&leftover, b"junk").expect("leftover");
        std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomic_private(&path, b"secret").expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).expect("read"), b"secret");
    }

    #[test]
    fn errors_name_the_step_and_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-dir").join("file");
        let err = write_atomic(&path, b"x").expect_err("the parent does not exist");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(text.starts_with("cannot create "), "{text}");
        assert!(text.contains("missing-dir"), "{text}");
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<PathError>())
            .expect("a PathError inside");
        assert_eq!(inner.action, "create");
        assert_eq!(inner.path, temp_path(&path));
    }

    #[test]
    fn removal_is_durable_and_a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("2.wasm");
        write_atomic(&path, b"component").expect("write");
        remove_durably(&path).expect("remove");
        assert!(!path.exists());
        let err = remove_durably(&path).expect_err("already gone");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("2.wasm"), "{err}");
    }

    #[test]
    fn missing_directories_are_created_and_existing_ones_are_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("plugins").join("key-hash");
        create_dir_all_durably(&nested).expect("create");
        assert!(nested.is_dir());
        create_dir_all_durably(&nested).expect("again");
        write_atomic(&nested.join("1.json"), b"{}").expect("write inside");
    }

    #[test]
    fn a_file_in_the_way_of_a_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("meta");
        std::fs::write(&blocker, b"not a directory").expect("write");
        let err = create_dir_all_durably(&blocker.join("inner")).expect_err("blocked");
        assert!(err.to_string().contains("meta"), "{err}");
        let err = create_dir_all_durably(&blocker).expect_err("a file, not a directory");
        assert!(
            err.to_string().starts_with("cannot create directory"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_syncs_and_a_missing_one_says_which() {
        let dir = tempfile::tempdir().expect("tempdir");
        sync_dir(dir.path()).expect("sync");
        let missing = dir.path().join("nope");
        let err = sync_dir(&missing).expect_err("missing");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn the_temporary_file_sits_beside_the_target() {
        assert_eq!(
            temp_path(Path::new("/data/meta/topics.json")),
            Path::new("/data/meta/topics.json.tmp")
        );
        assert_eq!(temp_path(Path::new("cert.pem")), Path::new("cert.pem.tmp"));
        assert_eq!(parent(Path::new("cert.pem")), Path::new("."));
    }
}
