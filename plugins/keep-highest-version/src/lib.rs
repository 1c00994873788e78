//! Compaction that keeps, per key, the record with the highest version rather than the
//! latest one: out-of-order writes of an older version never replace a newer one.
//!
//! Parameters (one of the two):
//! - `header`: a header holding the version as a decimal integer.
//! - `field`: a top-level field of the JSON value holding the version as a number.
//!
//! A record whose version is missing or unreadable loses to one that has a version; on a
//! tie (or when neither has one) the newer record survives, as in default compaction.
//! Tombstones have no version and so never displace a versioned record; they survive
//! only against records without a version.

use quiver_plugin::{Compactor, Config, Error, Parts, Record, Survivor};
use serde_json::Value;

enum Source {
    Header(String),
    Field(String),
}

struct KeepHighestVersion {
    source: Source,
}

impl KeepHighestVersion {
    fn version(&self, record: &Record<'_>) -> Option<i64> {
        match &self.source {
            Source::Header(name) => std::str::from_utf8(record.header(name)?)
                .ok()?
                .trim()
                .parse()
                .ok(),
            Source::Field(field) => {
                let doc: Value = serde_json::from_slice(record.value()?).ok()?;
                let v = doc.get(field)?;
                v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
            }
        }
    }
}

impl Compactor for KeepHighestVersion {
    const PARTS: Parts = Parts::all();

    fn new(config: &Config) -> Result<Self, Error> {
        let source = match (config.get("header"), config.get("field")) {
            (Some(h), None) => Source::Header(h.to_string()),
            (None, Some(f)) => Source::Field(f.to_string()),
            _ => {
                return Err(Error::Config(
                    "give exactly one of `header` and `field`".into(),
                ));
            }
        };
        Ok(KeepHighestVersion { source })
    }

    fn survivor(&mut self, older: &Record<'_>, newer: &Record<'_>) -> Result<Survivor, Error> {
        Ok(match (self.version(older), self.version(newer)) {
            (Some(o), Some(n)) if o > n => Survivor::Older,
            (Some(_), None) => Survivor::Older,
            _ => Survivor::Newer,
        })
    }
}

quiver_plugin::export_compactor!(KeepHighestVersion);
