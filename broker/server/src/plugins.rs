//! The broker's plugin service: one [`PluginHost`] and its [`Registry`] (stored under
//! `<data_dir>/plugins`), and the warm bindings the data path calls.
//!
//! A *binding* is a typed plugin wrapper for one (name, version, parameters): the topic's
//! partitioner, its compaction policy, or a filter some consumer named. Bindings keep a
//! pool of initialised instances, so they are cached here rather than created per
//! request. A binding without a version follows the registry's current version, which is
//! how a new upload takes over (hot reload) without touching this cache; a removal drops
//! the name's bindings, since a re-added name gets a new slot in the registry.
//!
//! Every method here may compile a component or call a guest, so it is synchronous and
//! runs on the blocking pool; the handlers wrap it in `spawn_blocking`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quiver_metadata::{MetadataImage, MetadataRecord, PluginVersion, RegisterPlugin};
use quiver_plugin_host::{
    CompactorPlugin, FilterPlugin, GuestError, HostConfig, PartitionerPlugin, PluginError,
    PluginHost, PluginKind, PluginLimits, PreparedComponent, Registry, RegistryError, VersionMeta,
    registry,
};

use crate::config::PluginsConfig;
use crate::error::BrokerError;
use crate::metadata::MetadataStore;
use crate::topic_config::{self, ConfigError, EffectiveConfig};

/// Plugin parameters as a plugin's `init` receives them.
pub type Params = Vec<(String, String)>;

/// The plugin runtime of one broker.
#[derive(Debug)]
pub struct PluginService {
    registry: Registry,
    config: PluginsConfig,
    partitioners: Bindings<PartitionerPlugin>,
    compactors: Bindings<CompactorPlugin>,
    filters: Bindings<FilterPlugin>,
}

