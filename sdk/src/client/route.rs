//! Sending a partition's produces and fetches to its leader.
//!
//! In a cluster each partition is led by one broker, and only it takes produces and
//! serves fetches; the others answer `NOT_LEADER`. The metadata answer names the brokers
//! and each partition's leader, so the client keeps one connection per broker it needs
//! (a [`Client`] of its own, sharing the options) and sends each request to the leader.
//! When a leader changes, the request fails with `NOT_LEADER` or a lost connection, the
//! caller forgets the topic's metadata ([`Client::invalidate_metadata`]) and the retry
//! goes wherever the fresh metadata says. A single node (one broker in the metadata) is
//! always asked on the client's own connection.
//!
//! A broker that dies says nothing over UDP, so the client judges it by silence: a
//! connection quiet for [`ClientOptions::liveness_timeout`](crate::ClientOptions) closes
//! (the client pings, and a live broker acknowledges every ping), and the broker becomes
//! a suspect. For the next two liveness periods (time for the cluster to fence it and
//! elect new leaders, even when it was the controller too) its partitions are not
//! dialled but answered [`Error::Unreachable`]. Metadata fetched before the suspicion is
//! stale at once, and metadata fetched during it only until it ends (it may still name
//! the gone broker as a leader the cluster has not replaced yet), so requests wait for,
//! and then follow, the leaders the cluster elects meanwhile; no request waits out a
//! handshake with a dead broker.
//!
//! Group requests go to the group's coordinator the same way: `FindCoordinator` names
//! it once, and the client keeps it per group until a request answers that it moved
//! (`NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`) or its connection is lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use quiver_proto::ErrorCode;
use quiver_proto::api::{FindCoordinatorRequest, Request};

use super::Client;
use crate::Error;

/// Brokers that stopped answering, by address, with when (wall-clock ms); shared by a
/// client and the clients of its peers.
#[derive(Debug, Default)]
pub(super) struct Suspects {
    by_address: parking_lot::Mutex<HashMap<String, i64>>,
    /// When the latest suspicion was raised: metadata fetched before then may name a
    /// broker that is gone.
    latest_ms: AtomicI64,
}

impl Suspects {
    pub(super) fn mark(&self, address: &str) {
        let now = quiver_proto::time::now_ms();
        self.by_address.lock().insert(address.to_string(), now);
        self.latest_ms.fetch_max(now, Ordering::Relaxed);
    }

    pub(super) fn clear(&self, address: &str) {
        self.by_address.lock().remove(address);
    }

    /// Whether `address` stopped answering less than `window` ago.
    pub(super) fn suspected(&self, address: &str, window: std::time::Duration) -> bool {
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let now = quiver_proto::time::now_ms();
        self.by_address
            .lock()
            .get(address)
            .is_some_and(|at| now.saturating_sub(*at) < window)
    }

    /// Whether metadata fetched at `fetched_ms` may be used at `now_ms`: fetched after
    /// every suspicion so far, and not during the latest one's `window` if that has
    /// ended since (such an answer may name the suspect as a leader not yet replaced).
    pub(super) fn trusts(&self, fetched_ms: i64, now_ms: i64, window: std::time::Duration) -> bool {
        let latest = self.latest_ms.load(Ordering::Relaxed);
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let ends = latest.saturating_add(window);
        fetched_ms > latest && (fetched_ms >= ends || now_ms < ends)
    }
}

/// The clients of the brokers this client routed to, by address.
#[derive(Debug, Default)]
pub(super) struct Peers {
    clients: parking_lot::Mutex<HashMap<String, Client>>,
    /// One lock per address, held while dialling it, so concurrent requests share the
    /// new connection and a slow dial holds up no other broker's.
    dialling: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each group's coordinator as last found: `None` when it is the broker this client
    /// is connected to (kept apart so the client never holds a handle to itself).
    coordinators: parking_lot::Mutex<HashMap<String, Option<Client>>>,
}

/// How a group request is sent to its coordinator.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GroupCall {
    /// With the client's retries, each attempt within the request timeout.
    Retried,
    /// One attempt bounded by this (a join the coordinator holds for the group).
    Within(std::time::Duration),
}

