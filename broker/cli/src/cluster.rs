//! `quiver cluster status`: brokers, the metadata quorum and its leader (the
//! controller), and the partitions that need an operator. `quiver cluster drain`: move
//! every replica off a broker before it is taken out. `quiver cluster remove`: take a
//! drained broker out of the cluster.

use clap::Subcommand;

use crate::connect::ConnectArgs;
use crate::output::say;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the brokers, the metadata quorum and its leader, and the offline and
    /// under-replicated partitions, as the broker asked sees them.
    Status,
    /// Move every partition replica off a broker (before it is taken out): each goes to
    /// the active broker holding the fewest replicas among those that do not hold that
    /// partition yet. Waits until the broker holds none.
    Drain {
        /// The id of the broker to empty.
        #[arg(value_name = "BROKER_ID")]
        id: u32,
        /// Seconds to wait for the moves to finish.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Take a broker out of the cluster for good (after `drain`): the metadata forgets
    /// it and it leaves the metadata quorum. Refused while it holds any replica, and for
    /// a voter. Stop its process afterwards.
    Remove {
        /// The id of the broker to remove.
        #[arg(value_name = "BROKER_ID")]
        id: u32,
    },
}

pub async fn run(conn: &ConnectArgs, cmd: ClusterCommand) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    match cmd {
        ClusterCommand::Drain { id, timeout } => {
            drain(&client, id, std::time::Duration::from_secs(timeout)).await?;
        }
        ClusterCommand::Remove { id } => {
            client.admin().unregister_broker(id).await?;
            say!("broker {id} removed from the cluster; stop its process now");
        }
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
                "{:>6} {:<40} {:>10} {:<7} {:<8}",
                "BROKER",
                "ADDRESS",
                "EPOCH",
                "STATE",
                "QUORUM"
            );
            for b in &s.brokers {
                let state = if b.fenced { "fenced" } else { "active" };
                // Every broker of a cluster that is not a voter is an observer.
                let role = match &s.quorum {
                    None => "-",
                    Some(q) if q.voters.contains(&b.broker_id) => "voter",
                    Some(_) => "observer",
                };
                say!(
                    "{:>6} {:<40} {:>10} {:<7} {:<8}",
                    b.broker_id,
                    b.address,
                    b.epoch,
                    state,
                    role
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

/// A partition (topic, index), its replicas, and whether a reassignment of it is under
/// way (more replicas than its topic's replication factor: old and new together).
type Placement = (String, u32, Vec<u32>, bool);

/// Every partition of the cluster, internal topics included.
async fn placements(admin: &quiver_sdk::Admin) -> anyhow::Result<Vec<Placement>> {
    let mut names: Vec<String> = admin
        .list_topics()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    if !names.iter().any(|n| n == "__consumer_offsets")
        && admin.describe_topic("__consumer_offsets").await.is_ok()
    {
        names.push("__consumer_offsets".into());
    }
    let mut out = Vec::new();
    for name in names {
        let described = admin.describe_topic(&name).await?;
        let factor = usize::from(described.replication_factor);
        for p in described.partitions {
            let moving = p.replicas.len() > factor;
            out.push((name.clone(), p.partition, p.replicas, moving));
        }
    }
    Ok(out)
}

async fn drain(
    client: &quiver_sdk::Client,
    broker: u32,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let admin = client.admin();
    let status = admin.cluster_status().await?;
    let active: Vec<u32> = status
        .brokers
        .iter()
        .filter(|b| !b.fenced && b.broker_id != broker)
        .map(|b| b.broker_id)
        .collect();
    if !status.brokers.iter().any(|b| b.broker_id == broker) {
        anyhow::bail!("broker {broker} is not registered in the cluster");
    }
    let deadline = tokio::time::Instant::now() + timeout;
    // A partition of the broker that is moving already is planned once its move ends.
    let placed = loop {
        let placed = placements(&admin).await?;
        let moving = placed
            .iter()
            .filter(|(_, _, replicas, moving)| *moving && replicas.contains(&broker))
            .count();
        if moving == 0 {
            break placed;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "{moving} partition(s) on broker {broker} were still being reassigned after {timeout:?}; drain it once they are done"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    // Replicas each broker holds, counting the moves planned so far.
    let mut load: std::collections::BTreeMap<u32, usize> = active.iter().map(|b| (*b, 0)).collect();
    for (_, _, replicas, _) in &placed {
        for r in replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let mut moves = 0;
    for (topic, partition, replicas, _) in &placed {
        let Some(at) = replicas.iter().position(|r| *r == broker) else {
            continue;
        };
        let Some(to) = load
            .iter()
            .filter(|(b, _)| !replicas.contains(b))
            .min_by_key(|(b, n)| (**n, **b))
            .map(|(b, _)| *b)
        else {
            anyhow::bail!(
                "{topic}-{partition} is on brokers {replicas:?}: no other active broker can take its replica from broker {broker}; add a broker or lower the topic's replication factor first"
            );
        };
        let mut target = replicas.clone();
        target[at] = to;
        admin
            .reassign_partition(topic, *partition, target.clone())
            .await?;
        *load.entry(to).or_default() += 1;
        moves += 1;
        say!("moving {topic}-{partition}: {replicas:?} -> {target:?}");
    }
    if moves == 0 {
        say!("broker {broker} holds no replica");
        return Ok(());
    }
    loop {
        let left = placements(&admin)
            .await?
            .into_iter()
            .filter(|(_, _, replicas, _)| replicas.contains(&broker))
            .count();
        if left == 0 {
            say!("broker {broker} is drained: it holds no replica ({moves} moved)");
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "{left} partition(s) still have a replica on broker {broker} after {timeout:?}; the moves go on (see `quiver topic describe`)"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