impl PluginService {
    /// Starts the engine and opens the registry in `<data_dir>/plugins`, with every
    /// version stored there. Components compile on first use (through wasmtime's cache in
    /// `<data_dir>/plugins/.cache`, so a restart does not compile them again).
    pub fn open(data_dir: &Path, config: &PluginsConfig) -> Result<PluginService, BrokerError> {
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(data_dir.join("plugins").join(".cache")),
            default_limits: PluginLimits {
                call_timeout: Duration::from_millis(config.call_timeout_ms.max(1)),
                memory_bytes: config.memory_bytes,
                max_idle_instances: config.max_idle_instances,
            },
            log_capacity: config.log_entries,
            ..HostConfig::default()
        })
        .map_err(|e| BrokerError::Internal(format!("cannot start the plugin engine: {e}")))?;
        let registry = Registry::open(data_dir, host)
            .map_err(|e| BrokerError::Internal(format!("cannot open the plugin registry: {e}")))?;
        let max = config.max_cached_bindings.max(1);
        Ok(PluginService {
            registry,
            config: config.clone(),
            partitioners: Bindings::new(max),
            compactors: Bindings::new(max),
            filters: Bindings::new(max),
        })
    }

    /// The registry: stored versions, descriptions and logs.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The broker-wide plugin settings.
    pub fn config(&self) -> &PluginsConfig {
        &self.config
    }

    /// The limits of a plugin version that sets none of its own (`[plugins]`).
    pub fn default_limits(&self) -> PluginLimits {
        self.registry.host().config().default_limits
    }

    /// Validates a component and stores its bytes by content hash; no version exists
    /// until the metadata registers one. `kind` is the world's name (`partitioner`,
    /// `filter`, `compactor`) or `None` to detect it.
    pub fn prepare(
        &self,
        name: &str,
        component: &[u8],
        kind: Option<&str>,
    ) -> Result<PreparedComponent, BrokerError> {
        let kind = kind
            .map(str::parse::<PluginKind>)
            .transpose()
            .map_err(|e| BrokerError::InvalidPlugin(format!("plugin `{name}`: {e}")))?;
        self.registry
            .prepare(name, component, kind)
            .map_err(upload_error)
    }

    /// Loads a version the metadata registered; a newer current version takes over
    /// every binding that follows the name (hot reload).
    pub fn install(&self, name: &str, version: &PluginVersion) -> Result<(), BrokerError> {
        self.registry
            .install(VersionMeta {
                name: name.to_string(),
                version: version.version,
                kind: host_kind(version.kind),
                sha256: version.content_hash.clone(),
                size_bytes: version.size,
                added_ms: version.uploaded_at_ms,
                limits: version
                    .limits
                    .as_ref()
                    .map(|l| host_limits(l, &self.default_limits())),
            })
            .map_err(registry_error)
    }

    /// Loads every plugin version `image` holds (at start), then drops stored
    /// components no version refers to any more.
    pub fn install_all(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let mut live = BTreeSet::new();
        for plugin in image.plugins() {
            for version in plugin.versions.values() {
                live.insert(version.content_hash.clone());
                // One version that cannot load must not keep the broker down: calls of
                // it fail with this error, everything else serves.
                if let Err(e) = self.install(&plugin.name, version) {
                    tracing::error!(plugin = %plugin.name, version = version.version, error = %e, "cannot load a registered plugin version");
                }
            }
        }
        let removed = self
            .registry
            .collect_garbage(&live)
            .map_err(registry_error)?;
        if removed > 0 {
            tracing::info!(removed, "removed stored plugin components no version uses");
        }
        Ok(())
    }

    /// Forgets versions the metadata removed, and the name's warm bindings.
    pub fn uninstall(&self, name: &str, versions: &[u32]) -> Result<(), BrokerError> {
        let result = self.registry.uninstall(name, versions);
        self.partitioners.forget(name);
        self.compactors.forget(name);
        self.filters.forget(name);
        result.map(|_| ()).map_err(registry_error)
    }

    /// Imports the plugin versions an older data directory stored per name
    /// (`<data>/plugins/<name>/<version>.wasm`) into the blob store and the metadata
    /// log, keeping their version numbers (topics may pin them), then moves the old
    /// directories aside. Versions the metadata already holds are skipped, so a crash
    /// half-way is finished by the next start.
    pub fn migrate_legacy(
        &self,
        metadata: &MetadataStore,
        data_dir: &Path,
    ) -> Result<(), BrokerError> {
        let legacy = registry::legacy_versions(data_dir).map_err(registry_error)?;
        if legacy.is_empty() {
            return Ok(());
        }
        for old in &legacy {
            let meta = &old.meta;
            let image = metadata.image();
            let known = image
                .plugin(&meta.name)
                .is_some_and(|p| p.versions.contains_key(&meta.version));
            if known {
                continue;
            }
            let bytes = old.read().map_err(registry_error)?;
            self.registry
                .store_blob(&meta.sha256, &bytes)
                .map_err(registry_error)?;
            metadata.append(&MetadataRecord::RegisterPlugin(RegisterPlugin {
                name: meta.name.clone(),
                version: meta.version,
                kind: metadata_kind(meta.kind),
                content_hash: meta.sha256.clone(),
                size: meta.size_bytes,
                uploaded_at_ms: meta.added_ms,
                limits: meta.limits.as_ref().map(metadata_limits),
            }))?;
        }
        let moved = registry::retire_legacy(data_dir).map_err(registry_error)?;
        tracing::info!(versions = legacy.len(), plugins = ?moved, "imported the old plugin registry into the metadata log");
        Ok(())
    }

    /// The warm partitioner binding for a topic's `partitioner=NAME[@VERSION]`.
    pub fn partitioner(
        &self,
        reference: &str,
        params: &[(String, String)],
    ) -> Result<Arc<PartitionerPlugin>, BrokerError> {
        let key = BindingKey::parse(reference, params)?;
        self.partitioners.get_or_bind(key, |k| {
            self.registry
                .partitioner(&k.name, k.version, k.params.clone())
                .map_err(registry_error)
        })
    }

    /// The warm compactor binding for a topic's `compaction.policy=NAME[@VERSION]`.
    pub fn compactor(
        &self,
        reference: &str,
        params: &[(String, String)],
    ) -> Result<Arc<CompactorPlugin>, BrokerError> {
        let key = BindingKey::parse(reference, params)?;
        self.compactors.get_or_bind(key, |k| {
            self.registry
                .compactor(&k.name, k.version, k.params.clone())
                .map_err(registry_error)
        })
    }

    /// The warm filter binding a fetch or subscription names. Binding checks what the
    /// consumer asked for, each with its own error: the plugin exists (UNKNOWN_PLUGIN), is
    /// a filter, and its `init` accepts the parameters (INVALID_REQUEST for either).
    pub fn filter(
        &self,
        name: &str,
        version: Option<u32>,
        params: &[(String, String)],
    ) -> Result<Arc<FilterPlugin>, BrokerError> {
        let key = BindingKey {
            name: name.to_string(),
            version,
            params: params.to_vec(),
        };
        self.filters.get_or_bind(key, |k| {
            self.registry
                .filter(&k.name, k.version, k.params.clone())
                .map_err(|e| filter_error(&k.name, e))
        })
    }

    /// Checks what a topic's configs bind, as a create or alter must before it is
    /// accepted: each named plugin exists, is of the right kind, and its `init` accepts the
    /// parameters. `previous` (the configs before an alter) skips bindings that did not
    /// change, so a plugin removed with force does not block unrelated config changes.
    pub fn check_topic(
        &self,
        config: &EffectiveConfig,
        previous: Option<&EffectiveConfig>,
    ) -> Result<(), BrokerError> {
        let same_partitioner = previous.is_some_and(|p| {
            p.partitioner == config.partitioner && p.partitioner_params == config.partitioner_params
        });
        if let Some(reference) = &config.partitioner
            && !same_partitioner
        {
            self.check_binding("partitioner", reference, PluginKind::Partitioner)?;
            self.partitioner(reference, &config.partitioner_params)
                .map_err(|e| refused("partitioner", reference, e))?;
        }
        let same_policy = previous.is_some_and(|p| {
            p.compaction_policy == config.compaction_policy
                && p.compaction_params == config.compaction_params
        });
        if let Some(reference) = &config.compaction_policy
            && !same_policy
        {
            self.check_binding("compaction.policy", reference, PluginKind::Compactor)?;
            self.compactor(reference, &config.compaction_params)
                .map_err(|e| refused("compaction.policy", reference, e))?;
        }
        Ok(())
    }

    /// The named plugin (and version) exists and is a `kind`.
    fn check_binding(
        &self,
        key: &str,
        reference: &str,
        kind: PluginKind,
    ) -> Result<(), BrokerError> {
        let (name, version) = topic_config::parse_plugin_ref(reference)
            .map_err(|reason| bad_config(key, reference, reason))?;
        let info = self.registry.describe(&name).map_err(|_| {
            bad_config(
                key,
                reference,
                format!("no plugin named `{name}` is registered; upload it first (quiver plugin add {name} FILE)"),
            )
        })?;
        let wanted = version.unwrap_or(info.current);
        let Some(meta) = info.versions.iter().find(|m| m.version == wanted) else {
            let available: Vec<u32> = info.versions.iter().map(|m| m.version).collect();
            return Err(bad_config(
                key,
                reference,
                format!("plugin `{name}` has no version {wanted}; it has {available:?}"),
            ));
        };
        if meta.kind != kind {
            return Err(bad_config(
                key,
                reference,
                format!(
                    "plugin `{name}` version {wanted} is a {}, and {key} needs a {kind}",
                    meta.kind
                ),
            ));
        }
        Ok(())
    }
}

