//! The typed wrapper of the `filter` world.

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::Filter;
use crate::bindings::wit::{self, Parts};
use crate::loaded::WorldPre;
use crate::pool::{GuestResult, Pool, World};
use crate::state::GuestState;
use crate::{LoadedPlugin, PluginError, PluginKind, PluginSource, RecordView};

impl World for Filter {
    const KIND: PluginKind = PluginKind::Filter;

    fn instantiate(
        plugin: &LoadedPlugin,
        store: &mut Store<GuestState>,
    ) -> Option<wasmtime::Result<Self>> {
        match &plugin.pre {
            WorldPre::Filter(pre) => Some(pre.instantiate(store)),
            _ => None,
        }
    }

    fn init(&self, store: &mut Store<GuestState>, config: &wit::Config) -> GuestResult<Parts> {
        self.call_init(store, config)
    }
}

/// A filter plugin bound to one consumer's parameters, with its own instance pool.
#[derive(Debug)]
pub struct FilterPlugin {
    pool: Pool<Filter>,
}

impl FilterPlugin {
    /// Binds the plugin behind `source` with `config`; fails now when it is not a
    /// filter or its `init` refuses the parameters.
    pub fn new(source: PluginSource, config: Vec<(String, String)>) -> Result<Self, PluginError> {
        Ok(FilterPlugin {
            pool: Pool::new(source, config)?,
        })
    }

    /// The version the next call goes to.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.pool.current()
    }

    /// One decision per record: true keeps it.
    pub fn keep(&self, records: &[RecordView<'_>]) -> Result<Vec<bool>, PluginError> {
        let (keep, plugin) = self.pool.call("keep", &[records], |w, store, batches| {
            w.call_keep(store, &batches[0])
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
