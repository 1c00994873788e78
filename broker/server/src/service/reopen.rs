//! Reopening a partition without restarting the broker: the operator's way back for a
//! partition quarantined at start (its log could not be opened) or locked by a failed
//! write or fsync (a full disk, a failing device), once the cause is fixed.

use super::BrokerService;
use super::types::PartitionInfo;
use crate::auth::Caller;
use crate::error::BrokerError;
use quiver_metadata::{Operation, ResourceKind};

impl BrokerService {
    /// Re-runs recovery on one partition only: retires its current log (if it has one),
    /// opens the directory again and swaps the recovered log in, waking every fetch and
    /// subscription waiting on it. A healthy partition may be reopened too (it simply
    /// recovers again; appends racing with the reopen fail with `PartitionOffline` and
    /// may be retried). Fails with [`BrokerError::PartitionOffline`] naming the reason
    /// when the log still cannot be opened; the partition then stays offline.
    pub async fn reopen_partition(
        &self,
        caller: &Caller,
        topic: &str,
        partition: u32,
    ) -> Result<PartitionInfo, BrokerError> {
        // Re-running recovery is an operator's act: cluster administration.
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        let p = self.broker.reopen_partition(topic, partition).await?;
        tracing::info!(topic = %topic, partition, "partition reopened by an operator");
        Ok(self
            .broker
            .describe_partition(&self.broker.metadata.image(), &p))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
    use tokio_util::sync::CancellationToken;

    use crate::broker::partition_dir;
    use crate::config::BrokerConfig;
    use crate::error::BrokerError;
    use crate::service::BrokerService;
    use crate::service::types::{Acks, FetchInput, NewTopic, ProduceInput, SubscribeInput};

    async fn open(dir: &std::path::Path) -> BrokerService {
        BrokerService::open(
            BrokerConfig::dev(dir),
            "127.0.0.1:0".into(),
            CancellationToken::new(),
        )
        .await
        .expect("broker opens")
    }

    async fn create(s: &BrokerService, name: &str, partitions: u32) {
        s.create_topic(
            &crate::auth::Caller::anonymous(),
            NewTopic {
                name: name.into(),
                partitions,
                replication_factor: 1,
                configs: Default::default(),
            },
        )
        .await
        .expect("topic created");
    }

    fn batch(value: &str) -> Bytes {
        let mut b = BatchBuilder::new();
        b.push(0, None, Some(value.as_bytes()), &[]);
        b.build(Compression::None, ProducerIdentity::NONE)
    }

    fn produce_input(topic: &str, partition: u32, value: &str) -> ProduceInput {
        ProduceInput {
            topic: topic.into(),
            partition: Some(partition),
            acks: Acks::Leader,
            timeout: Duration::from_secs(5),
            batches: batch(value),
        }
    }

    fn fetch_input(topic: &str, partition: u32, offset: i64) -> FetchInput {
        FetchInput {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1 << 20,
            min_bytes: 1,
            max_wait: Duration::ZERO,
            filter: None,
        }
    }

    fn is_offline(e: &BrokerError, topic: &str, partition: u32) -> bool {
        matches!(e, BrokerError::PartitionOffline { topic: t, partition: p, .. } if t == topic && *p == partition)
    }

    /// Makes a partition's log unopenable the way recovery refuses: a directory where its
    /// first segment's log file should be.
    fn break_partition(dir: &std::path::Path, topic: &str, partition: u32) -> std::path::PathBuf {
        let log = partition_dir(dir, topic, partition).join(format!("{:020}.log", 0));
        std::fs::remove_file(&log).expect("segment file exists");
        std::fs::create_dir(&log).expect("directory in its place");
        log
    }

    #[tokio::test]
    async fn a_partition_that_cannot_open_is_quarantined_and_the_rest_serve() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = open(dir.path()).await;
            create(&s, "t", 2).await;
            create(&s, "other", 1).await;
            for p in 0..2 {
                s.produce(
                    &crate::auth::Caller::anonymous(),
                    produce_input("t", p, "before"),
                )
                .await
                .expect("produce");
            }
            s.close();
        }
        let bad = break_partition(dir.path(), "t", 1);
        let s = open(dir.path()).await;

        // Everything else serves.
        s.produce(
            &crate::auth::Caller::anonymous(),
            produce_input("other", 0, "x"),
        )
        .await
        .expect("other topic");
        s.produce(
            &crate::auth::Caller::anonymous(),
            produce_input("t", 0, "y"),
        )
        .await
        .expect("healthy partition");
        let read = s
            .fetch(&crate::auth::Caller::anonymous(), fetch_input("t", 0, 0))
            .await
            .expect("fetch");
        assert!(!read.records.is_empty());

