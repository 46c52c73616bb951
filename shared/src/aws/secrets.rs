//! Secrets Manager adapter of [`Vault`]: one secret per connector, named
//! `SECRET_PREFIX + {entity_id}/{connector_id}` and tagged `entity_id`, `connector_type`
//! and `connector_id`. The name carries the connector's id, so every call is bound to
//! the connector it was meant for: a late retry for a deleted connector finds nothing,
//! never the secret of a newer connector of the same type (which has a new id), and a
//! re-connect right after a permanent delete never meets a name still being deleted.

use async_trait::async_trait;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;

use crate::domain::connector::SecretArn;
use crate::domain::credentials::SecretPayload;
use crate::domain::error::Dependency;
use crate::ports::{DependencyError, FingerprintKeySource, SecretError, SecretRef, Vault};

use super::errors::classify;

pub struct SecretsManagerVault {
    client: Client,
    prefix: String,
    /// The KMS key new secrets are encrypted with (`SECRETS_KMS_KEY_ID`); `None`: the
    /// account's default `aws/secretsmanager` key.
    kms_key_id: Option<String>,
}

impl SecretsManagerVault {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        SecretsManagerVault {
            client,
            prefix: prefix.into(),
            kms_key_id: None,
        }
    }

    /// New secrets are created with this KMS key (`KmsKeyId` of `CreateSecret`); `None`
    /// sends no `KmsKeyId`. Existing secrets keep the key they were created with.
    pub fn with_kms_key_id(self, kms_key_id: Option<String>) -> Self {
        SecretsManagerVault { kms_key_id, ..self }
    }

    pub fn secret_name(&self, secret: &SecretRef) -> String {
        secret_name(&self.prefix, secret)
    }

    /// Moves the staging label `stage` to `to`, from `from`; `Ok(false)` if `from` does
    /// not hold it (any more): the compare-and-swap failed.
    async fn move_stage(&self, name: &str, stage: &str, to: &str, from: Option<&str>) -> Result<bool, SecretError> {
        let moved = self
            .client
            .update_secret_version_stage()
            .secret_id(name)
            .version_stage(stage)
            .move_to_version_id(to)
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await;
        match moved {
            Ok(_) => Ok(true),
            Err(e) if stage_moved_meanwhile(&e) => Ok(false),
            Err(e) => Err(secret_error(e, "UpdateSecretVersionStage")),
        }
    }

    /// The version holding `AWSCURRENT` (`Scheduled` if the secret is scheduled for deletion).
    async fn current_version(&self, name: &str) -> Result<Option<String>, SecretError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| secret_error(e, "DescribeSecret"))?;
        if described.deleted_date().is_some() {
            return Err(SecretError::Scheduled);
        }
        Ok(described.version_ids_to_stages().and_then(|versions| {
            versions
                .iter()
                .find(|(_, stages)| stages.iter().any(|s| s == CURRENT))
                .map(|(id, _)| id.clone())
        }))
    }
}

/// The staging label readers ask for.
const CURRENT: &str = "AWSCURRENT";

/// How often `make_current` looks the current version up again when it moved between
/// the look-up and the move (another request moving it at the same time).
const MOVE_ATTEMPTS: usize = 3;

/// A failed call on an existing secret: absent, scheduled for deletion (Secrets Manager
/// refuses changes to it: `InvalidRequestException`), or a dependency failure.
fn secret_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    e: SdkError<E, HttpResponse>,
    operation: &'static str,
) -> SecretError {
    match e.as_service_error().and_then(|s| s.code()) {
        Some("ResourceNotFoundException") => SecretError::Absent,
        Some("InvalidRequestException") => SecretError::Scheduled,
        _ => SecretError::Dependency(classify(Dependency::SecretsManager, operation, &e)),
    }
}

/// Whether a stage move failed because `RemoveFromVersionId` no longer holds the label.
fn stage_moved_meanwhile<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|code| code == "InvalidParameterException")
}

/// `{prefix}{entity_id}/{connector_id}`.
pub fn secret_name(prefix: &str, secret: &SecretRef) -> String {
    if crate::planted::on(crate::planted::Defect::SecretsNamedByType) {
        return format!("{prefix}{}/{}", secret.entity_id, secret.connector_type);
    }
    format!("{prefix}{}/{}", secret.entity_id, secret.connector_id)
}

fn tag(key: &str, value: String) -> Tag {
    Tag::builder().key(key).value(value).build()
}

