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

use std::collections::HashMap;

use super::Client;
use crate::Error;

/// The clients of the brokers this client routed to, by address.
#[derive(Debug, Default)]
pub(super) struct Peers {
    clients: parking_lot::Mutex<HashMap<String, Client>>,
    /// Held while dialling one, so concurrent requests share the new connection.
    dialling: tokio::sync::Mutex<()>,
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

    /// The client of the broker at `address`, dialled on first use.
    async fn peer(&self, address: &str) -> Result<Client, Error> {
        let peers = &self.inner.peers;
        if let Some(c) = peers.clients.lock().get(address) {
            return Ok(c.clone());
        }
        let _one_dial = peers.dialling.lock().await;
        if let Some(c) = peers.clients.lock().get(address) {
            return Ok(c.clone());
        }
        let client =
            Client::connect(&format!("quic://{address}"), self.inner.options.clone()).await?;
        peers
            .clients
            .lock()
            .insert(address.to_string(), client.clone());
        Ok(client)
    }
}
