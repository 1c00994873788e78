//! One compiled, validated, pre-instantiated version of a plugin.

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::{CompactorPre, FilterPre, PartitionerPre};
use crate::host::HostInner;
use crate::log::PluginLog;
use crate::state::GuestState;
use crate::{PluginError, PluginKind, PluginLimits};

/// The pre-instantiated component of the plugin's world: imports resolved and exports
/// type-checked once, so an instance costs only its allocation and start.
pub(crate) enum WorldPre {
    Partitioner(PartitionerPre<GuestState>),
    Filter(FilterPre<GuestState>),
    Compactor(CompactorPre<GuestState>),
}

/// A plugin version ready to instantiate. Cheap to share; instances live in the typed
/// wrappers' pools, not here.
pub struct LoadedPlugin {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) kind: PluginKind,
    pub(crate) limits: PluginLimits,
    pub(crate) log: Arc<PluginLog>,
    pub(crate) pre: WorldPre,
    pub(crate) host: Arc<HostInner>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// The plugin's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version number, from 1.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The world it satisfies.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// Its time and memory bounds.
    pub fn limits(&self) -> PluginLimits {
        self.limits
    }

    /// Its log, shared with the other versions of the name.
    pub fn log(&self) -> &Arc<PluginLog> {
        &self.log
    }

    /// A fresh store with the plugin's memory cap and a deadline of one call.
    pub(crate) fn new_store(&self) -> Store<GuestState> {
        let state = GuestState::new(self.log.clone(), self.version, self.limits.memory_bytes);
        let mut store = Store::new(&self.host.engine, state);
        store.limiter(|s| &mut s.limiter);
        self.arm_deadline(&mut store);
        store
    }

    /// Sets the store's epoch deadline one call timeout from now. Called before each call
    /// and before instantiation, since the deadline is counted from the current epoch.
    pub(crate) fn arm_deadline(&self, store: &mut Store<GuestState>) {
        store.set_epoch_deadline(self.host.deadline_ticks(self.limits.call_timeout));
        store.data_mut().limiter.reset();
        store.data().stderr.clear_tail();
    }

    pub(crate) fn wrong_world(&self, expected: PluginKind) -> PluginError {
        PluginError::WrongWorld {
            plugin: self.name.clone(),
            expected: expected.to_string(),
            reason: format!("version {} is a {}", self.version, self.kind),
        }
    }
}
