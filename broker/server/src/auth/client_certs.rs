//! Mutual TLS: which client certificates the broker accepts.
//!
//! With `[auth] client_ca` set, the TLS handshake asks every client for a certificate and
//! accepts one that chains to that CA; a client without one still connects (it may then
//! authenticate with a token, or stay anonymous, which access rules treat as
//! `ANONYMOUS`). A certificate that does not chain to the CA fails the handshake. Without
//! `client_ca` the broker asks for no certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoClientAuth, WebPkiClientVerifier};

/// Why a CA file (the client CA, or a cluster's CA) could not be used; `what` names
/// which.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the {what} {path} holds no certificate; it must be a PEM file with the CA certificate"
    )]
    Empty { what: &'static str, path: String },
    #[error("the {what} {path} is unusable: {reason}")]
    Invalid {
        what: &'static str,
        path: String,
        reason: String,
    },
}

/// The certificates of the PEM file `ca` as trust roots; `what` names the file in errors.
pub fn read_roots(ca: &Path, what: &'static str) -> Result<RootCertStore, CaError> {
    let path = ca.display().to_string();
    let pem = std::fs::read(ca).map_err(|source| CaError::Read {
        what,
        path: path.clone(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let invalid = |reason: String| CaError::Invalid {
            what,
            path: path.clone(),
            reason,
        };
        let cert = cert.map_err(|e| invalid(e.to_string()))?;
        roots.add(cert).map_err(|e| invalid(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(CaError::Empty { what, path });
    }
    Ok(roots)
}

/// The verifier the TLS server config uses: certificates chaining to `ca` when given,
/// none asked for otherwise.
pub fn verifier(
    ca: Option<&Path>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, CaError> {
    let Some(ca) = ca else {
        return Ok(Arc::new(NoClientAuth));
    };
    let roots = read_roots(ca, "client CA")?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| CaError::Invalid {
            what: "client CA",
            path: ca.display().to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn no_ca_asks_for_no_certificate() {
        let v = verifier(None, provider()).expect("verifier");
        assert!(!v.offer_client_auth());
    }

    #[test]
    fn a_ca_file_asks_for_certificates_but_does_not_require_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).expect("ca");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).expect("write");
        let v = verifier(Some(&path), provider()).expect("verifier");
        assert!(v.offer_client_auth());
        assert!(!v.client_auth_mandatory());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        assert!(matches!(
            verifier(Some(&missing), provider()),
            Err(CaError::Read { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        assert!(matches!(
            verifier(Some(&empty), provider()),
            Err(CaError::Empty { .. })
        ));
    }
}
