//! `quiver acl add|remove|list`: access rules on a broker that checks them.

use clap::{ArgGroup, Args, Subcommand};
use quiver_sdk::{AccessRule, Effect, Operation, PatternKind, ResourceKind};

use crate::connect::ConnectArgs;
use crate::output::say;

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Add an access rule (adding one that exists changes nothing).
    ///
    /// Example: quiver acl add --principal User:alice --topic orders --operation read
    /// --operation write
    Add(RuleArgs),
    /// Remove an access rule, named by the same flags it was added with.
    Remove(RuleArgs),
    /// List access rules.
    List {
        /// Only the rules of this principal (`*` rules, which cover everyone, included).
        #[arg(long)]
        principal: Option<String>,
    },
}

/// One rule, as flags.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("resource")
        .required(true)
        .args(["topic", "group", "plugin", "cluster"])
))]
pub struct RuleArgs {
    /// Whom the rule is for: User:NAME (a token's owner or a certificate's name),
    /// ANONYMOUS, or * for everyone.
    #[arg(long)]
    pub principal: String,
    /// The rule guards the topic NAME (* for every topic).
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// The rule guards the consumer group NAME (* for every group).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// The rule guards the plugin NAME (* for every plugin).
    #[arg(long, value_name = "NAME")]
    pub plugin: Option<String>,
    /// The rule guards the cluster: administration (alter: plugin upload and removal,
    /// rules and tokens; describe: listing them).
    #[arg(long)]
    pub cluster: bool,
    /// An operation the rule covers: read, write, create, delete, alter, describe or
    /// all. Repeat for more; every operation implies describe.
    #[arg(long = "operation", short = 'o', required = true, value_name = "OP")]
    pub operations: Vec<Operation>,
    /// Match every name that starts with the given one, not just that name.
    #[arg(long, conflicts_with = "cluster")]
    pub prefix: bool,
    /// Deny instead of allow; a deny wins over any allow.
    #[arg(long)]
    pub deny: bool,
}

impl RuleArgs {
    fn rule(self) -> AccessRule {
        let (resource, name) = match (self.topic, self.group, self.plugin) {
            (Some(name), _, _) => (ResourceKind::Topic, name),
            (_, Some(name), _) => (ResourceKind::Group, name),
            (_, _, Some(name)) => (ResourceKind::Plugin, name),
            // clap requires one of the four: what is left is --cluster.
            _ => (ResourceKind::Cluster, "*".to_string()),
        };
        let mut operations = self.operations;
        operations.sort();
        operations.dedup();
        AccessRule {
            principal: self.principal,
            resource,
            pattern: if self.prefix {
                PatternKind::Prefix
            } else {
                PatternKind::Literal
            },
            name,
            operations,
            effect: if self.deny {
                Effect::Deny
            } else {
                Effect::Allow
            },
        }
    }
}

pub async fn run(conn: &ConnectArgs, cmd: AclCommand) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    let admin = client.admin();
    match cmd {
        AclCommand::Add(args) => {
            let rule = args.rule();
            admin.add_access_rule(&rule).await?;
            say!("added: {}", describe(&rule));
        }
        AclCommand::Remove(args) => {
            let rule = args.rule();
            admin.remove_access_rule(&rule).await?;
            say!("removed: {}", describe(&rule));
        }
        AclCommand::List { principal } => {
            let mut rules = admin.list_access_rules().await?;
            if let Some(p) = &principal {
                rules.retain(|r| &r.principal == p || r.principal == "*");
            }
            rules.sort();
            for line in table(&rules) {
                say!("{line}");
            }
        }
    }
    client.close();
    Ok(())
}

/// A rule as one sentence: `allow User:alice read,write on topic 'orders'`.
fn describe(rule: &AccessRule) -> String {
    format!(
        "{} {} {} on {}",
        rule.effect,
        rule.principal,
        operations(rule),
        resource(rule)
    )
}

