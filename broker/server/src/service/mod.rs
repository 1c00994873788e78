//! The broker service: every operation the broker offers, as methods that take and
//! return the broker's own types ([`types`]) and fail with [`BrokerError`].
//!
//! This is the middle of the house. A door (today the QUIC listener in `quic/`; a Kafka
//! listener could be another) reads a request in its protocol, converts it, calls one
//! method here, and converts the answer back. Nothing in this module knows a frame, a
//! stream, a wire struct or an error code, so two doors share one behaviour and tests
//! drive it without sockets ([`BrokerService::open`] on a temporary directory).
//!
//! What it is not: a place for I/O details. Partition logs are read and written on the
//! blocking pool through [`Partition`](crate::partition::Partition); plugins are called on
//! the blocking pool, once per step of a request (one hop that reads and filters, one
//! that routes and appends), never once per record.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use quiver_metadata::{Operation, ResourceKind};

use crate::auth::{self, Access, Caller};
use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::groups::GroupService;

mod access;
mod cluster;
mod fetch;
mod filter;
mod groups;
mod offsets;
mod plugin;
mod produce;
mod reopen;
mod route;
mod subscribe;
mod topics;
pub mod types;

#[cfg(test)]
mod tests;

pub use access::IssuedToken;
pub use plugin::{
    PluginAdded, PluginDecision, PluginLimitSettings, PluginLogPage, PluginSummary, PluginTest,
    PluginTrial,
};
pub use subscribe::Subscription;

/// The broker's operations over its topics, partitions, groups and plugins.
#[derive(Debug, Clone)]
pub struct BrokerService {
    pub(crate) broker: Arc<Broker>,
    /// Consumer groups and committed offsets.
    pub(crate) groups: Arc<GroupService>,
    /// Cancelled at shutdown: long polls and subscriptions end instead of waiting on.
    pub(crate) shutdown: CancellationToken,
    /// Requests, connections and streams as doors count them (see [`crate::metrics`]).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

impl BrokerService {
    /// Opens the data directory (topics, partition logs, plugins) and replays committed
    /// offsets, without listening anywhere. `advertised` is the address clients are told
    /// to dial. The open itself runs on the blocking pool: recovery reads every segment.
    pub async fn open(
        config: BrokerConfig,
        advertised: String,
        shutdown: CancellationToken,
    ) -> Result<BrokerService, BrokerError> {
        Self::open_with(config, advertised, shutdown, None).await
    }

    /// [`BrokerService::open`] over a given metadata store (a cluster member's quorum);
    /// `None` opens the local metadata log.
    pub(crate) async fn open_with(
        config: BrokerConfig,
        advertised: String,
        shutdown: CancellationToken,
        metadata: Option<Arc<crate::metadata::MetadataStore>>,
    ) -> Result<BrokerService, BrokerError> {
        let groups_config = config.groups.clone();
        let broker = tokio::task::spawn_blocking(move || match metadata {
            Some(metadata) => Broker::open_with(config, advertised, metadata),
            None => Broker::open(config, advertised),
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("opening the broker failed: {e}")))??;
        let broker = Arc::new(broker);
        let groups = Arc::new(GroupService::open(&broker, &groups_config).await?);
        Ok(BrokerService {
            broker,
            groups,
            shutdown,
            metrics: Arc::default(),
        })
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.broker.config
    }

    /// The Prometheus text of every metric: what the metrics endpoint serves.
    pub fn render_metrics(&self) -> String {
        let registry = crate::metrics::registry(
            &self.metrics,
            crate::metrics::StateCollector::new(self.clone()),
        );
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        text
    }

    /// Why the broker does not serve requests right now, or `None` when it does: for
    /// the `/ready` check of load balancers and orchestrators.
    pub fn not_ready(&self) -> Option<String> {
        if self.shutdown.is_cancelled() {
            return Some("shutting down".into());
        }
        if !self.metrics.serving() {
            return Some("starting: the listener does not accept connections yet".into());
        }
        if let Some(quorum) = self.broker.metadata.quorum()
            && quorum.status().leader.is_none()
        {
            return Some(
                "no metadata quorum leader: fewer than a majority of voters reachable".into(),
            );
        }
        None
    }

    /// Flushes and closes every partition, for a clean shutdown (blocking: call it from
    /// the blocking pool).
    pub fn close(&self) {
        self.broker.close();
    }
}

impl BrokerService {
    /// `Ok` when `caller` may do `operation` on the resource, else `Unauthorized`
    /// naming all three.
    pub(crate) fn check(
        &self,
        caller: &Caller,
        operation: Operation,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), BrokerError> {
        // With authorization off (the usual single-node case) the produce and fetch path
        // need not even look at the metadata image.
        if !self.broker.config.auth.enabled {
            return Ok(());
        }
        auth::authorize(
            &self.broker.config.auth,
            &self.broker.metadata.image(),
            caller,
            Access {
                operation,
                kind,
                name,
            },
        )
    }

    /// Whether `caller` may do `operation` on the resource: for listings, which leave
    /// out what the caller may not see rather than fail.
    pub(crate) fn may(
        &self,
        caller: &Caller,
        operation: Operation,
        kind: ResourceKind,
        name: &str,
    ) -> bool {
        self.check(caller, operation, kind, name).is_ok()
    }
}

/// Runs blocking work (storage, plugins) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BrokerError::Internal(format!("blocking task failed: {e}")))?
}

/// The broker's one wall clock (append times, retention, group deadlines): milliseconds
/// since the Unix epoch, shared with the SDK and the plugin host.
pub(crate) use quiver_proto::time::now_ms;
