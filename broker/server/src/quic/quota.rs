//! Byte-rate quotas per client for produce and fetch, enforced Kafka-style: a client
//! over its quota is slowed down, never refused. Its request is still served; it is
//! delayed by how long the client would have to stay quiet to be back within its rate.
//!
//! Each quota is a bucket of credit that refills at the quota's rate up to one second's
//! worth (the burst a client may send at once). A request takes its bytes out, and the
//! balance may go negative: the debt divided by the rate is the delay, which is what
//! Kafka's throttle time `(observed - quota) / quota × window` comes to for the same
//! window. Requests of one client that overlap each see the debt of those before them,
//! so pipelining does not get around the rate.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The rates every client is held to (0 = unlimited), from `limits`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QuotaRates {
    pub produce_bytes_per_sec: u64,
    pub fetch_bytes_per_sec: u64,
}

/// One client's quotas, shared by all of its connections.
#[derive(Debug)]
pub(crate) struct ClientQuotas {
    produce: Option<Mutex<Bucket>>,
    fetch: Option<Mutex<Bucket>>,
}

impl ClientQuotas {
    pub fn new(rates: QuotaRates) -> ClientQuotas {
        let now = Instant::now();
        ClientQuotas {
            produce: Bucket::new(rates.produce_bytes_per_sec, now).map(Mutex::new),
            fetch: Bucket::new(rates.fetch_bytes_per_sec, now).map(Mutex::new),
        }
    }

    /// Charges a produce request of `bytes` and waits out the client's throttle time.
    pub async fn throttle_produce(&self, bytes: usize) {
        throttle(self.produce.as_ref(), bytes, "produce").await;
    }

    /// Charges a fetch response of `bytes` and waits out the client's throttle time.
    pub async fn throttle_fetch(&self, bytes: usize) {
        throttle(self.fetch.as_ref(), bytes, "fetch").await;
    }

    /// Whether the client still owes time on either quota.
    pub fn in_debt(&self) -> bool {
        let now = Instant::now();
        [&self.produce, &self.fetch]
            .into_iter()
            .flatten()
            .any(|b| b.lock().in_debt(now))
    }
}

async fn throttle(bucket: Option<&Mutex<Bucket>>, bytes: usize, what: &'static str) {
    let Some(bucket) = bucket else { return };
    let delay = bucket
        .lock()
        .charge(u64::try_from(bytes).unwrap_or(u64::MAX), Instant::now());
    if !delay.is_zero() {
        tracing::debug!(
            quota = what,
            delay_ms = delay.as_millis(),
            "client over its byte-rate quota; throttling"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Credit in bytes that refills at `rate` bytes a second up to `burst`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    balance: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket, or `None` for an unlimited rate.
    fn new(bytes_per_sec: u64, now: Instant) -> Option<Bucket> {
        (bytes_per_sec > 0).then(|| {
            let rate = bytes_per_sec as f64;
            Bucket {
                rate,
                burst: rate,
                balance: rate,
                updated: now,
            }
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.balance = (self.balance + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Takes `bytes` out and returns how long the client must wait to be back in credit.
    fn charge(&mut self, bytes: u64, now: Instant) -> Duration {
        self.refill(now);
        self.balance -= bytes as f64;
        if self.balance >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.balance / self.rate)
        }
    }

    fn in_debt(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.balance < 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn within_the_burst_nothing_waits() {
        let t0 = Instant::now();
        let mut b = Bucket::new(MIB, t0).expect("limited");
        assert_eq!(b.charge(MIB / 2, t0), Duration::ZERO);
        assert_eq!(b.charge(MIB / 2, t0), Duration::ZERO);
    }

    #[test]
    fn overlapping_requests_wait_for_the_debt_before_them() {
        let t0 = Instant::now();
        let mut b = Bucket::new(MIB, t0).expect("limited");
        // Four MiB at once against one MiB a second: the burst covers the first, and
        // the others wait one, two and three seconds.
        let delays: Vec<_> = (0..4).map(|_| b.charge(MIB, t0)).collect();
        assert_eq!(
            delays,
            [0, 1, 2, 3].map(Duration::from_secs).to_vec(),
            "{delays:?}"
        );
        assert!(b.in_debt(t0));
        assert!(!b.in_debt(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn credit_refills_at_the_rate_up_to_one_second() {
        let t0 = Instant::now();
        let mut b = Bucket::new(MIB, t0).expect("limited");
        assert_eq!(b.charge(MIB, t0), Duration::ZERO);
        // A long quiet spell earns no more than one second's worth.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.charge(MIB, later), Duration::ZERO);
        assert_eq!(b.charge(MIB, later), Duration::from_secs(1));
    }

    #[test]
    fn a_zero_rate_is_unlimited() {
        assert!(Bucket::new(0, Instant::now()).is_none());
        let q = ClientQuotas::new(QuotaRates::default());
        assert!(!q.in_debt());
    }
}
