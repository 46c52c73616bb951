//! The ports the service talks through. Each has an AWS adapter in `crate::aws`; the
//! errors here are the only failures the service has to understand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::api_key::{ApiKeyRecord, KeyHash, KeyId};
use crate::domain::catalog::ConnectorType;
use crate::domain::connector::{Connector, SecretArn};
use crate::domain::credentials::SecretPayload;
use crate::domain::error::{ApiError, Dependency};
use crate::domain::event::Event;
use crate::domain::ids::{ConnectorId, EntityId};
use crate::domain::sync::SyncState;
use crate::domain::time::Timestamp;

/// A dependency call failed for a reason that is not a business outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    /// Throttled: retrying later helps (429 to callers).
    #[error("{0:?} throttled the request")]
    Throttled(Dependency),
    /// Down, timing out or unreachable: retrying later helps (503 to callers).
    #[error("{0:?} is unavailable")]
    Unavailable(Dependency),
    /// Refused a request we should not have sent (a bug or a misconfiguration; 500).
    #[error("{0:?} rejected the request")]
    Rejected(Dependency),
}

impl From<DependencyError> for ApiError {
    fn from(e: DependencyError) -> Self {
        match e {
            DependencyError::Throttled(d) => ApiError::Throttled(d),
            DependencyError::Unavailable(d) => ApiError::Unavailable(d),
            DependencyError::Rejected(_) => ApiError::Internal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The write's condition did not hold: the row exists already, or its `version`
    /// moved since it was read (a lost race).
    #[error("the write's condition failed")]
    ConditionFailed,
    #[error(transparent)]
    Dependency(#[from] DependencyError),
    /// A stored item could not be decoded: a bug or hand-edited data.
    #[error("a stored item is malformed")]
    Corrupt,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ConditionFailed => ApiError::Conflict {
                code: "conflict",
                hint: "The connector was changed by another request at the same time; retry.".into(),
            },
            StoreError::Dependency(d) => d.into(),
            StoreError::Corrupt => ApiError::Internal,
        }
    }
}

/// The one connector a secret belongs to. Secrets are named from the connector's id, so
/// an action meant for one connector can never reach another's secret: a connector
/// created again with the same type gets a new id, hence a new secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretRef {
    pub entity_id: EntityId,
    pub connector_id: ConnectorId,
    pub connector_type: ConnectorType,
}

impl Connector {
    pub fn secret_ref(&self) -> SecretRef {
        SecretRef {
            entity_id: self.entity_id,
            connector_id: self.id,
            connector_type: self.connector_type,
        }
    }
}

/// Outbox records younger than this are left to the handler that wrote them.
pub const OUTBOX_GRACE_SECONDS: i64 = 60;

/// A secret guard is checked this long after it was written: six times the HTTP
/// functions' 10 s timeout, so the request that wrote it has ended (and its last AWS
/// call has landed) before the sweeper acts on it, and short enough that the next
/// scheduled sweep repairs what a killed request left (docs/DECISIONS.md, "The guard's
/// grace period").
pub const GUARD_GRACE_SECONDS: i64 = 60;

/// Written before a secret is created or given a new value, so that a secret whose
/// connector row is gone (a credentials write racing a permanent delete, or killed
/// between its two steps) is found and deleted by the sweeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretGuard {
    pub secret: SecretRef,
    pub created_at: Timestamp,
    /// Tells this guard apart from a renewal written in the same second.
    pub write_id: uuid::Uuid,
    /// Set by the sweeper after a failed check: not checked again before then (see
    /// [`retry_delay_seconds`]). A renewal starts without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
}

impl SecretGuard {
    pub fn new(secret: SecretRef, now: Timestamp) -> Self {
        SecretGuard {
            secret,
            created_at: now,
            write_id: crate::domain::ids::fresh_uuid(),
            retry_at: None,
        }
    }

    /// When the sweeper may check it: [`GUARD_GRACE_SECONDS`] after it was written, or
    /// its `retry_at` after a failed check.
    pub fn due_at(&self) -> Timestamp {
        self.retry_at
            .unwrap_or_else(|| self.created_at.plus_seconds(GUARD_GRACE_SECONDS))
    }

    /// The moment the `due` index sorts it by: the sweep reads guards whose key is at or
    /// before `now - GUARD_GRACE_SECONDS`, so a retry is keyed that much before it.
    pub fn index_key(&self) -> Timestamp {
        self.due_at().plus_seconds(-GUARD_GRACE_SECONDS)
    }
}

