//! A port adapter built the first time it is called. The read-only functions (get, list)
//! never call Secrets Manager or EventBridge; building those SDK clients at init only
//! lengthened their cold start (measured in docs/PERFORMANCE.md). Wrapped this way they
//! would still work, at the cost of building the client on that first call.

use std::sync::OnceLock;

use async_trait::async_trait;

use crate::domain::connector::SecretArn;
use crate::domain::credentials::SecretPayload;
use crate::ports::{DependencyError, EventBus, OutboxRecord, SecretError, SecretRef, Vault};

pub struct OnFirstUse<T> {
    adapter: OnceLock<T>,
    build: Box<dyn Fn() -> T + Send + Sync>,
}

impl<T> OnFirstUse<T> {
    pub fn new(build: impl Fn() -> T + Send + Sync + 'static) -> Self {
        OnFirstUse {
            adapter: OnceLock::new(),
            build: Box::new(build),
        }
    }

    fn adapter(&self) -> &T {
        self.adapter.get_or_init(|| (self.build)())
    }

    /// Whether the adapter has been built.
    #[cfg(test)]
    fn is_built(&self) -> bool {
        self.adapter.get().is_some()
    }
}

#[async_trait]
impl<T: Vault> Vault for OnFirstUse<T> {
    async fn create(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        self.adapter().create(secret).await
    }

    async fn write_version(
        &self,
        secret: &SecretRef,
        version_id: &str,
        label: &str,
        payload: &SecretPayload,
    ) -> Result<SecretArn, SecretError> {
        self.adapter().write_version(secret, version_id, label, payload).await
    }

    async fn make_current(
        &self,
        secret: &SecretRef,
        version_id: &str,
        believed_current: Option<&str>,
    ) -> Result<(), SecretError> {
        self.adapter().make_current(secret, version_id, believed_current).await
    }

    async fn label_current(&self, secret: &SecretRef, label: &str) -> Result<Option<String>, SecretError> {
        self.adapter().label_current(secret, label).await
    }

    async fn schedule_deletion(&self, secret: &SecretRef, recovery_days: i64) -> Result<(), DependencyError> {
        self.adapter().schedule_deletion(secret, recovery_days).await
    }

    async fn restore(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        self.adapter().restore(secret).await
    }

    async fn force_delete(&self, secret: &SecretRef) -> Result<(), DependencyError> {
        self.adapter().force_delete(secret).await
    }
}

#[async_trait]
impl<T: EventBus> EventBus for OnFirstUse<T> {
    async fn publish(&self, records: &[OutboxRecord]) -> Result<(), DependencyError> {
        self.adapter().publish(records).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::domain::catalog::ConnectorType;
    use crate::domain::ids::{ConnectorId, EntityId};

    struct CountingVault {
        restores: AtomicUsize,
    }

    #[async_trait]
    impl Vault for CountingVault {
        async fn create(&self, _: &SecretRef) -> Result<(), DependencyError> {
            unreachable!("not called by this test")
        }
        async fn write_version(
            &self,
            _: &SecretRef,
            _: &str,
            _: &str,
            _: &SecretPayload,
        ) -> Result<SecretArn, SecretError> {
            unreachable!("not called by this test")
        }
        async fn make_current(&self, _: &SecretRef, _: &str, _: Option<&str>) -> Result<(), SecretError> {
            unreachable!("not called by this test")
        }
        async fn label_current(&self, _: &SecretRef, _: &str) -> Result<Option<String>, SecretError> {
            unreachable!("not called by this test")
        }
        async fn schedule_deletion(&self, _: &SecretRef, _: i64) -> Result<(), DependencyError> {
            unreachable!("not called by this test")
        }
        async fn restore(&self, _: &SecretRef) -> Result<(), DependencyError> {
            self.restores.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn force_delete(&self, _: &SecretRef) -> Result<(), DependencyError> {
            unreachable!("not called by this test")
        }
    }

    #[tokio::test]
    async fn the_adapter_is_built_on_the_first_call_only_and_then_reused() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let vault = OnFirstUse::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            CountingVault {
                restores: AtomicUsize::new(0),
            }
        });
        assert!(!vault.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 0);

        let stripe = ConnectorType::parse("stripe").unwrap();
        for _ in 0..3 {
            let secret = SecretRef {
                entity_id: EntityId::new_random(),
                connector_id: ConnectorId::new_random(),
                connector_type: stripe,
            };
            vault.restore(&secret).await.unwrap();
        }
        assert!(vault.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(vault.adapter().restores.load(Ordering::SeqCst), 3);
    }
}
