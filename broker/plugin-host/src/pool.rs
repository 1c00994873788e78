//! Warm instances of one plugin binding, reused call after call.
//!
//! A pool belongs to a typed wrapper (one plugin name and one set of parameters), since
//! an instance is initialised with its parameters. A call takes an idle instance or
//! creates one, runs with a fresh deadline, and gives the instance back unless it
//! trapped: after a trap an instance's state is undefined, so it is dropped and the next
//! call gets a new one. When the source moves to a new version, idle instances of the old
//! one are dropped and instances returning from calls in flight are not kept.

use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::Store;

use crate::bindings::wit;
use crate::bindings::wit::{Parts, RecordBatch};
use crate::record::{self, RecordView};
use crate::state::GuestState;
use crate::trap::classify;
use crate::{GuestError, LoadedPlugin, PluginError, PluginKind, PluginSource};

/// What the world's generated call returns: a trap, or the guest's own result.
pub(crate) type GuestResult<R> = wasmtime::Result<Result<R, wit::Error>>;

/// A world's bindings, as far as the pool needs them.
pub(crate) trait World: Sized + Send + 'static {
    const KIND: PluginKind;

    /// Instantiates `plugin` into `store`; `None` when the plugin is another world.
    fn instantiate(
        plugin: &LoadedPlugin,
        store: &mut Store<GuestState>,
    ) -> Option<wasmtime::Result<Self>>;

    fn init(&self, store: &mut Store<GuestState>, config: &wit::Config) -> GuestResult<Parts>;
}

/// A live instance and what it was made from.
struct Live<W> {
    store: Store<GuestState>,
    world: W,
    parts: Parts,
    plugin: Arc<LoadedPlugin>,
}

struct Idle<W> {
    /// The version the idle instances belong to.
    plugin: Option<Arc<LoadedPlugin>>,
    instances: Vec<Live<W>>,
}

pub(crate) struct Pool<W: World> {
    source: PluginSource,
    config: Vec<(String, String)>,
    idle: Mutex<Idle<W>>,
}

impl<W: World> std::fmt::Debug for Pool<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("plugin", &self.source.current())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<W: World> Pool<W> {
    /// A pool over `source`, warmed with one instance so that a wrong world or a
    /// parameter `init` refuses is reported now rather than at the first call.
    pub(crate) fn new(
        source: PluginSource,
        config: Vec<(String, String)>,
    ) -> Result<Self, PluginError> {
        let pool = Pool {
            source,
            config,
            idle: Mutex::new(Idle {
                plugin: None,
                instances: Vec::new(),
            }),
        };
        let live = pool.checkout()?;
        pool.checkin(live);
        Ok(pool)
    }

    /// The version the next call goes to.
    pub(crate) fn current(&self) -> Arc<LoadedPlugin> {
        self.source.current()
    }

    /// Runs `call` (the guest's function `during`, named in a trap's error) on an
    /// instance with `inputs` encoded as the batches the plugin asked for. Returns the
    /// result and the version that produced it.
    pub(crate) fn call<R>(
        &self,
        during: &'static str,
        inputs: &[&[RecordView<'_>]],
        call: impl FnOnce(&W, &mut Store<GuestState>, &[RecordBatch]) -> GuestResult<R>,
    ) -> Result<(R, Arc<LoadedPlugin>), PluginError> {
        let mut live = self.checkout()?;
        let plugin = live.plugin.clone();
        let mut batches = Vec::with_capacity(inputs.len());
        for records in inputs {
            match record::encode(records, live.parts) {
                Ok(batch) => batches.push(batch),
                Err(record::TooLarge) => {
                    self.checkin(live);
                    return Err(PluginError::BatchTooLarge {
                        plugin: plugin.name.clone(),
                        reason: "the batch holds more than 4 GiB of bytes or 4 G headers; split it"
                            .into(),
                    });
                }
            }
        }
        plugin.arm_deadline(&mut live.store);
        let records = inputs.iter().map(|r| r.len()).sum();
        let started = std::time::Instant::now();
        let outcome = call(&live.world, &mut live.store, &batches);
        let took = started.elapsed();
        let memory = live.store.data().limiter.grown_to();
        let result = match outcome {
            Ok(Ok(out)) => {
                self.checkin(live);
                Ok((out, plugin.clone()))
            }
            Ok(Err(guest)) => {
                self.checkin(live);
                Err(PluginError::Guest {
                    plugin: plugin.name.clone(),
                    error: GuestError::from(guest),
                })
            }
            Err(trap) => Err(classify(&plugin, &live.store, trap, during)),
        };
        plugin
            .log
            .stats()
            .call(records, took, memory, result.as_ref().err());
        result
    }

    fn checkout(&self) -> Result<Live<W>, PluginError> {
        let plugin = self.source.current();
        let stale = {
            let mut idle = self.idle.lock();
            let same = idle
                .plugin
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, &plugin));
            if same {
                if let Some(live) = idle.instances.pop() {
                    return Ok(live);
                }
                Vec::new()
            } else {
                idle.plugin = Some(plugin.clone());
                std::mem::take(&mut idle.instances)
            }
        };
        // Old instances are dropped outside the lock: freeing a store unmaps memory.
        drop(stale);
        self.instantiate(plugin)
    }

    fn checkin(&self, live: Live<W>) {
        let mut idle = self.idle.lock();
        let current = idle
            .plugin
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, &live.plugin));
        if current && idle.instances.len() < live.plugin.limits.max_idle_instances {
            idle.instances.push(live);
        } else {
            drop(idle);
            drop(live);
        }
    }

    fn instantiate(&self, plugin: Arc<LoadedPlugin>) -> Result<Live<W>, PluginError> {
        let mut store = plugin.new_store();
        let world = match W::instantiate(&plugin, &mut store) {
            None => return Err(plugin.wrong_world(W::KIND)),
            Some(Ok(world)) => world,
            Some(Err(e)) => return Err(classify(&plugin, &store, e, "instantiation")),
        };
        match world.init(&mut store, &self.config) {
            Ok(Ok(parts)) => Ok(Live {
                store,
                world,
                parts,
                plugin,
            }),
            Ok(Err(guest)) => Err(PluginError::Guest {
                plugin: plugin.name.clone(),
                error: GuestError::from(guest),
            }),
            Err(e) => Err(classify(&plugin, &store, e, "init")),
        }
    }
}
