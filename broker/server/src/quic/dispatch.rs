//! Routes a request frame to the service by API key: decode the wire request, convert
//! it, call the service, convert the answer, write it. Nothing here decides anything
//! about topics, logs or plugins.

use std::future::Future;

use bytes::Bytes;
use quinn::SendStream;
use quiver_proto::api::{self, ApiKey, Request};
use quiver_proto::frame::RequestFrame;
use quiver_proto::{ErrorCode, WireError};

use super::convert::{self, access, group};
use super::errors::wire_error;
use super::listener::{Context, Session, write_error, write_response};
use super::quota::ClientQuotas;
use crate::auth::Caller;
use crate::error::BrokerError;
use crate::service::types::Acks;

/// Decodes the frame as its API's request, calls the service, and writes the reply.
/// Fetched bytes are charged to the client's `quotas`, which may delay the answer.
pub(crate) async fn dispatch(
    ctx: &Context,
    session: &Session,
    quotas: &ClientQuotas,
    frame: RequestFrame,
    send: &mut SendStream,
) -> Option<ErrorCode> {
    let caller = &session.caller();
    let s = &ctx.service;
    match frame.api {
        ApiKey::PRODUCE => produce(ctx, caller, frame, send).await,
        ApiKey::FETCH => {
            unary(&frame, send, |r: api::FetchRequest, _| async move {
                let out = s.fetch(caller, convert::fetch(r)).await?;
                let (body, payload) = convert::fetched(out);
                quotas.throttle_fetch(payload.len()).await;
                Ok(Reply { body, payload })
            })
            .await
        }
        ApiKey::SUBSCRIBE => subscribe(ctx, caller, quotas, frame, send).await,
        ApiKey::LIST_OFFSETS => {
            unary(&frame, send, |r: api::ListOffsetsRequest, _| async move {
                let query = convert::offset_query(r.spec);
                let answer = s.list_offsets(caller, &r.topic, r.partition, query).await?;
                Ok(convert::offset_answer(answer))
            })
            .await
        }
        ApiKey::METADATA => {
            unary(&frame, send, |r: api::MetadataRequest, _| async move {
                Ok(convert::cluster(
                    s.cluster_view(caller, r.topics.as_deref())?,
                ))
            })
            .await
        }
        ApiKey::CREATE_TOPIC => {
            unary(&frame, send, |r: api::CreateTopicRequest, _| async move {
                Ok(convert::topic(
                    s.create_topic(caller, convert::new_topic(r)).await?,
                ))
            })
            .await
        }
        ApiKey::DELETE_TOPIC => {
            unary(&frame, send, |r: api::DeleteTopicRequest, _| async move {
                s.delete_topic(caller, &r.name).await?;
                Ok(api::DeleteTopicResponse {})
            })
            .await
        }
        ApiKey::LIST_TOPICS => {
            unary(&frame, send, |_: api::ListTopicsRequest, _| async move {
                Ok(convert::topic_list(s.list_topics(caller)))
            })
            .await
        }
        ApiKey::DESCRIBE_TOPIC => {
            unary(&frame, send, |r: api::DescribeTopicRequest, _| async move {
                Ok(convert::topic(s.describe_topic(caller, &r.name)?))
            })
            .await
        }
        ApiKey::ALTER_TOPIC_CONFIG => {
            unary(
                &frame,
                send,
                |r: api::AlterTopicConfigRequest, _| async move {
                    Ok(convert::topic(
                        s.alter_topic(caller, &r.name, r.set, r.delete).await?,
                    ))
                },
            )
            .await
        }
        ApiKey::INIT_PRODUCER_ID => {
            unary(
                &frame,
                send,
                |_: api::InitProducerIdRequest, _| async move {
                    Ok(convert::producer_id(s.init_producer_id(caller).await?))
                },
            )
            .await
        }
        ApiKey::JOIN_GROUP => {
            unary(&frame, send, |r: api::JoinGroupRequest, _| async move {
                let joined = s.join_group(caller, group::join_request(r)).await?;
                Ok(group::join_response(joined))
            })
            .await
        }
        ApiKey::SYNC_GROUP => {
            unary(&frame, send, |r: api::SyncGroupRequest, _| async move {
                let assignment = s.sync_group(caller, &group::sync_request(r))?;
                Ok(group::sync_response(assignment))
            })
            .await
        }
        ApiKey::HEARTBEAT => {
            unary(&frame, send, |r: api::HeartbeatRequest, _| async move {
                s.heartbeat(caller, &group::heartbeat_request(r))?;
                Ok(api::HeartbeatResponse {})
            })
            .await
        }
        ApiKey::LEAVE_GROUP => {
            unary(&frame, send, |r: api::LeaveGroupRequest, _| async move {
                s.leave_group(caller, &group::leave_request(r))?;
                Ok(api::LeaveGroupResponse {})
            })
            .await
        }
        ApiKey::OFFSET_COMMIT => {
            unary(&frame, send, |r: api::OffsetCommitRequest, _| async move {
                s.commit_offsets(caller, group::commit_request(r)?).await?;
                Ok(api::OffsetCommitResponse {})
            })
            .await
        }
        ApiKey::OFFSET_FETCH => {
            unary(&frame, send, |r: api::OffsetFetchRequest, _| async move {
                let partitions = group::fetch_partitions(&r);
                let offsets = s.fetch_offsets(caller, &r.group_id, partitions.as_deref())?;
                Ok(group::offset_fetch_response(offsets))
            })
            .await
        }
        ApiKey::LIST_GROUPS => {
            unary(&frame, send, |_: api::ListGroupsRequest, _| async move {
                Ok(group::list_response(s.list_groups(caller)))
            })
            .await
        }
        ApiKey::DESCRIBE_GROUP => {
            unary(&frame, send, |r: api::DescribeGroupRequest, _| async move {
                Ok(group::group_description(
                    s.describe_group(caller, &r.group_id)?,
                ))
            })
            .await
        }
        ApiKey::DELETE_GROUP => {
            unary(&frame, send, |r: api::DeleteGroupRequest, _| async move {
                s.delete_group(caller, &r.group_id).await?;
                Ok(api::DeleteGroupResponse {})
            })
            .await
        }
        ApiKey::RESET_GROUP_OFFSETS => {
            unary(
                &frame,
                send,
                |r: api::ResetGroupOffsetsRequest, _| async move {
                    let to = group::reset_target(r.to);
                    let offsets = s
                        .reset_group_offsets(caller, &r.group_id, &r.topic, to)
                        .await?;
                    Ok(group::reset_response(offsets))
                },
            )
            .await
        }
        ApiKey::PLUGIN_ADD => {
            unary(
                &frame,
                send,
                |r: api::PluginAddRequest, component| async move {
                    Ok(convert::plugin_added(
                        s.add_plugin(
                            caller,
                            r.name,
                            r.kind,
                            convert::plugin_limits(r.limits),
                            component,
                        )
                        .await?,
                    ))
                },
            )
            .await
        }
        ApiKey::PLUGIN_LIST => {
            unary(&frame, send, |_: api::PluginListRequest, _| async move {
                let plugins = s
                    .list_plugins(caller)
                    .into_iter()
                    .map(convert::plugin)
                    .collect();
                Ok(api::PluginListResponse { plugins })
            })
            .await
        }
        ApiKey::PLUGIN_DESCRIBE => {
            unary(
                &frame,
                send,
                |r: api::PluginDescribeRequest, _| async move {
                    Ok(convert::plugin(s.describe_plugin(caller, &r.name)?))
                },
            )
            .await
        }
        ApiKey::PLUGIN_REMOVE => {
            unary(&frame, send, |r: api::PluginRemoveRequest, _| async move {
                let removed_versions = s.remove_plugin(caller, r.name, r.version, r.force).await?;
                Ok(api::PluginRemoveResponse { removed_versions })
            })
            .await
        }
        ApiKey::PLUGIN_TEST => {
            unary(&frame, send, |r: api::PluginTestRequest, _| async move {
                let trial = s.test_plugin(caller, convert::plugin_test(r)).await?;
                Ok(convert::plugin_trial(trial))
            })
            .await
        }
        ApiKey::PLUGIN_LOGS => {
            unary(&frame, send, |r: api::PluginLogsRequest, _| async move {
                let page = s
                    .plugin_logs(caller, &r.name, r.since_seq, r.follow)
                    .await?;
                Ok(convert::plugin_logs(page))
            })
            .await
        }
        ApiKey::AUTHENTICATE => {
            unary(&frame, send, |r: api::AuthenticateRequest, _| async move {
                let principal = s.authenticate(&r.token)?;
                tracing::debug!(%principal, "connection authenticated by token");
                session
                    .become_caller(Caller::client(principal.clone()))
                    .map_err(|e| BrokerError::Unauthorized(e.to_string()))?;
                Ok(api::AuthenticateResponse {
                    principal: principal.0,
                })
            })
            .await
        }
        ApiKey::ACCESS_RULE_ADD => {
            unary(&frame, send, |r: api::AccessRuleAddRequest, _| async move {
                s.add_access_rule(caller, access::rule(r.rule)?).await?;
                Ok(api::AccessRuleAddResponse {})
            })
            .await
        }
        ApiKey::ACCESS_RULE_REMOVE => {
            unary(
                &frame,
                send,
                |r: api::AccessRuleRemoveRequest, _| async move {
                    s.remove_access_rule(caller, access::rule(r.rule)?).await?;
                    Ok(api::AccessRuleRemoveResponse {})
                },
            )
            .await
        }
        ApiKey::REOPEN_PARTITION => {
            unary(
                &frame,
                send,
                |r: api::ReopenPartitionRequest, _| async move {
                    let info = s.reopen_partition(caller, &r.topic, r.partition).await?;
                    Ok(convert::partition_description(info))
                },
            )
            .await
        }
        ApiKey::ACCESS_RULE_LIST => {
            unary(
                &frame,
                send,
                |_: api::AccessRuleListRequest, _| async move {
                    let rules = s.list_access_rules(caller)?;
                    Ok(api::AccessRuleListResponse {
                        rules: rules.into_iter().map(access::rule_spec).collect(),
                    })
                },
            )
            .await
        }
        ApiKey::TOKEN_ISSUE => {
            unary(&frame, send, |r: api::TokenIssueRequest, _| async move {
                let expires = r.expires_in_ms.map(std::time::Duration::from_millis);
                let issued = s
                    .issue_token(caller, quiver_metadata::Principal(r.principal), expires)
                    .await?;
                Ok(api::TokenIssueResponse {
                    token_id: issued.token_id,
                    token: issued.token,
                })
            })
            .await
        }
        ApiKey::TOKEN_REVOKE => {
            unary(&frame, send, |r: api::TokenRevokeRequest, _| async move {
                s.revoke_token(caller, &r.token_id).await?;
                Ok(api::TokenRevokeResponse {})
            })
            .await
        }
        ApiKey::REASSIGN_PARTITION => {
            unary(
                &frame,
                send,
                |r: api::ReassignPartitionRequest, _| async move {
                    s.reassign_partition(caller, &r.topic, r.partition, r.replicas)
                        .await?;
                    Ok(api::ReassignPartitionResponse {})
                },
            )
            .await
        }
        ApiKey::UNREGISTER_BROKER => {
            unary(
                &frame,
                send,
                |r: api::UnregisterBrokerRequest, _| async move {
                    s.unregister_broker(caller, r.broker_id).await?;
                    Ok(api::UnregisterBrokerResponse {})
                },
            )
            .await
        }
        ApiKey::FIND_COORDINATOR => {
            unary(
                &frame,
                send,
                |r: api::FindCoordinatorRequest, _| async move {
                    let found = s.find_coordinator(caller, &r.group_id).await?;
                    Ok(api::FindCoordinatorResponse {
                        node_id: found.node_id,
                        address: found.address,
                        local: found.local,
                    })
                },
            )
            .await
        }
        ApiKey::CLUSTER_STATUS => {
            unary(&frame, send, |_: api::ClusterStatusRequest, _| async move {
                Ok(convert::cluster_status(s.cluster_status(caller)?))
            })
            .await
        }
        ApiKey::TOKEN_LIST => {
            unary(&frame, send, |_: api::TokenListRequest, _| async move {
                let tokens = s.list_tokens(caller)?;
                Ok(api::TokenListResponse {
                    tokens: tokens.into_iter().map(access::token_summary).collect(),
                })
            })
            .await
        }
        other => {
            let err = WireError::new(
                ErrorCode::UNSUPPORTED_API,
                format!("API key {} is not served by this broker", other.0),
            );
            let _ = write_error(send, &err).await;
            Some(err.code)
        }
    }
}

