//! Broker configuration: what `quiver serve --config FILE` reads (TOML), and the
//! single-node defaults `quiver dev` uses.
//!
//! Every number has an allowed range, stated on its field and checked by
//! [`BrokerConfig::validate`] when the broker starts: a value outside it stops the start
//! with [`BoundsError`] naming the key, the value and the range, rather than a broker
//! that runs and then hurts (a zero connection limit, a maintenance loop that spins).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod reference;

/// Everything the broker needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// This broker's id in the cluster; 0 on a single node. 0 to 2^31-1, the ids Kafka
    /// tools can carry.
    pub node_id: u32,
    /// UDP address the QUIC listener binds. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// `host:port` clients are told to dial in metadata; defaults to `listen`.
    pub advertised: Option<String>,
    /// TCP address of the HTTP endpoint serving `/metrics` (Prometheus), `/health` and
    /// `/ready`; unset serves none. Plain HTTP: bind it where only monitoring reaches.
    pub metrics_listen: Option<SocketAddr>,
    /// Where topics, segments, plugins and certificates live.
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub limits: Limits,
    /// Defaults for topic configs (`retention.ms`, `segment.bytes`, `flush`, ...), applied
    /// to topics that do not set them.
    pub topic_defaults: BTreeMap<String, String>,
    /// How often retention, age-based rolling and interval flushes run, in milliseconds.
    /// 10 ms (faster only burns CPU) to 60 s (slower delays `flush.ms` and retention).
    pub maintenance_interval_ms: u64,
    /// How long shutdown waits for in-flight requests before aborting them. 0 to 10 min.
    pub shutdown_grace_ms: u64,
    /// The consumer-group coordinator's timings and its offsets topic.
    pub groups: GroupsConfig,
    /// Broker-wide bounds of Wasm plugins (`[plugins]` in the TOML file).
    pub plugins: PluginsConfig,
    /// Who clients are and what they may do (`[auth]` in the TOML file). Off by default,
    /// which only a broker on loopback may run with unless told otherwise.
    pub auth: crate::auth::AuthConfig,
    /// This broker's part in a cluster (`[cluster]` in the TOML file): the metadata
    /// quorum's voters and the cluster CA. Empty on a single node.
    pub cluster: crate::cluster::ClusterConfig,
}

/// Bounds and defaults of the Wasm plugin runtime (`[plugins]` in the TOML file). The
/// per-call limits apply to every plugin that does not carry its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Wall-clock time one plugin call may take before it is stopped (PLUGIN_FAILED).
    /// Default 1000 ms: a stuck partitioner holds up a produce no longer than this.
    /// 10 ms (less stops ordinary calls) to 60 s.
    pub call_timeout_ms: u64,
    /// Linear memory one plugin instance may hold. Default 128 MiB (an interpreted
    /// Python or JavaScript guest needs tens of MiB before it does anything). 1 MiB to
    /// 4 GiB, all a 32-bit Wasm memory can address.
    pub memory_bytes: usize,
    /// Warm instances kept per plugin binding. Default 4; 0 (none kept) to 1024.
    pub max_idle_instances: usize,
    /// Largest component an upload may carry. A plugin upload frame may exceed
    /// `limits.max_frame_bytes` up to this size (a Python component is ~17 MiB), and
    /// must fit `limits.max_inflight_bytes`. Default 64 MiB; 1 MiB to 1 GiB.
    pub max_component_bytes: usize,
    /// Entries kept in each plugin's log ring. Default 1024; 1 to 1 000 000.
    pub log_entries: usize,
    /// Longest a `plugin logs --follow` request waits for a new entry. Default 10 s; 0 to
    /// 5 min.
    pub logs_follow_max_ms: u32,
    /// Records one PLUGIN_TEST may run the plugin over. Default 10 000; 1 to 1 000 000.
    pub max_test_records: u32,
    /// Plugin bindings (name, version, parameters) kept warm per kind, so a filter named
    /// by every fetch is not re-instantiated each time; past this the cache of that kind
    /// starts over. Default 256; 1 to 100 000.
    pub max_cached_bindings: usize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            call_timeout_ms: 1_000,
            memory_bytes: 128 << 20,
            max_idle_instances: 4,
            max_component_bytes: 64 << 20,
            log_entries: 1024,
            logs_follow_max_ms: 10_000,
            max_test_records: 10_000,
            max_cached_bindings: 256,
        }
    }
}