/// A failed plugin call: PLUGIN_FAILED, with the plugin's own message (which names it).
pub fn call_error(e: PluginError) -> BrokerError {
    BrokerError::PluginFailed(e.to_string())
}

/// A registry error outside an upload.
pub fn registry_error(e: RegistryError) -> BrokerError {
    match e {
        RegistryError::NotFound { .. } | RegistryError::VersionNotFound { .. } => {
            BrokerError::UnknownPlugin(e.to_string())
        }
        RegistryError::InvalidName { .. } | RegistryError::InvalidHash { .. } => {
            BrokerError::InvalidPlugin(e.to_string())
        }
        RegistryError::Plugin(p) => call_error(p),
        _ => BrokerError::Internal(e.to_string()),
    }
}

/// Why a consumer's filter cannot be bound: a name that is not a filter, or parameters
/// its `init` refuses, is the consumer's mistake (INVALID_REQUEST).
fn filter_error(name: &str, e: RegistryError) -> BrokerError {
    match e {
        RegistryError::Plugin(PluginError::WrongWorld { reason, .. }) => {
            BrokerError::InvalidRequest(format!(
                "filter `{name}` is not a filter: {reason}; `quiver plugin list` shows each \
                 plugin's kind"
            ))
        }
        RegistryError::Plugin(PluginError::Guest {
            error: GuestError::InvalidConfig(reason),
            ..
        }) => {
            BrokerError::InvalidRequest(format!("filter `{name}` refused its parameters: {reason}"))
        }
        other => registry_error(other),
    }
}

