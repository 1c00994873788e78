//! TLS for the QUIC listener: loading a certificate, or generating the dev one.
//!
//! TLS 1.3 only (QUIC requires it), ALPN `quiver/1`, and AES-128-GCM preferred over
//! AES-256-GCM because it is measurably faster here at the same security margin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

pub use quiver_quic::{ALPN, crypto_provider};

/// Why the listener's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} at {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the dev certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    Empty { what: &'static str, path: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("certificate or key rejected by rustls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS config unusable for QUIC: {0}")]
    Quic(String),
    #[error(transparent)]
    Ca(#[from] crate::auth::client_certs::CaError),
    #[error(
        "cannot keep the QUIC stateless-reset key at {path}: {source}; the broker must be able to read and write its data directory"
    )]
    ResetKey {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A loaded certificate chain and key, plus the PEM text clients should trust in dev.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The certificate in PEM: with a self-signed certificate, the CA a client trusts.
    pub cert_pem: String,
    /// Where the certificate file lives.
    pub cert_path: PathBuf,
}

/// Loads or creates the broker's identity as the config says.
pub fn load_identity(config: &TlsConfig, data_dir: &Path) -> Result<Identity, TlsError> {
    match config {
        TlsConfig::Files { cert, key } => read_identity(cert, key),
        TlsConfig::SelfSigned => {
            let dir = data_dir.join("tls");
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            if !cert.exists() || !key.exists() {
                generate_self_signed(&dir, &cert, &key)?;
            }
            read_identity(&cert, &key)
        }
    }
}

fn generate_self_signed(dir: &Path, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated = rcgen::generate_simple_self_signed(names)?;
    let write = |path: &Path, text: String| {
        quiver_durable::create_dir_all_durably(dir)
            // Owner-only from creation on, and durable: a crash never leaves half a key.
            .and_then(|()| quiver_durable::write_atomic_private(path, text.as_bytes()))
            .map_err(|source| TlsError::Write {
                path: path.to_path_buf(),
                source,
            })
    };
    write(key, generated.key_pair.serialize_pem())?;
    write(cert, generated.cert.pem())?;
    Ok(())
}

fn read_identity(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_bytes = read("certificate", cert_path)?;
    let key_bytes = read("private key", key_path)?;
    let chain = rustls_pemfile::certs(&mut cert_bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            what: "certificate",
            path: cert_path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: cert_path.to_path_buf(),
        });
    }
    let key = rustls_pemfile::private_key(&mut key_bytes.as_slice())
        .map_err(|source| TlsError::Read {
            what: "private key",
            path: key_path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            what: "private key",
            path: key_path.to_path_buf(),
        })?;
    Ok(Identity {
        chain,
        key,
        cert_pem: String::from_utf8_lossy(&cert_bytes).into_owned(),
        cert_path: cert_path.to_path_buf(),
    })
}

/// The quinn server config for an identity: TLS 1.3, ALPN, and the transport tuning.
/// `client_ca` (`[auth] client_ca`) makes the handshake ask for client certificates
/// chaining to it (mutual TLS); without it none are asked for.
pub fn server_config(
    identity: &Identity,
    transport: quinn::TransportConfig,
    client_ca: Option<&Path>,
) -> Result<quinn::ServerConfig, TlsError> {
    let verifier = crate::auth::client_certs::verifier(client_ca, crypto_provider())?;
    let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_identity_is_written_owner_only_once_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().expect("tempdir");
        let first = load_identity(&TlsConfig::SelfSigned, data.path()).expect("generate");
        let tls = data.path().join("tls");
        for name in ["cert.pem", "key.pem"] {
            let mode = std::fs::metadata(tls.join(name))
                .expect("written")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
            assert!(!quiver_durable::temp_path(&tls.join(name)).exists());
        }
        let again = load_identity(&TlsConfig::SelfSigned, data.path()).expect("reload");
        assert_eq!(
            first.cert_pem, again.cert_pem,
            "the stored identity is reused"
        );
    }
}
