//! The accumulator's rules, driven synchronously with explicit instants.

use std::sync::Arc;
use std::time::Duration;

use quiver_proto::api::RoutedAppend;
use quiver_proto::batch::{self, Compression};
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::Semaphore;

use super::*;
use crate::RecordMetadata;

type Report = DeliveryFuture;

/// The report, if the record's batch has one yet.
fn try_report(report: &mut Report) -> Option<Result<RecordMetadata, Error>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(report).poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}

const PID: ProducerId = ProducerId { id: 9, epoch: 2 };

fn config() -> ProducerConfig {
    ProducerConfig {
        batch_size: 1024,
        linger: Duration::from_millis(5),
        ..Default::default()
    }
}

struct Rig {
    acc: Accumulator,
    memory: Arc<Semaphore>,
    now: Instant,
}

impl Rig {
    fn new(config: ProducerConfig) -> Rig {
        let identity = config.sequenced().then_some(PID);
        Rig {
            acc: Accumulator::new(config, identity, 3),
            memory: Arc::new(Semaphore::new(1 << 30)),
            now: Instant::now(),
        }
    }

    fn send(&mut self, route: Route, value: &[u8]) -> Report {
        self.send_to("t", route, 4, value).expect("appends").1
    }

    fn send_to(
        &mut self,
        topic: &str,
        route: Route,
        partitions: u32,
        value: &[u8],
    ) -> Result<(AppendOutcome, Report), Error> {
        let size = BatchBuilder::record_size(None, Some(value), &[]);
        let memory = Reserved::try_take(&self.memory, size as u32).expect("memory");
        let topic: Arc<str> = Arc::from(topic);
        let rec = Append {
            topic: &topic,
            route,
            partitions,
            timestamp: 1_000,
            key: None,
            value: Some(value),
            headers: &[],
            size,
            memory,
        };
        let now = self.now;
        self.acc.append(rec, || now)
    }

    fn drain(&mut self) -> Vec<SendJob> {
        self.acc.drain(self.now)
    }

    fn complete(&mut self, job: &SendJob, outcome: Result<Option<ProduceResponse>, Error>) {
        self.acc
            .complete(&job.topic, job.partition, job.id, outcome, self.now);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

fn ok(partition: u32, base: i64, count: i64) -> Result<Option<ProduceResponse>, Error> {
    Ok(Some(ProduceResponse {
        partition,
        base_offset: base,
        last_offset: base + count - 1,
        log_append_time: 0,
        log_start_offset: 0,
        duplicate: false,
        routed: Vec::new(),
    }))
}

fn broker_error(code: ErrorCode) -> Result<Option<ProduceResponse>, Error> {
    Err(Error::Broker {
        api: "produce",
        source: WireError::new(code, "test"),
    })
}

fn header(job: &SendJob) -> batch::BatchHeader {
    batch::validate(&job.payload).expect("valid batch")
}

fn delivered(rx: &mut Report) -> Result<RecordMetadata, Error> {
    try_report(rx).expect("a report was sent")
}

#[test]
fn a_batch_closes_by_size_and_is_sent_without_waiting_for_linger() {
    let mut rig = Rig::new(config());
    let value = [7u8; 400];
    let (first, _r1) = rig
        .send_to("t", Route::Partition(0), 4, &value)
        .expect("ok");
    assert!(first.opened && !first.closed);
    assert!(
        rig.drain().is_empty(),
        "one record under batch_size waits for linger"
    );
    let (second, _r2) = rig
        .send_to("t", Route::Partition(0), 4, &value)
        .expect("ok");
    assert!(!second.opened);
    // A third record would overflow 1024 bytes: the batch closes and a new one opens.
    let (third, _r3) = rig
        .send_to("t", Route::Partition(0), 4, &value)
        .expect("ok");
    assert!(third.closed && third.opened);
    let jobs = rig.drain();
    assert_eq!(jobs.len(), 1);
    assert_eq!(header(&jobs[0]).record_count, 2);
    assert!(jobs[0].payload.len() <= 1024);
}

#[test]
fn a_batch_closes_by_linger() {
    let mut rig = Rig::new(config());
    let _r = rig.send(Route::Partition(1), b"x");
    assert!(rig.drain().is_empty());
    assert_eq!(
        rig.acc.next_wakeup(),
        Some(rig.now + Duration::from_millis(5))
    );
    rig.advance(Duration::from_millis(4));
    assert!(rig.drain().is_empty());
    rig.advance(Duration::from_millis(1));
    let jobs = rig.drain();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].request.partition, Some(1));
}

