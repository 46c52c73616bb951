//! Lifecycle events as published on the bus (docs/DECISIONS.md, "Events and the outbox"). The row inside is the masked
//! projection; nothing else of a connector goes into an event.

use serde::Serialize;
use serde_json::Value;

use super::api_key::KeyId;
use super::connector::Connector;
use super::ids::EntityId;
use super::sync::Health;
use super::time::Timestamp;
use super::view::project;

/// The version of the event and API shapes; bumped when a shape changes incompatibly.
pub const API_VERSION: &str = "2026-11-01";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EventType {
    #[serde(rename = "integration.connected")]
    Connected,
    #[serde(rename = "integration.updated")]
    Updated,
    #[serde(rename = "integration.credentials_updated")]
    CredentialsUpdated,
    #[serde(rename = "integration.disconnected")]
    Disconnected,
    #[serde(rename = "integration.restored")]
    Restored,
    #[serde(rename = "integration.deleted")]
    Deleted,
    #[serde(rename = "integration.expired")]
    Expired,
    #[serde(rename = "integration.health_changed")]
    HealthChanged,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Connected => "integration.connected",
            EventType::Updated => "integration.updated",
            EventType::CredentialsUpdated => "integration.credentials_updated",
            EventType::Disconnected => "integration.disconnected",
            EventType::Restored => "integration.restored",
            EventType::Deleted => "integration.deleted",
            EventType::Expired => "integration.expired",
            EventType::HealthChanged => "integration.health_changed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Actor {
    /// The API key that caused the change; `null` for changes made by the system (expiry).
    pub key_id: Option<KeyId>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventData {
    pub object: Value,
    /// On `integration.credentials_updated`: the credential version now current (the
    /// opaque id of `GET …/credentials/versions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `integration.health_changed` only: the health shown before the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_health: Option<Health>,
}

/// The `detail` of an EventBridge event; `type` is also its `detail-type`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub created_at: Timestamp,
    pub api_version: &'static str,
    pub entity_id: EntityId,
    pub livemode: bool,
    pub actor: Actor,
    pub data: EventData,
}

impl Event {
    pub fn new(event_type: EventType, row: &Connector, actor: Option<&KeyId>, now: Timestamp) -> Event {
        Event {
            id: format!("evt_{}", crate::domain::ids::fresh_uuid().simple()),
            event_type,
            created_at: now,
            api_version: API_VERSION,
            entity_id: row.entity_id,
            livemode: row.mode.is_live(),
            actor: Actor { key_id: actor.cloned() },
            data: EventData {
                object: project(row),
                version: (event_type == EventType::CredentialsUpdated)
                    .then(|| row.current_credential_version.clone())
                    .flatten(),
                previous_health: (event_type == EventType::HealthChanged)
                    .then(|| row.health_before.unwrap_or_default()),
            },
        }
    }

    pub fn detail_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::{Principal, Scope};
    use crate::domain::catalog::ConnectorType;
    use crate::domain::connector::SecretArn;
    use crate::domain::edits::Edits;
    use crate::domain::lifecycle;
    use crate::domain::versions::CredentialVersion;
    use crate::domain::view::ROW_FIELDS;

    #[test]
    fn detail_has_the_design_shape_and_no_secret() {
        let p = Principal {
            entity_id: EntityId::new_random(),
            key_id: KeyId::parse("key_abcdefghij12").unwrap(),
            livemode: true,
            scopes: [Scope::Write].into(),
        };
        let now = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
        let row = lifecycle::connect(&p, ConnectorType::parse("stripe").unwrap(), &Edits::default(), now).unwrap();
        let version = CredentialVersion::new(["secret_key".to_string()].into(), true, 0, now);
        let arn = SecretArn::new("arn:aws:secretsmanager:us-east-1:1:secret:CANARY-ARN".into());
        let row = lifecycle::with_credentials(&row, version, arn, now).unwrap();
        let e = Event::new(EventType::Disconnected, &row, Some(&p.key_id), now);
        let v: Value = serde_json::from_str(&e.detail_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 8);
        for k in [
            "id",
            "type",
            "created_at",
            "api_version",
            "entity_id",
            "livemode",
            "actor",
            "data",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(v["type"], "integration.disconnected");
        assert_eq!(v["actor"]["key_id"], "key_abcdefghij12");
        assert_eq!(v["livemode"], true);
        assert_eq!(v["data"]["object"].as_object().unwrap().len(), ROW_FIELDS.len());
        assert!(!e.detail_json().contains("CANARY"));
        assert!(
            v["data"].get("version").is_none(),
            "only a credentials change names a version"
        );
        let changed = Event::new(EventType::CredentialsUpdated, &row, Some(&p.key_id), now);
        let v: Value = serde_json::from_str(&changed.detail_json()).unwrap();
        assert_eq!(v["data"]["version"].as_str(), row.current_credential_version.as_deref());
        assert_eq!(
            serde_json::to_value(EventType::CredentialsUpdated).unwrap(),
            EventType::CredentialsUpdated.as_str()
        );
    }

    /// openapi.yaml announces the version events carry: `info.x-api-version` (its
    /// `info.version` is the document's own, semver, for generated packages) and the
    /// description.
    #[test]
    fn openapi_announces_this_api_version() {
        let text = include_str!("../../../openapi.yaml");
        let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
        let info = &document["info"];
        assert_eq!(info["x-api-version"].as_str(), Some(API_VERSION));
        let description = info["description"].as_str().unwrap();
        assert!(
            description.contains(&format!("API version `{API_VERSION}`")),
            "{description}"
        );
        assert_ne!(
            info["version"].as_str(),
            Some(API_VERSION),
            "info.version must stay a package version"
        );
    }
}
