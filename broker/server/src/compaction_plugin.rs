//! A compactor plugin as the storage cleaner's [`CompactionPolicy`].
//!
//! The cleaner hands the policy decoded records a batch at a time; this adapter passes
//! them to the plugin as borrowed views (one guest call per batch for keys and retention,
//! one per contested key for survivors) and turns a plugin failure into a
//! [`PolicyError`] naming the plugin, on which the cleaner leaves every segment as it
//! was.

use bytes::Bytes;
use quiver_plugin_host::{CompactorPlugin, RecordView};
use quiver_proto::Record;
use quiver_storage::{CompactionPolicy, PolicyError, Survivor};

/// The topic's `compaction.policy` plugin, adapted to the cleaner.
#[derive(Debug)]
pub struct PluginPolicy<'a> {
    plugin: &'a CompactorPlugin,
}

impl<'a> PluginPolicy<'a> {
    pub fn new(plugin: &'a CompactorPlugin) -> Self {
        PluginPolicy { plugin }
    }

    fn error(&self, e: quiver_plugin_host::PluginError) -> PolicyError {
        let name = self.plugin.current().name().to_string();
        PolicyError::new(format!("plugin `{name}`"), e.to_string())
    }
}

fn views(records: &[Record]) -> Vec<RecordView<'_>> {
    records.iter().map(RecordView::from).collect()
}

impl CompactionPolicy for PluginPolicy<'_> {
    fn key(&mut self, records: &[Record]) -> Result<Vec<Option<Bytes>>, PolicyError> {
        let keys = self
            .plugin
            .keys(&views(records))
            .map_err(|e| self.error(e))?;
        Ok(keys.into_iter().map(|k| k.map(Bytes::from)).collect())
    }

    fn survivor(&mut self, older: &Record, newer: &Record) -> Result<Survivor, PolicyError> {
        let older = [RecordView::from(older)];
        let newer = [RecordView::from(newer)];
        let answer = self
            .plugin
            .survivors(&older, &newer)
            .map_err(|e| self.error(e))?;
        match answer.first() {
            Some(quiver_plugin_host::Survivor::Older) => Ok(Survivor::Older),
            Some(quiver_plugin_host::Survivor::Newer) => Ok(Survivor::Newer),
            None => Err(PolicyError::new(
                format!("plugin `{}`", self.plugin.current().name()),
                "survivor returned no answer for one pair",
            )),
        }
    }

    fn retain(&mut self, records: &[Record], now_ms: i64) -> Result<Vec<bool>, PolicyError> {
        self.plugin
            .retain(&views(records), now_ms)
            .map_err(|e| self.error(e))
    }
}