/// Settings of the consumer-group coordinator (`[groups]` in the TOML file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupsConfig {
    /// How long a rebalance out of an empty group waits for more members, so a fleet
    /// starting at once rebalances once. Default 3000 ms; tests set it near zero. 0 to
    /// 5 min.
    pub initial_rebalance_delay_ms: u32,
    /// Shortest session timeout a member may ask for. Default 6000 ms (Kafka's); shorter
    /// ones expire members on an ordinary pause. 100 ms to 1 h, and at most
    /// `max_session_timeout_ms`.
    pub min_session_timeout_ms: u32,
    /// Longest session timeout a member may ask for. Default 30 min; 100 ms to 1 h (a
    /// member silent longer holds its partitions from everyone else that long).
    pub max_session_timeout_ms: u32,
    /// Partitions of `__consumer_offsets` when the broker creates it; an existing topic
    /// keeps its count. Default 1; 1 to 1000. In a cluster each partition's leader
    /// coordinates the groups that hash to it, so more partitions spread the groups
    /// over more brokers.
    pub offsets_topic_partitions: u32,
    /// Replicas of each `__consumer_offsets` partition when a cluster creates it
    /// (Kafka's `offsets.topic.replication.factor`), at most the cluster's voters.
    /// The topic is created at the first group request, once that many brokers are
    /// available; until then group requests answer `COORDINATOR_NOT_AVAILABLE`.
    /// Default 3; 1 to 32. A single node's is always 1.
    pub offsets_topic_replication_factor: u16,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_topic_partitions: 1,
            offsets_topic_replication_factor: 3,
        }
    }
}

/// Where the broker's certificate comes from. TLS is always on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "mode", rename_all = "kebab-case")]
pub enum TlsConfig {
    /// Generate a self-signed certificate for `localhost`, `127.0.0.1` and `::1` into
    /// `<data_dir>/tls/` on first start and reuse it afterwards. For development.
    SelfSigned,
    /// PEM files of the certificate chain and private key. For production.
    Files { cert: PathBuf, key: PathBuf },
}