/// Index partitions per kind of due item (the `due` index's `due_pk` is
/// `<KIND>#<shard>`, two digits). A sweep reads them in turn from a first shard that
/// rotates between runs.
pub const DUE_SHARDS: u32 = 16;

/// The back-off of a failing expiry or guard check: as long as the item has already been
/// overdue, at least 2 minutes and at most an hour. Each failure thus about doubles the
/// wait (2, 4, 8, 16, 32 minutes, then hourly from the moment it became due), like the
/// outbox's `attempts`-based schedule, without storing a count.
pub fn retry_delay_seconds(overdue_seconds: i64) -> i64 {
    overdue_seconds.clamp(120, 3600)
}

/// Secret work that must be done before an event is announced (and is redone by the
/// sweeper if it failed): the outbox record is the durable intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretAction {
    /// Disconnect and restore: make the secret follow the row (scheduled for deletion with
    /// the 7-day window while disconnected, live while active), re-checking the row.
    FollowRow,
    /// Permanent delete and expiry: `DeleteSecret` without recovery.
    ForceDelete,
}

/// An event as kept in the outbox until it is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub event_id: String,
    pub detail_type: String,
    /// The event's `detail` JSON (the masked row; never a secret).
    pub detail: String,
    pub created_at: Timestamp,
    pub entity_id: EntityId,
    pub connector_type: ConnectorType,
    /// The connector the event is about; its secret is the only one `secret_action` may touch.
    pub connector_id: ConnectorId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_action: Option<SecretAction>,
    /// Failed deliveries so far (the sweeper backs off on each).
    #[serde(default)]
    pub attempts: u32,
    /// When the sweeper may next deliver it: a grace period after it was written (the
    /// handler delivers it itself meanwhile), later after each failed attempt.
    pub next_attempt_at: Timestamp,
}

impl OutboxRecord {
    pub fn new(event: &Event, row: &Connector, secret_action: Option<SecretAction>) -> Self {
        OutboxRecord {
            event_id: event.id.clone(),
            detail_type: event.event_type.as_str().to_string(),
            detail: event.detail_json(),
            created_at: event.created_at,
            entity_id: event.entity_id,
            connector_type: row.connector_type,
            connector_id: row.id,
            secret_action,
            attempts: 0,
            next_attempt_at: event.created_at.plus_seconds(OUTBOX_GRACE_SECONDS),
        }
    }

    /// The record after one more failed delivery at `now`: exponential back-off (2, 4,
    /// 8 … minutes), capped at an hour, so one record that never delivers costs the sweep
    /// one attempt an hour instead of one every run.
    pub fn after_failed_attempt(&self, now: Timestamp) -> OutboxRecord {
        let attempts = self.attempts.saturating_add(1);
        let delay = (60i64 << attempts.min(6)).min(3600);
        OutboxRecord {
            attempts,
            next_attempt_at: now.plus_seconds(delay),
            ..self.clone()
        }
    }

    pub fn secret_ref(&self) -> SecretRef {
        SecretRef {
            entity_id: self.entity_id,
            connector_id: self.connector_id,
            connector_type: self.connector_type,
        }
    }
}

/// Items a sweep query returned, and how many index items it read to find them.
pub struct Due<T> {
    pub items: Vec<T>,
    pub items_read: usize,
    /// Items that could not be decoded: skipped (and counted) so that one bad item never
    /// stops the sweep.
    pub bad_items: usize,
}

impl<T> Due<T> {
    /// The same read, each item turned into `U`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Due<U> {
        Due {
            items: self.items.into_iter().map(f).collect(),
            items_read: self.items_read,
            bad_items: self.bad_items,
        }
    }
}

/// The outcome of trying to take a lease (see [`ConnectorStore::take_lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseClaim {
    /// Ours until the `until` we asked for (unless we release it sooner).
    Taken,
    /// Another owner holds it and its `until` has not passed: leave the work to it.
    HeldElsewhere,
}

/// Connector rows and their outbox records.
#[async_trait]
pub trait ConnectorStore: Send + Sync {
    /// The stored row of `entity` for `connector_type`, expired or not, with its sync
    /// state (`Connector::sync`) read in the same call.
    async fn get(&self, entity: EntityId, connector_type: ConnectorType) -> Result<Option<Connector>, StoreError>;

    /// Every stored row of `entity`, each with its sync state (one Query of its partition).
    async fn list(&self, entity: EntityId) -> Result<Vec<Connector>, StoreError>;

