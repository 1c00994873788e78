//! Compaction with a time to live per key: a surviving record older than its key's TTL
//! is dropped.
//!
//! Parameters, all in milliseconds:
//! - `key.<key>` : TTL of records whose key is exactly `<key>`;
//! - `prefix.<prefix>` : TTL of records whose key starts with `<prefix>` (the longest
//!   matching prefix wins);
//! - `default` : TTL of every other keyed record; without it they are kept forever;
//! - `tombstone` : TTL of tombstones, overriding the above (Kafka's
//!   `delete.retention.ms`).
//!
//! A record's age is `now - timestamp`. Keyless records are left alone.

use std::collections::HashMap;

use quiver_plugin::{Compactor, Config, Error, Parts, Record};

struct Ttl {
    exact: HashMap<Vec<u8>, i64>,
    prefixes: Vec<(Vec<u8>, i64)>,
    default: Option<i64>,
    tombstone: Option<i64>,
}

impl Ttl {
    fn ttl_of(&self, record: &Record<'_>) -> Option<i64> {
        let key = record.key()?;
        if record.value().is_none() && self.tombstone.is_some() {
            return self.tombstone;
        }
        if let Some(ttl) = self.exact.get(key) {
            return Some(*ttl);
        }
        self.prefixes
            .iter()
            .filter(|(p, _)| key.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, ttl)| *ttl)
            .or(self.default)
    }
}

fn millis(name: &str, value: &str) -> Result<i64, Error> {
    value
        .parse::<i64>()
        .ok()
        .filter(|ms| *ms >= 0)
        .ok_or_else(|| {
            Error::Config(format!(
                "`{name}` = `{value}` is not a number of milliseconds"
            ))
        })
}

impl Compactor for Ttl {
    const PARTS: Parts = Parts::KEYS.union(Parts::VALUES);

    fn new(config: &Config) -> Result<Self, Error> {
        let mut ttl = Ttl {
            exact: HashMap::new(),
            prefixes: Vec::new(),
            default: None,
            tombstone: None,
        };
        for (name, value) in config.iter() {
            if let Some(key) = name.strip_prefix("key.") {
                ttl.exact
                    .insert(key.as_bytes().to_vec(), millis(name, value)?);
            } else if let Some(prefix) = name.strip_prefix("prefix.") {
                ttl.prefixes
                    .push((prefix.as_bytes().to_vec(), millis(name, value)?));
            } else if name == "default" {
                ttl.default = Some(millis(name, value)?);
            } else if name == "tombstone" {
                ttl.tombstone = Some(millis(name, value)?);
            } else {
                return Err(Error::Config(format!(
                    "unknown parameter `{name}`: use key.<key>, prefix.<prefix>, default or tombstone"
                )));
            }
        }
        Ok(ttl)
    }

    fn retain(&mut self, record: &Record<'_>, now_ms: i64) -> Result<bool, Error> {
        Ok(match self.ttl_of(record) {
            None => true,
            Some(ttl) => now_ms.saturating_sub(record.timestamp()) < ttl,
        })
    }
}

quiver_plugin::export_compactor!(Ttl);
