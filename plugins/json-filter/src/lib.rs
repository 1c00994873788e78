//! Keeps records by one field of their JSON value.
//!
//! Parameters:
//! - `field` (required): a dot path into the value, such as `user.age`; a number selects
//!   an array element (`items.0`).
//! - `op` (required): `eq`, `ne`, `gt`, `lt`, `contains` or `exists`.
//! - `value` (required except for `exists`): parsed as JSON when it parses (`42`, `true`,
//!   `"x"`), otherwise taken as a string.
//! - `invalid` (optional): `drop` (default) drops records whose value is not JSON;
//!   `fail` fails the fetch naming the record.
//!
//! `gt` and `lt` compare numbers as numbers and strings as strings; anything else does
//! not match. `contains` matches a substring of a string field or an element of an
//! array field. A missing field matches only `ne`.

use std::cmp::Ordering;

use quiver_plugin::{Config, Error, Filter, Parts, Record};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Contains,
    Exists,
}

struct JsonFilter {
    path: Vec<String>,
    op: Op,
    operand: Value,
    fail_on_invalid: bool,
}

impl Filter for JsonFilter {
    const PARTS: Parts = Parts::VALUES;

    fn new(config: &Config) -> Result<Self, Error> {
        let field = config.require("field")?;
        let op = match config.require("op")? {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "contains" => Op::Contains,
            "exists" => Op::Exists,
            other => {
                return Err(Error::Config(format!(
                    "op `{other}` is unknown: use eq, ne, gt, lt, contains or exists"
                )));
            }
        };
        let operand = match (op, config.get("value")) {
            (Op::Exists, _) => Value::Null,
            (_, None) => return Err(Error::Config("missing parameter `value`".into())),
            (_, Some(raw)) => {
                serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
            }
        };
        let fail_on_invalid = match config.get("invalid").unwrap_or("drop") {
            "drop" => false,
            "fail" => true,
            other => {
                return Err(Error::Config(format!(
                    "invalid = `{other}`: use drop or fail"
                )));
            }
        };
        Ok(JsonFilter {
            path: field.split('.').map(str::to_string).collect(),
            op,
            operand,
            fail_on_invalid,
        })
    }

    fn keep(&mut self, record: &Record<'_>) -> Result<bool, Error> {
        let parsed = record.value().map(serde_json::from_slice::<Value>);
        let doc = match parsed {
            Some(Ok(doc)) => doc,
            Some(Err(e)) if self.fail_on_invalid => {
                return Err(Error::Record(format!("value is not JSON: {e}")));
            }
            None if self.fail_on_invalid => {
                return Err(Error::Record("tombstone has no JSON value".into()));
            }
            _ => return Ok(false),
        };
        let field = self.path.iter().try_fold(&doc, |v, step| match v {
            Value::Object(map) => map.get(step),
            Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        });
        let Some(field) = field else {
            return Ok(self.op == Op::Ne);
        };
        Ok(match self.op {
            Op::Exists => true,
            Op::Eq => equal(field, &self.operand),
            Op::Ne => !equal(field, &self.operand),
            Op::Gt => compare(field, &self.operand) == Some(Ordering::Greater),
            Op::Lt => compare(field, &self.operand) == Some(Ordering::Less),
            Op::Contains => match (field, &self.operand) {
                (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
                (Value::String(s), other) => s.contains(&other.to_string()),
                (Value::Array(items), wanted) => items.iter().any(|i| equal(i, wanted)),
                _ => false,
            },
        })
    }
}

/// JSON equality, except that numbers compare by value (`1` equals `1.0`).
fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

quiver_plugin::export_filter!(JsonFilter);
