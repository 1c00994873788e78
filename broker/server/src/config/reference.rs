//! The configuration reference: every topic config and every broker TOML key with its
//! default, its range and what it does. `quiver config topic|broker` prints it, and
//! `docs/configuration.md` is rendered from it (a test keeps the file in step).
//!
//! Defaults and ranges come from the code itself: topic defaults from
//! [`topic_config::KEYS`] and ranges from [`topic_config::range`]; broker defaults from
//! [`BrokerConfig::default`] serialised to TOML, and ranges from
//! [`BrokerConfig::bounds`], which is what `validate` enforces. Only the meanings are
//! written here, and a test fails when a broker key has none or a meaning names no key.

use crate::config::BrokerConfig;
use crate::topic_config::{self, Unit};

/// One config key as the reference shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDoc {
    pub key: String,
    /// The default, or `(unset)`.
    pub default: String,
    /// The allowed values, or empty where any value of the type goes.
    pub range: String,
    pub meaning: String,
}

/// Every topic config, in the order `topic describe` would list them, then the plugin
/// parameter keys.
pub fn topic_keys() -> Vec<KeyDoc> {
    let mut keys: Vec<KeyDoc> = topic_config::KEYS
        .iter()
        .map(|(key, default, meaning)| KeyDoc {
            key: (*key).to_owned(),
            default: if default.is_empty() {
                "(unset)".to_owned()
            } else {
                (*default).to_owned()
            },
            range: topic_config::range(key).map_or_else(
                || match *key {
                    "cleanup.policy" => "delete, compact, compact,delete".to_owned(),
                    "flush" => "always, interval, os".to_owned(),
                    _ => String::new(),
                },
                |r| r.to_string(),
            ),
            meaning: (*meaning).to_owned(),
        })
        .collect();
    for (prefix, whose) in [
        (topic_config::PARTITIONER_PARAM, "partitioner"),
        (topic_config::COMPACTION_PARAM, "compaction policy"),
    ] {
        keys.push(KeyDoc {
            key: format!("{prefix}NAME"),
            default: "(unset)".to_owned(),
            range: format!(
                "NAME: 1 to 128 of A-Z a-z 0-9 - _ .; value: at most {} bytes",
                topic_config::MAX_PARAM_VALUE
            ),
            meaning: format!(
                "a parameter the topic's {whose} plugin receives at init as NAME=value"
            ),
        });
    }
    keys
}

