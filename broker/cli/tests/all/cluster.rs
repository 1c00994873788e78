//! A three-broker cluster of `quiver serve` child processes on loopback: the metadata
//! quorum elects a leader, every broker sees every topic, partitions live on the brokers
//! they are placed on, and the metadata survives the SIGKILL of a broker (the other two
//! are a majority) and is caught up by that broker when it returns; a client given the
//! three as a bootstrap list moves to another when its own dies.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use quiver_proto::api::{ListOffsetsRequest, OffsetSpec};
use quiver_sdk::{Client, ClientOptions};

use crate::harness::{Ca, eventually};
use crate::relay::Relay;

/// One broker of the test cluster, as a child process.
pub(crate) struct Member {
    pub(crate) id: u32,
    config: PathBuf,
    child: Option<Child>,
    pub(crate) url: Option<String>,
}

pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    pub(crate) ca: PathBuf,
    signer: Ca,
    pub(crate) members: Vec<Member>,
    /// The voters entries, `"id@host:port"`, as every config lists them.
    voters: String,
    /// Where each broker's inter-broker listener binds (ids 1 to `MAX_BROKERS`).
    binds: BTreeMap<u32, std::net::SocketAddr>,
    /// With [`Cluster::with_relay`], the relays that can cut brokers apart.
    pub(crate) relay: Option<Relay>,
}

/// The voters, and the most brokers a test cluster grows to (observers added later).
const VOTERS: u32 = 3;
const MAX_BROKERS: u32 = 5;

/// A UDP port free right now on loopback (the quorum addresses must be known before
/// the brokers start).
pub(crate) fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// Where broker `id`'s log goes: appended to `broker-ID.log` in the directory
/// `QUIVER_TEST_BROKER_LOGS` names (each start appends, so a restarted broker's runs
/// follow each other; filter with `QUIVER_LOG`), or nowhere.
fn broker_log(id: u32) -> Stdio {
    let Some(dir) = std::env::var_os("QUIVER_TEST_BROKER_LOGS") else {
        return Stdio::null();
    };
    let path = PathBuf::from(dir).join(format!("broker-{id}.log"));
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(file) => Stdio::from(file),
        Err(e) => panic!("opening {}: {e}", path.display()),
    }
}

impl Cluster {
    /// Three voters whose inter-broker traffic goes straight between them.
    pub(crate) fn new() -> Cluster {
        Self::build(false)
    }

    /// Three voters whose inter-broker traffic passes through a [`Relay`], so that the
    /// test can cut them apart.
    pub(crate) fn with_relay() -> Cluster {
        Self::build(true)
    }

