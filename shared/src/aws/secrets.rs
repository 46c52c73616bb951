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
use crate::ports::{DependencyError, FingerprintKeySource, SecretRef, Vault};

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

    /// Writes a new value into an existing secret, restoring it first: a secret scheduled
    /// for deletion (a disconnected connector getting new credentials) must come back,
    /// and restoring one that is not scheduled changes nothing. Not left to
    /// `PutSecretValue`'s refusal of a scheduled secret: the emulator accepts the write
    /// and leaves the secret scheduled (the port contract tests caught the difference).
    async fn put_value(&self, name: &str, payload: &SecretPayload) -> Result<SecretArn, DependencyError> {
        let restored = self.client.restore_secret().secret_id(name).send().await;
        match restored {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_invalid_request_exception() || s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(classify(Dependency::SecretsManager, "RestoreSecret", &e)),
        }
        let written = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(payload.to_secret_string())
            .send()
            .await;
        match written {
            Ok(out) => Ok(SecretArn::new(out.arn.unwrap_or_default())),
            // The name is still being deleted (its connector was deleted a moment ago):
            // nothing to write to; a retry finds the connector gone.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception() || s.is_invalid_request_exception()) =>
            {
                Err(DependencyError::Unavailable(Dependency::SecretsManager))
            }
            Err(e) => Err(classify(Dependency::SecretsManager, "PutSecretValue", &e)),
        }
    }
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
    async fn put(&self, secret: &SecretRef, payload: &SecretPayload) -> Result<SecretArn, DependencyError> {
        let name = self.secret_name(secret);
        let created = self
            .client
            .create_secret()
            .name(&name)
            .set_kms_key_id(self.kms_key_id.clone())
            .secret_string(payload.to_secret_string())
            .tags(tag("entity_id", secret.entity_id.to_string()))
            .tags(tag("connector_type", secret.connector_type.to_string()))
            .tags(tag("connector_id", secret.connector_id.to_string()))
            .send()
            .await;
        match created {
            Ok(out) => Ok(SecretArn::new(out.arn.unwrap_or_default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception() || s.is_invalid_request_exception()) =>
            {
                self.put_value(&name, payload).await
            }
            Err(e) => Err(classify(Dependency::SecretsManager, "CreateSecret", &e)),
        }
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