#[test]
fn flushing_ignores_linger() {
    let mut rig = Rig::new(config());
    let _r = rig.send(Route::Partition(0), b"x");
    rig.acc.begin_flush();
    assert_eq!(rig.drain().len(), 1);
    rig.acc.end_flush();
}

#[test]
fn the_codec_is_stamped_in_every_batch() {
    for codec in Compression::ALL {
        let mut rig = Rig::new(ProducerConfig {
            compression: codec,
            ..config()
        });
        let _r = rig.send(Route::Partition(0), b"hello hello hello");
        rig.advance(Duration::from_millis(5));
        let jobs = rig.drain();
        assert_eq!(header(&jobs[0]).compression().expect("codec"), codec);
        let records = batch::decode_records(&jobs[0].payload).expect("decodes");
        assert_eq!(records[0].value.as_deref(), Some(&b"hello hello hello"[..]));
    }
}

#[test]
fn sequences_count_records_per_partition() {
    let mut rig = Rig::new(config());
    let _a = rig.send(Route::Partition(0), b"a");
    let _b = rig.send(Route::Partition(0), b"b");
    let _c = rig.send(Route::Partition(1), b"c");
    rig.advance(Duration::from_millis(5));
    let first = rig.drain();
    let _d = rig.send(Route::Partition(0), b"d");
    rig.advance(Duration::from_millis(5));
    let second = rig.drain();
    let seq = |jobs: &[SendJob], p: u32| {
        let job = jobs
            .iter()
            .find(|j| j.partition == Some(p))
            .expect("a job for p");
        let h = header(job);
        assert_eq!((h.producer_id, h.producer_epoch), (PID.id, PID.epoch));
        h.base_sequence
    };
    assert_eq!(seq(&first, 0), 0);
    assert_eq!(seq(&first, 1), 0);
    assert_eq!(
        seq(&second, 0),
        2,
        "partition 0 continues after its 2 records"
    );
}

#[test]
fn broker_routed_batches_carry_no_sequence() {
    let mut rig = Rig::new(config());
    let mut rx = rig.send(Route::Broker, b"x");
    let _y = rig.send(Route::Broker, b"y");
    rig.advance(Duration::from_millis(5));
    let jobs = rig.drain();
    assert_eq!(jobs[0].request.partition, None);
    assert_eq!(header(&jobs[0]).producer_id, -1);
    // The broker split the batch: one record to partition 1, one to partition 3. Which
    // record went where is not in the response, so neither is guessed.
    let share = |partition, base_offset| RoutedAppend {
        partition,
        base_offset,
        last_offset: base_offset,
        records: 1,
    };
    let resp = ProduceResponse {
        partition: 1,
        base_offset: 4,
        last_offset: 4,
        log_append_time: 0,
        log_start_offset: 0,
        duplicate: false,
        routed: vec![share(1, 4), share(3, 10)],
    };
    rig.complete(&jobs[0], Ok(Some(resp)));
    let first = delivered(&mut rx).expect("ok");
    assert_eq!((first.partition, first.offset), (UNKNOWN_PARTITION, -1));
}