#[async_trait]
impl Vault for SecretsManagerVault {
    async fn create(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        let created = self
            .client
            .create_secret()
            .name(self.secret_name(secret))
            .set_kms_key_id(self.kms_key_id.clone())
            .tags(tag("entity_id", secret.entity_id.to_string()))
            .tags(tag("connector_type", secret.connector_type.to_string()))
            .tags(tag("connector_id", secret.connector_id.to_string()))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => Ok(()),
            // The name is still being deleted (its connector was deleted a moment ago):
            // a retry finds the connector gone.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_invalid_request_exception()) => {
                Err(DependencyError::Unavailable(Dependency::SecretsManager))
            }
            Err(e) => Err(classify(Dependency::SecretsManager, "CreateSecret", &e)),
        }
    }

    async fn write_version(
        &self,
        secret: &SecretRef,
        version_id: &str,
        label: &str,
        payload: &SecretPayload,
    ) -> Result<SecretArn, SecretError> {
        let written = self
            .client
            .put_secret_value()
            .secret_id(self.secret_name(secret))
            .client_request_token(version_id)
            .secret_string(payload.to_secret_string())
            .version_stages(label)
            .send()
            .await
            .map_err(|e| secret_error(e, "PutSecretValue"))?;
        Ok(SecretArn::new(written.arn.unwrap_or_default()))
    }

    async fn make_current(
        &self,
        secret: &SecretRef,
        version_id: &str,
        believed_current: Option<&str>,
    ) -> Result<(), SecretError> {
        let name = self.secret_name(secret);
        if believed_current == Some(version_id) {
            return Ok(());
        }
        if let Some(from) = believed_current {
            if self.move_stage(&name, CURRENT, version_id, Some(from)).await? {
                return Ok(());
            }
        }
        // Moved by someone else between the look-up and the move: look again.
        for _ in 0..MOVE_ATTEMPTS {
            let current = self.current_version(&name).await?;
            if current.as_deref() == Some(version_id)
                || self.move_stage(&name, CURRENT, version_id, current.as_deref()).await?
            {
                return Ok(());
            }
        }
        Err(SecretError::Dependency(DependencyError::Unavailable(
            Dependency::SecretsManager,
        )))
    }

    async fn label_current(&self, secret: &SecretRef, label: &str) -> Result<Option<String>, SecretError> {
        let name = self.secret_name(secret);
        let Some(current) = self.current_version(&name).await? else {
            return Ok(None);
        };
        // A label of ours no other version holds yet: nothing to remove it from.
        self.move_stage(&name, label, &current, None).await?;
        Ok(Some(current))
    }

    async fn schedule_deletion(&self, secret: &SecretRef, recovery_days: i64) -> Result<(), DependencyError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(self.secret_name(secret))
            .recovery_window_in_days(recovery_days)
            .send()
            .await;
        // Absent, or already scheduled for deletion: the desired state holds.
        done_or_already(result, "DeleteSecret", |e| {
            e.is_resource_not_found_exception() || e.is_invalid_request_exception()
        })
    }

    async fn restore(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        let result = self
            .client
            .restore_secret()
            .secret_id(self.secret_name(secret))
            .send()
            .await;
        // Absent, or not scheduled for deletion (so live already).
        done_or_already(result, "RestoreSecret", |e| {
            e.is_resource_not_found_exception() || e.is_invalid_request_exception()
        })
    }

    async fn force_delete(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(self.secret_name(secret))
            .force_delete_without_recovery(true)
            .send()
            .await;
        done_or_already(result, "DeleteSecret", |e| e.is_resource_not_found_exception())
    }
}

/// `Ok` when the call succeeded, or failed only because what it was to bring about already
/// holds (`already` says which service errors mean that); any other failure classified.
fn done_or_already<O, E: ProvideErrorMetadata>(
    result: Result<O, SdkError<E, HttpResponse>>,
    operation: &'static str,
    already: impl Fn(&E) -> bool,
) -> Result<(), DependencyError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(already) => Ok(()),
        Err(e) => Err(classify(Dependency::SecretsManager, operation, &e)),
    }
}

/// The idempotency fingerprint key, read from its own secret (`IDEMPOTENCY_FINGERPRINT_KEY_SECRET`,
/// outside the connectors' prefix). One `GetSecretValue` per call: the caller caches
/// (`fingerprint_key::OncePerContainer`). The value is never logged.
pub struct SecretsManagerFingerprintKey {
    client: Client,
    secret_id: String,
}

impl SecretsManagerFingerprintKey {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerFingerprintKey {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl FingerprintKeySource for SecretsManagerFingerprintKey {
    async fn fingerprint_key(&self) -> Result<std::sync::Arc<[u8]>, DependencyError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| classify(Dependency::SecretsManager, "GetSecretValue", &e))?;
        match out.secret_string() {
            Some(key) if !key.is_empty() => Ok(key.as_bytes().into()),
            // A binary or empty secret is not a key this deployment made.
            _ => {
                tracing::error!("the idempotency fingerprint key's secret holds no text");
                Err(DependencyError::Rejected(Dependency::SecretsManager))
            }
        }
    }
}

/// Creates the secret `name` holding a random fingerprint key unless it exists: what the
/// local bootstrap does for `make dev` and `make sam-local` (deployed, the template
/// generates it). `Ok(true)` if it was created.
pub async fn ensure_fingerprint_key_secret(client: &Client, name: &str) -> Result<bool, DependencyError> {
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let created = client
        .create_secret()
        .name(name)
        .description("Local HMAC key of Idempotency-Key fingerprints (connectors-admin bootstrap)")
        .secret_string(key)
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => Ok(false),
        Err(e) => Err(classify(Dependency::SecretsManager, "CreateSecret", &e)),
    }
}
