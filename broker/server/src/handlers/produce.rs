//! Produce: append a producer's batches to a partition, and hand out producer ids.

use bytes::Bytes;
use quinn::SendStream;
use quiver_proto::api::{
    Acks, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
};
use quiver_proto::frame::RequestFrame;

use super::{decode, now_ms, route};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::listener::{Context, write_error, write_response};

/// Produce has its own serve function because `acks=0` means no response at all.
pub(super) async fn serve(ctx: &Context, frame: RequestFrame, send: &mut SendStream) {
    let req: ProduceRequest = match decode(&frame) {
        Ok(r) => r,
        Err(err) => {
            let _ = write_error(send, &err).await;
            return;
        }
    };
    let acks = req.acks;
    let result = handle(&ctx.broker, req, frame.payload.clone()).await;
    if acks == Acks::None {
        if let Err(e) = result {
            tracing::debug!(error = %e, "acks=0 produce failed; the client asked not to be told");
        }
        return;
    }
    let _ = match result {
        Ok(resp) => write_response(send, &resp, Bytes::new()).await,
        Err(e) => {
            tracing::debug!(error = %e, "produce failed");
            write_error(send, &e.to_wire()).await
        }
    };
}

async fn handle(
    b: &Broker,
    req: ProduceRequest,
    payload: Bytes,
) -> Result<ProduceResponse, BrokerError> {
    let topic = b.topic(&req.topic)?;
    if topic.record.internal {
        return Err(BrokerError::InvalidRequest(format!(
            "topic '{}' is internal to the broker; clients cannot produce to it",
            req.topic
        )));
    }
    if payload.is_empty() {
        return Err(BrokerError::InvalidRequest(
            "produce request carries no record batch".to_string(),
        ));
    }
    let now = now_ms();
    let Some(index) = req.partition else {
        return route::produce_routed(b, &topic, payload, now).await;
    };
    let partition = topic.partition(index)?;
    let timeout = std::time::Duration::from_millis(u64::from(req.timeout_ms));
    let out = partition.append(payload, now, timeout).await?;
    Ok(ProduceResponse {
        partition: index,
        base_offset: out.base_offset,
        last_offset: out.last_offset,
        log_append_time: out.log_append_time,
        log_start_offset: partition.log().log_start_offset(),
        duplicate: out.duplicate,
        routed: Vec::new(),
    })
}

pub(super) async fn init_producer_id(
    b: &Broker,
    _req: InitProducerIdRequest,
) -> Result<InitProducerIdResponse, BrokerError> {
    Ok(InitProducerIdResponse {
        producer_id: b.producer_ids.next()?,
        producer_epoch: 0,
    })
}
