//! Where a typed plugin wrapper gets its current version: the hot-reload point.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::LoadedPlugin;

/// The version of a plugin a wrapper calls. A *following* source shares the registry's
/// slot for the name, so a newly added version takes over atomically for the next call
/// while calls in flight finish on the version they started with; a *pinned* source
/// never changes.
#[derive(Debug, Clone)]
pub struct PluginSource {
    slot: Arc<ArcSwap<LoadedPlugin>>,
}

impl PluginSource {
    /// A source that always calls `plugin`.
    pub fn pinned(plugin: Arc<LoadedPlugin>) -> PluginSource {
        PluginSource {
            slot: Arc::new(ArcSwap::new(plugin)),
        }
    }

    pub(crate) fn following(slot: Arc<ArcSwap<LoadedPlugin>>) -> PluginSource {
        PluginSource { slot }
    }

    /// The version calls go to right now.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.slot.load_full()
    }
}
