//! The application service: each public method is one API operation, written against the
//! ports only. Rules come from `domain`; this layer orders the I/O around them. Outbox
//! delivery and secret reconciliation live in [`delivery`], the scheduled sweep in
//! [`sweep`].

mod delivery;
mod sweep;

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

pub use sweep::{SweepReport, SWEEP_BATCH, UNDELIVERED_ALARM_SECONDS};

use crate::domain::api_key::{bearer_token, parse_key, AuthError, Principal};
use crate::domain::catalog::ConnectorType;
use crate::domain::connector::{Connector, Mode};
use crate::domain::credentials::{self, SecretPayload};
use crate::domain::edits::Edits;
use crate::domain::error::ApiError;
use crate::domain::event::{Event, EventType};
use crate::domain::ids::ConnectorId;
use crate::domain::lifecycle::{self, LifecycleError};
use crate::domain::time::Timestamp;
use crate::ports::{
    Clock, ConnectorStore, DependencyError, EventBus, IdempotencyStore, KeyStore, OutboxRecord, SecretAction,
    SecretGuard, StoreError, Vault,
};

/// How often a write that lost a race on `version` is re-read and retried before the
/// caller gets a 409.
const WRITE_ATTEMPTS: usize = 3;

/// `{connector}` in a path: a connector type or a row id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorRef {
    Type(ConnectorType),
    Id(ConnectorId),
}

impl ConnectorRef {
    pub fn parse(segment: &str) -> Result<Self, ApiError> {
        if let Ok(t) = ConnectorType::parse(segment) {
            return Ok(ConnectorRef::Type(t));
        }
        segment.parse().map(ConnectorRef::Id).map_err(|_| unknown_type())
    }
}

pub fn parse_connector_type(segment: &str) -> Result<ConnectorType, ApiError> {
    ConnectorType::parse(segment).map_err(|_| unknown_type())
}

fn unknown_type() -> ApiError {
    ApiError::bad_request(
        "connector_type",
        format!(
            "Unknown connector type; valid types are: {}.",
            ConnectorType::valid_names()
        ),
    )
}

fn not_found() -> ApiError {
    ApiError::not_found("No such connector for this API key.")
}

fn lost_race() -> ApiError {
    ApiError::Conflict {
        code: "conflict",
        hint: "The connector was changed by another request at the same time; retry.".into(),
    }
}

/// `GET /v1/integrations` parameters, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub starting_after: Option<ConnectorId>,
    pub ending_before: Option<ConnectorId>,
    pub is_active: Option<bool>,
    pub mode: Option<Mode>,
}

pub struct ListPage {
    pub rows: Vec<Connector>,
    pub has_more: bool,
}

/// What connect did, so the HTTP layer can pick 201 or 200.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Outcome {
    Created,
    Reconnected,
}

/// Why one attempt of a write did not finish: a lost race on the row's `version` (re-read
/// and try again) or an answer for the caller.
#[derive(Debug)]
enum Failure {
    LostRace,
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ConditionFailed => Failure::LostRace,
            other => Failure::Api(other.into()),
        }
    }
}

impl From<DependencyError> for Failure {
    fn from(e: DependencyError) -> Self {
        Failure::Api(e.into())
    }
}

impl From<LifecycleError> for Failure {
    fn from(e: LifecycleError) -> Self {
        Failure::Api(lifecycle_error(e))
    }
}

/// Runs `attempt(0)`, `attempt(1)`, … while they lose races, up to [`WRITE_ATTEMPTS`].
async fn retry_lost_races<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut n = 0;
    loop {
        match attempt(n).await {
            Ok(value) => return Ok(value),
            Err(Failure::LostRace) if n + 1 < WRITE_ATTEMPTS => n += 1,
            Err(Failure::LostRace) => return Err(lost_race()),
            Err(Failure::Api(e)) => return Err(e),
        }
    }
}

pub struct Service {
    pub store: Arc<dyn ConnectorStore>,
    pub keys: Arc<dyn KeyStore>,
    pub vault: Arc<dyn Vault>,
    pub bus: Arc<dyn EventBus>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub clock: Arc<dyn Clock>,
}

