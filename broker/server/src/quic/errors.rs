//! The one place domain errors become wire error codes: each [`BrokerError`] (and the
//! storage and group errors inside it) maps to a code of the append-only table in
//! `quiver_proto::ErrorCode`, with the error's own message.

use quiver_proto::{ErrorCode, WireError};
use quiver_storage::StorageError;

use quiver_metadata::MetadataError;
use quiver_quorum::QuorumError;

use crate::error::BrokerError;

/// The error code and message sent to the client.
pub(crate) fn wire_error(e: &BrokerError) -> WireError {
    if let BrokerError::Storage {
        source: StorageError::DamagedData { range, .. },
        ..
    } = e
    {
        return WireError::damaged_data(e.to_string(), range.first_offset, range.next_offset);
    }
    WireError::new(code(e), e.to_string())
}

fn code(e: &BrokerError) -> ErrorCode {
    match e {
        BrokerError::UnknownTopic(_) => ErrorCode::UNKNOWN_TOPIC,
        BrokerError::UnknownPartition { .. } => ErrorCode::UNKNOWN_PARTITION,
        BrokerError::PartitionOffline { .. } => ErrorCode::PARTITION_OFFLINE,
        BrokerError::TopicExists(_) => ErrorCode::TOPIC_ALREADY_EXISTS,
        BrokerError::InvalidTopicName(_) => ErrorCode::INVALID_TOPIC_NAME,
        BrokerError::InvalidConfig(_) | BrokerError::PluginLimit(_) => ErrorCode::INVALID_CONFIG,
        BrokerError::InvalidRequest(_) => ErrorCode::INVALID_REQUEST,
        BrokerError::CorruptBatch(_) => ErrorCode::CORRUPT_BATCH,
        BrokerError::UnknownPlugin(_) => ErrorCode::UNKNOWN_PLUGIN,
        BrokerError::InvalidPlugin(_) => ErrorCode::INVALID_PLUGIN,
        BrokerError::PluginFailed(_) => ErrorCode::PLUGIN_FAILED,
        BrokerError::PluginInUse(_) => ErrorCode::PLUGIN_IN_USE,
        BrokerError::Storage { source, .. } => storage_code(source),
        BrokerError::Metadata(e) => metadata_code(e),
        BrokerError::MetadataLog(_) | BrokerError::Internal(_) => ErrorCode::INTERNAL,
        BrokerError::Quorum(e) => match e {
            QuorumError::NoQuorum { .. } => ErrorCode::BROKER_UNAVAILABLE,
            QuorumError::OutcomeUnknown(_) => ErrorCode::REQUEST_TIMED_OUT,
            QuorumError::Storage { .. } | QuorumError::Config(_) | QuorumError::Stopped(_) => {
                ErrorCode::INTERNAL
            }
        },
        BrokerError::NotLeader { .. } => ErrorCode::NOT_LEADER,
        BrokerError::NotEnoughReplicas { .. } => ErrorCode::NOT_ENOUGH_REPLICAS,
        BrokerError::NotCoordinator { loading: false, .. } => ErrorCode::NOT_COORDINATOR,
        BrokerError::NotCoordinator { loading: true, .. }
        | BrokerError::CoordinatorNotAvailable { .. } => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        BrokerError::ReplicationTimedOut { .. } => ErrorCode::REQUEST_TIMED_OUT,
        BrokerError::ShuttingDown => ErrorCode::BROKER_UNAVAILABLE,
        BrokerError::Unauthorized(_) | BrokerError::Unauthenticated(_) => ErrorCode::UNAUTHORIZED,
        BrokerError::Group(e) => super::convert::group::error_code(e),
        BrokerError::Forwarded { code, .. } => ErrorCode(*code),
    }
}

fn storage_code(err: &StorageError) -> ErrorCode {
    match err {
        StorageError::CorruptBatch { .. } => ErrorCode::CORRUPT_BATCH,
        StorageError::BatchTooLarge { .. } => ErrorCode::RECORD_TOO_LARGE,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        StorageError::InvalidProducerEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
        StorageError::OutOfOrderSequence { .. } => ErrorCode::OUT_OF_ORDER_SEQUENCE,
        StorageError::DamagedData { .. } => ErrorCode::DAMAGED_DATA,
        _ => ErrorCode::STORAGE_ERROR,
    }
}

fn metadata_code(err: &MetadataError) -> ErrorCode {
    match err {
        MetadataError::TopicExists { .. } => ErrorCode::TOPIC_ALREADY_EXISTS,
        MetadataError::UnknownTopic { .. } | MetadataError::TopicIdMismatch { .. } => {
            ErrorCode::UNKNOWN_TOPIC
        }
        MetadataError::UnknownPartition { .. } => ErrorCode::UNKNOWN_PARTITION,
        MetadataError::InvalidTopicName { .. } => ErrorCode::INVALID_TOPIC_NAME,
        MetadataError::BadPartitionCount { .. }
        | MetadataError::BadReplicationFactor { .. }
        | MetadataError::NotEnoughBrokers { .. }
        // A replica set naming a broker twice, an unknown or fenced one (a client's
        // reassignment).
        | MetadataError::BadReplicas { .. }
        | MetadataError::UnknownBroker { .. }
        | MetadataError::BrokerHoldsReplicas { .. }
        | MetadataError::FencedReplica { .. } => ErrorCode::INVALID_REQUEST,
        MetadataError::ConflictingConfig { .. }
        | MetadataError::BadPluginReference { .. }
        | MetadataError::PluginKindMismatch { .. } => ErrorCode::INVALID_CONFIG,
        MetadataError::UnknownPlugin { .. } | MetadataError::UnknownPluginVersion { .. } => {
            ErrorCode::UNKNOWN_PLUGIN
        }
        MetadataError::PluginInUse { .. } => ErrorCode::PLUGIN_IN_USE,
        MetadataError::InvalidPluginName { .. }
        | MetadataError::PluginKindChanged { .. }
        | MetadataError::BadContentHash { .. } => ErrorCode::INVALID_PLUGIN,
        _ => ErrorCode::INTERNAL,
    }
}
