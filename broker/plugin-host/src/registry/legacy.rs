//! Reading the registry layout of brokers that numbered plugin versions themselves, so
//! the server can move those versions into the metadata log and the blob store once.
//!
//! The old layout, under `<data>/plugins/`:
//!
//! ```text
//! <name>/<version>.wasm   the component, as uploaded
//! <name>/<version>.json   its VersionMeta, written after the component, so a version
//!                         existed only once both files were complete
//! ```
//!
//! Migration is: [`legacy_versions`], then for each version store its bytes as a blob
//! and register it in the metadata, then [`retire_legacy`], which moves the per-name
//! directories into `<data>/plugins/.legacy-migrated/`. A crash before the retirement
//! only means the versions are read again at the next start; the caller skips the ones
//! the metadata already holds.

use std::path::{Path, PathBuf};

use super::blobs::content_hash;
use super::{RegistryError, VersionMeta, io};

/// Where [`retire_legacy`] moves the old per-name directories.
pub const LEGACY_RETIRED_DIR: &str = ".legacy-migrated";

/// One version stored in the old layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyVersion {
    /// What the old registry recorded: name, version, kind, hash, size, time, limits.
    pub meta: VersionMeta,
    /// The component file.
    pub component: PathBuf,
}

impl LegacyVersion {
    /// The component's bytes, checked against the recorded hash and size. Read one
    /// version at a time: components of interpreted languages run to tens of MiB.
    pub fn read(&self) -> Result<Vec<u8>, RegistryError> {
        let bytes = std::fs::read(&self.component).map_err(io("read", &self.component))?;
        let actual = content_hash(&bytes);
        if actual != self.meta.sha256 || bytes.len() as u64 != self.meta.size_bytes {
            return Err(RegistryError::Corrupt {
                path: self.component.clone(),
                reason: format!(
                    "its metadata records {} bytes with SHA-256 {}, the file has {} bytes \
                     with SHA-256 {actual}",
                    self.meta.size_bytes,
                    self.meta.sha256,
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
}

/// Every version stored in the old layout under `<data_dir>/plugins`, sorted by name
/// and version; empty when there is none (or no plugins directory at all). Temporary
/// files a crash left behind are ignored, as the old registry ignored them.
pub fn legacy_versions(data_dir: &Path) -> Result<Vec<LegacyVersion>, RegistryError> {
    let mut out = Vec::new();
    for name_dir in legacy_dirs(data_dir)? {
        for item in std::fs::read_dir(&name_dir).map_err(io("read", &name_dir))? {
            let path = item.map_err(io("read", &name_dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") || !path.is_file() {
                continue;
            }
            out.push(read_version(&name_dir, &path)?);
        }
    }
    out.sort_by(|a, b| (&a.meta.name, a.meta.version).cmp(&(&b.meta.name, b.meta.version)));
    Ok(out)
}

/// Moves every per-name directory of the old layout into
/// `<data_dir>/plugins/.legacy-migrated/`, durably, and returns the names moved. Call it
/// once every version [`legacy_versions`] returned is in the metadata; afterwards
/// [`legacy_versions`] returns nothing. The files are kept, not deleted, so an operator
/// can still recover a version by hand.
pub fn retire_legacy(data_dir: &Path) -> Result<Vec<String>, RegistryError> {
    let plugins = data_dir.join("plugins");
    let retired = plugins.join(LEGACY_RETIRED_DIR);
    let mut moved = Vec::new();
    for from in legacy_dirs(data_dir)? {
        let Some(name) = from.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if moved.is_empty() {
            quiver_durable::create_dir_all_durably(&retired).map_err(io("create", &retired))?;
        }
        // A name retired before (migrated, removed, uploaded and migrated again by an
        // older broker) keeps its first copy; this one gets a numbered sibling.
        let mut to = retired.join(&name);
        let mut n = 1;
        while to.exists() {
            to = retired.join(format!("{name}.{n}"));
            n += 1;
        }
        std::fs::rename(&from, &to).map_err(io("move", &from))?;
        moved.push(name);
    }
    if !moved.is_empty() {
        // A rename changes both directories; until both are synced a crash could undo
        // it, or lose the directory altogether.
        quiver_durable::sync_dir(&retired).map_err(io("sync", &retired))?;
        quiver_durable::sync_dir(&plugins).map_err(io("sync", &plugins))?;
    }
    Ok(moved)
}

/// The per-name directories of the old layout: every directory in `<data>/plugins`
/// whose name does not start with `.` (the registry's own directories all do, and plugin
/// names never do).
fn legacy_dirs(data_dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let plugins = data_dir.join("plugins");
    let items = match std::fs::read_dir(&plugins) {
        Ok(items) => items,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", &plugins)(e)),
    };
    let mut dirs = Vec::new();
    for item in items {
        let item = item.map_err(io("read", &plugins))?;
        if item.file_name().to_string_lossy().starts_with('.') || !item.path().is_dir() {
            continue;
        }
        dirs.push(item.path());
    }
    dirs.sort();
    Ok(dirs)
}

/// One `<version>.json` and its component, checked to agree with where they are.
fn read_version(name_dir: &Path, path: &Path) -> Result<LegacyVersion, RegistryError> {
    let corrupt = |reason: String| RegistryError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let raw = std::fs::read(path).map_err(io("read", path))?;
    let meta: VersionMeta = serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
    let dir_name = name_dir.file_name().map(|n| n.to_string_lossy());
    if dir_name.as_deref() != Some(meta.name.as_str()) {
        return Err(corrupt(format!(
            "it names plugin `{}` but lies in {}",
            meta.name,
            name_dir.display()
        )));
    }
    let stem = path.file_stem().and_then(|s| s.to_str());
    if stem != Some(meta.version.to_string().as_str()) {
        return Err(corrupt(format!(
            "it describes version {} but is named {}",
            meta.version,
            path.display()
        )));
    }
    let component = name_dir.join(format!("{}.wasm", meta.version));
    if !component.is_file() {
        return Err(corrupt(format!(
            "its component {} is missing",
            component.display()
        )));
    }
    Ok(LegacyVersion { meta, component })
}