/// Bounds on what one broker accepts, so no client can make it grow without limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Concurrent QUIC connections; more are refused at the handshake. 1 to 100 000.
    pub max_connections: usize,
    /// Concurrent QUIC connections of one client (its remote IP address until clients
    /// authenticate), so one client cannot take every slot of `max_connections`; more
    /// are refused at once and logged. Default 128; 1 to `max_connections`.
    pub max_connections_per_client: usize,
    /// Concurrent request streams per connection (QUIC's own stream limit). 8 (a client
    /// keeps a produce, a fetch, a heartbeat and a subscription open at once) to 65 536.
    pub max_streams_per_connection: u32,
    /// Largest request frame; checked from the length prefix before any allocation.
    /// 64 KiB to 1 GiB, and at most `max_inflight_bytes`.
    pub max_frame_bytes: usize,
    /// Request bytes held in memory across all connections at once; a frame reserves
    /// its bytes as they arrive (not its declared length up front) and waits for room,
    /// so memory stays bounded under load. 1 MiB to 64 GiB.
    pub max_inflight_bytes: usize,
    /// One connection's share of `max_inflight_bytes`: its streams wait on their own
    /// share once it is full, not in everyone's queue. A frame larger than this is
    /// refused (FRAME_TOO_LARGE), so it must hold the largest frame, plugin uploads
    /// included (`plugins.max_component_bytes` + 64 KiB). One client holds at most
    /// `max_connections_per_client` × this, and never more than `max_inflight_bytes`.
    /// Default 128 MiB; 1 MiB to `max_inflight_bytes`.
    pub max_inflight_bytes_per_connection: usize,
    /// One client's share of `max_inflight_bytes` across all of its connections (a
    /// client is its address), so many connections of one client cannot take the whole
    /// budget either. Default 256 MiB, half the broker's; from
    /// `max_inflight_bytes_per_connection` to `max_inflight_bytes`.
    pub max_inflight_bytes_per_client: usize,
    /// Longest a request stream may go without delivering a byte of its frame, from the
    /// moment it opens; a stalled frame is answered REQUEST_TIMED_OUT and its
    /// reservation freed. Default 5000 ms; 100 ms to 5 min.
    pub request_read_timeout_ms: u64,
    /// Slowest a frame may arrive overall: a frame of `n` bytes must be whole within
    /// `request_read_timeout_ms` + `n` / this, so a trickle of bytes cannot hold a
    /// stream open forever either. Default 64 KiB/s (a 16 MiB frame gets 4 min 21 s);
    /// 1 KiB/s to 10 GiB/s.
    pub request_read_min_bytes_per_sec: u64,
    /// Produce bytes one client may send per second, Kafka-style: past it, its produce
    /// requests are delayed (not refused) until it is back within the rate, with a
    /// burst of one second's worth. 0 = unlimited (the default), else 64 KiB/s to
    /// 100 GiB/s.
    pub produce_bytes_per_sec_per_client: u64,
    /// Fetch response bytes one client may receive per second, enforced like the
    /// produce quota by delaying responses (subscriptions included). 0 = unlimited
    /// (the default), else 64 KiB/s to 100 GiB/s.
    pub fetch_bytes_per_sec_per_client: u64,
    /// Longest a fetch may long-poll, whatever the client asks. 0 to 5 min.
    pub max_fetch_wait_ms: u32,
    /// Largest fetch response, whatever the client asks. 64 KiB to 256 MiB.
    pub max_fetch_bytes: u32,
    /// Partitions a topic may have. 1 to 100 000 (each partition keeps files open).
    pub max_partitions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_connections_per_client: 128,
            max_streams_per_connection: 1024,
            max_frame_bytes: quiver_proto::frame::DEFAULT_MAX_FRAME,
            max_inflight_bytes: 512 * 1024 * 1024,
            max_inflight_bytes_per_connection: 128 * 1024 * 1024,
            max_inflight_bytes_per_client: 256 * 1024 * 1024,
            request_read_timeout_ms: 5_000,
            request_read_min_bytes_per_sec: 64 * 1024,
            produce_bytes_per_sec_per_client: 0,
            fetch_bytes_per_sec_per_client: 0,
            max_fetch_wait_ms: 30_000,
            max_fetch_bytes: 8 * 1024 * 1024,
            max_partitions: 10_000,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            listen: SocketAddr::from(([127, 0, 0, 1], 7420)),
            advertised: None,
            metrics_listen: None,
            data_dir: PathBuf::from("quiver-data"),
            tls: TlsConfig::SelfSigned,
            limits: Limits::default(),
            topic_defaults: BTreeMap::new(),
            maintenance_interval_ms: 1_000,
            shutdown_grace_ms: 5_000,
            groups: GroupsConfig::default(),
            plugins: PluginsConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
        }
    }
}

