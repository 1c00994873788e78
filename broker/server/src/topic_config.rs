//! Topic configs: the keys a topic accepts, their defaults, and how they become a
//! storage [`LogConfig`].
//!
//! A topic stores only the keys set on it; the effective value of every other key comes
//! from the broker's `topic_defaults`, then from the built-in default below. Every value is
//! checked when it is set, so a bad value is refused at create or alter time with a
//! message naming the key, never discovered later by the storage layer.

use std::collections::BTreeMap;
use std::time::Duration;

use quiver_storage::{CleanupPolicy, FlushPolicy, LogConfig};

/// Every key a topic accepts, with its built-in default and what it means.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "retention.ms",
        "604800000",
        "delete closed segments older than this; -1 keeps forever",
    ),
    (
        "retention.bytes",
        "-1",
        "delete oldest closed segments past this size per partition; -1 is unbounded",
    ),
    (
        "segment.bytes",
        "1073741824",
        "roll the active segment at this size",
    ),
    (
        "segment.ms",
        "604800000",
        "roll the active segment at this age",
    ),
    (
        "index.interval.bytes",
        "4096",
        "bytes of log between sparse index entries",
    ),
    (
        "segment.index.bytes",
        "10485760",
        "largest offset or time index per segment",
    ),
    (
        "max.message.bytes",
        "8388608",
        "largest record batch a producer may send",
    ),
    (
        "cleanup.policy",
        "delete",
        "delete, compact, or compact,delete",
    ),
    (
        "delete.retention.ms",
        "86400000",
        "how long compaction keeps tombstones",
    ),
    (
        "flush",
        "os",
        "always (fsync before ack), interval (fsync every flush.ms) or os (leave it to the OS)",
    ),
    ("flush.ms", "1000", "fsync period when flush=interval"),
    (
        "min.insync.replicas",
        "1",
        "replicas that must have a batch before acks=all succeeds",
    ),
    (
        "partitioner",
        "",
        "Wasm partitioner plugin NAME[@VERSION] for produces without a partition",
    ),
    (
        "compaction.policy",
        "",
        "Wasm compaction policy plugin NAME[@VERSION]; empty is latest-per-key",
    ),
];

/// Prefix of the keys that pass parameters to the topic's partitioner plugin:
/// `partitioner.param.<name>=<value>` reaches the plugin's `init` as `<name>=<value>`.
pub const PARTITIONER_PARAM: &str = "partitioner.param.";
/// Prefix of the keys that pass parameters to the topic's compaction policy plugin.
pub const COMPACTION_PARAM: &str = "compaction.policy.param.";
/// Longest plugin parameter value a topic may hold.
pub const MAX_PARAM_VALUE: usize = 4096;

/// Whether `key` is a topic config: one of [`KEYS`] or a plugin parameter key.
pub fn is_known_key(key: &str) -> bool {
    KEYS.iter().any(|(k, _, _)| *k == key) || param_name(key).is_some()
}

/// The parameter name of a plugin parameter key (`partitioner.param.region` ->
/// `region`), or `None` for any other key.
fn param_name(key: &str) -> Option<&str> {
    [PARTITIONER_PARAM, COMPACTION_PARAM]
        .iter()
        .find_map(|prefix| key.strip_prefix(prefix))
}

/// A parameter name is 1-128 of `[A-Za-z0-9._-]`, like a plugin's own config keys.
fn check_param(key: &str, value: &str) -> Result<(), ConfigError> {
    let Some(name) = param_name(key) else {
        return Err(ConfigError::UnknownKey(key.to_string()));
    };
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(
            key,
            value,
            "a plugin parameter name after the prefix is 1 to 128 of A-Z, a-z, 0-9, '-', '_', '.'",
        ));
    }
    if value.len() > MAX_PARAM_VALUE {
        return Err(bad(
            key,
            &format!("{}...", value.chars().take(32).collect::<String>()),
            &format!("a plugin parameter value has at most {MAX_PARAM_VALUE} bytes"),
        ));
    }
    Ok(())
}

/// A config key or value that was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown topic config '{0}'")]
    UnknownKey(String),
    #[error("topic config {key}={value} is invalid: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

