//! Who is calling, and whether they may.
//!
//! A request reaches the service with a [`Caller`]: the principal its connection
//! authenticated as (a client certificate's name, a bearer token's owner, or
//! `ANONYMOUS`). [`authorize`] answers whether that caller may perform an operation on a
//! resource: with authorization off (`[auth] enabled = false`, what `quiver dev` runs
//! with on loopback) everyone may; super users (a broker setting, like Kafka's
//! `super.users`) and the broker itself always may; everyone else needs an access rule
//! of the metadata (see `quiver_metadata::access`). Internal topics are the broker's:
//! no rule lets a client write them.

use std::collections::BTreeSet;

pub use quiver_metadata::Principal;
use quiver_metadata::{Decision, MetadataImage, Operation, ResourceKind};
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

pub mod client_certs;
pub mod principal;
pub mod token;

/// Authentication and authorization settings (`[auth]` in the broker's TOML file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether requests are checked against access rules. Off, every client may do
    /// everything: only for a broker no one else can reach.
    pub enabled: bool,
    /// Principals that bypass the rules (`User:admin`), as Kafka's `super.users`.
    pub super_users: BTreeSet<String>,
    /// PEM file of the CA whose client certificates the broker accepts; without it the
    /// broker asks for no certificate and clients authenticate with tokens.
    pub client_ca: Option<std::path::PathBuf>,
    /// Lets a broker with authorization off listen beyond loopback, where anyone who
    /// reaches the port may do anything. Off by default: such a broker refuses to start.
    pub allow_unauthenticated: bool,
}

impl AuthConfig {
    /// Refuses what would open the broker to a network with no one checked: authorization
    /// off on an address other than loopback, unless explicitly allowed.
    pub fn check_exposure(&self, listen: std::net::SocketAddr) -> Result<(), String> {
        if self.enabled || self.allow_unauthenticated || listen.ip().is_loopback() {
            return Ok(());
        }
        Err(format!(
            "refusing to listen on {listen} with authorization off: anyone who reaches it could \
             produce, delete topics and upload code. Set [auth] enabled = true (with client_ca \
             and super_users), listen on loopback, or set [auth] allow_unauthenticated = true \
             to accept that"
        ))
    }
}

/// The identity a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// The broker's own work (group commits to `__consumer_offsets`, migrations): never
    /// checked.
    internal: bool,
}

impl Caller {
    /// A client authenticated as `principal`.
    pub fn client(principal: Principal) -> Caller {
        Caller {
            principal,
            internal: false,
        }
    }

    /// A client that presented no credential.
    pub fn anonymous() -> Caller {
        Caller::client(Principal::anonymous())
    }

    /// The broker itself.
    pub fn broker() -> Caller {
        Caller {
            principal: Principal("Broker".to_string()),
            internal: true,
        }
    }

    /// Whether this is the broker's own work.
    pub fn is_internal(&self) -> bool {
        self.internal
    }
}

/// What a request wants to do, for the error that refuses it.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub operation: Operation,
    pub kind: ResourceKind,
    pub name: &'a str,
}

/// Whether `caller` may do `access`: `Ok` or [`BrokerError::Unauthorized`] naming the
/// principal, the operation and the resource.
pub fn authorize(
    config: &AuthConfig,
    image: &MetadataImage,
    caller: &Caller,
    access: Access<'_>,
) -> Result<(), BrokerError> {
    if !config.enabled || caller.internal || config.super_users.contains(&caller.principal.0) {
        return Ok(());
    }
    match image.authorize(
        &caller.principal,
        access.operation,
        access.kind,
        access.name,
    ) {
        Decision::Allowed => Ok(()),
        Decision::NoRule => Err(unauthorized(caller, access, "no access rule allows it")),
        Decision::Denied(_) => Err(unauthorized(caller, access, "an access rule denies it")),
    }
}

fn unauthorized(caller: &Caller, access: Access<'_>, why: &str) -> BrokerError {
    BrokerError::Unauthorized(format!(
        "{} may not {:?} {:?} '{}': {why}",
        caller.principal, access.operation, access.kind, access.name
    ))
}

/// Issues a token for `principal` straight into the metadata log of a broker that is
/// not running (its data directory at `data_dir`): how the first administrator gets a
/// credential when the broker takes no client certificates. Fails while a broker holds
/// the directory. Returns the token's id and the whole token (its only copy).
pub fn issue_token_offline(
    data_dir: &std::path::Path,
    principal: Principal,
    expires_in: Option<std::time::Duration>,
) -> Result<(String, String), BrokerError> {
    let store = crate::metadata::MetadataStore::open(data_dir)?;
    let issued = token::issue();
    let now = crate::service::now_ms();
    store.append(&quiver_metadata::MetadataRecord::IssueToken(
        quiver_metadata::TokenEntry {
            token_id: issued.token_id.clone(),
            principal,
            secret_sha256: issued.secret_sha256.clone(),
            issued_at_ms: now,
            expires_at_ms: expires_in
                .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        },
    ))?;
    Ok((issued.token_id, issued.token))
}

