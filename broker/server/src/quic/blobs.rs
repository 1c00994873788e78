//! Plugin components between brokers.
//!
//! A plugin is uploaded to one broker, which stores its component by content hash and
//! registers the version in the metadata; every other broker learns of the version from
//! the metadata and fetches the component by that hash from a peer that has it. The
//! exchange rides the inter-broker listener (mutual TLS with the cluster CA) under its
//! own ALPN, `quiver-blob/1`: one stream per component, the asking broker writes the
//! hash (64 hex digits) and finishes, the peer answers one status byte (0: here it is,
//! 1: not stored here) and, when found, the component's bytes. The asking broker checks
//! the bytes against the hash before it stores them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quiver_plugin_host::registry::{content_hash, is_content_hash};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;

/// The ALPN id of plugin component fetches.
pub const BLOB_ALPN: &[u8] = b"quiver-blob/1";
/// A request is a content hash.
pub(super) const MAX_REQUEST_BYTES: usize = 128;
const FOUND: u8 = 0;
const NOT_HERE: u8 = 1;
/// Bound on one fetch, handshake included: a component is tens of megabytes at most.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers one peer's request for a plugin component by its content hash.
pub(super) async fn serve_component(
    broker: Option<Arc<Broker>>,
    request: Vec<u8>,
    _shutdown: CancellationToken,
) -> Option<Vec<u8>> {
    let hash = String::from_utf8(request)
        .ok()
        .filter(|h| is_content_hash(h));
    let Some(hash) = hash else {
        tracing::warn!("a malformed plugin component request");
        return None;
    };
    let Some(broker) = broker else {
        return Some(vec![NOT_HERE]);
    };
    let read = tokio::task::spawn_blocking(move || {
        let registry = broker.plugins.registry();
        registry
            .has_blob(&hash)
            .then(|| registry.read_blob(&hash))
            .transpose()
    })
    .await;
    match read {
        Ok(Ok(Some(bytes))) => {
            let mut answer = Vec::with_capacity(bytes.len() + 1);
            answer.push(FOUND);
            answer.extend_from_slice(&bytes);
            Some(answer)
        }
        Ok(Ok(None)) => Some(vec![NOT_HERE]),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read a stored plugin component for a peer");
            Some(vec![NOT_HERE])
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading a plugin component for a peer failed");
            Some(vec![NOT_HERE])
        }
    }
}

/// Fetches components from peers.
#[derive(Debug, Clone)]
pub(crate) struct BlobLink {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
}

impl BlobLink {
    pub(crate) fn new(endpoint: quinn::Endpoint, client: quinn::ClientConfig) -> Self {
        BlobLink { endpoint, client }
    }

    /// The component `hash` from the broker whose inter-broker listener is `address`:
    /// `Ok(None)` when it does not store it, an error naming what failed otherwise
    /// (unreachable, cut short, bytes that do not hash to `hash`, larger than
    /// `max_bytes`).
    pub(crate) async fn fetch(
        &self,
        address: &str,
        hash: &str,
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, String> {
        let addr: SocketAddr = address
            .parse()
            .map_err(|e| format!("{address} is not host:port ({e})"))?;
        let exchange = async {
            let connection = self
                .endpoint
                .connect_with(self.client.clone(), addr, &addr.ip().to_string())
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(hash.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            let answer = recv
                .read_to_end(max_bytes.saturating_add(1))
                .await
                .map_err(|e| e.to_string())?;
            connection.close(0u32.into(), b"done");
            Ok::<_, String>(answer)
        };
        let answer = tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer from {address} within {FETCH_TIMEOUT:?}"))??;
        match answer.split_first() {
            Some((&FOUND, bytes)) => {
                let got = content_hash(bytes);
                if got != hash {
                    return Err(format!(
                        "{address} sent {} bytes that hash to {got}, not {hash}",
                        bytes.len()
                    ));
                }
                Ok(Some(bytes.to_vec()))
            }
            Some((&NOT_HERE, _)) => Ok(None),
            _ => Err(format!("{address} sent a malformed answer")),
        }
    }
}
