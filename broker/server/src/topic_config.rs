//! Topic configs: the keys a topic accepts, their defaults, and how they become a
//! storage [`LogConfig`].
//!
//! A topic stores only the keys set on it; the effective value of every other key comes
//! from the broker's `topic_defaults`, then from the built-in default below. Every value is
//! checked when it is set, so a bad value is refused at create or alter time with a
//! message naming the key, never discovered later by the storage layer.
//!
//! Every numeric key has a [`Range`] (see [`range`]): values outside it are refused at
//! create and alter ([`ConfigError::OutOfRange`] names the key, the value and the range).
//! A topic stored before a bound existed, or tightened, still opens: [`resolve`] replaces
//! a stored value outside its range by the nearest bound (or an unreadable one by the
//! default) and lists each replacement in [`EffectiveConfig::adjusted`], which the broker
//! logs as a warning. Refusing such a topic would take every topic down with it at start;
//! keeping the stored value would keep the harm the bound exists to prevent (one open
//! file per tiny segment, say). The metadata keeps the stored value; `topic describe`
//! shows the value in effect, and an alter that sets the key replaces it.

use std::collections::BTreeMap;
use std::time::Duration;

use quiver_metadata::UNCLEAN_ELECTION_KEY;
use quiver_storage::{CleanupPolicy, FlushPolicy, LogConfig};

/// Every key a topic accepts, with its built-in default and what it means; [`range`]
/// gives and enforces the range of each numeric key.
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "retention.ms",
        "604800000",
        "delete closed segments older than this; -1 keeps them forever",
    ),
    (
        "retention.bytes",
        "-1",
        "delete the oldest closed segments past this size per partition; -1 is unbounded",
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
        "largest offset or time index per segment; a full index rolls the segment",
    ),
    (
        "max.message.bytes",
        "8388608",
        "largest record batch a producer may send",
    ),
    (
        "cleanup.policy",
        "delete",
        "delete (by retention), compact (latest record per key), or compact,delete",
    ),
    (
        "delete.retention.ms",
        "86400000",
        "how long compaction keeps tombstones (records with a key and no value)",
    ),
    (
        "flush",
        "os",
        "always (fsync before ack), interval (fsync every flush.ms) or os (leave it to the OS)",
    ),
    ("flush.ms", "1000", "fsync period when flush=interval"),
    (
        "cache.tail.bytes",
        "33554432",
        "fsynced log each partition leaves in the OS page cache behind its end; older fsynced pages are dropped after each fsync; -1 leaves all to the OS",
    ),
    (
        "unclean.leader.election.enable",
        "false",
        "true lets a replica outside the ISR lead when no in-sync replica can, losing what only the ISR held; set per topic, not in topic_defaults",
    ),
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

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;
const GIB: i64 = 1024 * MIB;
const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const DAY: i64 = 24 * 60 * MINUTE;
const YEAR: i64 = 365 * DAY;

/// What a numeric config counts, so a range reads as `1 MiB` or `7 d` in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Millis,
    Count,
}

/// The values a numeric topic config accepts: `min..=max`, and `-1` as well when the key
/// takes -1 for "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: i64,
    pub max: i64,
    /// Whether `-1` (keep forever, unbounded) is accepted besides `min..=max`.
    pub unlimited: bool,
    pub unit: Unit,
}

impl Range {
    const fn new(min: i64, max: i64, unit: Unit) -> Range {
        Range {
            min,
            max,
            unlimited: false,
            unit,
        }
    }

    const fn or_unlimited(self) -> Range {
        Range {
            unlimited: true,
            ..self
        }
    }

    /// Whether `value` is allowed.
    pub fn allows(&self, value: i64) -> bool {
        (self.unlimited && value == -1) || (self.min..=self.max).contains(&value)
    }