#[test]
fn a_batch_routed_to_one_partition_gets_exact_offsets() {
    let mut rig = Rig::new(config());
    let mut x = rig.send(Route::Broker, b"x");
    let mut y = rig.send(Route::Broker, b"y");
    rig.advance(Duration::from_millis(5));
    let jobs = rig.drain();
    let mut resp = ok(2, 7, 2).expect("ok").expect("some");
    resp.routed = vec![RoutedAppend {
        partition: 2,
        base_offset: 7,
        last_offset: 8,
        records: 2,
    }];
    rig.complete(&jobs[0], Ok(Some(resp)));
    assert_eq!(delivered(&mut x).expect("ok").offset, 7);
    let second = delivered(&mut y).expect("ok");
    assert_eq!((second.partition, second.offset), (2, 8));
}

#[test]
fn in_flight_batches_per_partition_are_bounded() {
    let mut rig = Rig::new(ProducerConfig {
        max_in_flight_per_partition: 2,
        batch_size: 100,
        ..config()
    });
    let _reports: Vec<Report> = (0..3)
        .map(|_| rig.send(Route::Partition(0), &[1; 90]))
        .collect();
    rig.advance(Duration::from_millis(5));
    let jobs = rig.drain();
    assert_eq!(jobs.len(), 2);
    rig.complete(&jobs[0], ok(0, 0, 1));
    let more = rig.drain();
    assert_eq!(more.len(), 1);
    assert!(more[0].id > jobs[1].id);
}

/// Batch 1 fails with a retriable error while 2 and 3 are in flight; the broker refuses 2
/// and 3 as out of order. All three are retried with their original sequences, 1 alone
/// first, and nothing overtakes it.
#[test]
fn retries_keep_order_and_sequences() {
    let mut rig = Rig::new(ProducerConfig {
        batch_size: 100,
        ..config()
    });
    let mut reports: Vec<Report> = (0..3)
        .map(|i| rig.send(Route::Partition(0), &[i; 90]))
        .collect();
    rig.advance(Duration::from_millis(5));
    let sent = rig.drain();
    assert_eq!(sent.len(), 3);
    let seqs: Vec<i32> = sent.iter().map(|j| header(j).base_sequence).collect();
    assert_eq!(seqs, vec![0, 1, 2]);

    rig.complete(&sent[2], broker_error(ErrorCode::OUT_OF_ORDER_SEQUENCE));
    rig.complete(&sent[0], broker_error(ErrorCode::NOT_LEADER));
    rig.complete(&sent[1], broker_error(ErrorCode::OUT_OF_ORDER_SEQUENCE));
    assert!(
        reports.iter_mut().all(|r| try_report(r).is_none()),
        "nothing reported yet"
    );

    assert!(rig.drain().is_empty(), "backoff holds the retry");
    rig.advance(Duration::from_millis(100));
    let retry = rig.drain();
    assert_eq!(retry.len(), 1, "one at a time while recovering");
    assert_eq!(retry[0].id, sent[0].id);
    assert_eq!(
        retry[0].payload, sent[0].payload,
        "same bytes, same sequence"
    );

    rig.complete(&retry[0], ok(0, 0, 1));
    let rest = rig.drain();
    let ids: Vec<u64> = rest.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![sent[1].id, sent[2].id]);
    rig.complete(&rest[0], ok(0, 1, 1));
    rig.complete(&rest[1], ok(0, 2, 1));
    let offsets: Vec<i64> = reports
        .iter_mut()
        .map(|r| delivered(r).expect("delivered").offset)
        .collect();
    assert_eq!(offsets, vec![0, 1, 2]);
    assert!(rig.acc.is_empty());
}

