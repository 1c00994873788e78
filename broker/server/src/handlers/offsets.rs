//! List offsets: earliest, latest, or the first at or after a timestamp.

use quiver_proto::api::{ListOffsetsRequest, ListOffsetsResponse, OffsetSpec};

use crate::broker::Broker;
use crate::error::BrokerError;

pub(super) async fn handle(
    b: &Broker,
    req: ListOffsetsRequest,
) -> Result<ListOffsetsResponse, BrokerError> {
    let partition = b.partition(&req.topic, req.partition)?;
    let log = partition.log();
    Ok(match req.spec {
        OffsetSpec::Earliest => ListOffsetsResponse {
            offset: Some(log.log_start_offset()),
            timestamp: None,
        },
        OffsetSpec::Latest => ListOffsetsResponse {
            offset: Some(log.high_watermark()),
            timestamp: None,
        },
        OffsetSpec::Timestamp(ts) => {
            let log = std::sync::Arc::clone(log);
            let found = tokio::task::spawn_blocking(move || log.offset_for_timestamp(ts))
                .await
                .map_err(|e| BrokerError::Internal(e.to_string()))?
                .map_err(|e| partition.storage_error(e))?;
            ListOffsetsResponse {
                offset: found.map(|(o, _)| o),
                timestamp: found.map(|(_, t)| t),
            }
        }
    })
}
