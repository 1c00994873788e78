//! What a plugin returns when it cannot do its job.

use crate::bindings::wit;

/// A plugin's failure, reported to the client with the plugin's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `init` refused its parameters: say which one and what was expected.
    Config(String),
    /// The current record cannot be handled; the helper adds its index in the batch.
    Record(String),
    /// Anything else.
    Failed(String),
}

impl Error {
    pub(crate) fn into_wit(self, index: usize) -> wit::Error {
        match self {
            Error::Config(m) => wit::Error::InvalidConfig(m),
            Error::Record(reason) => wit::Error::InvalidRecord(wit::BadRecord {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                reason,
            }),
            Error::Failed(m) => wit::Error::Failed(m),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid config: {m}"),
            Error::Record(m) => write!(f, "invalid record: {m}"),
            Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn not_initialised() -> wit::Error {
    wit::Error::Failed("the broker called the plugin before init".to_string())
}
