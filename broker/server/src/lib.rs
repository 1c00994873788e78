//! The Quiver broker, as a library.
//!
//! It serves Quiver's wire protocol ([`quiver_proto`]) over QUIC with TLS 1.3 always on,
//! keeps partition logs on local disk through [`quiver_storage`], coordinates consumer
//! groups through [`quiver_group`] (committed offsets in the internal compacted topic
//! `__consumer_offsets`), runs Wasm plugins through `quiver_plugin_host` (partitioners
//! on routed produces, filters on fetches, compaction policies in the cleaner; stored in
//! `<data_dir>/plugins`), and runs background upkeep (retention, rolling, flushing,
//! group deadlines). The QUIC stateless-reset key is kept in `<data_dir>/tls` (see
//! [`reset_key`]), so that clients notice a restart at their first packet rather than
//! after their idle timeout. The `quiver` binary is a thin shell around
//! [`run`] and [`start`]; tests start brokers in-process with [`start`] on port 0.
//!
//! What it is not (yet): a cluster member; replication and Raft metadata come later.
//!
//! ```no_run
//! # async fn demo() -> Result<(), quiver_server::ServerError> {
//! let mut config = quiver_server::BrokerConfig::dev("/tmp/quiver-data");
//! config.listen = "127.0.0.1:0".parse().expect("address");
//! let broker = quiver_server::start(config).await?;
//! println!("listening on {}, trust {}", broker.local_addr(), broker.cert_path().display());
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod auth;
mod broker;
mod compaction_plugin;
pub mod config;
mod error;
mod groups;
mod maintenance;
mod metadata;
mod partition;
mod plugins;
mod quic;
pub mod reset_key;
pub mod service;
pub mod tls;
pub mod topic_config;
pub mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{BrokerConfig, GroupsConfig, Limits, PluginsConfig, TlsConfig};
pub use error::BrokerError;
pub use service::BrokerService;

/// Why the broker could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the data directory: {0}")]
    Open(#[from] BrokerError),
    #[error("the broker task failed: {0}")]
    Task(String),
    #[error("invalid broker config: {0}")]
    Config(String),
}

/// A broker running in this process.
#[derive(Debug)]
pub struct RunningBroker {
    local_addr: SocketAddr,
    cert_pem: String,
    cert_path: PathBuf,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningBroker {
    /// The address the QUIC listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The broker's certificate in PEM; with a self-signed certificate, what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Where the certificate file lives.
    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert_path
    }

    /// A token that stops the broker when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the broker stops (after its shutdown token is cancelled).
    pub async fn wait(self) -> Result<(), ServerError> {
        self.task
            .await
            .map_err(|e| ServerError::Task(e.to_string()))
    }

    /// Stops the broker: refuses new work, drains in-flight requests up to the grace
    /// period, flushes every partition, and returns when it is done.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Opens the data directory, binds the listener and starts serving. Returns once the
/// broker accepts connections.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, ServerError> {
    start_with(config, CancellationToken::new()).await
}

/// Runs a broker until `shutdown` is cancelled.
pub async fn run(config: BrokerConfig, shutdown: CancellationToken) -> Result<(), ServerError> {
    start_with(config, shutdown).await?.wait().await
}

async fn start_with(
    mut config: BrokerConfig,
    shutdown: CancellationToken,
) -> Result<RunningBroker, ServerError> {
    // Everything below (plugin compile cache included) wants an absolute data directory;
    // a relative one in a config file means relative to where the broker was started.
    config.data_dir = std::path::absolute(&config.data_dir)
        .map_err(|e| ServerError::Config(format!("data_dir {}: {e}", config.data_dir.display())))?;
    // rustls needs a process-wide provider when more than one is compiled in; ours is
    // passed explicitly, so a failure here (already installed) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    config
        .validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let limits = &config.limits;
    if limits.max_frame_bytes > limits.max_inflight_bytes {
        return Err(ServerError::Config(format!(
            "limits.max_frame_bytes ({}) exceeds limits.max_inflight_bytes ({}): such a frame could never be read",
            limits.max_frame_bytes, limits.max_inflight_bytes
        )));
    }
    if config.plugins.max_component_bytes.saturating_add(64 * 1024) > limits.max_inflight_bytes {
        return Err(ServerError::Config(format!(
            "plugins.max_component_bytes ({}) plus 64 KiB exceeds limits.max_inflight_bytes ({}): such an upload could never be read",
            config.plugins.max_component_bytes, limits.max_inflight_bytes
        )));
    }
    config
        .auth
        .check_exposure(config.listen)
        .map_err(ServerError::Config)?;
    let identity = tls::load_identity(&config.tls, &config.data_dir)?;
    let transport = transport::transport_config(config.limits.max_streams_per_connection);
    let server_config = tls::server_config(&identity, transport, config.auth.client_ca.as_deref())?;
    // The same key at every start: clients of the previous run get a reset they accept at
    // their first packet instead of waiting out their idle timeout.
    let reset_key = reset_key::load_or_create(&config.data_dir)?;
    let endpoint = quiver_quic::server_endpoint(config.listen, server_config, reset_key.as_bytes())
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = endpoint.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let advertised = config
        .advertised
        .clone()
        .unwrap_or_else(|| local_addr.to_string());
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    // Committed offsets are replayed before the listener serves a single request.
    let service = BrokerService::open(config.clone(), advertised, shutdown.clone()).await?;
    tracing::info!(addr = %local_addr, data = %config.data_dir.display(), "broker listening");

    let tracker = TaskTracker::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        tracker.spawn(maintenance::run(Arc::clone(&service.broker), token.clone()));
        tracker.spawn(
            Arc::clone(&service.groups).run_timer(Arc::clone(&service.broker), token.clone()),
        );
        quic::listener::accept_loop(
            endpoint.clone(),
            service.clone(),
            token.clone(),
            tracker.clone(),
        )
        .await;
        // Shutdown: stop accepting, let in-flight requests finish within the grace period,
        // then close connections and flush.
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("in-flight requests did not finish within the grace period; closing");
        }
        endpoint.close(0u32.into(), b"broker shutting down");
        let _ = tokio::task::spawn_blocking(move || service.close()).await;
        endpoint.wait_idle().await;
        tracing::info!("broker stopped");
    });
    Ok(RunningBroker {
        local_addr,
        cert_pem: identity.cert_pem,
        cert_path: identity.cert_path,
        shutdown,
        task,
    })
}