/// A topic's configs resolved against the defaults.
#[derive(Debug, Clone)]
pub struct EffectiveConfig {
    pub log: LogConfig,
    pub min_insync_replicas: u16,
    /// `NAME[@VERSION]` of the Wasm partitioner, if one is bound.
    pub partitioner: Option<String>,
    /// `NAME[@VERSION]` of the Wasm compaction policy, if one is bound.
    pub compaction_policy: Option<String>,
    /// Parameters of the partitioner (`partitioner.param.*`), sorted by name.
    pub partitioner_params: Vec<(String, String)>,
    /// Parameters of the compaction policy (`compaction.policy.param.*`), sorted by name.
    pub compaction_params: Vec<(String, String)>,
    /// Every key with its effective value, for describe.
    pub all: BTreeMap<String, String>,
}

/// Checks the keys and values of `set` alone, as given by a user.
pub fn validate(set: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    resolve(&BTreeMap::new(), set).map(|_| ())
}

/// Resolves a topic's own configs over the broker's defaults.
pub fn resolve(
    broker_defaults: &BTreeMap<String, String>,
    topic: &BTreeMap<String, String>,
) -> Result<EffectiveConfig, ConfigError> {
    let mut params: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in broker_defaults.iter().chain(topic) {
        if KEYS.iter().any(|(k, _, _)| k == key) {
            continue;
        }
        check_param(key, value)?;
        // The topic's own value comes second in the chain, so it wins.
        params.insert(key, value);
    }
    let mut all = BTreeMap::new();
    for (key, default, _) in KEYS {
        let value = topic
            .get(*key)
            .or_else(|| broker_defaults.get(*key))
            .map_or(*default, String::as_str);
        all.insert((*key).to_string(), value.to_string());
    }
    let params_of = |prefix: &str| -> Vec<(String, String)> {
        params
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), (*v).to_string())))
            .collect()
    };
    let partitioner_params = params_of(PARTITIONER_PARAM);
    let compaction_params = params_of(COMPACTION_PARAM);
    all.extend(
        params
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
    );
    let get = |key: &str| all.get(key).map_or("", String::as_str);

    let flush = match get("flush") {
        "always" => FlushPolicy::Always,
        "interval" => FlushPolicy::Interval(Duration::from_millis(positive(&all, "flush.ms")?)),
        "os" => FlushPolicy::Os,
        other => return Err(bad("flush", other, "expected always, interval or os")),
    };
    let cleanup = match get("cleanup.policy") {
        "delete" => CleanupPolicy::Delete,
        "compact" => CleanupPolicy::Compact,
        "compact,delete" | "delete,compact" => CleanupPolicy::DeleteAndCompact,
        other => {
            return Err(bad(
                "cleanup.policy",
                other,
                "expected delete, compact or compact,delete",
            ));
        }
    };
    let log = LogConfig {
        segment_bytes: positive(&all, "segment.bytes")?,
        segment_ms: Some(positive(&all, "segment.ms")?),
        index_interval_bytes: to_u32(&all, "index.interval.bytes")?,
        segment_index_bytes: to_u32(&all, "segment.index.bytes")?,
        retention_ms: optional(&all, "retention.ms")?,
        retention_bytes: optional(&all, "retention.bytes")?.map(|v| v as u64),
        max_batch_bytes: to_u32(&all, "max.message.bytes")?,
        flush,
        cleanup,
        delete_retention_ms: positive(&all, "delete.retention.ms")? as i64,
        // One broker holds every partition's only replica.
        sole_replica: true,
    };
    let min_insync = positive(&all, "min.insync.replicas")?;
    let min_insync_replicas = u16::try_from(min_insync).map_err(|_| {
        bad(
            "min.insync.replicas",
            get("min.insync.replicas"),
            "too large",
        )
    })?;
    let plugin = |key: &str| -> Result<Option<String>, ConfigError> {
        let v = get(key);
        if v.is_empty() {
            return Ok(None);
        }
        parse_plugin_ref(v).map_err(|reason| bad(key, v, &reason))?;
        Ok(Some(v.to_string()))
    };
    Ok(EffectiveConfig {
        partitioner: plugin("partitioner")?,
        compaction_policy: plugin("compaction.policy")?,
        partitioner_params,
        compaction_params,
        log,
        min_insync_replicas,
        all,
    })
}

/// Splits `NAME[@VERSION]` into its parts.
pub fn parse_plugin_ref(value: &str) -> Result<(String, Option<u32>), String> {
    let (name, version) = match value.split_once('@') {
        Some((n, v)) => {
            let v = v
                .parse::<u32>()
                .map_err(|_| format!("version '{v}' is not a whole number"))?;
            (n, Some(v))
        }
        None => (value, None),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "plugin name '{name}' must be letters, digits, '-', '_' or '.'"
        ));
    }
    Ok((name.to_string(), version))
}

