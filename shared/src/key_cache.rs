//! A per-container cache in front of any [`KeyStore`]: a warm `get` or `list` then costs
//! one AWS call (the row), not two (key, then row).
//!
//! What it trades, on purpose and documented in `docs/DECISIONS.md`:
//! - Only keys that were found are cached, so a key created a moment ago works at once.
//! - A cached record is trusted for at most [`KEY_CACHE_SECONDS`] by the injected clock,
//!   so a revocation reaches every other container within that time. A revocation made
//!   through this same store drops the entry at once.
//! - Expiry (`key_expires_at`) is not cached: it is checked against the clock on every
//!   request by [`ApiKeyRecord::authenticate`].
//! - Entries are keyed by the key's SHA-256, so no key material is kept in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::domain::api_key::{ApiKeyRecord, KeyHash, KeyId};
use crate::domain::ids::EntityId;
use crate::domain::time::Timestamp;
use crate::ports::{Clock, KeyStore, StoreError};

/// How long an authenticated key's record is reused without asking the table again.
pub const KEY_CACHE_SECONDS: i64 = 30;

/// Bound on cached keys per container; only valid keys get in, so this is plenty.
const MAX_ENTRIES: usize = 1024;

pub struct CachedKeyStore {
    inner: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<KeyHash, (Timestamp, ApiKeyRecord)>>,
}

impl CachedKeyStore {
    pub fn new(inner: Arc<dyn KeyStore>, clock: Arc<dyn Clock>) -> Self {
        CachedKeyStore {
            inner,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<KeyHash, (Timestamp, ApiKeyRecord)>> {
        // A panic while holding the lock cannot leave the map half-written: recover it.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl KeyStore for CachedKeyStore {
    async fn find(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        let now = self.clock.now();
        if let Some((fetched, record)) = self.entries().get(hash) {
            let age = fetched.seconds_until(now);
            if (0..KEY_CACHE_SECONDS).contains(&age) {
                return Ok(Some(record.clone()));
            }
        }
        let found = self.inner.find(hash).await?;
        let mut entries = self.entries();
        match &found {
            Some(record) if record.revoked_at.is_none() => {
                if entries.len() >= MAX_ENTRIES {
                    entries.retain(|_, (fetched, _)| (0..KEY_CACHE_SECONDS).contains(&fetched.seconds_until(now)));
                    if entries.len() >= MAX_ENTRIES {
                        entries.clear();
                    }
                }
                entries.insert(hash.clone(), (now, record.clone()));
            }
            _ => {
                entries.remove(hash);
            }
        }
        Ok(found)
    }

    async fn create(&self, record: &ApiKeyRecord, hash: &KeyHash) -> Result<(), StoreError> {
        self.inner.create(record, hash).await
    }

    async fn revoke(&self, key_id: &KeyId, at: Timestamp) -> Result<bool, StoreError> {
        // Dropped before and after: a lookup racing the revocation cannot re-cache it
        // with the pre-revocation record for longer than one request.
        self.entries().retain(|_, (_, record)| &record.key_id != key_id);
        let revoked = self.inner.revoke(key_id, at).await?;
        self.entries().retain(|_, (_, record)| &record.key_id != key_id);
        Ok(revoked)
    }

    async fn list(&self, entity: EntityId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.inner.list(entity).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::domain::api_key::{generate_key, NewKey, Scope};
    use crate::ports::ManualClock;

    /// The table, reduced to a map, counting how often it is asked.
    #[derive(Default)]
    struct CountingKeys {
        records: Mutex<HashMap<KeyHash, ApiKeyRecord>>,
        finds: AtomicUsize,
    }

    #[async_trait]
    impl KeyStore for CountingKeys {
        async fn find(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            Ok(self.records.lock().unwrap().get(hash).cloned())
        }
        async fn create(&self, record: &ApiKeyRecord, hash: &KeyHash) -> Result<(), StoreError> {
            self.records.lock().unwrap().insert(hash.clone(), record.clone());
            Ok(())
        }
        async fn revoke(&self, key_id: &KeyId, at: Timestamp) -> Result<bool, StoreError> {
            let mut records = self.records.lock().unwrap();
            let mut found = false;
            for record in records.values_mut().filter(|r| &r.key_id == key_id) {
                record.revoked_at = Some(at);
                found = true;
            }
            Ok(found)
        }
        async fn list(&self, _: EntityId) -> Result<Vec<ApiKeyRecord>, StoreError> {
            Ok(vec![])
        }
    }

    fn setup() -> (Arc<CountingKeys>, Arc<ManualClock>, CachedKeyStore) {
        let table = Arc::new(CountingKeys::default());
        let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()));
        let cache = CachedKeyStore::new(table.clone(), clock.clone());
        (table, clock, cache)
    }

    /// A new key, stored in `table` (not through the cache).
    async fn stored_key(table: &CountingKeys, now: Timestamp) -> NewKey {
        let key = generate_key(false);
        store(table, &key, now).await;
        key
    }

    async fn store(table: &CountingKeys, key: &NewKey, now: Timestamp) {
        let record = ApiKeyRecord {
            key_id: key.key_id.clone(),
            entity_id: EntityId::new_random(),
            livemode: false,
            scopes: BTreeSet::from([Scope::Read]),
            created_at: now,
            key_expires_at: None,
            revoked_at: None,
        };
        table.create(&record, &key.hash).await.unwrap();
    }

    #[tokio::test]
    async fn a_found_key_is_reused_until_the_cache_time_passes() {
        let (table, clock, cache) = setup();
        let key = stored_key(&table, clock.now()).await;
        for _ in 0..5 {
            assert!(cache.find(&key.hash).await.unwrap().is_some());
        }
        assert_eq!(table.finds.load(Ordering::SeqCst), 1);
        clock.advance_seconds(KEY_CACHE_SECONDS);
        assert!(cache.find(&key.hash).await.unwrap().is_some());
        assert_eq!(table.finds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn unknown_keys_are_not_cached_so_a_new_key_works_at_once() {
        let (table, clock, cache) = setup();
        let key = generate_key(true);
        assert!(cache.find(&key.hash).await.unwrap().is_none());
        store(&table, &key, clock.now()).await;
        assert!(cache.find(&key.hash).await.unwrap().is_some());
        assert_eq!(table.finds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn revocation_elsewhere_is_seen_within_the_cache_time_and_here_at_once() {
        let (table, clock, cache) = setup();
        let key = stored_key(&table, clock.now()).await;
        assert!(cache.find(&key.hash).await.unwrap().is_some());
        // Another container revokes it: this one may serve it until the cache time ends.
        table.revoke(&key.key_id, clock.now()).await.unwrap();
        let cached = cache.find(&key.hash).await.unwrap().unwrap();
        assert!(cached.revoked_at.is_none());
        clock.advance_seconds(KEY_CACHE_SECONDS);
        assert!(cache.find(&key.hash).await.unwrap().unwrap().revoked_at.is_some());

        // Revoked through this store: dropped at once.
        let other = stored_key(&table, clock.now()).await;
        assert!(cache.find(&other.hash).await.unwrap().unwrap().revoked_at.is_none());
        assert!(cache.revoke(&other.key_id, clock.now()).await.unwrap());
        assert!(cache.find(&other.hash).await.unwrap().unwrap().revoked_at.is_some());
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let (table, clock, cache) = setup();
        for _ in 0..MAX_ENTRIES + 10 {
            let key = stored_key(&table, clock.now()).await;
            cache.find(&key.hash).await.unwrap();
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);
    }
}