impl Client {
    /// The client for requests about `topic`-`partition`: its leader's, or this one
    /// while the leader is unknown or the cluster is one broker.
    pub(crate) async fn leader_for(&self, topic: &str, partition: u32) -> Result<Client, Error> {
        let meta = self.topic_metadata(topic).await?;
        let Some(leader) = meta
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
        else {
            return Ok(self.clone());
        };
        let address = {
            let brokers = self.inner.brokers.lock();
            if brokers.len() <= 1 {
                return Ok(self.clone());
            }
            brokers.get(&leader).cloned()
        };
        match address {
            Some(address) => self.peer(&address).await,
            None => Ok(self.clone()),
        }
    }

    /// Sends `req` about `topic`-`partition` to the partition's leader and follows the
    /// leader when it moves: `NOT_LEADER`, an unknown partition, a lost connection or an
    /// unreachable leader forget the topic's metadata, and the request goes again after
    /// a backoff to wherever fresh metadata says, up to the client's retries. For
    /// requests that are safe to repeat.
    pub(crate) async fn call_leader<R: Request>(
        &self,
        topic: &str,
        partition: u32,
        req: &R,
    ) -> Result<R::Response, Error> {
        let mut attempt = 0;
        loop {
            let error = match self.leader_for(topic, partition).await {
                Ok(leader) => match leader.call_once(req, Bytes::new(), true).await {
                    Ok(Some((answer, _))) => return Ok(answer),
                    Ok(None) => Error::Transport {
                        api: R::NAME,
                        reason: "no response was read".into(),
                    },
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if matches!(
                error.code(),
                Some(ErrorCode::NOT_LEADER | ErrorCode::UNKNOWN_PARTITION) | None
            ) {
                self.invalidate_metadata(topic);
            }
            if attempt >= self.inner.options.retries || !error.is_retriable() {
                return Err(error);
            }
            tracing::debug!(api = R::NAME, %topic, partition, attempt, error = %error, "retrying at the partition's leader");
            tokio::time::sleep(super::dial::jittered(self.inner.options.backoff(attempt))).await;
            attempt += 1;
        }
    }

    /// How many brokers the last metadata answer listed: more than one in a cluster.
    pub(crate) fn broker_count(&self) -> usize {
        self.inner.brokers.lock().len()
    }

    /// A client for every broker of the cluster, as fresh metadata lists them (this one
    /// alone on a single node). A broker that cannot be dialled is left out, with a
    /// warning.
    pub(crate) async fn every_broker(&self) -> Result<Vec<Client>, Error> {
        self.refresh_metadata(Some(Vec::new())).await?;
        let addresses: Vec<String> = {
            let brokers = self.inner.brokers.lock();
            if brokers.len() <= 1 {
                return Ok(vec![self.clone()]);
            }
            let mut listed: Vec<(u32, String)> =
                brokers.iter().map(|(id, a)| (*id, a.clone())).collect();
            listed.sort();
            listed.into_iter().map(|(_, a)| a).collect()
        };
        let mut clients = Vec::with_capacity(addresses.len());
        for address in addresses {
            match self.peer(&address).await {
                Ok(client) => clients.push(client),
                Err(e) => {
                    tracing::warn!(broker = %address, error = %e, "cannot reach a broker of the cluster")
                }
            }
        }
        Ok(clients)
    }

    /// The client of the broker at `address`, dialled on first use; refused with
    /// [`Error::Unreachable`] while the broker is a suspect.
    async fn peer(&self, address: &str) -> Result<Client, Error> {
        if self
            .inner
            .suspects
            .suspected(address, self.suspicion_window())
        {
            return Err(Error::Unreachable {
                address: address.to_string(),
            });
        }
        let peers = &self.inner.peers;
        if let Some(c) = peers.clients.lock().get(address) {
            return Ok(c.clone());
        }
        let lock = Arc::clone(
            peers
                .dialling
                .lock()
                .entry(address.to_string())
                .or_default(),
        );
        let _one_dial = lock.lock().await;
        if let Some(c) = peers.clients.lock().get(address) {
            return Ok(c.clone());
        }
        let client = Client::connect_peer(address, self).await?;
        peers
            .clients
            .lock()
            .insert(address.to_string(), client.clone());
        Ok(client)
    }
}

impl Client {
    /// The client of `group_id`'s coordinator, found with `FindCoordinator` on first
    /// use and kept until [`forget_coordinator`](Self::forget_coordinator).
    pub(crate) async fn coordinator_for(&self, group_id: &str) -> Result<Client, Error> {
        let known = self.inner.peers.coordinators.lock().get(group_id).cloned();
        match known {
            Some(Some(peer)) if peer.is_suspect() => self.forget_coordinator(group_id),
            Some(found) => return Ok(found.unwrap_or_else(|| self.clone())),
            None => {}
        }
        let req = FindCoordinatorRequest {
            group_id: group_id.to_string(),
        };
        let (found, _) = self.call(&req, Bytes::new()).await?;
        let peer = if found.local {
            None
        } else {
            Some(self.peer(&found.address).await?)
        };
        tracing::debug!(group = %group_id, coordinator = found.node_id, address = %found.address, "found the group's coordinator");
        self.inner
            .peers
            .coordinators
            .lock()
            .insert(group_id.to_string(), peer.clone());
        Ok(peer.unwrap_or_else(|| self.clone()))
    }

    /// Forgets `group_id`'s coordinator: the next group request finds it again.
    pub(crate) fn forget_coordinator(&self, group_id: &str) {
        self.inner.peers.coordinators.lock().remove(group_id);
    }

    /// Sends a group request to the group's coordinator, one attempt at a time. An
    /// answer that the group moved, or an unreachable coordinator, finds the coordinator
    /// again and retries, with the client's backoff and retries; a lost connection
    /// forgets the coordinator, and a [`GroupCall::Retried`] request tries again too
    /// (on any retriable error), a [`GroupCall::Within`] one leaves that to its caller.
    pub(crate) async fn call_group<R: Request>(
        &self,
        group_id: &str,
        req: &R,
        how: GroupCall,
    ) -> Result<R::Response, Error> {
        let mut attempt = 0;
        loop {
            let result = match self.coordinator_for(group_id).await {
                Ok(coordinator) => match how {
                    GroupCall::Retried => {
                        match coordinator.call_once(req, Bytes::new(), true).await {
                            Ok(Some((answer, _))) => Ok(answer),
                            Ok(None) => Err(Error::Transport {
                                api: R::NAME,
                                reason: "no response was read".into(),
                            }),
                            Err(e) => Err(e),
                        }
                    }
                    GroupCall::Within(after) => coordinator.call_within(req, after).await,
                },
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let moved = matches!(
                error.code(),
                Some(ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE)
            ) || matches!(error, Error::Unreachable { .. });
            let lost = matches!(
                error,
                Error::ConnectionLost(_)
                    | Error::Connect { .. }
                    | Error::Transport { .. }
                    | Error::Timeout { .. }
            );
            if moved || lost {
                self.forget_coordinator(group_id);
            }
            let again = moved || (matches!(how, GroupCall::Retried) && error.is_retriable());
            if !again || attempt >= self.inner.options.retries {
                return Err(error);
            }
            tracing::debug!(api = R::NAME, group = %group_id, attempt, error = %error, "the group's coordinator moved; finding it again");
            tokio::time::sleep(super::dial::jittered(self.inner.options.backoff(attempt))).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Suspects;

    #[test]
    fn a_suspect_is_refused_for_one_window_and_stales_older_metadata() {
        let suspects = Suspects::default();
        let window = Duration::from_secs(2);
        let before = quiver_proto::time::now_ms() - 1;
        assert!(suspects.trusts(before, before, window), "no suspicion yet");
        suspects.mark("10.0.0.2:7420");
        let marked = quiver_proto::time::now_ms();
        assert!(suspects.suspected("10.0.0.2:7420", Duration::from_secs(60)));
        assert!(!suspects.suspected("10.0.0.3:7420", Duration::from_secs(60)));
        assert!(
            !suspects.trusts(before, marked, window),
            "metadata from before the suspicion may name the gone broker"
        );
        // Fetched during the window: used while it lasts, stale once it has ended.
        let during = marked + 500;
        assert!(suspects.trusts(during, during + 100, window));
        assert!(!suspects.trusts(during, marked + 2_500, window));
        // Fetched after the window: trusted.
        assert!(suspects.trusts(marked + 2_100, marked + 2_500, window));
        // The window has passed: the broker may be dialled again.
        assert!(!suspects.suspected("10.0.0.2:7420", Duration::ZERO));
        suspects.clear("10.0.0.2:7420");
        assert!(!suspects.suspected("10.0.0.2:7420", Duration::from_secs(60)));
    }
}
