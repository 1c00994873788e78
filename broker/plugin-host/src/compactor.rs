//! The typed wrapper of the `compactor` world.

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::Compactor;
use crate::bindings::wit::{self, Parts};
use crate::loaded::WorldPre;
use crate::pool::{GuestResult, Pool, World};
use crate::state::GuestState;
use crate::{LoadedPlugin, PluginError, PluginKind, PluginSource, RecordView};

impl World for Compactor {
    const KIND: PluginKind = PluginKind::Compactor;

    fn instantiate(
        plugin: &LoadedPlugin,
        store: &mut Store<GuestState>,
    ) -> Option<wasmtime::Result<Self>> {
        match &plugin.pre {
            WorldPre::Compactor(pre) => Some(pre.instantiate(store)),
            _ => None,
        }
    }

    fn init(&self, store: &mut Store<GuestState>, config: &wit::Config) -> GuestResult<Parts> {
        self.call_init(store, config)
    }
}

/// Which of two records for one compaction key survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivor {
    Older,
    Newer,
}

/// A compaction policy plugin bound to a topic's parameters, with its own instance pool.
#[derive(Debug)]
pub struct CompactorPlugin {
    pool: Pool<Compactor>,
}

impl CompactorPlugin {
    /// Binds the plugin behind `source` with `config`; fails now when it is not a
    /// compactor or its `init` refuses the parameters.
    pub fn new(source: PluginSource, config: Vec<(String, String)>) -> Result<Self, PluginError> {
        Ok(CompactorPlugin {
            pool: Pool::new(source, config)?,
        })
    }

    /// The version the next call goes to.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.pool.current()
    }

    /// The compaction key of each record; `None` leaves a record out of compaction.
    pub fn keys(&self, records: &[RecordView<'_>]) -> Result<Vec<Option<Vec<u8>>>, PluginError> {
        let (out, plugin) = self.pool.call("keys", &[records], |w, store, batches| {
            w.call_keys(store, &batches[0])
        })?;
        let bad = |reason: String| PluginError::BadOutput {
            plugin: plugin.name().to_string(),
            reason,
        };
        if out.keys.len() != records.len() {
            return Err(bad(format!(
                "{} keys for {} records",
                out.keys.len(),
                records.len()
            )));
        }
        plugin
            .log
            .stats()
            .passed(out.keys.iter().filter(|k| k.is_some()).count());
        out.keys
            .iter()
            .enumerate()
            .map(|(i, span)| {
                span.map(|s| {
                    let start = s.offset as usize;
                    start
                        .checked_add(s.len as usize)
                        .and_then(|end| out.data.get(start..end))
                        .map(<[u8]>::to_vec)
                        .ok_or_else(|| {
                            bad(format!("key of record {i} points outside the key buffer"))
                        })
                })
                .transpose()
            })
            .collect()
    }

    /// For each pair (older, newer) with the same key, which one survives.
    pub fn survivors(
        &self,
        older: &[RecordView<'_>],
        newer: &[RecordView<'_>],
    ) -> Result<Vec<Survivor>, PluginError> {
        if older.len() != newer.len() {
            return Err(PluginError::BadOutput {
                plugin: self.pool.current().name().to_string(),
                reason: format!(
                    "asked to pair {} older with {} newer records",
                    older.len(),
                    newer.len()
                ),
            });
        }
        let (out, plugin) = self
            .pool
            .call("survivor", &[older, newer], |w, store, batches| {
                w.call_survivor(store, &batches[0], &batches[1])
            })?;
        if out.len() != older.len() {
            return Err(PluginError::BadOutput {
                plugin: plugin.name().to_string(),
                reason: format!("{} survivors for {} pairs", out.len(), older.len()),
            });
        }
        plugin.log.stats().passed(out.len());
        Ok(out
            .into_iter()
            .map(|s| match s {
                wit::Survivor::Older => Survivor::Older,
                wit::Survivor::Newer => Survivor::Newer,
            })
            .collect())
    }

    /// Whether each surviving record is kept at all at `now_ms`.
    pub fn retain(
        &self,
        records: &[RecordView<'_>],
        now_ms: i64,
    ) -> Result<Vec<bool>, PluginError> {
        let (keep, plugin) = self.pool.call("retain", &[records], |w, store, batches| {
            w.call_retain(store, &batches[0], now_ms)
        })?;
        if keep.len() != records.len() {
            return Err(PluginError::BadOutput {
                plugin: plugin.name().to_string(),
                reason: format!("{} decisions for {} records", keep.len(), records.len()),
            });
        }
        plugin
            .log
            .stats()
            .passed(keep.iter().filter(|k| **k).count());
        Ok(keep)
    }
}
