//! The member's standing in its group, shared between the consumer and its heartbeat
//! task: member id, generation, and whether the group asked it to rejoin.

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The generation while the member is not in one (before its first join, and while it
/// rejoins).
pub(crate) const NO_GENERATION: i32 = -1;

#[derive(Debug)]
struct Standing {
    member_id: Option<String>,
    generation: i32,
    /// The group wants this member to join again (rebalance, stale generation).
    rejoin: bool,
    /// The group no longer knows this member: whatever it held may be someone else's.
    lost: bool,
}

/// See the module docs. The heartbeat task only raises flags; the consumer acts on them
/// inside `poll`, so rebalance callbacks run on the application's task.
#[derive(Debug)]
pub(crate) struct Session {
    standing: Mutex<Standing>,
    /// Wakes a poll that waits for records when a flag is raised.
    wake: Notify,
}

impl Session {
    pub fn new() -> Self {
        Session {
            standing: Mutex::new(Standing {
                member_id: None,
                generation: NO_GENERATION,
                rejoin: false,
                lost: false,
            }),
            wake: Notify::new(),
        }
    }

    /// The member id and generation to put in requests, while the member is in a
    /// generation and not lost.
    pub fn current(&self) -> Option<(String, i32)> {
        let s = self.standing.lock();
        match &s.member_id {
            Some(id) if s.generation != NO_GENERATION && !s.lost => {
                Some((id.clone(), s.generation))
            }
            _ => None,
        }
    }

    pub fn member_id(&self) -> Option<String> {
        self.standing.lock().member_id.clone()
    }

    /// Whether the consumer must (re)join before reading: `(needed, lost)`.
    pub fn needs_join(&self) -> (bool, bool) {
        let s = self.standing.lock();
        (s.rejoin || s.lost || s.generation == NO_GENERATION, s.lost)
    }

    /// Records what an answer to a request made in `generation` said. Answers to
    /// requests of an earlier generation are ignored: the member has moved on.
    pub fn flag(&self, generation: i32, lost: bool) {
        let mut s = self.standing.lock();
        if s.generation != generation || generation == NO_GENERATION {
            return;
        }
        s.rejoin = true;
        s.lost |= lost;
        drop(s);
        self.wake.notify_one();
    }

    /// Asks for a join at the next poll, whatever the generation (a new subscription).
    pub fn request_rejoin(&self) {
        self.standing.lock().rejoin = true;
        self.wake.notify_one();
    }

    /// A join is about to be sent: flags are answered by it.
    pub fn begin_join(&self) {
        let mut s = self.standing.lock();
        s.generation = NO_GENERATION;
        s.rejoin = false;
    }

    pub fn joined(&self, member_id: &str, generation: i32) {
        let mut s = self.standing.lock();
        s.member_id = Some(member_id.to_string());
        s.generation = generation;
        s.lost = false;
    }

    /// Drops the member id so the next join starts afresh (after `UNKNOWN_MEMBER`, or
    /// after leaving).
    pub fn forget_member(&self) {
        let mut s = self.standing.lock();
        s.member_id = None;
        s.generation = NO_GENERATION;
        s.lost = false;
    }

    /// The member learned it was dropped (from a join, sync or commit answer).
    pub fn mark_lost(&self) {
        let mut s = self.standing.lock();
        s.lost = true;
        s.rejoin = true;
    }

    /// Returns once the group asked for a rejoin; at once when it already has.
    pub async fn rejoin_wanted(&self) {
        loop {
            let notified = self.wake.notified();
            {
                let s = self.standing.lock();
                if s.rejoin || s.lost {
                    return;
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_to_an_older_generation_are_ignored() {
        let s = Session::new();
        assert_eq!(s.needs_join(), (true, false));
        s.begin_join();
        s.joined("m-1", 4);
        assert_eq!(s.needs_join(), (false, false));
        s.flag(3, true);
        assert_eq!(
            s.needs_join(),
            (false, false),
            "a stale answer changes nothing"
        );
        s.flag(4, false);
        assert_eq!(s.needs_join(), (true, false));
        s.begin_join();
        assert_eq!(s.current(), None, "no generation while rejoining");
        s.joined("m-1", 5);
        s.flag(5, true);
        assert_eq!(s.needs_join(), (true, true));
        assert_eq!(s.current(), None, "a lost member commits nothing");
    }

    #[tokio::test]
    async fn a_raised_flag_wakes_a_waiting_poll() {
        let s = std::sync::Arc::new(Session::new());
        s.joined("m", 1);
        let waiter = tokio::spawn({
            let s = std::sync::Arc::clone(&s);
            async move { s.rejoin_wanted().await }
        });
        tokio::task::yield_now().await;
        s.flag(1, false);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task ran");
    }
}
