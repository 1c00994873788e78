//! Running as one broker of a cluster: the `[cluster]` settings, and the metadata quorum
//! the brokers keep together.
//!
//! Without voters a broker is a single node: its metadata log is a local file. With
//! voters (`[cluster] voters`), the metadata log is the Raft log of `quiver_quorum`,
//! kept by the listed brokers (Kafka's KRaft in combined mode: each voter is also a
//! broker). Voters talk to each other on a listener of their own (the quorum listener,
//! like Kafka's controller listener), with mutual TLS: every broker's certificate must
//! chain to the cluster CA, and a voter accepts only peers that present such a
//! certificate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) mod controller;
pub(crate) mod plugins;

/// The `[cluster]` section of the broker's TOML file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The brokers that keep the metadata quorum, each `id@host:port` with the address
    /// of its quorum listener, e.g. `["1@10.0.0.1:7421", "2@10.0.0.2:7421",
    /// "3@10.0.0.3:7421"]`. Three or five voters: three survive the loss of one, five
    /// of two. A broker whose `node_id` is not among them is an observer: it joins the
    /// running cluster at start (a Raft learner: it keeps the metadata log but never
    /// votes) and needs `quorum_listen`. Empty (the default): a single node with its
    /// metadata in a local log.
    pub voters: Vec<String>,
    /// PEM file of the CA that signed every broker's certificate (`[tls] cert`).
    /// Voters verify each other against it, in both directions. Required with voters.
    pub ca: Option<PathBuf>,
    /// UDP address of this broker's inter-broker (quorum) listener. Default: the
    /// address of this broker's own entry in `voters`. Required on an observer, whose
    /// address it also is for the other brokers unless `quorum_advertised` says
    /// otherwise.
    pub quorum_listen: Option<SocketAddr>,
    /// Where the other brokers reach an observer's inter-broker listener, when that is
    /// not `quorum_listen` (behind NAT or a relay). A voter's is its entry in `voters`.
    /// Default: `quorum_listen`.
    pub quorum_advertised: Option<SocketAddr>,
    /// A voter that hears no leader for a random time between this and twice this
    /// starts an election. Default 500 ms; 50 ms to 60 s.
    pub election_timeout_ms: u64,
    /// How often the quorum leader heartbeats the other voters. Default 100 ms; 10 ms
    /// to a third of `election_timeout_ms`.
    pub heartbeat_ms: u64,
    /// How long a metadata change (create a topic, register a plugin, ...) waits for a
    /// quorum before it fails. Default 10 s; 1 s to 5 min.
    pub propose_timeout_ms: u64,
    /// How often this broker tells the controller (the quorum leader) it is alive.
    /// Default 250 ms; 10 ms to a third of `broker_session_timeout_ms`.
    pub broker_heartbeat_ms: u64,
    /// A broker whose heartbeats stop for this long is fenced: its partitions get new
    /// leaders from their in-sync replicas. Default 2000 ms; 100 ms to 5 min.
    pub broker_session_timeout_ms: u64,
    /// A follower that has not caught up with its leader's log end for this long leaves
    /// the in-sync replicas (Kafka's `replica.lag.time.max.ms`). Default 10 s; 100 ms
    /// to 5 min.
    pub replica_lag_time_max_ms: u64,
    /// How often the controller gives partitions back to their preferred leader (the
    /// first replica) where it is in sync but another broker leads, as after restarts
    /// (Kafka's `auto.leader.rebalance.enable` with
    /// `leader.imbalance.check.interval.seconds`). Default 300000 ms (5 min); 0 turns it
    /// off; otherwise 1 s to 1 h.
    pub leader_rebalance_interval_ms: u64,
    /// The replication factor of a topic created without one (Kafka's
    /// `default.replication.factor`). Default 1; 1 to 32, and no more than the brokers
    /// available when a topic is created.
    pub default_replication_factor: u16,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            voters: Vec::new(),
            ca: None,
            quorum_listen: None,
            quorum_advertised: None,
            election_timeout_ms: 500,
            heartbeat_ms: 100,
            propose_timeout_ms: 10_000,
            broker_heartbeat_ms: 250,
            broker_session_timeout_ms: 2000,
            replica_lag_time_max_ms: 10_000,
            leader_rebalance_interval_ms: 300_000,
            default_replication_factor: 1,
        }
    }
}

impl ClusterConfig {
    /// Whether this broker is one of a cluster (has voters).
    pub fn is_cluster(&self) -> bool {
        !self.voters.is_empty()
    }

    /// The voters by id, each with its quorum address; an error names the entry that
    /// does not parse or repeats an id.
    pub fn voter_map(&self) -> Result<BTreeMap<u32, SocketAddr>, String> {
        let mut voters = BTreeMap::new();
        for entry in &self.voters {
            let (id, addr) = entry
                .split_once('@')
                .ok_or_else(|| format!("cluster.voters entry `{entry}` is not `id@host:port`"))?;
            let id: u32 = id.trim().parse().map_err(|_| {
                format!("cluster.voters entry `{entry}`: `{id}` is not a broker id")
            })?;
            let addr: SocketAddr = addr.trim().parse().map_err(|e| {
                format!("cluster.voters entry `{entry}`: `{addr}` is not host:port ({e})")
            })?;
            if voters.insert(id, addr).is_some() {
                return Err(format!("cluster.voters names broker {id} twice"));
            }
        }
        Ok(voters)
    }

