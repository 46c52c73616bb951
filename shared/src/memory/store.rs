//! The in-memory DynamoDB: connector rows with conditional writes on `version`,
//! all-or-nothing transactions (with `ClientRequestToken` replay), the sparse `due` index,
//! API keys and `Idempotency-Key` records.

use async_trait::async_trait;

use crate::aws::idempotency::IDEMPOTENCY_WINDOW_SECONDS;
use crate::aws::items::TTL_MARGIN_DAYS;
use crate::aws::table::due_shard;
use crate::domain::api_key::{ApiKeyRecord, KeyHash, KeyId};
use crate::domain::catalog::ConnectorType;
use crate::domain::connector::Connector;
use crate::domain::error::Dependency::DynamoDb;
use crate::domain::ids::EntityId;
use crate::domain::sync::SyncState;
use crate::domain::time::Timestamp;
use crate::planted::{self, Defect};
use crate::ports::{
    ConnectorStore, Due, FollowUp, HeldClaim, IdempotencyClaim, IdempotencyScope, IdempotencyStore, KeyAnswer,
    KeyStore, LeaseClaim, OutboxRecord, SecretGuard, StoreError, DUE_SHARDS, IDEMPOTENCY_LEASE_SECONDS,
};

use super::state::{IdempotencyRecord, State, StoredRow};
use super::Memory;

/// DynamoDB remembers a transaction's token for ten minutes.
const TOKEN_MEMORY_SECONDS: i64 = 600;

fn stored(row: &Connector) -> StoredRow {
    let ttl = match (row.is_active, row.recoverable_until) {
        (false, Some(until)) => Some(until.plus_days(TTL_MARGIN_DAYS).unix()),
        _ => None,
    };
    StoredRow {
        row: row.stored_form(),
        ttl,
        reap_at: None,
        retry_at: None,
    }
}

/// A row as a read returns it: with its sync state item.
fn with_sync(state: &State, row: &Connector) -> Connector {
    Connector {
        sync: state.syncs.get(&key(row)).cloned(),
        ..row.clone()
    }
}

fn key(row: &Connector) -> (EntityId, ConnectorType) {
    (row.entity_id, row.connector_type)
}

/// The stored row is connector `row.id` at `version` (not a newer connector of the same
/// type that happens to be at that version).
fn version_is(state: &State, row: &Connector, version: u64) -> bool {
    state
        .rows
        .get(&key(row))
        .is_some_and(|s| s.row.id == row.id && s.row.version == version)
}

/// Applies one transaction (a row write and its outbox records) if `holds`, all or
/// nothing; a token seen in the last ten minutes means "already applied".
fn transact(
    state: &mut State,
    now: i64,
    records: &[OutboxRecord],
    answer: Option<&KeyAnswer>,
    holds: bool,
    write: impl FnOnce(&mut State),
) -> Result<(), StoreError> {
    let token = records.first().map(|r| r.event_id.clone());
    if let Some(t) = &token {
        if state.tokens.get(t).is_some_and(|at| now - at < TOKEN_MEMORY_SECONDS) {
            return Ok(());
        }
    }
    // The key's answer goes in with the change, while its claim is still held.
    let key = answer.map(|a| idempotency_key(a.scope, &a.key));
    let claim_held = match (answer, &key) {
        (Some(a), Some(k)) => state.idempotency.get(k).is_some_and(|r| r.token == a.token),
        _ => true,
    };
    if !holds || !claim_held {
        return Err(StoreError::ConditionFailed);
    }
    write(state);
    if let (Some(a), Some(k)) = (answer, key) {
        if let Some(r) = state.idempotency.get_mut(&k) {
            r.answer = Some((a.status, a.body.clone(), a.follow_up));
        }
    }
    for record in records {
        let seq = state.next_seq();
        state.outbox.insert(record.event_id.clone(), (seq, record.clone()));
        state.committed.push(record.clone());
    }
    if let Some(t) = token {
        state.tokens.insert(t, now);
    }
    Ok(())
}

