//! The shared test harness: brokers in-process or as child processes, clients, and a raw
//! QUIC connection for sending malformed input.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::Request;
use quiver_proto::frame;
use quiver_sdk::{Client, ClientOptions};
use quiver_server::{BrokerConfig, RunningBroker};

/// A broker running inside the test process, on a port chosen by the OS.
pub struct TestBroker {
    pub broker: Option<RunningBroker>,
    pub dir: tempfile::TempDir,
    pub configure: fn(&mut BrokerConfig),
}

fn no_changes(_: &mut BrokerConfig) {}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(no_changes).await
    }

    /// Starts a broker whose config `configure` adjusts (kept for restarts).
    pub async fn start_with(configure: fn(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = TestBroker {
            broker: None,
            dir,
            configure,
        };
        t.boot().await;
        t
    }

    async fn boot(&mut self) {
        let mut config = BrokerConfig::dev(self.data_dir());
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.maintenance_interval_ms = 50;
        (self.configure)(&mut config);
        self.broker = Some(quiver_server::start(config).await.expect("broker starts"));
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn running(&self) -> &RunningBroker {
        self.broker.as_ref().expect("broker is running")
    }

    pub fn url(&self) -> String {
        format!("quic://{}", self.running().local_addr())
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions::new().ca_pem(self.running().cert_pem().as_bytes().to_vec())
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url(), self.options())
            .await
            .expect("client connects")
    }

    pub async fn stop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.expect("clean shutdown");
        }
    }

    /// A clean shutdown and a start on the same data dir (on a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    /// Starts again after [`stop`](Self::stop) and whatever the test did to the files.
    pub async fn start_again(&mut self) {
        self.boot().await;
    }

    /// A raw QUIC connection speaking frames by hand.
    pub async fn raw(&self) -> RawConnection {
        RawConnection::connect(self.running().local_addr(), self.running().cert_pem()).await
    }

    /// A raw QUIC connection, or why the broker would not have it.
    pub async fn try_raw(&self) -> Result<RawConnection, quinn::ConnectionError> {
        RawConnection::try_connect(self.running().local_addr(), self.running().cert_pem()).await
    }
}

/// A `quiver dev` child process, for tests that kill the broker.
pub struct ChildBroker {
    pub child: Child,
    pub url: String,
    pub ca: PathBuf,
}

impl ChildBroker {
    pub fn spawn(data: &Path, configs: &[&str]) -> ChildBroker {
        Self::spawn_on(data, "127.0.0.1:0", configs)
    }

    /// [`spawn`](Self::spawn) listening on `listen`: a restart binds the port the
    /// broker it replaces had, so that clients find it where they left it.
    pub fn spawn_on(data: &Path, listen: &str, configs: &[&str]) -> ChildBroker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
        cmd.arg("dev")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(listen)
            .args(["--metrics", "127.0.0.1:0"])
            .arg("--no-profile")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for c in configs {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd.spawn().expect("spawn quiver dev");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)
            .expect("read first line");
        let url = first
            .trim()
            .strip_prefix("quiver dev: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        ChildBroker {
            child,
            url,
            ca: data.join("tls").join("cert.pem"),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url, ClientOptions::new().ca_pem_file(&self.ca))
            .await
            .expect("client connects")
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A QUIC connection on which tests write frames byte by byte.
pub struct RawConnection {
    pub conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

/// What the broker answered on one stream.
#[derive(Debug)]
pub enum Answer {
    Ok(Bytes),
    Err(quiver_proto::ErrorCode, String),
}

impl RawConnection {
    pub async fn connect(addr: std::net::SocketAddr, ca_pem: &str) -> RawConnection {
        Self::try_connect(addr, ca_pem).await.expect("handshake")
    }

    /// Like [`connect`](Self::connect), but a refused handshake is returned, not a panic.
    pub async fn try_connect(
        addr: std::net::SocketAddr,
        ca_pem: &str,
    ) -> Result<RawConnection, quinn::ConnectionError> {
        let roots = quiver_sdk::transport::parse_ca_pem(ca_pem.as_bytes()).expect("ca");
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        endpoint.set_default_client_config(
            quiver_sdk::transport::client_config(&roots).expect("config"),
        );
        let conn = endpoint
            .connect(addr, "localhost")
            .expect("connect")
            .await?;
        Ok(RawConnection {
            conn,
            _endpoint: endpoint,
        })
    }

