//! Access rules and bearer tokens: the [`Admin`] calls that manage who may do what.
//!
//! A rule names a principal (`User:alice`, a certificate's principal, `ANONYMOUS`, or
//! `*` for everyone), a resource (a topic, group or plugin by literal name, `*` for every
//! name, or a name prefix; or the cluster), the operations it covers and whether it
//! allows or denies them. The broker denies a request when any matching rule denies it,
//! allows it when a matching rule allows it, and denies it when no rule matches; every
//! operation implies `describe` on the same resource. Managing rules and tokens needs
//! `alter` on the cluster (or a super user).
//!
//! On the wire every kind travels as a lowercase name; the enums here convert to and
//! from them, and parse them (`"read".parse::<Operation>()`) for command lines.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::{
    AccessRuleAddRequest, AccessRuleListRequest, AccessRuleRemoveRequest, AccessRuleSpec, Request,
    TokenIssueRequest, TokenListRequest, TokenRevokeRequest, TokenSummary,
};

use crate::{Admin, Error};

/// Declares a plain enum with its wire names, `Display` and `FromStr`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase name it travels as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} '{s}': expected {}",
                        $what,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

wire_enum!(
    /// What kind of thing a rule guards.
    ResourceKind, "resource kind" {
        Topic => "topic",
        /// A consumer group, by group id.
        Group => "group",
        /// A Wasm plugin, by name.
        Plugin => "plugin",
        /// The cluster as a whole (its one name is `*`): administration, uploading
        /// plugin code, managing rules and tokens.
        Cluster => "cluster",
    }
);

wire_enum!(
    /// How a rule's name matches a resource's.
    PatternKind, "pattern" {
        /// The exact name, or every name for `*`.
        Literal => "literal",
        /// Every name starting with the rule's name.
        Prefix => "prefix",
    }
);

wire_enum!(
    /// What a request does to a resource.
    Operation, "operation" {
        /// Consume a topic; join, commit to or read a group.
        Read => "read",
        /// Produce to a topic.
        Write => "write",
        Create => "create",
        Delete => "delete",
        /// Change a topic's configs, reset a group's offsets; on the cluster: add and
        /// remove plugins, manage rules and tokens.
        Alter => "alter",
        /// See that it exists and how it is set up; implied by every other operation.
        Describe => "describe",
        /// Everything on the resource.
        All => "all",
    }
);

wire_enum!(
    /// Whether a rule lets requests through or stops them.
    Effect, "effect" {
        Allow => "allow",
        /// Wins over any allow that also matches.
        Deny => "deny",
    }
);

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccessRule {
    /// Whom it is for: `User:alice`, `ANONYMOUS`, or `*` for everyone.
    pub principal: String,
    pub resource: ResourceKind,
    pub pattern: PatternKind,
    /// The name (or prefix); `*` with [`PatternKind::Literal`] is every name, and the
    /// cluster's one name.
    pub name: String,
    pub operations: Vec<Operation>,
    pub effect: Effect,
}

impl AccessRule {
    /// A rule allowing `operations` on the resource `kind` named `name` (literally).
    /// The operations are kept sorted and without repeats, as the broker lists them.
    pub fn allow(
        principal: impl Into<String>,
        resource: ResourceKind,
        name: impl Into<String>,
        operations: impl IntoIterator<Item = Operation>,
    ) -> AccessRule {
        let mut operations: Vec<Operation> = operations.into_iter().collect();
        operations.sort();
        operations.dedup();
        AccessRule {
            principal: principal.into(),
            resource,
            pattern: PatternKind::Literal,
            name: name.into(),
            operations,
            effect: Effect::Allow,
        }
    }

    fn to_spec(&self) -> AccessRuleSpec {
        AccessRuleSpec {
            principal: self.principal.clone(),
            resource: self.resource.as_str().to_string(),
            pattern: self.pattern.as_str().to_string(),
            name: self.name.clone(),
            operations: self
                .operations
                .iter()
                .map(|o| o.as_str().to_string())
                .collect(),
            effect: self.effect.as_str().to_string(),
        }
    }

    fn from_spec(spec: AccessRuleSpec) -> Result<AccessRule, Error> {
        let bad = |reason: String| Error::Protocol {
            api: AccessRuleListRequest::NAME,
            reason,
        };
        Ok(AccessRule {
            resource: spec.resource.parse().map_err(bad)?,
            pattern: spec.pattern.parse().map_err(bad)?,
            operations: spec
                .operations
                .iter()
                .map(|o| o.parse())
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            effect: spec.effect.parse().map_err(bad)?,
            principal: spec.principal,
            name: spec.name,
        })
    }
}

/// A token just issued. `token` is the only copy of its secret: the broker keeps a hash.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token_id: String,
    /// The whole token, `qvr_<id>_<secret>`, to give the client.
    pub token: String,
}