    /// Writes `row` and an outbox record per event in one transaction. With
    /// `expected_version: None` the row must not exist yet; with `Some(v)` the stored row
    /// must still have version `v`. Otherwise [`StoreError::ConditionFailed`]. With an
    /// `answer`, the same transaction stores it as its `Idempotency-Key`'s answer, and
    /// requires the key's claim to be still held (`ConditionFailed` otherwise).
    async fn save(
        &self,
        row: &Connector,
        expected_version: Option<u64>,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError>;

    /// Stores a connector's sync state (never its row) with the outbox records (and
    /// `answer`) in one transaction, if the stored state is still at `state.version - 1`
    /// (absent for 1) and the stored row is still `row.id`, active, at `row.sync_epoch`;
    /// `ConditionFailed` otherwise.
    async fn save_sync(
        &self,
        row: &Connector,
        state: &SyncState,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError>;

    /// Deletes `row` (and its sync state) if its stored version is still `row.version`, with the outbox
    /// records (and `answer`, as in [`ConnectorStore::save`]), in one transaction;
    /// `ConditionFailed` otherwise.
    async fn delete(
        &self,
        row: &Connector,
        records: &[OutboxRecord],
        answer: Option<&KeyAnswer>,
    ) -> Result<(), StoreError>;

    /// Removes an outbox record once its event is published. Absent records are fine.
    async fn clear_outbox(&self, event_id: &str) -> Result<(), StoreError>;

    /// Removes an outbox record if `row` is still stored at `row.version`, in one call;
    /// `Ok(false)` (record kept) if the row moved since.
    async fn clear_outbox_if_unchanged(&self, event_id: &str, row: &Connector) -> Result<bool, StoreError>;

    /// Stores a record's new attempt count and next attempt time, if it still exists.
    async fn reschedule_outbox(&self, record: &OutboxRecord) -> Result<(), StoreError>;

    /// Disconnected rows whose window ended at or before `now` and whose retry time (see
    /// [`ConnectorStore::defer_expiry`]) is not after `now` (from the sparse index, which
    /// is eventually consistent: re-read before acting). At most `limit`, shard by shard
    /// from `first_shard` (mod [`DUE_SHARDS`]).
    async fn due_expiries(&self, now: Timestamp, limit: usize, first_shard: u32) -> Result<Due<Connector>, StoreError>;

    /// Postpones the sweeper's next attempt at expiring `row` to `retry_at` (after a failed
    /// attempt), if the stored row is still at `row.version`; otherwise nothing. The row's
    /// fields do not change; any later write of the row (restore, purge) drops it.
    async fn defer_expiry(&self, row: &Connector, retry_at: Timestamp) -> Result<(), StoreError>;

    /// Outbox records whose `next_attempt_at` is at or before `now`. At most `limit`,
    /// shard by shard from `first_shard`.
    async fn due_outbox(&self, now: Timestamp, limit: usize, first_shard: u32)
        -> Result<Due<OutboxRecord>, StoreError>;

    /// Stores (or renews) the guard of a secret about to be written.
    async fn guard_secret(&self, guard: &SecretGuard) -> Result<(), StoreError>;

    /// Guards whose [`SecretGuard::index_key`] is at or before `before`. At most `limit`,
    /// shard by shard from `first_shard`.
    async fn due_guards(
        &self,
        before: Timestamp,
        limit: usize,
        first_shard: u32,
    ) -> Result<Due<SecretGuard>, StoreError>;

    /// Stores `guard` (with the `retry_at` the sweeper set after a failed check) if the
    /// stored guard is still the one read (same `write_id`); a renewal is left alone.
    async fn defer_guard(&self, guard: &SecretGuard) -> Result<(), StoreError>;

    /// Removes a guard if it is still the one read (same `write_id`): a renewed
    /// guard belongs to a newer write and is kept.
    async fn clear_guard(&self, guard: &SecretGuard) -> Result<(), StoreError>;

    /// Takes the lease `name` for `owner` until `until`, in one conditional write: only if
    /// nobody holds it, or its holder's `until` is at or before `now` (a run that died
    /// holding it). [`LeaseClaim::HeldElsewhere`] otherwise; that is an answer, not an
    /// error. Errors: only [`StoreError::Dependency`] (throttled, unavailable, refused),
    /// after which the caller cannot know who holds the lease.
    async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<LeaseClaim, StoreError>;

    /// Gives the lease `name` up if `owner` still holds it; a lease someone else took over
    /// (after ours ran out) or that is gone already is left alone, and that is `Ok`.
    /// Errors: only [`StoreError::Dependency`]; the lease then runs out on its own.
    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError>;
}

/// The outcome of claiming an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use (or the earlier one expired, or its lease ran out): execute, then
    /// `complete` or `release` with this claim's token.
    Claimed { token: String },
    /// Done before with the same request: answer with this — after redoing `follow_up`,
    /// if the first request committed its change but not all of the secret work after it.
    Replay {
        status: u16,
        body: String,
        follow_up: Option<FollowUp>,
    },
    /// Used before with a different request.
    Mismatch,
    /// The first request with this key is still executing (its lease has not run out).
    InProgress,
}

/// How long a claim blocks retries with its key: longer than any request can run (the
/// functions time out after seconds), so a request killed mid-way (Lambda timeout, crash)
/// blocks its key for at most this long, and then a retry takes the claim over.
pub const IDEMPOTENCY_LEASE_SECONDS: i64 = 60;

/// The secret work that follows a committed write (as its outbox record's
/// `secret_action`), kept with the key's answer when the first request did not finish it:
/// a replay redoes it before answering, so that the answer is true of the secret too.
/// Idempotent, and bound to one connector's secret (see [`SecretRef`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub secret: SecretRef,
    pub action: SecretAction,
}