/// What each broker key means. Keys are dotted paths of the TOML file (`limits.x` is
/// `x` under `[limits]`).
const BROKER_MEANINGS: &[(&str, &str)] = &[
    (
        "node_id",
        "this broker's id in a cluster; 0 on a single node",
    ),
    (
        "listen",
        "UDP address the QUIC listener binds; port 0 picks a free one",
    ),
    (
        "advertised",
        "host:port clients are told to dial; defaults to the listen address",
    ),
    (
        "metrics_listen",
        "TCP address of the HTTP endpoint serving /metrics (Prometheus), /health and /ready; unset serves none. Plain HTTP: bind it where only monitoring reaches",
    ),
    (
        "data_dir",
        "where topics, segments, metadata, plugins and certificates live",
    ),
    (
        "maintenance_interval_ms",
        "how often retention, age-based rolling and interval flushes run",
    ),
    (
        "shutdown_grace_ms",
        "how long shutdown waits for in-flight requests before aborting them",
    ),
    (
        "topic_defaults",
        "a table of topic configs (see the topic section) applied to topics that do not set them",
    ),
    (
        "tls.mode",
        "self-signed (a certificate for localhost generated into <data_dir>/tls, for development) or files",
    ),
    (
        "tls.cert",
        "with mode = \"files\": PEM file of the certificate chain",
    ),
    (
        "tls.key",
        "with mode = \"files\": PEM file of the private key",
    ),
    (
        "limits.max_connections",
        "concurrent QUIC connections; more are refused at the handshake",
    ),
    (
        "limits.max_connections_per_client",
        "concurrent connections of one client (its address, or its principal once authenticated)",
    ),
    (
        "limits.max_streams_per_connection",
        "concurrent request streams per connection",
    ),
    (
        "limits.max_frame_bytes",
        "largest request frame, checked from its length prefix before any allocation",
    ),
    (
        "limits.max_inflight_bytes",
        "request bytes held in memory across all connections; frames wait for room",
    ),
    (
        "limits.max_inflight_bytes_per_connection",
        "one connection's share of max_inflight_bytes; must hold the largest frame, plugin uploads included",
    ),
    (
        "limits.max_inflight_bytes_per_client",
        "one client's share of max_inflight_bytes across its connections",
    ),
    (
        "limits.request_read_timeout_ms",
        "longest a request stream may go without a byte of its frame; then REQUEST_TIMED_OUT",
    ),
    (
        "limits.request_read_min_bytes_per_sec",
        "slowest a frame may arrive: n bytes must be whole within request_read_timeout_ms + n / this",
    ),
    (
        "limits.produce_bytes_per_sec_per_client",
        "produce quota per client: past it, requests are delayed (not refused); 0 is unlimited",
    ),
    (
        "limits.fetch_bytes_per_sec_per_client",
        "fetch quota per client, enforced by delaying answers; 0 is unlimited",
    ),
    (
        "limits.max_fetch_wait_ms",
        "longest a fetch may long-poll, whatever the client asks",
    ),
    (
        "limits.max_fetch_bytes",
        "largest fetch answer, whatever the client asks",
    ),
    ("limits.max_partitions", "partitions one topic may have"),
    (
        "groups.initial_rebalance_delay_ms",
        "how long a rebalance out of an empty group waits for more members",
    ),
    (
        "groups.min_session_timeout_ms",
        "shortest session timeout a member may ask for",
    ),
    (
        "groups.max_session_timeout_ms",
        "longest session timeout a member may ask for",
    ),
    (
        "groups.offsets_topic_partitions",
        "partitions of __consumer_offsets when the broker creates it",
    ),
    (
        "groups.offsets_topic_replication_factor",
        "replicas of each __consumer_offsets partition when a cluster creates it",
    ),
    (
        "plugins.call_timeout_ms",
        "wall-clock time one plugin call may take before it is stopped (PLUGIN_FAILED)",
    ),
    (
        "plugins.memory_bytes",
        "linear memory one plugin instance may hold",
    ),
    (
        "plugins.max_idle_instances",
        "warm instances kept per plugin binding",
    ),
    (
        "plugins.max_component_bytes",
        "largest component a plugin upload may carry",
    ),
    ("plugins.log_entries", "entries kept in each plugin's log"),
    (
        "plugins.logs_follow_max_ms",
        "longest a `plugin logs --follow` request waits for a new entry",
    ),
    (
        "plugins.max_test_records",
        "records one `plugin test` may run the plugin over",
    ),
    (
        "plugins.max_cached_bindings",
        "plugin bindings (name, version, parameters) kept warm per kind",
    ),
    (
        "auth.enabled",
        "check requests against access rules; off, every client may do everything",
    ),
    (
        "auth.super_users",
        "principals that bypass the rules, such as [\"User:admin\"]",
    ),
    (
        "auth.client_ca",
        "PEM file of the CA whose client certificates the broker accepts (mutual TLS); unset asks for none",
    ),
    (
        "auth.allow_unauthenticated",
        "let a broker with auth off listen beyond loopback (refused otherwise)",
    ),
    (
        "cluster.voters",
        "the metadata quorum's voters, each \"id@host:port\" (3 or 5); a broker not among them joins as an observer; empty is a single node",
    ),
    (
        "cluster.ca",
        "PEM file of the CA that signed every broker's certificate; required with voters",
    ),
    (
        "cluster.quorum_listen",
        "UDP address of this broker's inter-broker (quorum) listener; defaults to its own voters entry, required on an observer (a broker not among the voters)",
    ),
    (
        "cluster.quorum_advertised",
        "where other brokers reach an observer's inter-broker listener, if not quorum_listen (NAT, a relay)",
    ),
    (
        "cluster.election_timeout_ms",
        "a voter that hears no leader for this to twice this starts an election",
    ),
    (
        "cluster.heartbeat_ms",
        "how often the quorum leader heartbeats the other voters",
    ),
    (
        "cluster.propose_timeout_ms",
        "how long a metadata change waits for a quorum before it fails",
    ),
    (
        "cluster.broker_heartbeat_ms",
        "how often this broker tells the controller (the quorum leader) it is alive",
    ),
    (
        "cluster.broker_session_timeout_ms",
        "a broker silent this long is fenced and its partitions get new leaders",
    ),
    (
        "cluster.leader_rebalance_interval_ms",
        "how often leadership goes back to each partition's preferred replica (0: never)",
    ),
    (
        "cluster.default_replication_factor",
        "the replication factor of a topic created without one",
    ),
    (
        "cluster.replica_lag_time_max_ms",
        "a follower not caught up with its leader for this long leaves the ISR",
    ),
];

