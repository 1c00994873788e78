//! Committing offsets for a group and reading them back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quiver_proto::ErrorCode;
use quiver_proto::api::{CommittedOffset, OffsetCommitRequest, OffsetFetchRequest, TopicPartition};

use super::session::Session;
use crate::client::GroupCall;
use crate::{Client, Error};

/// Sends commits as the member the session says this consumer is, or from outside the
/// group (no member, generation -1) when it is not a member: a consumer with assigned
/// partitions. Cheap to clone, so an asynchronous commit can own one.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    pub client: Client,
    pub group_id: String,
    pub session: Arc<Session>,
}

impl Committer {
    /// Commits `offsets`; answers that the member is behind raise the rejoin flag.
    pub async fn commit(&self, offsets: Vec<CommittedOffset>) -> Result<(), Error> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = match self.session.current() {
            Some((id, generation)) => (Some(id), generation),
            None => (None, -1),
        };
        let req = OffsetCommitRequest {
            group_id: self.group_id.clone(),
            member_id,
            generation,
            offsets,
        };
        match self
            .client
            .call_group(&self.group_id, &req, GroupCall::Retried)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                match e.code() {
                    Some(ErrorCode::ILLEGAL_GENERATION | ErrorCode::REBALANCE_IN_PROGRESS) => {
                        self.session.flag(generation, false)
                    }
                    Some(ErrorCode::UNKNOWN_MEMBER) => self.session.flag(generation, true),
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// The group's committed offsets for `partitions` (all of them with `None`);
    /// partitions without a commit are left out.
    pub async fn fetch(
        &self,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<Vec<CommittedOffset>, Error> {
        let req = OffsetFetchRequest {
            group_id: self.group_id.clone(),
            partitions,
        };
        Ok(self
            .client
            .call_group(&self.group_id, &req, GroupCall::Retried)
            .await?
            .offsets)
    }
}

/// A commit running in the background, from
/// [`Consumer::commit_async`](crate::Consumer::commit_async). Await it for the result,
/// or drop it: the commit goes on either way.
#[derive(Debug)]
pub struct CommitHandle {
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl CommitHandle {
    pub(crate) fn spawn(committer: Committer, offsets: Vec<CommittedOffset>) -> Self {
        CommitHandle {
            task: tokio::spawn(async move { committer.commit(offsets).await }),
        }
    }
}

impl Future for CommitHandle {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| {
                Err(Error::Transport {
                    api: "offset-commit",
                    reason: format!("the commit task ended before answering: {e}"),
                })
            })
        })
    }
}
