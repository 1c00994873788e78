//! `quiver cluster status`: brokers, the metadata quorum and its leader (the
//! controller), and the partitions that need an operator.

use clap::Subcommand;

use crate::connect::ConnectArgs;
use crate::output::say;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the brokers, the metadata quorum and its leader, and the offline and
    /// under-replicated partitions, as the broker asked sees them.
    Status,
}

pub async fn run(conn: &ConnectArgs, cmd: ClusterCommand) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    match cmd {
        ClusterCommand::Status => {
            let s = client.admin().cluster_status().await?;
            match &s.quorum {
                None => say!(
                    "single node (broker {}): metadata in a local log, applied to index {}",
                    s.node_id,
                    s.metadata_applied
                ),
                Some(q) => {
                    let voters: Vec<String> = q.voters.iter().map(u32::to_string).collect();
                    say!(
                        "metadata quorum: voters {}, leader (controller) {}, term {}",
                        voters.join(","),
                        q.leader
                            .map_or_else(|| "none".to_owned(), |l| l.to_string()),
                        q.term
                    );
                    say!(
                        "answered by broker {} ({}), metadata applied to index {}",
                        s.node_id,
                        q.role,
                        s.metadata_applied
                    );
                }
            }
            say!(
                "{:>6} {:<40} {:>10} {:<7}",
                "BROKER",
                "ADDRESS",
                "EPOCH",
                "STATE"
            );
            for b in &s.brokers {
                let state = if b.fenced { "fenced" } else { "active" };
                say!(
                    "{:>6} {:<40} {:>10} {:<7}",
                    b.broker_id,
                    b.address,
                    b.epoch,
                    state
                );
            }
            say!(
                "partitions: {} in all, {} offline, {} under-replicated",
                s.partitions,
                s.offline.len(),
                s.under_replicated.len()
            );
            for tp in &s.offline {
                say!("  offline: {}-{}", tp.topic, tp.partition);
            }
            for tp in &s.under_replicated {
                say!("  under-replicated: {}-{}", tp.topic, tp.partition);
            }
        }
    }
    Ok(())
}
