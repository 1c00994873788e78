//! Keeps records by one header.
//!
//! Parameters:
//! - `header` (required): the header name.
//! - `value` (optional): keep records whose header has exactly this value (UTF-8).
//!   Without it, keep records that carry the header at all.
//! - `invert` (optional, `true`/`false`): drop the matching records instead.

use quiver_plugin::{Config, Error, Filter, Parts, Record};

struct HeaderFilter {
    header: String,
    value: Option<Vec<u8>>,
    invert: bool,
}

impl Filter for HeaderFilter {
    const PARTS: Parts = Parts::HEADERS;

    fn new(config: &Config) -> Result<Self, Error> {
        Ok(HeaderFilter {
            header: config.require("header")?.to_string(),
            value: config.get("value").map(|v| v.as_bytes().to_vec()),
            invert: config.parse("invert")?.unwrap_or(false),
        })
    }

    fn keep(&mut self, record: &Record<'_>) -> Result<bool, Error> {
        let matches = record.headers().any(|(name, value)| {
            name == self.header
                && match &self.value {
                    None => true,
                    Some(wanted) => value == Some(wanted.as_slice()),
                }
        });
        Ok(matches != self.invert)
    }
}

quiver_plugin::export_filter!(HeaderFilter);
