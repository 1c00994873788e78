//! Broker configuration: what `quiver serve --config FILE` reads (TOML), and the
//! single-node defaults `quiver dev` uses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the broker needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// This broker's id in the cluster; 0 on a single node.
    pub node_id: u32,
    /// UDP address the QUIC listener binds. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// `host:port` clients are told to dial in metadata; defaults to `listen`.
    pub advertised: Option<String>,
    /// Where topics, segments, plugins and certificates live.
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub limits: Limits,
    /// Defaults for topic configs (`retention.ms`, `segment.bytes`, `flush`, ...), applied
    /// to topics that do not set them.
    pub topic_defaults: BTreeMap<String, String>,
    /// How often retention, age-based rolling and interval flushes run, in milliseconds.
    pub maintenance_interval_ms: u64,
    /// How long shutdown waits for in-flight requests before aborting them.
    pub shutdown_grace_ms: u64,
    /// The consumer-group coordinator's timings and its offsets topic.
    pub groups: GroupsConfig,
    /// Broker-wide bounds of Wasm plugins (`[plugins]` in the TOML file).
    pub plugins: PluginsConfig,
}

/// Bounds and defaults of the Wasm plugin runtime (`[plugins]` in the TOML file). The
/// per-call limits apply to every plugin that does not carry its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Wall-clock time one plugin call may take before it is stopped (PLUGIN_FAILED).
    /// Default 1000 ms: a stuck partitioner holds up a produce no longer than this.
    pub call_timeout_ms: u64,
    /// Linear memory one plugin instance may hold. Default 128 MiB (an interpreted
    /// Python or JavaScript guest needs tens of MiB before it does anything).
    pub memory_bytes: usize,
    /// Warm instances kept per plugin binding. Default 4.
    pub max_idle_instances: usize,
    /// Largest component an upload may carry. A plugin upload frame may exceed
    /// `limits.max_frame_bytes` up to this size (a Python component is ~17 MiB), and
    /// must fit `limits.max_inflight_bytes`. Default 64 MiB.
    pub max_component_bytes: usize,
    /// Entries kept in each plugin's log ring. Default 1024.
    pub log_entries: usize,
    /// Longest a `plugin logs --follow` request waits for a new entry. Default 10 s.
    pub logs_follow_max_ms: u32,
    /// Records one PLUGIN_TEST may run the plugin over. Default 10 000.
    pub max_test_records: u32,
    /// Plugin bindings (name, version, parameters) kept warm per kind, so a filter named
    /// by every fetch is not re-instantiated each time; past this the cache of that kind
    /// starts over. Default 256.
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
    /// starting at once rebalances once. Default 3000 ms; tests set it near zero.
    pub initial_rebalance_delay_ms: u32,
    /// Shortest session timeout a member may ask for. Default 6000 ms (Kafka's); shorter
    /// ones expire members on an ordinary pause.
    pub min_session_timeout_ms: u32,
    /// Longest session timeout a member may ask for. Default 30 min.
    pub max_session_timeout_ms: u32,
    /// Partitions of `__consumer_offsets` when the broker creates it; an existing topic
    /// keeps its count. Default 1.
    pub offsets_topic_partitions: u32,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_topic_partitions: 1,
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
    /// Concurrent QUIC connections; more are refused at the handshake.
    pub max_connections: usize,
    /// Concurrent QUIC connections of one client (its remote IP address until clients
    /// authenticate), so one client cannot take every slot of `max_connections`; more
    /// are refused at once and logged. Default 128.
    pub max_connections_per_client: usize,
    /// Concurrent request streams per connection (QUIC's own stream limit).
    pub max_streams_per_connection: u32,
    /// Largest request frame; checked from the length prefix before any allocation.
    pub max_frame_bytes: usize,
    /// Request bytes held in memory across all connections at once; a frame reserves
    /// its bytes as they arrive (not its declared length up front) and waits for room,
    /// so memory stays bounded under load.
    pub max_inflight_bytes: usize,
    /// One connection's share of `max_inflight_bytes`: its streams wait on their own
    /// share once it is full, not in everyone's queue. A frame larger than this is
    /// refused (FRAME_TOO_LARGE), so it must hold the largest frame, plugin uploads
    /// included (`plugins.max_component_bytes` + 64 KiB). One client holds at most
    /// `max_connections_per_client` × this, and never more than `max_inflight_bytes`.
    /// Default 128 MiB.
    pub max_inflight_bytes_per_connection: usize,
    /// Longest a request stream may go without delivering a byte of its frame, from the
    /// moment it opens; a stalled frame is answered REQUEST_TIMED_OUT and its
    /// reservation freed. Default 5000 ms.
    pub request_read_timeout_ms: u64,
    /// Slowest a frame may arrive overall: a frame of `n` bytes must be whole within
    /// `request_read_timeout_ms` + `n` / this, so a trickle of bytes cannot hold a
    /// stream open forever either. Default 64 KiB/s (a 16 MiB frame gets 4 min 21 s).
    pub request_read_min_bytes_per_sec: u64,
    /// Produce bytes one client may send per second, Kafka-style: past it, its produce
    /// requests are delayed (not refused) until it is back within the rate, with a
    /// burst of one second's worth. 0 = unlimited (the default).
    pub produce_bytes_per_sec_per_client: u64,
    /// Fetch response bytes one client may receive per second, enforced like the
    /// produce quota by delaying responses (subscriptions included). 0 = unlimited
    /// (the default).
    pub fetch_bytes_per_sec_per_client: u64,
    /// Longest a fetch may long-poll, whatever the client asks.
    pub max_fetch_wait_ms: u32,
    /// Largest fetch response, whatever the client asks.
    pub max_fetch_bytes: u32,
    /// Partitions a topic may have.
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
            data_dir: PathBuf::from("quiver-data"),
            tls: TlsConfig::SelfSigned,
            limits: Limits::default(),
            topic_defaults: BTreeMap::new(),
            maintenance_interval_ms: 1_000,
            shutdown_grace_ms: 5_000,
            groups: GroupsConfig::default(),
            plugins: PluginsConfig::default(),
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
}
