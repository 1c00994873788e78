//! In a cluster: keeping this broker's plugins in line with the metadata.
//!
//! A plugin version is uploaded to one broker, which stores its component and
//! registers the version; the record reaches every broker. After each reconcile this
//! task installs the versions the metadata lists and this broker does not run yet,
//! fetching a component it does not store by content hash from a peer
//! (`quic/blobs.rs`), and forgets versions the metadata no longer lists. A newer
//! version installed this way becomes current for every topic bound to the name: hot
//! reload reaches every broker, whichever one the upload went to. A component no peer
//! can give yet is asked for again every second.

use std::sync::Arc;
use std::time::Duration;

use quiver_metadata::{MetadataImage, PluginVersion};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::quic::blobs::BlobLink;

/// How soon a missing component is asked for again.
const RETRY: Duration = Duration::from_secs(1);

/// Follows the metadata's plugin versions until `shutdown`.
pub(crate) async fn follow(broker: Arc<Broker>, link: BlobLink, shutdown: CancellationToken) {
    broker
        .after_each_reconcile(&shutdown, RETRY, || sync(&broker, &link))
        .await;
}

/// One pass; returns whether some version still lacks its component.
async fn sync(broker: &Arc<Broker>, link: &BlobLink) -> bool {
    forget_removed(broker);
    let image = broker.metadata.image();
    let mut missing = false;
    for plugin in image.plugins() {
        for version in plugin.versions.values() {
            let hash = &version.content_hash;
            if !broker.plugins.registry().has_blob(hash) {
                match fetch(broker, link, &image, hash).await {
                    Ok(()) => {}
                    Err(reason) => {
                        tracing::warn!(plugin = %plugin.name, version = version.version, reason = %reason, "plugin component not available yet");
                        missing = true;
                        continue;
                    }
                }
            }
            install(broker, &plugin.name, version).await;
        }
    }
    missing
}

/// Uninstalls what this broker runs and the metadata no longer lists. The image is
/// read after the registry: a version installed by then was registered by then.
fn forget_removed(broker: &Broker) {
    let installed = broker.plugins.registry().list();
    let image = broker.metadata.image();
    for info in installed {
        let listed = image.plugin(&info.name);
        let gone: Vec<u32> = info
            .versions
            .iter()
            .map(|v| v.version)
            .filter(|v| listed.is_none_or(|p| !p.versions.contains_key(v)))
            .collect();
        if !gone.is_empty()
            && let Err(e) = broker.plugins.uninstall(&info.name, &gone)
        {
            tracing::warn!(plugin = %info.name, versions = ?gone, error = %e, "cannot forget removed plugin versions");
        }
    }
}

/// Installs one version (compiling it when topics follow the name), which does nothing
/// when it is installed already.
async fn install(broker: &Arc<Broker>, name: &str, version: &PluginVersion) {
    let (b, n, v) = (Arc::clone(broker), name.to_string(), version.clone());
    let installed = tokio::task::spawn_blocking(move || b.plugins.install(&n, &v)).await;
    match installed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(plugin = %name, version = version.version, error = %e, "cannot load a registered plugin version")
        }
        Err(e) => tracing::error!(plugin = %name, error = %e, "installing a plugin version failed"),
    }
}

/// Fetches component `hash` from the first peer that stores it, and stores it here.
async fn fetch(
    broker: &Arc<Broker>,
    link: &BlobLink,
    image: &MetadataImage,
    hash: &str,
) -> Result<(), String> {
    let max = broker.plugins.config().max_component_bytes;
    let mut tried = Vec::new();
    let peers = image
        .brokers()
        .filter(|b| b.broker_id != broker.config.node_id && !b.fenced);
    for peer in peers {
        let Some(address) = &peer.peer_listener else {
            continue;
        };
        match link.fetch(address, hash, max).await {
            Ok(Some(bytes)) => {
                let (b, h) = (Arc::clone(broker), hash.to_string());
                let stored = tokio::task::spawn_blocking(move || {
                    b.plugins.registry().store_blob(&h, &bytes)
                })
                .await
                .map_err(|e| e.to_string())?;
                stored.map_err(|e| format!("storing it failed: {e}"))?;
                tracing::info!(component = %hash, from = peer.broker_id, "plugin component fetched from a peer");
                return Ok(());
            }
            Ok(None) => tried.push(format!("broker {} does not store it", peer.broker_id)),
            Err(e) => tried.push(format!("broker {}: {e}", peer.broker_id)),
        }
    }
    if tried.is_empty() {
        return Err(format!("no peer to fetch component {hash} from"));
    }
    Err(format!("component {hash}: {}", tried.join("; ")))
}
