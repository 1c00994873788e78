//! Broker liveness as the controller judges it: which brokers to fence because their
//! heartbeats stopped, and which fenced brokers to let back because they resumed.
//!
//! Heartbeats are not records (a record per heartbeat would fill the log); the
//! controller, the leader of the metadata quorum, keeps them in memory here and writes
//! only its decisions, `FenceBroker` and `UnfenceBroker`. Time is given, never read, so
//! the decisions are tested in virtual time.
//!
//! A controller that has just taken over has heard nobody yet: every broker gets one
//! whole session from that moment before it can be fenced, so a change of controller
//! never fences a healthy cluster. Likewise a registration the controller sees for the
//! first time (a broker that joins, or starts a new run) counts as a sign of life: its
//! first heartbeat has a whole session to arrive. The one broker a new controller knows
//! more about is the controller it replaces: the election means that broker had been
//! silent for at least an election timeout already ([`Liveness::silent_since`]), so its
//! partitions are not left leaderless for a whole extra session.

use std::collections::BTreeMap;

use crate::ids::BrokerId;
use crate::image::MetadataImage;
use crate::record::{BrokerEpoch, MetadataRecord};

/// What one controller term has heard from the brokers.
#[derive(Debug, Clone)]
pub struct Liveness {
    session_timeout_ms: i64,
    /// When this controller started judging.
    since_ms: i64,
    /// The last heartbeat of each broker: the run it came from, and when.
    last: BTreeMap<BrokerId, (u64, i64)>,
    /// When this controller first saw each broker's current registration (its run);
    /// those in the image at its first judgement count from `since_ms`.
    registered: BTreeMap<BrokerId, (u64, i64)>,
    judged: bool,
    /// Brokers known, from before this controller judged, to have been silent since a
    /// time: the run, and the time.
    silent: BTreeMap<BrokerId, (u64, i64)>,
}

impl Liveness {
    /// A controller that starts judging at `now_ms`; a broker silent for longer than
    /// `session_timeout_ms` is fenced.
    pub fn new(session_timeout_ms: u64, now_ms: i64) -> Liveness {
        Liveness {
            session_timeout_ms: i64::try_from(session_timeout_ms).unwrap_or(i64::MAX),
            since_ms: now_ms,
            last: BTreeMap::new(),
            registered: BTreeMap::new(),
            judged: false,
            silent: BTreeMap::new(),
        }
    }

    /// Broker `broker_id`'s run `incarnation` sent a heartbeat at `at_ms`.
    /// Heartbeats from before this controller started judging are not counted.
    pub fn heartbeat(&mut self, broker_id: BrokerId, incarnation: u64, at_ms: i64) {
        if at_ms < self.since_ms {
            return;
        }
        let entry = self.last.entry(broker_id).or_insert((incarnation, at_ms));
        if entry.0 != incarnation || entry.1 <= at_ms {
            *entry = (incarnation, at_ms);
        }
    }

    /// Broker `broker_id`'s run `incarnation` is known to have been silent since
    /// `at_ms`, which may be before this controller started judging. Until a heartbeat
    /// of that run arrives, its session counts from then rather than from the start.
    pub fn silent_since(&mut self, broker_id: BrokerId, incarnation: u64, at_ms: i64) {
        self.silent.insert(broker_id, (incarnation, at_ms));
    }

