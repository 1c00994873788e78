//! The quorum listener: how the voters of a cluster carry metadata-quorum messages to
//! each other over QUIC.
//!
//! Its own UDP port and ALPN (`quiver-quorum/1`), apart from the client listener, so
//! that the quorum can elect a leader before the broker serves clients (a broker needs
//! the quorum to register), and so that a flood of clients cannot starve it. Both ends
//! present certificates that must chain to the cluster CA (mutual TLS); the listener
//! asks for and requires a client certificate.
//!
//! A message is one bidirectional stream: the sender writes the message and finishes
//! its side, the receiver answers with the reply and finishes. The bytes are
//! `quiver_quorum`'s; this file only moves them. One connection per peer, made on
//! first use and made again when it breaks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quiver_quorum::{NodeId, Quorum, Transport, TransportError, TransportFuture};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::replica::serve_with_broker;
use crate::tls::{Identity, TlsError, crypto_provider};

/// The ALPN id of the quorum protocol.
pub const QUORUM_ALPN: &[u8] = b"quiver-quorum/1";
/// The largest quorum message read; snapshots travel in chunks far below it.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // A replica fetch's answer carries megabytes: with quinn's stock 1.25 MB stream
    // window it would cross in slices, a round trip each. Windows as the client
    // listener's.
    t.stream_receive_window(quinn::VarInt::from_u32(crate::transport::STREAM_WINDOW));
    t.receive_window(quinn::VarInt::from_u32(crate::transport::CONNECTION_WINDOW));
    t.send_window(u64::from(crate::transport::CONNECTION_WINDOW));
    quiver_quic::allow_jumbo_datagrams(&mut t);
    // A peer that stops answering is noticed within seconds; keep-alives hold an idle
    // connection open between heartbeats.
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(5_000).into()));
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    t
}

/// The client configs of the inter-broker protocols besides the quorum's.
pub(crate) struct PeerClients {
    pub replica: quinn::ClientConfig,
    pub blob: quinn::ClientConfig,
    pub forward: quinn::ClientConfig,
}

/// Binds the inter-broker listener at `addr` (quorum messages, and replication, plugin
/// components and forwarded produces under their own ALPNs); it also dials peers.
/// Returns the endpoint, whose default client config speaks the quorum protocol, and
/// the client configs of the others.
pub(crate) fn endpoint(
    addr: SocketAddr,
    identity: &Identity,
    ca: &Path,
    reset_key: &[u8],
) -> Result<(quinn::Endpoint, PeerClients), crate::ServerError> {
    let roots =
        Arc::new(crate::auth::client_certs::read_roots(ca, "cluster CA").map_err(TlsError::from)?);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::clone(&roots),
        crypto_provider(),
    )
    .build()
    .map_err(|e| TlsError::Quic(format!("cluster CA {}: {e}", ca.display())))?;
    let mut server = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::from)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(TlsError::from)?;
    server.alpn_protocols = vec![
        QUORUM_ALPN.to_vec(),
        super::replica::REPLICA_ALPN.to_vec(),
        super::blobs::BLOB_ALPN.to_vec(),
        super::forward::FORWARD_ALPN.to_vec(),
    ];
    let server = quinn::crypto::rustls::QuicServerConfig::try_from(server)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
    server.transport_config(Arc::new(transport()));

    let client = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::from)?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(TlsError::from)?;
    let client_for = |alpn: &[u8]| -> Result<quinn::ClientConfig, TlsError> {
        let mut tls = client.clone();
        tls.alpn_protocols = vec![alpn.to_vec()];
        let tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(tls));
        config.transport_config(Arc::new(transport()));
        Ok(config)
    };
    let quorum_client = client_for(QUORUM_ALPN)?;
    let peers = PeerClients {
        replica: client_for(super::replica::REPLICA_ALPN)?,
        blob: client_for(super::blobs::BLOB_ALPN)?,
        forward: client_for(super::forward::FORWARD_ALPN)?,
    };

    let mut endpoint = quiver_quic::server_endpoint(addr, server, reset_key)
        .map_err(|source| crate::ServerError::Bind { addr, source })?;
    endpoint.set_default_client_config(quorum_client);
    Ok((endpoint, peers))
}

/// Sends quorum messages to peers over the quorum endpoint.
#[derive(Debug)]
pub(crate) struct QuicTransport {
    endpoint: quinn::Endpoint,
    connections: Mutex<HashMap<NodeId, quinn::Connection>>,
}

impl QuicTransport {
    pub(crate) fn new(endpoint: quinn::Endpoint) -> Self {
        QuicTransport {
            endpoint,
            connections: Mutex::new(HashMap::new()),
        }
    }