    /// Checks the section against this broker's id; returns the voters.
    pub fn check(&self, node_id: u32) -> Result<BTreeMap<u32, SocketAddr>, String> {
        let voters = self.voter_map()?;
        if voters.is_empty() {
            return Ok(voters);
        }
        if !voters.contains_key(&node_id) {
            match self.quorum_advertised.or(self.quorum_listen) {
                None => {
                    return Err(format!(
                        "node_id {node_id} is not among cluster.voters ({}): such a broker joins the cluster as an observer and needs cluster.quorum_listen, the address the other brokers reach it on",
                        voters
                            .keys()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Some(a) if a.ip().is_unspecified() || a.port() == 0 => {
                    return Err(format!(
                        "cluster.quorum_listen {a}: an observer's listener is also the address the other brokers reach it on; give a concrete IP and port (or set cluster.quorum_advertised)"
                    ));
                }
                Some(a) if voters.values().any(|v| *v == a) => {
                    return Err(format!(
                        "{a}, this observer's inter-broker address, is a voter's address in cluster.voters"
                    ));
                }
                Some(_) => {}
            }
        }
        if voters.len() % 2 == 0 {
            return Err(format!(
                "cluster.voters lists {} brokers; use an odd number (3 or 5): an even one tolerates no more failures than one fewer",
                voters.len()
            ));
        }
        if self.ca.is_none() {
            return Err(
                "cluster.ca is required with cluster.voters: brokers verify each other's certificates against it"
                    .into(),
            );
        }
        // The timings are bounded with every other number, by `BrokerConfig::validate`.
        Ok(voters)
    }

    /// Where the other brokers reach broker `node_id`'s inter-broker listener: its
    /// entry in the voters, or an observer's `quorum_advertised` or `quorum_listen`.
    /// `None` on a single node.
    pub fn peer_address(&self, node_id: u32) -> Option<SocketAddr> {
        let voters = self.voter_map().ok()?;
        if voters.is_empty() {
            return None;
        }
        voters
            .get(&node_id)
            .copied()
            .or(self.quorum_advertised)
            .or(self.quorum_listen)
    }

    /// The quorum options for this broker, reached at `address`.
    pub(crate) fn quorum_options(
        &self,
        node_id: u32,
        voters: &BTreeMap<u32, SocketAddr>,
        address: SocketAddr,
    ) -> quiver_quorum::QuorumOptions {
        let voters = voters
            .iter()
            .map(|(id, addr)| (u64::from(*id), addr.to_string()))
            .collect();
        let mut options =
            quiver_quorum::QuorumOptions::new(u64::from(node_id), voters, address.to_string());
        options.election_timeout_ms = (self.election_timeout_ms, self.election_timeout_ms * 2);
        options.heartbeat_ms = self.heartbeat_ms;
        options.propose_timeout = Duration::from_millis(self.propose_timeout_ms);
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(voters: &[&str]) -> ClusterConfig {
        ClusterConfig {
            voters: voters.iter().map(|s| s.to_string()).collect(),
            ca: Some(PathBuf::from("ca.pem")),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn voters_parse_and_bad_entries_are_named() {
        let c = config(&["1@127.0.0.1:7421", "2@127.0.0.1:7422", "3@127.0.0.1:7423"]);
        assert_eq!(c.check(2).expect("valid").len(), 3);
        let err = c.check(4).expect_err("an observer without its address");
        assert!(
            err.contains("node_id 4") && err.contains("quorum_listen"),
            "{err}"
        );
        let mut observer = c.clone();
        observer.quorum_listen = Some("127.0.0.1:7424".parse().expect("addr"));
        assert_eq!(observer.check(4).expect("an observer").len(), 3);
        assert_eq!(
            observer.peer_address(4),
            Some("127.0.0.1:7424".parse().expect("addr"))
        );
        assert_eq!(
            observer.peer_address(2),
            Some("127.0.0.1:7422".parse().expect("addr"))
        );
        observer.quorum_listen = Some("0.0.0.0:7424".parse().expect("addr"));
        assert!(
            observer
                .check(4)
                .expect_err("unspecified")
                .contains("concrete")
        );
        observer.quorum_listen = Some("127.0.0.1:7421".parse().expect("addr"));
        assert!(
            observer
                .check(4)
                .expect_err("taken")
                .contains("voter's address")
        );
        let err = config(&["1@127.0.0.1:7421", "x"])
            .check(1)
            .expect_err("bad");
        assert!(err.contains("`x`"), "{err}");
        let err = config(&["1@127.0.0.1:7421", "1@127.0.0.1:7422", "3@127.0.0.1:7423"])
            .check(1)
            .expect_err("twice");
        assert!(err.contains("twice"), "{err}");
        let err = config(&["1@127.0.0.1:7421", "2@127.0.0.1:7422"])
            .check(1)
            .expect_err("even");
        assert!(err.contains("odd"), "{err}");
        let mut no_ca = config(&["1@127.0.0.1:7421"]);
        no_ca.ca = None;
        assert!(no_ca.check(1).expect_err("ca").contains("cluster.ca"));
        assert!(
            ClusterConfig::default()
                .check(0)
                .expect("single")
                .is_empty()
        );
    }
}