fn operations(rule: &AccessRule) -> String {
    rule.operations
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn resource(rule: &AccessRule) -> String {
    match (rule.resource, rule.pattern) {
        (ResourceKind::Cluster, _) => "the cluster".to_string(),
        (kind, _) if rule.name == "*" && rule.pattern == PatternKind::Literal => {
            format!("every {kind}")
        }
        (kind, PatternKind::Prefix) => format!("{kind}s starting with '{}'", rule.name),
        (kind, PatternKind::Literal) => format!("{kind} '{}'", rule.name),
    }
}

/// The rules as aligned columns under a header, or a line saying there are none.
fn table(rules: &[AccessRule]) -> Vec<String> {
    if rules.is_empty() {
        return vec!["no access rules".to_string()];
    }
    let rows: Vec<[String; 6]> = rules
        .iter()
        .map(|r| {
            [
                r.principal.clone(),
                r.effect.to_string(),
                operations(r),
                r.resource.to_string(),
                r.pattern.to_string(),
                r.name.clone(),
            ]
        })
        .collect();
    let header = [
        "PRINCIPAL",
        "EFFECT",
        "OPERATIONS",
        "RESOURCE",
        "PATTERN",
        "NAME",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text
    };
    std::iter::once(line(&header))
        .chain(rows.iter().map(|r| line(&r.each_ref().map(String::as_str))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AclCommand,
    }

    fn parse(args: &[&str]) -> Result<AclCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("acl").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn rule(args: &[&str]) -> AccessRule {
        match parse(args).expect("parses") {
            AclCommand::Add(a) | AclCommand::Remove(a) => a.rule(),
            AclCommand::List { .. } => panic!("not a rule"),
        }
    }

    #[test]
    fn flags_make_the_rule_they_say() {
        let r = rule(&[
            "add",
            "--principal",
            "User:alice",
            "--topic",
            "orders",
            "-o",
            "write",
            "-o",
            "read",
            "-o",
            "read",
        ]);
        assert_eq!(
            r,
            AccessRule::allow(
                "User:alice",
                ResourceKind::Topic,
                "orders",
                [Operation::Read, Operation::Write]
            )
        );
        let r = rule(&[
            "remove",
            "--principal",
            "*",
            "--group",
            "billing-",
            "--prefix",
            "--deny",
            "-o",
            "all",
        ]);
        assert_eq!(
            (r.resource, r.pattern, r.effect, r.name.as_str()),
            (
                ResourceKind::Group,
                PatternKind::Prefix,
                Effect::Deny,
                "billing-"
            )
        );
        let r = rule(&["add", "--principal", "User:ops", "--cluster", "-o", "alter"]);
        assert_eq!((r.resource, r.name.as_str()), (ResourceKind::Cluster, "*"));
    }

    #[test]
    fn a_rule_needs_exactly_one_resource_and_known_operations() {
        assert!(parse(&["add", "--principal", "User:a", "-o", "read"]).is_err());
        assert!(
            parse(&[
                "add",
                "--principal",
                "User:a",
                "--topic",
                "t",
                "--group",
                "g",
                "-o",
                "read"
            ])
            .is_err()
        );
        let err = parse(&[
            "add",
            "--principal",
            "User:a",
            "--topic",
            "t",
            "-o",
            "steal",
        ])
        .expect_err("unknown operation");
        assert!(err.to_string().contains("steal"), "{err}");
        assert!(parse(&["add", "--principal", "User:a", "--topic", "t"]).is_err());
    }

    #[test]
    fn the_table_aligns_its_columns_and_says_when_it_is_empty() {
        assert_eq!(table(&[]), vec!["no access rules"]);
        let rules = [
            AccessRule::allow(
                "User:alice",
                ResourceKind::Topic,
                "orders",
                [Operation::Read],
            ),
            AccessRule::allow("*", ResourceKind::Cluster, "*", [Operation::Describe]),
        ];
        let lines = table(&rules);
        assert_eq!(lines.len(), 3);
        let at = |line: &str, word: &str| line.find(word).expect(word);
        assert_eq!(at(&lines[0], "EFFECT"), at(&lines[1], "allow"));
        assert_eq!(at(&lines[0], "NAME"), at(&lines[1], "orders"));
        assert_eq!(
            describe(&rules[0]),
            "allow User:alice read on topic 'orders'"
        );
        assert_eq!(describe(&rules[1]), "allow * describe on the cluster");
    }
}
