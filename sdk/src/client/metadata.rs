//! Topic metadata: cached per topic with the wall-clock time it was asked for, trusted
//! for `metadata_max_age` and no longer than the latest suspicion of a broker (see
//! `route.rs`), refreshed on demand or when a request finds it wrong.

use std::sync::Arc;

use bytes::Bytes;
use quiver_proto::api::{MetadataRequest, MetadataResponse, Request, TopicMetadata};
use quiver_proto::time::now_ms;
use quiver_proto::{ErrorCode, WireError};

use super::Client;
use crate::Error;

impl Client {
    /// Metadata for `topics`, from the cache when it is younger than
    /// `metadata_max_age`, else fetched. Fails with `UNKNOWN_TOPIC` for a topic the
    /// broker does not know.
    pub async fn metadata(&self, topics: &[&str]) -> Result<Vec<Arc<TopicMetadata>>, Error> {
        let now = now_ms();
        let missing: Vec<String> = {
            let cache = self.inner.metadata.lock();
            topics
                .iter()
                .filter(|t| {
                    cache.get(**t).is_none_or(|(at, _)| {
                        !fresh(*at, now, self.inner.options.metadata_max_age)
                            || !self
                                .inner
                                .suspects
                                .trusts(*at, now, self.suspicion_window())
                    })
                })
                .map(|t| t.to_string())
                .collect()
        };
        if !missing.is_empty() {
            self.refresh_metadata(Some(missing)).await?;
        }
        let cache = self.inner.metadata.lock();
        topics
            .iter()
            .map(|t| {
                cache
                    .get(*t)
                    .map(|(_, m)| m.clone())
                    .ok_or_else(|| Error::Broker {
                        api: MetadataRequest::NAME,
                        source: WireError::new(
                            ErrorCode::UNKNOWN_TOPIC,
                            format!("the broker returned no metadata for topic '{t}'"),
                        ),
                    })
            })
            .collect()
    }

    /// Metadata of one topic, cached like [`Client::metadata`].
    pub async fn topic_metadata(&self, topic: &str) -> Result<Arc<TopicMetadata>, Error> {
        self.topic_metadata_at(topic, now_ms()).await
    }

    /// [`Client::topic_metadata`] with the clock already read: the producer's per-record
    /// lookup, which reads the wall clock once for the record's timestamp and reuses it
    /// here. One lock, one hash, no clock read and no `Vec` when the entry is fresh.
    pub(crate) async fn topic_metadata_at(
        &self,
        topic: &str,
        now_ms: i64,
    ) -> Result<Arc<TopicMetadata>, Error> {
        let cached = {
            let cache = self.inner.metadata.lock();
            cache
                .get(topic)
                .filter(|(at, _)| {
                    fresh(*at, now_ms, self.inner.options.metadata_max_age)
                        && self
                            .inner
                            .suspects
                            .trusts(*at, now_ms, self.suspicion_window())
                })
                .map(|(_, m)| m.clone())
        };
        if let Some(meta) = cached {
            return Ok(meta);
        }
        let mut all = self.metadata(&[topic]).await?;
        all.pop().ok_or_else(|| Error::Broker {
            api: MetadataRequest::NAME,
            source: WireError::new(ErrorCode::UNKNOWN_TOPIC, topic),
        })
    }

    /// Fetches metadata for `topics` (all topics with `None`) and refreshes the cache.
    pub async fn refresh_metadata(
        &self,
        topics: Option<Vec<String>>,
    ) -> Result<MetadataResponse, Error> {
        // Stamped with when it was asked for: an answer built before a broker became a
        // suspect must not pass for fresher than the suspicion.
        let asked = now_ms();
        let (resp, _) = self.call(&MetadataRequest { topics }, Bytes::new()).await?;
        let now = asked;
        *self.inner.brokers.lock() = resp
            .brokers
            .iter()
            .map(|b| (b.id, b.address.clone()))
            .collect();
        let mut cache = self.inner.metadata.lock();
        for topic in &resp.topics {
            cache.insert(topic.name.clone(), (now, Arc::new(topic.clone())));
        }
        Ok(resp)
    }

    /// Forgets cached metadata of `topic`, so the next use fetches it again (after a
    /// not-leader or unknown-partition error, or a partition count change).
    pub fn invalidate_metadata(&self, topic: &str) {
        self.inner.metadata.lock().remove(topic);
    }
}

/// Whether metadata fetched at wall-clock `fetched_ms` may still be used at `now_ms`.
///
/// A reading up to a second before the fetch is a send that read the clock just before
/// another task refreshed the entry, and counts as fresh. A clock stepped back further
/// counts as stale, so a clock change can make the cache refresh early but never keep an
/// entry more than that second past `max_age`.
fn fresh(fetched_ms: i64, now_ms: i64, max_age: std::time::Duration) -> bool {
    const CLOCK_SKEW_MS: i64 = 1_000;
    let max_age = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let age = now_ms.saturating_sub(fetched_ms);
    age > -CLOCK_SKEW_MS && age < max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_metadata_ages_by_the_wall_clock_and_a_clock_stepped_back_refreshes_it() {
        let max_age = std::time::Duration::from_secs(300);
        let fetched = 1_700_000_000_000;
        assert!(fresh(fetched, fetched, max_age));
        assert!(fresh(fetched, fetched + 299_999, max_age));
        assert!(!fresh(fetched, fetched + 300_000, max_age));
        // A send that read the clock just before another task's refresh landed.
        assert!(fresh(fetched, fetched - 5, max_age));
        // The clock was stepped back: refresh rather than trust the entry for longer.
        assert!(!fresh(fetched, fetched - 60_000, max_age));
        assert!(!fresh(fetched, 0, max_age));
        assert!(!fresh(fetched, fetched + 1, std::time::Duration::ZERO));
    }
}