    /// Writes `bytes` on a new stream, finishes it, and reads the one response frame.
    pub async fn send_raw(&self, bytes: &[u8]) -> Answer {
        let (mut send, mut recv) = self.conn.open_bi().await.expect("open stream");
        // The broker may stop our stream early (oversized frame); that is fine.
        let _ = send.write_all(bytes).await;
        let _ = send.finish();
        let frame = tokio::time::timeout(
            Duration::from_secs(10),
            frame::io::read_frame(&mut recv, frame::DEFAULT_MAX_FRAME),
        )
        .await
        .expect("an answer within 10 s")
        .expect("a readable frame")
        .expect("a frame, not an empty stream");
        let code = quiver_proto::ErrorCode(u16::from_be_bytes([frame[0], frame[1]]));
        if code.is_ok() {
            Answer::Ok(frame)
        } else {
            let body_len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize;
            let text = String::from_utf8_lossy(&frame[6..6 + body_len]).into_owned();
            Answer::Err(code, text)
        }
    }

    /// Sends a well-formed request of type `R` with a payload.
    pub async fn send<R: Request>(&self, req: &R, payload: &[u8]) -> Answer {
        let mut bytes = frame::encode_request(req, payload.len()).to_vec();
        bytes.extend_from_slice(payload);
        self.send_raw(&bytes).await
    }
}

/// Asserts that an answer is an error with this code, and returns its message.
#[track_caller]
pub fn expect_code(answer: Answer, code: quiver_proto::ErrorCode) -> String {
    match answer {
        Answer::Err(c, message) => {
            assert_eq!(c, code, "expected {code}, got {c}: {message}");
            message
        }
        Answer::Ok(_) => panic!("expected {code}, got success"),
    }
}

/// Polls `check` every 20 ms until it holds; panics after `secs` seconds (a safety net,
/// not a timing assertion).
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `.log` files of a partition directory, sorted by base offset.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Creates `topic` with one partition and produces `n` records to it, one batch each
/// (`record-0`, `record-1`, ...): a log whose batches tests can find and damage.
pub async fn fill_one_batch_per_record(broker: &TestBroker, topic: &str, n: u32) {
    let client = broker.client().await;
    client
        .admin()
        .create_topic(topic, 1, 1, std::collections::BTreeMap::new())
        .await
        .expect("create");
    let producer = client
        .producer(quiver_sdk::ProducerConfig {
            batch_size: 1,
            ..quiver_sdk::ProducerConfig::default()
        })
        .await
        .expect("producer");
    for i in 0..n {
        producer
            .send_and_wait(
                quiver_sdk::ProducerRecord::new(topic, format!("record-{i}")).partition(0),
            )
            .await
            .expect("send");
    }
    producer.close().await;
}

/// A consumer reading `tp` alone from its first offset, without a group.
pub fn consumer_from_start(
    client: &quiver_sdk::Client,
    tp: &quiver_sdk::TopicPartition,
) -> quiver_sdk::Consumer {
    let mut consumer = client
        .consumer(quiver_sdk::ConsumerConfig {
            auto_offset_reset: quiver_sdk::OffsetReset::Earliest,
            ..quiver_sdk::ConsumerConfig::default()
        })
        .expect("consumer");
    consumer.assign(vec![tp.clone()]);
    consumer
}

/// A certificate authority for tests: client certificates, and broker certificates
/// for a cluster.
pub struct Ca {
    pub cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca { cert, key }
    }

    /// A client certificate for common name `cn`: (certificate PEM, key PEM).
    pub fn client(&self, cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("client cert");
        (cert.pem(), key.serialize_pem())
    }

    /// A broker certificate for 127.0.0.1 and localhost, usable to serve and to dial
    /// other brokers: (certificate PEM, key PEM).
    pub fn broker(&self, cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("broker cert");
        (cert.pem(), key.serialize_pem())
    }
}
