//! Scenario tests: simulated consumers driving a coordinator in virtual time.

mod pending;
mod sim;

use std::collections::{BTreeMap, BTreeSet};

use crate::{CommittedOffset, LeaveRequest, TopicPartition};

use super::*;
use sim::*;

#[test]
fn three_members_share_six_partitions_evenly_with_every_strategy() {
    for assignor in ["range", "roundrobin", "cooperative-sticky"] {
        // With the initial delay, all three arrive before the first assignment.
        let mut sim = Sim::new(&[("t", 6)], 3_000);
        for name in ["a", "b", "c"] {
            sim.add(name, &["t"], assignor);
        }
        assert_eq!(sim.coord.state(GROUP), Some(GroupState::PreparingRebalance));
        sim.settle();
        assert_eq!(
            sim.generation(),
            1,
            "{assignor}: one rebalance for the whole fleet"
        );
        for name in ["a", "b", "c"] {
            assert_eq!(sim.held(name), 2, "{assignor}: {name}");
        }
        let description = sim.coord.describe(GROUP).expect("exists");
        assert_eq!(description.assignor.as_deref(), Some(assignor));
        assert_eq!(description.members.len(), 3);
    }
}

#[test]
fn members_joining_one_by_one_rebalance_each_time() {
    let mut sim = Sim::new(&[("t", 6)], 0);
    sim.add("a", &["t"], "roundrobin");
    assert_eq!(
        sim.held("a"),
        6,
        "a lone member without delay is answered at once"
    );
    assert_eq!(sim.generation(), 1);
    sim.add("b", &["t"], "roundrobin");
    sim.settle();
    assert_eq!((sim.held("a"), sim.held("b")), (3, 3));
    assert_eq!(sim.generation(), 2);
}

#[test]
fn an_idle_fourth_member_takes_over_when_one_leaves() {
    let mut sim = Sim::new(&[("t", 3)], 3_000);
    for name in ["a", "b", "c", "d"] {
        sim.add(name, &["t"], "range");
    }
    sim.settle();
    let idle: Vec<&str> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|n| sim.held(n) == 0)
        .collect();
    assert_eq!(idle, ["d"], "range sorts members by id and d comes last");
    let generation = sim.generation();

    sim.leave("a");
    sim.settle();
    assert!(sim.generation() > generation);
    for name in ["b", "c", "d"] {
        assert_eq!(sim.held(name), 1, "{name}");
    }
    assert_eq!(sim.coord.describe(GROUP).expect("exists").members.len(), 3);
}

#[test]
fn a_silent_member_expires_after_its_session_and_its_partitions_move() {
    let mut sim = Sim::new(&[("t", 6)], 3_000);
    for name in ["a", "b", "c"] {
        sim.add(name, &["t"], "roundrobin");
    }
    sim.settle();
    let generation = sim.generation();
    sim.crash("c");
    let crashed_at = sim.now;

    // Just before the session runs out, c is still a member.
    while sim.now + HEARTBEAT_EVERY < crashed_at + u64::from(SESSION) {
        sim.step(HEARTBEAT_EVERY);
    }
    assert_eq!(sim.coord.describe(GROUP).expect("exists").members.len(), 3);

    sim.step(HEARTBEAT_EVERY);
    sim.settle();
    assert_eq!(sim.coord.describe(GROUP).expect("exists").members.len(), 2);
    assert_eq!((sim.held("a"), sim.held("b")), (3, 3));
    assert_eq!(sim.generation(), generation + 1);
}