    /// `value` if allowed, else the nearest bound.
    pub fn clamp(&self, value: i64) -> i64 {
        if self.allows(value) {
            value
        } else {
            value.clamp(self.min, self.max)
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unlimited {
            write!(f, "-1 (no limit) or ")?;
        }
        let bound = |v: i64| match human(v, self.unit) {
            Some(h) => format!("{v} ({h})"),
            None => v.to_string(),
        };
        write!(f, "{} to {}", bound(self.min), bound(self.max))
    }
}

/// `value` in the largest whole unit (`1 MiB`, `7 days`), or `None` when it has none.
pub(crate) fn human(value: i64, unit: Unit) -> Option<String> {
    let units: &[(i64, &str, &str)] = match unit {
        Unit::Bytes => &[
            (1 << 50, "PiB", "PiB"),
            (GIB, "GiB", "GiB"),
            (MIB, "MiB", "MiB"),
            (KIB, "KiB", "KiB"),
        ],
        Unit::Millis => &[
            (YEAR, "year", "years"),
            (DAY, "day", "days"),
            (60 * MINUTE, "h", "h"),
            (MINUTE, "min", "min"),
            (SECOND, "s", "s"),
        ],
        Unit::Count => &[],
    };
    units
        .iter()
        .find(|(size, _, _)| value >= *size && value % size == 0)
        .map(|(size, one, many)| {
            let n = value / size;
            format!("{n} {}", if n == 1 { one } else { many })
        })
}

/// `retention.ms`: -1 (forever) or 1 s to 100 years. Below a second is below the broker's
/// maintenance tick, so it only means "delete as soon as closed" with extra churn; past a
/// century the value is a typo, and -1 says "forever" plainly.
pub const RETENTION_MS: Range = Range::new(SECOND, 100 * YEAR, Unit::Millis).or_unlimited();
/// `retention.bytes`: -1 (unbounded) or 1 MiB to 1 PiB per partition. Less than the
/// smallest segment deletes every segment as soon as it closes; more than a petabyte on
/// one partition's disk is a typo.
pub const RETENTION_BYTES: Range = Range::new(MIB, 1 << 50, Unit::Bytes).or_unlimited();
/// `segment.bytes`: 1 MiB to 2 GiB, as Kafka 4 and Redpanda allow. Every segment keeps
/// open files, so tiny segments exhaust the broker's file handles (one byte gave one
/// segment per batch); the top is Kafka's, below the 4 GiB the 32-bit index positions
/// could address, since larger segments only make retention coarser and recovery of the
/// active segment longer.
pub const SEGMENT_BYTES: Range = Range::new(MIB, 2 * GIB, Unit::Bytes);
/// `segment.ms`: 1 minute to 1 year (Kafka plans the same floor; Redpanda bounds it
/// too). A shorter age rolls a segment, with new files, every few seconds on a quiet
/// topic; a longer one never rolls in practice, so retention by time never deletes.
pub const SEGMENT_MS: Range = Range::new(MINUTE, YEAR, Unit::Millis);
/// `index.interval.bytes`: 256 B to 1 MiB. One entry per few batches is as fine as an
/// index usefully gets (with the smallest `segment.index.bytes` a full index then still
/// covers more than the smallest segment); a lookup scans up to this much log past its
/// entry, which past 1 MiB every seeking fetch feels.
pub const INDEX_INTERVAL_BYTES: Range = Range::new(256, MIB, Unit::Bytes);
/// `segment.index.bytes`: 64 KiB to 256 MiB. A full index rolls the segment, so a tiny
/// index makes tiny segments (the file-handle problem again); index entries are held in
/// memory, so the top bounds what one segment may cost.
pub const SEGMENT_INDEX_BYTES: Range = Range::new(64 * KIB, 256 * MIB, Unit::Bytes);
/// `max.message.bytes`: 1 KiB to 64 MiB. Smaller refuses ordinary batches (a batch header
/// alone is 61 bytes); a batch is held whole in memory on its way in and out, and a
/// produce frame cannot be larger than `limits.max_frame_bytes` anyway.
pub const MAX_MESSAGE_BYTES: Range = Range::new(KIB, 64 * MIB, Unit::Bytes);
/// `delete.retention.ms`: 0 to 100 years. 0 drops tombstones at the first clean, as Kafka
/// allows; the top matches `retention.ms`.
pub const DELETE_RETENTION_MS: Range = Range::new(0, 100 * YEAR, Unit::Millis);
/// `flush.ms`: 10 ms to 1 day. Interval flushes run on the maintenance tick, which is at
/// least 10 ms, so less has no effect; an interval of a day leaves a day of data to the
/// OS, which is what `flush=os` says honestly.
pub const FLUSH_MS: Range = Range::new(10, DAY, Unit::Millis);
/// `cache.tail.bytes`: -1 (every page left to the OS) or 0 (none kept once fsynced) to 1 PiB.
pub const CACHE_TAIL_BYTES: Range = Range::new(0, 1 << 50, Unit::Bytes).or_unlimited();
/// `min.insync.replicas`: 1 to 32, more than any replication factor a partition will have.
pub const MIN_INSYNC_REPLICAS: Range = Range::new(1, 32, Unit::Count);

/// The range of a numeric topic config, or `None` for a key that is not numeric.
pub fn range(key: &str) -> Option<Range> {
    Some(match key {
        "retention.ms" => RETENTION_MS,
        "retention.bytes" => RETENTION_BYTES,
        "segment.bytes" => SEGMENT_BYTES,
        "segment.ms" => SEGMENT_MS,
        "index.interval.bytes" => INDEX_INTERVAL_BYTES,
        "segment.index.bytes" => SEGMENT_INDEX_BYTES,
        "max.message.bytes" => MAX_MESSAGE_BYTES,
        "delete.retention.ms" => DELETE_RETENTION_MS,
        "flush.ms" => FLUSH_MS,
        "cache.tail.bytes" => CACHE_TAIL_BYTES,
        "min.insync.replicas" => MIN_INSYNC_REPLICAS,
        _ => return None,
    })
}

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
    #[error("topic config {key}={value} is out of range: use {range}")]
    OutOfRange {
        key: String,
        value: i64,
        range: Range,
    },
}

