//! What both ends of a Quiver connection agree on below the wire protocol: the ALPN id,
//! the order of TLS cipher suites, the UDP socket and quinn endpoint every broker and
//! client runs on, and the stream priority of requests and responses that carry no
//! payload. The broker (`quiver-server`) and the SDK each build their own TLS and
//! transport configs on top; they share this crate so that neither depends on the other.
//!
//! A broker's endpoint is built with [`server_endpoint`] and a stateless-reset key that
//! the broker keeps across restarts: QUIC derives the reset token of every connection id
//! from it, so a broker started again on the same address answers packets of a
//! connection its previous run held with a reset the client recognises, and the client
//! reconnects at once instead of waiting out its idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;

/// The ALPN protocol id every Quiver client and broker speaks.
pub const ALPN: &[u8] = b"quiver/1";

/// Stream priority of requests and responses without a payload (metadata, fetch
/// requests, produce acknowledgements, heartbeats). Both ends send streams in the order
/// they were written rather than interleaved, so that the oldest produce request or
/// fetch response arrives whole first; this priority keeps the small ones from waiting
/// behind megabytes of batches.
pub const CONTROL_PRIORITY: i32 = 1;

/// Bytes of kernel buffer asked for on each QUIC UDP socket. Linux's default (about
/// 208 KiB) overflows at a few hundred MB/s and every dropped datagram makes congestion
/// control back off; measured here, a quarter of all datagrams were dropped. The kernel
/// caps the request at `net.core.rmem_max` / `wmem_max`; a smaller buffer still works.
pub const UDP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// The rustls crypto provider with TLS 1.3 suites ordered AES-128-GCM first: it is
/// measurably faster than rustls's default first choice (AES-256-GCM) on this hardware
/// at a security margin that suffices. Both ends use it, so either end's preference wins
/// the same way.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
            _ => 2,
        });
    Arc::new(provider)
}

/// A UDP socket bound to `addr` with enlarged send and receive buffers, for quinn.
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a refused size leaves the default, which is slower but correct.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Fewest bytes of stateless-reset key [`server_endpoint`] accepts: the HMAC-SHA256 key
/// that derives reset tokens should be at least as long as its output.
pub const MIN_RESET_KEY_BYTES: usize = 32;

/// A quinn endpoint on [`udp_socket`], serving when `server` is given, with a random
/// stateless-reset key (right for clients, whose resets nobody needs to recognise after
/// they restart). Must run inside a tokio runtime.
pub fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    bind(addr, quinn::EndpointConfig::default(), server)
}

/// A serving quinn endpoint on [`udp_socket`] whose stateless-reset tokens derive from
/// `reset_key` (at least [`MIN_RESET_KEY_BYTES`]). Given the same key after a restart,
/// the endpoint resets connections of the previous run in a way their clients accept.
///
/// Connection ids must outlive the process too. quinn's default generator makes 8-byte
/// ids with a checksum keyed at random per endpoint, and drops packets whose id fails
/// it without answering: a restarted endpoint would drop every packet of the previous
/// run's connections, reset or no reset. The generator here is the same, keyed by a
/// value derived from `reset_key`, so ids of the previous run still pass (and random
/// junk sent to the port is still dropped cheaply). Must run inside a tokio runtime.
pub fn server_endpoint(
    addr: SocketAddr,
    server: quinn::ServerConfig,
    reset_key: &[u8],
) -> std::io::Result<quinn::Endpoint> {
    if reset_key.len() < MIN_RESET_KEY_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a stateless-reset key of {} bytes is too short; give at least {MIN_RESET_KEY_BYTES}",
                reset_key.len()
            ),
        ));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
    // A separate value for the id checksum, so that the id scheme reveals nothing of the
    // reset key (the checksum is not cryptographic).
    let tag = ring::hmac::sign(&key, b"quiver connection id checksum key");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&tag.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    bind(addr, config, Some(server))
}

fn bind(
    addr: SocketAddr,
    config: quinn::EndpointConfig,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for quinn (run inside tokio)"))?;
    quinn::Endpoint::new(config, server, udp_socket(addr)?, runtime)
}

