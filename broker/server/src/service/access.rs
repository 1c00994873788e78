//! Authentication by token, and the administration of access rules and tokens.
//!
//! Rules and tokens are metadata records, so the changes here are appended to the
//! metadata log (on the blocking pool: an append fsyncs) before they are answered.
//! Changing them is cluster administration (`Alter` on the cluster); listing them needs
//! `Describe` on the cluster. A token's secret exists only in the answer to
//! [`BrokerService::issue_token`].

use std::sync::Arc;
use std::time::Duration;

use quiver_metadata::{
    AccessRule, MetadataRecord, Operation, Principal, ResourceKind, RevokeToken, TokenEntry,
};

use super::{BrokerService, blocking, now_ms};
use crate::auth::{self, Caller, token};
use crate::error::BrokerError;

/// A token just issued: its id, and the whole token (the only copy of its secret).
#[derive(Clone)]
pub struct IssuedToken {
    pub token_id: String,
    pub token: String,
}

impl std::fmt::Debug for IssuedToken {
    // The secret never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

impl BrokerService {
    /// The principal `presented` (a whole token) authenticates as, now.
    pub fn authenticate(&self, presented: &str) -> Result<Principal, BrokerError> {
        auth::token_principal(&self.broker.metadata.image(), presented, now_ms())
    }

    /// Adds an access rule (adding one that exists changes nothing).
    pub async fn add_access_rule(
        &self,
        caller: &Caller,
        rule: AccessRule,
    ) -> Result<(), BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        self.append_access(MetadataRecord::AddAccessRule(rule))
            .await
    }

    /// Removes an access rule, named by all its fields.
    pub async fn remove_access_rule(
        &self,
        caller: &Caller,
        rule: AccessRule,
    ) -> Result<(), BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        self.append_access(MetadataRecord::RemoveAccessRule(rule))
            .await
    }

    /// Every access rule.
    pub fn list_access_rules(&self, caller: &Caller) -> Result<Vec<AccessRule>, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Cluster, "*")?;
        Ok(self
            .broker
            .metadata
            .image()
            .access_rules()
            .cloned()
            .collect())
    }

    /// Issues a token that authenticates as `principal`, valid for `expires_in` (forever
    /// for `None`).
    pub async fn issue_token(
        &self,
        caller: &Caller,
        principal: Principal,
        expires_in: Option<Duration>,
    ) -> Result<IssuedToken, BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        let issued = token::issue();
        let now = now_ms();
        let expires_at_ms = expires_in
            .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        self.append_access(MetadataRecord::IssueToken(TokenEntry {
            token_id: issued.token_id.clone(),
            principal: principal.clone(),
            secret_sha256: issued.secret_sha256.clone(),
            issued_at_ms: now,
            expires_at_ms,
        }))
        .await?;
        tracing::info!(token = %issued.token_id, %principal, "token issued");
        Ok(IssuedToken {
            token_id: issued.token_id,
            token: issued.token,
        })
    }

    /// Revokes a token: it authenticates nobody from now on (connections it already
    /// authenticated keep their principal until they close).
    pub async fn revoke_token(&self, caller: &Caller, token_id: &str) -> Result<(), BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        self.append_access(MetadataRecord::RevokeToken(RevokeToken {
            token_id: token_id.to_string(),
        }))
        .await?;
        tracing::info!(token = %token_id, "token revoked");
        Ok(())
    }

    /// Every token, without secrets (the metadata holds none).
    pub fn list_tokens(&self, caller: &Caller) -> Result<Vec<TokenEntry>, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Cluster, "*")?;
        Ok(self.broker.metadata.image().tokens().cloned().collect())
    }

    async fn append_access(&self, record: MetadataRecord) -> Result<(), BrokerError> {
        let _admin = self.broker.admin.lock().await;
        let metadata = Arc::clone(&self.broker.metadata);
        blocking(move || metadata.append(&record).map(|_| ())).await
    }
}