/// Every broker TOML key, in file order.
pub fn broker_keys() -> Vec<KeyDoc> {
    let defaults = default_values();
    let bounds = BrokerConfig::default().bounds();
    BROKER_MEANINGS
        .iter()
        .map(|(key, meaning)| {
            let range = bounds
                .iter()
                .find(|b| b.key == *key)
                .map(|b| {
                    let unit = unit_of(key);
                    let low = match b.at_least {
                        Some(other) => other.to_owned(),
                        None => amount(b.min, unit),
                    };
                    let high = match (b.max, b.at_most) {
                        (u64::MAX, Some((other, _))) => other.to_owned(),
                        (max, Some((other, _))) => {
                            format!("{}, and at most {other}", amount(max, unit))
                        }
                        (max, None) => amount(max, unit),
                    };
                    let off = if b.zero_is_off {
                        "0 (no limit) or "
                    } else {
                        ""
                    };
                    format!("{off}{low} to {high}")
                })
                .unwrap_or_default();
            KeyDoc {
                key: (*key).to_owned(),
                default: defaults
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or_else(|| "(unset)".to_owned(), |(_, v)| v.clone()),
                range,
                meaning: (*meaning).to_owned(),
            }
        })
        .collect()
}

fn unit_of(key: &str) -> Unit {
    if key.ends_with("_ms") {
        Unit::Millis
    } else if key.contains("bytes") {
        Unit::Bytes
    } else {
        Unit::Count
    }
}

fn amount(v: u64, unit: Unit) -> String {
    let signed = i64::try_from(v).unwrap_or(i64::MAX);
    match topic_config::human(signed, unit) {
        Some(h) => format!("{v} ({h})"),
        None => v.to_string(),
    }
}

/// Every key `BrokerConfig::default()` writes to TOML, dotted, with its value as TOML.
fn default_values() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(toml::Value::Table(table)) = toml::Value::try_from(BrokerConfig::default()) {
        flatten("", &table, &mut out);
    }
    out
}

fn flatten(prefix: &str, table: &toml::value::Table, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            // topic_defaults is itself a table of free keys: one entry, not one per key.
            toml::Value::Table(inner) if path != "topic_defaults" => {
                flatten(&format!("{path}."), inner, out);
            }
            toml::Value::Table(inner) if inner.is_empty() => out.push((path, "{}".into())),
            other => out.push((path, other.to_string())),
        }
    }
}

/// The reference of `keys` as text for a terminal.
pub fn text(keys: &[KeyDoc]) -> String {
    let mut out = String::new();
    for k in keys {
        out += &format!("{} = {}\n    {}\n", k.key, k.default, k.meaning);
        if !k.range.is_empty() {
            out += &format!("    allowed: {}\n", k.range);
        }
    }
    out
}

