//! Operator actions shared by the admin CLI and the tests: issuing and revoking keys, and
//! creating the local resources.

use std::collections::BTreeSet;

use aws_config::SdkConfig;

use crate::aws::{events, secrets, table};
use crate::config::{FingerprintKey, Settings};
use crate::domain::api_key::{generate_key, ApiKeyRecord, KeyId, Scope};
use crate::domain::ids::EntityId;
use crate::ports::{DependencyError, StoreError};
use crate::App;

/// A key just issued: the plaintext exists only here, for the operator to hand over.
pub struct IssuedKey {
    pub plaintext: String,
    pub record: ApiKeyRecord,
}

pub async fn create_key(
    app: &App,
    entity: EntityId,
    scopes: BTreeSet<Scope>,
    livemode: bool,
    expires_in_days: Option<i64>,
) -> Result<IssuedKey, StoreError> {
    let now = app.service.clock.now();
    let key = generate_key(livemode);
    let record = ApiKeyRecord {
        key_id: key.key_id,
        entity_id: entity,
        livemode,
        scopes,
        created_at: now,
        key_expires_at: expires_in_days.map(|d| now.plus_days(d)),
        revoked_at: None,
    };
    app.service.keys.create(&record, &key.hash).await?;
    Ok(IssuedKey {
        plaintext: key.plaintext,
        record,
    })
}

pub async fn revoke_key(app: &App, key_id: &KeyId) -> Result<bool, StoreError> {
    app.service.keys.revoke(key_id, app.service.clock.now()).await
}

/// Creates the table (with TTL and the sweep index) and the event bus if missing, and the
/// fingerprint key's secret if `IDEMPOTENCY_FINGERPRINT_KEY_SECRET` names one by name
/// (an ARN names a secret that exists already: the template's).
pub async fn bootstrap(sdk: &SdkConfig, settings: &Settings) -> Result<(), DependencyError> {
    table::ensure_table(&aws_sdk_dynamodb::Client::new(sdk), &settings.table).await?;
    events::ensure_bus(&aws_sdk_eventbridge::Client::new(sdk), &settings.event_bus).await?;
    if let FingerprintKey::Secret(name) = &settings.fingerprint_key {
        if !name.starts_with("arn:") {
            secrets::ensure_fingerprint_key_secret(&aws_sdk_secretsmanager::Client::new(sdk), name).await?;
        }
    }
    Ok(())
}
