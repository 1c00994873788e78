//! The topic catalog: which topics exist, with their partition counts and configs,
//! persisted in `<data>/meta/topics.json`.
//!
//! Writes go through a temporary file, an fsync and a rename, so after a crash the file
//! is either the old catalog or the new one. The catalog is written before partition
//! directories are created and before they are deleted; on start, directories the catalog
//! does not name are leftovers of an interrupted delete and are removed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One topic as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    /// Only the configs set on this topic; the rest come from defaults.
    pub configs: BTreeMap<String, String>,
    /// Internal topics (group offsets) are hidden from produce by users.
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CatalogFile {
    version: u32,
    topics: Vec<TopicRecord>,
}

/// Why the catalog could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot {op} topic catalog {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "topic catalog {path} is corrupt: {source}; restore it from a backup or remove it to start empty"
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The persisted list of topics.
#[derive(Debug)]
pub struct Catalog {
    path: PathBuf,
}

impl Catalog {
    pub fn new(data_dir: &Path) -> Self {
        Catalog {
            path: data_dir.join("meta").join("topics.json"),
        }
    }

    /// Reads every topic; a missing file is an empty catalog.
    pub fn load(&self) -> Result<Vec<TopicRecord>, CatalogError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CatalogError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let file: CatalogFile =
            serde_json::from_slice(&text).map_err(|source| CatalogError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(file.topics)
    }

    /// Replaces the catalog with `topics`, atomically and durably.
    pub fn store(&self, topics: &[TopicRecord]) -> Result<(), CatalogError> {
        let io = |op, source| CatalogError::Io {
            op,
            path: self.path.clone(),
            source,
        };
        let file = CatalogFile {
            version: 1,
            topics: topics.to_vec(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| io("encode", e.into()))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io("create directory for", e))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(&text).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("fsync", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("rename", e))?;
        // The rename is durable only once the directory itself is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync directory of", e))?;
        Ok(())
    }
}

/// The directory of one partition's log: `<data>/<topic>-<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = Catalog::new(dir.path());
        assert!(catalog.load().expect("empty").is_empty());
        let topics = vec![TopicRecord {
            name: "orders".into(),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            internal: false,
        }];
        catalog.store(&topics).expect("store");
        assert_eq!(catalog.load().expect("load"), topics);
    }

    #[test]
    fn corrupt_catalog_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = Catalog::new(dir.path());
        std::fs::create_dir_all(dir.path().join("meta")).expect("mkdir");
        std::fs::write(dir.path().join("meta/topics.json"), b"{not json").expect("write");
        let err = catalog.load().expect_err("corrupt");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