    async fn connection(
        &self,
        target: NodeId,
        address: &str,
    ) -> Result<quinn::Connection, TransportError> {
        let cached = self.connections.lock().get(&target).cloned();
        if let Some(c) = cached
            && c.close_reason().is_none()
        {
            return Ok(c);
        }
        let unreachable = |reason: String| TransportError {
            reason: format!("voter {target} at {address}: {reason}"),
            maybe_delivered: false,
        };
        let addr: SocketAddr = address
            .parse()
            .map_err(|e| unreachable(format!("not host:port ({e})")))?;
        let connecting = self
            .endpoint
            .connect(addr, &addr.ip().to_string())
            .map_err(|e| unreachable(e.to_string()))?;
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| unreachable("no answer to the handshake".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        self.connections.lock().insert(target, connection.clone());
        Ok(connection)
    }
}

impl Transport for QuicTransport {
    fn call<'a>(
        &'a self,
        target: NodeId,
        address: &'a str,
        message: Vec<u8>,
    ) -> TransportFuture<'a> {
        Box::pin(async move {
            let connection = self.connection(target, address).await?;
            let lost = |reason: String, maybe_delivered| {
                self.connections.lock().remove(&target);
                TransportError {
                    reason: format!("voter {target} at {address}: {reason}"),
                    maybe_delivered,
                }
            };
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|e| lost(e.to_string(), false))?;
            send.write_all(&message)
                .await
                .map_err(|e| lost(e.to_string(), true))?;
            send.finish().map_err(|e| lost(e.to_string(), true))?;
            recv.read_to_end(MAX_MESSAGE_BYTES)
                .await
                .map_err(|e| lost(e.to_string(), true))
        })
    }
}

/// Serves peers' quorum messages, and followers' fetches once `broker` is set, until
/// `shutdown`.
pub(crate) async fn serve(
    endpoint: quinn::Endpoint,
    quorum: Quorum,
    broker: super::replica::BrokerSlot,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { break };
        let quorum = quorum.clone();
        let shutdown = shutdown.clone();
        let broker = Arc::clone(&broker);
        tracker.spawn(async move {
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "a quorum peer's handshake failed");
                    return;
                }
            };
            let protocol = connection
                .handshake_data()
                .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|h| h.protocol);
            use super::{blobs, forward, replica};
            // Each protocol: its largest request, its name in logs, and its handler.
            match protocol.as_deref() {
                Some(p) if p == replica::REPLICA_ALPN => {
                    let (max, what) = (replica::MAX_REQUEST_BYTES, "replica fetch");
                    serve_with_broker(
                        connection,
                        broker,
                        shutdown,
                        max,
                        what,
                        replica::serve_fetch,
                    )
                    .await;
                }
                Some(p) if p == blobs::BLOB_ALPN => {
                    let (max, what) = (blobs::MAX_REQUEST_BYTES, "plugin component request");
                    serve_with_broker(
                        connection,
                        broker,
                        shutdown,
                        max,
                        what,
                        blobs::serve_component,
                    )
                    .await;
                }
                Some(p) if p == forward::FORWARD_ALPN => {
                    let (max, what) = (forward::MAX_REQUEST_BYTES, "forwarded produce");
                    serve_with_broker(
                        connection,
                        broker,
                        shutdown,
                        max,
                        what,
                        forward::serve_forwarded,
                    )
                    .await;
                }
                _ => serve_connection(connection, quorum, shutdown).await,
            }
        });
    }
    tracker.close();
    endpoint.close(0u32.into(), b"broker shutting down");
}

async fn serve_connection(
    connection: quinn::Connection,
    quorum: Quorum,
    shutdown: CancellationToken,
) {
    serve_exchanges(
        connection,
        shutdown,
        MAX_MESSAGE_BYTES,
        "quorum message",
        move |message| {
            let quorum = quorum.clone();
            async move { Some(vec![bytes::Bytes::from(quorum.handle(&message).await)]) }
        },
    )
    .await;
}

/// Serves the inter-broker exchanges of one connection until it closes or `shutdown`:
/// each bidirectional stream carries one request (at most `max_request` bytes, read to
/// its end) and gets `handle`'s answer, or is dropped when `handle` gives none. An
/// answer is a list of chunks written in turn, so that records read from a log go out
/// without being copied into one buffer first.
pub(crate) async fn serve_exchanges<F, Fut>(
    connection: quinn::Connection,
    shutdown: CancellationToken,
    max_request: usize,
    what: &'static str,
    handle: F,
) where
    F: Fn(Vec<u8>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<Vec<bytes::Bytes>>> + Send + 'static,
{
    let streams = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            stream = connection.accept_bi() => stream,
        };
        let Ok((mut send, mut recv)) = stream else {
            break;
        };
        let handle = handle.clone();
        streams.spawn(async move {
            let request = match recv.read_to_end(max_request).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "a {what} could not be read");
                    return;
                }
            };
            if let Some(mut reply) = handle(request).await
                && send.write_all_chunks(&mut reply).await.is_ok()
            {
                let _ = send.finish();
            }
        });
    }
    streams.close();
}