/// Batches 0 and 1 fail (their answers lost) while 2 and 3 are acknowledged, so the
/// broker stored all four. Once 0's retry succeeds, 1 is retried, and new batches may
/// go only as far as keeps 1 among the last `max_in_flight` batches the broker stored:
/// otherwise the broker would no longer recognise 1's retry and refuse it as out of
/// order, which stops an idempotent producer.
#[test]
fn new_batches_wait_while_a_retry_would_fall_out_of_the_brokers_window() {
    let mut rig = Rig::new(ProducerConfig {
        max_in_flight_per_partition: 4,
        batch_size: 100,
        ..config()
    });
    let mut reports: Vec<Report> = (0..8)
        .map(|i| rig.send(Route::Partition(0), &[i; 90]))
        .collect();
    rig.advance(Duration::from_millis(5));
    let first = rig.drain();
    assert_eq!(first.len(), 4);
    rig.complete(&first[0], broker_error(ErrorCode::NOT_LEADER));
    rig.complete(&first[1], broker_error(ErrorCode::NOT_LEADER));
    rig.complete(&first[2], ok(0, 2, 1));
    rig.complete(&first[3], ok(0, 3, 1));

    rig.advance(Duration::from_millis(100));
    let retry = rig.drain();
    assert_eq!(retry.len(), 1, "one at a time while recovering");
    assert_eq!(retry[0].id, first[0].id);
    rig.complete(&retry[0], ok(0, 0, 1));

    // 1 is retried; of the new batches only one fits: the broker's last four would then
    // be 1, 2, 3 and 4.
    rig.advance(Duration::from_millis(100));
    let next = rig.drain();
    let ids: Vec<u64> = next.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], first[1].id);
    assert_eq!(
        header(&next[0]).base_sequence,
        1,
        "the retry keeps its sequence"
    );
    assert_eq!(header(&next[1]).base_sequence, 4);
    assert!(rig.drain().is_empty(), "the window is full");

    rig.complete(&next[0], ok(0, 1, 1));
    let rest = rig.drain();
    let seqs: Vec<i32> = rest.iter().map(|j| header(j).base_sequence).collect();
    assert_eq!(seqs, vec![5, 6, 7], "4 is the oldest unacknowledged now");
    rig.complete(&next[1], ok(0, 4, 1));
    for (job, offset) in rest.iter().zip(5..) {
        rig.complete(job, ok(0, offset, 1));
    }
    let offsets: Vec<i64> = reports
        .iter_mut()
        .map(|r| delivered(r).expect("delivered").offset)
        .collect();
    assert_eq!(offsets, (0..8).collect::<Vec<i64>>());
}

#[test]
fn a_batch_whose_leader_is_a_suspect_is_tried_again_at_the_first_steps_pace() {
    let mut rig = Rig::new(config());
    let mut rx = rig.send(Route::Partition(0), b"x");
    rig.advance(Duration::from_millis(5));
    let mut job = rig.drain().pop().expect("job");
    // Six failures in a row: another error would back off 100, 200, ... 1000 ms; a
    // suspect leader keeps the first step, so the new leader is tried 100 ms after.
    for _ in 0..6 {
        let unreachable = Err(Error::Unreachable {
            address: "10.0.0.1:7420".into(),
        });
        rig.complete(&job, unreachable);
        assert!(rig.drain().is_empty(), "held for the step");
        rig.advance(Duration::from_millis(100));
        job = rig.drain().pop().expect("tried again after one step");
    }
    rig.complete(&job, ok(0, 7, 1));
    assert_eq!(delivered(&mut rx).expect("delivered").offset, 7);
    // Another retriable error still backs off more each time.
    let mut rx = rig.send(Route::Partition(0), b"y");
    rig.advance(Duration::from_millis(5));
    let job = rig.drain().pop().expect("job");
    rig.complete(&job, broker_error(ErrorCode::NOT_LEADER));
    rig.advance(Duration::from_millis(100));
    let job = rig.drain().pop().expect("first retry after 100 ms");
    rig.complete(&job, broker_error(ErrorCode::NOT_LEADER));
    rig.advance(Duration::from_millis(100));
    assert!(rig.drain().is_empty(), "the second waits 200 ms");
    rig.advance(Duration::from_millis(100));
    let job = rig.drain().pop().expect("second retry");
    rig.complete(&job, ok(0, 8, 1));
    assert_eq!(delivered(&mut rx).expect("delivered").offset, 8);
}

