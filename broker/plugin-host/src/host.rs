//! The engine every plugin runs in: one per broker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine};

use crate::bindings::{CompactorPre, FilterPre, PartitionerPre, wit_log};
use crate::loaded::WorldPre;
use crate::log::PluginLog;
use crate::state::GuestState;
use crate::ticker::EpochTicker;
use crate::{LoadedPlugin, PluginError, PluginKind, PluginLimits};
use crate::{imports, validate};

/// How the host is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Directory of the on-disk compilation cache; `None` compiles every component in
    /// memory on each start. This is wasmtime's own cache, keyed by a hash of the
    /// component bytes, the engine configuration and the compiler version. It is used
    /// instead of `precompile_component` + `Component::deserialize_file` because
    /// deserialising is `unsafe` (a tampered file is arbitrary native code) and this crate
    /// has none; the cache does the same work behind a safe API.
    pub cache_dir: Option<PathBuf>,
    /// How often the epoch advances. Deadlines are rounded up to whole ticks, so this is
    /// the granularity of call timeouts; each tick costs one atomic increment.
    pub epoch_tick: Duration,
    /// Limits of plugins that set none of their own.
    pub default_limits: PluginLimits,
    /// Entries kept in each plugin's log ring.
    pub log_capacity: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
            default_limits: PluginLimits::default(),
            log_capacity: 1024,
        }
    }
}

/// A plugin to load: its identity, bytes and bounds.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec<'a> {
    pub name: &'a str,
    pub version: u32,
    pub bytes: &'a [u8],
    /// The world it must satisfy; `None` detects it from the exports.
    pub kind: Option<PluginKind>,
    /// `None` takes the host's defaults.
    pub limits: Option<PluginLimits>,
}

/// The Wasm engine, its linker and the epoch ticker. Cloning shares them.
#[derive(Debug, Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    linker: Linker<GuestState>,
    config: HostConfig,
    cache: Option<Cache>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for HostInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostInner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HostInner {
    /// Epoch ticks a call of `timeout` may run: rounded up, plus one because the current
    /// tick may end right after the deadline is set.
    pub(crate) fn deadline_ticks(&self, timeout: Duration) -> u64 {
        let tick = self.config.epoch_tick.as_nanos().max(1);
        let ticks = timeout.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX - 1).max(1) + 1
    }
}

impl PluginHost {
    /// Builds the engine and linker and starts the epoch ticker, which stops when the
    /// last clone of the host (and of every plugin loaded by it) is dropped.
    pub fn new(config: HostConfig) -> Result<PluginHost, PluginError> {
        let engine_err =
            |what: &str, e: wasmtime::Error| PluginError::Engine(format!("{what}: {e:#}"));
        let mut wasm = Config::new();
        wasm.wasm_component_model(true);
        // Component-model async is unused, and leaving it on doubles the cost of a
        // synchronous call (~430 ns against ~200 ns, measured with wasmtime 48).
        wasm.concurrency_support(false);
        // Epochs rather than fuel: both stop a loop, epochs bound wall-clock time, which
        // is what a produce waiting on a partitioner cares about.
        wasm.epoch_interruption(true);
        let cache = match &config.cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    PluginError::Engine(format!(
                        "cannot create the compilation cache {}: {e}",
                        dir.display()
                    ))
                })?;
                let mut cache_config = CacheConfig::new();
                cache_config.with_directory(dir);
                let cache =
                    Cache::new(cache_config).map_err(|e| engine_err("compilation cache", e))?;
                wasm.cache(Some(cache.clone()));
                Some(cache)
            }
            None => None,
        };
        let engine = Engine::new(&wasm).map_err(|e| engine_err("engine", e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| engine_err("WASI", e))?;
        wit_log::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| engine_err("log import", e))?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                config,
                cache,
                _ticker: ticker,
            }),
        })
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Compilations served from, and added to, the on-disk cache since start.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner
            .cache
            .as_ref()
            .map_or(CacheStats::default(), |c| CacheStats {
                hits: c.cache_hits(),
                misses: c.cache_misses(),
            })
    }

    /// A new log ring of the host's configured capacity.
    pub fn new_log(&self) -> Arc<PluginLog> {
        Arc::new(PluginLog::new(self.inner.config.log_capacity))
    }

    /// Compiles and checks a component without keeping it: what an upload does before
    /// storing anything. Its imports are checked first, from the bytes, so a component
    /// importing what the host does not provide is refused without being compiled.
    pub fn validate(
        &self,
        name: &str,
        bytes: &[u8],
        kind: Option<PluginKind>,
    ) -> Result<PluginKind, PluginError> {
        let spec = LoadSpec {
            name,
            version: 0,
            bytes,
            kind,
            limits: None,
        };
        Ok(self.load(spec, self.new_log())?.kind)
    }

    /// Compiles (or fetches from the cache), validates and pre-instantiates a plugin.
    pub fn load(
        &self,
        spec: LoadSpec<'_>,
        log: Arc<PluginLog>,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let inner = &self.inner;
        let plugin = spec.name.to_string();
        // Before compiling, which takes seconds for a large component: an import the host
        // cannot provide is found in the bytes.
        imports::check(spec.name, spec.bytes)?;
        let component =
            Component::new(&inner.engine, spec.bytes).map_err(|e| PluginError::Invalid {
                plugin: plugin.clone(),
                message: format!("{e:#}"),
            })?;
        let kind = validate::check(&inner.engine, &component, spec.name, spec.kind)?;
        let pre =
            inner
                .linker
                .instantiate_pre(&component)
                .map_err(|e| PluginError::Instantiate {
                    plugin: plugin.clone(),
                    message: format!("{e:#}"),
                })?;
        let wrong = |e: wasmtime::Error| PluginError::WrongWorld {
            plugin: plugin.clone(),
            expected: kind.to_string(),
            reason: format!("{e:#}"),
        };
        let pre = match kind {
            PluginKind::Partitioner => {
                WorldPre::Partitioner(PartitionerPre::new(pre).map_err(wrong)?)
            }
            PluginKind::Filter => WorldPre::Filter(FilterPre::new(pre).map_err(wrong)?),
            PluginKind::Compactor => WorldPre::Compactor(CompactorPre::new(pre).map_err(wrong)?),
        };
        Ok(Arc::new(LoadedPlugin {
            name: plugin,
            version: spec.version,
            kind,
            limits: spec.limits.unwrap_or(inner.config.default_limits),
            log,
            pre,
            host: inner.clone(),
        }))
    }
}

/// Counters of the on-disk compilation cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: usize,
    pub misses: usize,
}
