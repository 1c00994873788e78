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

pub use quiver_quic::{
    ALPN, CONTROL_PRIORITY, UDP_BUFFER_BYTES, crypto_provider, endpoint, udp_socket,
};

/// Receive window of one stream: a few large batches may be in flight on it.
pub const STREAM_RECEIVE_WINDOW: u32 = 16 * 1024 * 1024;
/// Receive window of the whole connection, shared by all its streams.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 64 * 1024 * 1024;
/// How much unacknowledged data the client may have in flight.
pub const SEND_WINDOW: u64 = 64 * 1024 * 1024;
/// Bidirectional streams the broker may open towards us (we open ours; this is the
/// limit we advertise, kept equal to what we expect the broker to grant).
pub const MAX_CONCURRENT_BIDI_STREAMS: u32 = 1024;
/// Shortest and longest `ClientOptions::liveness_timeout`.
pub const LIVENESS_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));

/// quinn transport settings shared by every client connection. `liveness` is the idle
/// timeout: a broker that sends nothing for that long (it acknowledges every ping, sent
/// every quarter of it) is taken for gone.
pub fn transport_config(liveness: Duration) -> TransportConfig {
    let liveness = liveness.clamp(LIVENESS_RANGE.0, LIVENESS_RANGE.1);
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
        .keep_alive_interval(Some(liveness / 4))
        .max_idle_timeout(IdleTimeout::try_from(liveness).ok());
    quiver_quic::allow_jumbo_datagrams(&mut config);
    config
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
    let liveness = crate::ClientOptions::default().liveness_timeout;
    client_config_with_identity(roots, None, liveness)
}

/// [`client_config`], presenting `identity` (certificate chain and key) to brokers that
/// ask for a client certificate.
pub fn client_config_with_identity(
    roots: &[CertificateDer<'static>],
    identity: Option<(
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
    liveness: Duration,
) -> Result<quinn::ClientConfig, Error> {
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store
            .add(cert.clone())
            .map_err(|e| Error::Tls(format!("the CA certificate is not usable: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(store);
    let mut tls = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::Tls(format!("the client certificate is not usable: {e}")))?,
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| Error::Tls(format!("TLS config unusable for QUIC: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config(liveness)));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_pem_errors_are_typed() {
        assert!(matches!(parse_ca_pem(b"not pem"), Err(Error::Tls(_))));
        assert!(client_config(&[]).is_ok());
    }
}
