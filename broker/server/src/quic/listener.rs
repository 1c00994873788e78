//! The QUIC accept loop: connections, request streams, and the bounds on both.
//!
//! Each request arrives on its own bidirectional stream. A stream task reads one frame,
//! checking its length prefix against the frame limit and reserving that many bytes of
//! the broker-wide in-flight budget before allocating, dispatches it, and writes the
//! response. A bad frame gets an error on its own stream; the connection carries on.
//! Plugin uploads alone may exceed the frame limit, up to `plugins.max_component_bytes`.

use std::sync::Arc;

use bytes::Bytes;
use quinn::{RecvStream, SendStream};
use quiver_proto::api::ApiKey;
use quiver_proto::buffers::{BufferPool, POOLED_MIN_BYTES};
use quiver_proto::frame::{self, FrameError, RequestFrame};
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch;
use crate::service::BrokerService;

/// What every connection and stream task shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// What requests are served by; this door only reads, decodes, calls and answers.
    pub service: BrokerService,
    pub shutdown: CancellationToken,
    /// Bytes of request frames held in memory right now, across all connections.
    inflight: Arc<Semaphore>,
    /// Buffers of answered requests, which the next large frames are read into.
    frames: BufferPool,
    tracker: TaskTracker,
}

/// Idle request buffers the broker keeps: produce requests of about a megabyte arrive
/// one after another, and each is done with before many more have been read.
const POOLED_FRAMES: usize = 8;
const POOLED_FRAME_MAX_IDLE_BYTES: usize = 16 * 1024 * 1024;

/// Accepts connections until `shutdown` fires.
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    service: BrokerService,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = &service.config().limits;
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let ctx = Arc::new(Context {
        inflight: Arc::new(Semaphore::new(limits.max_inflight_bytes)),
        frames: BufferPool::new(POOLED_FRAMES, POOLED_MIN_BYTES, POOLED_FRAME_MAX_IDLE_BYTES),
        service,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    });
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(remote = %incoming.remote_address(), "connection limit reached; refusing");
            incoming.refuse();
            continue;
        };
        tracker.spawn(connection(incoming, Arc::clone(&ctx), permit));
    }
}

async fn connection(incoming: quinn::Incoming, ctx: Arc<Context>, _permit: OwnedSemaphorePermit) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "handshake failed");
            return;
        }
    };
    tracing::debug!(%remote, "connection open");
    loop {
        let (send, recv) = tokio::select! {
            () = ctx.shutdown.cancelled() => {
                conn.close(0u32.into(), b"broker shutting down");
                break;
            }
            stream = conn.accept_bi() => match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%remote, reason = %e, "connection closed");
                    break;
                }
            },
        };
        ctx.tracker
            .spawn(request_stream(send, recv, Arc::clone(&ctx)));
    }
}

async fn request_stream(mut send: SendStream, mut recv: RecvStream, ctx: Arc<Context>) {
    let (frame, whole, permit) = match read_request(&mut recv, &ctx).await {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(err) => {
            // Tell the client to stop sending the rest of a frame we will not read.
            let _ = recv.stop(0u32.into());
            let _ = write_error(&mut send, &err).await;
            return;
        }
    };
    dispatch::dispatch(&ctx, frame, &mut send).await;
    // The request is answered: its buffer is read into again if nothing kept a slice.
    ctx.frames.recycle(whole);
    drop(permit);
    let _ = send.finish();
    // Wait for the peer to take the response before the stream's state is dropped, so a
    // slow reader still receives all of it; a stop or a reset ends the wait.
    let _ = send.stopped().await;
}

/// Reads one request frame, holding `len` bytes of the in-flight budget while it lives.
/// Returns the frame, the whole buffer it was read into, and the permit.
async fn read_request(
    recv: &mut RecvStream,
    ctx: &Context,
) -> Result<Option<(RequestFrame, Bytes, OwnedSemaphorePermit)>, WireError> {
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => {
            return Err(WireError::new(
                ErrorCode::CORRUPT_FRAME,
                format!("reading frame length: {e}"),
            ));
        }
    }
    let config = ctx.service.config();
    let max = config.limits.max_frame_bytes;
    // A plugin upload carries a whole component (a Python one is ~17 MiB), so it alone
    // may go past the frame limit, up to its own bound; its API key is read first.
    let mut api = [0u8; 2];
    let len = match frame::check_len(prefix, max) {
        Ok(len) => len,
        Err(too_large) => {
            let upload_max = config.plugins.max_component_bytes.saturating_add(64 * 1024);
            let len = frame::check_len(prefix, upload_max).map_err(|_| frame_error(&too_large))?;
            let is_upload = recv.read_exact(&mut api).await.is_ok()
                && ApiKey(u16::from_be_bytes(api)) == ApiKey::PLUGIN_ADD;
            if !is_upload {
                return Err(frame_error(&too_large));
            }
            len
        }
    };
    let permit = Arc::clone(&ctx.inflight)
        .acquire_many_owned(u32::try_from(len).unwrap_or(u32::MAX))
        .await
        .map_err(|_| {
            WireError::new(ErrorCode::BROKER_UNAVAILABLE, "the broker is shutting down")
        })?;
    // Gather the frame from the stream: one copy, and no zero-filling first. Each read
    // takes every chunk that has arrived (one lock of the connection for all of them,
    // where reading chunk by chunk took one per datagram).
    let mut buf = ctx.frames.take_bytes_mut(len);
    if len > max {
        buf.extend_from_slice(&api);
    }
    let rest = len - buf.len();
    if let Err(e) = frame::io::read_bytes_into(recv, &mut buf, rest).await {
        let detail = match e {
            FrameError::Io(io) => format!("failed ({io})"),
            _ => "ended".to_string(),
        };
        return Err(WireError::new(
            ErrorCode::CORRUPT_FRAME,
            format!(
                "frame declared {len} bytes but the stream {detail} after {}",
                buf.len()
            ),
        ));
    }
    let whole = buf.freeze();
    let frame = RequestFrame::parse(whole.clone()).map_err(|e| frame_error(&e))?;
    Ok(Some((frame, whole, permit)))
}

fn frame_error(e: &FrameError) -> WireError {
    let code = match e {
        FrameError::TooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
        _ => ErrorCode::CORRUPT_FRAME,
    };
    WireError::new(code, e.to_string())
}

/// Writes an error response frame.
pub(crate) async fn write_error(
    send: &mut SendStream,
    err: &WireError,
) -> Result<(), quinn::WriteError> {
    send.write_all(&frame::encode_error(err)).await
}

/// Writes a success response frame: head and body, then the payload without copying it.
pub(crate) async fn write_response<T: serde::Serialize>(
    send: &mut SendStream,
    body: &T,
    payload: Bytes,
) -> Result<(), quinn::WriteError> {
    let head = frame::encode_response(body, payload.len());
    if payload.is_empty() {
        // Fails only on a stream already closed, which the write below reports.
        let _ = send.set_priority(quiver_quic::CONTROL_PRIORITY);
        send.write_all(&head).await
    } else {
        send.write_all_chunks(&mut [head, payload]).await
    }
}
