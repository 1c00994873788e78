//! Network partitions between brokers, without root or netem: every inter-broker
//! packet goes through a UDP relay in the test process, which drops what crosses a cut.
//!
//! Each broker binds its inter-broker listener on a port of its own (`quorum_listen`)
//! but is known to the others — in the voters list, and so in the Raft membership and
//! the registered peer addresses — by its relay's port. A broker sends and receives on
//! its one listener socket, so the relay tells who sent a packet by its source port.
//! Packets from broker `a` to broker `b` arrive at `b`'s relay and go on to `b` from a
//! socket kept for `a`; `b`'s answers come back on that socket and return to `a` from
//! `b`'s relay. A cut `a → b` drops the first kind, a cut `b → a` the second. Clients
//! reach the brokers directly, so an isolated leader still hears its clients, as in the
//! partitions that matter most.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// The relays of a cluster and the cuts between its brokers.
pub(crate) struct Relay {
    cuts: Arc<Mutex<BTreeSet<(u32, u32)>>>,
    /// Broker id → the address the others reach it on (its relay).
    fronts: BTreeMap<u32, SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Relays for brokers `brokers` (id → the address its listener binds), running on a
    /// thread of their own so that they pass packets while the test blocks.
    pub(crate) fn start(brokers: &BTreeMap<u32, SocketAddr>) -> Relay {
        let cuts: Arc<Mutex<BTreeSet<(u32, u32)>>> = Arc::default();
        let sources: Arc<HashMap<SocketAddr, u32>> =
            Arc::new(brokers.iter().map(|(id, addr)| (*addr, *id)).collect());
        let mut fronts = BTreeMap::new();
        let mut sockets = Vec::new();
        for (id, real) in brokers {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a relay");
            socket.set_nonblocking(true).expect("nonblocking");
            fronts.insert(*id, socket.local_addr().expect("relay address"));
            sockets.push((*id, *real, socket));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&cuts);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            runtime.block_on(async move {
                for (id, real, socket) in sockets {
                    let front = Arc::new(UdpSocket::from_std(socket).expect("tokio socket"));
                    tokio::spawn(relay_to(
                        id,
                        real,
                        front,
                        Arc::clone(&sources),
                        Arc::clone(&shared),
                    ));
                }
                let _ = stopped.await;
            });
        });
        Relay {
            cuts,
            fronts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where the other brokers reach broker `id`.
    pub(crate) fn front(&self, id: u32) -> SocketAddr {
        self.fronts[&id]
    }

    /// Drops every packet from `from` to `to` (one way) from now on.
    pub(crate) fn cut(&self, from: u32, to: u32) {
        self.cuts.lock().expect("cuts").insert((from, to));
    }

    /// Cuts `alone` off from every other broker, both ways.
    pub(crate) fn isolate(&self, alone: u32) {
        for other in self.fronts.keys().filter(|o| **o != alone) {
            self.cut(alone, *other);
            self.cut(*other, alone);
        }
    }

    /// Removes every cut.
    pub(crate) fn heal(&self) {
        self.cuts.lock().expect("cuts").clear();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Carries packets to broker `to` (listening at `real`) that arrive at `front`, and its
/// answers back, each way unless cut.
async fn relay_to(
    to: u32,
    real: SocketAddr,
    front: Arc<UdpSocket>,
    sources: Arc<HashMap<SocketAddr, u32>>,
    cuts: Arc<Mutex<BTreeSet<(u32, u32)>>>,
) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = front.recv_from(&mut buf).await else {
            continue;
        };
        // A source that is no broker (none should come) is let through.
        let sender = sources.get(&from).copied().unwrap_or(0);
        if cuts.lock().expect("cuts").contains(&(sender, to)) {
            continue;
        }
        let upstream = match upstreams.get(&from) {
            Some(u) => Arc::clone(u),
            None => {
                let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                let socket = Arc::new(socket);
                upstreams.insert(from, Arc::clone(&socket));
                tokio::spawn(answer(
                    Arc::clone(&socket),
                    Arc::clone(&front),
                    from,
                    (to, sender),
                    Arc::clone(&cuts),
                ));
                socket
            }
        };
        let _ = upstream.send_to(&buf[..n], real).await;
    }
}

/// Carries broker `link.0`'s answers to `link.1` (at `back_to`) back through its relay.
async fn answer(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    back_to: SocketAddr,
    link: (u32, u32),
    cuts: Arc<Mutex<BTreeSet<(u32, u32)>>>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(n) = upstream.recv(&mut buf).await else {
            continue;
        };
        if cuts.lock().expect("cuts").contains(&link) {
            continue;
        }
        let _ = front.send_to(&buf[..n], back_to).await;
    }
}
