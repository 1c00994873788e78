//! Routes a request frame to the service by API key: decode the wire request, convert
//! it, call the service, convert the answer, write it. Nothing here decides anything
//! about topics, logs or plugins.

use std::future::Future;

use bytes::Bytes;
use quinn::SendStream;
use quiver_proto::api::{self, ApiKey, Request};
use quiver_proto::frame::RequestFrame;
use quiver_proto::{ErrorCode, WireError};

use super::convert::{self, group};
use super::errors::wire_error;
use super::listener::{Context, write_error, write_response};
use super::quota::ClientQuotas;
use crate::error::BrokerError;
use crate::service::types::Acks;

/// Decodes the frame as its API's request, calls the service, and writes the reply.
/// Fetched bytes are charged to the client's `quotas`, which may delay the answer.
pub(crate) async fn dispatch(
    ctx: &Context,
    quotas: &ClientQuotas,
    frame: RequestFrame,
    send: &mut SendStream,
) {
    let s = &ctx.service;
    match frame.api {
        ApiKey::PRODUCE => produce(ctx, frame, send).await,
        ApiKey::FETCH => {
            unary(&frame, send, |r: api::FetchRequest, _| async move {
                let out = s.fetch(convert::fetch(r)).await?;
                let (body, payload) = convert::fetched(out);
                quotas.throttle_fetch(payload.len()).await;
                Ok(Reply { body, payload })
            })
            .await;
        }
        ApiKey::SUBSCRIBE => subscribe(ctx, quotas, frame, send).await,
        ApiKey::LIST_OFFSETS => {
            unary(&frame, send, |r: api::ListOffsetsRequest, _| async move {
                let query = convert::offset_query(r.spec);
                let answer = s.list_offsets(&r.topic, r.partition, query).await?;
                Ok(convert::offset_answer(answer))
            })
            .await;
        }
        ApiKey::METADATA => {
            unary(&frame, send, |r: api::MetadataRequest, _| async move {
                Ok(convert::cluster(s.cluster_view(r.topics.as_deref())?))
            })
            .await;
        }
        ApiKey::CREATE_TOPIC => {
            unary(&frame, send, |r: api::CreateTopicRequest, _| async move {
                Ok(convert::topic(s.create_topic(convert::new_topic(r)).await?))
            })
            .await;
        }
        ApiKey::DELETE_TOPIC => {
            unary(&frame, send, |r: api::DeleteTopicRequest, _| async move {
                s.delete_topic(&r.name).await?;
                Ok(api::DeleteTopicResponse {})
            })
            .await;
        }
        ApiKey::LIST_TOPICS => {
            unary(&frame, send, |_: api::ListTopicsRequest, _| async move {
                Ok(convert::topic_list(s.list_topics()))
            })
            .await;
        }
        ApiKey::DESCRIBE_TOPIC => {
            unary(&frame, send, |r: api::DescribeTopicRequest, _| async move {
                Ok(convert::topic(s.describe_topic(&r.name)?))
            })
            .await;
        }
        ApiKey::ALTER_TOPIC_CONFIG => {
            unary(
                &frame,
                send,
                |r: api::AlterTopicConfigRequest, _| async move {
                    Ok(convert::topic(
                        s.alter_topic(&r.name, r.set, r.delete).await?,
                    ))
                },
            )
            .await;
        }
        ApiKey::INIT_PRODUCER_ID => {
            unary(
                &frame,
                send,
                |_: api::InitProducerIdRequest, _| async move {
                    Ok(convert::producer_id(s.init_producer_id().await?))
                },
            )
            .await;
        }
        ApiKey::JOIN_GROUP => {
            unary(&frame, send, |r: api::JoinGroupRequest, _| async move {
                let joined = s.join_group(group::join_request(r)).await?;
                Ok(group::join_response(joined))
            })
            .await;
        }
        ApiKey::SYNC_GROUP => {
            unary(&frame, send, |r: api::SyncGroupRequest, _| async move {
                let assignment = s.sync_group(&group::sync_request(r))?;
                Ok(group::sync_response(assignment))
            })
            .await;
        }
        ApiKey::HEARTBEAT => {
            unary(&frame, send, |r: api::HeartbeatRequest, _| async move {
                s.heartbeat(&group::heartbeat_request(r))?;
                Ok(api::HeartbeatResponse {})
            })
            .await;
        }
        ApiKey::LEAVE_GROUP => {
            unary(&frame, send, |r: api::LeaveGroupRequest, _| async move {
                s.leave_group(&group::leave_request(r))?;
                Ok(api::LeaveGroupResponse {})
            })
            .await;
        }
        ApiKey::OFFSET_COMMIT => {
            unary(&frame, send, |r: api::OffsetCommitRequest, _| async move {
                s.commit_offsets(group::commit_request(r)?).await?;
                Ok(api::OffsetCommitResponse {})
            })
            .await;
        }
        ApiKey::OFFSET_FETCH => {
            unary(&frame, send, |r: api::OffsetFetchRequest, _| async move {
                let partitions = group::fetch_partitions(&r);
                let offsets = s.fetch_offsets(&r.group_id, partitions.as_deref());
                Ok(group::offset_fetch_response(offsets))
            })
            .await;
        }
        ApiKey::LIST_GROUPS => {
            unary(&frame, send, |_: api::ListGroupsRequest, _| async move {
                Ok(group::list_response(s.list_groups()))
            })
            .await;
        }
        ApiKey::DESCRIBE_GROUP => {
            unary(&frame, send, |r: api::DescribeGroupRequest, _| async move {
                Ok(group::group_description(s.describe_group(&r.group_id)?))
            })
            .await;
        }
        ApiKey::DELETE_GROUP => {
            unary(&frame, send, |r: api::DeleteGroupRequest, _| async move {
                s.delete_group(&r.group_id).await?;
                Ok(api::DeleteGroupResponse {})
            })
            .await;
        }
        ApiKey::RESET_GROUP_OFFSETS => {
            unary(
                &frame,
                send,
                |r: api::ResetGroupOffsetsRequest, _| async move {
                    let to = group::reset_target(r.to);
                    let offsets = s.reset_group_offsets(&r.group_id, &r.topic, to).await?;
                    Ok(group::reset_response(offsets))
                },
            )
            .await;
        }
        ApiKey::PLUGIN_ADD => {
            unary(
                &frame,
                send,
                |r: api::PluginAddRequest, component| async move {
                    Ok(convert::plugin_added(
                        s.add_plugin(r.name, r.kind, component).await?,
                    ))
                },
            )
            .await;
        }
        ApiKey::PLUGIN_LIST => {
            unary(&frame, send, |_: api::PluginListRequest, _| async move {
                let plugins = s.list_plugins().into_iter().map(convert::plugin).collect();
                Ok(api::PluginListResponse { plugins })
            })
            .await;
        }
        ApiKey::PLUGIN_DESCRIBE => {
            unary(
                &frame,
                send,
                |r: api::PluginDescribeRequest, _| async move {
                    Ok(convert::plugin(s.describe_plugin(&r.name)?))
                },
            )
            .await;
        }
        ApiKey::PLUGIN_REMOVE => {
            unary(&frame, send, |r: api::PluginRemoveRequest, _| async move {
                let removed_versions = s.remove_plugin(r.name, r.version, r.force).await?;
                Ok(api::PluginRemoveResponse { removed_versions })
            })
            .await;
        }
        ApiKey::PLUGIN_TEST => {
            unary(&frame, send, |r: api::PluginTestRequest, _| async move {
                let trial = s.test_plugin(convert::plugin_test(r)).await?;
                Ok(convert::plugin_trial(trial))
            })
            .await;
        }
        ApiKey::PLUGIN_LOGS => {
            unary(&frame, send, |r: api::PluginLogsRequest, _| async move {
                let page = s.plugin_logs(&r.name, r.since_seq, r.follow).await?;
                Ok(convert::plugin_logs(page))
            })
            .await;
        }
        ApiKey::REOPEN_PARTITION => {
            unary(
                &frame,
                send,
                |r: api::ReopenPartitionRequest, _| async move {
                    let info = s.reopen_partition(&r.topic, r.partition).await?;
                    Ok(convert::partition_description(info))
                },
            )
            .await;
        }
        other => {
            let err = WireError::new(
                ErrorCode::UNSUPPORTED_API,
                format!("API key {} is not served by this broker", other.0),
            );
            let _ = write_error(send, &err).await;
        }
    }
}

