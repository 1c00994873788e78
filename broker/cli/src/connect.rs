//! How client commands find the broker and the certificate to trust.

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

    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (broker, ca) = self.resolve()?;
        Client::connect(&broker, ClientOptions::new().ca_pem_file(ca))
            .await
            .with_context(|| format!("connecting to {broker}"))
    }
}
