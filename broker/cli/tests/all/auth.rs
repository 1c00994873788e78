//! Authentication and authorization over QUIC: client certificates from a CA the broker
//! trusts name the principal, `[auth] super_users` may do everything, other principals
//! only what access rules allow, and a certificate from another CA does not connect.

use std::collections::BTreeMap;

use crate::harness::Ca;
use quiver_proto::ErrorCode;
use quiver_sdk::{Client, ClientOptions, ProducerConfig, ProducerRecord};
use quiver_server::{BrokerConfig, RunningBroker};

/// A CA and certificates it signs.
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

async fn connect_with_token(
    broker: &RunningBroker,
    token: &str,
) -> Result<Client, quiver_sdk::Error> {
    let options = ClientOptions::new()
        .ca_pem(broker.cert_pem().as_bytes().to_vec())
        .token(token);
    Client::connect(&format!("quic://{}", broker.local_addr()), options).await
}

async fn produce_one(client: &Client, topic: &str, value: &str) -> Result<(), quiver_sdk::Error> {
    let producer = client.producer(ProducerConfig::default()).await?;
    let sent = producer
        .send_and_wait(ProducerRecord::new(topic, value.to_string()).partition(0))
        .await;
    producer.close().await;
    sent.map(|_| ())
}

#[tokio::test]
async fn a_token_authenticates_as_its_principal_on_every_connection_until_it_is_revoked() {
    use quiver_sdk::{AccessRule, Operation, ResourceKind};

    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test-ca");
    let broker = start(dir.path(), &ca).await;
    let admin = connect(&broker, Some(ca.client("admin")))
        .await
        .expect("admin connects");
    let admin = admin.admin();
    for topic in ["orders", "payroll"] {
        admin
            .create_topic(topic, 1, 1, BTreeMap::new())
            .await
            .expect("create");
    }
    let issued = admin
        .issue_token("User:alice", None)
        .await
        .expect("a super user issues a token");
    assert!(issued.token.starts_with("qvr_"), "{issued:?}");
    let listed = admin.list_tokens().await.expect("list tokens");
    assert!(
        listed
            .iter()
            .any(|t| t.token_id == issued.token_id && t.principal == "User:alice"),
        "{listed:?}"
    );

    // No rule yet: alice is refused, by name.
    let alice = connect_with_token(&broker, &issued.token)
        .await
        .expect("the token authenticates");
    let err = produce_one(&alice, "orders", "too early")
        .await
        .expect_err("no rule lets alice write");
    assert_eq!(err.code(), Some(ErrorCode::UNAUTHORIZED), "{err}");
    assert!(err.to_string().contains("User:alice"), "{err}");

    let rule = AccessRule::allow(
        "User:alice",
        ResourceKind::Topic,
        "orders",
        [Operation::Write, Operation::Read],
    );
    admin.add_access_rule(&rule).await.expect("add rule");
    assert_eq!(
        admin.list_access_rules().await.expect("list rules"),
        vec![rule.clone()]
    );
    alice.invalidate_metadata("orders");
    produce_one(&alice, "orders", "hello")
        .await
        .expect("alice may write orders now");
    let err = produce_one(&alice, "payroll", "sneaky")
        .await
        .expect_err("but not payroll");
    assert_eq!(err.code(), Some(ErrorCode::UNAUTHORIZED), "{err}");

    // A new connection authenticates again: closed here, the next request re-dials and
    // still runs as alice (anonymous would be refused the read).
    alice.close();
    let tp = quiver_sdk::TopicPartition::new("orders", 0);
    let mut consumer = alice
        .consumer(quiver_sdk::ConsumerConfig::default())
        .expect("consumer");
    consumer.assign(vec![tp.clone()]);
    consumer.seek(&tp, 0).expect("seek");
    let mut values = Vec::new();
    for _ in 0..20 {
        for record in consumer
            .poll(std::time::Duration::from_millis(500))
            .await
            .expect("alice may read orders")
        {
            values.push(String::from_utf8_lossy(&record.value.unwrap_or_default()).into_owned());
        }
        if !values.is_empty() {
            break;
        }
    }
    assert_eq!(values, vec!["hello".to_string()]);

    // Revoked: no new connection authenticates with it, and the refusal says so at once
    // rather than retrying.
    admin.revoke_token(&issued.token_id).await.expect("revoke");
    let err = connect_with_token(&broker, &issued.token)
        .await
        .expect_err("a revoked token does not authenticate");
    assert!(
        matches!(err, quiver_sdk::Error::Authentication { .. }),
        "{err:?}"
    );
    assert!(!err.is_retriable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&issued.token_id) && text.contains("revoked"),
        "{text}"
    );
    assert!(!text.contains(&issued.token), "the secret leaked: {text}");
    // The client that was alice re-dials after losing its connection, and is refused
    // the same way.
    alice.close();
    let err = alice
        .admin()
        .list_topics()
        .await
        .expect_err("the reconnect does not authenticate");
    assert!(
        matches!(err, quiver_sdk::Error::Authentication { .. }),
        "{err:?}"
    );
    let err = connect_with_token(&broker, "qvr_nosuchtoken_0000")
        .await
        .expect_err("an unknown token");
    assert!(
        matches!(err, quiver_sdk::Error::Authentication { .. }),
        "{err:?}"
    );
    broker.shutdown().await.expect("shutdown");
}