#[test]
fn heartbeats_during_a_rebalance_ask_members_to_rejoin() {
    let mut sim = Sim::new(&[("t", 2)], 0);
    sim.add("a", &["t"], "range");
    sim.add("b", &["t"], "range");
    let req = HeartbeatRequest {
        group_id: GROUP.into(),
        member_id: sim.member_id("a"),
        generation: 1,
    };
    let err = sim.coord.heartbeat(&req, sim.now).expect_err("rebalancing");
    assert!(
        matches!(err, GroupError::RebalanceInProgress { .. }),
        "{err}"
    );
    sim.settle();
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_after_its_rebalance_timeout() {
    let mut sim = Sim::new(&[("t", 4)], 0);
    sim.add("a", &["t"], "range");
    sim.add("b", &["t"], "range");
    sim.settle();
    // b keeps heartbeating but never rejoins (stuck in processing; under the eager
    // protocol it gave up its partitions when told to rejoin).
    let b = sim.member_id("b");
    sim.crash("b");
    sim.add("c", &["t"], "range");
    let started = sim.now;
    while sim.now < started + u64::from(REBALANCE) - HEARTBEAT_EVERY {
        sim.step(HEARTBEAT_EVERY);
        let req = HeartbeatRequest {
            group_id: GROUP.into(),
            member_id: b.clone(),
            generation: 2,
        };
        let _ = sim.coord.heartbeat(&req, sim.now);
        assert!(sim.clients["c"].ticket.is_some(), "c waits for b");
    }
    sim.step(HEARTBEAT_EVERY);
    sim.settle();
    let members: Vec<String> = sim
        .coord
        .describe(GROUP)
        .expect("exists")
        .members
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert!(!members.contains(&b));
    assert_eq!((sim.held("a"), sim.held("c")), (2, 2));
}

#[test]
fn commits_are_checked_against_member_and_generation() {
    let mut sim = Sim::new(&[("t", 2)], 0);
    sim.add("a", &["t"], "range");
    sim.add("b", &["t"], "range");
    sim.settle();
    let current = sim.generation();

    let stale = sim.commit(Some("a"), current - 1, 5).expect_err("stale");
    assert!(
        matches!(stale, GroupError::IllegalGeneration { .. }),
        "{stale}"
    );
    let records = sim.commit(Some("a"), current, 5).expect("current");
    assert_eq!(records.len(), 1);

    let outside = sim.commit(None, -1, 7).expect_err("members exist");
    assert!(
        matches!(outside, GroupError::GroupNotEmpty { .. }),
        "{outside}"
    );

    let req = CommitRequest {
        group_id: GROUP.into(),
        committer: Committer::Member {
            member_id: "nobody".into(),
            generation: current,
        },
        offsets: vec![],
    };
    let unknown = sim
        .coord
        .commit(req, sim.now, &sim.topics)
        .expect_err("unknown");
    assert!(
        matches!(unknown, GroupError::UnknownMember { .. }),
        "{unknown}"
    );

    let req = CommitRequest {
        group_id: GROUP.into(),
        committer: Committer::Outside,
        offsets: vec![CommittedOffset {
            partition: TopicPartition::new("t", 9),
            offset: 1,
            metadata: String::new(),
        }],
    };
    let missing = sim
        .coord
        .commit(req, sim.now, &sim.topics)
        .expect_err("no such partition");
    assert!(
        matches!(missing, GroupError::UnknownPartition { .. }),
        "{missing}"
    );
}

pub(super) fn join_req(client: &str, member_id: Option<String>, assignors: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: GROUP.into(),
        member_id,
        client_id: client.into(),
        topics: vec!["t".into()],
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        assignors: assignors.iter().map(|a| a.to_string()).collect(),
        owned: vec![],
    }
}

fn commit_req(member_id: &str, generation: i32) -> CommitRequest {
    CommitRequest {
        group_id: GROUP.into(),
        committer: Committer::Member {
            member_id: member_id.into(),
            generation,
        },
        offsets: vec![CommittedOffset {
            partition: TopicPartition::new("t", 0),
            offset: 3,
            metadata: "m".into(),
        }],
    }
}

pub(super) fn no_delay() -> GroupCoordinator {
    GroupCoordinator::new(CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..Default::default()
    })
}