/// The answer of a write made with an `Idempotency-Key`, stored by the write's own
/// transaction: "committed" and "the key's answer is stored" are one fact, so no error,
/// deadline or crash after the commit can leave the key free to run the write again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAnswer {
    pub scope: IdempotencyScope,
    pub key: String,
    /// The claim's token: the transaction requires the claim to be still held.
    pub token: String,
    pub status: u16,
    /// The JSON body (empty for a 204).
    pub body: String,
    /// Redone before a replay, until the request that committed clears it on success.
    pub follow_up: Option<FollowUp>,
}

/// Whose `Idempotency-Key` it is: keys are scoped to an entity and a mode, so a test key
/// can neither replay nor pre-empt a live key's request (as Stripe scopes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub entity_id: EntityId,
    pub livemode: bool,
}

/// A claim a request took on its key: whose key, the key, and the claim's token. The claim
/// is still held while the record carries that token (a retry that took it over after the
/// lease ran out has another).
#[derive(Debug, Clone, Copy)]
pub struct HeldClaim<'a> {
    pub scope: IdempotencyScope,
    pub key: &'a str,
    pub token: &'a str,
}

/// `Idempotency-Key` records, per entity and mode, kept 24 hours.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn claim(
        &self,
        scope: IdempotencyScope,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<IdempotencyClaim, StoreError>;
    /// Stores the answer (and the secret work a replay redoes first), if the claim is
    /// still held: the key is done, and a retry with the same request replays it.
    async fn complete(
        &self,
        claim: HeldClaim<'_>,
        status: u16,
        body: &str,
        follow_up: Option<FollowUp>,
    ) -> Result<(), StoreError>;
    /// Forgets a claim whose request failed before committing anything, so that a retry
    /// can execute; only while the claim is still held and not done (a done key keeps
    /// its answer).
    async fn release(&self, claim: HeldClaim<'_>) -> Result<(), StoreError>;
}

/// API key records, found by the hash of the presented key.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn find(&self, hash: &KeyHash) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Stores a new key; `ConditionFailed` if its id or hash exists already.
    async fn create(&self, record: &ApiKeyRecord, hash: &KeyHash) -> Result<(), StoreError>;
    /// Marks a key revoked; `Ok(false)` if no such key.
    async fn revoke(&self, key_id: &KeyId, at: Timestamp) -> Result<bool, StoreError>;
    async fn list(&self, entity: EntityId) -> Result<Vec<ApiKeyRecord>, StoreError>;
}

/// Why a secret call on an existing secret did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No secret under the connector's name (or its name is still being deleted).
    #[error("the secret does not exist")]
    Absent,
    /// The secret is scheduled for deletion: it must be restored first.
    #[error("the secret is scheduled for deletion")]
    Scheduled,
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        match e {
            // Where the service does not fall back, a secret that is not where the row
            // says is a state a retry (or the sweeper) resolves.
            SecretError::Absent | SecretError::Scheduled => ApiError::Unavailable(Dependency::SecretsManager),
            SecretError::Dependency(d) => d.into(),
        }
    }
}