/// A stored value [`resolve`] did not use because it is outside today's range (or not a
/// number): the topic runs with `used` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub key: String,
    pub stored: String,
    pub used: i64,
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
    /// Stored values outside their range, and what is used instead.
    pub adjusted: Vec<Adjustment>,
}

impl EffectiveConfig {
    /// Logs a warning for each stored value that was adjusted, naming the topic.
    pub fn warn_adjusted(&self, topic: &str) {
        for a in &self.adjusted {
            tracing::warn!(
                topic,
                key = %a.key,
                stored = %a.stored,
                used = a.used,
                "stored topic config is outside its allowed range; using the nearest allowed value (alter the topic to set one)"
            );
        }
    }
}

/// Checks the keys and values of `set` alone, as given by a user: every key known, every
/// value well formed, every number within its [`range`]. Create and alter call it on what
/// the user sent, so nothing out of range is ever stored.
pub fn validate(set: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in set {
        if let Some(range) = range(key) {
            let n = parse_number(key, value)?;
            if !range.allows(n) {
                return Err(ConfigError::OutOfRange {
                    key: key.clone(),
                    value: n,
                    range,
                });
            }
        }
    }
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
    // What was stored passed the checks of its day; a value outside today's range is
    // replaced, not refused, so the topic still opens (see the module docs).
    let mut adjusted = Vec::new();
    for (key, default, _) in KEYS {
        let Some(range) = range(key) else { continue };
        let Some(stored) = all.get(*key) else {
            continue;
        };
        let used = match parse_number(key, stored) {
            Ok(n) => range.clamp(n),
            Err(_) => parse_number(key, default)?,
        };
        if used.to_string() != *stored {
            adjusted.push(Adjustment {
                key: (*key).to_string(),
                stored: stored.clone(),
                used,
            });
            all.insert((*key).to_string(), used.to_string());
        }
    }
    let get = |key: &str| all.get(key).map_or("", String::as_str);

    let flush = match get("flush") {
        "always" => FlushPolicy::Always,
        "interval" => FlushPolicy::Interval(Duration::from_millis(unsigned(&all, "flush.ms")?)),
        "os" => FlushPolicy::Os,
        other => return Err(bad("flush", other, "expected always, interval or os")),
    };
    let unclean = get(UNCLEAN_ELECTION_KEY);
    if !matches!(unclean, "true" | "false") {
        return Err(bad(UNCLEAN_ELECTION_KEY, unclean, "expected true or false"));
    }
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
        segment_bytes: unsigned(&all, "segment.bytes")?,
        segment_ms: Some(unsigned(&all, "segment.ms")?),
        index_interval_bytes: to_u32(&all, "index.interval.bytes")?,
        segment_index_bytes: to_u32(&all, "segment.index.bytes")?,
        retention_ms: unlimited(&all, "retention.ms")?,
        retention_bytes: unlimited(&all, "retention.bytes")?.map(|v| v as u64),
        max_batch_bytes: to_u32(&all, "max.message.bytes")?,
        flush,
        cleanup,
        delete_retention_ms: number(&all, "delete.retention.ms")?,
        cache_tail_bytes: unlimited(&all, "cache.tail.bytes")?.map(|v| v as u64),
        // One broker holds every partition's only replica.
        sole_replica: true,
    };
    let min_insync = unsigned(&all, "min.insync.replicas")?;
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
        adjusted,
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