/// The first `limit` items as the DynamoDB adapter reads them: shard by shard from
/// `first_shard`, then by (due time, insertion order) within a shard. Rows are in the
/// adapter's shard (a hash of entity and type); records and guards, whose ids are random,
/// in their insertion number's, so that a simulated run replays from its seed.
fn first<T: Clone>(items: Vec<(u32, Timestamp, u64, T)>, limit: usize, first_shard: u32) -> Due<T> {
    let mut items: Vec<(u32, Timestamp, u64, T)> = items
        .into_iter()
        .map(|(shard, at, seq, t)| {
            let order = (shard + DUE_SHARDS - first_shard % DUE_SHARDS) % DUE_SHARDS;
            (order, at, seq, t)
        })
        .collect();
    items.sort_by_key(|(order, at, seq, _)| (*order, *at, *seq));
    let items: Vec<T> = items.into_iter().take(limit).map(|(_, _, _, t)| t).collect();
    Due {
        items_read: items.len(),
        items,
        bad_items: 0,
    }
}

fn shard_of(seq: u64) -> u32 {
    (seq % u64::from(DUE_SHARDS)) as u32
}

#[async_trait]
impl ConnectorStore for Memory {
    async fn get(&self, entity: EntityId, connector_type: ConnectorType) -> Result<Option<Connector>, StoreError> {
        Ok(self
            .call(DynamoDb, "Query", |s, _| {
                s.rows.get(&(entity, connector_type)).map(|r| with_sync(s, &r.row))
            })
            .await?)
    }

    async fn list(&self, entity: EntityId) -> Result<Vec<Connector>, StoreError> {
        Ok(self
            .call(DynamoDb, "Query", |s, _| {
                s.rows
                    .range((entity, ConnectorType::all().next().unwrap())..)
                    .take_while(|((e, _), _)| *e == entity)
                    .map(|(_, r)| with_sync(s, &r.row))
                    .collect()
            })
            .await?)
    }

    async fn save(
        &self,
        row: &Connector,
        expected: Option<u64>,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError> {
        self.call(DynamoDb, "TransactWriteItems", |s, now| {
            let holds = match expected {
                None => !s.rows.contains_key(&key(row)),
                Some(v) => version_is(s, row, v),
            };
            transact(s, now, records, answer, holds, |s| {
                s.rows.insert(key(row), stored(row));
            })
        })
        .await?
    }

    async fn delete(
        &self,
        row: &Connector,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError> {
        self.call(DynamoDb, "TransactWriteItems", |s, now| {
            let holds = version_is(s, row, row.version) || planted::on(Defect::UnconditionalDelete);
            transact(s, now, records, answer, holds, |s| {
                s.rows.remove(&key(row));
                s.syncs.remove(&key(row));
            })
        })
        .await?
    }

    async fn save_sync(
        &self,
        row: &Connector,
        state: &SyncState,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError> {
        self.call(DynamoDb, "TransactWriteItems", |s, now| {
            let stored_version = s.syncs.get(&key(row)).map(|st| st.version);
            let state_holds = match state.version {
                0 | 1 => stored_version.is_none(),
                v => stored_version == Some(v - 1),
            };
            let row_holds = s
                .rows
                .get(&key(row))
                .is_some_and(|r| r.row.id == row.id && r.row.is_active && r.row.sync_epoch == row.sync_epoch);
            transact(s, now, records, answer, state_holds && row_holds, |s| {
                s.syncs.insert(key(row), state.clone());
            })
        })
        .await?
    }

    async fn clear_outbox(&self, event_id: &str) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "DeleteItem", |s, _| {
                s.outbox.remove(event_id);
            })
            .await?)
    }

    async fn clear_outbox_if_unchanged(&self, event_id: &str, row: &Connector) -> Result<bool, StoreError> {
        Ok(self
            .call(DynamoDb, "TransactWriteItems", |s, _| {
                let unchanged = version_is(s, row, row.version);
                if unchanged {
                    s.outbox.remove(event_id);
                }
                unchanged
            })
            .await?)
    }

