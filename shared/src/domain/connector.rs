//! The stored connector row. Its serde form is the storage form (DynamoDB); callers only
//! ever see [`super::view::ConnectorView`].

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::api_key::Principal;
use super::catalog::ConnectorType;
use super::ids::{ConnectorId, EntityId};
use super::sync::{Health, SyncState};
use super::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Sandbox,
    Live,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "sandbox" => Some(Mode::Sandbox),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }

    pub fn is_live(self) -> bool {
        self == Mode::Live
    }
}

/// The ARN of a connector's secret. Kept in the row for operators; never shown (its
/// `Debug` is redacted and no response or event carries it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretArn(String);

impl SecretArn {
    pub fn new(arn: String) -> Self {
        SecretArn(arn)
    }
}

impl fmt::Debug for SecretArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretArn([redacted])")
    }
}

/// One connector of one entity, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub id: ConnectorId,
    pub entity_id: EntityId,
    pub connector_type: ConnectorType,
    pub display_name: String,
    pub mode: Mode,
    pub is_active: bool,
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Names of the stored credential keys (values live only in Secrets Manager).
    #[serde(default)]
    pub credential_keys: BTreeSet<String>,
    #[serde(default)]
    pub has_webhook_secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_arn: Option<SecretArn>,
    /// Credential versions, newest first: metadata only (see `domain::versions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_versions: Vec<super::versions::CredentialVersion>,
    /// The `id` of the version whose values are current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_credential_version: Option<String>,
    /// Bumped by every health reset (credentials change, rollback, restore, re-connect);
    /// a sync state of an older epoch is shown reset (`domain::sync`).
    #[serde(default)]
    pub sync_epoch: u64,
    /// When health was last reset: reports that finished before it change nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_reset_at: Option<Timestamp>,
    /// The sync state, read with the row from its own item (never written with the row).
    #[serde(skip)]
    pub sync: Option<SyncState>,
    /// The health shown before the change being built, when that change may move it;
    /// `commit` announces `integration.health_changed` if it did. Never stored.
    #[serde(skip)]
    pub health_before: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_from_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_from_address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_from_city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_from_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_from_zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoverable_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Optimistic-concurrency counter; every stored change increments it.
    pub version: u64,
}

impl Connector {
    /// A disconnected row whose recovery window has passed no longer exists for any reader,
    /// whether or not TTL or the sweeper has removed it yet.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        !self.is_active && self.recoverable_until.is_some_and(|until| now >= until)
    }

    /// Test keys see only sandbox rows; live keys see all of their entity's rows.
    pub fn is_visible_to(&self, principal: &Principal) -> bool {
        self.entity_id == principal.entity_id && (principal.livemode || self.mode == Mode::Sandbox)
    }

    /// The row as the store keeps it: without the sync state (its own item) and without
    /// what only the change being built carries.
    pub fn stored_form(&self) -> Connector {
        Connector {
            sync: None,
            health_before: None,
            ..self.clone()
        }
    }

    pub fn has_secret(&self) -> bool {
        self.credentials_secret_arn.is_some()
    }
}