#[test]
fn a_duplicate_response_is_success_with_the_stored_offsets() {
    let mut rig = Rig::new(config());
    let mut rx = rig.send(Route::Partition(0), b"x");
    rig.advance(Duration::from_millis(5));
    let job = rig.drain().pop().expect("job");
    let mut resp = ok(0, 41, 1).expect("ok").expect("some");
    resp.duplicate = true;
    rig.complete(&job, Ok(Some(resp)));
    assert_eq!(delivered(&mut rx).expect("ok").offset, 41);
}

#[test]
fn a_gap_with_nothing_earlier_pending_is_fatal() {
    let mut rig = Rig::new(config());
    let mut rx = rig.send(Route::Partition(0), b"x");
    rig.advance(Duration::from_millis(5));
    let job = rig.drain().pop().expect("job");
    rig.complete(&job, broker_error(ErrorCode::OUT_OF_ORDER_SEQUENCE));
    let err = delivered(&mut rx).expect_err("failed");
    assert_eq!(err.code(), Some(ErrorCode::OUT_OF_ORDER_SEQUENCE));
    let after = rig.send_to("t", Route::Partition(1), 4, b"y");
    assert!(matches!(after, Err(Error::ProducerFatal(_))));
}

#[test]
fn a_fenced_producer_stops() {
    let mut rig = Rig::new(config());
    let mut rx = rig.send(Route::Partition(0), b"x");
    rig.advance(Duration::from_millis(5));
    let job = rig.drain().pop().expect("job");
    rig.complete(&job, broker_error(ErrorCode::INVALID_PRODUCER_EPOCH));
    assert!(delivered(&mut rx).is_err());
    assert!(matches!(rig.acc.check_open(), Err(Error::ProducerFatal(_))));
}

#[test]
fn retries_stop_at_the_delivery_timeout() {
    let mut rig = Rig::new(ProducerConfig {
        idempotence: false,
        ..config()
    });
    let mut rx = rig.send(Route::Partition(0), b"x");
    rig.advance(Duration::from_millis(5));
    let job = rig.drain().pop().expect("job");
    rig.advance(Duration::from_secs(121));
    rig.complete(&job, broker_error(ErrorCode::BROKER_UNAVAILABLE));
    assert!(matches!(
        delivered(&mut rx),
        Err(Error::Timeout {
            what: "record delivery",
            ..
        })
    ));
    // Without sequences a failed batch does not poison the producer.
    assert!(rig.acc.check_open().is_ok());
}

#[test]
fn non_retriable_errors_fail_only_their_records_without_idempotence() {
    let mut rig = Rig::new(ProducerConfig {
        idempotence: false,
        ..config()
    });
    let mut rx = rig.send(Route::Partition(0), b"x");
    rig.advance(Duration::from_millis(5));
    let job = rig.drain().pop().expect("job");
    rig.complete(&job, broker_error(ErrorCode::RECORD_TOO_LARGE));
    assert_eq!(
        delivered(&mut rx).expect_err("failed").code(),
        Some(ErrorCode::RECORD_TOO_LARGE)
    );
    assert!(rig.acc.is_empty());
}

#[test]
fn keyless_records_stick_until_their_batch_closes() {
    let mut rig = Rig::new(ProducerConfig {
        batch_size: 400,
        ..config()
    });
    for _ in 0..2 {
        let _r = rig.send_to("t", Route::Sticky, 8, &[0; 100]).expect("ok");
    }
    rig.advance(Duration::from_millis(5));
    let first = rig.drain();
    assert_eq!(first.len(), 1, "both records share the sticky partition");
    assert_eq!(header(&first[0]).record_count, 2);
    let _r = rig.send_to("t", Route::Sticky, 8, &[0; 100]).expect("ok");
    rig.advance(Duration::from_millis(5));
    let second = rig.drain();
    assert_ne!(
        second[0].partition, first[0].partition,
        "the closed batch moved the sticky partition"
    );
}