    async fn reschedule_outbox(&self, record: &OutboxRecord) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "PutItem", |s, _| {
                if let Some(entry) = s.outbox.get_mut(&record.event_id) {
                    entry.1 = record.clone();
                }
            })
            .await?)
    }

    async fn due_expiries(&self, now: Timestamp, limit: usize, first_shard: u32) -> Result<Due<Connector>, StoreError> {
        Ok(self
            .call(DynamoDb, "Query", |s, _| {
                let due = s
                    .rows
                    .values()
                    .filter_map(|r| match (r.row.is_active, r.row.recoverable_until) {
                        (false, Some(until)) => {
                            let at = r.retry_at.filter(|at| *at > until).unwrap_or(until);
                            let shard = due_shard(&format!("{}#{}", r.row.entity_id, r.row.connector_type));
                            (at <= now).then(|| (shard, at, 0, r.row.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                first(due, limit, first_shard)
            })
            .await?)
    }

    async fn defer_expiry(&self, row: &Connector, retry_at: Timestamp) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "PutItem", |s, _| {
                if version_is(s, row, row.version) {
                    if let Some(stored) = s.rows.get_mut(&key(row)) {
                        stored.retry_at = Some(retry_at);
                    }
                }
            })
            .await?)
    }

    async fn due_outbox(
        &self,
        now: Timestamp,
        limit: usize,
        first_shard: u32,
    ) -> Result<Due<OutboxRecord>, StoreError> {
        Ok(self
            .call(DynamoDb, "Query", |s, _| {
                let due = s
                    .outbox
                    .values()
                    .filter(|(_, r)| r.next_attempt_at <= now)
                    .map(|(seq, r)| (shard_of(*seq), r.next_attempt_at, *seq, r.clone()))
                    .collect();
                first(due, limit, first_shard)
            })
            .await?)
    }

    async fn guard_secret(&self, guard: &SecretGuard) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "PutItem", |s, _| {
                let seq = s.next_seq();
                s.guards.insert(guard.secret.connector_id, (seq, *guard));
            })
            .await?)
    }

    async fn due_guards(
        &self,
        before: Timestamp,
        limit: usize,
        first_shard: u32,
    ) -> Result<Due<SecretGuard>, StoreError> {
        Ok(self
            .call(DynamoDb, "Query", |s, _| {
                let due = s
                    .guards
                    .values()
                    .filter(|(_, g)| g.index_key() <= before)
                    .map(|(seq, g)| (shard_of(*seq), g.index_key(), *seq, *g))
                    .collect();
                first(due, limit, first_shard)
            })
            .await?)
    }

    async fn defer_guard(&self, guard: &SecretGuard) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "PutItem", |s, _| {
                let id = guard.secret.connector_id;
                if let Some(entry) = s.guards.get_mut(&id).filter(|(_, g)| g.write_id == guard.write_id) {
                    entry.1 = *guard;
                }
            })
            .await?)
    }

    async fn clear_guard(&self, guard: &SecretGuard) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "DeleteItem", |s, _| {
                let id = guard.secret.connector_id;
                if s.guards.get(&id).is_some_and(|(_, g)| g.write_id == guard.write_id) {
                    s.guards.remove(&id);
                }
            })
            .await?)
    }

    async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<LeaseClaim, StoreError> {
        Ok(self
            .call(DynamoDb, "PutItem", |s, _| {
                if s.leases
                    .get(name)
                    .is_some_and(|(_, held_until)| *held_until > now.unix())
                {
                    return LeaseClaim::HeldElsewhere;
                }
                s.leases.insert(name.to_string(), (owner.to_string(), until.unix()));
                LeaseClaim::Taken
            })
            .await?)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "DeleteItem", |s, _| {
                if s.leases.get(name).is_some_and(|(holder, _)| holder == owner) {
                    s.leases.remove(name);
                }
            })
            .await?)
    }
}

