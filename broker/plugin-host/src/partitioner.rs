//! The typed wrapper of the `partitioner` world.

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::Partitioner;
use crate::bindings::wit::{self, Parts};
use crate::loaded::WorldPre;
use crate::pool::{GuestResult, Pool, World};
use crate::state::GuestState;
use crate::{LoadedPlugin, PluginError, PluginKind, PluginSource, RecordView};

impl World for Partitioner {
    const KIND: PluginKind = PluginKind::Partitioner;

    fn instantiate(
        plugin: &LoadedPlugin,
        store: &mut Store<GuestState>,
    ) -> Option<wasmtime::Result<Self>> {
        match &plugin.pre {
            WorldPre::Partitioner(pre) => Some(pre.instantiate(store)),
            _ => None,
        }
    }

    fn init(&self, store: &mut Store<GuestState>, config: &wit::Config) -> GuestResult<Parts> {
        self.call_init(store, config)
    }
}

/// A partitioner plugin bound to one set of parameters, with its own instance pool.
/// Calls are synchronous and may come from many threads at once.
#[derive(Debug)]
pub struct PartitionerPlugin {
    pool: Pool<Partitioner>,
}

impl PartitionerPlugin {
    /// Binds the plugin behind `source` with `config`; fails now when it is not a
    /// partitioner or its `init` refuses the parameters.
    pub fn new(source: PluginSource, config: Vec<(String, String)>) -> Result<Self, PluginError> {
        Ok(PartitionerPlugin {
            pool: Pool::new(source, config)?,
        })
    }

    /// The version the next call goes to.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.pool.current()
    }

    /// One partition per record, each checked to be below `partition_count`.
    pub fn partition(
        &self,
        records: &[RecordView<'_>],
        partition_count: u32,
    ) -> Result<Vec<u32>, PluginError> {
        let (partitions, plugin) =
            self.pool
                .call("partition", &[records], |w, store, batches| {
                    w.call_partition(store, &batches[0], partition_count)
                })?;
        if partitions.len() != records.len() {
            return Err(PluginError::BadOutput {
                plugin: plugin.name().to_string(),
                reason: format!(
                    "{} partitions for {} records",
                    partitions.len(),
                    records.len()
                ),
            });
        }
        if let Some((i, p)) = partitions
            .iter()
            .enumerate()
            .find(|(_, p)| **p >= partition_count)
        {
            return Err(PluginError::BadOutput {
                plugin: plugin.name().to_string(),
                reason: format!(
                    "record {i} sent to partition {p}, but the topic has {partition_count}"
                ),
            });
        }
        plugin.log.stats().passed(partitions.len());
        Ok(partitions)
    }
}
