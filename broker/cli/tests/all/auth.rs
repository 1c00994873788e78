//! Authentication and authorization over QUIC: client certificates from a CA the broker
//! trusts name the principal, `[auth] super_users` may do everything, other principals
//! only what access rules allow, and a certificate from another CA does not connect.

use std::collections::BTreeMap;

use quiver_proto::ErrorCode;
use quiver_sdk::{Client, ClientOptions, ProducerConfig, ProducerRecord};
use quiver_server::{BrokerConfig, RunningBroker};

/// A CA and certificates it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
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
    fn client(&self, cn: &str) -> (String, String) {
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
}

async fn start(dir: &std::path::Path, ca: &Ca) -> RunningBroker {
    let ca_path = dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).expect("write ca");
    let mut config = BrokerConfig::dev(dir.join("data"));
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.auth.enabled = true;
    config.auth.client_ca = Some(ca_path);
    config.auth.super_users.insert("User:admin".into());
    quiver_server::start(config).await.expect("broker starts")
}

async fn connect(
    broker: &RunningBroker,
    identity: Option<(String, String)>,
) -> Result<Client, quiver_sdk::Error> {
    let mut options = ClientOptions::new().ca_pem(broker.cert_pem().as_bytes().to_vec());
    if let Some((cert, key)) = identity {
        options = options.identity_pem(cert, key);
    }
    Client::connect(&format!("quic://{}", broker.local_addr()), options).await
}

#[tokio::test]
async fn a_super_user_certificate_may_do_everything_and_others_only_what_rules_allow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test-ca");
    let broker = start(dir.path(), &ca).await;

    let admin = connect(&broker, Some(ca.client("admin")))
        .await
        .expect("admin connects");
    admin
        .admin()
        .create_topic("orders", 1, 1, BTreeMap::new())
        .await
        .expect("a super user may create a topic");
    let producer = admin
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    producer
        .send_and_wait(ProducerRecord::new("orders", "first").partition(0))
        .await
        .expect("a super user may produce");

    // A certificate from the trusted CA names mallory, whom no rule allows anything.
    let mallory = connect(&broker, Some(ca.client("mallory")))
        .await
        .expect("connects");
    let err = mallory
        .admin()
        .create_topic("mine", 1, 1, BTreeMap::new())
        .await
        .expect_err("no rule lets mallory create");
    assert_eq!(err.code(), Some(ErrorCode::UNAUTHORIZED), "{err}");
    assert!(err.to_string().contains("User:mallory"), "{err}");
    let topics = mallory.admin().list_topics().await.expect("list");
    assert!(topics.is_empty(), "mallory sees no topic: {topics:?}");

    // No certificate: anonymous, refused just the same.
    let anonymous = connect(&broker, None)
        .await
        .expect("connects without a certificate");
    let err = anonymous
        .admin()
        .delete_topic("orders")
        .await
        .expect_err("anonymous may not delete");
    assert_eq!(err.code(), Some(ErrorCode::UNAUTHORIZED), "{err}");

    // A certificate the broker's CA did not sign fails the handshake. In TLS 1.3 the
    // client may finish its side before the broker refuses the certificate, so either
    // the connect or the first request fails; nothing is ever answered.
    let stranger = Ca::new("other-ca");
    if let Ok(client) = connect(&broker, Some(stranger.client("admin"))).await {
        let answer = client.admin().list_topics().await;
        assert!(
            answer.is_err(),
            "a certificate from another CA got an answer: {answer:?}"
        );
    }

    let described = admin
        .admin()
        .describe_topic("orders")
        .await
        .expect("describe");
    assert_eq!(
        described.partitions[0].high_watermark, 1,
        "only the admin's record is there"
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_broker_with_authorization_off_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::dev(dir.path());
    config.listen = "0.0.0.0:0".parse().expect("addr");
    let err = quiver_server::start(config.clone())
        .await
        .expect_err("open to the network with nobody checked");
    assert!(err.to_string().contains("allow_unauthenticated"), "{err}");
    config.auth.allow_unauthenticated = true;
    let broker = quiver_server::start(config)
        .await
        .expect("explicitly allowed");
    broker.shutdown().await.expect("shutdown");
}