    /// The records to write at `now_ms` for the brokers `image` registers: a fencing
    /// for each unfenced broker whose current run has been silent for a session, and an
    /// unfencing for each fenced one whose current run was heard within one. A run not
    /// heard yet counts from when this controller first saw it registered.
    pub fn decisions(&mut self, image: &MetadataImage, now_ms: i64) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        self.registered.retain(|id, _| image.broker(*id).is_some());
        let first_seen = if self.judged { now_ms } else { self.since_ms };
        self.judged = true;
        for reg in image.brokers() {
            let seen = self
                .registered
                .entry(reg.broker_id)
                .or_insert((reg.incarnation, first_seen));
            if seen.0 != reg.incarnation {
                *seen = (reg.incarnation, first_seen);
            }
            let registered_at = seen.1;
            let heard = self
                .last
                .get(&reg.broker_id)
                .filter(|(incarnation, _)| *incarnation == reg.incarnation)
                .map(|(_, at)| *at);
            let known_silent = self
                .silent
                .get(&reg.broker_id)
                .filter(|(incarnation, _)| *incarnation == reg.incarnation)
                .map(|(_, at)| *at);
            let silent_since = match (heard, known_silent) {
                (Some(at), _) => at,
                (None, Some(at)) => at,
                (None, None) => registered_at.max(self.since_ms),
            };
            let alive = now_ms.saturating_sub(silent_since) <= self.session_timeout_ms;
            let who = BrokerEpoch {
                broker_id: reg.broker_id,
                epoch: reg.epoch,
            };
            match (reg.fenced, alive) {
                (false, false) => out.push(MetadataRecord::FenceBroker(who)),
                // A fenced broker comes back only on a heartbeat, not on the grace a
                // new controller gives.
                (true, true) if heard.is_some() => out.push(MetadataRecord::UnfenceBroker(who)),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RegisterBroker;

    fn image_with(brokers: &[(BrokerId, u64)]) -> MetadataImage {
        let mut image = MetadataImage::empty();
        for (i, (id, incarnation)) in brokers.iter().enumerate() {
            let record = MetadataRecord::RegisterBroker(RegisterBroker {
                broker_id: *id,
                listener: format!("b{id}:1"),
                incarnation: *incarnation,
                peer_listener: None,
            });
            image.apply(i as u64 + 1, &record).expect("register");
        }
        image
    }

    fn apply_all(image: &mut MetadataImage, records: Vec<MetadataRecord>) {
        for r in records {
            let index = image.last_applied() + 1;
            image.apply(index, &r).expect("decision applies");
        }
    }

    #[test]
    fn a_silent_broker_is_fenced_after_one_session_and_back_on_its_next_heartbeat() {
        let mut image = image_with(&[(1, 10), (2, 20)]);
        let mut live = Liveness::new(1000, 0);
        // Heartbeats every 250 ms from both, then broker 2 goes quiet at t=500.
        for t in (0..=2000).step_by(250) {
            live.heartbeat(1, 10, t);
            if t <= 500 {
                live.heartbeat(2, 20, t);
            }
            let decided = live.decisions(&image, t);
            if t != 1750 {
                assert!(decided.is_empty(), "t={t}: {decided:?}");
            } else {
                assert_eq!(decided.len(), 1, "t={t}: {decided:?}");
                assert!(matches!(
                    &decided[0],
                    MetadataRecord::FenceBroker(BrokerEpoch { broker_id: 2, .. })
                ));
                apply_all(&mut image, decided);
            }
        }
        assert!(image.broker(2).expect("b2").fenced);
        assert!(live.decisions(&image, 2100).is_empty(), "fenced once");
        live.heartbeat(2, 20, 2200);
        let back = live.decisions(&image, 2200);
        assert!(matches!(&back[..], [MetadataRecord::UnfenceBroker(b)] if b.broker_id == 2));
    }

    #[test]
    fn a_broker_that_registers_late_gets_a_session_for_its_first_heartbeat() {
        let mut image = image_with(&[(1, 10)]);
        let mut live = Liveness::new(1000, 0);
        for t in (0..=5000).step_by(250) {
            live.heartbeat(1, 10, t);
            assert!(live.decisions(&image, t).is_empty(), "t={t}");
        }
        // Broker 2 joins at t=5000, long after this controller started judging.
        let join = MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: 2,
            listener: "b2:1".into(),
            incarnation: 20,
            peer_listener: None,
        });
        image.apply(image.last_applied() + 1, &join).expect("join");
        assert!(live.decisions(&image, 5100).is_empty(), "just registered");
        live.heartbeat(1, 10, 6000);
        assert!(
            live.decisions(&image, 6000).is_empty(),
            "within its session"
        );
        // Never heard, it is fenced once its session has passed.
        let decided = live.decisions(&image, 6101);
        assert!(
            matches!(&decided[..], [MetadataRecord::FenceBroker(b)] if b.broker_id == 2),
            "{decided:?}"
        );
    }

    #[test]
    fn the_controller_a_new_one_replaces_is_fenced_a_session_after_it_fell_silent() {
        let image = image_with(&[(1, 10), (2, 20), (3, 30)]);
        // Broker 3 led the quorum; its silence made broker 1 controller at t=5000,
        // after an election timeout of 500 ms.
        let mut live = Liveness::new(1000, 5000);
        live.silent_since(3, 30, 4500);
        for t in (5000..=5400).step_by(100) {
            live.heartbeat(1, 10, t);
            live.heartbeat(2, 20, t);
            assert!(live.decisions(&image, t).is_empty(), "t={t}");
        }
        let decided = live.decisions(&image, 5501);
        assert!(
            matches!(&decided[..], [MetadataRecord::FenceBroker(b)] if b.broker_id == 3),
            "{decided:?}"
        );
        // Had it been heard since, it would have stayed.
        let mut live = Liveness::new(1000, 5000);
        live.silent_since(3, 30, 4500);
        live.heartbeat(3, 30, 5200);
        live.heartbeat(1, 10, 5500);
        live.heartbeat(2, 20, 5500);
        assert!(live.decisions(&image, 5501).is_empty());
    }

    #[test]
    fn a_new_controller_gives_everyone_a_session_and_old_runs_do_not_count() {
        let image = image_with(&[(1, 10), (2, 20)]);
        let mut live = Liveness::new(1000, 5000);
        assert!(live.decisions(&image, 5900).is_empty(), "grace period");
        // Broker 2's heartbeat comes from an earlier run (incarnation 19): it does
        // not keep the current registration alive.
        live.heartbeat(1, 10, 5900);
        live.heartbeat(2, 19, 5900);
        let decided = live.decisions(&image, 6001);
        assert!(
            matches!(&decided[..], [MetadataRecord::FenceBroker(b)] if b.broker_id == 2),
            "{decided:?}"
        );
        // A heartbeat older than the last one heard changes nothing.
        live.heartbeat(1, 10, 100);
        assert!(
            live.decisions(&image, 6800)
                .iter()
                .all(|r| !matches!(r, MetadataRecord::FenceBroker(b) if b.broker_id == 1))
        );
    }
}