    fn build(relay: bool) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = Ca::new("quiver-test-cluster-ca");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, signer.cert.pem()).expect("write ca");
        let binds: BTreeMap<u32, std::net::SocketAddr> = (1..=MAX_BROKERS)
            .map(|id| (id, ([127, 0, 0, 1], free_udp_port()).into()))
            .collect();
        let relay = relay.then(|| Relay::start(&binds));
        let mut cluster = Cluster {
            dir,
            ca: ca_path,
            signer,
            members: Vec::new(),
            voters: String::new(),
            binds,
            relay,
        };
        let voters: Vec<String> = (1..=VOTERS)
            .map(|id| format!("\"{id}@{}\"", cluster.peer_address(id)))
            .collect();
        cluster.voters = voters.join(", ");
        for id in 1..=VOTERS {
            let member = cluster.member(id);
            cluster.members.push(member);
        }
        cluster
    }

    /// Where the other brokers reach broker `id`: its relay, or its listener.
    fn peer_address(&self, id: u32) -> std::net::SocketAddr {
        match &self.relay {
            Some(relay) => relay.front(id),
            None => self.binds[&id],
        }
    }

    /// Writes broker `id`'s certificate and config; a voter when `id` is among the
    /// first three, else an observer.
    fn member(&self, id: u32) -> Member {
        let dir = self.dir.path();
        let (cert, key) = self.signer.broker(&format!("broker-{id}"));
        let cert_path = dir.join(format!("broker-{id}.pem"));
        let key_path = dir.join(format!("broker-{id}.key"));
        std::fs::write(&cert_path, cert).expect("cert");
        std::fs::write(&key_path, key).expect("key");
        let config = dir.join(format!("broker-{id}.toml"));
        let mut addresses = format!("quorum_listen = \"{}\"\n", self.binds[&id]);
        if id > VOTERS {
            addresses += &format!("quorum_advertised = \"{}\"\n", self.peer_address(id));
        }
        let text = format!(
            "node_id = {id}\n\
             listen = \"127.0.0.1:{port}\"\n\
             data_dir = {data:?}\n\
             [tls]\nmode = \"files\"\ncert = {cert:?}\nkey = {key:?}\n\
             [cluster]\nvoters = [{voters}]\nca = {ca:?}\n{addresses}\
             election_timeout_ms = 300\nheartbeat_ms = 50\n\
             broker_heartbeat_ms = 100\nbroker_session_timeout_ms = 1000\n\
             leader_rebalance_interval_ms = 2000\n\
             [groups]\ninitial_rebalance_delay_ms = 50\nmin_session_timeout_ms = 500\n\
             offsets_topic_partitions = 3\n",
            data = dir.join(format!("data-{id}")),
            cert = cert_path,
            key = key_path,
            voters = self.voters,
            ca = self.ca,
            // Fixed, so a restarted broker is where the bootstrap list says.
            port = free_udp_port(),
        );
        std::fs::write(&config, text).expect("config");
        Member {
            id,
            config,
            child: None,
            url: None,
        }
    }

    /// Starts one more broker, an observer (not a voter), which joins the running
    /// cluster; returns its id.
    pub(crate) fn add_observer(&mut self) -> u32 {
        let id = u32::try_from(self.members.len()).expect("few") + 1;
        assert!(
            id <= MAX_BROKERS,
            "a test cluster has at most {MAX_BROKERS} brokers"
        );
        let member = self.member(id);
        self.members.push(member);
        self.start();
        id
    }

    /// Starts the members not running, then waits until each serves (a broker serves
    /// once the quorum has registered it, so they are started together).
    pub(crate) fn start(&mut self) {
        self.start_where(|_| true);
    }

    /// Starts broker `id` alone (if it is not running) and waits until it serves.
    pub(crate) fn start_one(&mut self, id: u32) {
        self.start_where(|m| m == id);
    }

    fn start_where(&mut self, chosen: impl Fn(u32) -> bool) {
        for m in self
            .members
            .iter_mut()
            .filter(|m| m.child.is_none() && chosen(m.id))
        {
            let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
                .arg("serve")
                .arg("--config")
                .arg(&m.config)
                .env("QUIVER_HOME", self.dir.path().join("home"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(broker_log(m.id))
                .spawn()
                .expect("spawn quiver serve");
            m.child = Some(child);
        }
        for m in self
            .members
            .iter_mut()
            .filter(|m| m.url.is_none() && chosen(m.id))
        {
            let child = m.child.as_mut().expect("spawned");
            let stdout = child.stdout.take().expect("stdout");
            let mut first = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut first)
                .expect("read the first line");
            let url = first
                .trim()
                .strip_prefix("quiver: listening on ")
                .unwrap_or_else(|| panic!("broker {} did not start: {first:?}", m.id));
            m.url = Some(url.to_string());
        }
    }

    /// SIGKILL: no flush, no goodbye.
    pub(crate) fn kill(&mut self, id: u32) {
        let m = &mut self.members[id as usize - 1];
        if let Some(mut child) = m.child.take() {
            child.kill().expect("kill");
            child.wait().expect("reap");
        }
        m.url = None;
    }

    /// The running brokers' URLs, comma-separated: a bootstrap list.
    pub(crate) fn bootstrap_list(&self) -> String {
        let urls: Vec<String> = self.members.iter().filter_map(|m| m.url.clone()).collect();
        urls.join(",")
    }

    /// A client given every running broker as its bootstrap list.
    pub(crate) async fn bootstrap(&self) -> Client {
        Client::connect(
            &self.bootstrap_list(),
            ClientOptions::new().ca_pem_file(&self.ca),
        )
        .await
        .expect("connect to the cluster")
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to broker `id`, if it runs.
    pub(crate) fn signal(&self, id: u32, signal: &str) {
        if let Some(child) = &self.members[id as usize - 1].child {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{signal} broker {id}");
        }
    }

    /// Runs the `quiver` CLI against the running brokers; returns whether it succeeded
    /// and what it printed (stdout, then stderr).
    pub(crate) fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["--broker", &self.bootstrap_list(), "--ca"])
            .arg(&self.ca)
            .args(args)
            .env("QUIVER_HOME", self.home())
            .output()
            .expect("run quiver");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Stops broker `id` with SIGTERM (an orderly shutdown) and waits.
    pub(crate) fn stop(&mut self, id: u32) {
        let m = &mut self.members[id as usize - 1];
        if let Some(mut child) = m.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
        m.url = None;
    }

    /// Stops every broker with SIGTERM (an orderly shutdown that flushes) and waits.
    pub(crate) fn stop_all(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                // A paused broker cannot act on SIGTERM.
                for signal in ["-CONT", "-TERM"] {
                    let _ = Command::new("kill")
                        .arg(signal)
                        .arg(child.id().to_string())
                        .status();
                }
                let _ = child.wait();
            }
            m.url = None;
        }
    }

    /// Broker `id`'s data directory.
    pub(crate) fn data_dir(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("data-{id}"))
    }

    /// The `QUIVER_HOME` the brokers and CLI runs of this cluster use.
    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub(crate) async fn client(&self, id: u32) -> Client {
        let url = self.members[id as usize - 1].url.clone().expect("running");
        Client::connect(&url, ClientOptions::new().ca_pem_file(&self.ca))
            .await
            .expect("client connects")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

async fn topic_names(client: &Client) -> BTreeSet<String> {
    client
        .admin()
        .list_topics()
        .await
        .map(|topics| topics.into_iter().map(|t| t.name).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_share_metadata_place_partitions_and_survive_losing_one() {
    let mut cluster = Cluster::new();
    cluster.start();

    // A topic created on broker 1 is seen by broker 3, its partitions spread over all.
    let one = cluster.client(1).await;
    one.admin()
        .create_topic("spread", 3, 1, BTreeMap::new())
        .await
        .expect("create on broker 1");
    let three = cluster.client(3).await;
    eventually(10, "broker 3 sees the topic", || async {
        topic_names(&three).await.contains("spread")
    })
    .await;
    let described = three
        .admin()
        .describe_topic("spread")
        .await
        .expect("describe");
    let leaders: BTreeSet<u32> = described.partitions.iter().map(|p| p.leader).collect();
    assert_eq!(leaders, BTreeSet::from([1, 2, 3]), "{described:?}");

    // The cluster's status, as broker 3 sees it: three voters with a leader, three
    // registered brokers, nothing offline.
    let status = three.admin().cluster_status().await.expect("status");
    let quorum = status.quorum.as_ref().expect("a quorum");
    assert_eq!(quorum.voters, [1, 2, 3], "{status:?}");
    assert!(
        quorum.leader.is_some_and(|l| (1..=3).contains(&l)),
        "{status:?}"
    );
    let brokers: BTreeSet<u32> = status.brokers.iter().map(|b| b.broker_id).collect();
    assert_eq!(brokers, BTreeSet::from([1, 2, 3]), "{status:?}");
    assert!(status.partitions >= 3, "{status:?}");
    assert!(
        status.offline.is_empty() && status.under_replicated.is_empty(),
        "{status:?}"
    );

    // Each partition is served by its leader, and another broker says who leads it.
    for p in &described.partitions {
        let leader = cluster.client(p.leader).await;
        leader
            .admin()
            .list_offsets("spread", p.partition, OffsetSpec::Latest)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "broker {} serves its partition {}: {e}",
                    p.leader, p.partition
                )
            });
        let other = if p.leader == 1 { 2 } else { 1 };
        // Sent as is (the SDK's admin would route it to the leader).
        let err = cluster
            .client(other)
            .await
            .call(
                &ListOffsetsRequest {
                    topic: "spread".into(),
                    partition: p.partition,
                    spec: OffsetSpec::Latest,
                },
                bytes::Bytes::new(),
            )
            .await
            .expect_err("not held there");
        assert!(
            err.to_string()
                .contains(&format!("led by broker {}", p.leader)),
            "{err}"
        );
    }
    drop((one, three));

    // Broker 1 dies; the other two are a majority and keep changing the metadata.
    cluster.kill(1);
    let two = cluster.client(2).await;
    two.admin()
        .create_topic("after", 2, 1, BTreeMap::new())
        .await
        .expect("a majority of two creates a topic");
    let three = cluster.client(3).await;
    eventually(
        10,
        "broker 3 sees the topic made without broker 1",
        || async { topic_names(&three).await.contains("after") },
    )
    .await;
    // The quorum's leader is one of the two that remain.
    let status = two.admin().cluster_status().await.expect("status");
    let leader = status.quorum.as_ref().and_then(|q| q.leader);
    assert!(matches!(leader, Some(2 | 3)), "{status:?}");
    // Its heartbeats stopped: broker 1 is fenced, and the partition of "spread" only
    // it held has no leader (one replica: nobody else may lead it).
    let on_one = described
        .partitions
        .iter()
        .find(|p| p.leader == 1)
        .map(|p| p.partition)
        .expect("broker 1 led a partition");
    eventually(10, "broker 1 is fenced", || async {
        two.admin()
            .cluster_status()
            .await
            .is_ok_and(|s| s.brokers.iter().any(|b| b.broker_id == 1 && b.fenced))
    })
    .await;
    let status = two.admin().cluster_status().await.expect("status");
    assert!(
        status
            .offline
            .iter()
            .any(|tp| tp.topic == "spread" && tp.partition == on_one),
        "{status:?}"
    );

    // Broker 1 returns from its files and catches up.
    cluster.start();
    let one = cluster.client(1).await;
    eventually(15, "broker 1 caught up", || async {
        topic_names(&one).await.contains("after")
    })
    .await;
    assert!(topic_names(&one).await.contains("spread"));
    // Back and unfenced, it leads its partition again: nothing is offline.
    eventually(10, "nothing offline once broker 1 is back", || async {
        one.admin()
            .cluster_status()
            .await
            .is_ok_and(|s| s.offline.is_empty() && s.brokers.iter().all(|b| !b.fenced))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_bootstrap_list_moves_on_when_its_broker_dies() {
    let mut cluster = Cluster::new();
    cluster.start();
    let urls: Vec<String> = cluster
        .members
        .iter()
        .map(|m| m.url.clone().expect("running"))
        .collect();
    let options = || ClientOptions::new().ca_pem_file(&cluster.ca);

    // A dead address first in the list does not keep the client from the live ones.
    let dead = format!("quic://127.0.0.1:{}", free_udp_port());
    let client = Client::connect(&format!("{dead},{}", urls.join(",")), options())
        .await
        .expect("connects past the dead address");
    client
        .admin()
        .create_topic("kept", 3, 1, BTreeMap::new())
        .await
        .expect("create");
    let first = client.url().port;
    let id = cluster
        .members
        .iter()
        .find(|m| {
            m.url
                .as_deref()
                .is_some_and(|u| u.ends_with(&format!(":{first}")))
        })
        .map(|m| m.id)
        .expect("connected to one of the three");

    // Its broker dies: the next requests dial the others and go on.
    cluster.kill(id);
    eventually(30, "the client reaches another broker", || async {
        topic_names(&client).await.contains("kept")
    })
    .await;
    assert_ne!(client.url().port, first);
}
