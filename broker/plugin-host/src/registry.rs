//! The plugin versions a broker runs, with hot reload, and the component bytes they
//! run, stored by content hash.
//!
//! Which versions of which plugin exist is decided elsewhere: the cluster metadata
//! (`RegisterPlugin` / `RemovePlugin` records) is the only source of truth, and the
//! server tells the registry about each version with [`Registry::install`] and
//! [`Registry::uninstall`]. So the registry keeps versions in memory only; it starts
//! empty and numbers nothing. An upload is two steps: [`Registry::prepare`] validates
//! the component and stores its bytes, the server proposes the metadata record with the
//! returned hash, and once the record is applied it installs the version.
//!
//! Layout, under `<data>/plugins/`:
//!
//! ```text
//! .blobs/<sha256 hex>.wasm   a component, named by the SHA-256 of its bytes (64
//!                            lowercase hex digits); written atomically, so after a
//!                            crash it is absent or whole
//! .cache/                    wasmtime's compilation cache, when the host uses this dir
//! .legacy-migrated/<name>/   the per-name directories of the old layout, once migrated
//!                            (see [`legacy`])
//! ```
//!
//! Every directory the registry owns starts with `.`, which no plugin name may, so none
//! can be mistaken for a per-name directory of the old layout. Naming components by
//! their hash is what lets any broker of a cluster fetch the bytes of a version it is
//! told about, and makes uploading the same component twice store it once.
//!
//! The current version of a name is the highest installed one; it lives in an
//! `ArcSwap` that following plugin wrappers share, so installing a newer version
//! switches every caller at once, while calls already running finish on the old one.
//! Components are compiled lazily, on first use, except a new current version of a name
//! someone already follows, which is compiled before the switch.

mod blobs;
pub mod legacy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::log::{LogLevel, LogSource, PluginLog};
use crate::{
    CompactorPlugin, FilterPlugin, LoadSpec, LoadedPlugin, PartitionerPlugin, PluginError,
    PluginHost, PluginKind, PluginLimits, PluginSource,
};
use blobs::BlobStore;
pub use blobs::{content_hash, is_content_hash};
pub use legacy::{LegacyVersion, legacy_versions, retire_legacy};

/// The longest plugin name allowed.
pub const MAX_PLUGIN_NAME: usize = 128;

/// Where the blobs live, under `<data>/plugins/`.
pub const BLOBS_DIR: &str = ".blobs";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid plugin name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("no plugin named `{name}`; `quiver plugin list` shows the registered ones")]
    NotFound { name: String },
    #[error("plugin `{name}` has no version {version}; it has {available:?}")]
    VersionNotFound {
        name: String,
        version: u32,
        available: Vec<u32>,
    },
    /// The metadata names a component this broker does not have; in a cluster, fetch it
    /// from a broker that does and store it with [`Registry::store_blob`].
    #[error(
        "the plugin component with SHA-256 {hash} is not stored here ({}); fetch it from \
         a broker that has it, or upload the component again",
        path.display()
    )]
    BlobMissing { hash: String, path: PathBuf },
    #[error(
        "the plugin component with SHA-256 {hash} ({}) is damaged: {reason}; store it \
         again from a good copy",
        path.display()
    )]
    BlobCorrupt {
        hash: String,
        path: PathBuf,
        reason: String,
    },
    #[error("`{hash}` is not a content hash: a SHA-256 is 64 lowercase hex digits")]
    InvalidHash { hash: String },
    /// An install of a version the registry already holds with other content: the
    /// metadata and the registry disagree, which only a bug can cause.
    #[error(
        "plugin `{name}` version {version} is installed with SHA-256 {installed}; it \
         cannot also be {offered} (uninstall it first)"
    )]
    VersionConflict {
        name: String,
        version: u32,
        installed: String,
        offered: String,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin metadata {} is unreadable: {reason}; remove the version's files to drop it", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// What is known about one installed version: what the metadata's `RegisterPlugin`
/// record says (and what the old layout stored in `<version>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub name: String,
    pub version: u32,
    pub kind: PluginKind,
    /// SHA-256 of the component bytes, hex: the component's name in the blob store.
    pub sha256: String,
    pub size_bytes: u64,
    /// When it was added, ms since the Unix epoch.
    pub added_ms: i64,
    /// Limits of this version; `None` takes the host's defaults.
    pub limits: Option<PluginLimits>,
}

