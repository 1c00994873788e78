//! [`ClientOptions`]: how a [`Client`](crate::Client) connects, times out and retries.

use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::Error;
use crate::transport::parse_ca_pem;

/// Where the CA certificate that signed the broker's certificate comes from.
///
/// Quiver's dev broker is self-signed: trust its `cert.pem` (printed by `quiver dev`).
/// The SDK never consults the system's roots, so a CA must always be given.
#[derive(Debug, Clone)]
pub enum TrustedCa {
    /// A PEM file holding one or more certificates.
    PemFile(PathBuf),
    /// PEM text held in memory.
    Pem(Vec<u8>),
}

impl TrustedCa {
    pub(crate) fn load(&self) -> Result<Vec<CertificateDer<'static>>, Error> {
        match self {
            TrustedCa::PemFile(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::Tls(format!("cannot read the CA file {}: {e}", path.display()))
                })?;
                parse_ca_pem(&pem)
            }
            TrustedCa::Pem(pem) => parse_ca_pem(pem),
        }
    }
}

/// A client certificate and its private key, for brokers that authenticate clients by
/// mutual TLS: the broker names the client by the certificate's common name (else its
/// first subject alternative name).
#[derive(Clone)]
pub struct ClientIdentity {
    /// PEM: the certificate, then any intermediates.
    pub cert_pem: Vec<u8>,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    // The key never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

impl ClientIdentity {
    pub(crate) fn load(
        &self,
    ) -> Result<
        (
            Vec<CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        Error,
    > {
        let chain = rustls_pemfile::certs(&mut self.cert_pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("the client certificate does not parse: {e}")))?;
        if chain.is_empty() {
            return Err(Error::Tls(
                "the client certificate PEM holds no certificate".into(),
            ));
        }
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_slice())
            .map_err(|e| Error::Tls(format!("the client key does not parse: {e}")))?
            .ok_or_else(|| Error::Tls("the client key PEM holds no private key".into()))?;
        Ok((chain, key))
    }
}

/// A bearer token, `qvr_<id>_<secret>`, for brokers that authenticate clients by token
/// (`quiver token issue` prints one). Its secret never reaches a log through `Debug`,
/// which shows the token's id only.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps the whole token text as issued.
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken(token.into().trim().to_string())
    }

    /// The whole token, secret included: what the client presents to the broker.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token's public id (the part between `qvr_` and the secret), when the text is
    /// shaped like a token.
    pub fn id(&self) -> Option<&str> {
        let (id, secret) = self.0.strip_prefix("qvr_")?.split_once('_')?;
        (!id.is_empty() && !secret.is_empty()).then_some(id)
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id() {
            Some(id) => write!(f, "BearerToken(qvr_{id}_…)"),
            None => f.write_str("BearerToken(…)"),
        }
    }
}

/// Options of a [`Client`](crate::Client). Build with [`ClientOptions::new`] and the
/// chained setters; every field is public for struct-update syntax too.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The CA that signed the broker's certificate. Required.
    pub ca: Option<TrustedCa>,
    /// A certificate to present to the broker (mutual TLS); none by default.
    pub identity: Option<ClientIdentity>,
    /// A bearer token to authenticate with: sent on every connection the client opens,
    /// before any other request. None by default.
    pub token: Option<BearerToken>,
    /// TLS server name to verify; defaults to the URL's host (a name or an IP address).
    pub server_name: Option<String>,
    /// Bound on the QUIC handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Bound on one request, from opening its stream to reading its response. Default
    /// 30 s. Long-poll fetches add their own `max_wait` to it.
    pub request_timeout: Duration,
    /// Largest response frame accepted; a larger one is refused before it is allocated.
    /// Default 64 MiB, above the consumer's default `max_bytes` per fetch.
    pub max_frame_size: usize,
    /// How many times an idempotent request is retried after a retriable error or a
    /// broken connection. Default 5.
    pub retries: u32,
    /// First retry delay; doubled after each attempt up to `retry_backoff_max`, and
    /// shortened by a random part of up to half so that clients cut off together do not
    /// retry together. It also spaces the handshakes of a reconnect. Default 50 ms.
    pub retry_backoff: Duration,
    /// Upper bound of the retry delay. Default 2 s.
    pub retry_backoff_max: Duration,
    /// How long cached topic metadata is trusted before it is fetched again. Default 5 min.
    pub metadata_max_age: Duration,
    /// A broker silent for this long is taken for gone: the connection is closed, the
    /// requests on it fail as retriable, and requests for the partitions it led wait
    /// for the cluster to name new leaders instead of dialling it again. The client
    /// pings every quarter of it, and a live broker answers each ping, so only a
    /// stopped, killed or cut-off broker stays silent (QUIC, on UDP, gets no word from
    /// a broker that died the way TCP gets a reset). Default 1 s, below a cluster's
    /// broker session, so a client has moved on by the time the cluster has; raise it
    /// on links that can drop every packet for longer. 100 ms to 10 min.
    pub liveness_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca: None,
            identity: None,
            token: None,
            server_name: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame_size: 64 * 1024 * 1024,
            retries: 5,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(2),
            metadata_max_age: Duration::from_secs(300),
            liveness_timeout: Duration::from_secs(1),
        }
    }
}

impl ClientOptions {
    /// Options with the defaults documented on each field and no CA yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificates in the PEM file at `path`.
    pub fn ca_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(TrustedCa::PemFile(path.into()));
        self
    }

    /// Presents this certificate and key (PEM) to the broker, which authenticates the
    /// client by it when it checks client certificates.
    pub fn identity_pem(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some(ClientIdentity {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// Authenticates with this bearer token (`qvr_<id>_<secret>`): the client presents
    /// it on every connection it opens, so every request runs as the token's principal.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(BearerToken::new(token));
        self
    }

    /// Trusts the CA certificates in `pem`.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(TrustedCa::Pem(pem.into()));
        self
    }

    /// Verifies the broker's certificate against `name` instead of the URL's host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Sets [`ClientOptions::liveness_timeout`].
    pub fn liveness_timeout(mut self, timeout: Duration) -> Self {
        self.liveness_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::request_timeout`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The delay before retry number `attempt` (0-based): exponential, capped.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.retry_backoff, self.retry_backoff_max, attempt)
    }
}

/// `base * 2^attempt`, capped at `max`.
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let o = ClientOptions::new();
        assert_eq!(o.backoff(0), Duration::from_millis(50));
        assert_eq!(o.backoff(1), Duration::from_millis(100));
        assert_eq!(o.backoff(3), Duration::from_millis(400));
        assert_eq!(o.backoff(40), Duration::from_secs(2));
    }

    #[test]
    fn debug_shows_a_token_by_its_id_and_never_its_secret() {
        let options = ClientOptions::new().token("qvr_AbC123xyz789_deadbeefcafe");
        let text = format!("{options:?}");
        assert!(text.contains("qvr_AbC123xyz789_"), "{text}");
        assert!(!text.contains("deadbeefcafe"), "{text}");
        let odd = format!("{:?}", BearerToken::new("not-a-token-secret"));
        assert!(!odd.contains("secret"), "{odd}");
        assert_eq!(
            options.token.as_ref().map(BearerToken::expose),
            Some("qvr_AbC123xyz789_deadbeefcafe")
        );
    }

    #[test]
    fn missing_ca_file_is_a_tls_error() {
        let ca = TrustedCa::PemFile("/nonexistent/ca.pem".into());
        assert!(matches!(ca.load(), Err(Error::Tls(m)) if m.contains("/nonexistent/ca.pem")));
    }
}
