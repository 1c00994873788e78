//! Dialling: which broker of the bootstrap list a handshake goes to, how handshakes are
//! staggered and retried, and which failures another handshake could mend.

use std::net::SocketAddr;

use crate::Error;
use crate::url::BrokerUrl;

use super::Client;

/// One bootstrap broker: its URL, resolved address and the TLS name it must present.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) url: BrokerUrl,
    pub(super) addr: SocketAddr,
    pub(super) server_name: String,
}

impl Client {
    /// Dials the broker until a handshake succeeds, a handshake fails for a reason that
    /// another try would not change (a certificate the CA does not vouch for, say), or
    /// `connect_timeout` passes.
    ///
    /// A new handshake starts after each backoff step (jittered, so that the clients of
    /// a restarted broker do not all knock at once) while earlier ones keep going: a
    /// handshake whose first packets went out while the broker was down retransmits
    /// them ever more slowly (1 s, 2 s, 4 s, ...), so a fresh one reaches a broker that
    /// has come back much sooner, and on a slow link an earlier one may still finish
    /// first. At most [`MAX_DIALS`] are under way; the oldest is given up for a new one.
    pub(super) async fn dial(&self) -> Result<quinn::Connection, Error> {
        let inner = &self.inner;
        let after = inner.options.connect_timeout;
        let deadline = tokio::time::Instant::now() + after;
        let mut handshakes = tokio::task::JoinSet::new();
        let mut oldest_first = std::collections::VecDeque::new();
        let mut next_dial = tokio::time::Instant::now();
        let mut dialled = 0u32;
        let first = inner.preferred.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: "connecting to the broker",
                    after,
                });
            }
            if now >= next_dial {
                if oldest_first.len() >= MAX_DIALS
                    && let Some(oldest) = oldest_first.pop_front()
                {
                    tokio::task::AbortHandle::abort(&oldest);
                }
                // Each new handshake goes to the next broker of the list.
                let index = (first + dialled as usize) % inner.targets.len();
                let target = &inner.targets[index];
                let connecting = inner
                    .endpoint
                    .connect(target.addr, &target.server_name)
                    .map_err(|e| Error::Connect {
                        addr: target.addr.to_string(),
                        reason: e.to_string(),
                    })?;
                oldest_first.push_back(handshakes.spawn(async move { (index, connecting.await) }));
                next_dial = now + jittered(inner.options.backoff(dialled));
                dialled += 1;
            }
            tokio::select! {
                Some(done) = handshakes.join_next() => match done {
                    // Dropping the set gives up the other handshakes.
                    Ok((index, Ok(conn))) => {
                        inner.preferred.store(index, std::sync::atomic::Ordering::Relaxed);
                        return Ok(conn);
                    }
                    Ok((index, Err(e))) if worth_redialling(&e) => {
                        tracing::debug!(broker = %inner.targets[index].url, error = %e, "handshake failed; dialling again");
                    }
                    Ok((index, Err(e))) => {
                        return Err(Error::Connect {
                            addr: inner.targets[index].addr.to_string(),
                            reason: e.to_string(),
                        });
                    }
                    // A handshake given up for a newer one.
                    Err(_) => {}
                },
                () = tokio::time::sleep_until(next_dial.min(deadline)) => {}
            }
        }
    }
}

/// Handshakes [`Client::dial`] keeps under way at once.
pub(super) const MAX_DIALS: usize = 4;

/// Whether a failed handshake may succeed when tried again: the broker did not answer,
/// reset us, or closed for a reason other than TLS (shutting down, refusing for load).
/// A TLS failure on either side, or no common QUIC version, stays a failure.
pub(super) fn worth_redialling(e: &quinn::ConnectionError) -> bool {
    use quinn::ConnectionError as E;
    match e {
        E::TimedOut | E::Reset | E::ApplicationClosed(_) => true,
        E::ConnectionClosed(close) => !is_crypto(close.error_code),
        E::TransportError(_) | E::VersionMismatch | E::LocallyClosed | E::CidsExhausted => false,
    }
}

/// TLS alerts travel as QUIC transport codes 0x100 to 0x1ff.
pub(super) fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// `delay` shortened by a random part of up to half of it, so that the clients of one
/// broker, all cut off at the same moment, spread their retries out.
pub(super) fn jittered(delay: std::time::Duration) -> std::time::Duration {
    use std::hash::BuildHasher;
    // A per-process random hasher over a clock reading: plenty for spreading retries,
    // and no dependency for it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let random = std::collections::hash_map::RandomState::new().hash_one(nanos);
    let fraction = (random % 1_000) as f64 / 2_000.0;
    delay.mul_f64(1.0 - fraction)
}

pub(super) async fn resolve(url: &BrokerUrl) -> Result<SocketAddr, Error> {
    let fail = |reason: String| Error::Resolve {
        host: url.host.clone(),
        port: url.port,
        reason,
    };
    if let Ok(ip) = url.host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    let mut addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| fail(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| fail("the name has no addresses".into()))
}