/// A validated component whose bytes are stored, ready to be registered as a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedComponent {
    /// SHA-256 of the bytes, 64 lowercase hex digits.
    pub content_hash: String,
    /// The world it satisfies: the one asked for, or the one detected.
    pub kind: PluginKind,
    pub size: u64,
}

/// A registered name and its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    /// The version calls go to.
    pub current: u32,
    /// Every installed version, oldest first.
    pub versions: Vec<VersionMeta>,
}

impl PluginInfo {
    /// The kind of the current version.
    pub fn kind(&self) -> Option<PluginKind> {
        self.versions
            .iter()
            .find(|v| v.version == self.current)
            .map(|v| v.kind)
    }
}

impl PreparedComponent {
    /// The version this component becomes once the metadata registers it as `version`
    /// of `name`: what [`Registry::install`] takes.
    pub fn into_version(
        self,
        name: &str,
        version: u32,
        added_ms: i64,
        limits: Option<PluginLimits>,
    ) -> VersionMeta {
        VersionMeta {
            name: name.to_string(),
            version,
            kind: self.kind,
            sha256: self.content_hash,
            size_bytes: self.size,
            added_ms,
            limits,
        }
    }
}

struct Entry {
    /// Never empty while the entry is in the map.
    versions: BTreeMap<u32, VersionMeta>,
    /// The current version, once something asked for it: what following sources share.
    slot: Option<Arc<ArcSwap<LoadedPlugin>>>,
    log: Arc<PluginLog>,
}

impl Entry {
    fn current(&self) -> Option<&VersionMeta> {
        self.versions.values().next_back()
    }
}

/// The plugin versions of one broker and the components they run.
pub struct Registry {
    dir: PathBuf,
    host: PluginHost,
    blobs: BlobStore,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Serialises installs and uninstalls, which compile: slow work that must not hold
    /// `entries`, which every call path reads.
    writer: Mutex<()>,
    /// Hashes stored by [`Registry::prepare`] or [`Registry::store_blob`] and not yet
    /// installed: a garbage collection between an upload and its metadata record must
    /// not remove the blob. Kept in memory only, so a blob whose record never came is
    /// collected by the first collection after a restart.
    prepared: Mutex<BTreeSet<String>>,
    /// Logs of names that have no version but had an upload refused, so that the
    /// refusal shows in `plugin logs NAME`; the first version installed takes the log
    /// over. Bounded by [`MAX_UNINSTALLED_LOGS`].
    uninstalled_logs: Mutex<BTreeMap<String, Arc<PluginLog>>>,
}

