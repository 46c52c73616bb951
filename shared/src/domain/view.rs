//! The one projection from a stored row to what callers see. Nothing else serialises rows
//! for responses or events.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::catalog::ConnectorType;
use super::connector::{Connector, Mode};
use super::ids::{ConnectorId, EntityId};
use super::sync::{self, Health, SyncOutcome};
use super::time::Timestamp;

/// Exactly the fields of openapi.yaml, in that order; absent values are `null`.
#[derive(Debug, Serialize)]
pub struct ConnectorView<'a> {
    pub id: ConnectorId,
    pub entity_id: EntityId,
    pub connector_type: ConnectorType,
    pub display_name: &'a str,
    pub mode: Mode,
    pub is_active: bool,
    pub config: &'a Map<String, Value>,
    pub credentials_masked: Vec<&'a str>,
    pub has_webhook_secret: bool,
    pub has_credentials_secret_arn: bool,
    pub last_sync_at: Option<Timestamp>,
    pub sync_status: Option<SyncOutcome>,
    pub sync_error: Option<String>,
    pub health: Health,
    pub ship_from_name: Option<&'a str>,
    pub ship_from_address1: Option<&'a str>,
    pub ship_from_city: Option<&'a str>,
    pub ship_from_state: Option<&'a str>,
    pub ship_from_zip: Option<&'a str>,
    pub seller_id: Option<&'a str>,
    pub bank_account_id: Option<Uuid>,
    pub disconnected_at: Option<Timestamp>,
    pub recoverable_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl<'a> From<&'a Connector> for ConnectorView<'a> {
    fn from(row: &'a Connector) -> Self {
        let sync = sync::shown(row);
        let sync = sync.as_ref();
        ConnectorView {
            id: row.id,
            entity_id: row.entity_id,
            connector_type: row.connector_type,
            display_name: &row.display_name,
            mode: row.mode,
            is_active: row.is_active,
            config: &row.config,
            // BTreeSet iterates sorted, as the design asks.
            credentials_masked: row.credential_keys.iter().map(String::as_str).collect(),
            has_webhook_secret: row.has_webhook_secret,
            has_credentials_secret_arn: row.has_secret(),
            last_sync_at: sync.and_then(|s| s.last_sync_at),
            sync_status: sync.and_then(|s| s.sync_status),
            sync_error: sync.and_then(|s| s.sync_error.clone()),
            health: sync.map_or(Health::Unknown, |s| s.health),
            ship_from_name: row.ship_from_name.as_deref(),
            ship_from_address1: row.ship_from_address1.as_deref(),
            ship_from_city: row.ship_from_city.as_deref(),
            ship_from_state: row.ship_from_state.as_deref(),
            ship_from_zip: row.ship_from_zip.as_deref(),
            seller_id: row.seller_id.as_deref(),
            bank_account_id: row.bank_account_id,
            disconnected_at: row.disconnected_at,
            recoverable_until: row.recoverable_until,
            created_at: row.created_at,
            // A report changes the row as shown without writing the row item.
            updated_at: sync.map_or(row.updated_at, |s| s.updated_at.max(row.updated_at)),
        }
    }
}

/// The row as a JSON value, for response bodies and event details.
pub fn project(row: &Connector) -> Value {
    serde_json::to_value(ConnectorView::from(row)).expect("a view always serialises")
}

/// The field names of openapi.yaml, in order: what tests hold the projection to.
pub const ROW_FIELDS: [&str; 25] = [
    "id",
    "entity_id",
    "connector_type",
    "display_name",
    "mode",
    "is_active",
    "config",
    "credentials_masked",
    "has_webhook_secret",
    "has_credentials_secret_arn",
    "last_sync_at",
    "sync_status",
    "sync_error",
    "health",
    "ship_from_name",
    "ship_from_address1",
    "ship_from_city",
    "ship_from_state",
    "ship_from_zip",
    "seller_id",
    "bank_account_id",
    "disconnected_at",
    "recoverable_until",
    "created_at",
    "updated_at",
];