impl BrokerConfig {
    /// The single-node development defaults: localhost, self-signed TLS, given data dir.
    pub fn dev(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            data_dir: data_dir.into(),
            ..BrokerConfig::default()
        }
    }

    /// Parses a TOML config file's text; unknown keys are an error naming them.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The config as a TOML file that [`from_toml`](Self::from_toml) reads back.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Checks every number against its range (stated on each field) and
    /// `topic_defaults` as a topic's own configs are checked. The broker calls it before
    /// it opens anything.
    pub fn validate(&self) -> Result<(), BoundsError> {
        for b in self.bounds() {
            let max = b.effective_max();
            let allowed = (b.min..=max).contains(&b.value) || (b.zero_is_off && b.value == 0);
            if !allowed {
                return Err(BoundsError::OutOfRange {
                    key: b.key,
                    value: b.value,
                    min: b.min,
                    max,
                });
            }
        }
        if self
            .topic_defaults
            .contains_key(quiver_metadata::UNCLEAN_ELECTION_KEY)
        {
            // The controller elects leaders from the replicated metadata, which holds each
            // topic's own configs, not any one broker's defaults.
            return Err(BoundsError::PerTopicOnly {
                key: quiver_metadata::UNCLEAN_ELECTION_KEY,
            });
        }
        crate::topic_config::validate(&self.topic_defaults).map_err(BoundsError::TopicDefaults)
    }

    /// Every numeric key with its value and allowed range, as this config bounds it: a
    /// few bounds are other keys' values (a frame larger than the in-flight budget could
    /// never be read; a minimum session above the maximum admits no member), named in
    /// [`Bound::at_most`] or [`Bound::at_least`]. The config reference is rendered from
    /// the defaults' bounds, so it cannot disagree with [`validate`](Self::validate).
    pub fn bounds(&self) -> Vec<Bound> {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        const GIB: u64 = 1024 * MIB;
        const SECOND: u64 = 1000;
        const MINUTE: u64 = 60 * SECOND;
        const HOUR: u64 = 60 * MINUTE;
        let l = &self.limits;
        let p = &self.plugins;
        let g = &self.groups;
        let c = &self.cluster;
        let n = |v: usize| v as u64;
        let b = |key, value, min, max| Bound::new(key, value, min, max);
        vec![
            b("node_id", self.node_id.into(), 0, i32::MAX as u64),
            b(
                "maintenance_interval_ms",
                self.maintenance_interval_ms,
                10,
                MINUTE,
            ),
            b("shutdown_grace_ms", self.shutdown_grace_ms, 0, 10 * MINUTE),
            b("limits.max_connections", n(l.max_connections), 1, 100_000),
            b(
                "limits.max_connections_per_client",
                n(l.max_connections_per_client),
                1,
                u64::MAX,
            )
            .at_most("limits.max_connections", n(l.max_connections)),
            b(
                "limits.max_streams_per_connection",
                l.max_streams_per_connection.into(),
                8,
                65_536,
            ),
            b(
                "limits.max_inflight_bytes",
                n(l.max_inflight_bytes),
                MIB,
                64 * GIB,
            ),
            b(
                "limits.max_frame_bytes",
                n(l.max_frame_bytes),
                64 * KIB,
                GIB,
            )
            .at_most("limits.max_inflight_bytes", n(l.max_inflight_bytes)),
            b(
                "limits.max_inflight_bytes_per_connection",
                n(l.max_inflight_bytes_per_connection),
                MIB,
                u64::MAX,
            )
            .at_most("limits.max_inflight_bytes", n(l.max_inflight_bytes)),
            b(
                "limits.max_inflight_bytes_per_client",
                n(l.max_inflight_bytes_per_client),
                n(l.max_inflight_bytes_per_connection),
                u64::MAX,
            )
            .at_least("limits.max_inflight_bytes_per_connection")
            .at_most("limits.max_inflight_bytes", n(l.max_inflight_bytes)),
            b(
                "limits.request_read_timeout_ms",
                l.request_read_timeout_ms,
                100,
                5 * MINUTE,
            ),
            b(
                "limits.request_read_min_bytes_per_sec",
                l.request_read_min_bytes_per_sec,
                KIB,
                10 * GIB,
            ),
            b(
                "limits.produce_bytes_per_sec_per_client",
                l.produce_bytes_per_sec_per_client,
                64 * KIB,
                100 * GIB,
            )
            .zero_is_off(),
            b(
                "limits.fetch_bytes_per_sec_per_client",
                l.fetch_bytes_per_sec_per_client,
                64 * KIB,
                100 * GIB,
            )
            .zero_is_off(),
            b(
                "limits.max_fetch_wait_ms",
                l.max_fetch_wait_ms.into(),
                0,
                5 * MINUTE,
            ),
            b(
                "limits.max_fetch_bytes",
                l.max_fetch_bytes.into(),
                64 * KIB,
                256 * MIB,
            ),
            b("limits.max_partitions", l.max_partitions.into(), 1, 100_000),
            b("plugins.call_timeout_ms", p.call_timeout_ms, 10, MINUTE),
            b("plugins.memory_bytes", n(p.memory_bytes), MIB, 4 * GIB),
            b(
                "plugins.max_idle_instances",
                n(p.max_idle_instances),
                0,
                1024,
            ),
            b(
                "plugins.max_component_bytes",
                n(p.max_component_bytes),
                MIB,
                GIB,
            ),
            b("plugins.log_entries", n(p.log_entries), 1, 1_000_000),
            b(
                "plugins.logs_follow_max_ms",
                p.logs_follow_max_ms.into(),
                0,
                5 * MINUTE,
            ),
            b(
                "plugins.max_test_records",
                p.max_test_records.into(),
                1,
                1_000_000,
            ),
            b(
                "plugins.max_cached_bindings",
                n(p.max_cached_bindings),
                1,
                100_000,
            ),
            b(
                "groups.initial_rebalance_delay_ms",
                g.initial_rebalance_delay_ms.into(),
                0,
                5 * MINUTE,
            ),
            b(
                "groups.min_session_timeout_ms",
                g.min_session_timeout_ms.into(),
                100,
                HOUR,
            )
            .at_most(
                "groups.max_session_timeout_ms",
                g.max_session_timeout_ms.into(),
            ),
            b(
                "groups.max_session_timeout_ms",
                g.max_session_timeout_ms.into(),
                100,
                HOUR,
            ),
            b(
                "groups.offsets_topic_partitions",
                g.offsets_topic_partitions.into(),
                1,
                1000,
            ),
            b(
                "groups.offsets_topic_replication_factor",
                g.offsets_topic_replication_factor.into(),
                1,
                32,
            ),
            b(
                "cluster.election_timeout_ms",
                c.election_timeout_ms,
                50,
                MINUTE,
            ),
            b("cluster.heartbeat_ms", c.heartbeat_ms, 10, u64::MAX).at_most(
                "a third of cluster.election_timeout_ms",
                c.election_timeout_ms / 3,
            ),
            b(
                "cluster.propose_timeout_ms",
                c.propose_timeout_ms,
                SECOND,
                5 * MINUTE,
            ),
            b(
                "cluster.broker_session_timeout_ms",
                c.broker_session_timeout_ms,
                100,
                5 * MINUTE,
            ),
            b(
                "cluster.broker_heartbeat_ms",
                c.broker_heartbeat_ms,
                10,
                u64::MAX,
            )
            .at_most(
                "a third of cluster.broker_session_timeout_ms",
                c.broker_session_timeout_ms / 3,
            ),
            b(
                "cluster.default_replication_factor",
                c.default_replication_factor.into(),
                1,
                32,
            ),
            b(
                "cluster.replica_lag_time_max_ms",
                c.replica_lag_time_max_ms,
                100,
                5 * MINUTE,
            ),
            b(
                "cluster.leader_rebalance_interval_ms",
                c.leader_rebalance_interval_ms,
                SECOND,
                HOUR,
            )
            .zero_is_off(),
        ]
    }
}