        // The quarantined one fails every operation with the typed error and its reason.
        let e = s
            .produce(
                &crate::auth::Caller::anonymous(),
                produce_input("t", 1, "z"),
            )
            .await
            .expect_err("refused");
        assert!(is_offline(&e, "t", 1), "{e}");
        assert!(e.to_string().contains("quiver topic reopen t 1"), "{e}");
        let e = s
            .fetch(&crate::auth::Caller::anonymous(), fetch_input("t", 1, 0))
            .await
            .expect_err("refused");
        assert!(is_offline(&e, "t", 1), "{e}");
        let Err(e) = s
            .subscribe(
                &crate::auth::Caller::anonymous(),
                SubscribeInput {
                    topic: "t".into(),
                    partition: 1,
                    offset: 0,
                    max_bytes: 1 << 20,
                    filter: None,
                },
            )
            .await
        else {
            panic!("subscribe on an offline partition must fail");
        };
        assert!(is_offline(&e, "t", 1), "{e}");
        let e = s
            .list_offsets(
                &crate::auth::Caller::anonymous(),
                "t",
                1,
                crate::service::types::OffsetQuery::Latest,
            )
            .await
            .expect_err("refused");
        assert!(is_offline(&e, "t", 1), "{e}");
        let info = s
            .describe_topic(&crate::auth::Caller::anonymous(), "t")
            .expect("describe");
        assert_eq!(info.partitions[0].offline, None);
        let reason = info.partitions[1]
            .offline
            .clone()
            .expect("offline reported");
        assert!(!reason.is_empty());
        assert_eq!(info.partitions[1].high_watermark, -1);

        // A reopen before the fix keeps it offline, with the reason.
        let e = s
            .reopen_partition(&crate::auth::Caller::anonymous(), "t", 1)
            .await
            .expect_err("refused");
        assert!(is_offline(&e, "t", 1), "{e}");

        // Fixed (the segment is gone, so the log restarts empty at 0): reopen serves again.
        std::fs::remove_dir(&bad).expect("remove the directory");
        let info = s
            .reopen_partition(&crate::auth::Caller::anonymous(), "t", 1)
            .await
            .expect("reopen");
        assert_eq!(info.offline, None);
        s.produce(
            &crate::auth::Caller::anonymous(),
            produce_input("t", 1, "after"),
        )
        .await
        .expect("produce after reopen");
        let read = s
            .fetch(&crate::auth::Caller::anonymous(), fetch_input("t", 1, 0))
            .await
            .expect("fetch after reopen");
        assert!(!read.records.is_empty());
        assert_eq!(
            s.describe_topic(&crate::auth::Caller::anonymous(), "t")
                .expect("describe")
                .partitions[1]
                .offline,
            None
        );
    }

    #[tokio::test]
    async fn reopen_unlocks_a_poisoned_partition_and_wakes_a_waiting_fetch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path()).await;
        create(&s, "t", 1).await;
        s.produce(
            &crate::auth::Caller::anonymous(),
            produce_input("t", 0, "kept"),
        )
        .await
        .expect("produce");

        let partition = s.broker.partition("t", 0).expect("partition");
        partition.log().expect("online").fail_next_write();
        let e = s
            .produce(
                &crate::auth::Caller::anonymous(),
                produce_input("t", 0, "lost"),
            )
            .await
            .expect_err("refused");
        assert!(matches!(e, BrokerError::Storage { .. }), "{e}");
        let e = s
            .produce(
                &crate::auth::Caller::anonymous(),
                produce_input("t", 0, "refused"),
            )
            .await
            .expect_err("refused");
        assert!(
            e.to_string().contains("reopen"),
            "the lock names the way out: {e}"
        );

        // A long poll waiting past the end is woken by the reopen and sees the new log.
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut input = fetch_input("t", 0, 1);
                input.max_wait = Duration::from_secs(30);
                s.fetch(&crate::auth::Caller::anonymous(), input).await
            })
        };
        tokio::task::yield_now().await;

        let info = s
            .reopen_partition(&crate::auth::Caller::anonymous(), "t", 0)
            .await
            .expect("reopen");
        assert_eq!(info.offline, None);
        assert_eq!(info.high_watermark, 1, "the acknowledged record survives");
        let out = s
            .produce(
                &crate::auth::Caller::anonymous(),
                produce_input("t", 0, "after"),
            )
            .await
            .expect("unlocked");
        assert_eq!(out.base_offset, 1);
        let fetched = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiting fetch is answered")
            .expect("task")
            .expect("fetch");
        assert!(!fetched.records.is_empty());

        // Reopening a healthy partition is allowed: it recovers again, losing nothing.
        let info = s
            .reopen_partition(&crate::auth::Caller::anonymous(), "t", 0)
            .await
            .expect("healthy reopen");
        assert_eq!(info.high_watermark, 2);
    }

    #[tokio::test]
    async fn reopen_names_unknown_topics_and_partitions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path()).await;
        create(&s, "t", 1).await;
        assert!(matches!(
            s.reopen_partition(&crate::auth::Caller::anonymous(), "nope", 0)
                .await,
            Err(BrokerError::UnknownTopic(_))
        ));
        assert!(matches!(
            s.reopen_partition(&crate::auth::Caller::anonymous(), "t", 3)
                .await,
            Err(BrokerError::UnknownPartition { .. })
        ));
    }
}
