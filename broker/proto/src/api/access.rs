//! Authentication by bearer token, and the administration of access rules and tokens.
//!
//! Rules and kinds travel as lowercase names (`topic`, `group`, `plugin`, `cluster`;
//! `literal`, `prefix`; `read`, `write`, `create`, `delete`, `alter`, `describe`, `all`;
//! `allow`, `deny`), so this crate needs nothing from the broker's metadata.

use serde::{Deserialize, Serialize};

use super::request;

/// Authenticates the connection it arrives on as the token's principal: every later
/// request on the connection runs as that principal. A refused token is
/// `UNAUTHORIZED` and leaves the connection as it was.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateRequest {
    /// The whole token, `qvr_<id>_<secret>`.
    pub token: String,
}

impl std::fmt::Debug for AuthenticateRequest {
    // The secret never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateRequest")
            .finish_non_exhaustive()
    }
}
request!(AuthenticateRequest => AuthenticateResponse, AUTHENTICATE, "authenticate");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateResponse {
    /// Who the connection is now, such as `User:alice`.
    pub principal: String,
}

/// One access rule on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRuleSpec {
    /// `User:NAME`, a certificate's principal, `ANONYMOUS`, or `*` for everyone.
    pub principal: String,
    /// `topic`, `group`, `plugin` or `cluster`.
    pub resource: String,
    /// `literal` (the name, or `*` for every name) or `prefix`.
    pub pattern: String,
    pub name: String,
    /// Any of `read`, `write`, `create`, `delete`, `alter`, `describe`, `all`.
    pub operations: Vec<String>,
    /// `allow` or `deny`.
    pub effect: String,
}

/// Adds a rule; adding one that exists changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRuleAddRequest {
    pub rule: AccessRuleSpec,
}
request!(AccessRuleAddRequest => AccessRuleAddResponse, ACCESS_RULE_ADD, "access-rule-add");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRuleAddResponse {}

/// Removes a rule, named by all its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRuleRemoveRequest {
    pub rule: AccessRuleSpec,
}
request!(AccessRuleRemoveRequest => AccessRuleRemoveResponse, ACCESS_RULE_REMOVE, "access-rule-remove");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRuleRemoveResponse {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRuleListRequest {}
request!(AccessRuleListRequest => AccessRuleListResponse, ACCESS_RULE_LIST, "access-rule-list");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRuleListResponse {
    pub rules: Vec<AccessRuleSpec>,
}

/// Issues a token for `principal`; the answer carries the only copy of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssueRequest {
    pub principal: String,
    /// Milliseconds until it stops authenticating; `None` never expires.
    pub expires_in_ms: Option<u64>,
}
request!(TokenIssueRequest => TokenIssueResponse, TOKEN_ISSUE, "token-issue");

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssueResponse {
    pub token_id: String,
    /// The whole token to give the client; shown once, never stored by the broker.
    pub token: String,
}

impl std::fmt::Debug for TokenIssueResponse {
    // The secret never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssueResponse")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// Revokes a token by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevokeRequest {
    pub token_id: String,
}
request!(TokenRevokeRequest => TokenRevokeResponse, TOKEN_REVOKE, "token-revoke");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevokeResponse {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenListRequest {}
request!(TokenListRequest => TokenListResponse, TOKEN_LIST, "token-list");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenListResponse {
    pub tokens: Vec<TokenSummary>,
}

/// A token without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSummary {
    pub token_id: String,
    pub principal: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}