/// The largest UDP payload path-MTU discovery tries: a jumbo frame's (9000 bytes less
/// the IP and UDP headers). quinn's own ceiling is an Ethernet frame's, 1452 bytes, so
/// every megabyte batch crosses as some 700 packets, each encrypted, framed, sent and
/// acknowledged on its own. Where the path takes larger datagrams (loopback,
/// datacenter networks with jumbo frames) discovery finds it and a batch needs a sixth
/// of the packets; where it does not, the probes are lost and the connection stays at
/// what works, as before.
pub const MAX_UDP_PAYLOAD: u16 = 8972;

/// Lets path-MTU discovery go up to [`MAX_UDP_PAYLOAD`].
pub fn allow_jumbo_datagrams(transport: &mut quinn::TransportConfig) {
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    transport.mtu_discovery_config(Some(mtu));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_is_preferred_and_every_suite_is_kept() {
        let provider = crypto_provider();
        let suites: Vec<_> = provider.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(
            suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }

    #[test]
    fn sockets_bind_to_an_ephemeral_port() {
        let socket = udp_socket("127.0.0.1:0".parse().expect("address")).expect("binds");
        assert_ne!(socket.local_addr().expect("bound").port(), 0);
    }

    #[test]
    fn a_short_reset_key_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _inside = runtime.enter();
        let (server, _) = tls_pair();
        let err = server_endpoint("127.0.0.1:0".parse().expect("address"), server, &[7; 16])
            .expect_err("16 bytes is too short");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }

    /// A server config with a fresh self-signed certificate, and a client config that
    /// trusts it.
    fn tls_pair() -> (quinn::ServerConfig, quinn::ClientConfig) {
        let cert =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let mut server = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .expect("server TLS");
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("root");
        let mut client = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![ALPN.to_vec()];
        let server = quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(server).expect("QUIC server"),
        ));
        let client = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(client).expect("QUIC client"),
        ));
        (server, client)
    }

    /// Runs a server endpoint with `key` on its own runtime, accepts one connection from
    /// `client`, then drops the runtime: the server vanishes without a word, as a
    /// killed process does. Returns the client's side of the connection and the port.
    async fn connect_then_vanish(
        client: &quinn::Endpoint,
        server: quinn::ServerConfig,
        key: &[u8],
    ) -> (quinn::Connection, SocketAddr) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let endpoint = {
            let _inside = runtime.enter();
            server_endpoint("127.0.0.1:0".parse().expect("address"), server, key)
                .expect("server endpoint")
        };
        let addr = endpoint.local_addr().expect("bound");
        let accepted = runtime.spawn(async move {
            let incoming = endpoint.accept().await.expect("an incoming connection");
            let conn = incoming.await.expect("handshake");
            // Held until the runtime goes: nothing closes the connection politely.
            std::future::pending::<()>().await;
            drop((conn, endpoint));
        });
        let conn = client
            .connect(addr, "localhost")
            .expect("connect")
            .await
            .expect("handshake");
        // Let the server finish its side of the handshake before it vanishes.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        drop(accepted);
        // Dropping the runtime drops its tasks unpolled: no close frame goes out, and the
        // socket is released once the workers have stopped.
        tokio::task::spawn_blocking(move || {
            runtime.shutdown_timeout(std::time::Duration::from_secs(5))
        })
        .await
        .expect("the server runtime stops");
        (conn, addr)
    }

    /// What ends the client's old connection once a new server with `second_key` runs
    /// on the address the first one (with `first_key`) had.
    async fn after_restart(first_key: &[u8], second_key: &[u8]) -> quinn::ConnectionError {
        let (server, client_config) = tls_pair();
        let mut client = endpoint("127.0.0.1:0".parse().expect("address"), None).expect("client");
        client.set_default_client_config(client_config);
        let (conn, addr) = connect_then_vanish(&client, server.clone(), first_key).await;
        let _restarted = server_endpoint(addr, server, second_key).expect("rebind the port");
        // Any packet on the old connection draws the new server's stateless reset.
        if let Ok((mut send, _recv)) = conn.open_bi().await {
            let _ = send.write_all(&[0; 64]).await;
        }
        conn.closed().await
    }

    #[tokio::test]
    async fn a_server_restarted_with_the_same_key_resets_the_old_connection() {
        let key = [42u8; 64];
        let ended = after_restart(&key, &key).await;
        assert!(
            matches!(ended, quinn::ConnectionError::Reset),
            "expected a stateless reset, got {ended:?}"
        );
    }
}