#[test]
fn commits_wait_for_sync_but_are_allowed_while_others_rejoin() {
    let topics = BTreeMap::from([("t".to_string(), 2u32)]);
    let mut coord = no_delay();
    let JoinOutcome::Ready(a) = coord
        .join(join_req("a", None, &["range"]), 0, &topics)
        .unwrap()
    else {
        panic!("a lone member is answered at once");
    };
    let early = coord.commit(commit_req(&a.member_id, 1), 1, &topics);
    assert!(
        matches!(early, Err(GroupError::RebalanceInProgress { .. })),
        "a has not synced generation 1: {early:?}"
    );
    let sync = SyncRequest {
        group_id: GROUP.into(),
        member_id: a.member_id.clone(),
        generation: 1,
    };
    coord.sync(&sync, 2).unwrap();
    let synced = coord
        .commit(commit_req(&a.member_id, 1), 3, &topics)
        .unwrap();
    coord.complete_commit(&synced.ticket);

    // b's arrival starts a rebalance; a still owns its partitions until it rejoins and
    // must be able to commit what it processed.
    let pending = coord
        .join(join_req("b", None, &["range"]), 4, &topics)
        .unwrap();
    assert!(matches!(pending, JoinOutcome::Pending(_)));
    assert_eq!(coord.state(GROUP), Some(GroupState::PreparingRebalance));
    let rejoining = coord
        .commit(commit_req(&a.member_id, 1), 5, &topics)
        .unwrap();
    coord.complete_commit(&rejoining.ticket);
    assert_eq!(coord.fetch_offsets(GROUP, None)[0].offset, 3);
}

#[test]
fn cooperative_moves_revoke_first_and_assign_in_the_next_generation() {
    let mut sim = Sim::new(&[("t", 6)], 3_000);
    for name in ["a", "b", "c"] {
        sim.add(name, &["t"], "cooperative-sticky");
    }
    sim.settle();
    let before: BTreeMap<String, BTreeSet<TopicPartition>> = sim
        .clients
        .iter()
        .map(|(n, c)| (n.clone(), c.held.clone()))
        .collect();
    let first = sim.generation();

    // Every step of the simulation checks that no partition has two holders.
    sim.add("d", &["t"], "cooperative-sticky");
    sim.settle();
    assert_eq!(
        sim.generation(),
        first + 2,
        "one revoking and one assigning generation"
    );

    let in_generation = |g: i32| -> BTreeMap<String, BTreeSet<TopicPartition>> {
        sim.generations[&g]
            .iter()
            .map(|(id, a)| {
                let name = sim
                    .clients
                    .iter()
                    .find(|(_, c)| c.member_id.as_ref() == Some(id));
                (name.expect("a client").0.clone(), a.clone())
            })
            .collect()
    };
    let revoking = in_generation(first + 1);
    assert_eq!(revoking["d"].len(), 0, "d waits");
    let mut revoked = 0;
    for name in ["a", "b", "c"] {
        let kept = &revoking[name];
        assert!(
            kept.is_subset(&before[name]),
            "{name} only loses partitions"
        );
        revoked += before[name].len() - kept.len();
    }
    assert_eq!(revoked, 1, "only what d needs moves");

    let assigning = in_generation(first + 2);
    assert_eq!(assigning["d"].len(), 1);
    for name in ["a", "b", "c"] {
        assert_eq!(assigning[name], revoking[name], "{name} keeps what it kept");
    }
    let moved = assigning["d"].iter().next().expect("one partition");
    assert!(
        ["a", "b", "c"]
            .iter()
            .any(|n| before[*n].contains(moved) && !revoking[*n].contains(moved)),
        "d receives exactly the partition revoked a generation earlier"
    );
}

