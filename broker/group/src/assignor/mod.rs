//! Broker-side assignment strategies: which member consumes which partition.
//!
//! An assignor is a pure function of the members' subscriptions (and, for sticky
//! strategies, what each member holds now) and the topics' partition counts. Topics a
//! member subscribes to that do not exist are ignored until they do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use crate::partition::TopicPartition;

mod range;
mod roundrobin;
mod sticky;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties;

pub use range::RangeAssignor;
pub use roundrobin::RoundRobinAssignor;
pub use sticky::CooperativeStickyAssignor;

/// One member as an assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    /// Topic names the member consumes.
    pub topics: BTreeSet<String>,
    /// Partitions the member may hold right now. Eager strategies ignore it; sticky ones
    /// keep these where balance allows, and never give one of them to another member in
    /// the same generation.
    pub owned: BTreeSet<TopicPartition>,
}

/// A strategy that divides partitions among members.
pub trait Assignor: Debug + Send + Sync {
    /// The name members list in their preferences, such as `range`.
    fn name(&self) -> &str;

    /// Assigns partitions of `partitions` (topic → partition count) to `members`.
    ///
    /// The result has an entry for every member (possibly empty), each list sorted, and a
    /// partition only ever goes to a member subscribed to its topic and to at most one
    /// member. Eager strategies assign every partition of every subscribed topic; a
    /// cooperative one may leave a partition to nobody for one generation while its
    /// current holder gives it up.
    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>>;
}

/// The strategies every broker offers, in the order they are listed.
pub fn builtin() -> Vec<Box<dyn Assignor>> {
    vec![
        Box::new(RangeAssignor),
        Box::new(RoundRobinAssignor),
        Box::new(CooperativeStickyAssignor),
    ]
}

/// Every partition that exists and that at least one member subscribes to, sorted.
pub fn assignable(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, u32>,
) -> BTreeSet<TopicPartition> {
    let topics: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
    topics
        .into_iter()
        .filter_map(|t| partitions.get(t).map(|&n| (t, n)))
        .flat_map(|(t, n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect()
}

/// An empty assignment with an entry for every member, for strategies to fill.
fn empty_assignment(members: &[MemberSubscription]) -> BTreeMap<String, Vec<TopicPartition>> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A member subscribed to `topics`, holding nothing.
    pub fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: BTreeSet::new(),
        }
    }

    pub fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    pub fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect()
    }
}
