//! The in-memory Secrets Manager and EventBridge. Secrets are named as the real adapter
//! names them ([`crate::aws::secrets::secret_name`]); each [`Vault`] call makes the
//! adapter's AWS calls, each one step, with Secrets Manager's rules per name: a secret is
//! active, or scheduled for deletion (unreadable, restorable, deleted on its own clock);
//! a forced deletion removes it at once and blocks its name for a short while.

use async_trait::async_trait;

use crate::aws::secrets::secret_name;
use crate::domain::connector::SecretArn;
use crate::domain::credentials::SecretPayload;
use crate::domain::error::Dependency::{EventBridge, SecretsManager};
use crate::ports::{DependencyError, EventBus, OutboxRecord, SecretRef, Vault};

use super::state::{Secret, State, DELETED_NAME_BLOCKED_SECONDS};
use super::Memory;

const DAY: i64 = 86_400;

impl Memory {
    fn name(&self, secret: &SecretRef) -> String {
        secret_name(&self.secret_prefix, secret)
    }
}

/// Notes an action on `name` that finds a secret tagged for another connector.
fn check_owner(state: &mut State, name: &str, meant_for: &SecretRef) {
    if let Some(found) = state.secrets.get(name) {
        if found.owner != *meant_for {
            let owner = found.owner;
            state.foreign_touches.push((*meant_for, owner));
        }
    }
}

#[async_trait]
impl Vault for Memory {
    /// The adapter's three calls, each its own step (a request can be cut between
    /// them): `CreateSecret`, refused when the name exists; then `RestoreSecret` and
    /// `PutSecretValue`.
    async fn put(&self, secret: &SecretRef, payload: &SecretPayload) -> Result<SecretArn, DependencyError> {
        let name = self.name(secret);
        let arn = SecretArn::new(format!("arn:aws:secretsmanager:sim:000000000000:secret:{name}"));
        let value = payload.to_secret_string();
        let created = self
            .call_on(SecretsManager, "CreateSecret", Some(secret.connector_id), |s, _| {
                if s.deleted_names.contains_key(&name) || s.secrets.contains_key(&name) {
                    return false;
                }
                let fresh = Secret {
                    owner: *secret,
                    value: value.clone(),
                    deletion_at: None,
                };
                s.secrets.insert(name.clone(), fresh);
                true
            })
            .await?;
        if created {
            return Ok(arn);
        }
        self.restore(secret).await?;
        self.call_on(SecretsManager, "PutSecretValue", Some(secret.connector_id), |s, _| {
            check_owner(s, &name, secret);
            match s.secrets.get_mut(&name) {
                Some(found) => {
                    found.value = value;
                    Ok(arn)
                }
                // Deleted meanwhile, or its name still blocked: ResourceNotFound or
                // InvalidRequest, which the adapter answers 503.
                None => Err(DependencyError::Unavailable(SecretsManager)),
            }
        })
        .await?
    }

    async fn schedule_deletion(&self, secret: &SecretRef, recovery_days: i64) -> Result<(), DependencyError> {
        let name = self.name(secret);
        self.call_on(SecretsManager, "DeleteSecret", Some(secret.connector_id), |s, now| {
            check_owner(s, &name, secret);
            // Already scheduled: InvalidRequest, and the first deletion date stands.
            if let Some(found) = s.secrets.get_mut(&name) {
                found.deletion_at.get_or_insert(now + recovery_days * DAY);
            }
        })
        .await
    }

    async fn restore(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        let name = self.name(secret);
        self.call_on(SecretsManager, "RestoreSecret", Some(secret.connector_id), |s, _| {
            check_owner(s, &name, secret);
            if let Some(found) = s.secrets.get_mut(&name) {
                found.deletion_at = None;
            }
        })
        .await
    }

    async fn force_delete(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        let name = self.name(secret);
        self.call_on(SecretsManager, "DeleteSecret", Some(secret.connector_id), |s, now| {
            check_owner(s, &name, secret);
            if s.secrets.remove(&name).is_some() {
                s.deleted_names.insert(name, now + DELETED_NAME_BLOCKED_SECONDS);
            }
        })
        .await
    }
}

#[async_trait]
impl EventBus for Memory {
    async fn publish(&self, record: &OutboxRecord) -> Result<(), DependencyError> {
        self.call(EventBridge, "PutEvents", |s, _| s.published.push(record.clone()))
            .await
    }
}
