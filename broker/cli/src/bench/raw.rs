//! `quiver bench raw`: bytes over one QUIC stream on loopback, with the broker's own TLS
//! and transport settings and the SDK's client settings, and no broker in between.

use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use quiver_server::{TlsConfig, tls, transport};

use super::report::{Report, progress};

#[derive(Debug, clap::Args)]
pub struct RawArgs {
    /// Total bytes to send.
    #[arg(long, default_value_t = 4 * 1024 * 1024 * 1024)]
    pub bytes: u64,
    /// Size of each write.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub chunk: usize,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: RawArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let identity = tls::load_identity(&TlsConfig::SelfSigned, dir.path())?;
    let server_config = tls::server_config(&identity, transport::transport_config(16), None)?;

    // The receiving end runs on a runtime and thread of its own, as a broker runs in a
    // process of its own in `bench produce` and `consume`: one runtime for both ends
    // would have them share (or steal) each other's workers.
    let total = args.bytes;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let receiver = std::thread::Builder::new()
        .name("raw-receiver".into())
        .spawn(move || -> anyhow::Result<u64> {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = crate::worker_threads() {
                builder.worker_threads(n);
            }
            let runtime = builder.enable_all().build()?;
            runtime.block_on(async move {
                let server = transport::endpoint("127.0.0.1:0".parse()?, Some(server_config))?;
                let _ = addr_tx.send(server.local_addr()?);
                let conn = server.accept().await.context("no connection")?.await?;
                let (_send, mut recv) = conn.accept_bi().await?;
                let mut got = 0u64;
                while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
                    got += chunk.bytes.len() as u64;
                }
                anyhow::ensure!(got == total, "received {got} of {total} bytes");
                let _ = done_tx.send(());
                // Stay until the sender closes, so that it sees everything acknowledged.
                conn.closed().await;
                Ok(got)
            })
        })?;
    let Ok(addr) = addr_rx.await else {
        // It failed before listening: its own error says why.
        let failed = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the receiver panicked"))?;
        return Err(failed
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the receiver did not start")));
    };

    let roots = quiver_sdk::transport::parse_ca_pem(identity.cert_pem.as_bytes())?;
    let mut client = quiver_sdk::transport::endpoint("127.0.0.1:0".parse()?, None)?;
    client.set_default_client_config(quiver_sdk::transport::client_config(&roots)?);
    let conn = client.connect(addr, "localhost")?.await?;
    let (mut send, _recv) = conn.open_bi().await?;
    let chunk = Bytes::from(vec![0x5au8; args.chunk]);
    let bar = progress(total, "raw");
    let cpu = super::report::CpuMeter::start(None);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(chunk.len() as u64) as usize;
        send.write_chunk(chunk.slice(..n)).await?;
        sent += n as u64;
        bar.set_position(sent);
    }
    send.finish()?;
    // Timed until the receiver has read the last byte (it reports a shortfall below).
    let _ = done_rx.await;
    let elapsed = start.elapsed();
    conn.close(0u32.into(), b"done");
    let got = tokio::task::spawn_blocking(move || receiver.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
    bar.finish_and_clear();
    let mut report = Report::new("raw", got / args.chunk as u64, got, elapsed);
    report.settings =
        serde_json::json!({"chunk": args.chunk, "stream": 1, "cipher": "TLS13_AES_128_GCM_SHA256"});
    cpu.finish(&mut report);
    report.print(args.json);
    Ok(())
}
