//! A producer offering a steady rate, for the benchmarks that break a broker under it
//! (`restart`, `cluster failover`) and time when acknowledgements come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quiver_sdk::{Producer, ProducerRecord};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The latest acknowledged record: when it was sent, and when its acknowledgement came.
pub type Acked = Option<(Instant, Instant)>;

/// Sends one record every `1 / rate` seconds until stopped; see [`Steady::acks`].
#[derive(Debug)]
pub struct Steady {
    acks: watch::Receiver<Acked>,
    failed: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Steady {
    /// Starts sending `record()` through `producer`, `rate` records a second.
    pub fn start(
        producer: Arc<Producer>,
        rate: u64,
        record: impl Fn() -> ProducerRecord + Send + 'static,
    ) -> Steady {
        let (acked, acks) = watch::channel(None);
        let acked = Arc::new(acked);
        let failed = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let task = {
            let (failed, stop) = (Arc::clone(&failed), stop.clone());
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                let mut sent = 0u32;
                while !stop.is_cancelled() {
                    tokio::time::sleep_until(start + every * sent).await;
                    sent = sent.wrapping_add(1);
                    let sent_at = Instant::now();
                    let Ok(delivery) = producer.send(record()).await else {
                        break;
                    };
                    let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
                    tokio::spawn(async move {
                        match delivery.await {
                            Ok(_) => {
                                acked.send_replace(Some((sent_at, Instant::now())));
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            })
        };
        Steady {
            acks,
            failed,
            stop,
            task,
        }
    }

    /// Changes with every acknowledgement.
    pub fn acks(&self) -> watch::Receiver<Acked> {
        self.acks.clone()
    }

    /// Stops sending and returns how many deliveries failed for good.
    pub async fn stop(self) -> u64 {
        self.stop.cancel();
        let _ = self.task.await;
        self.failed.load(Ordering::Relaxed)
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank); 0 for none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.99), 10.0);
        assert_eq!(quantile(&v, 1.0), 10.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
