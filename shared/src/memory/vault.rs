//! The in-memory Secrets Manager and EventBridge. Secrets are named as the real adapter
//! names them ([`crate::aws::secrets::secret_name`]); each [`Vault`] call does what the
//! adapter's calls together do, with Secrets Manager's rules per name: a secret is
//! active, or scheduled for deletion (unreadable, restorable, deleted on its own clock);
//! a forced deletion removes it at once and blocks its name for a short while. Versions
//! and staging labels as AWS keeps them (not as the emulator does: see the port contract
//! tests): a staged write leaves `AWSCURRENT` where it is, a move of `AWSCURRENT` hands
//! `AWSPREVIOUS` to its old holder, labels stay until moved, changes to a scheduled
//! secret are refused, and unlabeled versions go past 100.

use async_trait::async_trait;

use crate::aws::secrets::secret_name;
use crate::domain::connector::SecretArn;
use crate::domain::credentials::SecretPayload;
use crate::domain::error::Dependency::{EventBridge, SecretsManager};
use crate::ports::{DependencyError, EventBus, OutboxRecord, SecretError, SecretRef, Vault};

use super::state::{Secret, SecretVersion, State, DELETED_NAME_BLOCKED_SECONDS, MAX_SECRET_VERSIONS};
use super::Memory;

const DAY: i64 = 86_400;

impl Memory {
    fn name(&self, secret: &SecretRef) -> String {
        secret_name(&self.secret_prefix, secret)
    }

    fn arn(&self, secret: &SecretRef) -> SecretArn {
        SecretArn::new(format!(
            "arn:aws:secretsmanager:sim:000000000000:secret:{}",
            self.name(secret)
        ))
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

const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

/// The secret under `name` for a call that changes it: Secrets Manager refuses changes
/// to a secret scheduled for deletion (`InvalidRequestException`).
fn existing<'s>(state: &'s mut State, name: &str) -> Result<&'s mut Secret, SecretError> {
    match state.secrets.get_mut(name) {
        None => Err(SecretError::Absent),
        Some(found) if found.deletion_at.is_some() => Err(SecretError::Scheduled),
        Some(found) => Ok(found),
    }
}

/// Past [`MAX_SECRET_VERSIONS`], the oldest versions without a label go.
fn remove_deprecated(secret: &mut Secret) {
    while secret.versions.len() > MAX_SECRET_VERSIONS {
        match secret.versions.iter().position(|v| v.labels.is_empty()) {
            Some(oldest) => secret.versions.remove(oldest),
            None => break,
        };
    }
}

#[async_trait]
impl Vault for Memory {
    async fn create(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        let name = self.name(secret);
        self.call_on(SecretsManager, "CreateSecret", Some(secret.connector_id), |s, _| {
            if s.deleted_names.contains_key(&name) {
                // The name is still being deleted: InvalidRequest.
                return Err(DependencyError::Unavailable(SecretsManager));
            }
            // ResourceExists is fine: the secret is there.
            s.secrets.entry(name).or_insert(Secret {
                owner: *secret,
                versions: Vec::new(),
                deletion_at: None,
            });
            Ok(())
        })
        .await?
    }

    async fn write_version(
        &self,
        secret: &SecretRef,
        version_id: &str,
        label: &str,
        payload: &SecretPayload,
    ) -> Result<SecretArn, SecretError> {
        let name = self.name(secret);
        let value = payload.to_secret_string();
        self.call_on(SecretsManager, "PutSecretValue", Some(secret.connector_id), |s, _| {
            check_owner(s, &name, secret);
            let found = existing(s, &name)?;
            if found.versions.iter().any(|v| v.id == version_id) {
                // The same token again: a repeat (AWS refuses another value under it).
                return Ok::<(), SecretError>(());
            }
            // The first version of a secret becomes current whatever the stages say.
            let first = found.versions.is_empty();
            found.versions.push(SecretVersion {
                id: version_id.to_string(),
                value,
                labels: Default::default(),
            });
            found.move_label(label, version_id);
            if first {
                found.move_label(CURRENT, version_id);
            }
            remove_deprecated(found);
            Ok(())
        })
        .await??;
        Ok(self.arn(secret))
    }

    async fn make_current(
        &self,
        secret: &SecretRef,
        version_id: &str,
        believed_current: Option<&str>,
    ) -> Result<(), SecretError> {
        if believed_current == Some(version_id) {
            return Ok(());
        }
        let name = self.name(secret);
        // The compare-and-swap, then (when it fails) the look-up and the move: as one call
        // here, as two or three on AWS; the outcome is the same.
        let operation = if believed_current.is_some() {
            "UpdateSecretVersionStage"
        } else {
            "DescribeSecret"
        };
        self.call_on(SecretsManager, operation, Some(secret.connector_id), |s, _| {
            check_owner(s, &name, secret);
            let found = existing(s, &name)?;
            if !found.versions.iter().any(|v| v.id == version_id) {
                return Err(SecretError::Dependency(DependencyError::Rejected(SecretsManager)));
            }
            // AWSPREVIOUS follows AWSCURRENT's old holder.
            if let Some(previous) = found.holder(CURRENT).map(|v| v.id.clone()) {
                if previous != version_id {
                    found.move_label(PREVIOUS, &previous);
                }
            }
            found.move_label(CURRENT, version_id);
            Ok(())
        })
        .await?
    }

    async fn label_current(&self, secret: &SecretRef, label: &str) -> Result<Option<String>, SecretError> {
        let name = self.name(secret);
        self.call_on(SecretsManager, "DescribeSecret", Some(secret.connector_id), |s, _| {
            check_owner(s, &name, secret);
            let found = existing(s, &name)?;
            let Some(current) = found.holder(CURRENT).map(|v| v.id.clone()) else {
                return Ok(None);
            };
            found.move_label(label, &current);
            Ok(Some(current))
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
    async fn publish(&self, records: &[OutboxRecord]) -> Result<(), DependencyError> {
        self.call(EventBridge, "PutEvents", |s, _| s.published.extend_from_slice(records))
            .await
    }
}
