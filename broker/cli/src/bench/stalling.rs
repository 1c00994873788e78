//! A hostile client for `bench produce --with-stalling-client N`: one connection that
//! keeps N streams open, each declaring a 16 MiB produce frame, sending 16 bytes of it
//! and then nothing. A stream the broker ends (its read deadline) is replaced at once, so
//! the stall lasts the whole run; what the benchmark measures is how much the
//! well-behaved producers lose to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use quiver_proto::api::ApiKey;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::target::Target;

/// What each stalled stream declares.
const DECLARED_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// The running stall; [`stop`](Self::stop) ends it.
#[derive(Debug)]
pub struct StallingClient {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    ended_by_broker: Arc<AtomicU64>,
    _endpoint: quinn::Endpoint,
}

impl StallingClient {
    /// Connects to `target` and opens `streams` stalled streams, each kept stalled
    /// until [`stop`](Self::stop).
    pub async fn start(target: &Target, streams: usize) -> anyhow::Result<StallingClient> {
        let url = quiver_sdk::BrokerUrl::parse(&target.url)?;
        let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await?
            .next()
            .with_context(|| format!("{} resolves to no address", target.url))?;
        let pem = std::fs::read(&target.ca)
            .with_context(|| format!("reading {}", target.ca.display()))?;
        let roots = quiver_sdk::transport::parse_ca_pem(&pem)?;
        let mut endpoint = quiver_sdk::transport::endpoint("0.0.0.0:0".parse()?, None)?;
        endpoint.set_default_client_config(quiver_sdk::transport::client_config(&roots)?);
        let conn = endpoint.connect(addr, &url.host)?.await?;
        let cancel = CancellationToken::new();
        let ended_by_broker = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..streams {
            tasks.spawn(stall_forever(
                conn.clone(),
                cancel.clone(),
                Arc::clone(&ended_by_broker),
            ));
        }
        // Let the broker take every stream in before anything is measured.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(StallingClient {
            cancel,
            tasks,
            ended_by_broker,
            _endpoint: endpoint,
        })
    }

    /// Ends the stall and returns how many stalled streams the broker ended meanwhile.
    pub async fn stop(mut self) -> u64 {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.ended_by_broker.load(Ordering::Relaxed)
    }
}

/// One stalled stream after another on `conn`, until `cancel` fires or the connection
/// is gone.
async fn stall_forever(conn: quinn::Connection, cancel: CancellationToken, ended: Arc<AtomicU64>) {
    let mut head = DECLARED_FRAME_BYTES.to_be_bytes().to_vec();
    head.extend_from_slice(&ApiKey::PRODUCE.0.to_be_bytes());
    head.extend_from_slice(&[0u8; 14]);
    while !cancel.is_cancelled() {
        let Ok((mut send, mut recv)) = conn.open_bi().await else {
            return;
        };
        if send.write_all(&head).await.is_err() {
            return;
        }
        // Hold the send half open (not finished) until the broker answers or stops us.
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = send.reset(0u32.into());
                return;
            }
            _ = recv.read_to_end(64 * 1024) => {
                ended.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