impl fmt::Debug for IssuedToken {
    // The secret never reaches a log through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// A token as listed: whose it is and when it ends, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub token_id: String,
    pub principal: String,
    /// Milliseconds since the Unix epoch.
    pub issued_at_ms: i64,
    /// When it stops authenticating (ms since the Unix epoch); `None` never.
    pub expires_at_ms: Option<i64>,
}

impl From<TokenSummary> for TokenInfo {
    fn from(t: TokenSummary) -> TokenInfo {
        TokenInfo {
            token_id: t.token_id,
            principal: t.principal,
            issued_at_ms: t.issued_at_ms,
            expires_at_ms: t.expires_at_ms,
        }
    }
}

impl Admin {
    /// Adds an access rule; adding one that exists changes nothing.
    pub async fn add_access_rule(&self, rule: &AccessRule) -> Result<(), Error> {
        let req = AccessRuleAddRequest {
            rule: rule.to_spec(),
        };
        self.client.call(&req, Bytes::new()).await?;
        Ok(())
    }

    /// Removes an access rule, named by all its fields.
    pub async fn remove_access_rule(&self, rule: &AccessRule) -> Result<(), Error> {
        let req = AccessRuleRemoveRequest {
            rule: rule.to_spec(),
        };
        self.client.call(&req, Bytes::new()).await?;
        Ok(())
    }

    /// Every access rule.
    pub async fn list_access_rules(&self) -> Result<Vec<AccessRule>, Error> {
        let (resp, _) = self
            .client
            .call(&AccessRuleListRequest {}, Bytes::new())
            .await?;
        resp.rules.into_iter().map(AccessRule::from_spec).collect()
    }

    /// Issues a token that authenticates as `principal` (such as `User:alice`), valid
    /// for `expires_in` (forever with `None`). The answer holds the only copy of its
    /// secret.
    pub async fn issue_token(
        &self,
        principal: &str,
        expires_in: Option<Duration>,
    ) -> Result<IssuedToken, Error> {
        let req = TokenIssueRequest {
            principal: principal.to_string(),
            expires_in_ms: expires_in.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        let (resp, _) = self.client.call(&req, Bytes::new()).await?;
        Ok(IssuedToken {
            token_id: resp.token_id,
            token: resp.token,
        })
    }

    /// Revokes a token by its id: it authenticates no new connection from now on
    /// (connections it already authenticated keep their principal until they close).
    pub async fn revoke_token(&self, token_id: &str) -> Result<(), Error> {
        let req = TokenRevokeRequest {
            token_id: token_id.to_string(),
        };
        self.client.call(&req, Bytes::new()).await?;
        Ok(())
    }

    /// Every token, without secrets.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        let (resp, _) = self.client.call(&TokenListRequest {}, Bytes::new()).await?;
        Ok(resp.tokens.into_iter().map(TokenInfo::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_wire_name() {
        for k in ResourceKind::ALL {
            assert_eq!(k.as_str().parse::<ResourceKind>(), Ok(*k));
        }
        for p in PatternKind::ALL {
            assert_eq!(p.as_str().parse::<PatternKind>(), Ok(*p));
        }
        for o in Operation::ALL {
            assert_eq!(o.as_str().parse::<Operation>(), Ok(*o));
        }
        for e in Effect::ALL {
            assert_eq!(e.as_str().parse::<Effect>(), Ok(*e));
        }
        assert_eq!("READ".parse::<Operation>(), Ok(Operation::Read));
        let err = "steal".parse::<Operation>().expect_err("unknown");
        assert!(err.contains("steal") && err.contains("describe"), "{err}");
    }

    #[test]
    fn a_rule_survives_its_wire_form() {
        let rule = AccessRule {
            principal: "User:alice".into(),
            resource: ResourceKind::Topic,
            pattern: PatternKind::Prefix,
            name: "logs.".into(),
            operations: vec![Operation::Read, Operation::Describe],
            effect: Effect::Deny,
        };
        let spec = rule.to_spec();
        assert_eq!(spec.resource, "topic");
        assert_eq!(spec.pattern, "prefix");
        assert_eq!(spec.operations, vec!["read", "describe"]);
        assert_eq!(spec.effect, "deny");
        assert_eq!(AccessRule::from_spec(spec).expect("parses"), rule);
    }

    #[test]
    fn a_value_from_a_newer_broker_is_a_protocol_error() {
        let mut spec =
            AccessRule::allow("*", ResourceKind::Group, "g", [Operation::Read]).to_spec();
        spec.operations.push("teleport".into());
        let err = AccessRule::from_spec(spec).expect_err("unknown operation");
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("teleport"), "{err}");
    }

    #[test]
    fn an_issued_token_hides_its_secret_from_debug() {
        let issued = IssuedToken {
            token_id: "abc".into(),
            token: "qvr_abc_secretsecret".into(),
        };
        let text = format!("{issued:?}");
        assert!(
            text.contains("abc") && !text.contains("secretsecret"),
            "{text}"
        );
    }
}