/// Names without a version whose refused uploads are logged; past it another name's
/// log is dropped to make room (uploads are an administrator's act, so this is a bound
/// against mistakes, not against attackers).
pub const MAX_UNINSTALLED_LOGS: usize = 64;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (or creates) the registry in `<data_dir>/plugins`, with no version
    /// installed: the caller installs every version the metadata lists.
    pub fn open(data_dir: &Path, host: PluginHost) -> Result<Registry, RegistryError> {
        let dir = data_dir.join("plugins");
        quiver_durable::create_dir_all_durably(&dir).map_err(io("create", &dir))?;
        let blobs = BlobStore::open(dir.join(BLOBS_DIR))?;
        Ok(Registry {
            dir,
            host,
            blobs,
            entries: Mutex::new(BTreeMap::new()),
            writer: Mutex::new(()),
            prepared: Mutex::new(BTreeSet::new()),
            uninstalled_logs: Mutex::new(BTreeMap::new()),
        })
    }

    /// The engine the registry loads plugins into.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// What an upload does before its metadata record is proposed: checks the name,
    /// compiles and validates the component as `kind` (or, for `None`, as the kind of
    /// the name's installed versions, or whatever world it exports), and stores its
    /// bytes. Creates no version. Preparing the same bytes again stores nothing new.
    pub fn prepare(
        &self,
        name: &str,
        bytes: &[u8],
        kind: Option<PluginKind>,
    ) -> Result<PreparedComponent, RegistryError> {
        check_name(name)?;
        // A name keeps its kind: a topic bound to a partitioner must not wake up bound
        // to a filter. The metadata refuses the change too; checking here gives the
        // uploader the reason in terms of the component's exports.
        let installed = self
            .entries
            .lock()
            .get(name)
            .and_then(|e| e.current())
            .map(|m| m.kind);
        let kind = self.host.validate(name, bytes, kind.or(installed))?;
        let content_hash = content_hash(bytes);
        self.store_prepared(&content_hash, bytes)?;
        Ok(PreparedComponent {
            content_hash,
            kind,
            size: bytes.len() as u64,
        })
    }

    /// Stores component bytes fetched from elsewhere (another broker) under
    /// `content_hash`, which must be their SHA-256. Validates nothing else: the
    /// component was validated where it was uploaded, and is compiled when installed.
    pub fn store_blob(&self, content_hash: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        blobs::check_hash(content_hash)?;
        self.store_prepared(content_hash, bytes)
    }

    /// True when the component of `content_hash` is stored here.
    pub fn has_blob(&self, content_hash: &str) -> bool {
        self.blobs.has(content_hash)
    }

    /// The stored bytes of `content_hash`, checked against it.
    pub fn read_blob(&self, content_hash: &str) -> Result<Vec<u8>, RegistryError> {
        self.blobs.read(content_hash)
    }

    /// The hash of every stored component, installed or not.
    pub fn blob_hashes(&self) -> Result<BTreeSet<String>, RegistryError> {
        self.blobs.hashes()
    }

    /// Removes every stored component that no version refers to, and the temporary
    /// files of writes a crash interrupted; returns how many components were removed.
    /// Kept: the hashes in `live` (every version in the metadata), those of installed
    /// versions, and those prepared or stored since start and not yet installed.
    pub fn collect_garbage(&self, live: &BTreeSet<String>) -> Result<usize, RegistryError> {
        // The set is built while the store refuses writes, so a blob being prepared is
        // either in `prepared` already or written after the collection.
        self.blobs.collect_garbage(|| {
            let mut keep = live.clone();
            keep.extend(self.prepared.lock().iter().cloned());
            for entry in self.entries.lock().values() {
                keep.extend(entry.versions.values().map(|m| m.sha256.clone()));
            }
            keep
        })
    }

    /// Makes a version the metadata registered known and runnable. Its component must
    /// be stored (a [`RegistryError::BlobMissing`] names the hash to fetch otherwise) and
    /// match `size_bytes`. When it is the name's highest version it becomes current:
    /// every following wrapper calls it from its next call on, and it is compiled first
    /// if any wrapper follows the name (otherwise on first use). Installing a version
    /// again with the same content, kind and limits does nothing.
    pub fn install(&self, meta: VersionMeta) -> Result<(), RegistryError> {
        check_name(&meta.name)?;
        blobs::check_hash(&meta.sha256)?;
        let _writer = self.writer.lock();
        if let Some(installed) = self.installed(&meta.name, meta.version) {
            if same_content(&installed, &meta) {
                return Ok(());
            }
            return Err(RegistryError::VersionConflict {
                name: meta.name.clone(),
                version: meta.version,
                installed: describe_content(&installed),
                offered: describe_content(&meta),
            });
        }
        let bytes = self.blobs.read(&meta.sha256)?;
        if bytes.len() as u64 != meta.size_bytes {
            return Err(RegistryError::BlobCorrupt {
                hash: meta.sha256.clone(),
                path: self.blobs.path(&meta.sha256),
                reason: format!(
                    "version {} of `{}` is registered with {} bytes, the stored component \
                     has {}",
                    meta.version,
                    meta.name,
                    meta.size_bytes,
                    bytes.len()
                ),
            });
        }
        let mut loaded = None;
        let (log, current) = loop {
            let mut entries = self.entries.lock();
            let entry = entries.entry(meta.name.clone()).or_insert_with(|| Entry {
                versions: BTreeMap::new(),
                slot: None,
                log: self
                    .uninstalled_logs
                    .lock()
                    .remove(&meta.name)
                    .unwrap_or_else(|| self.host.new_log()),
            });
            let newest = entry.current().is_none_or(|c| meta.version > c.version);
            let replaces = newest && entry.current().is_some();
            let log = entry.log.clone();
            if newest && let Some(slot) = &entry.slot {
                match loaded.take() {
                    // The hot-reload point: the next call of every follower uses it.
                    Some(plugin) => slot.store(plugin),
                    None => {
                        // Compiling takes long; other calls must not wait for it. Only
                        // installs and uninstalls change versions and they wait for
                        // `writer`, so the entry is as it was when the lock is retaken.
                        drop(entries);
                        loaded = Some(self.load_bytes(&meta, &bytes, log)?);
                        continue;
                    }
                }
            }
            entry.versions.insert(meta.version, meta.clone());
            if replaces {
                log.stats().reloaded();
            }
            break (log, newest);
        };
        self.prepared.lock().remove(&meta.sha256);
        let what = if current { " and made current" } else { "" };
        log.push(
            LogLevel::Info,
            LogSource::Host,
            meta.version,
            &format!("version {} installed{what}", meta.version),
        );
        Ok(())
    }

    /// Forgets `versions` of `name` (those it does not have are ignored) and returns the
    /// ones it forgot. Forgetting the current version makes the highest remaining one
    /// current, for followers too; the name disappears with its last version. Wrappers
    /// already bound keep the instances they hold. Checking that no topic still uses a
    /// version is the metadata's business, before the removal is recorded.
    pub fn uninstall(&self, name: &str, versions: &[u32]) -> Result<Vec<u32>, RegistryError> {
        let _writer = self.writer.lock();
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(name) else {
            return Ok(Vec::new());
        };
        let removed: Vec<u32> = versions
            .iter()
            .copied()
            .filter(|v| entry.versions.remove(v).is_some())
            .collect();
        let Some(current) = entry.current().cloned() else {
            entries.remove(name);
            return Ok(removed);
        };
        let stale = entry
            .slot
            .as_ref()
            .is_some_and(|s| s.load().version() != current.version);
        if !stale {
            return Ok(removed);
        }
        let log = entry.log.clone();
        drop(entries);
        let fallback = self.load_stored(&current, log);
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(name) else {
            return Ok(removed);
        };
        match fallback {
            Ok(plugin) => {
                if let Some(slot) = &entry.slot {
                    slot.store(plugin);
                }
                Ok(removed)
            }
            Err(e) => {
                // Nothing new may bind to a version that is gone: the next binding loads
                // the current version afresh (and reports why it cannot). Followers keep
                // the instances they hold.
                entry.slot = None;
                Err(e)
            }
        }
    }

    /// A version of `name` (the current one for `None`), compiled and ready.
    pub fn get(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Arc<LoadedPlugin>, RegistryError> {
        match version {
            None => Ok(self.current_slot(name)?.load_full()),
            Some(v) => {
                let (meta, log, slot) = {
                    let entries = self.entries.lock();
                    let entry = entries.get(name).ok_or_else(|| not_found(name))?;
                    let meta = entry.versions.get(&v).cloned().ok_or_else(|| {
                        RegistryError::VersionNotFound {
                            name: name.to_string(),
                            version: v,
                            available: entry.versions.keys().copied().collect(),
                        }
                    })?;
                    (meta, entry.log.clone(), entry.slot.clone())
                };
                if let Some(current) = slot.map(|s| s.load_full()).filter(|p| p.version() == v) {
                    return Ok(current);
                }
                self.load_stored(&meta, log)
            }
        }
    }

    /// Where a wrapper gets its plugin: following the current version for `None` (hot
    /// reload), pinned to one version otherwise.
    pub fn source(&self, name: &str, version: Option<u32>) -> Result<PluginSource, RegistryError> {
        match version {
            None => Ok(PluginSource::following(self.current_slot(name)?)),
            Some(_) => Ok(PluginSource::pinned(self.get(name, version)?)),
        }
    }

    /// Binds partitioner `name` with `config`.
    pub fn partitioner(
        &self,
        name: &str,
        version: Option<u32>,
        config: Vec<(String, String)>,
    ) -> Result<PartitionerPlugin, RegistryError> {
        Ok(PartitionerPlugin::new(self.source(name, version)?, config)?)
    }

    /// Binds filter `name` with `config`.
    pub fn filter(
        &self,
        name: &str,
        version: Option<u32>,
        config: Vec<(String, String)>,
    ) -> Result<FilterPlugin, RegistryError> {
        Ok(FilterPlugin::new(self.source(name, version)?, config)?)
    }

    /// Binds compactor `name` with `config`.
    pub fn compactor(
        &self,
        name: &str,
        version: Option<u32>,
        config: Vec<(String, String)>,
    ) -> Result<CompactorPlugin, RegistryError> {
        Ok(CompactorPlugin::new(self.source(name, version)?, config)?)
    }

    /// Every installed name, sorted.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.entries
            .lock()
            .iter()
            .filter_map(|(name, e)| info(name, e))
            .collect()
    }

    /// One installed name.
    pub fn describe(&self, name: &str) -> Result<PluginInfo, RegistryError> {
        let entries = self.entries.lock();
        entries
            .get(name)
            .and_then(|e| info(name, e))
            .ok_or_else(|| not_found(name))
    }

    /// The log of `name`, shared by its versions; for a name without a version, the
    /// log of its refused uploads, if it had any.
    /// What every installed plugin did, by name, for the metrics endpoint.
    pub fn figures(&self) -> Vec<(String, crate::PluginFigures)> {
        self.entries
            .lock()
            .iter()
            .map(|(name, entry)| (name.clone(), entry.log.stats().figures()))
            .collect()
    }

    pub fn log(&self, name: &str) -> Result<Arc<PluginLog>, RegistryError> {
        if let Some(entry) = self.entries.lock().get(name) {
            return Ok(entry.log.clone());
        }
        self.uninstalled_logs
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    /// Records in `name`'s log that an upload was refused and why, so that the author
    /// finds it with `plugin logs NAME` (a hot reload's refusal otherwise shows only in
    /// the terminal that ran the watcher). The entry carries version 0: the upload never
    /// became a version. An invalid name is not logged.
    pub fn note_refused(&self, name: &str, reason: &str) {
        if check_name(name).is_err() {
            return;
        }
        let message = format!("upload refused: {reason}");
        let current = self.entries.lock().get(name).map(|e| e.log.clone());
        let log = match current {
            Some(log) => log,
            None => {
                let mut logs = self.uninstalled_logs.lock();
                if !logs.contains_key(name) && logs.len() >= MAX_UNINSTALLED_LOGS {
                    logs.pop_first();
                }
                logs.entry(name.to_string())
                    .or_insert_with(|| self.host.new_log())
                    .clone()
            }
        };
        log.push(LogLevel::Error, LogSource::Host, 0, &message);
    }

    fn installed(&self, name: &str, version: u32) -> Option<VersionMeta> {
        let entries = self.entries.lock();
        entries.get(name)?.versions.get(&version).cloned()
    }

    fn store_prepared(&self, content_hash: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        // Recorded before the write, so that a collection running meanwhile keeps it.
        self.prepared.lock().insert(content_hash.to_string());
        self.blobs.put(content_hash, bytes)
    }

    /// The shared slot of `name`'s current version, compiling it on first use.
    fn current_slot(&self, name: &str) -> Result<Arc<ArcSwap<LoadedPlugin>>, RegistryError> {
        loop {
            let (meta, log) = {
                let entries = self.entries.lock();
                let entry = entries.get(name).ok_or_else(|| not_found(name))?;
                if let Some(slot) = &entry.slot {
                    return Ok(slot.clone());
                }
                let current = entry.current().ok_or_else(|| not_found(name))?;
                (current.clone(), entry.log.clone())
            };
            let loaded = self.load_stored(&meta, log)?;
            let mut entries = self.entries.lock();
            let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
            // Another thread may have created the slot meanwhile; the first slot wins so
            // that every follower shares one.
            if let Some(slot) = &entry.slot {
                return Ok(slot.clone());
            }
            // An install may have made another version current meanwhile (it compiles
            // only for names that have a slot); the slot must hold the current one.
            if entry.current() == Some(&meta) {
                let slot = Arc::new(ArcSwap::new(loaded));
                entry.slot = Some(slot.clone());
                return Ok(slot);
            }
        }
    }

    fn load_stored(
        &self,
        meta: &VersionMeta,
        log: Arc<PluginLog>,
    ) -> Result<Arc<LoadedPlugin>, RegistryError> {
        let bytes = self.blobs.read(&meta.sha256)?;
        self.load_bytes(meta, &bytes, log)
    }

    fn load_bytes(
        &self,
        meta: &VersionMeta,
        bytes: &[u8],
        log: Arc<PluginLog>,
    ) -> Result<Arc<LoadedPlugin>, RegistryError> {
        let spec = LoadSpec {
            name: &meta.name,
            version: meta.version,
            bytes,
            kind: Some(meta.kind),
            limits: meta.limits,
        };
        Ok(self.host.load(spec, log)?)
    }
}