#[test]
fn closing_refuses_records_and_drains_open_batches() {
    let mut rig = Rig::new(config());
    let _r = rig.send(Route::Partition(0), b"x");
    rig.acc.close();
    assert!(matches!(
        rig.send_to("t", Route::Partition(0), 4, b"y"),
        Err(Error::ProducerClosed)
    ));
    assert_eq!(rig.drain().len(), 1);
}

/// Batches of a steady stream come within bytes of each other: a new one gets room to
/// spare, and a full one's successor gets all of `batch_size`, so neither is regrown.
#[test]
fn a_new_batch_has_room_for_one_as_large_as_the_last() {
    let batch_size = 1 << 20;
    let full = batch_size - 700;
    assert_eq!(initial_capacity(full, 1100, batch_size), batch_size);
    assert_eq!(initial_capacity(40_000, 1100, batch_size), 50_000);
    assert!(initial_capacity(40_000, 1100, batch_size) > 40_000 + 1100);
    assert_eq!(
        initial_capacity(0, 1100, batch_size),
        2200,
        "the first batch"
    );
    assert_eq!(
        initial_capacity(0, 3 << 20, batch_size),
        batch_size,
        "never above"
    );
}

/// Appends 100 records of 1 KiB to partition 0 and drains them as one batch when its
/// linger ends.
fn fill_one_batch(rig: &mut Rig, byte: u8) -> SendJob {
    for _ in 0..100 {
        rig.send(Route::Partition(0), &[byte; 1024]);
    }
    rig.advance(Duration::from_millis(5));
    let mut jobs = rig.drain();
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

#[test]
fn an_acknowledged_batch_buffer_is_built_into_again_once_the_transport_lets_go() {
    let mut rig = Rig::new(ProducerConfig {
        batch_size: 128 * 1024,
        ..config()
    });
    let first = fill_one_batch(&mut rig, 1);
    let at = first.payload.as_ptr();
    let sent = first.payload.clone();
    rig.complete(&first, ok(0, 0, 100));
    drop(first);

    // The transport still holds the bytes (QUIC has not seen them acknowledged): the
    // next batch gets another buffer, and the sent bytes stay as they were.
    let second = fill_one_batch(&mut rig, 2);
    assert_ne!(second.payload.as_ptr(), at);
    // (The decoded records are slices of it, dropped at once so as not to hold it.)
    let ones = Some(&[1u8; 1024][..]);
    let intact = batch::decode_records(&sent).expect("intact");
    assert!(intact.iter().all(|r| r.value.as_deref() == ones));
    drop(intact);

    // Once it lets go, the first buffer is reused for the batch after (the second's
    // is still held this time).
    drop(sent);
    let held = second.payload.clone();
    rig.complete(&second, ok(0, 100, 100));
    drop(second);
    let third = fill_one_batch(&mut rig, 3);
    assert_eq!(third.payload.as_ptr(), at, "the first batch's buffer again");
    drop(held);
    let records = batch::decode_records(&third.payload).expect("valid batch");
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.value.as_deref() == Some(&[3u8; 1024][..]))
    );
}

#[test]
fn a_compressed_batch_hands_its_record_buffer_back_at_once() {
    let mut rig = Rig::new(ProducerConfig {
        batch_size: 128 * 1024,
        compression: Compression::Lz4,
        ..config()
    });
    let job = fill_one_batch(&mut rig, 4);
    // The records were compressed into a new buffer; the one they were written in is
    // free for the next batch straight away.
    let (free, waiting, bytes) = rig.acc.buffers.held();
    assert_eq!((free, waiting), (1, 0));
    assert!(bytes >= 100 * 1024);
    let records = batch::decode_records(&job.payload).expect("valid batch");
    assert_eq!(records.len(), 100);
    assert!(
        records
            .iter()
            .all(|r| r.value.as_deref() == Some(&[4u8; 1024][..]))
    );
}