/// One numeric broker config key, its value and its allowed range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub key: &'static str,
    pub value: u64,
    pub min: u64,
    /// The key's own cap; `u64::MAX` when only another key caps it.
    pub max: u64,
    /// 0 is allowed too, meaning "no limit".
    pub zero_is_off: bool,
    /// The other key whose value `min` is, if any.
    pub at_least: Option<&'static str>,
    /// Another key (or rule) that caps the value too, with that cap.
    pub at_most: Option<(&'static str, u64)>,
}

impl Bound {
    fn new(key: &'static str, value: u64, min: u64, max: u64) -> Bound {
        Bound {
            key,
            value,
            min,
            max,
            zero_is_off: false,
            at_least: None,
            at_most: None,
        }
    }

    fn zero_is_off(self) -> Bound {
        Bound {
            zero_is_off: true,
            ..self
        }
    }

    fn at_least(self, key: &'static str) -> Bound {
        Bound {
            at_least: Some(key),
            ..self
        }
    }

    fn at_most(self, rule: &'static str, cap: u64) -> Bound {
        Bound {
            at_most: Some((rule, cap)),
            ..self
        }
    }

    /// The largest allowed value: the key's own cap or the other key's, the smaller.
    pub fn effective_max(&self) -> u64 {
        self.at_most.map_or(self.max, |(_, cap)| self.max.min(cap))
    }
}

