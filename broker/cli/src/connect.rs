//! How client commands find the broker, the certificate to trust, and who they are:
//! a bearer token (`--token`) or a client certificate and key (`--cert`, `--key`) for a
//! broker that authenticates clients; neither for `quiver dev`, which checks nobody.

use std::path::PathBuf;

use anyhow::Context;
use quiver_sdk::{Client, ClientOptions};
use serde::{Deserialize, Serialize};

/// Flags every client command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Broker URL, such as quic://127.0.0.1:7420.
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
}

/// What `quiver dev` leaves for the CLI on the same machine.
#[derive(Debug, Serialize, Deserialize)]
pub struct DevProfile {
    pub broker: String,
    pub ca: PathBuf,
}

/// `$QUIVER_HOME/dev.json`, or `~/.quiver/dev.json`.
pub fn profile_path() -> Option<PathBuf> {
    let home = std::env::var_os("QUIVER_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".quiver")))?;
    Some(home.join("dev.json"))
}

pub fn read_profile() -> Option<DevProfile> {
    let text = std::fs::read(profile_path()?).ok()?;
    serde_json::from_slice(&text).ok()
}

pub fn write_profile(profile: &DevProfile) -> anyhow::Result<PathBuf> {
    let path = profile_path().context("neither QUIVER_HOME nor HOME is set")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(profile)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

impl ConnectArgs {
    /// The broker URL and CA file this command will use.
    pub fn resolve(&self) -> anyhow::Result<(String, PathBuf)> {
        let profile = read_profile();
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
