//! `quiver token issue|list|revoke`: bearer tokens for clients without a certificate.

use std::time::Duration;

use clap::Subcommand;

use crate::connect::ConnectArgs;
use crate::output::say;
use crate::plugin::utc;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token that authenticates as a principal. It is printed once: the broker
    /// keeps only a hash of it.
    Issue {
        /// Whom the token authenticates as, such as User:alice.
        #[arg(long)]
        principal: String,
        /// How long it is valid, such as 30d, 12h, 15m or 90s (default: until revoked).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<Duration>,
        /// Write the token straight into the metadata of a stopped broker whose data
        /// directory this is, instead of asking a running one: how the first
        /// administrator gets a token when the broker takes no client certificates.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
    /// List tokens: ids, principals and expiry, never secrets.
    List,
    /// Revoke a token by its id: it authenticates no new connection from now on.
    Revoke {
        /// The token's id (from `quiver token list`, or the part after `qvr_`).
        id: String,
    },
}

/// Parses `30d`, `12h`, `15m`, `90s` or `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{s}' has no unit: use s, m, h, d or w (such as 30d)"))?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' does not start with a number (such as 30d)"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{s}': use s, m, h, d or w"
            ));
        }
    };
    if n == 0 {
        return Err(format!(
            "'{s}' would expire at once: give a positive duration"
        ));
    }
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is too long"))
}

pub async fn run(conn: &ConnectArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    if let TokenCommand::Issue {
        principal,
        expires,
        data_dir: Some(dir),
    } = &cmd
    {
        let (dir, principal, expires) = (dir.clone(), principal.clone(), *expires);
        let (id, token) = tokio::task::spawn_blocking(move || {
            quiver_server::auth::issue_token_offline(
                &dir,
                quiver_server::auth::Principal(principal),
                expires,
            )
        })
        .await??;
        say!("{token}");
        eprintln!(
            "token {id} written to the stopped broker's metadata. It is not shown again: \
             store it now (clients pass it with --token or QUIVER_TOKEN)."
        );
        return Ok(());
    }
    let client = conn.connect().await?;
    let admin = client.admin();
    match cmd {
        TokenCommand::Issue {
            principal, expires, ..
        } => {
            let issued = admin.issue_token(&principal, expires).await?;
            say!("{}", issued.token);
            let until = match expires {
                Some(d) => format!("for {}", humanize(d)),
                None => "until revoked".to_string(),
            };
            eprintln!(
                "token {} authenticates as {principal} {until}. It is not shown again: \
                 store it now (clients pass it with --token or QUIVER_TOKEN).",
                issued.token_id
            );
        }
        TokenCommand::List => {
            let mut tokens = admin.list_tokens().await?;
            tokens.sort_by(|a, b| (&a.principal, &a.token_id).cmp(&(&b.principal, &b.token_id)));
            if tokens.is_empty() {
                say!("no tokens");
            } else {
                say!("{:<14} {:<30} {:<24} EXPIRES", "ID", "PRINCIPAL", "ISSUED");
                for t in tokens {
                    let expires = t.expires_at_ms.map_or_else(|| "never".to_string(), utc);
                    say!(
                        "{:<14} {:<30} {:<24} {expires}",
                        t.token_id,
                        t.principal,
                        utc(t.issued_at_ms)
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            // Accept the whole token too: what an operator most likely has at hand.
            let id = id
                .strip_prefix("qvr_")
                .and_then(|rest| rest.split_once('_').map(|(id, _)| id))
                .unwrap_or(&id)
                .to_string();
            admin.revoke_token(&id).await?;
            say!("revoked token {id}");
        }
    }
    client.close();
    Ok(())
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= size && s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["30", "d", "30y", "0d", "99999999999999999999d", "-1d"] {
            assert!(parse_duration(bad).is_err(), "{bad} parsed");
        }
        assert_eq!(humanize(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
    }
}
