//! Routes records to partitions by the value of one header.
//!
//! Parameters:
//! - `header` (required): the header to read.
//! - `route.<value>` = `<partition>`: records whose header equals `<value>` go there.
//! - `default` (optional): partition of records whose header is missing or has no
//!   route. Without it such a record fails the produce, naming the record.
//!
//! A route to a partition the topic does not have fails the produce rather than
//! wrapping around, since a silent modulo would hide a configuration mistake.

use std::collections::HashMap;

use quiver_plugin::{Config, Error, Partitioner, Parts, Record};

struct HeaderRouter {
    header: String,
    routes: HashMap<Vec<u8>, u32>,
    default: Option<u32>,
}

impl Partitioner for HeaderRouter {
    const PARTS: Parts = Parts::HEADERS;

    fn new(config: &Config) -> Result<Self, Error> {
        let mut routes = HashMap::new();
        for (name, value) in config.iter() {
            if let Some(header_value) = name.strip_prefix("route.") {
                let partition = value.parse().map_err(|_| {
                    Error::Config(format!("`{name}` = `{value}` is not a partition number"))
                })?;
                routes.insert(header_value.as_bytes().to_vec(), partition);
            }
        }
        if routes.is_empty() {
            return Err(Error::Config(
                "no routes: add parameters like `route.eu = 0`".into(),
            ));
        }
        Ok(HeaderRouter {
            header: config.require("header")?.to_string(),
            routes,
            default: config.parse("default")?,
        })
    }

    fn partition(&mut self, record: &Record<'_>, partition_count: u32) -> Result<u32, Error> {
        let value = record.header(&self.header);
        let partition = value
            .and_then(|v| self.routes.get(v).copied())
            .or(self.default)
            .ok_or_else(|| match value {
                None => Error::Record(format!(
                    "no `{}` header and no default partition",
                    self.header
                )),
                Some(v) => Error::Record(format!(
                    "no route for `{}` = `{}` and no default partition",
                    self.header,
                    String::from_utf8_lossy(v)
                )),
            })?;
        if partition >= partition_count {
            return Err(Error::Failed(format!(
                "a route names partition {partition}, but the topic has {partition_count}"
            )));
        }
        Ok(partition)
    }
}

quiver_plugin::export_partitioner!(HeaderRouter);
