//! Subscribe: a long-lived stream on which the broker pushes batches as they are appended.
//!
//! The broker writes one fetch-response frame per read, and waits on the partition's
//! high-watermark signal when it has caught up. QUIC flow control is the backpressure: a
//! consumer that stops reading stops the writes, and no unbounded buffer grows here. The
//! stream ends when the client stops it, the connection closes, or the broker shuts down.

use quinn::SendStream;
use quiver_proto::api::{FetchResponse, SubscribeRequest};
use quiver_proto::frame::RequestFrame;

use super::decode;
use super::fetch::reject_filter;
use crate::error::BrokerError;
use crate::listener::{Context, write_error, write_response};

pub(super) async fn serve(ctx: &Context, frame: RequestFrame, send: &mut SendStream) {
    let req: SubscribeRequest = match decode(&frame) {
        Ok(r) => r,
        Err(err) => {
            let _ = write_error(send, &err).await;
            return;
        }
    };
    if let Err(e) = push(ctx, req, send).await {
        let _ = write_error(send, &e.to_wire()).await;
    }
}

async fn push(
    ctx: &Context,
    req: SubscribeRequest,
    send: &mut SendStream,
) -> Result<(), BrokerError> {
    reject_filter(req.filter.as_ref())?;
    let partition = ctx.broker.partition(&req.topic, req.partition)?;
    let max_bytes = req
        .max_bytes
        .clamp(1, ctx.broker.config.limits.max_fetch_bytes) as usize;
    let mut watch = partition.watch();
    let mut offset = req.offset;
    loop {
        watch.borrow_and_update();
        let out = partition.read(offset, max_bytes).await?;
        if !out.bytes.is_empty() {
            offset = out.next_offset;
            let body = FetchResponse {
                high_watermark: out.high_watermark,
                log_start_offset: out.log_start_offset,
                next_offset: out.next_offset,
            };
            if write_response(send, &body, out.bytes).await.is_err() {
                return Ok(()); // the client stopped the stream or went away
            }
            continue;
        }
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return Err(partition.deleted_error());
                }
            }
            _ = send.stopped() => return Ok(()),
            () = ctx.shutdown.cancelled() => return Ok(()),
            () = partition.deleted() => return Err(partition.deleted_error()),
        }
    }
}
