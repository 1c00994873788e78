//! List offsets: earliest, latest, or the first at or after a timestamp.

use super::types::{OffsetAnswer, OffsetQuery};
use super::{BrokerService, blocking};
use crate::auth::Caller;
use crate::error::BrokerError;
use quiver_metadata::{Operation, ResourceKind};

impl BrokerService {
    /// The offset `query` names in one partition.
    pub async fn list_offsets(
        &self,
        caller: &Caller,
        topic: &str,
        partition: u32,
        query: OffsetQuery,
    ) -> Result<OffsetAnswer, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Topic, topic)?;
        let partition = self.broker.partition(topic, partition)?;
        let log = partition.log()?;
        Ok(match query {
            OffsetQuery::Earliest => OffsetAnswer {
                offset: Some(log.log_start_offset()),
                timestamp: None,
            },
            OffsetQuery::Latest => OffsetAnswer {
                offset: Some(log.high_watermark()),
                timestamp: None,
            },
            OffsetQuery::Timestamp(ts) => {
                let found = blocking(move || {
                    partition
                        .log()?
                        .offset_for_timestamp(ts)
                        .map_err(|e| partition.storage_error(e))
                })
                .await?;
                OffsetAnswer {
                    offset: found.map(|(o, _)| o),
                    timestamp: found.map(|(_, t)| t),
                }
            }
        })
    }
}