/// The principal a bearer token authenticates as at `now_ms`, or why it does not.
pub fn token_principal(
    image: &MetadataImage,
    presented: &str,
    now_ms: i64,
) -> Result<Principal, BrokerError> {
    let refused = |why: &str| BrokerError::Unauthenticated(format!("token refused: {why}"));
    let (id, hash) = token::parse(presented).ok_or_else(|| refused("not a Quiver token"))?;
    let entry = image
        .token(&id)
        .ok_or_else(|| refused("unknown or revoked"))?;
    if !token::same_hash(&hash, &entry.secret_sha256) {
        return Err(refused("unknown or revoked"));
    }
    if entry.expires_at_ms.is_some_and(|end| now_ms >= end) {
        return Err(refused("expired"));
    }
    Ok(entry.principal.clone())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use quiver_metadata::access::{Effect, PatternKind, ResourcePattern};
    use quiver_metadata::{AccessRule, MetadataRecord, RegisterBroker, TokenEntry};

    use super::*;

    fn image_with(records: Vec<MetadataRecord>) -> MetadataImage {
        let mut image = MetadataImage::empty();
        let mut all = vec![MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: 0,
            listener: "127.0.0.1:1".into(),
            incarnation: 1,
            peer_listener: None,
        })];
        all.extend(records);
        for (i, r) in all.iter().enumerate() {
            image.apply(i as u64 + 1, r).expect("applies");
        }
        image
    }

    fn on(enabled: bool) -> AuthConfig {
        AuthConfig {
            enabled,
            super_users: BTreeSet::from(["User:root".to_string()]),
            client_ca: None,
            allow_unauthenticated: false,
        }
    }

    const READ_ORDERS: Access<'static> = Access {
        operation: Operation::Read,
        kind: ResourceKind::Topic,
        name: "orders",
    };

    #[test]
    fn off_everyone_may_on_only_rules_super_users_and_the_broker() {
        let image = image_with(vec![MetadataRecord::AddAccessRule(AccessRule {
            principal: Principal("User:alice".into()),
            resource: ResourcePattern {
                kind: ResourceKind::Topic,
                pattern: PatternKind::Literal,
                name: "orders".into(),
            },
            operations: BTreeSet::from([Operation::Read]),
            effect: Effect::Allow,
        })]);
        let alice = Caller::client(Principal("User:alice".into()));
        let bob = Caller::client(Principal("User:bob".into()));
        let root = Caller::client(Principal("User:root".into()));
        assert!(authorize(&on(false), &image, &bob, READ_ORDERS).is_ok());
        assert!(authorize(&on(true), &image, &alice, READ_ORDERS).is_ok());
        assert!(authorize(&on(true), &image, &root, READ_ORDERS).is_ok());
        assert!(authorize(&on(true), &image, &Caller::broker(), READ_ORDERS).is_ok());
        let err = authorize(&on(true), &image, &bob, READ_ORDERS).expect_err("no rule");
        assert!(matches!(err, BrokerError::Unauthorized(_)), "{err}");
        assert!(err.to_string().contains("User:bob"), "{err}");
        assert!(err.to_string().contains("orders"), "{err}");
    }

    #[test]
    fn authorization_off_is_refused_beyond_loopback_unless_allowed() {
        let any: std::net::SocketAddr = "0.0.0.0:7420".parse().expect("addr");
        let local: std::net::SocketAddr = "127.0.0.1:7420".parse().expect("addr");
        let err = on(false)
            .check_exposure(any)
            .expect_err("open to the network");
        assert!(err.contains("allow_unauthenticated"), "{err}");
        assert!(on(false).check_exposure(local).is_ok());
        assert!(on(true).check_exposure(any).is_ok());
        let allowed = AuthConfig {
            allow_unauthenticated: true,
            ..on(false)
        };
        assert!(allowed.check_exposure(any).is_ok());
    }

    #[test]
    fn a_token_authenticates_its_owner_until_revoked_or_expired() {
        let issued = token::issue();
        let entry = |expires| TokenEntry {
            token_id: issued.token_id.clone(),
            principal: Principal("User:alice".into()),
            secret_sha256: issued.secret_sha256.clone(),
            issued_at_ms: 0,
            expires_at_ms: expires,
        };
        let image = image_with(vec![MetadataRecord::IssueToken(entry(None))]);
        assert_eq!(
            token_principal(&image, &issued.token, 5).expect("valid").0,
            "User:alice"
        );
        let forged = format!("qvr_{}_{}", issued.token_id, "0".repeat(64));
        assert!(matches!(
            token_principal(&image, &forged, 5),
            Err(BrokerError::Unauthenticated(_))
        ));
        let expiring = image_with(vec![MetadataRecord::IssueToken(entry(Some(10)))]);
        assert!(token_principal(&expiring, &issued.token, 9).is_ok());
        assert!(token_principal(&expiring, &issued.token, 10).is_err());
        let empty = image_with(vec![]);
        assert!(token_principal(&empty, &issued.token, 5).is_err());
    }
}
