//! Who a connection belongs to, and how many connections each client holds.
//!
//! The broker-wide connection limit alone lets one client take every slot and lock
//! everyone else out, so each client also has its own limit. Until clients
//! authenticate, a client is its remote IP address; once a connection is authenticated
//! (by its client certificate at the handshake, or by a token later) it also counts
//! against its principal, whose quotas then apply. [`ClientKey`] is the one place that
//! says whom a limit counts. Each client's entry also carries its byte-rate quotas,
//! shared by all of its connections.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;

use super::quota::{ClientQuotas, QuotaRates};

/// Whom the per-client limits and quotas count against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    /// An unauthenticated client, known only by its address (IPv4-mapped IPv6 addresses
    /// are folded to IPv4 so one host is one client whichever socket family it used).
    Address(IpAddr),
    /// An authenticated principal, such as `User:alice`, wherever it connects from.
    Principal(String),
}

impl ClientKey {
    /// The key of a connection from `remote`.
    pub fn of(remote: SocketAddr) -> ClientKey {
        ClientKey::Address(remote.ip().to_canonical())
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Address(ip) => write!(f, "{ip}"),
            ClientKey::Principal(p) => f.write_str(p),
        }
    }
}

/// One client's shared state: how many connections it holds, and its quotas.
#[derive(Debug)]
struct Entry {
    connections: usize,
    quotas: Arc<ClientQuotas>,
    /// The client's share of the broker's in-flight request bytes, across all of its
    /// connections.
    inflight: Arc<tokio::sync::Semaphore>,
}

/// Every client with a connection open (or a quota debt still to serve).
#[derive(Debug)]
pub(crate) struct Clients {
    per_client: usize,
    /// In-flight request bytes one client may hold across its connections.
    inflight_bytes: usize,
    rates: QuotaRates,
    entries: Mutex<HashMap<ClientKey, Entry>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "client {key} already holds {held} connections, its limit (limits.max_connections_per_client)"
)]
pub(crate) struct TooManyConnections {
    pub key: ClientKey,
    pub held: usize,
}

impl Clients {
    pub fn new(per_client: usize, rates: QuotaRates) -> Clients {
        Clients {
            per_client,
            inflight_bytes: tokio::sync::Semaphore::MAX_PERMITS,
            rates,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Bounds the in-flight request bytes one client holds across its connections.
    pub fn with_inflight_bytes(mut self, bytes: usize) -> Clients {
        self.inflight_bytes = bytes.min(tokio::sync::Semaphore::MAX_PERMITS);
        self
    }

    /// Counts a new connection of `key`, or refuses it when the client is at its limit.
    /// The slot is given back when the returned [`ClientSlot`] is dropped.
    pub fn admit(self: &Arc<Self>, key: ClientKey) -> Result<ClientSlot, TooManyConnections> {
        let mut entries = self.entries.lock();
        // Entries kept only for a quota debt are let go once the debt is paid, so a
        // stream of one-off clients does not grow the map.
        if entries.len() > 4 * self.per_client.max(256) {
            entries.retain(|_, e| e.connections > 0 || e.quotas.in_debt());
        }
        let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
            connections: 0,
            quotas: Arc::new(ClientQuotas::new(self.rates)),
            inflight: Arc::new(tokio::sync::Semaphore::new(self.inflight_bytes)),
        });
        if entry.connections >= self.per_client {
            return Err(TooManyConnections {
                key,
                held: entry.connections,
            });
        }
        entry.connections += 1;
        Ok(ClientSlot {
            quotas: Arc::clone(&entry.quotas),
            inflight: Arc::clone(&entry.inflight),
            key,
            clients: Arc::clone(self),
        })
    }

    /// Connections `key` holds now.
    pub fn held(&self, key: &ClientKey) -> usize {
        self.entries.lock().get(key).map_or(0, |e| e.connections)
    }

    fn release(&self, key: &ClientKey) {
        let mut entries = self.entries.lock();
        if let Some(entry) = entries.get_mut(key) {
            entry.connections = entry.connections.saturating_sub(1);
            // A client that reconnects while throttled keeps its debt.
            if entry.connections == 0 && !entry.quotas.in_debt() {
                entries.remove(key);
            }
        }
    }
}

/// One admitted connection of a client; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    pub key: ClientKey,
    pub quotas: Arc<ClientQuotas>,
    /// The client's in-flight byte budget, shared by its connections.
    pub inflight: Arc<tokio::sync::Semaphore>,
    clients: Arc<Clients>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.clients.release(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> ClientKey {
        ClientKey::of(SocketAddr::new(ip.parse().expect("ip"), 1))
    }

    #[test]
    fn a_client_is_refused_past_its_limit_and_others_are_not() {
        let clients = Arc::new(Clients::new(2, QuotaRates::default()));
        let a1 = clients.admit(key("10.0.0.1")).expect("first");
        let _a2 = clients.admit(key("10.0.0.1")).expect("second");
        let refused = clients.admit(key("10.0.0.1")).expect_err("third");
        assert_eq!(refused.held, 2);
        let _b = clients.admit(key("10.0.0.2")).expect("another client");
        drop(a1);
        assert_eq!(clients.held(&key("10.0.0.1")), 1);
        let _a3 = clients
            .admit(key("10.0.0.1"))
            .expect("a slot was given back");
    }

    #[test]
    fn ipv4_mapped_addresses_are_the_same_client() {
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    }

    #[test]
    fn entries_go_when_the_last_connection_closes() {
        let clients = Arc::new(Clients::new(4, QuotaRates::default()));
        let slot = clients.admit(key("10.0.0.1")).expect("admitted");
        drop(slot);
        assert!(clients.entries.lock().is_empty());
    }
}