#[test]
fn cooperative_member_leaving_hands_over_at_once() {
    let mut sim = Sim::new(&[("t", 6)], 3_000);
    for name in ["a", "b", "c"] {
        sim.add(name, &["t"], "cooperative-sticky");
    }
    sim.settle();
    let first = sim.generation();
    let (a, b) = (sim.clients["a"].held.clone(), sim.clients["b"].held.clone());
    sim.leave("c");
    sim.settle();
    assert_eq!(
        sim.generation(),
        first + 1,
        "nothing to revoke, so no follow-up"
    );
    assert!(a.is_subset(&sim.clients["a"].held) && b.is_subset(&sim.clients["b"].held));
    assert_eq!((sim.held("a"), sim.held("b")), (3, 3));
}

#[test]
fn delete_and_reset_are_refused_while_members_exist() {
    let mut sim = Sim::new(&[("t", 2)], 0);
    sim.add("a", &["t"], "range");
    sim.settle();
    let generation = sim.generation();
    sim.commit(Some("a"), generation, 4).unwrap();

    let delete = sim.coord.delete(GROUP).expect_err("has members");
    assert!(
        matches!(delete, GroupError::GroupNotEmpty { .. }),
        "{delete}"
    );
    let reset = CommittedOffset {
        partition: TopicPartition::new("t", 0),
        offset: 0,
        metadata: String::new(),
    };
    let refused = sim
        .coord
        .reset_offsets(GROUP, vec![reset.clone()], sim.now, &sim.topics)
        .expect_err("has members");
    assert!(
        matches!(refused, GroupError::GroupNotEmpty { .. }),
        "{refused}"
    );
    assert!(matches!(
        sim.coord.check_resettable(GROUP),
        Err(GroupError::GroupNotEmpty { .. })
    ));

    sim.leave("a");
    assert_eq!(sim.coord.state(GROUP), Some(GroupState::Empty));
    let reset = sim
        .coord
        .reset_offsets(GROUP, vec![reset], sim.now, &sim.topics)
        .unwrap();
    assert_eq!(reset.records[0].value.as_ref().map(|v| v.offset), Some(0));
    sim.coord.complete_commit(&reset.ticket);
    let tombstones = sim.coord.delete(GROUP).unwrap();
    assert_eq!(
        tombstones,
        vec![OffsetRecord::tombstone(GROUP, TopicPartition::new("t", 0))]
    );
    assert!(matches!(
        sim.coord.describe(GROUP),
        Err(GroupError::UnknownGroup { .. })
    ));
}

#[test]
fn load_after_commits_restores_offsets() {
    let topics = BTreeMap::from([("t".to_string(), 3u32)]);
    let mut coord = no_delay();
    let mut log: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for (group, partition, offset) in [("g", 0, 10), ("g", 1, 20), ("h", 0, 5), ("g", 0, 11)] {
        let req = CommitRequest {
            group_id: group.into(),
            committer: Committer::Outside,
            offsets: vec![CommittedOffset {
                partition: TopicPartition::new("t", partition),
                offset,
                metadata: format!("at {offset}"),
            }],
        };
        let pending = coord.commit(req, 100, &topics).unwrap();
        coord.complete_commit(&pending.ticket);
        log.extend(pending.records.iter().map(OffsetRecord::encode));
    }
    log.extend(coord.delete("h").unwrap().iter().map(OffsetRecord::encode));

    let mut restarted = no_delay();
    restarted.load(
        log.iter()
            .map(|(k, v)| OffsetRecord::decode(k, v.as_deref()).unwrap()),
    );
    assert_eq!(
        restarted.fetch_offsets("g", None),
        coord.fetch_offsets("g", None)
    );
    let got: Vec<(u32, i64)> = restarted
        .fetch_offsets("g", None)
        .iter()
        .map(|c| (c.partition.partition, c.offset))
        .collect();
    assert_eq!(got, [(0, 11), (1, 20)]);
    let one = [TopicPartition::new("t", 1), TopicPartition::new("t", 2)];
    assert_eq!(restarted.fetch_offsets("g", Some(&one)).len(), 1);
    assert!(
        restarted.describe("h").is_err(),
        "deleted groups stay deleted"
    );
    let listed: Vec<String> = restarted.list().into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, ["g"]);
}

