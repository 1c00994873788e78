//! Who may do what: access rules per principal on topics, groups, plugins and the
//! cluster, and the bearer tokens that name a principal for clients without a
//! certificate.
//!
//! The model is Kafka's ACLs, trimmed: a rule names a principal (or `*` for everyone),
//! a resource pattern (a kind and a literal name, `*` for every name, or a name prefix),
//! the operations it covers and whether it allows or denies them. A request is allowed
//! when some rule allows it and no rule denies it; with no matching rule it is denied.
//! Super users (a broker setting, not a rule) and brokers themselves bypass the rules;
//! the server decides that before it asks here.
//!
//! Rules and tokens are metadata records like any other, so in a cluster every broker
//! enforces the same rules. A token's secret is never stored: the image keeps a hash of
//! it, and the server hashes what a client presents and looks it up by the token's id.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// An authenticated identity: `User:NAME` for a token's owner, the certificate subject or
/// SAN for a client certificate, `ANONYMOUS` when neither was presented.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Principal(pub String);

impl Principal {
    /// The principal of a client that presented no credential.
    pub fn anonymous() -> Principal {
        Principal("ANONYMOUS".to_string())
    }

    /// Whether a rule written for `self` (`*` for everyone) covers `other`.
    fn covers(&self, other: &Principal) -> bool {
        self.0 == "*" || self == other
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of thing a rule guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Topic,
    /// A consumer group, by group id.
    Group,
    /// A Wasm plugin, by name.
    Plugin,
    /// The cluster as a whole (its one name is `*`): broker-wide administration,
    /// uploading plugin code, managing rules and tokens.
    Cluster,
}

/// How a rule's name matches a resource's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternKind {
    /// The exact name, or every name for `*`.
    Literal,
    /// Every name starting with the pattern's name.
    Prefix,
}

/// The resources a rule covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub kind: ResourceKind,
    pub pattern: PatternKind,
    pub name: String,
}

impl ResourcePattern {
    fn matches(&self, kind: ResourceKind, name: &str) -> bool {
        self.kind == kind
            && match self.pattern {
                PatternKind::Literal => self.name == "*" || self.name == name,
                PatternKind::Prefix => name.starts_with(&self.name),
            }
    }
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Consume a topic; join, commit to or read a group.
    Read,
    /// Produce to a topic.
    Write,
    Create,
    Delete,
    /// Change configs (a topic's), or reset a group's offsets.
    Alter,
    /// See that it exists and how it is set up. Implied by every other operation on the
    /// same resource, as in Kafka: whoever may read a topic may describe it.
    Describe,
    /// Everything on the resource.
    All,
}

impl Operation {
    /// Whether a rule naming `self` covers a request for `wanted`. Describe is implied
    /// only by what a rule allows: denying writes must not hide the topic from a reader.
    fn covers(self, wanted: Operation, effect: Effect) -> bool {
        self == Operation::All
            || self == wanted
            || (effect == Effect::Allow && wanted == Operation::Describe)
    }
}

/// Whether a rule lets requests through or stops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    /// Wins over any allow that also matches.
    Deny,
}

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccessRule {
    /// Whom it is for; `*` is everyone.
    pub principal: Principal,
    pub resource: ResourcePattern,
    pub operations: BTreeSet<Operation>,
    pub effect: Effect,
}

impl AccessRule {
    fn applies(&self, who: &Principal, op: Operation, kind: ResourceKind, name: &str) -> bool {
        self.principal.covers(who)
            && self.resource.matches(kind, name)
            && self.operations.iter().any(|o| o.covers(op, self.effect))
    }
}

/// The answer to "may this principal do this".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No rule allows it.
    NoRule,
    /// A rule denies it (the first such rule).
    Denied(AccessRule),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// Decides a request against `rules`: denied by any matching deny rule, else allowed by
