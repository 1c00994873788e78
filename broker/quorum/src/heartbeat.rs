//! Broker heartbeats: every broker tells the quorum leader, its controller, that it is
//! alive, about every `cluster.broker_heartbeat_ms`. A heartbeat is not a record; the
//! leader keeps the last one of each broker in memory and the broker's controller task
//! reads them to decide fencing (`quiver_metadata::Liveness`).
//!
//! QUIC over UDP gives no sign when a peer's process dies (no FIN, no reset until a
//! timeout), so a broker is judged by its heartbeats, not by its connections.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use openraft::ServerState;

use crate::network::{PeerReply, PeerRequest};
use crate::{NodeId, Quorum, QuorumError};

/// The last heartbeat of each broker: its run (incarnation) and when it arrived.
#[derive(Debug, Default)]
pub(crate) struct Heartbeats {
    last: Mutex<BTreeMap<NodeId, (u64, Instant)>>,
}

impl Quorum {
    /// Sends this broker's heartbeat to the quorum leader (or takes it here when this
    /// voter leads). Fails when no leader is known or it cannot be reached; the caller
    /// tries again at its next beat.
    pub async fn heartbeat(&self, broker_id: NodeId, incarnation: u64) -> Result<(), QuorumError> {
        let (leader, address) = self.leader_address()?;
        if leader == self.options.node_id {
            self.receive_heartbeat(broker_id, incarnation);
            return Ok(());
        }
        let message = serde_json::to_vec(&PeerRequest::Heartbeat {
            broker_id,
            incarnation,
        })
        .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        let reply = tokio::time::timeout(
            self.options.propose_timeout,
            self.transport.call(leader, &address, message),
        )
        .await
        .map_err(|_| QuorumError::NoQuorum {
            reason: format!("leader {leader} did not answer a heartbeat"),
            waited_ms: u64::try_from(self.options.propose_timeout.as_millis()).unwrap_or(0),
        })?
        .map_err(|e| QuorumError::NoQuorum {
            reason: e.reason,
            waited_ms: 0,
        })?;
        match serde_json::from_slice::<PeerReply>(&reply) {
            Ok(PeerReply::Heartbeat(true)) => Ok(()),
            Ok(other) => Err(QuorumError::NoQuorum {
                reason: format!("voter {leader} did not take the heartbeat: {other:?}"),
                waited_ms: 0,
            }),
            Err(e) => Err(QuorumError::Stopped(format!(
                "voter {leader}'s answer to a heartbeat does not decode: {e}"
            ))),
        }
    }

    /// The quorum's leader as this node knows it, and its address.
    pub(crate) fn leader_address(&self) -> Result<(NodeId, String), QuorumError> {
        let metrics = self.raft.metrics().borrow().clone();
        let Some(leader) = metrics.current_leader else {
            return Err(QuorumError::NoQuorum {
                reason: "no leader is elected yet".into(),
                waited_ms: 0,
            });
        };
        let address = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .ok_or_else(|| QuorumError::Stopped(format!("leader {leader} has no address")))?;
        Ok((leader, address))
    }

    /// Takes a heartbeat if this voter leads.
    pub(crate) fn receive_heartbeat(&self, broker_id: NodeId, incarnation: u64) -> bool {
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return false;
        }
        if let Ok(mut last) = self.heartbeats.last.lock() {
            last.insert(broker_id, (incarnation, Instant::now()));
        }
        true
    }

    /// The last heartbeat received from each broker while this voter led.
    pub fn heartbeats(&self) -> Vec<(NodeId, u64, Instant)> {
        self.heartbeats
            .last
            .lock()
            .map(|last| last.iter().map(|(b, (i, at))| (*b, *i, *at)).collect())
            .unwrap_or_default()
    }

    /// Whether this voter leads the quorum (and so is the controller) now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }
}
