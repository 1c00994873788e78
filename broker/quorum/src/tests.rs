//! Three voters in one process, joined by an in-memory transport that can cut a voter
//! off, on real files in temp directories.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use quiver_metadata::{Applied, MetadataRecord, RegisterBroker};

use crate::network::{Transport, TransportError, TransportFuture};
use crate::{NodeId, Outcome, Quorum, QuorumError, QuorumOptions, Role};

/// Routes messages to the voters of this process; a cut voter neither sends nor
/// receives.
#[derive(Debug, Default)]
struct Switchboard {
    voters: RwLock<BTreeMap<NodeId, Quorum>>,
    cut: RwLock<BTreeSet<NodeId>>,
}

/// One voter's view of the switchboard (it knows who is sending).
#[derive(Debug)]
struct Line {
    from: NodeId,
    board: Arc<Switchboard>,
}

impl Transport for Line {
    fn call<'a>(
        &'a self,
        target: NodeId,
        _address: &'a str,
        message: Vec<u8>,
    ) -> TransportFuture<'a> {
        Box::pin(async move {
            let cut = {
                let cut = self.board.cut.read();
                cut.contains(&self.from) || cut.contains(&target)
            };
            if cut {
                return Err(TransportError {
                    reason: format!("{} to {target}: cut off", self.from),
                    maybe_delivered: false,
                });
            }
            let peer = self.board.voters.read().get(&target).cloned();
            match peer {
                Some(peer) => Ok(peer.handle(&message).await),
                None => Err(TransportError {
                    reason: format!("voter {target} is not running"),
                    maybe_delivered: false,
                }),
            }
        })
    }
}

struct Cluster {
    board: Arc<Switchboard>,
    dirs: BTreeMap<NodeId, tempfile::TempDir>,
    snapshot_every: u64,
}

fn voters() -> BTreeMap<NodeId, String> {
    (1..=3).map(|i| (i, format!("voter-{i}"))).collect()
}

impl Cluster {
    async fn start(snapshot_every: u64) -> Cluster {
        let mut cluster = Cluster {
            board: Arc::default(),
            dirs: BTreeMap::new(),
            snapshot_every,
        };
        for id in 1..=3 {
            cluster
                .dirs
                .insert(id, tempfile::tempdir().expect("tempdir"));
            cluster.run(id).await;
        }
        cluster
    }

    async fn run(&self, id: NodeId) -> Quorum {
        let mut options = QuorumOptions::new(id, voters(), format!("voter-{id}"));
        options.election_timeout_ms = (150, 300);
        options.heartbeat_ms = 50;
        options.snapshot_every = self.snapshot_every;
        options.propose_timeout = Duration::from_secs(5);
        let line = Arc::new(Line {
            from: id,
            board: Arc::clone(&self.board),
        });
        let quorum = Quorum::start(self.dirs[&id].path(), options, line)
            .await
            .expect("start");
        self.board.voters.write().insert(id, quorum.clone());
        quorum
    }

    fn voter(&self, id: NodeId) -> Quorum {
        self.board.voters.read()[&id].clone()
    }

    async fn stop(&self, id: NodeId) {
        let q = self.board.voters.write().remove(&id);
        if let Some(q) = q {
            q.shutdown().await;
        }
    }

