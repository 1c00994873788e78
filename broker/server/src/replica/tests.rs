//! The follower's catch-up against real logs, without a network: the leader's answer
//! (`divergence` and a read to the log end) and the follower's reaction
//! (`truncation_point`, `append_replicated`) in a loop, as a fetch session runs them.
//! The scenarios are Kafka's: a follower with records its old leader never got
//! committed (KIP-101), and two fast failovers in a row (KIP-279).

use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
use quiver_storage::{LogConfig, PartitionLog, ReadBound};

use super::follower::truncation_point;
use super::leader::divergence;

fn log() -> (tempfile::TempDir, PartitionLog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        sole_replica: false,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open");
    (dir, log)
}

/// Appends `values` as leader at `epoch`, one batch each.
fn write(log: &PartitionLog, epoch: i32, values: &[&str]) {
    log.set_leader_epoch(epoch).expect("epoch");
    for v in values {
        let mut b = BatchBuilder::new();
        b.push(0, None, Some(v.as_bytes()), &[]);
        log.append(&b.build(Compression::None, ProducerIdentity::NONE), 0)
            .expect("append");
    }
}

/// Every record value with its offset and batch epoch.
fn contents(log: &PartitionLog) -> Vec<(i64, i32, String)> {
    let read = log
        .read_with(log.log_start_offset(), 1 << 20, ReadBound::LogEnd)
        .expect("read");
    let mut out = Vec::new();
    for piece in quiver_proto::batch::split(&read.bytes) {
        let (header, batch) = piece.expect("batch");
        for r in quiver_proto::batch::decode_records(&batch).expect("records") {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            out.push((r.offset, header.partition_leader_epoch, value.into_owned()));
        }
    }
    out
}

/// Runs the fetch loop of `follower` against `leader` until it has nothing to fetch.
fn catch_up(follower: &PartitionLog, leader: &PartitionLog) {
    for _ in 0..20 {
        let offset = follower.log_end_offset();
        let last = follower.latest_epoch().unwrap_or(-1);
        if let Some((epoch, end)) = divergence(leader, last, offset) {
            let to = truncation_point(follower, epoch, end);
            follower.truncate_to(to).expect("truncate");
            continue;
        }
        let read = leader
            .read_with(offset, 1 << 20, ReadBound::LogEnd)
            .expect("read from the leader");
        if read.bytes.is_empty() {
            return;
        }
        follower
            .append_replicated(&read.bytes, 0)
            .expect("replicate");
    }
    panic!("the follower did not converge in 20 fetches");
}

#[test]
fn records_only_the_old_leader_had_are_truncated_not_kept() {
    // Both have 0..3 from epoch 0; the old leader (now follower) wrote 3..5 alone.
    let (_a, old) = log();
    let (_b, new) = log();
    write(&old, 0, &["a", "b", "c"]);
    catch_up(&new, &old);
    write(&old, 0, &["lost-1", "lost-2"]);
    // The other replica leads at epoch 1 and writes on.
    write(&new, 1, &["d"]);
    catch_up(&old, &new);
    assert_eq!(contents(&old), contents(&new));
    let values: Vec<String> = contents(&old).into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(values, ["a", "b", "c", "d"]);
}

#[test]
fn two_fast_failovers_leave_every_replica_with_the_last_leaders_log() {
    // KIP-279: A leads epoch 1 and writes x unreplicated; B leads epoch 2 and writes y
    // unreplicated; A leads epoch 3 (from its own log) and writes z. B must end with
    // A's log, not keep y at A's x offset.
    let (_a, a) = log();
    let (_b, b) = log();
    write(&a, 0, &["base"]);
    catch_up(&b, &a);
    write(&a, 1, &["x"]);
    write(&b, 2, &["y"]);
    write(&a, 3, &["z"]);
    catch_up(&b, &a);
    assert_eq!(contents(&b), contents(&a));
    let values: Vec<String> = contents(&b).into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(values, ["base", "x", "z"]);
    // The other way round too: a follower with a newer epoch than the leader knows
    // is trusted with nothing past the leader's log start... and converges.
    let (_c, c) = log();
    write(&c, 7, &["stale"]);
    catch_up(&c, &a);
    assert_eq!(contents(&c), contents(&a));
}

#[test]
fn a_follower_that_is_a_prefix_is_not_truncated() {
    let (_a, leader) = log();
    let (_b, follower) = log();
    write(&leader, 0, &["a", "b"]);
    catch_up(&follower, &leader);
    write(&leader, 1, &["c"]);
    assert_eq!(divergence(&leader, 0, 2), None);
    catch_up(&follower, &leader);
    assert_eq!(contents(&follower), contents(&leader));
    // An empty follower has nothing to diverge.
    assert_eq!(divergence(&leader, -1, 0), None);
}