/// Produce has its own shape because `acks=0` means no response at all.
async fn produce(ctx: &Context, frame: RequestFrame, send: &mut SendStream) {
    let req: api::ProduceRequest = match decode(&frame) {
        Ok(r) => r,
        Err(err) => {
            let _ = write_error(send, &err).await;
            return;
        }
    };
    let input = convert::produce(req, frame.payload.clone());
    let acks = input.acks;
    let result = ctx.service.produce(input).await;
    if acks == Acks::None {
        if let Err(e) = result {
            tracing::debug!(error = %e, "acks=0 produce failed; the client asked not to be told");
        }
        return;
    }
    let _ = match result {
        Ok(out) => write_response(send, &convert::produced(out), Bytes::new()).await,
        Err(e) => {
            tracing::debug!(error = %e, "produce failed");
            write_error(send, &wire_error(&e)).await
        }
    };
}

/// Subscribe answers with a stream of fetch responses, one frame per read, until the
/// client stops the stream, the connection closes, or the broker shuts down. The next
/// read is pulled only once the last frame is written, so QUIC flow control is the
/// backpressure.
async fn subscribe(
    ctx: &Context,
    quotas: &ClientQuotas,
    frame: RequestFrame,
    send: &mut SendStream,
) {
    let req: api::SubscribeRequest = match decode(&frame) {
        Ok(r) => r,
        Err(err) => {
            let _ = write_error(send, &err).await;
            return;
        }
    };
    let mut subscription = match ctx.service.subscribe(convert::subscribe(req)) {
        Ok(s) => s,
        Err(e) => {
            let _ = write_error(send, &wire_error(&e)).await;
            return;
        }
    };
    loop {
        let next = tokio::select! {
            next = subscription.next() => next,
            // The client stopped the stream or went away.
            _ = send.stopped() => return,
        };
        match next {
            Ok(Some(out)) => {
                let (body, payload) = convert::fetched(out);
                quotas.throttle_fetch(payload.len()).await;
                if write_response(send, &body, payload).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = write_error(send, &wire_error(&e)).await;
                return;
            }
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
                wire_error(&e)
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
