//! The three kinds of plugin, one per WIT world.

use serde::{Deserialize, Serialize};

/// Which world a plugin component satisfies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Chooses partitions for produced records.
    Partitioner,
    /// Keeps or drops fetched records.
    Filter,
    /// Decides compaction keys, survivors and retention.
    Compactor,
}

impl PluginKind {
    /// Every kind, in a fixed order.
    pub const ALL: [PluginKind; 3] = [
        PluginKind::Partitioner,
        PluginKind::Filter,
        PluginKind::Compactor,
    ];

    /// The world's name in `wit/plugin.wit`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Partitioner => "partitioner",
            PluginKind::Filter => "filter",
            PluginKind::Compactor => "compactor",
        }
    }

    /// The functions the world exports.
    pub fn exports(self) -> &'static [&'static str] {
        match self {
            PluginKind::Partitioner => &["init", "partition"],
            PluginKind::Filter => &["init", "keep"],
            PluginKind::Compactor => &["init", "keys", "survivor", "retain"],
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is none of `partitioner`, `filter`, `compactor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plugin kind `{0}`: expected partitioner, filter or compactor")]
pub struct UnknownKind(pub String);

impl std::str::FromStr for PluginKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}
