//! Plugins stored by name and version in the data directory, with hot reload.
//!
//! Layout, under `<data>/plugins/`:
//!
//! ```text
//! <name>/<version>.wasm   the component, as uploaded
//! <name>/<version>.json   its metadata (VersionMeta); written last, so a version
//!                         exists only once both files are complete
//! .cache/                 wasmtime's compilation cache, when the host uses this dir
//! ```
//!
//! Versions count up from 1 per name and are never reused while the name exists. The
//! current version of a name is the highest one; it lives in an `ArcSwap` that
//! following plugin wrappers share, so [`Registry::add`] switches every caller to the new
//! version at once, while calls already running finish on the old one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use quiver_proto::time::now_ms;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::log::{LogLevel, LogSource, PluginLog};
use crate::{
    CompactorPlugin, FilterPlugin, LoadSpec, LoadedPlugin, PartitionerPlugin, PluginError,
    PluginHost, PluginKind, PluginLimits, PluginSource,
};

/// The longest plugin name allowed.
pub const MAX_PLUGIN_NAME: usize = 128;

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
    #[error("plugin `{name}` is used by topics {topics:?}; unbind it first or remove with force")]
    InUse { name: String, topics: Vec<String> },
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

/// What is stored about one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub name: String,
    pub version: u32,
    pub kind: PluginKind,
    /// SHA-256 of the component bytes, hex.
    pub sha256: String,
    pub size_bytes: u64,
    /// When it was added, ms since the Unix epoch.
    pub added_ms: i64,
    /// Limits of this version; `None` takes the host's defaults.
    pub limits: Option<PluginLimits>,
}

/// A registered name and its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    /// The version calls go to.
    pub current: u32,
    /// Every stored version, oldest first.
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

struct Entry {
    versions: BTreeMap<u32, VersionMeta>,
    /// The highest version ever added, so removed numbers are not reused.
    last_version: u32,
    /// The current version, once something asked for it: what following sources share.
    slot: Option<Arc<ArcSwap<LoadedPlugin>>>,
    log: Arc<PluginLog>,
}

impl Entry {
    fn current(&self) -> Option<u32> {
        self.versions.keys().next_back().copied()
    }
}

