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
//! With `[cluster] voters` it is one broker of a cluster whose metadata is kept by a
//! Raft quorum of brokers ([`cluster`]); partitions live on the brokers they are placed
//! on. Replication of partition data between brokers comes later.
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
pub mod cluster;
mod compaction_plugin;
pub mod config;
mod error;
mod groups;
mod maintenance;
mod metadata;
pub mod metrics;
mod partition;
mod plugins;
mod quic;
mod reconcile;
mod replica;
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
    metrics_addr: Option<SocketAddr>,
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

    /// The address of the metrics endpoint (`/metrics`, `/health`, `/ready`), when
    /// `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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
    // Bound before anything is opened, so that a taken port fails the start cheaply.
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let listener = metrics::http::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            tracing::info!(addr = %bound, "metrics endpoint listening (/metrics, /health, /ready)");
            Some((listener, bound))
        }
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|(_, addr)| *addr);
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
    let cluster = start_quorum(&config, &identity, reset_key.as_bytes(), &shutdown).await?;
    let store = cluster.as_ref().map(|c| Arc::clone(&c.store));
    // Committed offsets are replayed before the listener serves a single request.
    let service =
        BrokerService::open_with(config.clone(), advertised, shutdown.clone(), store).await?;
    tracing::info!(addr = %local_addr, data = %config.data_dir.display(), "broker listening");

    let tracker = TaskTracker::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        tracker.spawn(maintenance::run(Arc::clone(&service.broker), token.clone()));
        if let Some((listener, _)) = metrics {
            tracker.spawn(metrics::http::serve(
                listener,
                service.clone(),
                token.clone(),
            ));
        }
        tracker.spawn(
            Arc::clone(&service.groups).run_timer(Arc::clone(&service.broker), token.clone()),
        );
        if let Some(quorum) = service.broker.metadata.quorum() {
            tracker.spawn(follow_metadata(
                Arc::clone(&service.broker),
                quorum.applied(),
                token.clone(),
            ));
        }
        if let Some(cluster) = cluster {
            tracker.spawn(
                Arc::clone(&service.groups)
                    .run_ownership(Arc::clone(&service.broker), token.clone()),
            );
            // Followers may fetch from this broker from now on.
            let _ = cluster.broker.set(Arc::clone(&service.broker));
            let _ = service.broker.forward.set(cluster.forward);
            tracker.spawn(replica::follower::run(
                Arc::clone(&service.broker),
                cluster.link,
                token.clone(),
            ));
            tracker.spawn(cluster::controller::run(
                Arc::clone(&service.broker),
                token.clone(),
            ));
            tracker.spawn(cluster::plugins::follow(
                Arc::clone(&service.broker),
                cluster.blobs,
                token.clone(),
            ));
        }
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
        let quorum = service.broker.metadata.quorum().cloned();
        let _ = tokio::task::spawn_blocking(move || service.close()).await;
        if let Some(quorum) = quorum {
            quorum.shutdown().await;
        }
        endpoint.wait_idle().await;
        tracing::info!("broker stopped");
    });
    Ok(RunningBroker {
        local_addr,
        metrics_addr,
        cert_pem: identity.cert_pem,
        cert_path: identity.cert_path,
        shutdown,
        task,
    })
}

/// What a cluster member runs beside its client listener.
struct ClusterParts {
    /// The metadata store over the quorum voter.
    store: Arc<metadata::MetadataStore>,
    /// How this broker's followers reach their leaders.
    link: Arc<dyn replica::follower::ReplicaLink>,
    /// How this broker fetches plugin components it lacks from its peers.
    blobs: quic::blobs::BlobLink,
    /// How this broker hands routed batches to the partitions' leaders.
    forward: Arc<quic::forward::ForwardLink>,
    /// Set once the broker is open, for the fetches of other brokers' followers.
    broker: quic::replica::BrokerSlot,
}

/// In a cluster: checks `[cluster]`, binds the inter-broker listener, starts this
/// broker's metadata-quorum voter and serves its peers. `None` on a single node.
async fn start_quorum(
    config: &BrokerConfig,
    identity: &tls::Identity,
    reset_key: &[u8],
    shutdown: &CancellationToken,
) -> Result<Option<ClusterParts>, ServerError> {
    let voters = config
        .cluster
        .check(config.node_id)
        .map_err(ServerError::Config)?;
    let Some(own) = config.cluster.peer_address(config.node_id) else {
        return Ok(None);
    };
    if matches!(config.tls, TlsConfig::SelfSigned) {
        return Err(ServerError::Config(
            "a broker of a cluster needs [tls] cert and key signed by cluster.ca; a self-signed certificate cannot be verified by the other brokers".into(),
        ));
    }
    let addr = config.cluster.quorum_listen.unwrap_or(own);
    let ca =
        config.cluster.ca.clone().ok_or_else(|| {
            ServerError::Config("cluster.ca is required with cluster.voters".into())
        })?;
    let (endpoint, peers) = quic::quorum::endpoint(addr, identity, &ca, reset_key)?;
    let transport = Arc::new(quic::quorum::QuicTransport::new(endpoint.clone()));
    let dir = metadata::quorum_dir(&config.data_dir);
    let lock = metadata::lock_dir(&dir)?;
    let options = config.cluster.quorum_options(config.node_id, &voters, own);
    let role = if voters.contains_key(&config.node_id) {
        "voter"
    } else {
        "observer"
    };
    let quorum = quiver_quorum::Quorum::start(&dir, options, transport)
        .await
        .map_err(|e| ServerError::Open(BrokerError::Quorum(e)))?;
    let broker = quic::replica::BrokerSlot::default();
    tokio::spawn(quic::quorum::serve(
        endpoint.clone(),
        quorum.clone(),
        Arc::clone(&broker),
        shutdown.clone(),
    ));
    tracing::info!(quorum = %addr, voters = voters.len(), role, "metadata quorum member started");
    Ok(Some(ClusterParts {
        store: Arc::new(metadata::MetadataStore::replicated(quorum, lock)),
        link: Arc::new(quic::replica::QuicReplicaLink::new(
            endpoint.clone(),
            peers.replica,
        )),
        blobs: quic::blobs::BlobLink::new(endpoint.clone(), peers.blob),
        forward: Arc::new(quic::forward::ForwardLink::new(endpoint, peers.forward)),
        broker,
    }))
}

/// In a cluster: brings the broker's topics in line with every metadata change, whoever
/// made it.
async fn follow_metadata(
    broker: Arc<broker::Broker>,
    mut applied: tokio::sync::watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = applied.changed() => if changed.is_err() { return },
        }
        let _guard = broker.admin.lock().await;
        if let Err(e) = broker.reconcile_now().await {
            tracing::error!(error = %e, "could not apply a metadata change to the open topics");
        }
    }
}
