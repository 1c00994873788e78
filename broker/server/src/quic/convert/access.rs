//! Access rules and tokens between their wire spelling (lowercase names) and the
//! metadata's types.

use quiver_metadata::access::{Effect, PatternKind, ResourcePattern};
use quiver_metadata::{AccessRule, Operation, Principal, ResourceKind, TokenEntry};
use quiver_proto::api;

use crate::error::BrokerError;

fn bad(what: &str, value: &str, expected: &str) -> BrokerError {
    BrokerError::InvalidRequest(format!("unknown {what} '{value}': expected {expected}"))
}

pub(crate) fn rule(spec: api::AccessRuleSpec) -> Result<AccessRule, BrokerError> {
    let kind = match spec.resource.as_str() {
        "topic" => ResourceKind::Topic,
        "group" => ResourceKind::Group,
        "plugin" => ResourceKind::Plugin,
        "cluster" => ResourceKind::Cluster,
        other => return Err(bad("resource", other, "topic, group, plugin or cluster")),
    };
    let pattern = match spec.pattern.as_str() {
        "literal" => PatternKind::Literal,
        "prefix" => PatternKind::Prefix,
        other => return Err(bad("pattern", other, "literal or prefix")),
    };
    let operations = spec
        .operations
        .iter()
        .map(|o| operation(o))
        .collect::<Result<_, _>>()?;
    let effect = match spec.effect.as_str() {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => return Err(bad("effect", other, "allow or deny")),
    };
    Ok(AccessRule {
        principal: Principal(spec.principal),
        resource: ResourcePattern {
            kind,
            pattern,
            name: spec.name,
        },
        operations,
        effect,
    })
}

fn operation(name: &str) -> Result<Operation, BrokerError> {
    Ok(match name {
        "read" => Operation::Read,
        "write" => Operation::Write,
        "create" => Operation::Create,
        "delete" => Operation::Delete,
        "alter" => Operation::Alter,
        "describe" => Operation::Describe,
        "all" => Operation::All,
        other => {
            return Err(bad(
                "operation",
                other,
                "read, write, create, delete, alter, describe or all",
            ));
        }
    })
}

pub(crate) fn rule_spec(rule: AccessRule) -> api::AccessRuleSpec {
    api::AccessRuleSpec {
        principal: rule.principal.0,
        resource: match rule.resource.kind {
            ResourceKind::Topic => "topic",
            ResourceKind::Group => "group",
            ResourceKind::Plugin => "plugin",
            ResourceKind::Cluster => "cluster",
        }
        .to_string(),
        pattern: match rule.resource.pattern {
            PatternKind::Literal => "literal",
            PatternKind::Prefix => "prefix",
        }
        .to_string(),
        name: rule.resource.name,
        operations: rule
            .operations
            .into_iter()
            .map(|o| {
                match o {
                    Operation::Read => "read",
                    Operation::Write => "write",
                    Operation::Create => "create",
                    Operation::Delete => "delete",
                    Operation::Alter => "alter",
                    Operation::Describe => "describe",
                    Operation::All => "all",
                }
                .to_string()
            })
            .collect(),
        effect: match rule.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
        .to_string(),
    }
}

pub(crate) fn token_summary(t: TokenEntry) -> api::TokenSummary {
    api::TokenSummary {
        token_id: t.token_id,
        principal: t.principal.0,
        issued_at_ms: t.issued_at_ms,
        expires_at_ms: t.expires_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> api::AccessRuleSpec {
        api::AccessRuleSpec {
            principal: "User:alice".into(),
            resource: "topic".into(),
            pattern: "prefix".into(),
            name: "logs.".into(),
            operations: vec!["read".into(), "describe".into()],
            effect: "allow".into(),
        }
    }

    #[test]
    fn a_rule_survives_the_round_trip() {
        let back = rule_spec(rule(spec()).expect("parses"));
        assert_eq!(back, spec());
    }

    #[test]
    fn unknown_names_are_invalid_requests_naming_the_choices() {
        let mut s = spec();
        s.operations = vec!["smash".into()];
        let err = rule(s).expect_err("unknown operation");
        assert!(
            matches!(err, BrokerError::InvalidRequest(ref m) if m.contains("smash") && m.contains("describe")),
            "{err}"
        );
        let mut s = spec();
        s.resource = "database".into();
        assert!(rule(s).is_err());
    }
}