/// The plugin store of one broker.
pub struct Registry {
    dir: PathBuf,
    host: PluginHost,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Serialises adds and removes, which compile and write files: slow work that must
    /// not hold `entries`, which every call path reads.
    writer: Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (or creates) the registry in `<data_dir>/plugins`, reading every stored
    /// version's metadata. Components are compiled lazily, on first use.
    pub fn open(data_dir: &Path, host: PluginHost) -> Result<Registry, RegistryError> {
        let dir = data_dir.join("plugins");
        quiver_durable::create_dir_all_durably(&dir).map_err(io("create", &dir))?;
        let mut entries = BTreeMap::new();
        for item in std::fs::read_dir(&dir).map_err(io("read", &dir))? {
            let item = item.map_err(io("read", &dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !item.path().is_dir() {
                continue;
            }
            let mut versions = BTreeMap::new();
            for file in std::fs::read_dir(item.path()).map_err(io("read", &item.path()))? {
                let path = file.map_err(io("read", &item.path()))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let raw = std::fs::read(&path).map_err(io("read", &path))?;
                let meta: VersionMeta =
                    serde_json::from_slice(&raw).map_err(|e| RegistryError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                versions.insert(meta.version, meta);
            }
            if versions.is_empty() {
                continue;
            }
            let last_version = versions.keys().next_back().copied().unwrap_or(0);
            entries.insert(
                name,
                Entry {
                    versions,
                    last_version,
                    slot: None,
                    log: host.new_log(),
                },
            );
        }
        Ok(Registry {
            dir,
            host,
            entries: Mutex::new(entries),
            writer: Mutex::new(()),
        })
    }

    /// The engine the registry loads plugins into.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// Validates and stores a new version of `name`, and makes it current. Uploading the
    /// same bytes as the current version stores nothing and returns that version.
    pub fn add(
        &self,
        name: &str,
        bytes: &[u8],
        kind: Option<PluginKind>,
        limits: Option<PluginLimits>,
    ) -> Result<VersionMeta, RegistryError> {
        check_name(name)?;
        let _writer = self.writer.lock();
        let sha256 = hex(&Sha256::digest(bytes));
        let (version, log, previous_kind) = {
            let entries = self.entries.lock();
            match entries.get(name) {
                Some(entry) => {
                    let current = entry.current().and_then(|v| entry.versions.get(&v));
                    if let Some(meta) = current.filter(|m| m.sha256 == sha256 && m.limits == limits)
                    {
                        return Ok(meta.clone());
                    }
                    (
                        entry.last_version + 1,
                        entry.log.clone(),
                        current.map(|m| m.kind),
                    )
                }
                None => (1, self.host.new_log(), None),
            }
        };
        // A name keeps its kind: a topic bound to a partitioner must not wake up bound to
        // a filter.
        let kind = kind.or(previous_kind);
        let spec = LoadSpec {
            name,
            version,
            bytes,
            kind,
            limits,
        };
        let loaded = self.host.load(spec, log.clone())?;
        let meta = VersionMeta {
            name: name.to_string(),
            version,
            kind: loaded.kind(),
            sha256,
            size_bytes: bytes.len() as u64,
            added_ms: now_ms(),
            limits,
        };
        let dir = self.dir.join(name);
        // Durably, so that a new name's directory survives a crash along with its files.
        quiver_durable::create_dir_all_durably(&dir).map_err(io("create", &dir))?;
        write_durably(&dir.join(format!("{version}.wasm")), bytes)?;
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| RegistryError::Corrupt {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        write_durably(&dir.join(format!("{version}.json")), &json)?;

        let mut entries = self.entries.lock();
        let entry = entries.entry(name.to_string()).or_insert_with(|| Entry {
            versions: BTreeMap::new(),
            last_version: 0,
            slot: None,
            log: log.clone(),
        });
        entry.versions.insert(version, meta.clone());
        entry.last_version = version;
        match &entry.slot {
            // The hot-reload point: the next call of every following wrapper uses it.
            Some(slot) => slot.store(loaded),
            None => entry.slot = Some(Arc::new(ArcSwap::new(loaded))),
        }
        drop(entries);
        log.push(
            LogLevel::Info,
            LogSource::Host,
            version,
            &format!("version {version} added and made current"),
        );
        Ok(meta)
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

    /// Every registered name, sorted.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.entries
            .lock()
            .iter()
            .filter_map(|(name, e)| info(name, e))
            .collect()
    }

    /// One registered name.
    pub fn describe(&self, name: &str) -> Result<PluginInfo, RegistryError> {
        let entries = self.entries.lock();
        entries
            .get(name)
            .and_then(|e| info(name, e))
            .ok_or_else(|| not_found(name))
    }

    /// The log of `name`, shared by its versions.
    pub fn log(&self, name: &str) -> Result<Arc<PluginLog>, RegistryError> {
        let entries = self.entries.lock();
        entries
            .get(name)
            .map(|e| e.log.clone())
            .ok_or_else(|| not_found(name))
    }

    /// Removes one version of `name`, or all of them for `None`. `bound_topics` are the
    /// topics the server knows to use the name; unless `force`, any makes this fail.
    /// Removing the current version makes the highest remaining one current. Wrappers
    /// already bound keep the instances they hold. Returns the removed versions.
    pub fn remove(
        &self,
        name: &str,
        version: Option<u32>,
        bound_topics: &[String],
        force: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let _writer = self.writer.lock();
        if !bound_topics.is_empty() && !force {
            return Err(RegistryError::InUse {
                name: name.to_string(),
                topics: bound_topics.to_vec(),
            });
        }
        let (removed, remaining) = {
            let entries = self.entries.lock();
            let entry = entries.get(name).ok_or_else(|| not_found(name))?;
            let all: Vec<u32> = entry.versions.keys().copied().collect();
            let removed = match version {
                None => all.clone(),
                Some(v) if entry.versions.contains_key(&v) => vec![v],
                Some(v) => {
                    return Err(RegistryError::VersionNotFound {
                        name: name.to_string(),
                        version: v,
                        available: all,
                    });
                }
            };
            let remaining: Vec<VersionMeta> = entry
                .versions
                .values()
                .filter(|m| !removed.contains(&m.version))
                .cloned()
                .collect();
            (removed, remaining)
        };
        let dir = self.dir.join(name);
        if remaining.is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(io("remove", &dir)(e));
            }
            // Until the parent is synced, a crash could bring the removed name back.
            quiver_durable::sync_dir(&self.dir).map_err(io("remove", &dir))?;
            self.entries.lock().remove(name);
            return Ok(removed);
        }
        for v in &removed {
            // Metadata first: a version without it no longer exists, whatever remains.
            for ext in ["json", "wasm"] {
                let path = dir.join(format!("{v}.{ext}"));
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
            }
        }
        // Until the directory is synced, a crash could bring the removed versions back.
        quiver_durable::sync_dir(&dir).map_err(io("remove versions in", &dir))?;
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(name) else {
            return Ok(removed);
        };
        for v in &removed {
            entry.versions.remove(v);
        }
        let new_current = entry.current();
        let stale = entry
            .slot
            .as_ref()
            .is_some_and(|s| Some(s.load().version()) != new_current);
        if let (true, Some(slot), Some(meta)) =
            (stale, entry.slot.clone(), remaining.last().cloned())
        {
            let log = entry.log.clone();
            drop(entries);
            slot.store(self.load_stored(&meta, log)?);
        }
        Ok(removed)
    }

    /// The shared slot of `name`'s current version, compiling it on first use.
    fn current_slot(&self, name: &str) -> Result<Arc<ArcSwap<LoadedPlugin>>, RegistryError> {
        let (meta, log) = {
            let entries = self.entries.lock();
            let entry = entries.get(name).ok_or_else(|| not_found(name))?;
            if let Some(slot) = &entry.slot {
                return Ok(slot.clone());
            }
            let current = entry
                .current()
                .and_then(|v| entry.versions.get(&v))
                .ok_or_else(|| not_found(name))?;
            (current.clone(), entry.log.clone())
        };
        let loaded = self.load_stored(&meta, log)?;
        let mut entries = self.entries.lock();
        let entry = entries.get_mut(name).ok_or_else(|| not_found(name))?;
        // Another thread may have created the slot (or added a version) meanwhile; the
        // first slot wins so that every follower shares one.
        Ok(entry
            .slot
            .get_or_insert_with(|| Arc::new(ArcSwap::new(loaded)))
            .clone())
    }

    fn load_stored(
        &self,
        meta: &VersionMeta,
        log: Arc<PluginLog>,
    ) -> Result<Arc<LoadedPlugin>, RegistryError> {
        let path = self
            .dir
            .join(&meta.name)
            .join(format!("{}.wasm", meta.version));
        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
        let spec = LoadSpec {
            name: &meta.name,
            version: meta.version,
            bytes: &bytes,
            kind: Some(meta.kind),
            limits: meta.limits,
        };
        Ok(self.host.load(spec, log)?)
    }
}

fn info(name: &str, entry: &Entry) -> Option<PluginInfo> {
    Some(PluginInfo {
        name: name.to_string(),
        current: entry.current()?,
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

/// Writes `bytes` to `path` so that after a crash the file is either absent or complete.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    quiver_durable::write_atomic(path, bytes).map_err(io("write", path))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
