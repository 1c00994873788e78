//! Request handlers, one file per API family, and the dispatch that routes a frame to
//! its handler by API key.

use std::future::Future;

use bytes::Bytes;
use quinn::SendStream;
use quiver_proto::api::{self, ApiKey, Request};
use quiver_proto::frame::RequestFrame;
use quiver_proto::{ErrorCode, WireError};

use crate::error::BrokerError;
use crate::listener::{Context, write_error, write_response};

mod admin;
mod fetch;
mod filter;
mod group;
pub(crate) mod group_convert;
mod offsets;
mod plugin;
mod produce;
mod route;
mod subscribe;

/// Decodes the frame as its API's request, runs the handler, and writes the reply.
pub(crate) async fn dispatch(ctx: &Context, frame: RequestFrame, send: &mut SendStream) {
    let b = &ctx.broker;
    match frame.api {
        ApiKey::PRODUCE => produce::serve(ctx, frame, send).await,
        ApiKey::FETCH => unary(&frame, send, |r, _| fetch::handle(ctx, r)).await,
        ApiKey::SUBSCRIBE => subscribe::serve(ctx, frame, send).await,
        ApiKey::LIST_OFFSETS => unary(&frame, send, |r, _| offsets::handle(b, r)).await,
        ApiKey::METADATA => unary(&frame, send, |r, _| admin::metadata(b, r)).await,
        ApiKey::CREATE_TOPIC => unary(&frame, send, |r, _| admin::create(b, r)).await,
        ApiKey::DELETE_TOPIC => unary(&frame, send, |r, _| admin::delete(b, r)).await,
        ApiKey::LIST_TOPICS => unary(&frame, send, |r, _| admin::list(b, r)).await,
        ApiKey::DESCRIBE_TOPIC => unary(&frame, send, |r, _| admin::describe(b, r)).await,
        ApiKey::ALTER_TOPIC_CONFIG => unary(&frame, send, |r, _| admin::alter(b, r)).await,
        ApiKey::INIT_PRODUCER_ID => {
            unary(&frame, send, |r, _| produce::init_producer_id(b, r)).await
        }
        ApiKey::JOIN_GROUP => unary(&frame, send, |r, _| group::join(ctx, r)).await,
        ApiKey::SYNC_GROUP => unary(&frame, send, |r, _| group::sync(ctx, r)).await,
        ApiKey::HEARTBEAT => unary(&frame, send, |r, _| group::heartbeat(ctx, r)).await,
        ApiKey::LEAVE_GROUP => unary(&frame, send, |r, _| group::leave(ctx, r)).await,
        ApiKey::OFFSET_COMMIT => unary(&frame, send, |r, _| group::commit(ctx, r)).await,
        ApiKey::OFFSET_FETCH => unary(&frame, send, |r, _| group::fetch_offsets(ctx, r)).await,
        ApiKey::LIST_GROUPS => unary(&frame, send, |r, _| group::list(ctx, r)).await,
        ApiKey::DESCRIBE_GROUP => unary(&frame, send, |r, _| group::describe(ctx, r)).await,
        ApiKey::DELETE_GROUP => unary(&frame, send, |r, _| group::delete(ctx, r)).await,
        ApiKey::RESET_GROUP_OFFSETS => {
            unary(&frame, send, |r, _| group::reset_offsets(ctx, r)).await
        }
        ApiKey::PLUGIN_ADD => unary(&frame, send, |r, p| plugin::add(b, r, p)).await,
        ApiKey::PLUGIN_LIST => unary(&frame, send, |r, _| plugin::list(b, r)).await,
        ApiKey::PLUGIN_DESCRIBE => unary(&frame, send, |r, _| plugin::describe(b, r)).await,
        ApiKey::PLUGIN_REMOVE => unary(&frame, send, |r, _| plugin::remove(b, r)).await,
        ApiKey::PLUGIN_TEST => unary(&frame, send, |r, _| plugin::test(b, r)).await,
        ApiKey::PLUGIN_LOGS => unary(&frame, send, |r, _| plugin::logs(ctx, r)).await,
        other => {
            let err = WireError::new(
                ErrorCode::UNSUPPORTED_API,
                format!("API key {} is not served by this broker", other.0),
            );
            let _ = write_error(send, &err).await;
        }
    }
}

/// Decodes a request of type `R` from the frame, or says why it cannot be decoded.
pub(crate) fn decode<R: Request>(frame: &RequestFrame) -> Result<R, WireError> {
    if frame.version != R::VERSION {
        return Err(WireError::new(
            ErrorCode::UNSUPPORTED_VERSION,
            format!(
                "{} version {} is not supported; this broker speaks version {}",
                R::NAME,
                frame.version,
                R::VERSION
            ),
        ));
    }
    frame
        .decode::<R>()
        .map_err(|e| WireError::new(ErrorCode::CORRUPT_FRAME, e.to_string()))
}

/// The common shape: one request in, one response (with an optional payload) out.
async fn unary<R, F, Fut, Out>(frame: &RequestFrame, send: &mut SendStream, handler: F)
where
    R: Request,
    F: FnOnce(R, Bytes) -> Fut,
    Fut: Future<Output = Result<Out, BrokerError>>,
    Out: Into<Reply<R::Response>>,
{
    let reply = match decode::<R>(frame) {
        Ok(req) => handler(req, frame.payload.clone())
            .await
            .map(Into::into)
            .map_err(|e| {
                tracing::debug!(api = R::NAME, error = %e, "request failed");
                e.to_wire()
            }),
        Err(e) => Err(e),
    };
    let _ = match reply {
        Ok(Reply { body, payload }) => write_response(send, &body, payload).await,
        Err(err) => write_error(send, &err).await,
    };
}

/// A response body and the payload that follows it.
pub(crate) struct Reply<T> {
    pub body: T,
    pub payload: Bytes,
}

impl<T> From<T> for Reply<T> {
    fn from(body: T) -> Self {
        Reply {
            body,
            payload: Bytes::new(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// Keep the request types in scope for readers of the dispatch table.
#[allow(unused_imports)]
use api::{FetchRequest as _, ProduceRequest as _};