#[test]
fn a_member_sharing_no_assignor_with_the_group_is_refused() {
    let topics = BTreeMap::from([("t".to_string(), 2u32)]);
    let mut coord = no_delay();
    coord
        .join(join_req("a", None, &["range"]), 0, &topics)
        .unwrap();
    let err = coord
        .join(
            join_req("b", None, &["roundrobin", "cooperative-sticky"]),
            1,
            &topics,
        )
        .expect_err("nothing in common");
    assert!(matches!(err, GroupError::NoCommonAssignor { .. }), "{err}");
    assert!(err.to_string().contains("range"), "{err}");
    let unknown = coord
        .join(
            join_req("c", None, &["sticky-deluxe"]),
            2,
            &BTreeMap::<String, u32>::new(),
        )
        .expect_err("unknown to the broker");
    assert!(matches!(unknown, GroupError::NoCommonAssignor { .. }));
}

#[test]
fn the_leaders_first_shared_preference_wins() {
    let topics = BTreeMap::from([("t".to_string(), 2u32)]);
    let mut coord = GroupCoordinator::new(CoordinatorConfig::default());
    coord
        .join(
            join_req("a", None, &["cooperative-sticky", "range"]),
            0,
            &topics,
        )
        .unwrap();
    coord
        .join(join_req("b", None, &["range", "roundrobin"]), 0, &topics)
        .unwrap();
    let done = coord.poll(3_000, &topics);
    assert_eq!(done.len(), 2);
    for c in done {
        let response = c.result.unwrap();
        assert_eq!(response.assignor, "range");
        assert_eq!(response.generation, 1);
        assert!(response.leader.starts_with("a-"), "{}", response.leader);
    }
}

#[test]
fn more_partitions_trigger_a_rebalance() {
    let mut sim = Sim::new(&[("t", 2)], 0);
    sim.add("a", &["t"], "roundrobin");
    sim.add("b", &["t"], "roundrobin");
    sim.settle();
    let generation = sim.generation();
    sim.topics.insert("t".into(), 4);
    sim.settle();
    assert_eq!(sim.generation(), generation + 1);
    assert_eq!((sim.held("a"), sim.held("b")), (2, 2));
}

#[test]
fn next_deadline_is_the_earliest_session_expiry() {
    let topics = BTreeMap::from([("t".to_string(), 1u32)]);
    let mut coord = no_delay();
    assert_eq!(coord.next_deadline(), None);
    let JoinOutcome::Ready(a) = coord
        .join(join_req("a", None, &["range"]), 50, &topics)
        .unwrap()
    else {
        panic!("lone member");
    };
    let sync = SyncRequest {
        group_id: GROUP.into(),
        member_id: a.member_id,
        generation: a.generation,
    };
    coord.sync(&sync, 100).unwrap();
    assert_eq!(coord.next_deadline(), Some(100 + u64::from(SESSION)));
    assert!(coord.poll(100 + u64::from(SESSION) - 1, &topics).is_empty());
    assert_eq!(coord.state(GROUP), Some(GroupState::Stable));
    coord.poll(100 + u64::from(SESSION), &topics);
    // The expired member's group had no offsets, so it is forgotten.
    assert_eq!(coord.state(GROUP), None);
}