/// Whether two records of one version describe the same thing to run. The upload time
/// and size follow from the record and the hash, so they are not compared.
fn same_content(a: &VersionMeta, b: &VersionMeta) -> bool {
    (&a.sha256, a.kind, a.limits) == (&b.sha256, b.kind, b.limits)
}

fn describe_content(meta: &VersionMeta) -> String {
    let limits = match &meta.limits {
        Some(l) => format!("{l:?}"),
        None => "the default limits".into(),
    };
    format!("a {} with SHA-256 {} and {limits}", meta.kind, meta.sha256)
}

fn info(name: &str, entry: &Entry) -> Option<PluginInfo> {
    Some(PluginInfo {
        name: name.to_string(),
        current: entry.current()?.version,
        versions: entry.versions.values().cloned().collect(),
    })
}

/// Plugin names follow the topic name rules, shorter, and never start with `.` (which
/// would hide them among the registry's own files).
fn check_name(name: &str) -> Result<(), RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_PLUGIN_NAME {
        return Err(invalid(format!(
            "a name has 1 to {MAX_PLUGIN_NAME} characters"
        )));
    }
    if name.starts_with('.') {
        return Err(invalid("a name cannot start with '.'".into()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "'{bad}' is not allowed: use A-Z, a-z, 0-9, '.', '_' and '-'"
        )));
    }
    Ok(())
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound {
        name: name.to_string(),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_path_buf();
    move |source| RegistryError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_follow_the_rules() {
        for ok in ["key-hash", "a", "v1.2_x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "sp ace", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
