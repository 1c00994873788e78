//! Subscribe: a long-lived stream on which the broker pushes batches as they are appended.
//!
//! The broker writes one fetch-response frame per read, and waits on the partition's
//! high-watermark signal when it has caught up. QUIC flow control is the backpressure: a
//! consumer that stops reading stops the writes, and no unbounded buffer grows here. The
//! stream ends when the client stops it, the connection closes, or the broker shuts down.
//! A filter, when named, runs on each read as it does for fetch.

use quinn::SendStream;
use quiver_proto::api::{FetchResponse, SubscribeRequest};
use quiver_proto::frame::RequestFrame;

use super::{decode, filter};
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
    let partition = ctx.broker.partition(&req.topic, req.partition)?;
    let filter = match &req.filter {
        Some(spec) => Some(filter::bind(&ctx.broker, spec).await?),
        None => None,
    };
    let max_bytes = req
        .max_bytes
        .clamp(1, ctx.broker.config.limits.max_fetch_bytes) as usize;
    let mut watch = partition.watch();
    let mut offset = req.offset;
    // Records a filter dropped since the last frame: told to the client (an empty frame
    // with the new `next_offset`) once caught up, so its position moves past them.
    let mut skipped = false;
    loop {
        watch.borrow_and_update();
        let out = partition.read(offset, max_bytes).await?;
        let body = FetchResponse {
            high_watermark: out.high_watermark,
            log_start_offset: out.log_start_offset,
            next_offset: out.next_offset,
        };
        if !out.bytes.is_empty() {
            let payload = match &filter {
                None => out.bytes,
                Some(f) => filter::apply(f, out.bytes, offset).await?,
            };
            offset = out.next_offset;
            if payload.is_empty() {
                skipped = true;
                continue;
            }
            skipped = false;
            if write_response(send, &body, payload).await.is_err() {
                return Ok(()); // the client stopped the stream or went away
            }
            continue;
        }
        if std::mem::take(&mut skipped)
            && write_response(send, &body, bytes::Bytes::new())
                .await
                .is_err()
        {
            return Ok(());
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