/// Connector credentials, one secret per connector, named from its [`SecretRef`]. A
/// secret holds one version per credential version, each under the staging label of its
/// slot; the current one also carries `AWSCURRENT`, which is what readers ask for.
#[async_trait]
pub trait Vault: Send + Sync {
    /// Creates the connector's secret with no version yet (tagged with its connector).
    /// One that exists already is fine.
    async fn create(&self, secret: &SecretRef) -> Result<(), DependencyError>;

    /// Writes `payload` as the secret's version `version_id` (its `ClientRequestToken`),
    /// labelled `label` only: staged, not current (readers still get the current version
    /// until [`Vault::make_current`]). The label moves here from any version that had it.
    /// Returns the secret's ARN. Repeating the same write changes nothing.
    async fn write_version(
        &self,
        secret: &SecretRef,
        version_id: &str,
        label: &str,
        payload: &SecretPayload,
    ) -> Result<SecretArn, SecretError>;

    /// Makes `version_id` current (`AWSCURRENT`). `believed_current` is the version the
    /// caller's row recorded as current before its change: moved from in one call while it
    /// still is (a compare-and-swap); if it no longer is, or is unknown, the secret's
    /// current version is looked up and moved from.
    async fn make_current(
        &self,
        secret: &SecretRef,
        version_id: &str,
        believed_current: Option<&str>,
    ) -> Result<(), SecretError>;

    /// Labels the secret's current version with `label` and returns its `VersionId`:
    /// how credentials stored before versions existed become a recorded version. `None`
    /// when the secret has no current version.
    async fn label_current(&self, secret: &SecretRef, label: &str) -> Result<Option<String>, SecretError>;

    /// Schedules the secret's deletion after `recovery_days`. Already scheduled or absent
    /// secrets are fine: the call is idempotent.
    async fn schedule_deletion(&self, secret: &SecretRef, recovery_days: i64) -> Result<(), DependencyError>;

    /// Cancels a scheduled deletion. A secret that is not scheduled, or absent, is fine.
    async fn restore(&self, secret: &SecretRef) -> Result<(), DependencyError>;

    /// Deletes the secret at once, without recovery. Absent secrets are fine.
    async fn force_delete(&self, secret: &SecretRef) -> Result<(), DependencyError>;
}

/// The HMAC key of the stored `Idempotency-Key` request fingerprints.
#[async_trait]
pub trait FingerprintKeySource: Send + Sync {
    /// The key's bytes. Errors: [`DependencyError::Throttled`] and
    /// [`DependencyError::Unavailable`] (retrying later helps), [`DependencyError::Rejected`]
    /// (no such secret, no grant, an empty value: a misconfiguration).
    async fn fingerprint_key(&self) -> Result<std::sync::Arc<[u8]>, DependencyError>;
}

/// The event bus.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes the events of `records`, all of one request, in one call (EventBridge's
    /// `PutEvents` takes 10 entries; a request has at most 3). `Err` when the call failed
    /// or refused any entry: the caller then leaves every record for the sweeper, which
    /// publishes them again. Consumers dedupe on `id`, so an entry that did get through
    /// is harmless.
    async fn publish(&self, records: &[OutboxRecord]) -> Result<(), DependencyError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// Epoch milliseconds, for time budgets (the sweep's deadline). Clocks that only
    /// know seconds answer the second's start.
    fn now_ms(&self) -> i64 {
        self.now().unix() * 1000
    }

    /// Epoch milliseconds on the timer a Lambda invocation's deadline is measured by:
    /// the wall clock (tests that move [`Clock::now`] by hand keep real deadlines), except
    /// in the simulator, whose clock is its timer too.
    fn timer_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Ready once [`Clock::timer_ms`] reaches `deadline_ms`: what cuts a request at its
    /// deadline. By default a tokio sleep for the time left; the simulator's clock
    /// answers from its own time, so that cut futures run in its executor.
    fn sleep_until_ms(&self, deadline_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let left = u64::try_from(deadline_ms.saturating_sub(self.timer_ms())).unwrap_or(0);
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(left)))
    }
}

/// The wall clock: what every deployed function uses.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }

    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock tests move by hand (e.g. past a recovery window). Not wired into any binary.
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Mutex::new(start))
    }
    pub fn advance_seconds(&self, seconds: i64) {
        let mut now = self.0.lock().unwrap();
        *now = now.plus_seconds(seconds);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}