/// An upload's error: what is wrong with the component is INVALID_PLUGIN.
fn upload_error(e: RegistryError) -> BrokerError {
    match e {
        RegistryError::Plugin(
            p @ (PluginError::Invalid { .. }
            | PluginError::WrongWorld { .. }
            | PluginError::ForbiddenImport { .. }
            | PluginError::Instantiate { .. }),
        ) => BrokerError::InvalidPlugin(p.to_string()),
        RegistryError::Plugin(PluginError::Engine(m)) => BrokerError::Internal(m),
        other => registry_error(other),
    }
}

fn bad_config(key: &str, value: &str, reason: String) -> BrokerError {
    BrokerError::InvalidConfig(ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    })
}

/// A binding refused at create or alter time (for example `init` rejected the topic's
/// parameters) is a config error, named by the key.
fn refused(key: &str, reference: &str, e: BrokerError) -> BrokerError {
    match e {
        BrokerError::PluginFailed(reason) | BrokerError::UnknownPlugin(reason) => {
            bad_config(key, reference, reason)
        }
        other => other,
    }
}

/// What identifies a binding: its instances are initialised with these parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BindingKey {
    name: String,
    version: Option<u32>,
    params: Params,
}

impl BindingKey {
    fn parse(reference: &str, params: &[(String, String)]) -> Result<BindingKey, BrokerError> {
        let (name, version) = topic_config::parse_plugin_ref(reference).map_err(|reason| {
            BrokerError::UnknownPlugin(format!("plugin `{reference}`: {reason}"))
        })?;
        Ok(BindingKey {
            name,
            version,
            params: params.to_vec(),
        })
    }
}

/// Warm bindings of one kind, bounded: past `max` the cache starts over, which costs
/// only re-initialising instances on next use.
#[derive(Debug)]
struct Bindings<T> {
    max: usize,
    warm: Mutex<HashMap<BindingKey, Arc<T>>>,
}

impl<T> Bindings<T> {
    fn new(max: usize) -> Self {
        Bindings {
            max,
            warm: Mutex::new(HashMap::new()),
        }
    }

    fn get_or_bind(
        &self,
        key: BindingKey,
        bind: impl FnOnce(&BindingKey) -> Result<T, BrokerError>,
    ) -> Result<Arc<T>, BrokerError> {
        if let Some(found) = self.warm.lock().get(&key) {
            return Ok(Arc::clone(found));
        }
        // Binding compiles and instantiates: never under the lock. Two callers racing
        // here both bind; the first insert wins and the other binding is dropped.
        let bound = Arc::new(bind(&key)?);
        let mut warm = self.warm.lock();
        if warm.len() >= self.max && !warm.contains_key(&key) {
            warm.clear();
        }
        Ok(Arc::clone(warm.entry(key).or_insert(bound)))
    }