/// The whole reference as the Markdown page `docs/configuration.md`.
pub fn markdown() -> String {
    let table = |keys: &[KeyDoc]| {
        let mut out =
            String::from("| key | default | allowed | meaning |\n| --- | --- | --- | --- |\n");
        for k in keys {
            let cell = |s: &str| s.replace('|', "\\|");
            out += &format!(
                "| `{}` | `{}` | {} | {} |\n",
                k.key,
                cell(&k.default),
                cell(&k.range),
                cell(&k.meaning)
            );
        }
        out
    };
    format!(
        "# Configuration reference\n\n\
         Generated from the code by `quiver config --markdown`; a test fails when this page \
         and the code disagree. `quiver config topic` and `quiver config broker` print the \
         same in a terminal.\n\n\
         ## Topic configs\n\n\
         Set at creation (`quiver topic create NAME --config key=value`), changed with \
         `quiver topic alter NAME --set key=value` / `--delete key`, and defaulted for every \
         topic by the broker's `[topic_defaults]`. `quiver topic describe NAME` shows each \
         value in force and whether it was set on the topic, by the broker, or is the \
         built-in default. Numbers outside their range are refused with the range in the \
         message.\n\n{}\n\
         ## Broker configs\n\n\
         The TOML file `quiver serve --config FILE` reads. A dotted key is a key of a table: \
         `limits.max_connections = 10` is `max_connections = 10` under `[limits]`. Unknown \
         keys and values outside their range stop the broker at start with a message naming \
         them.\n\n{}",
        table(&topic_keys()),
        table(&broker_keys())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that `BrokerConfig::default()` leaves out of its TOML (unset options and the
    /// fields of TLS files mode), each with a value that must parse.
    const OPTIONAL: &[(&str, &str)] = &[
        ("advertised", "advertised = \"broker1.example.com:7420\""),
        ("metrics_listen", "metrics_listen = \"127.0.0.1:9644\""),
        (
            "tls.cert",
            "[tls]\nmode = \"files\"\ncert = \"c.pem\"\nkey = \"k.pem\"",
        ),
        (
            "tls.key",
            "[tls]\nmode = \"files\"\ncert = \"c.pem\"\nkey = \"k.pem\"",
        ),
        ("auth.client_ca", "[auth]\nclient_ca = \"ca.pem\""),
        ("cluster.ca", "[cluster]\nca = \"ca.pem\""),
        (
            "cluster.quorum_listen",
            "[cluster]\nquorum_listen = \"127.0.0.1:7421\"",
        ),
        (
            "cluster.quorum_advertised",
            "[cluster]\nquorum_advertised = \"127.0.0.1:7421\"",
        ),
    ];

    #[test]
    fn every_broker_key_has_a_meaning_and_every_meaning_a_key() {
        let documented: Vec<&str> = BROKER_MEANINGS.iter().map(|(k, _)| *k).collect();
        let mut real: Vec<String> = default_values().into_iter().map(|(k, _)| k).collect();
        real.extend(OPTIONAL.iter().map(|(k, _)| (*k).to_owned()));
        for key in &real {
            assert!(
                documented.contains(&key.as_str()),
                "broker key {key} is not in the reference"
            );
        }
        for key in &documented {
            assert!(
                real.iter().any(|r| r == key),
                "the reference names {key}, which the config does not have"
            );
        }
        for (key, toml) in OPTIONAL {
            BrokerConfig::from_toml(toml).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn every_ranged_broker_key_is_refused_just_outside_its_range() {
        let defaults = BrokerConfig::default();
        for b in defaults
            .bounds()
            .into_iter()
            .filter(|b| b.effective_max() < u64::MAX)
        {
            let doc = broker_keys().into_iter().find(|k| k.key == b.key);
            assert!(
                doc.is_some_and(|d| !d.range.is_empty()),
                "{} has no range in the reference",
                b.key
            );
            let mut outside = vec![b.effective_max().saturating_add(1)];
            if b.min > 0 && !(b.zero_is_off && b.min == 1) {
                outside.push(b.min - 1);
            }
            for value in outside {
                if b.zero_is_off && value == 0 {
                    continue;
                }
                let (section, field) = b.key.split_once('.').unwrap_or(("", b.key));
                let toml = if section.is_empty() {
                    format!("{field} = {value}")
                } else {
                    format!("[{section}]\n{field} = {value}")
                };
                // Past what the field's type holds, the TOML itself is refused.
                let Ok(config) = BrokerConfig::from_toml(&toml) else {
                    continue;
                };
                let err = config
                    .validate()
                    .expect_err(&format!("{} = {value} was accepted", b.key));
                // A key that bounds another may be reported through that one.
                let named = std::iter::once(b.key).chain(
                    defaults
                        .bounds()
                        .into_iter()
                        .filter(|o| {
                            o.at_least == Some(b.key)
                                || o.at_most.is_some_and(|(rule, _)| rule.contains(b.key))
                        })
                        .map(|o| o.key),
                );
                let text = err.to_string();
                assert!(
                    named.into_iter().any(|k| text.contains(&format!("{k} = "))),
                    "the error does not name {} or a key it bounds: {err}",
                    b.key
                );
            }
        }
    }

    #[test]
    fn the_docs_page_is_the_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let page = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            page == markdown(),
            "docs/configuration.md is out of date with the code: regenerate it with \
             `cargo run -p quiver-cli -- config --markdown > docs/configuration.md`"
        );
    }
}
