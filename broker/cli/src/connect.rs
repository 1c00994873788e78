//! How client commands find the broker, the certificate to trust, and who they are:
//! a bearer token (`--token`) or a client certificate and key (`--cert`, `--key`) for a
//! broker that authenticates clients; neither for `quiver dev`, which checks nobody.

use std::path::PathBuf;

use anyhow::Context;
use quiver_sdk::{Client, ClientOptions};

/// Flags every client command shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// Broker URL, such as quic://127.0.0.1:7420, or a comma-separated bootstrap list of
    /// them (quic://b1:7420,quic://b2:7420): the first that answers is used.
    #[arg(long, global = true, env = "QUIVER_BROKER")]
    pub broker: Option<String>,
    /// PEM file of the CA (or self-signed certificate) to trust.
    #[arg(long, global = true, env = "QUIVER_CA")]
    pub ca: Option<PathBuf>,
    /// Bearer token to authenticate with (qvr_<id>_<secret>, from `quiver token issue`).
    /// Prefer the environment variable: a command line is visible to other users.
    #[arg(long, global = true, env = "QUIVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of a client certificate to authenticate with (mutual TLS); needs --key.
    #[arg(long, global = true, env = "QUIVER_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM file of the private key of --cert.
    #[arg(long, global = true, env = "QUIVER_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// The `quiver dev` broker to use, by its profile name (printed by `quiver dev`);
    /// without it, the only dev broker running on this machine.
    #[arg(long, global = true, env = "QUIVER_PROFILE")]
    pub profile: Option<String>,
}

impl ConnectArgs {
    /// The broker URL and CA file this command will use.
    pub fn resolve(&self) -> anyhow::Result<(String, PathBuf)> {
        // Given both, no profile is needed, nor read.
        if let (Some(broker), Some(ca)) = (&self.broker, &self.ca)
            && self.profile.is_none()
        {
            return Ok((broker.clone(), ca.clone()));
        }
        let profile = match quiver_cli::profile::choose(self.profile.as_deref()) {
            Ok(p) => p,
            // An explicit broker does not depend on dev profiles being in order.
            Err(_) if self.profile.is_none() && self.broker.is_some() => None,
            Err(e) => return Err(e.into()),
        };
        let broker = self
            .broker
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.broker.clone()))
            .unwrap_or_else(|| format!("quic://127.0.0.1:{}", quiver_sdk::DEFAULT_PORT));
        let ca = match (&self.ca, profile) {
            (Some(ca), _) => ca.clone(),
            (None, Some(p)) => p.ca,
            (None, None) => {
                let local = PathBuf::from("quiver-data/tls/cert.pem");
                if !local.exists() {
                    anyhow::bail!(
                        "no certificate to trust: pass --ca FILE (or QUIVER_CA), or start `quiver dev` on this machine"
                    );
                }
                local
            }
        };
        Ok((broker, ca))
    }

    /// Client options trusting `ca` and carrying the credentials given, if any.
    pub fn options(&self, ca: &std::path::Path) -> anyhow::Result<ClientOptions> {
        let mut options = ClientOptions::new().ca_pem_file(ca);
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let read = |path: &PathBuf, what: &str| {
                std::fs::read(path)
                    .with_context(|| format!("reading the client {what} {}", path.display()))
            };
            options = options.identity_pem(read(cert, "certificate")?, read(key, "key")?);
        }
        if let Some(token) = self.token.as_deref().filter(|t| !t.trim().is_empty()) {
            options = options.token(token);
        }
        Ok(options)
    }

    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (broker, ca) = self.resolve()?;
        Client::connect(&broker, self.options(&ca)?)
            .await
            .with_context(|| format!("connecting to {broker}"))
    }
}
