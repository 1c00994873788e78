//! What a group consumer subscribes to: named topics, or every topic whose name matches
//! a regular expression, re-resolved when metadata is refreshed.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use quiver_proto::api::ListTopicsRequest;

use crate::{Client, Error};

/// A subscription and, for a pattern, when it was last resolved.
#[derive(Debug)]
pub(crate) enum Subscription {
    Topics(BTreeSet<String>),
    Pattern {
        regex: regex::Regex,
        resolved_at: Option<Instant>,
    },
}

impl Subscription {
    /// A pattern that must match a whole topic name, as Kafka's do.
    pub fn pattern(pattern: &str) -> Result<Subscription, Error> {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Error::Config(format!("invalid topic pattern '{pattern}': {e}")))?;
        Ok(Subscription::Pattern {
            regex,
            resolved_at: None,
        })
    }

    /// Whether the topic list should be fetched again: a pattern older than the client's
    /// `metadata_max_age`, or never resolved.
    pub fn is_stale(&self, client: &Client) -> bool {
        match self {
            Subscription::Topics(_) => false,
            Subscription::Pattern { resolved_at, .. } => {
                resolved_at.is_none_or(|at| at.elapsed() >= client.options().metadata_max_age)
            }
        }
    }

    /// The topic names this subscription means now. Internal topics never match a
    /// pattern; a named topic that does not exist yet is passed on (the group assigns
    /// it once it exists).
    pub async fn resolve(&mut self, client: &Client) -> Result<BTreeSet<String>, Error> {
        match self {
            Subscription::Topics(topics) => Ok(topics.clone()),
            Subscription::Pattern { regex, resolved_at } => {
                let (resp, _) = client.call(&ListTopicsRequest {}, Bytes::new()).await?;
                *resolved_at = Some(Instant::now());
                Ok(resp
                    .topics
                    .into_iter()
                    .filter(|t| !t.internal && regex.is_match(&t.name))
                    .map(|t| t.name)
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names() {
        let Subscription::Pattern { regex, .. } =
            Subscription::pattern("orders-.*").expect("valid")
        else {
            panic!("a pattern");
        };
        assert!(regex.is_match("orders-eu"));
        assert!(!regex.is_match("old-orders-eu"));
        let err = Subscription::pattern("(").expect_err("invalid");
        assert!(err.to_string().contains("invalid topic pattern"), "{err}");
    }
}
