//! The HMAC key of the stored `Idempotency-Key` fingerprints, as a container holds it.
//!
//! Deployed, the key lives in its own secret and is read with one `GetSecretValue` the
//! first time a write with an `Idempotency-Key` needs it, then kept for the container's
//! life ([`OncePerContainer`]); a failed read is not kept, so the next such request
//! tries again. Writes without the header, and reads, never fetch it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::aws::secrets::SecretsManagerFingerprintKey;
use crate::config::FingerprintKey;
use crate::domain::error::Dependency;
use crate::ports::{DependencyError, FingerprintKeySource};

/// Fetches the key from `source` once and keeps it; concurrent first requests share one
/// fetch. A failure is returned to its callers and forgotten.
pub struct OncePerContainer {
    source: Arc<dyn FingerprintKeySource>,
    key: OnceCell<Arc<[u8]>>,
}

impl OncePerContainer {
    pub fn new(source: Arc<dyn FingerprintKeySource>) -> Self {
        OncePerContainer {
            source,
            key: OnceCell::new(),
        }
    }
}

#[async_trait]
impl FingerprintKeySource for OncePerContainer {
    async fn fingerprint_key(&self) -> Result<Arc<[u8]>, DependencyError> {
        self.key
            .get_or_try_init(|| self.source.fingerprint_key())
            .await
            .cloned()
    }
}

/// A key given in plain text: local runs only (the dev server, tests, the bench).
pub struct LocalKey(Arc<[u8]>);

impl LocalKey {
    pub fn new(key: &str) -> Self {
        LocalKey(key.as_bytes().into())
    }
}

#[async_trait]
impl FingerprintKeySource for LocalKey {
    async fn fingerprint_key(&self) -> Result<Arc<[u8]>, DependencyError> {
        Ok(self.0.clone())
    }
}

/// No key configured ([`FingerprintKey::Missing`]): what a function that serves no
/// writes holds. A write function never starts with it (`Settings::for_writes`).
pub struct NoKey;

#[async_trait]
impl FingerprintKeySource for NoKey {
    async fn fingerprint_key(&self) -> Result<Arc<[u8]>, DependencyError> {
        tracing::error!("no idempotency fingerprint key is configured for this function");
        Err(DependencyError::Rejected(Dependency::SecretsManager))
    }
}

/// The source `setting` names; `secrets` builds the Secrets Manager client, only if the
/// key is in a secret.
pub fn from_setting(
    setting: &FingerprintKey,
    secrets: impl FnOnce() -> aws_sdk_secretsmanager::Client,
) -> Arc<dyn FingerprintKeySource> {
    match setting {
        FingerprintKey::Secret(id) => Arc::new(OncePerContainer::new(Arc::new(SecretsManagerFingerprintKey::new(
            secrets(),
            id,
        )))),
        FingerprintKey::Local(key) => Arc::new(LocalKey::new(key)),
        FingerprintKey::Missing => Arc::new(NoKey),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// Answers with the scripted results in turn, counting the fetches.
    struct Scripted {
        answers: Mutex<Vec<Result<&'static str, DependencyError>>>,
        fetches: AtomicUsize,
    }

    #[async_trait]
    impl FingerprintKeySource for Scripted {
        async fn fingerprint_key(&self) -> Result<Arc<[u8]>, DependencyError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            let answer = self.answers.lock().unwrap().remove(0);
            answer.map(|k| k.as_bytes().into())
        }
    }

    fn scripted(answers: Vec<Result<&'static str, DependencyError>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            answers: Mutex::new(answers),
            fetches: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn the_key_is_fetched_once_and_a_failure_is_retried_not_kept() {
        let down = DependencyError::Unavailable(Dependency::SecretsManager);
        let source = scripted(vec![Err(down), Ok("k1"), Ok("never fetched")]);
        let cached = OncePerContainer::new(source.clone());
        assert_eq!(cached.fingerprint_key().await.unwrap_err(), down);
        assert_eq!(&*cached.fingerprint_key().await.unwrap(), b"k1");
        assert_eq!(&*cached.fingerprint_key().await.unwrap(), b"k1");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_first_requests_share_one_fetch() {
        let source = scripted(vec![Ok("k1"), Ok("k2")]);
        let cached = OncePerContainer::new(source.clone());
        let (a, b, c) = tokio::join!(
            cached.fingerprint_key(),
            cached.fingerprint_key(),
            cached.fingerprint_key()
        );
        assert!([a, b, c].iter().all(|k| k.as_deref() == Ok(&b"k1"[..])));
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_setting_picks_the_source() {
        let local = from_setting(&FingerprintKey::Local("dev".into()), || {
            unreachable!("no client for a local key")
        });
        assert_eq!(&*local.fingerprint_key().await.unwrap(), b"dev");
        let missing = from_setting(&FingerprintKey::Missing, || unreachable!("no client without a secret"));
        assert_eq!(
            missing.fingerprint_key().await.unwrap_err(),
            DependencyError::Rejected(Dependency::SecretsManager)
        );
    }
}