    async fn leader(&self) -> NodeId {
        for _ in 0..200 {
            let running: Vec<Quorum> = self.board.voters.read().values().cloned().collect();
            for q in running {
                let s = q.status();
                if s.role == Role::Leader && !self.board.cut.read().contains(&s.node_id) {
                    return s.node_id;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no leader elected");
    }
}

fn register(id: u32, n: u64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBroker {
        broker_id: id,
        listener: format!("127.0.0.1:{}", 7000 + n),
        incarnation: n,
        peer_listener: None,
    })
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_proposed_on_a_follower_reaches_every_voter() {
    let cluster = Cluster::start(1000).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let committed = cluster
        .voter(follower)
        .propose(register(7, 1))
        .await
        .expect("propose");
    assert!(
        matches!(
            committed.outcome,
            Outcome::Applied(Applied::BrokerRegistered { broker_id: 7, .. })
        ),
        "{committed:?}"
    );
    // Applied on the proposer before propose returned.
    assert!(cluster.voter(follower).image().broker(7).is_some());
    for id in 1..=3 {
        let q = cluster.voter(id);
        wait_until("every voter applied it", || q.image().broker(7).is_some()).await;
    }
    // The follower knows a leader: the same one, unless a loaded machine delayed the
    // heartbeats past an election timeout meanwhile.
    let status = cluster.voter(follower).status();
    assert!(
        status.leader.is_some_and(|l| (1..=3).contains(&l)),
        "{status:?}"
    );
    assert_eq!(status.voters, (1..=3).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_is_committed_refused_everywhere_and_changes_nothing() {
    let cluster = Cluster::start(1000).await;
    cluster.leader().await;
    let committed = cluster
        .voter(1)
        .propose(MetadataRecord::AllocateProducerIds(
            quiver_metadata::AllocateProducerIds {
                broker_id: 42,
                first: 0,
                count: 10,
            },
        ))
        .await
        .expect("committed");
    assert!(
        matches!(committed.outcome, Outcome::Refused(_)),
        "{committed:?}"
    );
    assert_eq!(cluster.voter(1).image().next_producer_id(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_leader_elects_another_and_a_returning_voter_catches_up() {
    let cluster = Cluster::start(1000).await;
    let first = cluster.leader().await;
    cluster
        .voter(first)
        .propose(register(1, 1))
        .await
        .expect("propose");
    cluster.stop(first).await;
    let second = cluster.leader().await;
    assert_ne!(first, second);
    let survivor = (1..=3).find(|i| *i != first).expect("survivor");
    cluster
        .voter(survivor)
        .propose(register(2, 2))
        .await
        .expect("propose with two of three");
    // The old leader comes back from its files and learns what it missed.
    let back = cluster.run(first).await;
    assert!(
        back.image().broker(1).is_some(),
        "its own applied state survived"
    );
    wait_until("the returning voter caught up", || {
        back.image().broker(2).is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit_and_says_so() {
    let cluster = Cluster::start(1000).await;
    let leader = cluster.leader().await;
    let others: Vec<NodeId> = (1..=3).filter(|i| *i != leader).collect();
    for id in &others {
        cluster.board.cut.write().insert(*id);
    }
    let lonely = cluster.voter(others[0]);
    let mut options_short = lonely.clone();
    // A proposal from a voter cut off from everyone finds no leader it can reach.
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        options_short.propose_fast(register(9, 9)),
    )
    .await
    .expect("propose returns");
    assert!(matches!(err, Err(QuorumError::NoQuorum { .. })), "{err:?}");
    cluster.board.cut.write().clear();
    cluster
        .voter(others[0])
        .propose(register(9, 9))
        .await
        .expect("healed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_bring_a_far_behind_voter_up_to_date() {
    let cluster = Cluster::start(10).await;
    let leader = cluster.leader().await;
    let behind = (1..=3).find(|i| *i != leader).expect("follower");
    cluster.stop(behind).await;
    for n in 0..40 {
        cluster
            .voter(leader)
            .propose(register(1, n + 1))
            .await
            .expect("propose");
    }
    // The leader snapshotted and purged: the stopped voter's next entry is gone.
    let back = cluster.run(behind).await;
    wait_until("the stopped voter installed a snapshot", || {
        back.image().broker(1).map(|b| b.listener.as_str()) == Some("127.0.0.1:7040")
    })
    .await;
    assert!(
        back.status().snapshot_index.is_some_and(|i| i >= 10),
        "it caught up by a snapshot, not the log: {:?}",
        back.status()
    );
    // And restarting from that snapshot keeps the state.
    cluster.stop(behind).await;
    let again = cluster.run(behind).await;
    assert!(again.image().broker(1).is_some());
}

impl Quorum {
    /// `propose` with a short timeout, for tests that expect it to fail.
    async fn propose_fast(
        &mut self,
        record: MetadataRecord,
    ) -> Result<crate::Committed, QuorumError> {
        let mut options = (*self.options).clone();
        options.propose_timeout = Duration::from_secs(2);
        self.options = Arc::new(options);
        self.propose(record).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_from_any_voter_reach_the_leader_only() {
    let cluster = Cluster::start(1000).await;
    // Leadership may still move just after start; try until one leader hears both.
    for _ in 0..40 {
        let leader = cluster.leader().await;
        let follower = (1..=3).find(|id| *id != leader).expect("a follower");
        // A follower's heartbeat is carried to the leader; the leader's own is taken
        // in place.
        let carried = cluster.voter(follower).heartbeat(follower, 77).await;
        let own = cluster.voter(leader).heartbeat(leader, 5).await;
        let heard: Vec<(NodeId, u64)> = cluster
            .voter(leader)
            .heartbeats()
            .into_iter()
            .map(|(b, i, _)| (b, i))
            .collect();
        if carried.is_ok()
            && own.is_ok()
            && heard.contains(&(follower, 77))
            && heard.contains(&(leader, 5))
            && cluster.voter(leader).is_leader()
        {
            // A voter that does not lead takes none.
            assert!(!cluster.voter(follower).is_leader());
            assert!(!cluster.voter(follower).receive_heartbeat(9, 1));
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no leader heard the heartbeats of a follower and its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_joins_keeps_the_log_proposes_and_can_be_removed() {
    let mut cluster = Cluster::start(1000).await;
    let leader = cluster.leader().await;
    cluster
        .voter(leader)
        .propose(register(1, 1))
        .await
        .expect("before the join");
    cluster
        .dirs
        .insert(4, tempfile::tempdir().expect("tempdir"));
    let observer = cluster.run(4).await;
    // It gets what was committed before it joined, and what comes after.
    wait_until("the observer applied the earlier record", || {
        observer.image().broker(1).is_some()
    })
    .await;
    let status = cluster.voter(leader).status();
    assert_eq!(status.learners, BTreeSet::from([4]), "{status:?}");
    assert_eq!(status.voters, BTreeSet::from([1, 2, 3]), "{status:?}");
    assert_eq!(observer.status().role, Role::Learner);
    // It proposes through the leader and reads its own write.
    let committed = observer
        .propose(register(4, 2))
        .await
        .expect("observer proposes");
    assert!(matches!(committed.outcome, Outcome::Applied(_)));
    assert!(observer.image().broker(4).is_some());
    // Joining again (a restart) changes nothing.
    cluster.stop(4).await;
    let observer = cluster.run(4).await;
    assert_eq!(cluster.voter(leader).status().learners, BTreeSet::from([4]));
    // A voter can be neither removed nor joined as an observer.
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let err = cluster
        .voter(follower)
        .remove_observer(leader)
        .await
        .expect_err("a voter stays");
    assert!(err.to_string().contains("voter"), "{err}");
    // Removed (asked on a follower, carried to the leader), it hears nothing more.
    cluster
        .voter(follower)
        .remove_observer(4)
        .await
        .expect("removed");
    wait_until("the membership lost the observer", || {
        cluster.voter(leader).status().learners.is_empty()
    })
    .await;
    cluster
        .voter(leader)
        .propose(register(1, 9))
        .await
        .expect("after the removal");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        observer.image().broker(1).map(|b| b.listener.clone()),
        Some("127.0.0.1:7001".to_string()),
        "a removed observer gets no more entries"
    );
    // Removing it again is not an error.
    cluster
        .voter(leader)
        .remove_observer(4)
        .await
        .expect("idempotent");
}
