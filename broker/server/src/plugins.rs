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

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quiver_plugin_host::{
    CompactorPlugin, FilterPlugin, HostConfig, PartitionerPlugin, PluginError, PluginHost,
    PluginKind, PluginLimits, Registry, RegistryError, VersionMeta,
};

use crate::broker::Topic;
use crate::config::PluginsConfig;
use crate::error::BrokerError;
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

    /// Validates and stores a new version of `name` and makes it current. `kind` is the
    /// world's name (`partitioner`, `filter`, `compactor`) or `None` to detect it.
    pub fn add(
        &self,
        name: &str,
        component: &[u8],
        kind: Option<&str>,
    ) -> Result<VersionMeta, BrokerError> {
        let kind = kind
            .map(str::parse::<PluginKind>)
            .transpose()
            .map_err(|e| BrokerError::InvalidPlugin(format!("plugin `{name}`: {e}")))?;
        self.registry
            .add(name, component, kind, None)
            .map_err(upload_error)
    }

    /// Removes versions of `name` (all for `None`); refused while `bound_topics` is not
    /// empty unless `force`. Drops the name's warm bindings.
    pub fn remove(
        &self,
        name: &str,
        version: Option<u32>,
        bound_topics: &[String],
        force: bool,
    ) -> Result<Vec<u32>, BrokerError> {
        let removed = self
            .registry
            .remove(name, version, bound_topics, force)
            .map_err(registry_error)?;
        self.partitioners.forget(name);
        self.compactors.forget(name);
        self.filters.forget(name);
        Ok(removed)
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
        })
    }

    /// The warm filter binding a fetch or subscription names.
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
            self.registry.filter(&k.name, k.version, k.params.clone())
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

/// The topics whose `partitioner` or `compaction.policy` names plugin `name`. With a
/// `version`, only those that would lose their plugin if it went: topics pinned to it,
/// and topics following the current version when it is `current`.
pub fn bound_topics(
    topics: &[Arc<Topic>],
    name: &str,
    version: Option<u32>,
    current: Option<u32>,
) -> Vec<String> {
    topics
        .iter()
        .filter(|t| {
            [&t.config.partitioner, &t.config.compaction_policy]
                .into_iter()
                .flatten()
                .filter_map(|r| topic_config::parse_plugin_ref(r).ok())
                .any(|(n, pinned)| {
                    n == name
                        && match (version, pinned) {
                            (None, _) => true,
                            (Some(v), Some(p)) => v == p,
                            (Some(v), None) => Some(v) == current,
                        }
                })
        })
        .map(|t| t.record.name.clone())
        .collect()
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
        RegistryError::InUse { .. } => BrokerError::PluginInUse(e.to_string()),
        RegistryError::InvalidName { .. } => BrokerError::InvalidPlugin(e.to_string()),
        RegistryError::Plugin(p) => call_error(p),
        RegistryError::Io { .. } | RegistryError::Corrupt { .. } => {
            BrokerError::Internal(e.to_string())
        }
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
        bind: impl FnOnce(&BindingKey) -> Result<T, RegistryError>,
    ) -> Result<Arc<T>, BrokerError> {
        if let Some(found) = self.warm.lock().get(&key) {
            return Ok(Arc::clone(found));
        }
        // Binding compiles and instantiates: never under the lock. Two callers racing
        // here both bind; the first insert wins and the other binding is dropped.
        let bound = Arc::new(bind(&key).map_err(registry_error)?);
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
                Err(RegistryError::NotFound { name: "x".into() })
            })
            .expect_err("not found");
        assert!(matches!(err, BrokerError::UnknownPlugin(_)), "{err}");
        assert!(cache.warm.lock().is_empty());
    }
}