#[test]
fn requests_with_bad_fields_are_refused_with_reasons() {
    let topics = BTreeMap::from([("t".to_string(), 1u32)]);
    let mut coord = no_delay();
    let mut short = join_req("a", None, &["range"]);
    short.session_timeout_ms = 10;
    let err = coord.join(short, 0, &topics).expect_err("too short");
    assert!(err.to_string().contains("session timeout 10 ms"), "{err}");
    let mut nameless = join_req("a", None, &["range"]);
    nameless.group_id = String::new();
    assert!(matches!(
        coord.join(nameless, 0, &topics),
        Err(GroupError::InvalidGroupId { .. })
    ));
    let stranger = join_req("a", Some("ghost".into()), &["range"]);
    assert!(matches!(
        coord.join(stranger, 0, &topics),
        Err(GroupError::UnknownMember { .. })
    ));
}

/// What a randomly driven cooperative group may go through.
#[derive(Debug, Clone)]
enum Event {
    /// A new consumer joins, subscribed to `t`, `u` or both.
    Join(usize),
    Leave(usize),
    Crash(usize),
    /// Time passes (ms) while live clients heartbeat.
    Wait(u64),
    /// Topic `u` gains a partition.
    Grow,
}

fn event() -> impl proptest::strategy::Strategy<Value = Event> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..3usize).prop_map(Event::Join),
        1 => any::<usize>().prop_map(Event::Leave),
        1 => any::<usize>().prop_map(Event::Crash),
        3 => (0..4_000u64).prop_map(Event::Wait),
        1 => Just(Event::Grow),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever happens, no partition is ever held by two live consumers (checked after
    /// every join and sync), and once things calm down the group settles with every
    /// partition held by exactly one live consumer, balanced.
    #[test]
    fn cooperative_groups_never_share_a_partition(events in proptest::collection::vec(event(), 1..25)) {
        let subscriptions: [&[&str]; 3] = [&["t"], &["u"], &["t", "u"]];
        let mut sim = Sim::new(&[("t", 6), ("u", 3)], 0);
        let mut joined = 0;
        for event in events {
            let live: Vec<String> = sim
                .clients
                .iter()
                .filter(|(_, c)| c.alive)
                .map(|(n, _)| n.clone())
                .collect();
            match event {
                Event::Join(s) => {
                    joined += 1;
                    sim.add(&format!("c{joined:02}"), subscriptions[s], "cooperative-sticky");
                }
                Event::Leave(i) if !live.is_empty() => {
                    let name = &live[i % live.len()];
                    let member_id = sim.clients[name].member_id.clone();
                    sim.crash(name);
                    if let Some(member_id) = member_id {
                        let req = LeaveRequest { group_id: GROUP.into(), member_id };
                        // The group may have expired the member already.
                        let _ = sim.coord.leave(&req, sim.now);
                    }
                    sim.deliver();
                }
                Event::Crash(i) if !live.is_empty() => sim.crash(&live[i % live.len()]),
                Event::Wait(ms) => sim.step(ms),
                Event::Grow => {
                    *sim.topics.entry("u".into()).or_default() += 1;
                    sim.deliver();
                }
                Event::Leave(_) | Event::Crash(_) => {}
            }
        }
        if sim.clients.values().all(|c| !c.alive) {
            return Ok(());
        }
        // Long enough for crashed members to expire and any rebalance to time out.
        let calm = sim.now + u64::from(SESSION) + u64::from(REBALANCE);
        while sim.now < calm {
            sim.step(HEARTBEAT_EVERY);
        }
        sim.settle();

        let live: Vec<&Client> = sim.clients.values().filter(|c| c.alive).collect();
        let topics: BTreeSet<&String> = live.iter().flat_map(|c| &c.topics).collect();
        let expected: BTreeSet<TopicPartition> = topics
            .into_iter()
            .flat_map(|t| (0..sim.topics[t]).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect();
        let held: BTreeSet<TopicPartition> = live.iter().flat_map(|c| c.held.iter().cloned()).collect();
        proptest::prop_assert_eq!(held, expected);
        for giver in &live {
            for taker in &live {
                if giver.held.len() >= taker.held.len() + 2 {
                    proptest::prop_assert!(
                        !giver.held.iter().any(|tp| taker.topics.contains(&tp.topic)),
                        "unbalanced: {:?}", sim.coord.describe(GROUP)
                    );
                }
            }
        }
    }
}

#[test]
fn next_deadline_wakes_the_server_for_the_initial_delay_and_never_lies_in_the_past() {
    let topics = BTreeMap::from([("t".to_string(), 2u32)]);
    let mut coord = GroupCoordinator::new(CoordinatorConfig::default());
    let JoinOutcome::Pending(ticket) = coord
        .join(join_req("a", None, &["range"]), 0, &topics)
        .unwrap()
    else {
        panic!("the initial delay holds the first join");
    };
    assert_eq!(coord.next_deadline(), Some(3_000));
    assert!(coord.poll(2_999, &topics).is_empty());
    let done = coord.poll(3_000, &topics);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].ticket, ticket);
    let a = done[0].result.clone().unwrap();
    // Waiting for a's sync: its session runs out before its rebalance timeout.
    assert_eq!(coord.next_deadline(), Some(3_000 + u64::from(SESSION)));
    let sync = SyncRequest {
        group_id: GROUP.into(),
        member_id: a.member_id.clone(),
        generation: a.generation,
    };
    coord.sync(&sync, 4_000).unwrap();

    // b's join starts a rebalance that waits for a; the wake-up is a's deadline, ahead.
    let pending = coord
        .join(join_req("b", None, &["range"]), 5_000, &topics)
        .unwrap();
    assert!(matches!(pending, JoinOutcome::Pending(_)));
    assert!(coord.poll(5_000, &topics).is_empty());
    let next = coord.next_deadline().unwrap();
    assert_eq!(
        next,
        4_000 + u64::from(SESSION),
        "a's session, since a went quiet"
    );
    assert!(coord.poll(next - 1, &topics).is_empty());
    // a never rejoined: it is dropped and b's join completes alone.
    let done = coord.poll(next, &topics);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].result.as_ref().unwrap().members.len(), 1);
}