fn parse_number(key: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| bad(key, value, "not a whole number"))
}

// The readers below run after `resolve` has brought every numeric key into its range,
// so the sign and width checks they keep are belts and braces, not the bounds.

fn number(all: &BTreeMap<String, String>, key: &str) -> Result<i64, ConfigError> {
    parse_number(key, all.get(key).map_or("", String::as_str))
}

fn unsigned(all: &BTreeMap<String, String>, key: &str) -> Result<u64, ConfigError> {
    let n = number(all, key)?;
    u64::try_from(n).map_err(|_| bad(key, &n.to_string(), "must not be negative"))
}

fn to_u32(all: &BTreeMap<String, String>, key: &str) -> Result<u32, ConfigError> {
    let n = unsigned(all, key)?;
    u32::try_from(n).map_err(|_| bad(key, &n.to_string(), "must fit 32 bits"))
}

/// `-1` means unbounded.
fn unlimited(all: &BTreeMap<String, String>, key: &str) -> Result<Option<i64>, ConfigError> {
    match number(all, key)? {
        -1 => Ok(None),
        n if n >= 0 => Ok(Some(n)),
        n => Err(bad(
            key,
            &n.to_string(),
            "must be -1 (unbounded) or at least zero",
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
            &map(&[("flush", "interval"), ("segment.bytes", "2000000")]),
            &map(&[("segment.bytes", "3000000")]),
        )
        .expect("valid");
        assert_eq!(eff.log.segment_bytes, 3_000_000);
        assert!(eff.adjusted.is_empty());
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
        let err = validate(&map(&[("unclean.leader.election.enable", "yes")]))
            .expect_err("not a boolean");
        assert!(err.to_string().contains("expected true or false"), "{err}");
        assert!(validate(&map(&[("unclean.leader.election.enable", "true")])).is_ok());
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

    #[test]
    fn segment_bytes_of_one_byte_or_a_hundred_terabytes_is_refused() {
        for value in ["1", "100000000000000"] {
            let err = validate(&map(&[("segment.bytes", value)])).expect_err("out of range");
            assert_eq!(
                err,
                ConfigError::OutOfRange {
                    key: "segment.bytes".into(),
                    value: value.parse().expect("number"),
                    range: SEGMENT_BYTES,
                }
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("segment.bytes={value}")), "{msg}");
            assert!(
                msg.contains("1048576 (1 MiB) to 2147483648 (2 GiB)"),
                "{msg}"
            );
        }
        assert!(validate(&map(&[("segment.bytes", "1048576")])).is_ok());
        assert!(validate(&map(&[("segment.bytes", "2147483648")])).is_ok());
    }

    #[test]
    fn every_numeric_key_accepts_its_bounds_and_refuses_past_them() {
        let numeric: Vec<_> = KEYS
            .iter()
            .filter_map(|(k, _, _)| Some((*k, range(k)?)))
            .collect();
        assert_eq!(numeric.len(), 11, "every numeric key has a range");
        for (key, r) in numeric {
            for ok in [r.min, r.max] {
                assert!(
                    validate(&map(&[(key, &ok.to_string())])).is_ok(),
                    "{key}={ok}"
                );
            }
            for out in [r.min - 1, r.max + 1] {
                if out == -1 && r.unlimited {
                    continue;
                }
                let err = validate(&map(&[(key, &out.to_string())])).expect_err(key);
                assert!(
                    matches!(&err, ConfigError::OutOfRange { key: k, value, .. } if k == key && *value == out),
                    "{err}"
                );
            }
            assert_eq!(
                validate(&map(&[(key, "-1")])).is_ok(),
                r.unlimited,
                "{key}=-1"
            );
        }
        // The wire path stays typed: a garbage value is still a bad value, not a range.
        assert!(matches!(
            validate(&map(&[("flush.ms", "soon")])),
            Err(ConfigError::BadValue { .. })
        ));
    }

    #[test]
    fn flush_ms_is_checked_even_when_flush_is_not_interval() {
        assert!(validate(&map(&[("flush.ms", "0")])).is_err());
        assert!(validate(&map(&[("flush", "os"), ("flush.ms", "0")])).is_err());
    }

    #[test]
    fn defaults_are_inside_their_ranges() {
        for (key, default, _) in KEYS {
            let Some(r) = range(key) else { continue };
            let n: i64 = default.parse().expect("numeric default");
            assert!(r.allows(n), "default {key}={default} is outside {r}");
        }
    }

    #[test]
    fn stored_values_outside_the_range_are_clamped_not_refused() {
        // As a topic created before the bounds existed would have stored them.
        let stored = map(&[
            ("segment.bytes", "1"),
            ("retention.ms", "5"),
            ("retention.bytes", "-1"),
            ("index.interval.bytes", "100000000"),
            ("flush.ms", "soon"),
        ]);
        let eff = resolve(&BTreeMap::new(), &stored).expect("stored configs still open");
        assert_eq!(eff.log.segment_bytes, SEGMENT_BYTES.min as u64);
        assert_eq!(eff.log.retention_ms, Some(RETENTION_MS.min));
        assert_eq!(eff.log.retention_bytes, None, "-1 is in range and kept");
        assert_eq!(
            eff.log.index_interval_bytes,
            INDEX_INTERVAL_BYTES.max as u32
        );
        assert_eq!(
            eff.all["segment.bytes"], "1048576",
            "describe shows what is in effect"
        );
        let keys: Vec<_> = eff.adjusted.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "retention.ms",
                "segment.bytes",
                "index.interval.bytes",
                "flush.ms"
            ]
        );
        let flush = eff
            .adjusted
            .iter()
            .find(|a| a.key == "flush.ms")
            .expect("flush.ms");
        assert_eq!(
            (flush.stored.as_str(), flush.used),
            ("soon", 1000),
            "unreadable -> default"
        );
        // But the same values from a user are refused.
        assert!(validate(&stored).is_err());
    }
}