    fn forget(&self, name: &str) {
        self.warm.lock().retain(|k, _| k.name != name);
    }
}

/// The plugin host's name for a metadata plugin kind (the two crates do not know each
/// other).
fn host_kind(kind: quiver_metadata::PluginKind) -> PluginKind {
    match kind {
        quiver_metadata::PluginKind::Partitioner => PluginKind::Partitioner,
        quiver_metadata::PluginKind::Filter => PluginKind::Filter,
        quiver_metadata::PluginKind::Compactor => PluginKind::Compactor,
    }
}

/// The metadata's name for a plugin host kind.
pub fn metadata_kind(kind: PluginKind) -> quiver_metadata::PluginKind {
    match kind {
        PluginKind::Partitioner => quiver_metadata::PluginKind::Partitioner,
        PluginKind::Filter => quiver_metadata::PluginKind::Filter,
        PluginKind::Compactor => quiver_metadata::PluginKind::Compactor,
    }
}

/// A version's stored limits, where 0 stands for the broker's default: an upload that
/// sets only its time limit keeps following `plugins.memory_bytes`.
fn host_limits(l: &quiver_metadata::PluginLimits, defaults: &PluginLimits) -> PluginLimits {
    PluginLimits {
        call_timeout: match l.call_timeout_ms {
            0 => defaults.call_timeout,
            ms => Duration::from_millis(ms),
        },
        memory_bytes: match l.memory_bytes {
            0 => defaults.memory_bytes,
            bytes => usize::try_from(bytes).unwrap_or(usize::MAX),
        },
        max_idle_instances: match l.max_idle_instances {
            0 => defaults.max_idle_instances,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
    }
}

fn metadata_limits(l: &PluginLimits) -> quiver_metadata::PluginLimits {
    quiver_metadata::PluginLimits {
        call_timeout_ms: u64::try_from(l.call_timeout.as_millis()).unwrap_or(u64::MAX),
        memory_bytes: u64::try_from(l.memory_bytes).unwrap_or(u64::MAX),
        max_idle_instances: u32::try_from(l.max_idle_instances).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_reused_bounded_and_forgotten_by_name() {
        let cache: Bindings<u32> = Bindings::new(2);
        let key = |name: &str, p: &str| BindingKey {
            name: name.into(),
            version: None,
            params: vec![("p".into(), p.into())],
        };
        let mut made = 0;
        let mut get = |k: BindingKey| {
            *cache
                .get_or_bind(k, |_| {
                    made += 1;
                    Ok(made)
                })
                .expect("binds")
        };
        assert_eq!(get(key("a", "1")), 1);
        assert_eq!(get(key("a", "1")), 1, "the same key reuses its binding");
        assert_eq!(
            get(key("a", "2")),
            2,
            "other parameters are another binding"
        );
        assert_eq!(get(key("b", "1")), 3, "a third key starts the cache over");
        assert_eq!(get(key("a", "1")), 4);
        cache.forget("a");
        assert_eq!(cache.warm.lock().len(), 1);
    }

    #[test]
    fn a_failed_bind_is_not_cached() {
        let cache: Bindings<u32> = Bindings::new(4);
        let key = BindingKey {
            name: "x".into(),
            version: Some(2),
            params: Vec::new(),
        };
        let err = cache
            .get_or_bind(key.clone(), |_| {
                Err(registry_error(RegistryError::NotFound { name: "x".into() }))
            })
            .expect_err("not found");
        assert!(matches!(err, BrokerError::UnknownPlugin(_)), "{err}");
        assert!(cache.warm.lock().is_empty());
    }
}
