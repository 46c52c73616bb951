//! A cap on the Secrets Manager calls one process makes per second, in front of any
//! [`Vault`]: the sweeper's, so that its bursts leave most of the account's write quotas
//! (`DeleteSecret`, `RestoreSecret`, `PutSecretValue`: 50 a second each, per account and
//! region, shared with every handler) to the API (docs/DECISIONS.md, "The sweeper's
//! Secrets Manager rate").
//!
//! Calls are spaced evenly on the clock's timer: each takes the next free slot, waiting
//! for it if it lies ahead. A call that waits holds no AWS connection.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::domain::connector::SecretArn;
use crate::domain::credentials::SecretPayload;
use crate::ports::{Clock, DependencyError, SecretError, SecretRef, Vault};

pub struct RateCappedVault {
    inner: Arc<dyn Vault>,
    clock: Arc<dyn Clock>,
    interval_ms: i64,
    /// The earliest moment (timer ms) the next call may start.
    next_slot_ms: Mutex<i64>,
}

impl RateCappedVault {
    /// At most `per_second` vault calls a second (each is one Secrets Manager call,
    /// except `put` of an existing secret, which the sweeper never makes).
    pub fn new(inner: Arc<dyn Vault>, clock: Arc<dyn Clock>, per_second: u32) -> Self {
        RateCappedVault {
            inner,
            clock,
            interval_ms: 1000 / i64::from(per_second.max(1)),
            next_slot_ms: Mutex::new(i64::MIN),
        }
    }

    /// Waits for this call's slot.
    async fn slot(&self) {
        let now = self.clock.timer_ms();
        let at = {
            let mut next = self.next_slot_ms.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(now);
            *next = at + self.interval_ms;
            at
        };
        if at > now {
            self.clock.sleep_until_ms(at).await;
        }
    }
}

#[async_trait]
impl Vault for RateCappedVault {
    async fn create(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        self.slot().await;
        self.inner.create(secret).await
    }

    async fn write_version(
        &self,
        secret: &SecretRef,
        version_id: &str,
        label: &str,
        payload: &SecretPayload,
    ) -> Result<SecretArn, SecretError> {
        self.slot().await;
        self.inner.write_version(secret, version_id, label, payload).await
    }

    /// One slot: the compare-and-swap is one call; its rare fall-back (a look-up, then
    /// the move) runs over the cap by a call or two.
    async fn make_current(
        &self,
        secret: &SecretRef,
        version_id: &str,
        believed_current: Option<&str>,
    ) -> Result<(), SecretError> {
        self.slot().await;
        self.inner.make_current(secret, version_id, believed_current).await
    }

    async fn label_current(&self, secret: &SecretRef, label: &str) -> Result<Option<String>, SecretError> {
        self.slot().await;
        self.inner.label_current(secret, label).await
    }

    async fn schedule_deletion(&self, secret: &SecretRef, recovery_days: i64) -> Result<(), DependencyError> {
        self.slot().await;
        self.inner.schedule_deletion(secret, recovery_days).await
    }

    async fn restore(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        self.slot().await;
        self.inner.restore(secret).await
    }

    async fn force_delete(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        self.slot().await;
        self.inner.force_delete(secret).await
    }
}