#[async_trait]
impl KeyStore for Memory {
    async fn find(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self
            .call(DynamoDb, "GetItem", |s, _| s.keys.get(hash.as_str()).cloned())
            .await?)
    }

    async fn create(&self, record: &ApiKeyRecord, hash: &KeyHash) -> Result<(), StoreError> {
        self.call(DynamoDb, "TransactWriteItems", |s, _| {
            let taken = s.keys.contains_key(hash.as_str()) || s.keys.values().any(|k| k.key_id == record.key_id);
            if taken {
                return Err(StoreError::ConditionFailed);
            }
            s.keys.insert(hash.as_str().to_string(), record.clone());
            Ok(())
        })
        .await?
    }

    async fn revoke(&self, key_id: &KeyId, at: Timestamp) -> Result<bool, StoreError> {
        Ok(self
            .call(DynamoDb, "TransactWriteItems", |s, _| {
                let found = s.keys.values_mut().find(|k| &k.key_id == key_id);
                // The first revocation's time stands (`if_not_exists` in the adapter).
                found.map(|k| k.revoked_at.get_or_insert(at)).is_some()
            })
            .await?)
    }

    async fn list(&self, entity: EntityId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(self
            .call(DynamoDb, "Query", |s, _| {
                s.keys.values().filter(|k| k.entity_id == entity).cloned().collect()
            })
            .await?)
    }
}

fn idempotency_key(scope: IdempotencyScope, key: &str) -> (EntityId, bool, String) {
    (scope.entity_id, scope.livemode, key.to_string())
}

#[async_trait]
impl IdempotencyStore for Memory {
    async fn claim(
        &self,
        scope: IdempotencyScope,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<IdempotencyClaim, StoreError> {
        let now = now.unix();
        Ok(self
            .call(DynamoDb, "PutItem", |s, _| {
                let k = idempotency_key(scope, key);
                let takeable = match s.idempotency.get(&k) {
                    None => true,
                    Some(r) if r.expires_at <= now => true,
                    Some(r) => r.answer.is_none() && r.lease_until <= now && r.fingerprint == fingerprint,
                };
                if takeable {
                    let token = crate::domain::ids::fresh_uuid().to_string();
                    let record = IdempotencyRecord {
                        fingerprint: fingerprint.to_string(),
                        token: token.clone(),
                        lease_until: now + IDEMPOTENCY_LEASE_SECONDS,
                        expires_at: now + IDEMPOTENCY_WINDOW_SECONDS,
                        answer: None,
                    };
                    s.idempotency.insert(k, record);
                    return IdempotencyClaim::Claimed { token };
                }
                let r = &s.idempotency[&k];
                match &r.answer {
                    _ if r.fingerprint != fingerprint => IdempotencyClaim::Mismatch,
                    Some((status, body, follow_up)) => IdempotencyClaim::Replay {
                        status: *status,
                        body: body.clone(),
                        follow_up: *follow_up,
                    },
                    None => IdempotencyClaim::InProgress,
                }
            })
            .await?)
    }

    async fn complete(
        &self,
        claim: HeldClaim<'_>,
        status: u16,
        body: &str,
        follow_up: Option<FollowUp>,
    ) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "UpdateItem", |s, _| {
                if let Some(r) = s.idempotency.get_mut(&idempotency_key(claim.scope, claim.key)) {
                    if r.token == claim.token {
                        r.answer = Some((status, body.to_string(), follow_up));
                    }
                }
            })
            .await?)
    }

    async fn release(&self, claim: HeldClaim<'_>) -> Result<(), StoreError> {
        Ok(self
            .call(DynamoDb, "DeleteItem", |s, _| {
                let k = idempotency_key(claim.scope, claim.key);
                // A done key keeps its answer (as the DynamoDB adapter's condition).
                if s.idempotency
                    .get(&k)
                    .is_some_and(|r| r.token == claim.token && r.answer.is_none())
                {
                    s.idempotency.remove(&k);
                }
            })
            .await?)
    }
}
