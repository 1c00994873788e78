//! Background upkeep of every partition: age-based rolling, interval flushes and
//! retention, run on a fixed period on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::handlers::now_ms;

/// Runs until `shutdown` fires; one pass over all partitions per period.
pub(crate) async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(broker.config.maintenance_interval_ms.max(10));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let b = Arc::clone(&broker);
        let pass = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for topic in b.topics() {
                for p in &topic.partitions {
                    match p.log().tick(now) {
                        Ok(outcome) => tracing::trace!(topic = %p.topic, partition = p.index, ?outcome, "maintenance"),
                        Err(e) => tracing::error!(topic = %p.topic, partition = p.index, error = %e, "maintenance failed"),
                    }
                }
            }
        });
        if let Err(e) = pass.await {
            tracing::error!(error = %e, "maintenance pass panicked");
        }
    }
}
