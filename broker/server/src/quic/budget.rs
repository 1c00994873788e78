//! The in-flight byte budgets request frames are read against.
//!
//! Three budgets bound the request bytes held in memory: one for the whole broker
//! (`limits.max_inflight_bytes`), one per client across its connections
//! (`limits.max_inflight_bytes_per_client`) and one per connection
//! (`limits.max_inflight_bytes_per_connection`). A frame does not reserve its declared
//! length up front: a client could declare giants and send nothing, and hold the whole
//! broker's budget by declaration alone. It reserves as its bytes arrive, in grants that
//! start at 64 KiB and double with what has arrived (so a frame holds at most about
//! twice what it has sent), taken from its connection's budget first and then from the
//! broker's. A connection that fills its own share waits on its own budget, not in the
//! broker's queue ahead of everyone else.
//!
//! Reserving in steps means partly read frames could between them fill a budget and
//! wait for each other; the read deadline of each frame ends such a wait (see the
//! listener), and a frame larger than its connection could ever hold is refused at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The first grant of every frame: most requests fit in it whole.
pub(crate) const FIRST_GRANT: usize = 64 * 1024;
/// The largest single grant, so a frame's reservation never runs far ahead of its bytes.
const MAX_GRANT: usize = 8 * 1024 * 1024;

/// The budget shared by one connection's request streams.
#[derive(Debug)]
pub(crate) struct ConnectionBudget {
    own: Arc<Semaphore>,
    /// The client's share, across all of its connections: many connections of one
    /// client together cannot take more than this of the broker's budget.
    client: Arc<Semaphore>,
    broker: Arc<Semaphore>,
    largest_frame: usize,
}

/// The budget is gone: the broker is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the in-flight budget is closed: the broker is shutting down")]
pub(crate) struct BudgetClosed;

impl ConnectionBudget {
    /// A connection's budget of `per_connection` bytes within its client's `client` (of
    /// `client_bytes`) within `broker` (of `broker_bytes`).
    pub fn new(
        broker: &Arc<Semaphore>,
        broker_bytes: usize,
        per_connection: usize,
        client: &Arc<Semaphore>,
        client_bytes: usize,
    ) -> Self {
        ConnectionBudget {
            own: Arc::new(Semaphore::new(per_connection.min(Semaphore::MAX_PERMITS))),
            client: Arc::clone(client),
            broker: Arc::clone(broker),
            largest_frame: per_connection.min(client_bytes).min(broker_bytes),
        }
    }

    /// The largest frame this connection could ever hold whole.
    pub fn largest_frame(&self) -> usize {
        self.largest_frame
    }

    /// An empty reservation for one frame, to grow as its bytes arrive.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            own_budget: Arc::clone(&self.own),
            client_budget: Arc::clone(&self.client),
            broker_budget: Arc::clone(&self.broker),
            own: None,
            client: None,
            broker: None,
            bytes: 0,
        }
    }
}

/// Bytes one frame holds of its connection's and the broker's budgets; dropping it gives
/// them back.
#[derive(Debug)]
pub(crate) struct Reservation {
    own_budget: Arc<Semaphore>,
    client_budget: Arc<Semaphore>,
    broker_budget: Arc<Semaphore>,
    own: Option<OwnedSemaphorePermit>,
    client: Option<OwnedSemaphorePermit>,
    broker: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Reservation {
    /// Bytes reserved so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How much to reserve next for a frame with `remaining` bytes not yet reserved.
    pub fn next_grant(&self, remaining: usize) -> usize {
        self.bytes.clamp(FIRST_GRANT, MAX_GRANT).min(remaining)
    }

    /// Reserves `more` bytes: of the connection's budget, then the client's, then the
    /// broker's.
    pub async fn grow(&mut self, more: usize) -> Result<(), BudgetClosed> {
        let n = u32::try_from(more).map_err(|_| BudgetClosed)?;
        let own = Arc::clone(&self.own_budget)
            .acquire_many_owned(n)
            .await
            .map_err(|_| BudgetClosed)?;
        let client = Arc::clone(&self.client_budget)
            .acquire_many_owned(n)
            .await
            .map_err(|_| BudgetClosed)?;
        let broker = Arc::clone(&self.broker_budget)
            .acquire_many_owned(n)
            .await
            .map_err(|_| BudgetClosed)?;
        merge(&mut self.own, own);
        merge(&mut self.client, client);
        merge(&mut self.broker, broker);
        self.bytes += more;
        Ok(())
    }
}

fn merge(held: &mut Option<OwnedSemaphorePermit>, more: OwnedSemaphorePermit) {
    match held {
        Some(p) => p.merge(more),
        None => *held = Some(more),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: usize = 1 << 20;

    fn unlimited() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))
    }

    #[test]
    fn a_clients_connections_share_its_budget() {
        let broker = Arc::new(Semaphore::new(64 * MIB));
        let client = Arc::new(Semaphore::new(MIB));
        let a = ConnectionBudget::new(&broker, 64 * MIB, 32 * MIB, &client, MIB);
        let b = ConnectionBudget::new(&broker, 64 * MIB, 32 * MIB, &client, MIB);
        assert_eq!(
            a.largest_frame(),
            MIB,
            "no frame may exceed the client's share"
        );
        let mut first = a.reservation();
        tokio_test_block_on(first.grow(MIB)).expect("room");
        let mut second = b.reservation();
        let blocked = tokio_test_block_on(async {
            tokio::time::timeout(Duration::from_millis(50), second.grow(FIRST_GRANT)).await
        });
        assert!(
            blocked.is_err(),
            "the client's other connection waits on the client's share"
        );
        drop(first);
        tokio_test_block_on(second.grow(FIRST_GRANT)).expect("room again");
        assert_eq!(broker.available_permits(), 64 * MIB - FIRST_GRANT);
    }

    #[test]
    fn grants_double_with_what_arrived() {
        let broker = Arc::new(Semaphore::new(64 * MIB));
        let budget = ConnectionBudget::new(&broker, 64 * MIB, 32 * MIB, &unlimited(), usize::MAX);
        let mut r = budget.reservation();
        let mut grants = Vec::new();
        let len = MIB;
        while r.bytes() < len {
            let g = r.next_grant(len - r.bytes());
            grants.push(g / 1024);
            tokio_test_block_on(r.grow(g)).expect("room");
        }
        assert_eq!(grants, [64, 64, 128, 256, 512]);
        assert_eq!(broker.available_permits(), 63 * MIB);
        drop(r);
        assert_eq!(broker.available_permits(), 64 * MIB);
    }

    #[test]
    fn a_full_connection_waits_on_its_own_budget_and_others_go_on() {
        let broker = Arc::new(Semaphore::new(64 * MIB));
        let greedy = ConnectionBudget::new(&broker, 64 * MIB, 16 * MIB, &unlimited(), usize::MAX);
        let other = ConnectionBudget::new(&broker, 64 * MIB, 16 * MIB, &unlimited(), usize::MAX);
        let mut held = greedy.reservation();
        tokio_test_block_on(held.grow(16 * MIB)).expect("room");
        let rt = runtime();
        rt.block_on(async {
            let mut more = greedy.reservation();
            let waited =
                tokio::time::timeout(Duration::from_millis(50), more.grow(FIRST_GRANT)).await;
            assert!(waited.is_err(), "the full connection must wait");
            let mut small = other.reservation();
            small
                .grow(FIRST_GRANT)
                .await
                .expect("another connection is served");
        });
        assert_eq!(greedy.largest_frame(), 16 * MIB);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
        runtime().block_on(f)
    }
}