fn bad(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn number(all: &BTreeMap<String, String>, key: &str) -> Result<i64, ConfigError> {
    let v = all.get(key).map_or("", String::as_str);
    v.trim()
        .parse::<i64>()
        .map_err(|_| bad(key, v, "not a whole number"))
}

fn positive(all: &BTreeMap<String, String>, key: &str) -> Result<u64, ConfigError> {
    let n = number(all, key)?;
    if n <= 0 {
        return Err(bad(key, &n.to_string(), "must be greater than zero"));
    }
    Ok(n as u64)
}

fn to_u32(all: &BTreeMap<String, String>, key: &str) -> Result<u32, ConfigError> {
    let n = positive(all, key)?;
    u32::try_from(n).map_err(|_| bad(key, &n.to_string(), "must fit 32 bits"))
}

/// `-1` means unbounded; other values must be positive.
fn optional(all: &BTreeMap<String, String>, key: &str) -> Result<Option<i64>, ConfigError> {
    match number(all, key)? {
        -1 => Ok(None),
        n if n > 0 => Ok(Some(n)),
        n => Err(bad(
            key,
            &n.to_string(),
            "must be -1 (unbounded) or greater than zero",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn defaults_resolve() {
        let eff = resolve(&BTreeMap::new(), &BTreeMap::new()).expect("defaults are valid");
        assert_eq!(eff.log.retention_ms, Some(604_800_000));
        assert_eq!(eff.log.retention_bytes, None);
        assert!(matches!(eff.log.flush, FlushPolicy::Os));
        assert_eq!(eff.all.len(), KEYS.len());
    }

    #[test]
    fn topic_overrides_broker_defaults() {
        let eff = resolve(
            &map(&[("flush", "interval"), ("segment.bytes", "1000")]),
            &map(&[("segment.bytes", "2000")]),
        )
        .expect("valid");
        assert_eq!(eff.log.segment_bytes, 2000);
        assert!(matches!(eff.log.flush, FlushPolicy::Interval(_)));
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        assert_eq!(
            validate(&map(&[("retention.mss", "1")])),
            Err(ConfigError::UnknownKey("retention.mss".into()))
        );
        let err = validate(&map(&[("segment.bytes", "big")])).expect_err("not a number");
        assert!(err.to_string().contains("segment.bytes=big"), "{err}");
        assert!(validate(&map(&[("retention.ms", "0")])).is_err());
        assert!(validate(&map(&[("cleanup.policy", "shred")])).is_err());
        assert!(validate(&map(&[("partitioner", "my plugin")])).is_err());
        assert!(validate(&map(&[("partitioner", "hash@x")])).is_err());
        assert!(validate(&map(&[("partitioner", "hash@2")])).is_ok());
    }

    #[test]
    fn plugin_params_are_collected_per_plugin() {
        let eff = resolve(
            &map(&[("partitioner.param.default", "0")]),
            &map(&[
                ("partitioner", "router"),
                ("partitioner.param.header", "region"),
                ("partitioner.param.default", "3"),
                ("compaction.policy.param.field", "version"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            eff.partitioner_params,
            vec![
                ("default".to_string(), "3".to_string()),
                ("header".to_string(), "region".to_string())
            ]
        );
        assert_eq!(
            eff.compaction_params,
            vec![("field".to_string(), "version".to_string())]
        );
        assert_eq!(eff.all["partitioner.param.header"], "region");
        assert!(is_known_key("compaction.policy.param.x"));
        assert!(!is_known_key("partitioner.params.x"));
    }

    #[test]
    fn bad_plugin_param_keys_are_named() {
        let err = validate(&map(&[("partitioner.param.", "x")])).expect_err("empty name");
        assert!(err.to_string().contains("partitioner.param."), "{err}");
        assert!(validate(&map(&[("partitioner.param.a b", "x")])).is_err());
        assert_eq!(
            validate(&map(&[("partitioner.parm.a", "x")])),
            Err(ConfigError::UnknownKey("partitioner.parm.a".into()))
        );
        let long = "v".repeat(MAX_PARAM_VALUE + 1);
        assert!(validate(&map(&[("compaction.policy.param.a", long.as_str())])).is_err());
    }
}
