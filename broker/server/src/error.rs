//! The broker's domain errors, and the one place they become wire error codes.

use quiver_proto::{ErrorCode, WireError};
use quiver_storage::StorageError;

use crate::catalog::CatalogError;
use crate::topic_config::ConfigError;

/// What went wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: u32,
        count: u32,
    },
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("invalid topic name: {0}")]
    InvalidTopicName(String),
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("corrupt record batch: {0}")]
    CorruptBatch(#[from] quiver_proto::batch::BatchError),
    #[error("{0}")]
    UnknownPlugin(String),
    /// An uploaded component was refused; the message names what is wrong with it.
    #[error("{0}")]
    InvalidPlugin(String),
    /// A plugin call failed (trap, timeout, memory cap, its own error, a broken
    /// contract); the message names the plugin.
    #[error("{0}")]
    PluginFailed(String),
    /// A plugin cannot be removed while topics are bound to it.
    #[error("{0}")]
    PluginInUse(String),
    #[error("partition {topic}-{partition}: {source}")]
    Storage {
        topic: String,
        partition: u32,
        #[source]
        source: StorageError,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A consumer-group request the coordinator refused; its wire code comes from the
    /// groups' front door.
    #[error(transparent)]
    Group(#[from] quiver_group::GroupError),
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    /// The error code and message sent to the client.
    pub fn to_wire(&self) -> WireError {
        WireError::new(self.code(), self.to_string())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::UnknownTopic(_) => ErrorCode::UNKNOWN_TOPIC,
            BrokerError::UnknownPartition { .. } => ErrorCode::UNKNOWN_PARTITION,
            BrokerError::TopicExists(_) => ErrorCode::TOPIC_ALREADY_EXISTS,
            BrokerError::InvalidTopicName(_) => ErrorCode::INVALID_TOPIC_NAME,
            BrokerError::InvalidConfig(_) => ErrorCode::INVALID_CONFIG,
            BrokerError::InvalidRequest(_) => ErrorCode::INVALID_REQUEST,
            BrokerError::CorruptBatch(_) => ErrorCode::CORRUPT_BATCH,
            BrokerError::UnknownPlugin(_) => ErrorCode::UNKNOWN_PLUGIN,
            BrokerError::InvalidPlugin(_) => ErrorCode::INVALID_PLUGIN,
            BrokerError::PluginFailed(_) => ErrorCode::PLUGIN_FAILED,
            BrokerError::PluginInUse(_) => ErrorCode::PLUGIN_IN_USE,
            BrokerError::Storage { source, .. } => storage_code(source),
            BrokerError::Catalog(_) | BrokerError::Internal(_) => ErrorCode::INTERNAL,
            BrokerError::ShuttingDown => ErrorCode::BROKER_UNAVAILABLE,
            BrokerError::Group(e) => crate::handlers::group_convert::error_code(e),
        }
    }
}

fn storage_code(err: &StorageError) -> ErrorCode {
    match err {
        StorageError::CorruptBatch { .. } => ErrorCode::CORRUPT_BATCH,
        StorageError::BatchTooLarge { .. } => ErrorCode::RECORD_TOO_LARGE,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        StorageError::InvalidProducerEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
        StorageError::OutOfOrderSequence { .. } => ErrorCode::OUT_OF_ORDER_SEQUENCE,
        _ => ErrorCode::STORAGE_ERROR,
    }
}

impl From<BrokerError> for WireError {
    fn from(e: BrokerError) -> WireError {
        e.to_wire()
    }
}