/// Runs the `quiver` binary against `broker`: (success, stdout, stderr).
fn quiver(
    broker: &RunningBroker,
    ca: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("--broker")
        .arg(format!("quic://{}", broker.local_addr()))
        .arg("--ca")
        .arg(ca)
        .args(args)
        .env_remove("QUIVER_TOKEN")
        .env_remove("QUIVER_CERT")
        .env_remove("QUIVER_KEY")
        .env("QUIVER_HOME", ca.parent().expect("dir"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn quiver");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    outcome(child.wait_with_output().expect("quiver runs"))
}

/// A finished `quiver`: (success, stdout, stderr).
fn outcome(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// The broker runs on the runtime's workers while the test thread waits for each `quiver`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_issues_a_token_adds_a_rule_and_produces_with_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test-ca");
    let broker = start(dir.path(), &ca).await;
    let trust = dir.path().join("broker.pem");
    std::fs::write(&trust, broker.cert_pem()).expect("write broker cert");
    let (cert, key) = ca.client("admin");
    let (cert_path, key_path) = (dir.path().join("admin.pem"), dir.path().join("admin.key"));
    std::fs::write(&cert_path, cert).expect("write cert");
    std::fs::write(&key_path, key).expect("write key");
    let admin_args = |rest: &[&str]| -> Vec<String> {
        let mut args = vec![
            "--cert".to_string(),
            cert_path.display().to_string(),
            "--key".to_string(),
            key_path.display().to_string(),
        ];
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };
    let run_admin = |rest: &[&str]| {
        let args = admin_args(rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        quiver(&broker, &trust, &args, "")
    };

    let (ok, _, err) = run_admin(&["topic", "create", "orders"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run_admin(&[
        "token",
        "issue",
        "--principal",
        "User:carol",
        "--expires",
        "30d",
    ]);
    assert!(ok, "{err}");
    let token = out.trim().to_string();
    assert!(token.starts_with("qvr_") && !token.contains(' '), "{out}");
    assert!(err.contains("not shown again"), "{err}");
    let (ok, out, err) = run_admin(&["token", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("User:carol") && !out.contains(&token), "{out}");

    let (ok, out, err) = run_admin(&[
        "acl",
        "add",
        "--principal",
        "User:carol",
        "--topic",
        "orders",
        "--operation",
        "write",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("allow User:carol write on topic 'orders'"),
        "{out}"
    );
    let (ok, out, err) = run_admin(&["acl", "list"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("PRINCIPAL"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("User:carol") && l.contains("write") && l.contains("orders")),
        "{out}"
    );

    let (ok, _, err) = quiver(
        &broker,
        &trust,
        &["--token", &token, "produce", "orders"],
        "one\ntwo\n",
    );
    assert!(ok, "with the token: {err}");
    assert!(err.contains("produced 2 records"), "{err}");

    let (ok, _, err) = quiver(&broker, &trust, &["produce", "orders"], "three\n");
    assert!(!ok, "anonymous produce succeeded");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ")
            && first.contains("UNAUTHORIZED")
            && first.contains("ANONYMOUS"),
        "{err}"
    );
    assert!(
        err.contains("--token"),
        "a hint names how to authenticate: {err}"
    );

    // Revoked by the whole token text: the next use says the token was refused.
    let (ok, _, err) = run_admin(&["token", "revoke", &token]);
    assert!(ok, "{err}");
    let (ok, _, err) = quiver(
        &broker,
        &trust,
        &["--token", &token, "produce", "orders"],
        "four\n",
    );
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("refused token") && !err.contains(&token),
        "{err}"
    );
    broker.shutdown().await.expect("shutdown");
}

/// Runs `quiver token issue --data-dir` (no broker to talk to): (success, stdout, stderr).
fn issue_offline(data: &std::path::Path, principal: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["token", "issue", "--principal", principal, "--data-dir"])
        .arg(data)
        .env("QUIVER_HOME", data.parent().expect("dir"))
        .output()
        .expect("quiver runs");
    outcome(out)
}

/// Without client certificates, the first administrator's token is written into the
/// metadata of the stopped broker; a running broker's directory is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_administrator_token_is_issued_offline_into_a_stopped_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (ok, token, err) = issue_offline(&data, "User:admin");
    assert!(ok, "offline issue failed: {err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("qvr_"), "{token}");

    let mut config = BrokerConfig::dev(&data);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.auth.enabled = true;
    config.auth.super_users.insert("User:admin".into());
    let broker = quiver_server::start(config).await.expect("broker starts");

    // While the broker holds the directory, nobody else may write its metadata.
    let (ok, _, err) = issue_offline(&data, "User:mallory");
    assert!(
        !ok,
        "a running broker's metadata must not be written behind its back"
    );
    assert!(err.contains("in use"), "{err}");

    let admin = connect_with_token(&broker, &token)
        .await
        .expect("the token works");
    admin
        .admin()
        .create_topic("orders", 1, 1, BTreeMap::new())
        .await
        .expect("the offline-issued token is a super user's");
    let anonymous = connect(&broker, None).await.expect("connects");
    let err = anonymous
        .admin()
        .create_topic("other", 1, 1, BTreeMap::new())
        .await
        .expect_err("anonymous is refused");
    assert_eq!(err.code(), Some(ErrorCode::UNAUTHORIZED), "{err}");
    broker.shutdown().await.expect("shutdown");
}