/// A broker config value outside its allowed range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoundsError {
    #[error("broker config {key} = {value} is out of range: set it to {min} to {max}")]
    OutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("broker config topic_defaults: {0}")]
    TopicDefaults(crate::topic_config::ConfigError),
    #[error(
        "broker config topic_defaults: {key} is decided by the controller from each topic's own configs; set it on the topic (quiver topic create --config or quiver topic alter)"
    )]
    PerTopicOnly { key: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_files_and_defaults() {
        let cfg = BrokerConfig::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            data_dir = "/var/lib/quiver"
            [tls]
            mode = "files"
            cert = "/etc/quiver/cert.pem"
            key = "/etc/quiver/key.pem"
            [topic_defaults]
            "retention.ms" = "3600000"
            "#,
        )
        .expect("parses");
        assert_eq!(cfg.listen.port(), 9000);
        assert!(matches!(cfg.tls, TlsConfig::Files { .. }));
        assert_eq!(cfg.topic_defaults["retention.ms"], "3600000");
        assert_eq!(cfg.limits.max_connections, 1024);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = BrokerConfig::from_toml("lisen = \"1.2.3.4:5\"").expect_err("typo");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn defaults_and_dev_config_are_within_bounds() {
        assert_eq!(BrokerConfig::default().validate(), Ok(()));
        assert_eq!(BrokerConfig::dev("/tmp/x").validate(), Ok(()));
    }

    #[test]
    fn relations_are_ranges_bounded_by_the_other_key() {
        let mut config = BrokerConfig::default();
        config.groups.min_session_timeout_ms = 60_000;
        config.groups.max_session_timeout_ms = 30_000;
        let err = config.validate().expect_err("min above max");
        assert_eq!(
            err,
            BoundsError::OutOfRange {
                key: "groups.min_session_timeout_ms",
                value: 60_000,
                min: 100,
                max: 30_000
            }
        );
        let mut config = BrokerConfig::default();
        config.limits.max_inflight_bytes = 8 << 20;
        assert!(matches!(
            config.validate(),
            Err(BoundsError::OutOfRange { key: "limits.max_frame_bytes", max, .. }) if max == 8 << 20
        ));
    }

    /// Why a broker config whose `[topic_defaults]` holds just `key = value` is refused.
    fn topic_default_refused(key: &str, value: &str) -> BoundsError {
        let text = format!("[topic_defaults]\n\"{key}\" = \"{value}\"\n");
        BrokerConfig::from_toml(&text)
            .expect("parses")
            .validate()
            .expect_err("refused")
    }

    #[test]
    fn unclean_election_is_refused_as_a_broker_default() {
        let err = topic_default_refused("unclean.leader.election.enable", "true");
        assert!(
            err.to_string().contains("unclean.leader.election.enable")
                && err.to_string().contains("quiver topic alter"),
            "{err}"
        );
    }

    #[test]
    fn topic_defaults_are_held_to_topic_ranges() {
        let err = topic_default_refused("segment.bytes", "1");
        assert!(matches!(err, BoundsError::TopicDefaults(_)), "{err}");
        assert!(err.to_string().contains("segment.bytes=1"), "{err}");
    }
}