/// any matching allow rule, else refused for want of a rule.
pub fn decide<'a>(
    rules: impl IntoIterator<Item = &'a AccessRule>,
    who: &Principal,
    op: Operation,
    kind: ResourceKind,
    name: &str,
) -> Decision {
    let mut allowed = false;
    for rule in rules {
        if !rule.applies(who, op, kind, name) {
            continue;
        }
        match rule.effect {
            Effect::Deny => return Decision::Denied(rule.clone()),
            Effect::Allow => allowed = true,
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::NoRule
    }
}

/// A bearer token as the metadata keeps it: whose it is and a hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Public part of the token, used to find this entry; unique.
    pub token_id: String,
    pub principal: Principal,
    /// SHA-256 of the secret, 64 lowercase hex digits. The secret itself is shown once,
    /// when the token is issued, and never stored.
    pub secret_sha256: String,
    pub issued_at_ms: i64,
    /// After this instant (ms since the Unix epoch) the token no longer authenticates;
    /// `None` never expires.
    pub expires_at_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        who: &str,
        kind: ResourceKind,
        pattern: PatternKind,
        name: &str,
        ops: &[Operation],
        effect: Effect,
    ) -> AccessRule {
        AccessRule {
            principal: Principal(who.into()),
            resource: ResourcePattern {
                kind,
                pattern,
                name: name.into(),
            },
            operations: ops.iter().copied().collect(),
            effect,
        }
    }

    fn alice() -> Principal {
        Principal("User:alice".into())
    }

    #[test]
    fn nothing_is_allowed_without_a_rule() {
        let d = decide([], &alice(), Operation::Read, ResourceKind::Topic, "orders");
        assert_eq!(d, Decision::NoRule);
    }

    #[test]
    fn literal_prefix_and_wildcard_names_match_as_written() {
        let rules = [
            rule(
                "User:alice",
                ResourceKind::Topic,
                PatternKind::Literal,
                "orders",
                &[Operation::Write],
                Effect::Allow,
            ),
            rule(
                "User:alice",
                ResourceKind::Topic,
                PatternKind::Prefix,
                "logs.",
                &[Operation::Read],
                Effect::Allow,
            ),
            rule(
                "*",
                ResourceKind::Group,
                PatternKind::Literal,
                "*",
                &[Operation::Read],
                Effect::Allow,
            ),
        ];
        let may = |op, kind, name: &str| decide(&rules, &alice(), op, kind, name).is_allowed();
        assert!(may(Operation::Write, ResourceKind::Topic, "orders"));
        assert!(!may(Operation::Write, ResourceKind::Topic, "orders2"));
        assert!(!may(Operation::Read, ResourceKind::Topic, "orders"));
        assert!(may(Operation::Read, ResourceKind::Topic, "logs.app"));
        assert!(!may(Operation::Read, ResourceKind::Topic, "log"));
        assert!(may(Operation::Read, ResourceKind::Group, "anything"));
        assert!(!may(Operation::Delete, ResourceKind::Group, "anything"));
    }

    #[test]
    fn every_operation_implies_describe_and_all_implies_everything() {
        let rules = [
            rule(
                "User:alice",
                ResourceKind::Topic,
                PatternKind::Literal,
                "a",
                &[Operation::Read],
                Effect::Allow,
            ),
            rule(
                "User:alice",
                ResourceKind::Topic,
                PatternKind::Literal,
                "b",
                &[Operation::All],
                Effect::Allow,
            ),
        ];
        let may =
            |op, name: &str| decide(&rules, &alice(), op, ResourceKind::Topic, name).is_allowed();
        assert!(may(Operation::Describe, "a"));
        assert!(!may(Operation::Alter, "a"));
        for op in [
            Operation::Read,
            Operation::Write,
            Operation::Create,
            Operation::Delete,
            Operation::Alter,
        ] {
            assert!(may(op, "b"), "{op:?}");
        }
    }

    #[test]
    fn denying_an_operation_does_not_deny_describe() {
        let rules = [
            rule(
                "User:alice",
                ResourceKind::Topic,
                PatternKind::Literal,
                "orders",
                &[Operation::Read],
                Effect::Allow,
            ),
            rule(
                "User:alice",
                ResourceKind::Topic,
                PatternKind::Literal,
                "orders",
                &[Operation::Write],
                Effect::Deny,
            ),
        ];
        let may = |op| decide(&rules, &alice(), op, ResourceKind::Topic, "orders").is_allowed();
        assert!(may(Operation::Read));
        assert!(may(Operation::Describe), "a reader still sees the topic");
        assert!(!may(Operation::Write));
    }

    #[test]
    fn a_deny_wins_over_any_allow() {
        let deny = rule(
            "User:alice",
            ResourceKind::Topic,
            PatternKind::Prefix,
            "secret.",
            &[Operation::Read],
            Effect::Deny,
        );
        let rules = [
            rule(
                "*",
                ResourceKind::Topic,
                PatternKind::Literal,
                "*",
                &[Operation::All],
                Effect::Allow,
            ),
            deny.clone(),
        ];
        assert_eq!(
            decide(
                &rules,
                &alice(),
                Operation::Read,
                ResourceKind::Topic,
                "secret.keys"
            ),
            Decision::Denied(deny)
        );
        let bob = Principal("User:bob".into());
        assert!(
            decide(
                &rules,
                &bob,
                Operation::Read,
                ResourceKind::Topic,
                "secret.keys"
            )
            .is_allowed()
        );
    }
}
