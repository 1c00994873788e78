//! Hot reload of plugin files, shared by `quiver plugin watch` and `quiver dev --plugins`.
//!
//! Files are polled rather than watched through inotify: a poll is portable, needs no
//! extra crate, and at [`POLL`] is fast enough for a person waiting on a rebuild. Each poll
//! compares a file's [`Stamp`] (modification time, size, inode, change time) with the
//! last one. A change is not uploaded at once: a compiler or `cp` writes a component in
//! several steps, so a file is uploaded only once its stamp has stayed the same for one
//! [`SETTLE`] interval ([`Settle`]). A file that is still broken when it settles (a crash
//! mid-write, a wrong format) is refused with one line and the previous version stays
//! current on the broker; the next change is tried again.
//!
//! Output, one line per event: `loading plugin py-key-sum (17.0 MiB, compiling...)` as an
//! upload starts (the broker compiles before it answers), then
//! `loaded key-hash v1 (partitioner) in 41 ms`, `reloaded key-hash v2 (partitioner) in
//! 187 ms` (from the change being seen to the broker's acknowledgement), or
//! `key-hash: plugins/key-hash.wasm was not loaded: ...; v1 stays current`. A refusal is
//! also in the plugin's log on the broker (`quiver plugin logs NAME`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use quiver_sdk::Client;
use tokio_util::sync::CancellationToken;

/// How often files are looked at while nothing is changing.
pub const POLL: Duration = Duration::from_millis(250);
/// How long a changed file must stay unchanged before it is uploaded.
pub const SETTLE: Duration = Duration::from_millis(100);

/// A WebAssembly component read from a file, checked just enough to give a clear message
/// for the common mistakes before the broker sees it.
#[derive(Debug, Clone)]
pub struct Component {
    pub bytes: Bytes,
}

impl Component {
    pub fn read(path: &Path) -> anyhow::Result<Component> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        check(&bytes).with_context(|| format!("{} cannot be uploaded", path.display()))?;
        Ok(Component {
            bytes: Bytes::from(bytes),
        })
    }
}

/// Refuses what is certainly not a component: not Wasm at all (often a file still being
/// written), or a core module, which must be wrapped into a component first.
pub fn check(bytes: &[u8]) -> anyhow::Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        anyhow::bail!(
            "it is not a WebAssembly binary ({} bytes; is it still being written?)",
            bytes.len()
        );
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        anyhow::bail!(
            "it is a core WebAssembly module, not a component: build for wasm32-wasip2, or wrap it with `wasm-tools component new`"
        );
    }
    Ok(())
}

/// What identifies one state of a file on disk. The inode and change time catch a file
/// replaced by rename or rewritten with the same size within one mtime tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    changed: (i64, i64),
}

/// The stamp of `path`, or `None` when it is missing or unreadable.
pub fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
        changed: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// Debouncing of one file's changes, by stamps observed at successive polls.
#[derive(Debug, Default)]
pub struct Settle {
    last: Option<Stamp>,
    /// When the first change not yet uploaded was seen.
    pending_since: Option<Instant>,
}

/// What a poll concluded about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing new since the last upload.
    Quiet,
    /// It changed since the last poll: wait for it to settle.
    Settling,
    /// It changed, then stayed the same for a poll: upload it. `seen_at` is when the
    /// change was first seen.
    Settled { seen_at: Instant },
    /// It is gone.
    Missing,
}

impl Settle {
    /// A file whose current state is already handled (uploaded at start).
    pub fn at(stamp: Option<Stamp>) -> Settle {
        Settle {
            last: stamp,
            pending_since: None,
        }
    }

    pub fn observe(&mut self, now: Option<Stamp>, at: Instant) -> Step {
        match now {
            None => {
                self.last = None;
                self.pending_since = None;
                Step::Missing
            }
            Some(s) if self.last.as_ref() != Some(&s) => {
                self.last = Some(s);
                self.pending_since.get_or_insert(at);
                Step::Settling
            }
            Some(_) => match self.pending_since.take() {
                Some(seen_at) => Step::Settled { seen_at },
                None => Step::Quiet,
            },
        }
    }
}

/// What to watch: one file under a given plugin name, or every `*.wasm` of a directory
/// under its file stem.
#[derive(Debug, Clone)]
pub enum Watched {
    File { name: String, path: PathBuf },
    Dir(PathBuf),
}

impl Watched {
    pub fn file(name: String, path: PathBuf) -> Watched {
        Watched::File { name, path }
    }

    /// The (plugin name, path) pairs present now, sorted by path.
    fn scan(&self) -> Vec<(String, PathBuf)> {
        match self {
            Watched::File { name, path } => vec![(name.clone(), path.clone())],
            Watched::Dir(dir) => {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    return Vec::new();
                };
                let mut found: Vec<(String, PathBuf)> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter_map(|p| Some((crate::plugin::name_of(&p)?, p)))
                    .collect();
                found.sort_by(|a, b| a.1.cmp(&b.1));
                found
            }
        }
    }
}

/// One watched file and what this watcher last uploaded from it.
#[derive(Debug)]
struct Tracked {
    name: String,
    settle: Settle,
    /// The bytes last accepted, so that a touch without a change uploads nothing.
    uploaded: Option<Bytes>,
    version: Option<u32>,
}