impl Service {
    /// Resolves the `Authorization` header to a principal.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let token = bearer_token(authorization)?;
        let presented = parse_key(token).ok_or(AuthError::Invalid)?;
        let record = self.keys.find(&presented.hash).await?.ok_or(AuthError::Invalid)?;
        Ok(record.authenticate(&presented, self.clock.now())?)
    }

    /// The caller's stored row named by `r`, expired or not (same entity, visible to the
    /// key's mode).
    async fn stored(&self, principal: &Principal, r: ConnectorRef) -> Result<Connector, ApiError> {
        let row = match r {
            ConnectorRef::Type(t) => self.store.get(principal.entity_id, t).await?,
            ConnectorRef::Id(id) => self
                .store
                .list(principal.entity_id)
                .await?
                .into_iter()
                .find(|row| row.id == id),
        };
        row.filter(|row| row.is_visible_to(principal)).ok_or_else(not_found)
    }

    /// The caller's row named by `r`, if it exists for them: rows past their recovery
    /// window are gone for every reader.
    async fn find(&self, principal: &Principal, r: ConnectorRef) -> Result<Connector, ApiError> {
        let row = self.stored(principal, r).await?;
        if row.is_expired(self.clock.now()) {
            return Err(not_found());
        }
        Ok(row)
    }

    pub async fn get(&self, principal: &Principal, r: ConnectorRef) -> Result<Connector, ApiError> {
        self.find(principal, r).await
    }

    /// Newest first (`created_at`, then `id`), cursor-paginated like Stripe lists.
    pub async fn list(&self, principal: &Principal, query: &ListQuery) -> Result<ListPage, ApiError> {
        let now = self.clock.now();
        let mut visible: Vec<Connector> = self
            .store
            .list(principal.entity_id)
            .await?
            .into_iter()
            .filter(|row| row.is_visible_to(principal) && !row.is_expired(now))
            .collect();
        visible.sort_by_key(|row| std::cmp::Reverse((row.created_at, row.id)));
        let position_of = |id: ConnectorId, param: &str| {
            visible.iter().position(|row| row.id == id).ok_or_else(|| {
                ApiError::bad_request(param, format!("`{param}` does not name a connector of this API key."))
            })
        };
        let (start, end) = match (query.starting_after, query.ending_before) {
            (Some(after), None) => (position_of(after, "starting_after")? + 1, visible.len()),
            (None, Some(before)) => (0, position_of(before, "ending_before")?),
            _ => (0, visible.len()),
        };
        let matching: Vec<Connector> = visible[start..end]
            .iter()
            .filter(|row| query.is_active.is_none_or(|a| row.is_active == a))
            .filter(|row| query.mode.is_none_or(|m| row.mode == m))
            .cloned()
            .collect();
        let has_more = matching.len() > query.limit;
        let rows = if query.ending_before.is_some() {
            // The page just before the cursor: the last `limit` rows of what precedes it.
            matching[matching.len().saturating_sub(query.limit)..].to_vec()
        } else {
            matching.into_iter().take(query.limit).collect()
        };
        Ok(ListPage { rows, has_more })
    }

    /// `POST /v1/integrations/{connector_type}`: connect (config only). A disconnected row
    /// inside its window is re-connected instead: same id, kept credentials (200).
    pub async fn connect(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
    ) -> Result<(Connector, Outcome), ApiError> {
        // Checked up front: the re-connect branch applies the fields to an existing row.
        if edits.mode.is_some_and(Mode::is_live) && !principal.livemode {
            return Err(lifecycle_error(LifecycleError::LiveModeWithTestKey));
        }
        retry_lost_races(|_| self.connect_once(principal, connector_type, edits)).await
    }

    async fn connect_once(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
    ) -> Result<(Connector, Outcome), Failure> {
        let now = self.clock.now();
        let already_connected = |hint: String| {
            Failure::Api(ApiError::Conflict {
                code: "already_connected",
                hint,
            })
        };
        match self.store.get(principal.entity_id, connector_type).await? {
            Some(row) if row.is_active => Err(already_connected(format!(
                "This entity already has a {connector_type} connector; edit it with PATCH or disconnect it first."
            ))),
            Some(row) if !row.is_expired(now) && row.is_visible_to(principal) => {
                let edited = lifecycle::apply_fields(row.clone(), edits);
                let next = self.reactivate(principal, &row, edited, now).await?;
                Ok((next, Outcome::Reconnected))
            }
            Some(row) if !row.is_expired(now) => Err(already_connected(format!(
                "This entity already has a {connector_type} connector."
            ))),
            existing => {
                // Past its window: finish its expiry (as the sweeper would) first.
                if let Some(expired) = existing {
                    self.finalize_expiry(&expired, now).await?;
                }
                let row = lifecycle::connect(principal, connector_type, edits, now)?;
                self.commit(&row, None, &[EventType::Connected], principal, None, now)
                    .await?;
                Ok((row, Outcome::Created))
            }
        }
    }

    /// Makes `row` active again as `edited` (row plus any field edits), with the
    /// `integration.restored` event.
    async fn reactivate(
        &self,
        principal: &Principal,
        row: &Connector,
        edited: Connector,
        now: Timestamp,
    ) -> Result<Connector, Failure> {
        let next = lifecycle::restore(&edited, now)?.unwrap_or(edited);
        self.commit_reactivation(principal, row, &next, &[EventType::Restored], now)
            .await?;
        Ok(next)
    }

    /// Commits `next` over `current` where the change makes the row active again. The
    /// secret is restored first, so that no active row ever sits on a secret scheduled for
    /// deletion; and it follows the committed row again afterwards (`FollowRow`), because
    /// a disconnect that committed before us may schedule it between our restore and our
    /// commit, and only an act after our commit, checked against the row, is sure to
    /// come last. If the commit fails, the secret is settled back to the row as it is;
    /// if the request is killed before its commit, the guard written first makes the
    /// sweeper do that.
    async fn commit_reactivation(
        &self,
        principal: &Principal,
        current: &Connector,
        next: &Connector,
        events: &[EventType],
        now: Timestamp,
    ) -> Result<(), Failure> {
        let has_secret = current.has_secret();
        if has_secret {
            let secret = current.secret_ref();
            self.store.guard_secret(&SecretGuard::new(secret, now)).await?;
            self.vault.restore(&secret).await?;
        }
        let action = has_secret.then_some(SecretAction::FollowRow);
        let committed = self
            .commit(next, Some(current.version), events, principal, action, now)
            .await;
        if committed.is_err() && has_secret {
            self.settle_secret(current).await;
        }
        committed
    }

    /// `POST /v1/integrations/{connector_type}/restore`: undo a disconnect inside the window.
    pub async fn restore(&self, principal: &Principal, connector_type: ConnectorType) -> Result<Connector, ApiError> {
        retry_lost_races(|_| async move {
            let row = self.stored(principal, ConnectorRef::Type(connector_type)).await?;
            let now = self.clock.now();
            if row.is_active {
                Ok(row)
            } else if row.is_expired(now) {
                Err(ApiError::RecoveryWindowExpired.into())
            } else {
                self.reactivate(principal, &row, row.clone(), now).await
            }
        })
        .await
    }

    /// `PATCH /v1/integrations/{connector_type}`: edit fields; `is_active` moves the
    /// lifecycle. Events only when something changed.
    pub async fn update(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
    ) -> Result<Connector, ApiError> {
        retry_lost_races(|_| async move {
            let row = self.stored(principal, ConnectorRef::Type(connector_type)).await?;
            let now = self.clock.now();
            if row.is_expired(now) {
                return Err(if edits.is_active == Some(true) {
                    ApiError::RecoveryWindowExpired
                } else {
                    not_found()
                }
                .into());
            }
            let Some((next, events)) = lifecycle::edit(principal, &row, edits, now)? else {
                return Ok(row);
            };
            if events.contains(&EventType::Restored) {
                self.commit_reactivation(principal, &row, &next, &events, now).await?;
            } else {
                let disconnecting = events.contains(&EventType::Disconnected);
                let action = disconnecting.then_some(SecretAction::FollowRow);
                self.commit(&next, Some(row.version), &events, principal, action, now)
                    .await?;
            }
            Ok(next)
        })
        .await
    }

    /// `PUT /v1/integrations/{connector_type}/credentials`: write-only credential intake.
    /// On a disconnected row (inside its window) the secret is restored and replaced, and
    /// the row is active again.
    pub async fn put_credentials(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        credentials: &Value,
        webhook_secret: Option<&Value>,
    ) -> Result<Connector, ApiError> {
        let payload: SecretPayload = credentials::validate(connector_type, credentials, webhook_secret)
            .map_err(|e| ApiError::unprocessable(e.param(), e.to_string()))?;
        // Existence first, so that credentials for an unknown connector are never stored.
        let existing = self.find(principal, ConnectorRef::Type(connector_type)).await?;
        let secret = existing.secret_ref();
        // The guard first: if the row is gone by the time the sweeper looks (a permanent
        // delete raced us, or we are killed before our commit), the secret is deleted.
        self.store
            .guard_secret(&SecretGuard::new(secret, self.clock.now()))
            .await?;
        // `put` restores a secret scheduled for deletion before writing it.
        let arn = self.vault.put(&secret, &payload).await?;
        let stored = retry_lost_races(|attempt| {
            let known = (attempt == 0).then(|| existing.clone());
            self.store_credentials_once(principal, &existing, known, &payload, arn.clone())
        })
        .await;
        if stored.is_err() {
            self.settle_secret(&existing).await;
        }
        stored
    }

    /// Commits the row that points at the stored secret. The first attempt writes over
    /// `known` (the row as read before); the version condition catches any change since,
    /// and each retry reads afresh — and gives up if the connector the secret was written
    /// for (`original`) has been replaced by another one.
    async fn store_credentials_once(
        &self,
        principal: &Principal,
        original: &Connector,
        known: Option<Connector>,
        payload: &SecretPayload,
        arn: crate::domain::connector::SecretArn,
    ) -> Result<Connector, Failure> {
        let current = match known {
            Some(row) => row,
            None => {
                self.find(principal, ConnectorRef::Type(original.connector_type))
                    .await?
            }
        };
        if current.id != original.id {
            return Err(Failure::Api(lost_race()));
        }
        let now = self.clock.now();
        let mut events = Vec::new();
        let base = match lifecycle::restore(&current, now)? {
            Some(restored) => {
                events.push(EventType::Restored);
                restored
            }
            None => current.clone(),
        };
        events.push(EventType::CredentialsUpdated);
        let mut next =
            lifecycle::with_credentials(&base, payload.key_names(), payload.webhook_secret.is_some(), arn, now);
        next.version = current.version + 1;
        // When this write restores the row, the secret follows the committed row
        // afterwards too: a disconnect may have scheduled it after `put` revived it.
        let action = events.contains(&EventType::Restored).then_some(SecretAction::FollowRow);
        self.commit(&next, Some(current.version), &events, principal, action, now)
            .await?;
        Ok(next)
    }

    /// `DELETE /v1/integrations/{connector}`: disconnect, keeping credentials 7 days.
    pub async fn disconnect(&self, principal: &Principal, r: ConnectorRef) -> Result<Connector, ApiError> {
        retry_lost_races(|_| async move {
            let current = self.find(principal, r).await?;
            let now = self.clock.now();
            match lifecycle::disconnect(&current, now) {
                None => {
                    // Already disconnected: no change, no event. Re-assert the secret's
                    // scheduled deletion in case an earlier attempt stopped before it.
                    self.reconcile_secret(current.secret_ref(), Some(current.clone()))
                        .await?;
                    Ok(current)
                }
                Some(next) => {
                    let action = Some(SecretAction::FollowRow);
                    self.commit(
                        &next,
                        Some(current.version),
                        &[EventType::Disconnected],
                        principal,
                        action,
                        now,
                    )
                    .await?;
                    Ok(next)
                }
            }
        })
        .await
    }

    /// `DELETE /v1/integrations/{connector}?permanent=true`: row and secret gone at once.
    /// If the secret cannot be deleted right now, the outbox record keeps that duty and
    /// the sweeper finishes it; the row is gone either way.
    pub async fn purge(&self, principal: &Principal, r: ConnectorRef) -> Result<(), ApiError> {
        retry_lost_races(|_| async move {
            let row = self.find(principal, r).await?;
            let now = self.clock.now();
            let event = Event::new(EventType::Deleted, &row, Some(&principal.key_id), now);
            let record = OutboxRecord::new(&event, &row, Some(SecretAction::ForceDelete));
            self.store.delete(&row, std::slice::from_ref(&record)).await?;
            let _ = self.deliver(&record).await;
            Ok(())
        })
        .await
    }

    /// Stores `row` with an outbox record per event in one transaction, then delivers
    /// them. The first record carries the secret work (`action`): if that fails the caller
    /// gets the error (429/503) and the record stays for the sweeper to finish; if only
    /// publishing fails, the answer is unaffected and the sweeper re-publishes. Only the
    /// transaction can lose a race: nothing after it is retried.
    async fn commit(
        &self,
        row: &Connector,
        expected_version: Option<u64>,
        events: &[EventType],
        principal: &Principal,
        action: Option<SecretAction>,
        now: Timestamp,
    ) -> Result<(), Failure> {
        let records: Vec<OutboxRecord> = events
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let event = Event::new(*t, row, Some(&principal.key_id), now);
                OutboxRecord::new(&event, row, if i == 0 { action } else { None })
            })
            .collect();
        self.store.save(row, expected_version, &records).await?;
        for record in &records {
            self.deliver_committed(record, row).await?;
        }
        Ok(())
    }

    /// Ends a row whose window has passed: `integration.expired` and the row's deletion in
    /// one transaction (conditional on its version), then the secret's deletion and the
    /// event. `Ok(false)`: the row is gone but delivery waits for the next sweep.
    async fn finalize_expiry(&self, row: &Connector, now: Timestamp) -> Result<bool, Failure> {
        let event = Event::new(EventType::Expired, row, None, now);
        let record = OutboxRecord::new(&event, row, Some(SecretAction::ForceDelete));
        self.store.delete(row, std::slice::from_ref(&record)).await?;
        Ok(matches!(self.deliver(&record).await, Ok(true)))
    }
}

fn lifecycle_error(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::LiveModeWithTestKey => {
            ApiError::unprocessable("mode", "A test key can only use sandbox connectors.")
        }
        LifecycleError::WindowExpired => ApiError::RecoveryWindowExpired,
    }
}