/// Produce has its own shape because `acks=0` means no response at all.
async fn produce(
    ctx: &Context,
    caller: &Caller,
    frame: RequestFrame,
    send: &mut SendStream,
) -> Option<ErrorCode> {
    let req: api::ProduceRequest = match decode(&frame) {
        Ok(r) => r,
        Err(err) => {
            let _ = write_error(send, &err).await;
            return Some(err.code);
        }
    };
    let input = convert::produce(req, frame.payload.clone());
    let acks = input.acks;
    let result = ctx.service.produce(caller, input).await;
    if acks == Acks::None {
        return result.err().map(|e| {
            tracing::debug!(error = %e, "acks=0 produce failed; the client asked not to be told");
            wire_error(&e).code
        });
    }
    match result {
        Ok(out) => {
            let _ = write_response(send, &convert::produced(out), Bytes::new()).await;
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "produce failed");
            let err = wire_error(&e);
            let _ = write_error(send, &err).await;
            Some(err.code)
        }
    }
}

/// Subscribe answers with a stream of fetch responses, one frame per read, until the
/// client stops the stream, the connection closes, or the broker shuts down. The next
/// read is pulled only once the last frame is written, so QUIC flow control is the
/// backpressure.
async fn subscribe(
    ctx: &Context,
    caller: &Caller,
    quotas: &ClientQuotas,
    frame: RequestFrame,
    send: &mut SendStream,
) -> Option<ErrorCode> {
    let req: api::SubscribeRequest = match decode(&frame) {
        Ok(r) => r,
        Err(err) => {
            let _ = write_error(send, &err).await;
            return Some(err.code);
        }
    };
    let mut subscription = match ctx.service.subscribe(caller, convert::subscribe(req)).await {
        Ok(s) => s,
        Err(e) => {
            let err = wire_error(&e);
            let _ = write_error(send, &err).await;
            return Some(err.code);
        }
    };
    loop {
        let next = tokio::select! {
            next = subscription.next() => next,
            // The client stopped the stream or went away.
            _ = send.stopped() => return None,
        };
        match next {
            Ok(Some(out)) => {
                let (body, payload) = convert::fetched(out);
                quotas.throttle_fetch(payload.len()).await;
                if write_response(send, &body, payload).await.is_err() {
                    return None;
                }
            }
            Ok(None) => return None,
            Err(e) => {
                let err = wire_error(&e);
                let _ = write_error(send, &err).await;
                return Some(err.code);
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
async fn unary<R, F, Fut, Out>(
    frame: &RequestFrame,
    send: &mut SendStream,
    handler: F,
) -> Option<ErrorCode>
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
    match reply {
        Ok(Reply { body, payload }) => {
            let _ = write_response(send, &body, payload).await;
            None
        }
        Err(err) => {
            let _ = write_error(send, &err).await;
            Some(err.code)
        }
    }
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