/// Uploads every watched file now, then each one again whenever it changes, until
/// `cancel`. Failures are reported as lines and never end the watch.
pub async fn run(client: &Client, watched: Watched, cancel: CancellationToken) {
    let mut files: BTreeMap<PathBuf, Tracked> = BTreeMap::new();
    for (name, path) in watched.scan() {
        let stamp_now = stamp(&path);
        let mut t = Tracked {
            name,
            settle: Settle::at(stamp_now),
            uploaded: None,
            version: None,
        };
        upload(client, &mut t, &path, Instant::now(), false).await;
        files.insert(path, t);
    }
    let mut wait = POLL;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let now = Instant::now();
        let present = watched.scan();
        files.retain(|path, _| present.iter().any(|(_, p)| p == path));
        wait = POLL;
        for (name, path) in present {
            let t = files.entry(path.clone()).or_insert_with(|| Tracked {
                name,
                settle: Settle::default(),
                uploaded: None,
                version: None,
            });
            match t.settle.observe(stamp(&path), now) {
                Step::Settling => wait = SETTLE,
                Step::Settled { seen_at } => upload(client, t, &path, seen_at, true).await,
                Step::Quiet | Step::Missing => {}
            }
        }
    }
}

async fn upload(client: &Client, t: &mut Tracked, path: &Path, seen_at: Instant, reload: bool) {
    let refused = |t: &Tracked, why: String| {
        let current = match t.version {
            Some(v) => format!("v{v} stays current"),
            None => "the previous version, if any, stays current".to_string(),
        };
        note(&format!(
            "{}: {} was not loaded: {why}; {current}",
            t.name,
            path.display()
        ));
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => Bytes::from(b),
        Err(e) => return refused(t, format!("cannot read it: {e}")),
    };
    if t.uploaded.as_ref() == Some(&bytes) {
        return;
    }
    // A file the local check refuses is still sent: the broker refuses it too, and notes
    // the refusal in the plugin's log, where `quiver plugin logs NAME` shows it. The line
    // here gives the local check's reason, which says more about a file still being
    // written or a core module.
    let local = check(&bytes).err();
    if local.is_none() {
        // The broker compiles before it answers: seconds for a large component.
        let verb = if reload { "reloading" } else { "loading" };
        note(&format!(
            "{verb} plugin {} ({}, compiling...)",
            t.name,
            crate::plugin::size(bytes.len() as u64)
        ));
    }
    match client.admin().add_plugin(&t.name, bytes.clone()).await {
        Ok(added) => {
            let ms = seen_at.elapsed().as_millis();
            if t.version == Some(added.version) {
                note(&format!("{}: unchanged (v{})", t.name, added.version));
            } else {
                let verb = if reload { "reloaded" } else { "loaded" };
                note(&format!(
                    "{verb} {} v{} ({}) in {ms} ms",
                    t.name, added.version, added.kind
                ));
            }
            t.uploaded = Some(bytes);
            t.version = Some(added.version);
        }
        Err(e) => match local {
            Some(local) => refused(t, format!("{local:#}")),
            None => refused(t, e.to_string()),
        },
    }
}

/// Writes one line to stdout, ignoring a reader that went away: a broker started by
/// `quiver dev` keeps serving when nobody reads its output.
pub fn note(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(line.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(len: u64) -> Option<Stamp> {
        Some(Stamp {
            modified: None,
            len,
            inode: 1,
            changed: (0, 0),
        })
    }

    #[test]
    fn a_change_is_uploaded_once_it_stops_changing() {
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        let mut settle = Settle::at(s(10));
        assert_eq!(settle.observe(s(10), later(250)), Step::Quiet);
        // Written in three steps, one poll apart: uploaded once, timed from the first.
        assert_eq!(settle.observe(s(20), later(500)), Step::Settling);
        assert_eq!(settle.observe(s(30), later(600)), Step::Settling);
        assert_eq!(
            settle.observe(s(30), later(700)),
            Step::Settled {
                seen_at: later(500)
            }
        );
        assert_eq!(settle.observe(s(30), later(950)), Step::Quiet);
    }

    #[test]
    fn a_new_file_settles_then_uploads_and_a_removed_one_is_forgotten() {
        let t0 = Instant::now();
        let mut settle = Settle::default();
        assert_eq!(settle.observe(s(5), t0), Step::Settling);
        assert_eq!(
            settle.observe(s(5), t0 + POLL),
            Step::Settled { seen_at: t0 }
        );
        assert_eq!(settle.observe(None, t0 + POLL * 2), Step::Missing);
        // Back again: a new change.
        assert_eq!(settle.observe(s(5), t0 + POLL * 3), Step::Settling);
    }

    #[test]
    fn only_components_pass_the_local_check() {
        let component = [b"\0asm".as_slice(), &[0x0d, 0, 1, 0]].concat();
        assert!(check(&component).is_ok());
        let module = [b"\0asm".as_slice(), &[1, 0, 0, 0]].concat();
        let err = format!("{:#}", check(&module).expect_err("core module"));
        assert!(err.contains("not a component"), "{err}");
        let err = format!("{:#}", check(b"\0as").expect_err("truncated"));
        assert!(err.contains("still being written"), "{err}");
        assert!(check(b"hello, world").is_err());
    }

    #[test]
    fn stamps_see_a_same_size_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, b"aaaa").expect("write");
        let first = stamp(&path);
        std::fs::write(dir.path().join("tmp"), b"bbbb").expect("write");
        std::fs::rename(dir.path().join("tmp"), &path).expect("rename");
        assert_ne!(stamp(&path), first, "a rename changes the inode");
        assert_eq!(stamp(&dir.path().join("missing")), None);
    }
}