/// A leader of `rp-0` on broker 1 with ten records, replicas 1, 2, 3 and ISR `isr`.
fn leading(isr: &[u32]) -> (tempfile::TempDir, crate::partition::Partition) {
    let (dir, log) = log();
    write(&log, 0, &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    let p = crate::partition::Partition::new("rp".into(), 0, log);
    p.set_role(
        &super::Placement {
            me: 1,
            leader: Some(1),
            leader_epoch: 1,
            partition_epoch: 1,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
        },
        0,
    );
    (dir, p)
}

fn progress(p: &crate::partition::Partition, follower: u32, log_end: i64) {
    if let super::Role::Leader(state) = &mut *p.replica.lock()
        && let Some(f) = state.followers.get_mut(&follower)
    {
        f.log_end = log_end;
    }
}

#[test]
fn the_high_watermark_counts_a_follower_proposed_into_the_isr() {
    let (_d, p) = leading(&[1, 2]);
    let hw = || p.log().expect("log").high_watermark();
    assert_eq!(hw(), 0, "no follower heard from yet");
    progress(&p, 2, 8);
    progress(&p, 3, 5);
    if let super::Role::Leader(state) = &mut *p.replica.lock() {
        state.joining = Some(3);
    }
    p.update_high_watermark();
    assert_eq!(
        hw(),
        5,
        "broker 3 is joining: nothing past what it has is committed"
    );
    if let super::Role::Leader(state) = &mut *p.replica.lock() {
        state.joining = None;
    }
    p.update_high_watermark();
    assert_eq!(hw(), 8);
}

#[tokio::test]
async fn acks_all_fails_when_the_isr_shrank_below_the_minimum_while_waiting() {
    let (_d, p) = leading(&[1]);
    // Alone in the ISR, the leader's high watermark is its log end: the records are
    // "replicated" to the ISR, but the ISR is one broker where two are needed.
    p.update_high_watermark();
    let err = p
        .await_replicated(10, 2, std::time::Duration::from_millis(100))
        .await
        .expect_err("below min.insync.replicas");
    assert!(
        matches!(err, crate::error::BrokerError::NotEnoughReplicas { .. }),
        "{err}"
    );
    p.await_replicated(10, 1, std::time::Duration::from_millis(100))
        .await
        .expect("one is enough when one is the minimum");
}

#[tokio::test]
async fn a_reopened_leader_stamps_its_leader_epoch() {
    let (dir, p) = leading(&[1, 2, 3]);
    let config = LogConfig {
        sole_replica: false,
        ..LogConfig::default()
    };
    p.reopen(dir.path().to_path_buf(), config)
        .await
        .expect("reopen");
    let mut b = BatchBuilder::new();
    b.push(0, None, Some(b"after".as_slice()), &[]);
    p.append_blocking(&b.build(Compression::None, ProducerIdentity::NONE), 0)
        .expect("append");
    let last = contents(&p.log().expect("log")).pop().expect("a record");
    assert_eq!(last, (10, 1, "after".to_string()), "epoch 1, as led");
}

/// The leader's ISR judgement in virtual time (`replica.lag.time.max.ms` = 10 s): a
/// follower that keeps reaching where the leader was stays in, one that falls behind
/// or goes silent is out once it has not caught up for longer than that.
#[test]
fn followers_leave_the_isr_only_after_lagging_longer_than_the_limit() {
    let (_d, p) = leading(&[1, 2, 3]);
    let lag_max = 10_000;
    let mut role = p.replica.lock();
    let super::Role::Leader(state) = &mut *role else {
        panic!("leads")
    };
    let start = 1_000_000;
    for f in [2, 3] {
        let progress = state.followers.get_mut(&f).expect("a follower");
        progress.caught_up_ms = start;
        progress.last_fetch_ms = start;
    }
    // The leader appends 100 records a second. Broker 2 fetches every 100 ms and each
    // fetch reaches where the leader ended at its previous one; broker 3 fetches as
    // often but stays 500 records behind the leader's end.
    let mut end = 0;
    for step in 1..=300 {
        let now = start + step * 100;
        let before = end;
        end += 10;
        state
            .followers
            .get_mut(&2)
            .expect("2")
            .fetched(before, end, now);
        state
            .followers
            .get_mut(&3)
            .expect("3")
            .fetched((end - 500).max(0), end, now);
        let lagging = state.lagging(now, lag_max);
        assert!(!lagging.contains(&2), "2 keeps up: {lagging:?}");
        // 3 never reaches where the leader was: out the moment the limit has passed.
        assert_eq!(
            lagging.contains(&3),
            now - start > lag_max,
            "at step {step}"
        );
    }
    let now = start + 300 * 100;
    assert_eq!(state.lagging(now, lag_max), vec![3], "3 fell behind");
    // Broker 2 goes silent: out only once the limit has passed since it last caught up.
    assert_eq!(state.lagging(now + lag_max - 100, lag_max), vec![3]);
    assert_eq!(state.lagging(now + lag_max + 200, lag_max), vec![2, 3]);
}