#[test]
fn unloading_a_moved_group_answers_its_parked_joins_and_keeps_the_others() {
    let topics = BTreeMap::from([("t".to_string(), 2u32)]);
    // The initial delay parks the first join.
    let mut coord = GroupCoordinator::new(CoordinatorConfig::default());
    let parked = match coord.join(join_req("a", None, &["range"]), 0, &topics) {
        Ok(JoinOutcome::Pending(ticket)) => ticket,
        other => panic!("the join should wait for the initial delay: {other:?}"),
    };
    let commit = |group: &str, offset: i64| CommitRequest {
        group_id: group.into(),
        committer: Committer::Outside,
        offsets: vec![CommittedOffset {
            partition: TopicPartition::new("t", 0),
            offset,
            metadata: String::new(),
        }],
    };
    let kept = coord.commit(commit("kept", 4), 0, &topics).unwrap();
    coord.complete_commit(&kept.ticket);
    // A group without members, moving too, with a commit still being appended.
    let in_flight = coord.commit(commit("moving", 9), 0, &topics).unwrap();

    let answers = coord.unload(|g| g == GROUP || g == "moving");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].ticket, parked);
    assert!(
        matches!(&answers[0].result, Err(GroupError::NotCoordinator { group_id }) if group_id == GROUP),
        "{:?}",
        answers[0].result
    );
    assert!(
        coord.describe(GROUP).is_err(),
        "the moved group is forgotten"
    );
    assert_eq!(coord.fetch_offsets("kept", None)[0].offset, 4);
    // The commit that was in flight settles into nothing here; the new coordinator
    // replays it from the log if it was appended.
    coord.complete_commit(&in_flight.ticket);
    assert!(coord.fetch_offsets("moving", None).is_empty());
    // Led here again later: its records are loaded like at a start.
    coord.load(in_flight.records);
    assert_eq!(coord.fetch_offsets("moving", None)[0].offset, 9);
}
