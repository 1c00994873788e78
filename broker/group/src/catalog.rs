//! What the coordinator needs to know about topics: how many partitions each has.

use std::collections::{BTreeMap, HashMap};

/// The broker's view of topics, passed into the calls that assign partitions or check
/// commits. The coordinator keeps no copy of it, so topics created, deleted or grown
/// between calls are seen at the next call.
pub trait TopicCatalog {
    /// The topic's partition count, or `None` when no such topic exists.
    fn partitions(&self, topic: &str) -> Option<u32>;
}

impl TopicCatalog for BTreeMap<String, u32> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.get(topic).copied()
    }
}

impl TopicCatalog for HashMap<String, u32> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.get(topic).copied()
    }
}
