//! QUIC and TLS settings for talking to a broker: every tuning knob lives here.
//!
//! The defaults aim at throughput with ~1 MiB batches on loopback and on lossy links:
//! quinn's stock windows (1.25 MB per stream) would cap one stream well below what one
//! core can encrypt, so the windows are widened to tens of MiB, and enough concurrent
//! streams are allowed for many in-flight produce and fetch requests.

use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::CertificateDer;

use crate::Error;

/// The ALPN protocol id every Quiver client and broker speaks.
pub const ALPN: &[u8] = b"quiver/1";

/// Receive window of one stream: a few large batches may be in flight on it.
pub const STREAM_RECEIVE_WINDOW: u32 = 16 * 1024 * 1024;
/// Receive window of the whole connection, shared by all its streams.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 64 * 1024 * 1024;
/// How much unacknowledged data the client may have in flight.
pub const SEND_WINDOW: u64 = 64 * 1024 * 1024;
/// Bidirectional streams the broker may open towards us (we open ours; this is the
/// limit we advertise, kept equal to what we expect the broker to grant).
pub const MAX_CONCURRENT_BIDI_STREAMS: u32 = 1024;
/// Keep-alive interval: well under the idle timeout, so an idle client stays connected.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Idle timeout: how long a silent peer is tolerated before the connection is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Stream priority of requests that carry no payload (metadata, fetch, heartbeats...):
/// above produce requests, so that they do not wait behind megabytes of batches.
pub const CONTROL_PRIORITY: i32 = 1;

/// quinn transport settings shared by every client connection.
pub fn transport_config() -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .send_window(SEND_WINDOW)
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_CONCURRENT_BIDI_STREAMS))
        // Streams are sent in the order they were written, not interleaved: of the
        // produce requests in flight the oldest arrives whole first, so the broker
        // appends it while the next ones are still on the wire (interleaved, they would
        // all arrive at once, then the link would idle while they are appended).
        // Requests without a payload are sent ahead of them, see `CONTROL_PRIORITY`.
        .send_fairness(false)
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    config
}

/// The rustls crypto provider with TLS 1.3 suites ordered AES-128-GCM first: it is
/// measurably faster than rustls's default first choice (AES-256-GCM) on this hardware
/// at a security margin that suffices.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite, default_provider};
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..default_provider()
    })
}

/// Parses the CA certificates a client trusts from PEM text.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("the CA PEM does not parse: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(
            "the CA PEM holds no CERTIFICATE block; pass the broker's cert.pem".into(),
        ));
    }
    Ok(certs)
}

/// Builds the quinn client config: TLS 1.3 only, ALPN `quiver/1`, trusting `roots`
/// (or the CA list in `roots` only; no system roots are consulted).
pub fn client_config(roots: &[CertificateDer<'static>]) -> Result<quinn::ClientConfig, Error> {
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store
            .add(cert.clone())
            .map_err(|e| Error::Tls(format!("the CA certificate is not usable: {e}")))?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| Error::Tls(format!("TLS config unusable for QUIC: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// Bytes of kernel buffer asked for on each QUIC UDP socket. Linux's default (about
/// 208 KiB) overflows at a few hundred MB/s and every dropped datagram makes congestion
/// control back off; measured here, a quarter of all datagrams were dropped. The kernel
/// caps the request at `net.core.rmem_max` / `wmem_max`; a smaller buffer still works.
pub const UDP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// A UDP socket bound to `addr` with enlarged send and receive buffers, for quinn.
pub fn udp_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
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

/// A quinn endpoint on [`udp_socket`], serving when `server` is given.
pub fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for quinn (run inside tokio)"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        udp_socket(addr)?,
        runtime,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_is_preferred() {
        let first = crypto_provider().cipher_suites[0].suite();
        assert_eq!(first, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }

    #[test]
    fn ca_pem_errors_are_typed() {
        assert!(matches!(parse_ca_pem(b"not pem"), Err(Error::Tls(_))));
        assert!(client_config(&[]).is_ok());
    }
}
