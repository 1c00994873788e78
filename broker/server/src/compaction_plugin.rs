//! A compactor plugin as the storage cleaner's [`CompactionPolicy`].
//!
//! The cleaner hands the policy decoded records a batch at a time; this adapter passes
//! them to the plugin as borrowed views (one guest call per batch for keys, retention and
//! the survivors of the keys the batch contests; the cleaner checks there is one answer
//! per pair) and turns a plugin failure into a
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

    fn survivors(&mut self, pairs: &[(&Record, &Record)]) -> Result<Vec<Survivor>, PolicyError> {
        let older: Vec<RecordView<'_>> = pairs.iter().map(|(o, _)| RecordView::from(*o)).collect();
        let newer: Vec<RecordView<'_>> = pairs.iter().map(|(_, n)| RecordView::from(*n)).collect();
        let answers = self
            .plugin
            .survivors(&older, &newer)
            .map_err(|e| self.error(e))?;
        Ok(answers
            .into_iter()
            .map(|s| match s {
                quiver_plugin_host::Survivor::Older => Survivor::Older,
                quiver_plugin_host::Survivor::Newer => Survivor::Newer,
            })
            .collect())
    }

    fn retain(&mut self, records: &[Record], now_ms: i64) -> Result<Vec<bool>, PolicyError> {
        self.plugin
            .retain(&views(records), now_ms)
            .map_err(|e| self.error(e))
    }
}
